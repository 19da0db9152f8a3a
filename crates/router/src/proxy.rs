//! One request through the router: the host and the path name a route, the route's backends
//! take turns (on one side of a weighted canary), a request that failed before any answer is
//! tried on another backend when that is safe, and an upgrade (WebSocket) becomes a byte tunnel
//! between client and backend.
//!
//! Safe to try again: a request whose body is in memory (none, or a small one read first) on a
//! connection that failed to open (it was never sent), or, for idempotent methods, also on a
//! backend that closed the connection before answering. A streamed body can be sent once only.
//!
//! A route's `timeout_ms` bounds each try from sending the request to the answer's headers;
//! past it the client gets 504, the try counts as a connection failure of the backend's
//! version, and the request is not tried again (it was sent, and a backend that is slow for
//! one request is not thereby down, so it is not passed over either).

use std::mem;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cj_api::routes::RouteTable;
use http_body_util::{Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use crate::body::{self, BodyError, RequestBody, UpstreamBody};
use crate::canary;
use crate::headers::{
    is_idempotent, prepare_request_headers, request_host, strip_hop_by_hop, wants_upgrade,
};
use crate::host::{self, Target};
use crate::pages;
use crate::table::{RouteEntry, Table};

/// Bodies the client gets: one the router made, or the backend's streamed through.
pub(crate) type Body = Either<Full<Bytes>, Incoming>;

/// The most tries of one request, whatever the number of backends.
const MAX_TRIES: usize = 3;
/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The router's state shared by every connection: the table in force and the pooled client.
pub(crate) struct Proxy {
    domain: String,
    access_log: bool,
    /// Swapped whole on a new table; a request holds the `Arc` it started with.
    table: RwLock<Arc<Table>>,
    /// One pool for every table: connections are keyed by backend address, so a new table
    /// keeps those to the backends that stay.
    client: Client<HttpConnector, UpstreamBody>,
    /// `true` ends the WebSocket tunnels (after the shutdown grace).
    stop_tunnels: watch::Sender<bool>,
}

impl Proxy {
    pub(crate) fn new(domain: String, access_log: bool, connect_timeout: Duration) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Proxy {
            domain,
            access_log,
            table: RwLock::new(Arc::new(Table::default())),
            client,
            stop_tunnels: watch::channel(false).0,
        }
    }

    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    pub(crate) fn table(&self) -> Arc<Table> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Builds `table` and puts it in force. One caller at a time (the table follower), so no
    /// newer table is overwritten by an older one.
    pub(crate) fn apply(&self, table: &RouteTable) {
        let next = Arc::new(Table::build(table, &self.table()));
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// Ends the WebSocket tunnels still open.
    pub(crate) fn stop_tunnels(&self) {
        self.stop_tunnels.send_replace(true);
    }

    /// Answers one request from a client at `peer` that came in over `scheme` (`https` for
    /// TLS), which the backend is told in `X-Forwarded-Proto`.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &Scheme,
    ) -> Response<Body> {
        let started = Instant::now();
        // Cheap clones (shared bytes) that outlive the request moving on to a backend.
        let host = request_host(&request);
        let logged = self
            .access_log
            .then(|| (request.method().clone(), request.uri().clone()));
        let table = self.table();
        let (response, backend) = self
            .route(&table, request, peer, scheme, host.as_ref())
            .await;
        if let Some((method, uri)) = logged {
            access_log(
                &method,
                host.as_ref(),
                &uri,
                &response,
                backend.as_ref(),
                started,
            );
        }
        response
    }

    async fn route(
        &self,
        table: &Table,
        request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &Scheme,
        host: Option<&HeaderValue>,
    ) -> (Response<Body>, Option<Authority>) {
        let json = pages::wants_json(request.headers());
        let host_name = host::lowercase(host.and_then(|host| host.to_str().ok()).unwrap_or(""));
        let (env, name, explicit_env) = match host::target(&host_name, &self.domain) {
            Target::Foreign => return (pages::foreign_host(&self.domain), None),
            Target::Status if request.uri().path() == "/metrics" => {
                return (pages::metrics(table, &self.domain), None);
            }
            Target::Status => return (pages::status(table, &self.domain, None, json), None),
            Target::Route {
                env,
                name,
                explicit_env,
            } => (env, name, explicit_env),
        };
        let Some(entry) = table.find(env, name, request.uri().path()) else {
            if table.has_name(env, name) {
                let path = request.uri().path();
                let page = pages::no_route(table, &self.domain, env, name, Some(path), json);
                return (page, None);
            }
            // `ENV.DOMAIN` reads as an environment: show its routes rather than a 404.
            if !explicit_env && table.has_env(name) {
                return (pages::status(table, &self.domain, Some(name), json), None);
            }
            return (
                pages::no_route(table, &self.domain, env, name, None, json),
                None,
            );
        };
        let (response, backend) = if entry.backends.is_empty() {
            (pages::unavailable(entry, json), None)
        } else {
            self.forward(entry, request, peer, scheme, host).await
        };
        entry.counters.answered(response.status());
        (response, backend)
    }

    /// Sends `request` to the route's backends in turn until one answers or retrying is no
    /// longer safe; answers 502 when none did.
    async fn forward(
        &self,
        entry: &RouteEntry,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &Scheme,
        host: Option<&HeaderValue>,
    ) -> (Response<Body>, Option<Authority>) {
        let upgrade = wants_upgrade(&request);
        // Taken before the request is split: the client's side of a tunnel, should the backend
        // agree to the upgrade.
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let limit = entry.route.max_body_bytes;
        let mut body = match RequestBody::read(body, limit).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => return (pages::too_large(entry), None),
            Err(BodyError::Client(error)) => {
                tracing::debug!(%error, "client's request body failed");
                return (pages::bad_request("the request body ended early"), None);
            }
        };
        let side = entry.side(canary::asked(&parts.headers));
        prepare_request_headers(&mut parts.headers, peer, scheme, host, upgrade);
        if body.replayable() {
            // The body is here already: no backend needs to ask for it.
            parts.headers.remove(header::EXPECT);
        }
        let idempotent = is_idempotent(&parts.method);
        let tries = entry.backends.len().min(MAX_TRIES);
        let mut tried = [usize::MAX; MAX_TRIES];
        let mut attempt = 0;
        loop {
            let (Some(index), Some(upstream_body)) =
                (entry.pick(&tried[..attempt], side), body.take())
            else {
                break;
            };
            tried[attempt] = index;
            let backend = &entry.backends[index];
            let uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(backend.authority.clone())
                .path_and_query(path.clone())
                .build();
            let Ok(uri) = uri else {
                return (
                    pages::bad_request("the request target cannot be forwarded"),
                    None,
                );
            };
            let last = attempt + 1 >= tries || !body.replayable();
            let mut upstream = Request::new(upstream_body);
            *upstream.method_mut() = parts.method.clone();
            *upstream.uri_mut() = uri;
            // The backend pool speaks HTTP/1.1 whatever the client spoke.
            *upstream.version_mut() = Version::HTTP_11;
            *upstream.headers_mut() = if last {
                mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            let sent = Instant::now();
            let answer = self.client.request(upstream);
            let answer = match entry.timeout {
                None => answer.await,
                Some(timeout) => match tokio::time::timeout(timeout, answer).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        backend.version.connection_failed();
                        entry.counters.failed();
                        let page = pages::gateway_timeout(entry, timeout);
                        return (page, Some(backend.authority.clone()));
                    }
                },
            };
            match answer {
                Ok(response) => {
                    backend.health.answered();
                    backend.version.answered(response.status(), sent.elapsed());
                    let response = self.respond(entry, response, client_upgrade);
                    return (response, Some(backend.authority.clone()));
                }
                // The client's fault, not the backend's: nothing is counted against it.
                Err(error) if body::went_over_limit(&error) => {
                    return (pages::too_large(entry), Some(backend.authority.clone()));
                }
                Err(error) => {
                    backend.health.failed();
                    backend.version.connection_failed();
                    // Only a connection that never opened proves the request was not sent.
                    let unsent = error.is_connect();
                    tracing::debug!(
                        env = %entry.route.env, route = %entry.route.name,
                        backend = %backend.address, error = %error_chain(&error),
                        "backend failed before answering"
                    );
                    if last || !(unsent || idempotent) {
                        break;
                    }
                    attempt += 1;
                    entry.counters.retried();
                }
            }
        }
        entry.counters.failed();
        (pages::bad_gateway(entry), None)
    }

    /// The backend's answer as the client gets it; a 101 also starts the tunnel.
    fn respond(
        &self,
        entry: &RouteEntry,
        mut response: Response<Incoming>,
        client_upgrade: Option<OnUpgrade>,
    ) -> Response<Body> {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                // The upgrade headers were not forwarded, so this 101 is the backend's error.
                return pages::bad_gateway(entry);
            };
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tunnel(
                client_upgrade,
                backend_upgrade,
                self.stop_tunnels.subscribe(),
            );
            strip_hop_by_hop(response.headers_mut(), true);
        } else {
            strip_hop_by_hop(response.headers_mut(), false);
        }
        response.map(Either::Right)
    }
}

/// Copies bytes both ways between the client's and the backend's upgraded connections until
/// either side closes, or the router's shutdown grace is over.
fn tunnel(client: OnUpgrade, backend: OnUpgrade, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
                if let Err(error) = copied {
                    tracing::debug!(%error, "tunnel ended with an error");
                }
            }
            _ = stop.wait_for(|stop| *stop) => {}
        }
    });
}

/// An error with its causes, for the debug log (the client never sees it).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn access_log(
    method: &Method,
    host: Option<&HeaderValue>,
    uri: &Uri,
    response: &Response<Body>,
    backend: Option<&Authority>,
    started: Instant,
) {
    let host = host.and_then(|host| host.to_str().ok()).unwrap_or("-");
    let backend = backend.map_or("-", Authority::as_str);
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let duration_ms = (duration_ms * 10.0).round() / 10.0;
    match response.body().size_hint().exact() {
        Some(bytes) => tracing::info!(
            target: "coding_job::access",
            %method, host, path = uri.path(), status, backend, duration_ms, bytes,
        ),
        None => tracing::info!(
            target: "coding_job::access",
            %method, host, path = uri.path(), status, backend, duration_ms,
        ),
    }
}
