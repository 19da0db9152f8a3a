//! Requests a page of another site makes a browser send. Browsers let any page POST a form or
//! open a WebSocket to any address, this machine's loopback included, and a page cannot be
//! told apart from its user by what it sends, except for two headers it cannot forge:
//!
//! - `Origin`, on every POST and WebSocket handshake a browser makes: a write or an exec whose
//!   origin is not the server it was sent to is refused, whatever credentials came with it.
//!   (A browser session's cookie is SameSite=Strict and its writes carry a CSRF token; this
//!   also covers a loopback `dev`, which needs no credentials at all.) The CLI and scripts send
//!   no `Origin`.
//! - `Host`: a page can point a name of its own at 127.0.0.1 (DNS rebinding) and then reads a
//!   loopback `dev` as its own origin, but its requests still name its host. A server that
//!   asks no token answers only requests sent to `localhost` (or a name under it) or to an IP
//!   address.

use axum::http::header::{HOST, ORIGIN};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Uri};

/// The header a proxy in front of the server may put the host the browser asked for in.
const FORWARDED_HOST: &str = "x-forwarded-host";

/// Why a write (or an exec) is refused as made by another site's page, if it is.
pub fn from_another_site(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(ORIGIN)?;
    let shown = String::from_utf8_lossy(origin.as_bytes());
    let matches = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.parse::<Uri>().ok())
        .is_some_and(|origin| {
            [HOST.as_str(), FORWARDED_HOST]
                .into_iter()
                .filter_map(|name| headers.get(name)?.to_str().ok())
                .any(|host| same_place(&origin, host))
        });
    (!matches).then(|| {
        format!(
            "a page of another site (Origin {}) may not write to this server or run commands in \
             its containers; use the server's own pages, the CLI or the API",
            crate::error::shown(&shown)
        )
    })
}

/// Whether `origin` (`scheme://host[:port]`) is the place a request naming `host`
/// (`host[:port]`) was sent to; a missing port is the scheme's own.
fn same_place(origin: &Uri, host: &str) -> bool {
    let (Some(origin_host), Ok(host)) = (origin.host(), host.parse::<Authority>()) else {
        return false;
    };
    let default_port = match origin.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    origin_host.eq_ignore_ascii_case(host.host())
        && origin.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
}

/// Why a request to a server that asks no token is refused, if it is: it names a host that
/// is neither `localhost` (or under it) nor an IP address. Without a `Host` (not HTTP/1.1 from
/// a browser) there is nothing to check.
pub fn names_a_foreign_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(HOST)?;
    let local = host
        .to_str()
        .ok()
        .and_then(|host| host.parse::<Authority>().ok())
        .is_some_and(|authority| is_local_name(authority.host()));
    (!local).then(|| {
        format!(
            "this server asks no token, so it answers only requests sent to localhost or an IP \
             address, not to {} (a name another site may point here); start it with tokens \
             (`coding-job server`, or `dev` on a non-loopback address) to serve names",
            crate::error::shown(&String::from_utf8_lossy(host.as_bytes()))
        )
    })
}

fn is_local_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    host.parse::<std::net::IpAddr>().is_ok()
        || lower == "localhost"
        || lower.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_write_from_the_servers_own_pages_or_without_an_origin_goes_on() {
        for pairs in [
            vec![("host", "127.0.0.1:7400")],
            vec![
                ("host", "127.0.0.1:7400"),
                ("origin", "http://127.0.0.1:7400"),
            ],
            vec![
                ("host", "CJ.example.com"),
                ("origin", "https://cj.example.com"),
            ],
            vec![
                ("host", "cj.example.com:443"),
                ("origin", "https://cj.example.com"),
            ],
            vec![("host", "[::1]:7400"), ("origin", "http://[::1]:7400")],
            vec![
                ("host", "10.0.0.5:7400"),
                ("x-forwarded-host", "cj.example.com"),
                ("origin", "https://cj.example.com"),
            ],
        ] {
            assert_eq!(from_another_site(&headers(&pairs)), None, "{pairs:?}");
        }
    }

    #[test]
    fn a_write_from_another_sites_page_is_refused() {
        for pairs in [
            vec![
                ("host", "127.0.0.1:7400"),
                ("origin", "https://evil.example"),
            ],
            vec![
                ("host", "127.0.0.1:7400"),
                ("origin", "http://127.0.0.1:8080"),
            ],
            vec![("host", "127.0.0.1:7400"), ("origin", "null")],
            vec![("origin", "http://127.0.0.1:7400")],
            vec![
                ("host", "localhost:7400"),
                ("origin", "http://127.0.0.1:7400"),
            ],
        ] {
            let refusal = from_another_site(&headers(&pairs));
            assert!(
                refusal
                    .as_deref()
                    .is_some_and(|r| r.contains("another site")),
                "{pairs:?}: {refusal:?}"
            );
        }
    }

    #[test]
    fn an_open_server_answers_only_local_names_and_addresses() {
        for host in [
            "127.0.0.1:7400",
            "localhost:7400",
            "LOCALHOST",
            "cj.localhost:7400",
            "[::1]:7400",
            "10.231.0.1",
        ] {
            assert_eq!(
                names_a_foreign_host(&headers(&[("host", host)])),
                None,
                "{host}"
            );
        }
        assert_eq!(names_a_foreign_host(&HeaderMap::new()), None);
        for host in [
            "evil.example:7400",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
        ] {
            let refusal = names_a_foreign_host(&headers(&[("host", host)])).unwrap();
            assert!(refusal.contains(host), "{refusal}");
        }
    }
}
