//! What the router's tests share: backends served by hyper on 127.0.0.1:0, tables, a router
//! on a free port, and a deadline for every wait.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cj_api::routes::{Backend, Route, RouteTable};
use cj_router::{CountsSource, Router, RouterConfig, StatusPage};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub const DOMAIN: &str = "apps.test";
/// The longest any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// `future`, or a panic naming `what` after [`DEADLINE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A client that talks to the router directly (no proxy from the environment).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

pub fn route(env: &str, name: &str, backends: &[SocketAddr]) -> Route {
    Route {
        env: env.to_owned(),
        name: name.to_owned(),
        service: "shop".to_owned(),
        job: format!("shop-{name}"),
        backends: backends
            .iter()
            .enumerate()
            .map(|(index, address)| Backend {
                task: format!("shop/shop-{name}/shop-{name}-{index}"),
                host: "host-1".to_owned(),
                address: address.to_string(),
                version: 1,
                canary: false,
            })
            .collect(),
        unavailable: None,
        path: None,
        timeout_ms: None,
        max_body_bytes: None,
        canary_weight_bp: None,
    }
}

pub fn table(generation: u64, routes: Vec<Route>) -> RouteTable {
    RouteTable { generation, routes }
}

/// Serves `handler` with hyper on a free port of 127.0.0.1.
pub async fn serve_backend<F, Fut, B>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = handler(request);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

/// A backend that answers its name, counts its requests, and shows what it was sent as
/// `x-seen-*` headers.
pub struct Named {
    pub address: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

pub async fn named_backend(name: &'static str) -> Named {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let address = serve_backend(move |request: Request<Incoming>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::builder().header("x-backend", name);
        for seen in [
            "host",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-drop-me",
            "connection",
        ] {
            if let Some(value) = request.headers().get(seen) {
                response = response.header(format!("x-seen-{seen}"), value);
            }
        }
        let response = response.body(Full::new(Bytes::from(name))).unwrap();
        async move { response }
    })
    .await;
    Named { address, hits }
}

/// A port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A backend that reads a request's head and closes the connection without answering; counts
/// the requests it swallowed.
pub async fn closing_backend() -> Named {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                    if head.windows(4).any(|window| window == b"\r\n\r\n") {
                        counter.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    Named { address, hits }
}

/// A router serving on a free port until stopped.
pub struct TestRouter {
    pub address: SocketAddr,
    pub tables: watch::Sender<RouteTable>,
    pub counts: CountsSource,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestRouter {
    pub async fn start(table: RouteTable) -> TestRouter {
        let (tables, receiver) = watch::channel(table);
        let config = RouterConfig::new("127.0.0.1:0".parse().unwrap(), DOMAIN);
        let router = Router::bind(config, receiver).await.unwrap();
        let address = router.local_addr();
        let counts = router.counts_source();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(router.serve(async move {
            let _ = stopped.await;
        }));
        TestRouter {
            address,
            tables,
            counts,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A request to the router for `host`.
    pub fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        client
            .request(method, format!("http://{}{path}", self.address))
            .header("host", host)
    }

    pub fn get(&self, client: &reqwest::Client, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.request(client, reqwest::Method::GET, host, path)
    }

    /// The status page's JSON.
    pub async fn status(&self, client: &reqwest::Client) -> StatusPage {
        within(
            "status page",
            self.get(client, DOMAIN, "/")
                .header("accept", "application/json")
                .send(),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    }

    /// Begins the shutdown; [`TestRouter::stopped`] waits for its end.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn stopped(&mut self) {
        self.begin_stop();
        if let Some(task) = self.task.take() {
            within("router shutdown", task).await.unwrap().unwrap();
        }
    }
}
