//! One TLS connection: the handshake (in the connection's own task, within a deadline, so a
//! client that never finishes one holds up nobody), then HTTP/1.1 or HTTP/2 as ALPN chose,
//! through the proxy, told the request came over HTTPS. A connection that got the fallback
//! certificate is answered the page saying why its name has none.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::http::uri::Scheme;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Tls;
use crate::pages;
use crate::proxy::Proxy;
use crate::serve::{HEADER_READ_TIME, record_request};

/// A client that has not finished its handshake after this long is disconnected.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// hyper's server for TLS connections: HTTP/1.1 or HTTP/2, whichever ALPN agreed on.
pub(crate) fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIME);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves one accepted TLS connection until it ends, or (once `stopping` says so) finishes it
/// gracefully.
pub(crate) async fn connection(
    http: auto::Builder<TokioExecutor>,
    tls: Arc<Tls>,
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIME, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, %peer, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let server_name = stream.get_ref().1.server_name().map(str::to_owned);
    let missing = tls.certificates.missing(server_name.as_deref());
    let service = service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        let missing = missing.clone();
        let server_name = server_name.clone();
        async move {
            let started = Instant::now();
            let response = match missing {
                Some(reason) => pages::no_certificate(
                    server_name.as_deref().unwrap_or("this address"),
                    &reason,
                    pages::wants_json(request.headers()),
                ),
                None => proxy.handle(request, peer, &Scheme::HTTPS).await,
            };
            record_request(response.status(), started);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
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
        tracing::debug!(%error, "TLS client connection ended with an error");
    }
}
