//! The answers the router makes itself: the status page (the bare domain), the page of a route
//! that has no backends (503), of a name (or a path of it) that is no route (404), of a host
//! not under the domain (404, plain), of a request no backend answered (502, plain) or not in
//! time (504, plain), of a body over the route's limit (413, plain), and of a name the router
//! has no certificate for (503, over HTTPS). The pages are HTML, or JSON for a client that
//! accepts `application/json`; none carries more than a short message, so nothing internal
//! leaks.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use cj_api::html::escape as html;
use http_body_util::{Either, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::proxy::Body;
use crate::stats::{RouteStatus, StatusPage};
use crate::table::{RouteEntry, Table};

/// Whether the client asked for JSON.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/json"))
}

/// The status page: every route (or those of `env`) with its backends and counters.
pub(crate) fn status(table: &Table, domain: &str, env: Option<&str>, json: bool) -> Response<Body> {
    let page = StatusPage {
        domain: domain.to_owned(),
        generation: table.generation,
        env: env.map(str::to_owned),
        routes: table.status(domain, env),
    };
    if json {
        return respond_json(StatusCode::OK, &page);
    }
    let title = match env {
        Some(env) => format!("{} routes of {}", html(env), html(domain)),
        None => format!("Routes of {}", html(domain)),
    };
    let mut body = String::new();
    if page.routes.is_empty() {
        body.push_str("<p>No routes.</p>");
    } else {
        routes_table(&mut body, &page.routes);
    }
    let _ = write!(
        body,
        "<p class=\"note\">Table generation {}.</p>",
        page.generation
    );
    respond_html(StatusCode::OK, &title, &body)
}

/// `DOMAIN/metrics`: the per-version counts in Prometheus' text format.
pub(crate) fn metrics(table: &Table, domain: &str) -> Response<Body> {
    let text = crate::exposition::render(&table.status(domain, None));
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(text))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// 503: the route exists but no backend takes requests now; says why, in the table's words.
pub(crate) fn unavailable(entry: &RouteEntry, json: bool) -> Response<Body> {
    let route = &entry.route;
    let reason = route
        .unavailable
        .as_deref()
        .unwrap_or("no task takes requests");
    if json {
        let body = json!({
            "error": "unavailable",
            "env": route.env,
            "route": route.name,
            "service": route.service,
            "job": route.job,
            "reason": reason,
        });
        return respond_json(StatusCode::SERVICE_UNAVAILABLE, &body);
    }
    let title = format!(
        "{} in {} is unavailable",
        html(&route.name),
        html(&route.env)
    );
    let body = format!(
        "<p>Route <b>{}</b> of environment <b>{}</b> (job {}/{}) has no backend taking requests \
         now: {}.</p><p>Try again in a moment.</p>",
        html(&route.name),
        html(&route.env),
        html(&route.service),
        html(&route.job),
        html(reason),
    );
    let mut response = respond_html(StatusCode::SERVICE_UNAVAILABLE, &title, &body);
    // A hint to clients that poll a starting environment.
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// 404: `name` is no route of `env`, or (with `path`) none of its routes serves that path;
/// lists the routes `env` has.
pub(crate) fn no_route(
    table: &Table,
    domain: &str,
    env: &str,
    name: &str,
    path: Option<&str>,
    json: bool,
) -> Response<Body> {
    let routes = table.status(domain, Some(env));
    if json {
        let mut names: Vec<&str> = routes.iter().map(|route| route.name.as_str()).collect();
        names.dedup();
        let mut body = json!({
            "error": "no such route",
            "env": env,
            "route": name,
            "routes": names,
        });
        if let Some(path) = path {
            body["path"] = json!(path);
        }
        return respond_json(StatusCode::NOT_FOUND, &body);
    }
    let (title, mut body) = match path {
        None => (
            format!("No route {} in {}", html(name), html(env)),
            format!(
                "<p>Environment <b>{}</b> has no route named <b>{}</b>.</p>",
                html(env),
                html(name)
            ),
        ),
        Some(path) => (
            format!(
                "No route {} in {} for {}",
                html(name),
                html(env),
                html(path)
            ),
            format!(
                "<p>No route <b>{}</b> of environment <b>{}</b> serves the path <b>{}</b>.</p>",
                html(name),
                html(env),
                html(path)
            ),
        ),
    };
    if routes.is_empty() {
        body.push_str("<p>It has no routes at all.</p>");
    } else {
        body.push_str("<p>Its routes:</p>");
        routes_table(&mut body, &routes);
    }
    let _ = write!(
        body,
        "<p class=\"note\"><a href=\"http://{0}/\">Every route of {0}</a></p>",
        html(domain)
    );
    respond_html(StatusCode::NOT_FOUND, &title, &body)
}

/// 404: the host is not under the router's domain.
pub(crate) fn foreign_host(domain: &str) -> Response<Body> {
    respond_text(
        StatusCode::NOT_FOUND,
        format!("404 not found: this router serves NAME.ENV.{domain} and NAME.{domain}\n"),
    )
}

/// 502: no backend of the route answered.
pub(crate) fn bad_gateway(entry: &RouteEntry) -> Response<Body> {
    respond_text(
        StatusCode::BAD_GATEWAY,
        format!(
            "502 bad gateway: no backend of {} in {} answered\n",
            entry.route.name, entry.route.env
        ),
    )
}

/// 504: the backend did not begin to answer within the route's timeout.
pub(crate) fn gateway_timeout(entry: &RouteEntry, timeout: Duration) -> Response<Body> {
    respond_text(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "504 gateway timeout: the backend of {} in {} did not answer within {} ms\n",
            entry.route.name,
            entry.route.env,
            timeout.as_millis()
        ),
    )
}

/// 413: the request's body is larger than the route takes.
pub(crate) fn too_large(entry: &RouteEntry) -> Response<Body> {
    let limit = entry.route.max_body_bytes.unwrap_or_default();
    let mut response = respond_text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "413 content too large: {} in {} takes request bodies of at most {limit} bytes\n",
            entry.route.name, entry.route.env
        ),
    );
    // The rest of the body is not read: the connection cannot serve another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// 400: the request could not be forwarded as it was.
pub(crate) fn bad_request(what: &str) -> Response<Body> {
    respond_text(
        StatusCode::BAD_REQUEST,
        format!("400 bad request: {what}\n"),
    )
}

/// 503 over HTTPS: the router has no certificate for `name` (the connection was completed with
/// a self-signed one), and why.
pub(crate) fn no_certificate(name: &str, reason: &str, json: bool) -> Response<Body> {
    let mut response = if json {
        let body = json!({
            "error": "no certificate",
            "name": name,
            "reason": reason,
        });
        respond_json(StatusCode::SERVICE_UNAVAILABLE, &body)
    } else {
        let title = format!("No certificate for {}", html(name));
        let body = format!(
            "<p>No certificate could be obtained for <b>{}</b>: {}.</p>\
             <p class=\"note\">This connection used a certificate no browser trusts, only to \
             show this page. The router tries again by itself.</p>",
            html(name),
            html(reason)
        );
        respond_html(StatusCode::SERVICE_UNAVAILABLE, &title, &body)
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// A short plain-text answer (challenges, redirects).
pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    respond_text(status, text.to_owned())
}

fn routes_table(out: &mut String, routes: &[RouteStatus]) {
    out.push_str(
        "<table><tr><th>route</th><th>env</th><th>job</th><th>backends</th><th>requests</th>\
         <th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>retries</th><th>failures</th></tr>",
    );
    for route in routes {
        let counts = &route.counts;
        let backends = match &route.unavailable {
            Some(reason) if route.backends == 0 => format!("0 ({})", html(reason)),
            _ => route.backends.to_string(),
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"{url}\">{name}{path}</a></td><td>{env}</td><td>{service}/{job}</td>\
             <td>{backends}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            counts.requests,
            counts.status_2xx,
            counts.status_3xx,
            counts.status_4xx,
            counts.status_5xx,
            counts.retries,
            counts.failures,
            url = html(&route.url),
            name = html(&route.name),
            path = html(route.path.as_deref().unwrap_or("")),
            env = html(&route.env),
            service = html(&route.service),
            job = html(&route.job),
        );
    }
    out.push_str("</table>");
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;\
text-align:left}.note{color:#777;font-size:.9em}";

/// `title` and `body` are HTML already escaped by the caller.
fn respond_html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>{STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>\n"
    );
    respond(status, "text/html; charset=utf-8", page)
}

fn respond_json(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let mut text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    respond(status, "application/json", text)
}

fn respond_text(status: StatusCode, text: String) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", text)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Pages describe this moment's table; a cached one would mislead.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_recognised_among_accepted_types() {
        let mut headers = HeaderMap::new();
        assert!(!wants_json(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, application/json;q=0.9"),
        );
        assert!(wants_json(&headers));
    }
}
