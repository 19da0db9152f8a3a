//! Extractors for JSON bodies and query strings whose refusals are API errors (a JSON body with
//! a status and a code, naming the field at fault) instead of axum's plain-text answers.
//! Every handler takes its input through these; request types refuse unknown fields, so a
//! misspelt field is an error rather than a silently ignored option.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Failure;

/// The longest parser message returned, in characters: serde quotes the values it refuses,
/// which may be as long as the body.
const MAX_MESSAGE_CHARS: usize = 300;

/// A JSON request body (`Content-Type: application/json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Failure> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_failure(&rejection)),
        }
    }
}

fn json_failure(rejection: &JsonRejection) -> Failure {
    let cause = || inner_message(rejection);
    match rejection {
        JsonRejection::JsonSyntaxError(_) => {
            Failure::BadRequest(format!("the body is not valid JSON: {}", cause()))
        }
        JsonRejection::JsonDataError(_) => {
            Failure::BadRequest(format!("invalid request body: {}", cause()))
        }
        JsonRejection::MissingJsonContentType(_) => Failure::UnsupportedMediaType(
            "expected a JSON body with `Content-Type: application/json`".into(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Failure::PayloadTooLarge(format!(
                "the request body is larger than {} bytes",
                crate::edge::guard::MAX_BODY_BYTES
            ))
        }
        other => Failure::Refused {
            status: other.status().as_u16(),
            message: format!("failed to read the request body: {}", cause()),
        },
    }
}

/// A query string, e.g. `?env=production&target=core`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Failure> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_failure(&rejection)),
        }
    }
}

fn query_failure(rejection: &QueryRejection) -> Failure {
    Failure::BadRequest(format!(
        "invalid query string: {}",
        inner_message(rejection)
    ))
}

/// The parser's own words (e.g. "check_revison: unknown field ..."), without axum's preamble.
fn inner_message(rejection: &(dyn std::error::Error + 'static)) -> String {
    let message = match rejection.source() {
        Some(source) => source.to_string(),
        None => rejection.to_string(),
    };
    cj_spec::capped(&message, MAX_MESSAGE_CHARS)
}

/// The most entries one read returns; more is read page by page.
pub const MAX_PAGE: usize = 1000;

/// `limit` checked against [`MAX_PAGE`], or `default`.
pub fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, Failure> {
    match limit {
        None => Ok(default),
        Some(limit @ 1..=MAX_PAGE) => Ok(limit),
        Some(other) => Err(Failure::BadRequest(format!(
            "limit {other} is out of range: expected 1 to {MAX_PAGE}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body1 {
        name: String,
        count: Option<u32>,
    }

    fn app() -> Router {
        Router::new()
            .route("/body", post(|ApiJson(_): ApiJson<Body1>| async { "ok" }))
            .route("/query", get(|ApiQuery(_): ApiQuery<Body1>| async { "ok" }))
    }

    /// Sends a request; returns the status, the `code` and the `error` of the JSON answer.
    async fn check(request: axum::http::Request<Body>) -> (u16, String, String) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        if status == 200 {
            return (status, String::new(), String::new());
        }
        let error: cj_api::ApiError = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, error.code, error.error)
    }

    fn post_json(content_type: Option<&str>, body: &str) -> axum::http::Request<Body> {
        let mut request = axum::http::Request::post("/body");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(Body::from(body.to_owned())).unwrap()
    }

    fn get_query(query: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(format!("/query?{query}"))
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn bodies_are_refused_with_json_naming_the_problem() {
        let json = Some("application/json");
        let cases = [
            (json, r#"{"name": "a"}"#, 200, "", ""),
            (
                json,
                r#"{"name": "a", "nmae": "b"}"#,
                400,
                "bad_request",
                "nmae",
            ),
            (
                json,
                r#"{"name": 5}"#,
                400,
                "bad_request",
                "name: invalid type",
            ),
            (
                json,
                r#"{"name": "a", "count": 1e30}"#,
                400,
                "bad_request",
                "count",
            ),
            (
                json,
                r#"{"name": "a", "count": -1}"#,
                400,
                "bad_request",
                "count",
            ),
            (
                json,
                r#"{"count": 1}"#,
                400,
                "bad_request",
                "missing field `name`",
            ),
            (json, r#"{"name": "#, 400, "bad_request", "not valid JSON"),
            (json, "", 400, "bad_request", "not valid JSON"),
            (
                None,
                r#"{"name": "a"}"#,
                415,
                "unsupported_media_type",
                "Content-Type",
            ),
            (
                Some("text/plain"),
                r#"{"name": "a"}"#,
                415,
                "unsupported_media_type",
                "",
            ),
        ];
        for (content_type, body, status, code, words) in cases {
            let (got_status, got_code, error) = check(post_json(content_type, body)).await;
            assert_eq!(
                (got_status, got_code.as_str()),
                (status, code),
                "{body}: {error}"
            );
            assert!(error.contains(words), "{body}: {error}");
        }
    }

    #[tokio::test]
    async fn query_strings_are_refused_with_json_naming_the_parameter() {
        let cases = [
            ("name=a&count=7", 200, ""),
            ("name=a&count=1e30", 400, "count"),
            ("name=a&count=99999999999999999999", 400, "count"),
            ("name=a&count=", 400, "count"),
            ("count=1", 400, "missing field `name`"),
            ("name=a&nmae=b", 400, "unknown field `nmae`"),
            ("name=a&name=b", 400, "duplicate field `name`"),
        ];
        for (query, status, words) in cases {
            let (got_status, code, error) = check(get_query(query)).await;
            assert_eq!(got_status, status, "{query}: {error}");
            if status != 200 {
                assert_eq!(code, "bad_request");
            }
            assert!(error.contains(words), "{query}: {error}");
        }
    }

    #[tokio::test]
    async fn echoed_values_are_cut() {
        let body = format!(r#"{{"name": "a", "count": "{}"}}"#, "x".repeat(100_000));
        let (status, _, error) = check(post_json(Some("application/json"), &body)).await;
        assert_eq!(status, 400);
        assert!(error.chars().count() < MAX_MESSAGE_CHARS + 40, "{error}");
    }
}
