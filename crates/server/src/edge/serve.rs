//! The HTTP listener: hyper serving the API router on accepted connections, with hyper's own
//! limits set, and a graceful shutdown that stops accepting, lets answers in progress finish,
//! and gives up after [`SHUTDOWN_GRACE`] on those that never end by themselves (`logs -f`).
//!
//! What stays hyper's: a request URI longer than 64 KiB (hyper's fixed limit) gets hyper's
//! bodiless 414, and a request head larger than [`MAX_HEAD_BYTES`](super::connection::MAX_HEAD_BYTES) or with more than
//! [`MAX_HEADER_LINES`](super::connection::MAX_HEADER_LINES) headers its bodiless 431; hyper closes the connection after both.
//! Everything within those bounds reaches `edge::guard`, which answers JSON at much smaller
//! limits (8 KiB URIs, 32 KiB or 100 headers), so the bounds here only need to be above those.
//!
//! With TLS (`tls`), each accepted connection's handshake runs in that connection's own task,
//! within [`HEADER_READ_TIME`], so a client that never finishes one holds up nobody else.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use super::connection::{HEADER_READ_TIME, builder, connection};
use super::relay::Relay;
use std::sync::Arc;

/// How long answers in progress may go on after shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` completes, then for at
/// most [`SHUTDOWN_GRACE`] while answers in progress finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let serving = Serving::Router {
        router,
        runtime: tokio::runtime::Handle::current(),
    };
    let (_keep, serving) = watch::channel(serving);
    serve_switching(listener, tls, serving, shutdown).await
}

/// How the listener answers the connections it accepts.
#[derive(Clone)]
pub enum Serving {
    /// With this router, its connections served on `runtime` (a leader's term runs on a
    /// runtime of its own, so ending the term ends everything it started).
    Router {
        router: Router,
        runtime: tokio::runtime::Handle,
    },
    /// Forwarded to the leader the store names (a follower).
    Relay(Arc<Relay>),
}

/// Serves each accepted connection as `serving` says at the time it is accepted, until
/// `shutdown` completes, then for at most [`SHUTDOWN_GRACE`] while answers in progress finish.
pub async fn serve_switching(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    serving: watch::Receiver<Serving>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = builder();
    // Every connection holds a receiver: `true` asks it to finish, and the sender sees all
    // receivers gone once every connection has ended.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let serving = serving.borrow().clone();
        let (builder, stopping, tls) = (builder.clone(), stopping.clone(), tls.clone());
        let runtime = match &serving {
            Serving::Router { runtime, .. } => runtime.clone(),
            Serving::Relay(_) => tokio::runtime::Handle::current(),
        };
        runtime.spawn(async move {
            let Some(tls) = tls else {
                return serve_accepted(&builder, stream, peer, serving, stopping).await;
            };
            match tokio::time::timeout(HEADER_READ_TIME, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_accepted(&builder, stream, peer, serving, stopping).await,
                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, stop.closed())
        .await
        .is_err()
    {
        tracing::info!("stopped waiting for answers still streaming (logs -f, progress)");
    }
    Ok(())
}

async fn serve_accepted<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    peer: SocketAddr,
    serving: Serving,
    stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match serving {
        Serving::Router { router, .. } => {
            // Handlers that want the caller's address (an agent's, for `hosts`) find it as
            // axum's `ConnectInfo`, added to each connection's requests.
            let Ok(service) = router
                .into_make_service_with_connect_info::<SocketAddr>()
                .call(peer)
                .await;
            connection(builder, io, TowerToHyperService::new(service), stopping).await;
        }
        Serving::Relay(relay) => relay.serve(io, peer, stopping).await,
    }
}

/// Serves `router` on one connection the caller made, as if `peer` had connected, until the
/// connection ends: the same HTTP as [`serve`], without a listener. Tests of the control plane
/// serve in-memory streams with it, so a server and its agents run in one process on a paused
/// clock.
pub async fn serve_connection<I>(io: I, peer: SocketAddr, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(service) = router
        .into_make_service_with_connect_info::<SocketAddr>()
        .call(peer)
        .await;
    // Never asked to stop: the connection ends when its caller closes it.
    let (_stop, stopping) = watch::channel(false);
    connection(&builder(), io, TowerToHyperService::new(service), stopping).await;
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Instant;

    use axum::body::{Body, Bytes};
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Serves a small router behind the edge; returns its address and the shutdown trigger.
    async fn start() -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let endless = || async {
            let ticks = futures_util::stream::repeat_with(|| Ok::<_, Infallible>(Bytes::from("x")));
            let ticks = tokio_stream::StreamExt::throttle(ticks, Duration::from_millis(50));
            Body::from_stream(ticks)
        };
        let router = crate::edge::guard::wrap(
            Router::new()
                .route(
                    "/echo",
                    post(|body: Bytes| async move { body.len().to_string() }),
                )
                .route("/endless", get(endless)),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            serve(listener, router, None, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (address, stop, server)
    }

    /// Writes `head` then `body` (the whole of it, as a client that does not wait would), and
    /// returns the status line and the body of the answer.
    async fn exchange(address: std::net::SocketAddr, head: &str, body: &[u8]) -> (String, String) {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        (
            head.lines().next().unwrap_or("").to_owned(),
            body.to_owned(),
        )
    }

    #[tokio::test]
    async fn a_client_sending_a_whole_oversized_body_reads_the_json_refusal() {
        let (address, _stop, _server) = start().await;
        let body = vec![b'x'; 10 * 1024 * 1024];
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (status, answer) = exchange(address, &head, &body).await;
        assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
        assert!(
            answer.contains("\"code\":\"payload_too_large\""),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn hyper_lets_through_what_the_edge_answers_with_json() {
        let (address, _stop, _server) = start().await;
        let uri = format!("/echo?{}", "a".repeat(20 * 1024));
        let head = format!("POST {uri} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let (status, answer) = exchange(address, &head, b"").await;
        assert_eq!(status, "HTTP/1.1 414 URI Too Long");
        assert!(answer.contains("uri_too_long"), "{answer}");

        let headers: String = (0..150).map(|n| format!("x-h{n}: 1\r\n")).collect();
        let head =
            format!("POST /echo HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n");
        let (status, answer) = exchange(address, &head, b"").await;
        assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
        assert!(answer.contains("headers_too_large"), "{answer}");

        // Beyond hyper's own bound its bodiless answer is all there is.
        let uri = format!("/echo?{}", "a".repeat(70 * 1024));
        let head = format!("POST {uri} HTTP/1.1\r\nHost: test\r\n\r\n");
        let (status, _) = exchange(address, &head, b"").await;
        assert_eq!(status, "HTTP/1.1 414 URI Too Long");
    }

    #[tokio::test]
    async fn shutdown_does_not_wait_forever_for_an_endless_answer() {
        let (address, stop, server) = start().await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0; 64];
        let read = stream.read(&mut first).await.unwrap();
        assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));
        let began = Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(SHUTDOWN_GRACE * 2, server)
            .await
            .expect("serve returned")
            .unwrap();
        assert!(began.elapsed() >= SHUTDOWN_GRACE - Duration::from_millis(100));
        // New connections are no longer accepted.
        assert!(TcpStream::connect(address).await.is_err());
    }
}
