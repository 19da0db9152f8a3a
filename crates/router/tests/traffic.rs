//! How a route shapes its traffic, over real sockets: weighted canaries (and the header and
//! cookie that choose a side), path prefixes, per-route timeouts and body limits, the
//! `X-Forwarded-*` headers, and the counts a router reports to its server.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cj_api::routes::{Route, RouterCounts};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "web.dev.apps.test";

/// Route `web` of `dev` over `canaries` then `stables`, the canaries marked, with a weight.
fn weighted(canaries: &[&Named], stables: &[&Named], weight_bp: Option<u32>) -> Route {
    let addresses: Vec<SocketAddr> = canaries
        .iter()
        .chain(stables)
        .map(|backend| backend.address)
        .collect();
    let mut web = route("dev", "web", &addresses);
    for backend in &mut web.backends[..canaries.len()] {
        backend.canary = true;
        backend.version = 2;
    }
    web.canary_weight_bp = weight_bp;
    web
}

async fn backends(names: &[&'static str]) -> Vec<Named> {
    let mut started = Vec::new();
    for name in names {
        started.push(named_backend(name).await);
    }
    started
}

fn hits(backends: &[&Named]) -> usize {
    backends
        .iter()
        .map(|backend| backend.hits.load(Ordering::SeqCst))
        .sum()
}

async fn get_ok(router: &TestRouter, client: &reqwest::Client, host: &str, path: &str) -> String {
    let response = within("request", router.get(client, host, path).send())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{host}{path}");
    response.headers()["x-backend"].to_str().unwrap().to_owned()
}

/// Sends 2,000 requests over a route with a 10% canary weight and checks the canary's share.
async fn check_canary_share(canary_count: usize, stable_count: usize) {
    let all = backends(&["c1", "c2", "c3", "s1", "s2", "s3"]).await;
    let canaries: Vec<&Named> = all[..canary_count].iter().collect();
    let stables: Vec<&Named> = all[3..3 + stable_count].iter().collect();
    let router = TestRouter::start(table(1, vec![weighted(&canaries, &stables, Some(1000))])).await;
    let client = client();
    for _ in 0..2000 {
        get_ok(&router, &client, HOST, "/").await;
    }
    let to_canary = hits(&canaries);
    assert_eq!(to_canary + hits(&stables), 2000);
    assert!(
        (160..=240).contains(&to_canary),
        "{canary_count} canaries, {stable_count} stable: {to_canary} of 2000 to the canary"
    );
    // Within a side, the backends take turns.
    for side in [&canaries, &stables] {
        let counts: Vec<usize> = side
            .iter()
            .map(|backend| backend.hits.load(Ordering::SeqCst))
            .collect();
        let (least, most) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(most - least <= 1, "{counts:?}");
    }
    // The versions are counted apart.
    let page = router.status(&client).await;
    let answered: Vec<(u64, u64)> = page.routes[0]
        .versions
        .iter()
        .map(|counts| (counts.version, counts.answered))
        .collect();
    assert_eq!(
        answered,
        [(1, 2000 - to_canary as u64), (2, to_canary as u64)]
    );
}

#[tokio::test]
async fn a_canary_weight_of_10_percent_sends_a_tenth_to_one_canary_among_three_stable() {
    check_canary_share(1, 3).await;
}

#[tokio::test]
async fn a_canary_weight_of_10_percent_sends_a_tenth_to_three_canaries_beside_one_stable() {
    check_canary_share(3, 1).await;
}

#[tokio::test]
async fn the_canary_header_and_cookie_choose_the_side() {
    let all = backends(&["canary", "stable-1", "stable-2"]).await;
    let router = TestRouter::start(table(
        1,
        vec![weighted(&[&all[0]], &[&all[1], &all[2]], Some(5000))],
    ))
    .await;
    let client = client();
    let send = |header: (&'static str, &'static str)| {
        router
            .get(&client, HOST, "/")
            .header(header.0, header.1)
            .send()
    };
    for _ in 0..20 {
        let always = within("always", send(("x-coding-job-canary", "always")))
            .await
            .unwrap();
        assert_eq!(always.headers()["x-backend"], "canary");
        let never = within("never", send(("X-Coding-Job-Canary", "never")))
            .await
            .unwrap();
        assert_ne!(never.headers()["x-backend"], "canary");
        let cookie = within("cookie", send(("cookie", "a=b; coding-job-canary=always")))
            .await
            .unwrap();
        assert_eq!(cookie.headers()["x-backend"], "canary");
    }
    // An unknown value is ignored: the weight decides, so both sides are reached.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let response = within("unknown", send(("x-coding-job-canary", "perhaps")))
            .await
            .unwrap();
        seen.insert(response.headers()["x-backend"].to_str().unwrap().to_owned());
    }
    assert!(seen.contains("canary") && seen.len() > 1, "{seen:?}");
}

#[tokio::test]
async fn without_a_weight_or_with_one_side_empty_every_backend_takes_turns() {
    let all = backends(&["canary", "stable"]).await;
    let (canary, stable) = (&all[0], &all[1]);
    // Marked, but no weight: as before canaries had weights.
    let router = TestRouter::start(table(1, vec![weighted(&[canary], &[stable], None)])).await;
    let client = client();
    for _ in 0..10 {
        let response = within(
            "request",
            router
                .get(&client, HOST, "/")
                .header("x-coding-job-canary", "always")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(canary.hits.load(Ordering::SeqCst), 5);
    assert_eq!(stable.hits.load(Ordering::SeqCst), 5);

    // A weight, but only canaries left: they take everything, `never` included.
    let only = backends(&["only-canary"]).await;
    let router = TestRouter::start(table(1, vec![weighted(&[&only[0]], &[], Some(100))])).await;
    for _ in 0..5 {
        let response = within(
            "request",
            router
                .get(&client, HOST, "/")
                .header("x-coding-job-canary", "never")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.headers()["x-backend"], "only-canary");
    }
}

#[tokio::test]
async fn a_canary_that_fails_to_connect_leaves_its_requests_to_the_stable_side() {
    let stable = named_backend("stable").await;
    let closed = closed_port().await;
    let mut web = route("dev", "web", &[closed, stable.address]);
    web.backends[0].canary = true;
    web.canary_weight_bp = Some(5000);
    let router = TestRouter::start(table(1, vec![web])).await;
    let client = client();
    for _ in 0..20 {
        let response = within(
            "request",
            router
                .get(&client, HOST, "/")
                .header("x-coding-job-canary", "always")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(stable.hits.load(Ordering::SeqCst), 20);
}

fn with_path(mut route: Route, path: &str) -> Route {
    route.path = Some(path.to_owned());
    route
}

#[tokio::test]
async fn the_longest_path_prefix_takes_the_request_by_whole_segments() {
    let all = backends(&["root", "v2", "v2-admin", "docs"]).await;
    let router = TestRouter::start(table(
        1,
        vec![
            route("dev", "api", &[all[0].address]),
            with_path(route("dev", "api", &[all[1].address]), "/v2"),
            with_path(route("dev", "api", &[all[2].address]), "/v2/admin"),
            with_path(route("dev", "docs", &[all[3].address]), "/guide"),
        ],
    ))
    .await;
    let client = client();
    let api = "api.dev.apps.test";
    for (path, expected) in [
        ("/", "root"),
        ("/v2", "v2"),
        ("/v2/users?page=2", "v2"),
        ("/v2x", "root"),
        ("/v2/admin", "v2-admin"),
        ("/v2/admin/users", "v2-admin"),
        ("/v2/administrators", "v2"),
    ] {
        assert_eq!(
            get_ok(&router, &client, api, path).await,
            expected,
            "{path}"
        );
    }
    assert_eq!(
        get_ok(&router, &client, "docs.dev.apps.test", "/guide/x").await,
        "docs"
    );

    // Nothing serves `/` of docs: a 404 that says so.
    let response = within(
        "no path",
        router
            .get(&client, "docs.dev.apps.test", "/other")
            .header("accept", "application/json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["route"], "docs");
    assert_eq!(body["path"], "/other");

    // Each route is its own line on the status page, with its path.
    let page = router.status(&client).await;
    let listed: Vec<(&str, Option<&str>, &str)> = page
        .routes
        .iter()
        .map(|route| {
            (
                route.name.as_str(),
                route.path.as_deref(),
                route.url.as_str(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("api", None, "http://api.dev.apps.test/"),
            ("api", Some("/v2"), "http://api.dev.apps.test/v2"),
            (
                "api",
                Some("/v2/admin"),
                "http://api.dev.apps.test/v2/admin"
            ),
            ("docs", Some("/guide"), "http://docs.dev.apps.test/guide"),
        ]
    );
}

#[tokio::test]
async fn the_path_is_forwarded_unchanged() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let backend = serve_backend(move |request: hyper::Request<hyper::body::Incoming>| {
        record.lock().unwrap().push(request.uri().to_string());
        async { Response::new(Full::new(Bytes::from_static(b"ok"))) }
    })
    .await;
    let router = TestRouter::start(table(
        1,
        vec![with_path(route("dev", "api", &[backend]), "/v2")],
    ))
    .await;
    let client = client();
    let response = within(
        "request",
        router
            .get(&client, "api.dev.apps.test", "/v2/users?id=7")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), ["/v2/users?id=7"]);
}

#[tokio::test]
async fn a_backend_slower_than_the_route_timeout_gets_a_504() {
    let slow = serve_backend(|_| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Response::new(Full::new(Bytes::from_static(b"late")))
    })
    .await;
    let fast = named_backend("fast").await;
    let mut slow_route = route("dev", "slow", &[slow]);
    slow_route.timeout_ms = Some(300);
    let mut fast_route = route("dev", "fast", &[fast.address]);
    fast_route.timeout_ms = Some(300);
    let router = TestRouter::start(table(1, vec![slow_route, fast_route])).await;
    let client = client();

    let started = Instant::now();
    let response = within(
        "slow request",
        router.get(&client, "slow.dev.apps.test", "/").send(),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let body = response.text().await.unwrap();
    assert!(body.contains("300 ms"), "{body}");
    assert_eq!(
        get_ok(&router, &client, "fast.dev.apps.test", "/").await,
        "fast"
    );

    let page = router.status(&client).await;
    let slow = page
        .routes
        .iter()
        .find(|route| route.name == "slow")
        .unwrap();
    assert_eq!(slow.counts.status_5xx, 1);
    assert_eq!(slow.counts.failures, 1);
    assert_eq!(slow.versions[0].connection_failures, 1);
}

/// A backend that reads the whole body and answers its length.
async fn counting_backend() -> SocketAddr {
    serve_backend(
        |request: hyper::Request<hyper::body::Incoming>| async move {
            let length = match request.into_body().collect().await {
                Ok(body) => body.to_bytes().len(),
                Err(_) => 0,
            };
            Response::new(Full::new(Bytes::from(length.to_string())))
        },
    )
    .await
}

fn limited(backend: SocketAddr, max_body_bytes: u64) -> Route {
    let mut upload = route("dev", "upload", &[backend]);
    upload.max_body_bytes = Some(max_body_bytes);
    upload
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_without_reaching_a_backend() {
    let backend = named_backend("upload").await;
    let router = TestRouter::start(table(1, vec![limited(backend.address, 1000)])).await;
    let client = client();
    let response = within(
        "too large",
        router
            .request(&client, Method::POST, "upload.dev.apps.test", "/")
            .body(vec![b'a'; 1001])
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.text().await.unwrap().contains("1000 bytes"));
    assert_eq!(backend.hits.load(Ordering::SeqCst), 0);

    let response = within(
        "at the limit",
        router
            .request(&client, Method::POST, "upload.dev.apps.test", "/")
            .body(vec![b'a'; 1000])
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(backend.hits.load(Ordering::SeqCst), 1);
}

/// Sends a chunked request of `chunks` (not ended when `end` is false) on a raw connection and
/// returns the status line of the answer, or `None` if the connection ended without one.
async fn send_chunked(router: SocketAddr, chunks: &[usize], end: bool) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(router).await.unwrap();
    let mut request =
        b"POST / HTTP/1.1\r\nhost: upload.dev.apps.test\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for &size in chunks {
        request.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        request.extend(std::iter::repeat_n(b'a', size));
        request.extend_from_slice(b"\r\n");
    }
    if end {
        request.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match within("answer", stream.read(&mut buffer)).await {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
        if answer.windows(4).any(|window| window == b"\r\n\r\n") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .lines()
        .next()
        .map(str::to_owned)
        .filter(|line| !line.is_empty())
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_with_413() {
    let backend = counting_backend().await;
    let router = TestRouter::start(table(1, vec![limited(backend, 100_000)])).await;
    // Under the limit, in chunks: whole.
    let status = send_chunked(router.address, &[40_000, 40_000], true).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    // Over it mid-way, the client still sending: 413 at once, whatever comes after.
    let status = send_chunked(router.address, &[60_000, 60_000], false).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));
    let page = router.status(&client()).await;
    assert_eq!(page.routes[0].counts.status_4xx, 1);
    assert_eq!(page.routes[0].versions[0].connection_failures, 0);
}

#[tokio::test]
async fn forwarded_for_is_appended_and_the_client_address_told() {
    let web = named_backend("web").await;
    let real_ip = serve_backend(|request: hyper::Request<hyper::body::Incoming>| {
        let seen = request
            .headers()
            .get("x-real-ip")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        async move { Response::new(Full::new(Bytes::from(seen))) }
    })
    .await;
    let router = TestRouter::start(table(
        1,
        vec![
            route("dev", "web", &[web.address]),
            route("dev", "ip", &[real_ip]),
        ],
    ))
    .await;
    let client = client();
    let response = within(
        "request",
        router
            .get(&client, HOST, "/")
            .header("x-forwarded-for", "203.0.113.9, 10.0.0.1")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "spoofed.example")
            .send(),
    )
    .await
    .unwrap();
    let seen = response.headers();
    assert_eq!(
        seen["x-seen-x-forwarded-for"],
        "203.0.113.9, 10.0.0.1, 127.0.0.1"
    );
    assert_eq!(seen["x-seen-x-forwarded-proto"], "http");
    assert_eq!(seen["x-seen-x-forwarded-host"], HOST);

    let response = within(
        "real ip",
        router
            .get(&client, "ip.dev.apps.test", "/")
            .header("x-real-ip", "198.51.100.1")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.text().await.unwrap(), "127.0.0.1");
}

#[tokio::test]
async fn the_router_reports_its_counts_to_the_first_server_that_takes_them() {
    // Each report with the `Authorization` it came with.
    type Reports = Mutex<Vec<(Option<String>, RouterCounts)>>;
    let reports: Arc<Reports> = Arc::default();
    let record = Arc::clone(&reports);
    let server = serve_backend(move |request: hyper::Request<hyper::body::Incoming>| {
        let record = Arc::clone(&record);
        async move {
            assert_eq!(request.uri().path(), "/v1/router/counts");
            let token = request
                .headers()
                .get("authorization")
                .map(|value| value.to_str().unwrap().to_owned());
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let counts: RouterCounts = serde_json::from_slice(&body).unwrap();
            record.lock().unwrap().push((token, counts));
            Response::new(Full::new(Bytes::new()))
        }
    })
    .await;
    let web = named_backend("web").await;
    let router = TestRouter::start(table(1, vec![route("dev", "web", &[web.address])])).await;
    let client = client();
    for _ in 0..3 {
        get_ok(&router, &client, HOST, "/").await;
    }
    let down = closed_port().await;
    let servers = format!("http://{down}, http://{server}/");
    let source = router.counts.clone();
    let reporter = tokio::spawn(async move {
        let every = Duration::from_millis(50);
        let token = Some("secret".to_owned());
        let name = "router-1:80".to_owned();
        cj_router::report_counts(&servers, token, common::client(), source, name, every).await;
    });
    within("a report", async {
        while reports.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    reporter.abort();
    let (token, counts) = reports.lock().unwrap()[0].clone();
    assert_eq!(token.as_deref(), Some("Bearer secret"));
    assert_eq!(counts.router, "router-1:80");
    assert!(counts.started.contains('T'), "{}", counts.started);
    assert_eq!(counts.routes.len(), 1);
    let web = &counts.routes[0];
    assert_eq!(
        (
            web.env.as_str(),
            web.route.as_str(),
            web.service.as_str(),
            web.job.as_str()
        ),
        ("dev", "web", "shop", "shop-web")
    );
    assert_eq!(web.versions.len(), 1);
    assert_eq!((web.versions[0].version, web.versions[0].answered), (1, 3));
}
