//! `dev`'s router in front of real containers: a rolling update of a routed job under steady load
//! loses no request, and a route with nothing healthy behind it answers 503 naming why.

mod support;

use std::time::Duration;

use support::load::{Load, LoadResult};
use support::{Dev, IMAGE, http_get_host, wait_for};

fn web_yaml(release: u32) -> String {
    format!(
        r#"service: site
jobs:
  - name: web
    image: {IMAGE}
    instances: 3
    port: auto
    route: www
    drain_timeout: 1s
    env: {{ RELEASE: "{release}" }}
    command: [sh, -c, 'mkdir -p /tmp/www && echo "release $RELEASE" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s, retries: 2 }}
    update: {{ batch_size: 1, min_healthy_time: 1s }}
"#
    )
}

#[test]
fn a_rolling_update_under_load_through_the_router_fails_no_request() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    dev.push_yaml("site.yaml", &web_yaml(1));
    dev.ok(&["up", "site"]);
    wait_for(
        "the route to serve release 1",
        Duration::from_secs(30),
        || match http_get_host(&router, "www.cj.localhost", "/") {
            Ok((200, body)) if body.contains("release 1") => Some(()),
            _ => None,
        },
    );

    // Steady load from two clients, each request on a new connection, counting every failure.
    let load = Load::start(&router, "www.cj.localhost", 2);
    std::thread::sleep(Duration::from_secs(1));
    dev.push_yaml("site.yaml", &web_yaml(2));
    dev.ok(&["rolling-update", "site"]);
    wait_for(
        "the route to serve release 2",
        Duration::from_secs(30),
        || match http_get_host(&router, "www.cj.localhost", "/") {
            Ok((200, body)) if body.contains("release 2") => Some(()),
            _ => None,
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let LoadResult { ok, failures } = load.finish();
    assert!(ok > 200, "too little load to mean anything: {ok} requests");
    assert_eq!(failures.len(), 0, "{ok} ok; failures: {failures:?}");

    // Nothing healthy: a 503 that names the environment, the route and why.
    dev.ok(&["down", "site"]);
    let (status, body) = http_get_host(&router, "www.cj.localhost", "/").unwrap();
    assert_eq!(status, 404, "a route that is down is gone: {body}");
}

#[test]
fn a_route_with_no_healthy_task_answers_503_with_the_reason() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    dev.push_yaml(
        "sick.yaml",
        &format!(
            "service: sick\njobs:\n  - name: api\n    image: {IMAGE}\n    port: auto\n    route: true\n    command: [sleep, '100000']\n    check: {{ http: /, interval: 1s, timeout: 1s, retries: 1 }}\n"
        ),
    );
    let up = dev.cli(&["up", "sick", "--timeout", "5"]);
    assert!(!up.status.success());
    let (status, body) = wait_for("a 503", Duration::from_secs(30), || {
        http_get_host(&router, "api.cj.localhost", "/")
            .ok()
            .filter(|(status, _)| *status == 503)
    });
    assert_eq!(status, 503);
    for needle in ["production", "api", "1 task"] {
        assert!(body.contains(needle), "{needle} missing from: {body}");
    }
    dev.ok(&["down", "sick"]);
}
