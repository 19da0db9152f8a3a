//! What the plain HTTP listener answers itself when HTTPS is on: an ACME HTTP-01 challenge
//! (`/.well-known/acme-challenge/TOKEN`), from the shared store, so whichever router the ACME
//! server reaches answers for the one that ordered; and with `--redirect-http`, a 308 to the
//! same host and path over HTTPS for every other request.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::store::CertificateStore;
use crate::pages;
use crate::proxy::Body;

const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The plain listener's part in HTTPS.
#[derive(Clone)]
pub(crate) struct PlainSide {
    /// Where challenge answers are kept; `None` without ACME (the request goes on to a route).
    pub(crate) store: Option<Arc<dyn CertificateStore>>,
    /// With `--redirect-http`: the port HTTPS listens on.
    pub(crate) redirect_to_port: Option<u16>,
}

impl PlainSide {
    /// The router's own answer to `request`, or `None` to send it on to its route.
    pub(crate) async fn answer(&self, request: &Request<Incoming>) -> Option<Response<Body>> {
        let path = request.uri().path();
        if let (Some(store), Some(token)) = (&self.store, path.strip_prefix(CHALLENGE_PATH)) {
            return Some(challenge(store.as_ref(), request.method(), token).await);
        }
        let port = self.redirect_to_port?;
        Some(redirect(request, port))
    }
}

async fn challenge(store: &dyn CertificateStore, method: &Method, token: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return pages::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "challenges are read with GET\n",
        );
    }
    if !cj_api::certificates::valid_token(token) {
        return pages::plain(StatusCode::NOT_FOUND, "no such challenge\n");
    }
    match store.challenge(token).await {
        Ok(Some(key_authorization)) => pages::plain(StatusCode::OK, &key_authorization),
        Ok(None) => pages::plain(StatusCode::NOT_FOUND, "no such challenge\n"),
        Err(error) => {
            tracing::warn!(%error, "cannot read a challenge's answer");
            pages::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the challenge store cannot be reached\n",
            )
        }
    }
}

/// 308 to `https://HOST[:PORT]/PATH?QUERY`: the same method and body, over TLS.
fn redirect(request: &Request<Incoming>, port: u16) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
        .unwrap_or("");
    let name = host_without_port(host);
    if name.is_empty() {
        return pages::plain(StatusCode::BAD_REQUEST, "the request names no host\n");
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let location = if port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{port}{path}")
    };
    let Ok(location) = HeaderValue::try_from(location) else {
        return pages::plain(
            StatusCode::BAD_REQUEST,
            "the request names no usable host\n",
        );
    };
    let mut response = pages::plain(StatusCode::PERMANENT_REDIRECT, "use https\n");
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// `host` without a `:PORT` (an IPv6 literal keeps its brackets).
fn host_without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|byte| byte.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_cut_from_hosts() {
        for (host, name) in [
            ("www.cj.example.com", "www.cj.example.com"),
            ("www.cj.example.com:8080", "www.cj.example.com"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
        ] {
            assert_eq!(host_without_port(host), name, "{host}");
        }
    }
}
