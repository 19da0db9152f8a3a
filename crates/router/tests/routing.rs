//! The router end to end over real sockets: routing by host, the router's own pages,
//! balancing, retries, a table swapped under a request in flight, and shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Response;
use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

async fn text(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, within("body", response.text()).await.unwrap())
}

#[tokio::test]
async fn routes_by_host_in_env_and_production_forms() {
    let production = named_backend("production-web").await;
    let dev = named_backend("dev-web").await;
    let router = TestRouter::start(table(
        1,
        vec![
            route("production", "web", &[production.address]),
            route("dev", "web", &[dev.address]),
        ],
    ))
    .await;
    let client = client();

    let response = within(
        "production form",
        router.get(&client, "web.apps.test", "/").send(),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["x-backend"], "production-web");

    let response = within(
        "env form",
        router
            .get(&client, "web.dev.apps.test:8080", "/x?y=1")
            .header("connection", "x-drop-me")
            .header("x-drop-me", "1")
            .send(),
    )
    .await
    .unwrap();
    let seen = response.headers();
    assert_eq!(seen["x-backend"], "dev-web");
    assert_eq!(seen["x-seen-host"], "web.dev.apps.test:8080");
    assert_eq!(seen["x-seen-x-forwarded-host"], "web.dev.apps.test:8080");
    assert_eq!(seen["x-seen-x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-seen-x-forwarded-proto"], "http");
    // Named by `Connection`, so hop-by-hop: not forwarded.
    assert!(!seen.contains_key("x-seen-x-drop-me"));

    let response = within(
        "any case",
        router.get(&client, "WEB.Dev.Apps.Test", "/").send(),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["x-backend"], "dev-web");

    let (status, body) = text(
        within(
            "foreign host",
            router.get(&client, "example.org", "/").send(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("apps.test"), "{body}");

    let page = router.status(&client).await;
    assert_eq!(page.domain, "apps.test");
    assert_eq!(page.generation, 1);
    let counted: Vec<(&str, &str, u64, u64)> = page
        .routes
        .iter()
        .map(|route| {
            let counts = route.counts;
            (
                route.env.as_str(),
                route.name.as_str(),
                counts.requests,
                counts.status_2xx,
            )
        })
        .collect();
    assert_eq!(counted, [("dev", "web", 2, 2), ("production", "web", 1, 1)]);
    let html = within("status html", router.get(&client, "apps.test", "/").send())
        .await
        .unwrap();
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        html.text()
            .await
            .unwrap()
            .contains("http://web.dev.apps.test/")
    );
}

#[tokio::test]
async fn balances_round_robin_across_two_backends() {
    let one = named_backend("one").await;
    let two = named_backend("two").await;
    let router = TestRouter::start(table(
        1,
        vec![route("dev", "web", &[one.address, two.address])],
    ))
    .await;
    let client = client();
    for _ in 0..20 {
        let response = within(
            "request",
            router.get(&client, "web.dev.apps.test", "/").send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(one.hits.load(Ordering::SeqCst), 10);
    assert_eq!(two.hits.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_get_is_retried_when_a_backend_port_is_closed() {
    let closed = closed_port().await;
    let good = named_backend("good").await;
    let router =
        TestRouter::start(table(1, vec![route("dev", "web", &[closed, good.address])])).await;
    let client = client();
    for _ in 0..200 {
        let response = within(
            "request",
            router.get(&client, "web.dev.apps.test", "/").send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(good.hits.load(Ordering::SeqCst), 200);
    let counts = router.status(&client).await.routes[0].counts;
    assert_eq!(counts.failures, 0);
    assert_eq!(counts.status_2xx, 200);
    assert!(counts.retries >= 1, "{counts:?}");
}

#[tokio::test]
async fn a_post_is_not_retried_once_it_may_have_been_sent() {
    let closing = closing_backend().await;
    let good = named_backend("good").await;
    let router = TestRouter::start(table(
        1,
        vec![route("dev", "web", &[closing.address, good.address])],
    ))
    .await;
    let client = client();
    let (mut ok, mut bad_gateway) = (0, 0);
    for _ in 0..10 {
        let response = within(
            "post",
            router
                .request(&client, Method::POST, "web.dev.apps.test", "/orders")
                .body("item=1")
                .send(),
        )
        .await
        .unwrap();
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_GATEWAY => bad_gateway += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // The first POST goes to the backend that closes: it fails and is not sent again.
    assert!(bad_gateway >= 1);
    assert_eq!(closing.hits.load(Ordering::SeqCst), bad_gateway);
    assert_eq!(good.hits.load(Ordering::SeqCst), ok);
    let counts = router.status(&client).await.routes[0].counts;
    assert_eq!(counts.failures, bad_gateway as u64);
    assert_eq!(counts.retries, 0);

    // The same failure is retried for a GET, on a route of its own.
    let closing = closing_backend().await;
    router.tables.send_replace(table(
        2,
        vec![route("dev", "web", &[closing.address, good.address])],
    ));
    within("new table", async {
        while router.status(&client).await.generation != 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    for _ in 0..10 {
        let response = within("get", router.get(&client, "web.dev.apps.test", "/").send())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(closing.hits.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn a_route_without_backends_answers_503_naming_env_route_and_reason() {
    let mut web = route("staging", "web", &[]);
    web.unavailable = Some("2 tasks: 1 starting, 1 unhealthy".to_owned());
    let router = TestRouter::start(table(1, vec![web])).await;
    let client = client();

    let (status, body) = text(
        within(
            "html",
            router.get(&client, "web.staging.apps.test", "/").send(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    for expected in ["staging", "web", "2 tasks: 1 starting, 1 unhealthy"] {
        assert!(body.contains(expected), "{expected} in {body}");
    }

    let response = within(
        "json",
        router
            .get(&client, "web.staging.apps.test", "/")
            .header("accept", "application/json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["env"], "staging");
    assert_eq!(body["route"], "web");
    assert_eq!(body["reason"], "2 tasks: 1 starting, 1 unhealthy");
}

#[tokio::test]
async fn an_unknown_route_answers_404_listing_the_routes_of_its_env() {
    let web = named_backend("web").await;
    let router = TestRouter::start(table(
        1,
        vec![
            route("dev", "web", &[web.address]),
            route("dev", "api", &[web.address]),
            route("staging", "admin", &[web.address]),
        ],
    ))
    .await;
    let client = client();

    let (status, body) = text(
        within(
            "html",
            router.get(&client, "shop.dev.apps.test", "/").send(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for expected in [
        "shop",
        "dev",
        "http://web.dev.apps.test/",
        "http://api.dev.apps.test/",
    ] {
        assert!(body.contains(expected), "{expected} in {body}");
    }
    assert!(!body.contains("admin"), "{body}");

    let response = within(
        "json",
        router
            .get(&client, "shop.dev.apps.test", "/")
            .header("accept", "application/json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["env"], "dev");
    assert_eq!(body["route"], "shop");
    assert_eq!(body["routes"], serde_json::json!(["api", "web"]));

    // `ENV.DOMAIN` is that environment's routes.
    let response = within(
        "env page",
        router
            .get(&client, "dev.apps.test", "/")
            .header("accept", "application/json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: cj_router::StatusPage = response.json().await.unwrap();
    assert_eq!(page.env.as_deref(), Some("dev"));
    assert_eq!(page.routes.len(), 2);
}

/// A backend whose every answer takes `delay`; it says when a request has arrived.
async fn slow_backend(delay: Duration) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<()>) {
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let address = serve_backend(move |_| {
        let _ = arrived.send(());
        async move {
            tokio::time::sleep(delay).await;
            Response::new(Full::new(Bytes::from_static(b"slow answer")))
        }
    })
    .await;
    (address, arrivals)
}

#[tokio::test]
async fn a_table_swap_lets_the_request_in_flight_finish() {
    let (slow, mut arrivals) = slow_backend(Duration::from_millis(800)).await;
    let fresh = named_backend("fresh").await;
    let router = TestRouter::start(table(1, vec![route("dev", "web", &[slow])])).await;
    let client = client();

    let in_flight = tokio::spawn(router.get(&client, "web.dev.apps.test", "/").send());
    within("request at the slow backend", arrivals.recv()).await;
    // The slow backend leaves the table while it is answering.
    router
        .tables
        .send_replace(table(2, vec![route("dev", "web", &[fresh.address])]));
    within("new requests reach the new backend", async {
        loop {
            let response = router
                .get(&client, "web.dev.apps.test", "/")
                .send()
                .await
                .unwrap();
            if response
                .headers()
                .get("x-backend")
                .is_some_and(|name| name == "fresh")
            {
                break;
            }
        }
    })
    .await;
    let (status, body) = text(
        within("request in flight", in_flight)
            .await
            .unwrap()
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "slow answer");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_the_request_in_flight_finish() {
    let (slow, mut arrivals) = slow_backend(Duration::from_millis(500)).await;
    let mut router = TestRouter::start(table(1, vec![route("dev", "web", &[slow])])).await;
    let client = client();

    let in_flight = tokio::spawn(router.get(&client, "web.dev.apps.test", "/").send());
    within("request at the slow backend", arrivals.recv()).await;
    router.begin_stop();
    let address = router.address;
    within("the listener closes", async {
        while tokio::net::TcpStream::connect(address).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let (status, body) = text(
        within("request in flight", in_flight)
            .await
            .unwrap()
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "slow answer");
    router.stopped().await;
}

#[tokio::test]
async fn a_streamed_body_goes_through_whole() {
    // A body larger than what is buffered for retries, and one the backend counts.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let backend = serve_backend(move |request: hyper::Request<hyper::body::Incoming>| {
        let counter = Arc::clone(&counter);
        async move {
            use http_body_util::BodyExt;
            let body = request.into_body().collect().await.unwrap().to_bytes();
            counter.store(body.len(), Ordering::SeqCst);
            Response::new(Full::new(Bytes::from(vec![b'z'; 300_000])))
        }
    })
    .await;
    let router = TestRouter::start(table(1, vec![route("dev", "upload", &[backend])])).await;
    let client = client();
    let response = within(
        "upload",
        router
            .request(&client, Method::PUT, "upload.dev.apps.test", "/")
            .body(vec![b'a'; 200_000])
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        within("download", response.bytes()).await.unwrap().len(),
        300_000
    );
    assert_eq!(received.load(Ordering::SeqCst), 200_000);
}

/// Collects what the log writes, for one test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_request_makes_one_access_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // A test's runtime runs on this thread only, so the router's tasks log here too.
    let _default = tracing::subscriber::set_default(subscriber);

    let web = named_backend("web").await;
    let router = TestRouter::start(table(1, vec![route("dev", "web", &[web.address])])).await;
    let client = client();
    within(
        "proxied",
        router
            .get(&client, "web.dev.apps.test", "/hello?x=1")
            .send(),
    )
    .await
    .unwrap();
    within(
        "unknown",
        router.get(&client, "nope.dev.apps.test", "/").send(),
    )
    .await
    .unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("coding_job::access"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let backend = format!("backend=\"{}\"", web.address);
    for expected in [
        "method=GET",
        "host=\"web.dev.apps.test\"",
        "path=\"/hello\"",
        "status=200",
        backend.as_str(),
        "duration_ms=",
        "bytes=3",
    ] {
        assert!(lines[0].contains(expected), "{expected} in {}", lines[0]);
    }
    for expected in ["status=404", "backend=\"-\""] {
        assert!(lines[1].contains(expected), "{expected} in {}", lines[1]);
    }
}
