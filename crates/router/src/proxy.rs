//! One request through the router: the host names a route, the route's backends take turns,
//! a request that failed before any answer is tried on another backend when that is safe, and
//! an upgrade (WebSocket) becomes a byte tunnel between client and backend.
//!
//! Safe to try again: a request whose body is in memory (none, or a small one read first) on a
//! connection that failed to open (it was never sent), or, for idempotent methods, also on a
//! backend that closed the connection before answering. A streamed body can be sent once only.

use std::mem;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cj_api::routes::RouteTable;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use crate::host::{self, Target};
use crate::pages;
use crate::table::{RouteEntry, Table};

/// Bodies both ways: one the router made or buffered, or one streamed through.
pub(crate) type Body = Either<Full<Bytes>, Incoming>;

/// The most tries of one request, whatever the number of backends.
const MAX_TRIES: usize = 3;
/// Request bodies up to this size (with a known length) are read before forwarding, so the
/// request can be tried again on another backend.
const MAX_BUFFERED_BODY: u64 = 64 * 1024;
/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Hop-by-hop headers (RFC 9110 section 7.6.1, plus the non-standard ones still seen): they
/// describe one connection and are never forwarded. `Connection` and `Upgrade` are handled
/// apart, as an upgrade keeps them.
const HOP_BY_HOP: [HeaderName; 7] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The router's state shared by every connection: the table in force and the pooled client.
pub(crate) struct Proxy {
    domain: String,
    access_log: bool,
    /// Swapped whole on a new table; a request holds the `Arc` it started with.
    table: RwLock<Arc<Table>>,
    /// One pool for every table: connections are keyed by backend address, so a new table
    /// keeps those to the backends that stay.
    client: Client<HttpConnector, Body>,
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
        let Some(entry) = table.find(env, name) else {
            // `ENV.DOMAIN` reads as an environment: show its routes rather than a 404.
            if !explicit_env && table.has_env(name) {
                return (pages::status(table, &self.domain, Some(name), json), None);
            }
            return (pages::no_route(table, &self.domain, env, name, json), None);
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
        let mut body = match RequestBody::read(body).await {
            Ok(body) => body,
            Err(error) => {
                tracing::debug!(%error, "client's request body failed");
                return (pages::bad_request("the request body ended early"), None);
            }
        };
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
            let (Some(index), Some(upstream_body)) = (entry.pick(&tried[..attempt]), body.take())
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
            let sent = std::time::Instant::now();
            match self.client.request(upstream).await {
                Ok(response) => {
                    backend.health.answered();
                    backend.version.answered(response.status(), sent.elapsed());
                    let response = self.respond(entry, response, client_upgrade);
                    return (response, Some(backend.authority.clone()));
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

/// A request's body, kept so that the request can be sent more than once when it is small.
enum RequestBody {
    Buffered(Bytes),
    /// `None` once sent.
    Streamed(Option<Incoming>),
}

impl RequestBody {
    async fn read(body: Incoming) -> Result<RequestBody, hyper::Error> {
        if body.is_end_stream() {
            return Ok(RequestBody::Buffered(Bytes::new()));
        }
        match body.size_hint().exact() {
            Some(length) if length <= MAX_BUFFERED_BODY => {
                Ok(RequestBody::Buffered(body.collect().await?.to_bytes()))
            }
            _ => Ok(RequestBody::Streamed(Some(body))),
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, RequestBody::Buffered(_))
    }

    /// The body for one more try, if there can be one.
    fn take(&mut self) -> Option<Body> {
        match self {
            RequestBody::Buffered(bytes) => Some(Either::Left(Full::new(bytes.clone()))),
            RequestBody::Streamed(body) => body.take().map(Either::Right),
        }
    }
}

/// The host the client asked for: the `Host` header, or the authority of an absolute URI.
fn request_host(request: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(host) = request.headers().get(header::HOST) {
        return Some(host.clone());
    }
    let authority = request.uri().authority()?;
    HeaderValue::from_str(authority.as_str()).ok()
}

/// RFC 9110's idempotent methods: repeating one has the effect of sending it once.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether the request asks to switch protocols (`Connection: upgrade` with `Upgrade`).
fn wants_upgrade(request: &Request<Incoming>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(header::UPGRADE)
        && connection_tokens(request.headers()).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Removes the headers that describe one connection, those `Connection` names included.
/// `keep_upgrade` keeps (and only keeps) what an upgrade needs.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            if !(keep_upgrade && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
        headers.remove(header::CONNECTION);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// The headers the backend gets: no hop-by-hop ones, and who asked for what.
fn prepare_request_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    scheme: &Scheme,
    host: Option<&HeaderValue>,
    upgrade: bool,
) {
    strip_hop_by_hop(headers, upgrade);
    // The proxies before this one, then the client this router sees.
    let client = peer.ip().to_canonical().to_string();
    let mut forwarded_for = String::new();
    for earlier in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(earlier) = earlier.to_str() {
            forwarded_for.push_str(earlier);
            forwarded_for.push_str(", ");
        }
    }
    forwarded_for.push_str(&client);
    // Always valid: the earlier values passed `to_str`, and an address is plain ASCII.
    if let Ok(forwarded_for) = HeaderValue::try_from(forwarded_for) {
        headers.insert(X_FORWARDED_FOR, forwarded_for);
    }
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host.clone());
        // The backend sees the name it was asked by (an absolute-form request had no header).
        if !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, host.clone());
        }
    }
    let proto = if *scheme == Scheme::HTTPS {
        "https"
    } else {
        "http"
    };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut map, false);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn an_upgrade_keeps_what_it_needs() {
        let mut map = headers(&[
            ("connection", "Upgrade, keep-alive"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc"),
        ]);
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["sec-websocket-key"], "abc");
    }

    #[test]
    fn forwarded_headers_name_the_client_and_the_host() {
        let mut map = headers(&[("x-forwarded-for", "10.0.0.1"), ("host", "web.dev.x")]);
        let peer: SocketAddr = "[::ffff:192.0.2.7]:5000".parse().unwrap();
        let host = HeaderValue::from_static("web.dev.x");
        prepare_request_headers(&mut map, peer, &Scheme::HTTP, Some(&host), false);
        assert_eq!(map["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(map["x-forwarded-host"], "web.dev.x");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(map["host"], "web.dev.x");
        prepare_request_headers(&mut map, peer, &Scheme::HTTPS, Some(&host), false);
        assert_eq!(map["x-forwarded-proto"], "https");
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
