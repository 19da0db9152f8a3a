//! One HTTP connection served with hyper's limits: the head size and header count, the time
//! to send a head, upgrades (agent links, `exec`), and a graceful stop when asked. The
//! listener (`serve`) and a follower's relay (`relay`) serve their connections with it.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// hyper's read buffer, which must hold a whole request head (its default is about 400 KiB).
pub(crate) const MAX_HEAD_BYTES: usize = 512 * 1024;
/// hyper answers 431 itself past this many headers (its default, 100, would leave `edge` no
/// room to answer JSON for 101).
pub(crate) const MAX_HEADER_LINES: usize = 256;
/// A client that has not sent a whole request head after this long is disconnected.
pub(crate) const HEADER_READ_TIME: Duration = Duration::from_secs(30);

/// Serves one connection with `service` (hyper's limits, upgrades, graceful stop), for
/// answers that are not the API router's (a follower's relay).
pub(crate) async fn serve_one<I, S>(io: I, service: S, stopping: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    connection(&builder(), io, TowerToHyperService::new(service), stopping).await;
}

/// hyper's server with its limits set. HTTP/1 only: the router's HTTP/2 turns hyper's `http2`
/// feature on in this process too, and `auto` would then also serve HTTP/2 by its preface.
pub(crate) fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADER_LINES)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIME);
    builder
}

/// Serves one connection until it ends, or (once `stopping` says so) finishes it gracefully.
pub(crate) async fn connection<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<S>,
    mut stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    // With upgrades: agents hold their link as a WebSocket.
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(error, "connection ended with an error");
    }
}
