//! A follower's answer to every request: the same request, sent on to the leader, and the
//! leader's answer sent back, upgrades included (agent links, `exec`, streams). So every server
//! of a cluster serves the API, the web UI, the event stream and agent links, while only the
//! leader holds the state they need (what agents report, the rollouts it runs): forwarding, as
//! Nomad's servers forward to theirs, rather than a second copy of that state.
//!
//! Each connection a follower accepts gets one connection to the leader, used for its requests
//! in turn (HTTP/1 answers one at a time). The caller's address reaches the leader in
//! [`FORWARDED_FOR`], believed only with the cluster's relay secret beside it
//! ([`RELAY_SECRET`]), since an agent that gives no `--advertise` is reached where its link
//! came from.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Uri, header};
use axum::response::IntoResponse;
use cj_net::TlsClient;
use cj_store::Store;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

use crate::cluster::forwarding::{FORWARDED_FOR, RELAY_SECRET, forwarded_for};
use crate::cluster::leadership::{LeaderRecord, current_leader};
use crate::error::Failure;

/// What a follower forwards with: where to read who leads, the trust for the leader's
/// certificate, and the secret.
pub struct Relay {
    pub store: Arc<dyn Store>,
    /// This server's name: a leader key naming it is a term just ended, not one to forward to.
    pub own_name: String,
    pub tls: TlsClient,
    pub secret: String,
}

impl Relay {
    /// Serves one accepted connection from `peer` by forwarding its requests to the leader
    /// (every request is answered 503 while nobody leads, or the store cannot say who does).
    pub async fn serve<I>(
        self: Arc<Self>,
        io: I,
        peer: SocketAddr,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let upstream = match current_leader(&*self.store) {
            Ok(Some(leader)) if leader.name != self.own_name => self.connect(&leader).await,
            Ok(_) => Err(Failure::Refused {
                status: 503,
                message: "no server leads the cluster now (an election is under way); \
                          try again in a few seconds"
                    .into(),
            }),
            Err(error) => Err(Failure::Refused {
                status: 503,
                message: format!("the store is unavailable: {error}"),
            }),
        };
        // The service is cloned for each request: keep what it holds cheap to clone.
        let upstream = upstream
            .map(|sender| Arc::new(Mutex::new(sender)))
            .map_err(|failure| (failure.status().as_u16(), failure.to_string()));
        let relay = self.clone();
        let service = tower::service_fn(move |request: Request<Incoming>| {
            let (relay, upstream) = (relay.clone(), upstream.clone());
            async move {
                let answer = match upstream {
                    Ok(sender) => relay.forward(&sender, request, peer).await,
                    Err((status, message)) => Failure::Refused { status, message }.into_response(),
                };
                Ok::<_, std::convert::Infallible>(answer)
            }
        });
        super::connection::serve_one(io, service, stopping).await;
    }

    async fn connect(&self, leader: &LeaderRecord) -> Result<SendRequest<Incoming>, Failure> {
        let unreachable = |why: String| Failure::Refused {
            status: 503,
            message: format!(
                "the leader ({} at {}) cannot be reached: {why}",
                leader.name, leader.address
            ),
        };
        let url =
            reqwest::Url::parse(&leader.address).map_err(|error| unreachable(error.to_string()))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let tls = (url.scheme() == "https").then_some(&self.tls);
        let io = cj_net::dial(&host, port, tls)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "a connection to the leader ended");
            }
        });
        Ok(sender)
    }

    async fn forward(
        &self,
        sender: &Mutex<SendRequest<Incoming>>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        // A request one server already forwarded is never forwarded again: two servers that
        // each believe the other leads must not pass it back and forth.
        if forwarded_for(request.headers(), &self.secret).is_some() {
            return Failure::Refused {
                status: 503,
                message: "the server this request was forwarded to does not lead; \
                          try again in a few seconds"
                    .into(),
            }
            .into_response();
        }
        let upgrade_asked = request.headers().contains_key(header::UPGRADE);
        let downstream_upgrade = upgrade_asked.then(|| hyper::upgrade::on(&mut request));
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        *request.uri_mut() = path.parse::<Uri>().unwrap_or_default();
        let headers = request.headers_mut();
        headers.remove(FORWARDED_FOR);
        headers.remove(RELAY_SECRET);
        if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
            headers.insert(FORWARDED_FOR, value);
        }
        if let Ok(value) = HeaderValue::from_str(&self.secret) {
            headers.insert(RELAY_SECRET, value);
        }
        let answer = {
            let mut sender = sender.lock().await;
            if sender.ready().await.is_err() {
                return leader_gone("the connection to the leader closed");
            }
            sender.send_request(request).await
        };
        let mut response = match answer {
            Ok(response) => response,
            Err(error) => return leader_gone(&error.to_string()),
        };
        if response.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS
            && let Some(downstream) = downstream_upgrade
        {
            let upstream = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (Ok(downstream), Ok(upstream)) = (downstream.await, upstream.await) else {
                    return;
                };
                let (mut down, mut up) = (TokioIo::new(downstream), TokioIo::new(upstream));
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
        response.map(Body::new)
    }
}

fn leader_gone(why: &str) -> Response<Body> {
    Failure::Refused {
        status: 502,
        message: format!("the leader stopped answering: {why}; try again"),
    }
    .into_response()
}
