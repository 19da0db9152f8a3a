//! The routers' table as the server builds it: a route is an environment, a name and a path,
//! so two jobs may share a name under different paths, each with its own timeout and body
//! limit.

use std::time::Duration;

use cj_api::routes::{Route, RouteTable};
use hyper::Method;

use crate::support::{IMAGE, SimCluster};

fn api() -> String {
    format!(
        "service: shop\njobs:\n\
         \x20 - name: api\n    image: {IMAGE}\n    port: 8080\n    run_on_host: host-1\n    route: api\n\
         \x20 - name: api-v2\n    image: {IMAGE}\n    port: 8081\n    run_on_host: host-1\n\
         \x20   route: {{ host: api, path: /v2, timeout: 30s, max_body: 10m }}\n"
    )
}

#[tokio::test(start_paused = true)]
async fn jobs_sharing_a_route_name_under_different_paths_are_routes_of_their_own() {
    let cluster = SimCluster::start(&["host-1"], Duration::from_secs(30)).await;
    cluster.api.push("shop.yaml", &api()).await;
    let up = cluster.api.operation("up", "shop").await;
    assert!(up.ok, "{up:?}");
    let mut table: RouteTable = RouteTable::default();
    for _ in 0..100 {
        table = cluster
            .api
            .call(Method::GET, "/v1/routes", None)
            .await
            .unwrap();
        if table.routes.len() == 2 && table.routes.iter().all(|route| !route.backends.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown: Vec<String> = table
        .routes
        .iter()
        .map(|route: &Route| {
            format!(
                "{} {} path={:?} timeout_ms={:?} max_body_bytes={:?} backends={}",
                route.name,
                route.job,
                route.path,
                route.timeout_ms,
                route.max_body_bytes,
                route.backends.len()
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "api api path=None timeout_ms=None max_body_bytes=None backends=1",
            "api api-v2 path=Some(\"/v2\") timeout_ms=Some(30000) max_body_bytes=Some(10485760) backends=1",
        ]
    );
}
