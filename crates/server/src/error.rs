//! API errors: each maps to an HTTP status and a JSON body the CLI turns into a message and an
//! exit code (4xx: bad input, exit 2; 5xx: failure, exit 1).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cj_api::ApiError;
use cj_spec::SpecErrors;

#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// No valid token (answered with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose role does not allow the request.
    #[error("{0}")]
    Forbidden(String),
    /// A write from a browser session without the session's CSRF token.
    #[error("{0}")]
    Csrf(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the config was rejected")]
    InvalidConfig(SpecErrors),
    #[error("{0}")]
    Internal(String),
    /// Something the server depends on (a registry) failed.
    #[error("{0}")]
    BadGateway(String),
    /// A host's agent is not connected, so what is on that host cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
    /// The request body is over the limit (`edge::MAX_BODY_BYTES`).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body that is not JSON, or says it is not.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// No route has this path (unlike `NotFound`, which is about a thing the request named).
    #[error("{0}")]
    UnknownRoute(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Any other status something outside the handlers chose; kept as it was.
    #[error("{1}")]
    Other(StatusCode, String),
}

/// At most 64 characters of a user-supplied value, escaped, for echoing it in a message: a
/// hostile megabyte-long name must not come back in full. The config parser's own helper.
pub use cj_spec::shown;

impl From<cj_store::StoreError> for ApiFailure {
    fn from(error: cj_store::StoreError) -> Self {
        ApiFailure::Internal(format!("store: {error}"))
    }
}

impl ApiFailure {
    /// The answer's HTTP status: chosen here, and only here.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiFailure::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiFailure::NotFound(_) | ApiFailure::UnknownRoute(_) => StatusCode::NOT_FOUND,
            ApiFailure::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiFailure::Forbidden(_) | ApiFailure::Csrf(_) => StatusCode::FORBIDDEN,
            ApiFailure::Conflict(_) => StatusCode::CONFLICT,
            ApiFailure::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiFailure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiFailure::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiFailure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiFailure::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiFailure::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiFailure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiFailure::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiFailure::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiFailure::Other(status, _) => *status,
        }
    }

    /// The answer's `code`: a stable snake_case word scripts can match on.
    pub fn code(&self) -> String {
        let code = match self {
            ApiFailure::BadRequest(_) => "bad_request",
            ApiFailure::NotFound(_) => "not_found",
            ApiFailure::Unauthorized(_) => "unauthorized",
            ApiFailure::Forbidden(_) => "forbidden",
            ApiFailure::Csrf(_) => "csrf",
            ApiFailure::Conflict(_) => "conflict",
            ApiFailure::InvalidConfig(_) => "invalid_config",
            ApiFailure::Internal(_) => "internal",
            ApiFailure::BadGateway(_) => "bad_gateway",
            ApiFailure::Unavailable(_) => "host_unavailable",
            ApiFailure::PayloadTooLarge(_) => "payload_too_large",
            ApiFailure::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiFailure::MethodNotAllowed(_) => "method_not_allowed",
            ApiFailure::UnknownRoute(_) => "unknown_route",
            ApiFailure::UriTooLong(_) => "uri_too_long",
            ApiFailure::HeadersTooLarge(_) => "headers_too_large",
            ApiFailure::Other(status, _) => {
                return status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            }
        };
        code.to_owned()
    }

    /// The error for an answer that something other than a handler made without a JSON body
    /// (a layer, the router): the same status, with a message and a code.
    pub fn for_status(status: StatusCode) -> Self {
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        match status {
            StatusCode::BAD_REQUEST => ApiFailure::BadRequest(reason),
            StatusCode::NOT_FOUND => ApiFailure::UnknownRoute("no such route".into()),
            StatusCode::UNAUTHORIZED => ApiFailure::Unauthorized(reason),
            StatusCode::FORBIDDEN => ApiFailure::Forbidden(reason),
            StatusCode::PAYLOAD_TOO_LARGE => ApiFailure::PayloadTooLarge(reason),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiFailure::UnsupportedMediaType(reason),
            StatusCode::METHOD_NOT_ALLOWED => ApiFailure::MethodNotAllowed(reason),
            StatusCode::URI_TOO_LONG => ApiFailure::UriTooLong(reason),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiFailure::HeadersTooLarge(reason),
            StatusCode::INTERNAL_SERVER_ERROR => ApiFailure::Internal(reason),
            other => ApiFailure::Other(other, reason),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let errors = match &self {
            ApiFailure::InvalidConfig(errors) => errors.0.clone(),
            _ => Vec::new(),
        };
        let mut response = (
            self.status(),
            Json(ApiError {
                error: self.to_string(),
                code: self.code(),
                errors,
            }),
        )
            .into_response();
        if let ApiFailure::Unauthorized(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_answers_json_with_a_code() {
        let cases = [
            (ApiFailure::BadRequest("x".into()), 400, "bad_request"),
            (ApiFailure::UnknownRoute("x".into()), 404, "unknown_route"),
            (ApiFailure::Unauthorized("x".into()), 401, "unauthorized"),
            (ApiFailure::Forbidden("x".into()), 403, "forbidden"),
            (
                ApiFailure::PayloadTooLarge("x".into()),
                413,
                "payload_too_large",
            ),
            (
                ApiFailure::HeadersTooLarge("x".into()),
                431,
                "headers_too_large",
            ),
            (
                ApiFailure::for_status(StatusCode::REQUEST_TIMEOUT),
                408,
                "request_timeout",
            ),
            (
                ApiFailure::for_status(StatusCode::METHOD_NOT_ALLOWED),
                405,
                "method_not_allowed",
            ),
        ];
        for (failure, status, code) in cases {
            assert_eq!(failure.status().as_u16(), status, "{failure:?}");
            assert_eq!(failure.code(), code, "{failure:?}");
        }
    }
}
