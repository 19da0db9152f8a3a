//! The API's edge: the limits every request meets before a handler sees it, and JSON for every
//! answer made without a handler (an unknown route, a wrong method, a limit), so a client always
//! gets `{"error", "code"}` with a 4xx status, never a plain-text or empty body.
//!
//! Order of checks in [`guard`]: the URI and the headers ([`MAX_URI_BYTES`], [`MAX_HEADERS`],
//! [`MAX_HEADER_BYTES`]), then the body, read whole up to [`MAX_BODY_BYTES`] (every request
//! body of this API is one JSON document). A refused request's body is read and thrown away (up
//! to [`DRAIN_BYTES`]) before the answer: a client still sending would otherwise see the
//! connection reset instead of the answer. Larger limits still are hyper's (see `serve`). The
//! one exception is an agent's snapshot upload ([`is_streamed`]), passed on as it arrives.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::error::{Failure, shown};

/// The largest request body: config files are capped at 1 MiB, and JSON escaping can make a
/// file up to several times longer in a push or diff body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The longest request URI (path and query); TARGETs and ids are short.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names, values and separators) of one request.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most header lines of one request.
pub const MAX_HEADERS: usize = 100;
/// How much of a refused body is read and discarded so the client can read the answer; a client
/// sending more sees the connection closed.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// How long a refused body is drained, at most.
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// How long a request body may take to arrive (slow senders must not hold a request forever).
const BODY_TIME: Duration = Duration::from_secs(60);

/// `routes` behind the edge: JSON answers for unknown routes and wrong methods, and [`guard`]
/// in front of everything (the fallbacks included).
#[cfg(test)]
pub fn wrap<S>(routes: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    wrap_with(routes, |routes| routes)
}

/// As [`wrap`], with `inner` layers (authentication) between the edge's checks and the routes,
/// the fallbacks included: they see only requests within the limits, bodies already read.
pub fn wrap_with<S>(routes: Router<S>, inner: impl FnOnce(Router<S>) -> Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let routes = routes
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed);
    inner(routes)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(guard))
}

/// The middleware: limits, a buffered body, and JSON for bodiless error answers.
async fn guard(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let streamed = is_streamed(&parts.method, parts.uri.path());
    let failure = head_failure(&parts.uri, &parts.headers).or_else(|| {
        content_length(&parts.headers)
            .filter(|_| !streamed)
            .filter(|length| *length > MAX_BODY_BYTES as u64)
            .map(|_| too_large())
    });
    if failure.is_none() && streamed {
        let response = next.run(Request::from_parts(parts, body)).await;
        return json_errors(response);
    }
    let mut chunks = body.into_data_stream();
    if let Some(failure) = failure {
        // A client that asked `Expect: 100-continue` has sent nothing yet: reading would
        // invite it to, so it gets the answer at once.
        let sending = !expects_continue(&parts.headers);
        return refuse(chunks, sending, failure).await;
    }
    let read = tokio::time::timeout(BODY_TIME, read_body(&mut chunks)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(failure)) => return refuse(chunks, true, failure).await,
        Err(_) => {
            let failure = Failure::Refused {
                status: axum::http::StatusCode::REQUEST_TIMEOUT.as_u16(),
                message: format!(
                    "the request body did not arrive within {} s",
                    BODY_TIME.as_secs()
                ),
            };
            return closing(failure.into_response());
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    json_errors(response)
}

/// Requests whose body is data of any size, handed to the handler as it arrives: an agent's
/// volume snapshot (`PUT /v1/agent/snapshots/ID`). Authentication still comes first.
fn is_streamed(method: &Method, path: &str) -> bool {
    method == Method::PUT && path.starts_with("/v1/agent/snapshots/")
}

/// What is wrong with the request line and headers, if anything.
fn head_failure(uri: &Uri, headers: &HeaderMap) -> Option<Failure> {
    let uri_bytes = uri.scheme_str().map_or(0, |scheme| scheme.len() + 3)
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len())
        + uri.path_and_query().map_or(0, |path| path.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(Failure::UriTooLong(format!(
            "the request URI is {uri_bytes} bytes long; at most {MAX_URI_BYTES} are accepted"
        )));
    }
    if headers.len() > MAX_HEADERS {
        return Some(Failure::HeadersTooLarge(format!(
            "the request has {} headers; at most {MAX_HEADERS} are accepted",
            headers.len()
        )));
    }
    // As sent: "NAME: VALUE\r\n".
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(Failure::HeadersTooLarge(format!(
            "the request headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
        )));
    }
    None
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large() -> Failure {
    Failure::PayloadTooLarge(format!(
        "the request body is larger than {MAX_BODY_BYTES} bytes"
    ))
}

/// The whole body, or a refusal once it grows past [`MAX_BODY_BYTES`] (the rest unread).
async fn read_body(chunks: &mut BodyDataStream) -> Result<Bytes, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|error| {
            Failure::BadRequest(format!("failed to read the request body: {error}"))
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Answers `failure`; when the client is `sending` the body, after reading what is left of it
/// (within bounds), so that the client can read the answer.
async fn refuse(mut chunks: BodyDataStream, sending: bool, failure: Failure) -> Response {
    if sending {
        let drain = async {
            let mut drained = 0;
            while let Some(Ok(chunk)) = chunks.next().await {
                drained += chunk.len();
                if drained > DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
    closing(failure.into_response())
}

/// The connection is closed after this answer: what is left of the request is not read.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// An error answer made without a JSON body (by the router or a layer) gets one, with its
/// status kept.
fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let replacement = Failure::for_status(status).into_response();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.extend(
        replacement
            .headers()
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    Response::from_parts(parts, replacement.into_body())
}

/// The router's fallback: no route has this path.
async fn unknown_route(method: Method, uri: Uri) -> Failure {
    Failure::UnknownRoute(format!(
        "no route for {} {}: the API is under /v1/",
        shown(method.as_str()),
        shown(uri.path())
    ))
}

/// A route exists for the path, but not for this method (the `Allow` header says which).
async fn method_not_allowed(method: Method, uri: Uri) -> Failure {
    Failure::MethodNotAllowed(format!(
        "{} does not accept {}",
        shown(uri.path()),
        shown(method.as_str())
    ))
}

#[cfg(test)]
mod tests {
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        wrap(
            Router::new()
                .route(
                    "/v1/echo",
                    post(|body: Bytes| async move { body.len().to_string() }),
                )
                .route("/v1/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
                .route(
                    "/v1/plain",
                    get(|| async { (StatusCode::BAD_REQUEST, "plain words") }),
                ),
        )
    }

    /// The status, the `Allow` header and the JSON answer's `code` (empty for a 2xx answer).
    async fn send(request: HttpRequest<Body>) -> (u16, Option<String>, String) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let allow = response
            .headers()
            .get("allow")
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        if status < 400 {
            return (status, allow, String::new());
        }
        let error: cj_api::ApiError = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        assert!(!error.error.is_empty());
        (status, allow, error.code)
    }

    fn request(method: &str, uri: &str) -> axum::http::request::Builder {
        HttpRequest::builder().method(method).uri(uri)
    }

    #[tokio::test]
    async fn the_router_answers_json_for_unknown_routes_and_wrong_methods() {
        let cases = [
            ("GET", "/v1/nothing", 404, None, "unknown_route"),
            ("GET", "/", 404, None, "unknown_route"),
            (
                "DELETE",
                "/v1/echo",
                405,
                Some("POST"),
                "method_not_allowed",
            ),
            ("GET", "/v1/echo", 405, Some("POST"), "method_not_allowed"),
            (
                "POST",
                "/v1/teapot",
                405,
                Some("GET,HEAD"),
                "method_not_allowed",
            ),
            ("GET", "/v1/teapot", 418, None, "i_m_a_teapot"),
            ("GET", "/v1/plain", 400, None, "bad_request"),
        ];
        for (method, uri, status, allow, code) in cases {
            let answer = send(request(method, uri).body(Body::empty()).unwrap()).await;
            let expected = (status, allow.map(str::to_owned), code.to_owned());
            assert_eq!(answer, expected, "{method} {uri}");
        }
    }

    #[tokio::test]
    async fn long_uris_and_large_headers_are_refused_with_json() {
        let long_uri = format!("/v1/echo?{}", "a".repeat(MAX_URI_BYTES));
        let answer = send(request("POST", &long_uri).body(Body::empty()).unwrap()).await;
        assert_eq!((answer.0, answer.2.as_str()), (414, "uri_too_long"));

        let mut many = request("POST", "/v1/echo");
        for n in 0..=MAX_HEADERS {
            many = many.header(format!("x-h{n}"), "1");
        }
        let answer = send(many.body(Body::empty()).unwrap()).await;
        assert_eq!((answer.0, answer.2.as_str()), (431, "headers_too_large"));

        let large = request("POST", "/v1/echo")
            .header("x-large", "v".repeat(MAX_HEADER_BYTES))
            .body(Body::empty())
            .unwrap();
        let answer = send(large).await;
        assert_eq!((answer.0, answer.2.as_str()), (431, "headers_too_large"));
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_with_json_whether_announced_or_not() {
        let just_fits = vec![b'x'; MAX_BODY_BYTES];
        let answer = send(
            request("POST", "/v1/echo")
                .body(Body::from(just_fits))
                .unwrap(),
        )
        .await;
        assert_eq!(answer.0, 200);

        let announced = request("POST", "/v1/echo")
            .header(CONTENT_LENGTH, 10_000_000)
            .body(Body::from(vec![b'x'; 10_000_000]))
            .unwrap();
        let answer = send(announced).await;
        assert_eq!((answer.0, answer.2.as_str()), (413, "payload_too_large"));

        // A body of unknown length, as chunked transfer encoding sends it.
        let chunks = futures_util::stream::iter(
            (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1_000_000]))),
        );
        let streamed = request("POST", "/v1/echo")
            .body(Body::from_stream(chunks))
            .unwrap();
        let answer = send(streamed).await;
        assert_eq!((answer.0, answer.2.as_str()), (413, "payload_too_large"));
    }
}
