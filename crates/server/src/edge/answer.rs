//! Failures as HTTP answers: the status of each kind of [`Failure`], the stable `code` scripts
//! match on, and the JSON body (`cj_api::ApiError`). The only place a failure meets HTTP.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cj_api::ApiError;

use crate::error::Failure;

impl Failure {
    /// The answer's HTTP status: chosen here, and only here.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::NotFound(_) | Failure::UnknownRoute(_) => StatusCode::NOT_FOUND,
            Failure::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Failure::Forbidden(_) | Failure::Csrf(_) => StatusCode::FORBIDDEN,
            Failure::Conflict(_) => StatusCode::CONFLICT,
            Failure::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Failure::Unavailable(_) | Failure::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Failure::Gone(_) => StatusCode::GONE,
            Failure::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Failure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Failure::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::Refused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// The answer's `code`: a stable snake_case word scripts can match on.
    pub fn code(&self) -> String {
        let code = match self {
            Failure::BadRequest(_) => "bad_request",
            Failure::NotFound(_) => "not_found",
            Failure::Unauthorized(_) => "unauthorized",
            Failure::Forbidden(_) => "forbidden",
            Failure::Csrf(_) => "csrf",
            Failure::Conflict(_) => "conflict",
            Failure::InvalidConfig(_) => "invalid_config",
            Failure::Internal(_) => "internal",
            Failure::BadGateway(_) => "bad_gateway",
            Failure::Unavailable(_) => "host_unavailable",
            Failure::StoreUnavailable(_) => "store_unavailable",
            Failure::Gone(_) => "gone",
            Failure::PayloadTooLarge(_) => "payload_too_large",
            Failure::UnsupportedMediaType(_) => "unsupported_media_type",
            Failure::MethodNotAllowed(_) => "method_not_allowed",
            Failure::UnknownRoute(_) => "unknown_route",
            Failure::UriTooLong(_) => "uri_too_long",
            Failure::HeadersTooLarge(_) => "headers_too_large",
            Failure::Refused { status, .. } => {
                return StatusCode::from_u16(*status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
            StatusCode::BAD_REQUEST => Failure::BadRequest(reason),
            StatusCode::NOT_FOUND => Failure::UnknownRoute("no such route".into()),
            StatusCode::UNAUTHORIZED => Failure::Unauthorized(reason),
            StatusCode::FORBIDDEN => Failure::Forbidden(reason),
            StatusCode::PAYLOAD_TOO_LARGE => Failure::PayloadTooLarge(reason),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Failure::UnsupportedMediaType(reason),
            StatusCode::METHOD_NOT_ALLOWED => Failure::MethodNotAllowed(reason),
            StatusCode::URI_TOO_LONG => Failure::UriTooLong(reason),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Failure::HeadersTooLarge(reason),
            StatusCode::INTERNAL_SERVER_ERROR => Failure::Internal(reason),
            other => Failure::Refused {
                status: other.as_u16(),
                message: reason,
            },
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let errors = match &self {
            Failure::InvalidConfig(errors) => errors.0.clone(),
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
        if let Failure::Unauthorized(_) = self {
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
            (Failure::BadRequest("x".into()), 400, "bad_request"),
            (Failure::UnknownRoute("x".into()), 404, "unknown_route"),
            (Failure::Unauthorized("x".into()), 401, "unauthorized"),
            (Failure::Forbidden("x".into()), 403, "forbidden"),
            (
                Failure::PayloadTooLarge("x".into()),
                413,
                "payload_too_large",
            ),
            (
                Failure::HeadersTooLarge("x".into()),
                431,
                "headers_too_large",
            ),
            (
                Failure::for_status(StatusCode::REQUEST_TIMEOUT),
                408,
                "request_timeout",
            ),
            (
                Failure::for_status(StatusCode::METHOD_NOT_ALLOWED),
                405,
                "method_not_allowed",
            ),
            (
                Failure::from(cj_store::StoreError::Unavailable("etcd: no leader".into())),
                503,
                "store_unavailable",
            ),
        ];
        for (failure, status, code) in cases {
            assert_eq!(failure.status().as_u16(), status, "{failure:?}");
            assert_eq!(failure.code(), code, "{failure:?}");
        }
    }

    #[test]
    fn an_unavailable_store_says_so_in_the_answer() {
        let failure = Failure::from(cj_store::StoreError::Unavailable("etcd: no leader".into()));
        assert_eq!(
            failure.to_string(),
            "the store is unavailable: etcd: no leader"
        );
    }
}
