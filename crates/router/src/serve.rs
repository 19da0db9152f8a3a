//! The listeners: hyper serving the proxy on accepted connections (plain HTTP/1.1 with
//! upgrades; with HTTPS also TLS, see `tls::listener`), the task that puts each new table in
//! force, and the graceful shutdown: stop accepting, let requests in progress finish within the
//! grace, then end what is left (tunnels included). With HTTPS the plain listener answers ACME
//! challenges itself and, with `--redirect-http`, redirects everything else (`tls::plain`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cj_api::routes::RouteTable;
use hyper::http::uri::Scheme;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::proxy::Proxy;
use crate::tls::Tls;
use crate::tls::plain::PlainSide;

/// A client that has not sent a whole request head after this long is disconnected, so idle
/// or slow connections cannot pile up.
pub(crate) const HEADER_READ_TIME: Duration = Duration::from_secs(30);

/// What the router listens on: plain HTTP, and TLS when HTTPS is on.
pub(crate) struct Listeners {
    pub(crate) plain: TcpListener,
    pub(crate) tls: Option<(TcpListener, Arc<Tls>)>,
}

/// Serves until `shutdown` completes, then for at most `grace` while requests finish.
pub(crate) async fn serve(
    listeners: Listeners,
    proxy: Arc<Proxy>,
    table: watch::Receiver<RouteTable>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let Listeners {
        plain: listener,
        tls,
    } = listeners;
    let plain_side = tls.as_ref().map(|(tls_listener, tls)| PlainSide {
        store: tls.store.clone(),
        redirect_to_port: tls
            .redirect_http
            .then(|| tls_listener.local_addr().map(|address| address.port()).ok())
            .flatten(),
    });
    let tls_http = crate::tls::listener::builder();
    let follower = tokio::spawn(follow_table(Arc::clone(&proxy), table));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIME);
    // `true` asks every connection to finish its request in progress and close.
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (accepted, over_tls) = tokio::select! {
            accepted = listener.accept() => (accepted, false),
            accepted = accept_tls(tls.as_ref().map(|(listener, _)| listener)) => (accepted, true),
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let (true, Some((_, tls))) = (over_tls, &tls) {
            connections.spawn(crate::tls::listener::connection(
                tls_http.clone(),
                Arc::clone(tls),
                stream,
                peer,
                Arc::clone(&proxy),
                stopping.clone(),
            ));
            continue;
        }
        let proxy = Arc::clone(&proxy);
        let plain_side = plain_side.clone();
        let service = service_fn(move |request| {
            let proxy = Arc::clone(&proxy);
            let plain_side = plain_side.clone();
            async move {
                let started = std::time::Instant::now();
                let own = match &plain_side {
                    Some(plain_side) => plain_side.answer(&request).await,
                    None => None,
                };
                let response = match own {
                    Some(response) => response,
                    None => proxy.handle(request, peer, &Scheme::HTTP).await,
                };
                record_request(response.status(), started);
                Ok::<_, Infallible>(response)
            }
        });
        connections.spawn(connection(http.clone(), stream, service, stopping.clone()));
    }
    drop(listener);
    drop(tls);
    stop.send_replace(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            left = connections.len(),
            "shutdown grace over: ending the requests still in progress"
        );
    }
    connections.shutdown().await;
    proxy.stop_tunnels();
    follower.abort();
}

/// `coding_job_router_request_duration_seconds{status}`: recorded through the `metrics` facade,
/// so it shows on `/metrics` where the router runs inside the server process (`dev`).
pub(crate) fn record_request(status: hyper::StatusCode, started: std::time::Instant) {
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!("coding_job_router_request_duration_seconds", "status" => class)
        .record(started.elapsed().as_secs_f64());
}

/// The next connection on the TLS listener; never, without one.
async fn accept_tls(
    listener: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves one connection until it ends, or (once `stopping` says so) finishes it gracefully.
async fn connection<S>(
    http: http1::Builder,
    stream: TcpStream,
    service: S,
    mut stopping: watch::Receiver<bool>,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<crate::proxy::Body>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    // Small answers (a WebSocket frame, a short page) go out without waiting for more.
    let _ = stream.set_nodelay(true);
    let connection = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        // The guard `wait_for` returns is dropped at once: it may not be held across awaits.
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%error, "client connection ended with an error");
    }
}

/// Puts every new table in force until its sender goes away; the last one then stays.
async fn follow_table(proxy: Arc<Proxy>, mut table: watch::Receiver<RouteTable>) {
    while table.changed().await.is_ok() {
        let generation = {
            let table = table.borrow_and_update();
            proxy.apply(&table);
            table.generation
        };
        tracing::debug!(generation, "route table in force");
    }
}
