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
    #[error("{0}")]
    Conflict(String),
    #[error("the config was rejected")]
    InvalidConfig(SpecErrors),
    #[error("{0}")]
    Internal(String),
    /// Something the server depends on (a registry) failed.
    #[error("{0}")]
    BadGateway(String),
}

impl From<cj_store::StoreError> for ApiFailure {
    fn from(error: cj_store::StoreError) -> Self {
        ApiFailure::Internal(format!("store: {error}"))
    }
}

impl From<cj_runtime::RuntimeError> for ApiFailure {
    fn from(error: cj_runtime::RuntimeError) -> Self {
        match error {
            cj_runtime::RuntimeError::NoSuchContainer(id) => {
                ApiFailure::NotFound(format!("no such container {id}"))
            }
            other => ApiFailure::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiFailure::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiFailure::NotFound(_) => StatusCode::NOT_FOUND,
            ApiFailure::Conflict(_) => StatusCode::CONFLICT,
            ApiFailure::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiFailure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiFailure::BadGateway(_) => StatusCode::BAD_GATEWAY,
        };
        let errors = match &self {
            ApiFailure::InvalidConfig(errors) => errors.0.clone(),
            _ => Vec::new(),
        };
        (
            status,
            Json(ApiError {
                error: self.to_string(),
                errors,
            }),
        )
            .into_response()
    }
}
