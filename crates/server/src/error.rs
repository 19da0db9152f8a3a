//! What can go wrong, in the server's own terms: every operation returns a [`Failure`]. Only the
//! edge (`edge::answer`) turns one into an HTTP answer (a status and a JSON body the CLI turns
//! into a message and an exit code); nothing here knows HTTP.

use cj_spec::SpecErrors;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
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
    /// What was asked for is no longer kept (events older than the store keeps).
    #[error("{0}")]
    Gone(String),
    /// Something the server depends on (a registry) failed.
    #[error("{0}")]
    BadGateway(String),
    /// A host's agent is not connected, so what is on that host cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
    /// The store cannot answer now (its etcd is out of reach): the whole message, starting
    /// "the store is unavailable: ". Worth retrying.
    #[error("{0}")]
    StoreUnavailable(String),
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
    /// A refusal the HTTP layer chose (a body that did not arrive in time, an upgrade the
    /// request lacks), with its status code; kept as it was.
    #[error("{message}")]
    Refused { status: u16, message: String },
}

/// At most 64 characters of a user-supplied value, escaped, for echoing it in a message: a
/// hostile megabyte-long name must not come back in full. The config parser's own helper.
pub use cj_spec::shown;

impl From<cj_store::StoreError> for Failure {
    fn from(error: cj_store::StoreError) -> Self {
        match error {
            cj_store::StoreError::Unavailable(_) => Failure::StoreUnavailable(error.to_string()),
            _ => Failure::Internal(format!("store: {error}")),
        }
    }
}
