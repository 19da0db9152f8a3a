//! The headers of a forwarded request and of its answer: what describes one connection
//! (hop-by-hop) goes, and the backend learns who asked for what, as nginx and Traefik tell it:
//! `X-Forwarded-For` gets the client's address appended to what earlier proxies wrote,
//! `X-Forwarded-Host` and `X-Forwarded-Proto` are set to the host and scheme this router was
//! asked by, and `X-Real-IP` to the client's address as this router sees it (a value the client
//! sent is replaced, so a backend may believe it when this router is the edge).

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::Scheme;
use hyper::{Method, Request, Version};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

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

/// The host the client asked for: the `Host` header, or the authority of an absolute URI.
pub(crate) fn request_host(request: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(host) = request.headers().get(header::HOST) {
        return Some(host.clone());
    }
    let authority = request.uri().authority()?;
    HeaderValue::from_str(authority.as_str()).ok()
}

/// RFC 9110's idempotent methods: repeating one has the effect of sending it once.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether the request asks to switch protocols (`Connection: upgrade` with `Upgrade`).
pub(crate) fn wants_upgrade(request: &Request<Incoming>) -> bool {
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
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
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
pub(crate) fn prepare_request_headers(
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
    // Whatever the client sent as its own address is replaced: this is the one the router saw.
    if let Ok(client) = HeaderValue::try_from(client) {
        headers.insert(X_REAL_IP, client);
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
        assert_eq!(map["x-real-ip"], "192.0.2.7");
        prepare_request_headers(&mut map, peer, &Scheme::HTTPS, Some(&host), false);
        assert_eq!(map["x-forwarded-proto"], "https");

        // A client's own claims are appended to, or replaced.
        let mut map = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        prepare_request_headers(&mut map, peer, &Scheme::HTTP, None, false);
        assert_eq!(map["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 192.0.2.7");
        assert_eq!(map["x-real-ip"], "192.0.2.7");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert!(!map.contains_key("x-forwarded-host"));
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
