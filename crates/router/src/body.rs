//! A request's body on its way to a backend: small ones (with a known length) are read first so
//! the request can be tried again on another backend, larger or chunked ones stream through
//! once. A route's `max_body_bytes` refuses a declared length above it before any backend is
//! contacted, and cuts a streamed body off where it goes over (the backend's request then
//! fails, and the client gets 413 if no answer has begun).

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};

/// Request bodies up to this size (with a known length) are read before forwarding, so the
/// request can be tried again on another backend.
const MAX_BUFFERED_BODY: u64 = 64 * 1024;

/// What a backend is sent as a body: one read whole, or one streamed through under the limit.
pub(crate) type UpstreamBody = Either<Full<Bytes>, Limited<Incoming>>;

/// A request's body, kept so that the request can be sent more than once when it is small.
pub(crate) enum RequestBody {
    Buffered(Bytes),
    /// `None` once sent.
    Streamed(Option<Limited<Incoming>>),
}

/// Why a request's body cannot go on.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Its declared length is above the route's limit.
    TooLarge,
    /// The client's body failed (it ended early, or broke the framing).
    Client(hyper::Error),
}

impl RequestBody {
    /// Reads `body` if it is small, after checking its declared length against `limit`.
    pub(crate) async fn read(body: Incoming, limit: Option<u64>) -> Result<RequestBody, BodyError> {
        if body.is_end_stream() {
            return Ok(RequestBody::Buffered(Bytes::new()));
        }
        let limit = limit.unwrap_or(u64::MAX);
        if body.size_hint().lower() > limit {
            return Err(BodyError::TooLarge);
        }
        match body.size_hint().exact() {
            Some(length) if length <= MAX_BUFFERED_BODY => {
                let bytes = body.collect().await.map_err(BodyError::Client)?;
                Ok(RequestBody::Buffered(bytes.to_bytes()))
            }
            _ => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(RequestBody::Streamed(Some(Limited::new(body, limit))))
            }
        }
    }

    pub(crate) fn replayable(&self) -> bool {
        matches!(self, RequestBody::Buffered(_))
    }

    /// The body for one more try, if there can be one.
    pub(crate) fn take(&mut self) -> Option<UpstreamBody> {
        match self {
            RequestBody::Buffered(bytes) => Some(Either::Left(Full::new(bytes.clone()))),
            RequestBody::Streamed(body) => body.take().map(Either::Right),
        }
    }
}

/// Whether a backend request failed because its streamed body went over the route's limit.
pub(crate) fn went_over_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<LengthLimitError>() {
            return true;
        }
        cause = error.source();
    }
    false
}
