//! Blocking reads, as Nomad's blocking queries: every `GET /v1/...` answers with the store
//! revision it read at (`X-Coding-Job-Index`), and a read with `?index=N` waits (up to
//! `wait`, 5 minutes by default, at most 10) until the store has a change after revision N
//! before it reads. A script or page can thus wait for "anything new" without polling; the
//! store's watch wakes it. The two parameters are taken off the query here, so each route's
//! own query stays as strict as it is (unknown fields refused).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cj_api::events::INDEX_HEADER;
use futures_util::StreamExt;

use crate::error::{Failure, shown};
use crate::state::ServerState;

/// How long a blocking read waits when it does not say.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// The longest a blocking read may wait.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The layer: strip `index`/`wait`, wait if asked, read, and say the revision read at.
pub async fn blocking_reads(
    State(state): State<Arc<ServerState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET || !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let blocking = match take_blocking_params(request.uri()) {
        Ok(blocking) => blocking,
        Err(failure) => return failure.into_response(),
    };
    if let Some((index, wait, uri)) = blocking {
        *request.uri_mut() = uri;
        wait_for_change_after(&state, index, wait).await;
    }
    let revision = state.store.revision().ok();
    let mut response = next.run(request).await;
    if let Some(value) = revision.and_then(|r| HeaderValue::from_str(&r.to_string()).ok()) {
        response.headers_mut().insert(INDEX_HEADER, value);
    }
    response
}

/// Waits until the store has a change after `index`, or `wait` passes. A change it cannot
/// follow (the store forgot that far back, or the reader lagged) means there is one.
async fn wait_for_change_after(state: &ServerState, index: u64, wait: Duration) {
    let Ok(mut watch) = state.store.watch("", index) else {
        return;
    };
    let _ = tokio::time::timeout(wait, watch.next()).await;
}

/// `index` and `wait` from the query, and the URI without them; `None` when neither is there
/// (`wait` alone is refused: it needs the revision to wait past).
fn take_blocking_params(uri: &Uri) -> Result<Option<(u64, Duration, Uri)>, Failure> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut index = None;
    let mut wait = None;
    let mut kept = form_urlencoded::Serializer::new(String::new());
    let mut found = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "index" => {
                found = true;
                index = Some(value.parse::<u64>().map_err(|_| {
                    Failure::BadRequest(format!(
                        "index {} is not a store revision: expected a whole number such as the \
                         X-Coding-Job-Index of an earlier answer",
                        shown(&value)
                    ))
                })?);
            }
            "wait" => {
                found = true;
                wait = Some(parse_wait(&value)?);
            }
            _ => {
                kept.append_pair(&name, &value);
            }
        }
    }
    if !found {
        return Ok(None);
    }
    let Some(index) = index else {
        return Err(Failure::BadRequest(
            "wait needs index: the revision to wait past (X-Coding-Job-Index)".into(),
        ));
    };
    let kept = kept.finish();
    let path_and_query = match kept.is_empty() {
        true => uri.path().to_owned(),
        false => format!("{}?{kept}", uri.path()),
    };
    let uri = path_and_query
        .parse::<Uri>()
        .map_err(|error| Failure::BadRequest(format!("bad query: {error}")))?;
    Ok(Some((index, wait.unwrap_or(DEFAULT_WAIT), uri)))
}

/// A duration as everywhere else (`30s`, `5m`, `500ms`), up to [`MAX_WAIT`].
fn parse_wait(text: &str) -> Result<Duration, Failure> {
    cj_spec::parse_duration_ms(text)
        .map(Duration::from_millis)
        .filter(|wait| *wait <= MAX_WAIT)
        .ok_or_else(|| {
            Failure::BadRequest(format!(
                "wait {} is not a duration: expected e.g. 30s, 5m or 500ms, at most 10m",
                shown(text)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(uri: &str) -> Result<Option<(Option<u64>, Duration, String)>, String> {
        take_blocking_params(&uri.parse().unwrap())
            .map(|found| found.map(|(index, wait, uri)| (Some(index), wait, uri.to_string())))
            .map_err(|failure| failure.to_string())
    }

    #[test]
    fn blocking_parameters_are_taken_off_the_query_and_checked() {
        assert_eq!(take("/v1/status?env=a").unwrap(), None);
        assert_eq!(
            take("/v1/status?env=a&index=7&wait=30s").unwrap(),
            Some((Some(7), Duration::from_secs(30), "/v1/status?env=a".into()))
        );
        assert_eq!(
            take("/v1/hosts?index=3").unwrap(),
            Some((Some(3), DEFAULT_WAIT, "/v1/hosts".into()))
        );
        assert_eq!(
            take("/v1/status?index=1&wait=250ms&target=a%2Fb").unwrap(),
            Some((
                Some(1),
                Duration::from_millis(250),
                "/v1/status?target=a%2Fb".into()
            ))
        );
        for (uri, says) in [
            ("/v1/status?index=x", "index x is not a store revision"),
            ("/v1/status?wait=5s", "wait needs index"),
            ("/v1/status?index=1&wait=11m", "wait 11m is not a duration"),
            ("/v1/status?index=1&wait=5h", "wait 5h is not a duration"),
            ("/v1/status?index=1&wait=s", "wait s is not a duration"),
        ] {
            let error = take(uri).unwrap_err();
            assert!(error.contains(says), "{uri}: {error}");
        }
    }
}
