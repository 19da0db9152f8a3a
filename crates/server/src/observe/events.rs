//! `GET /v1/events` and `coding-job events`: every change of the cluster's state, read from the
//! store. Nothing here keeps a log of its own: the store already records each change with its
//! revision (and replays them to a watch), so an event is a store change seen through
//! [`event_of`], which names what changed in the user's terms and drops the store's own
//! bookkeeping (counters, port allocations, version bodies). The web UI's live updates and
//! `events -f` follow the same watch, as newline-delimited JSON or server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cj_api::events::{Event, EventKind};
use cj_api::{AuditEntry, ContainerRecord, Deployment, HistoryEvent, VersionInfo};
use cj_store::{Store, StoreError, WatchEvent, WatchKind, WatchStream};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, future, stream};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use crate::edge::extract::page_limit;

use crate::edge::audit::audit_event;
use crate::edge::auth::{Auth, Identity};
use crate::edge::extract::ApiQuery;
use crate::error::Failure;
use crate::state::AppState;
use crate::state::DesiredJob;

/// How far back a listing without `since` looks for its newest events, in store revisions.
const RECENT_REVISIONS: u64 = 5_000;

/// `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only changes after this revision (a previous event's, or an answer's
    /// `X-Coding-Job-Index`). Without it: the newest `limit` events, or only new ones with
    /// `follow`.
    pub since: Option<u64>,
    /// Keep the answer open and send each change as it happens.
    #[serde(default)]
    pub follow: bool,
    /// Without `follow`: at most this many (the newest); 100 by default, at most 1000.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only this environment's events (and those about no environment: hosts, tokens).
    pub env: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    params(EventsQuery),
    responses(
        (status = 200, description = "the newest events (or those after `since`), oldest first; \
            with `follow`, each change as it happens: newline-delimited JSON, or server-sent \
            events (`id:` the revision) when the request accepts `text/event-stream`",
            content(
                (Vec<Event> = "application/json"),
                (Event = "application/x-ndjson"),
                (String = "text/event-stream"),
            )),
        (status = 410, description = "`since` is older than the store keeps", body = cj_api::ApiError),
    )
)]
pub async fn events(
    State(state): AppState,
    Extension(auth): Extension<Arc<Auth>>,
    identity: Identity,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, Failure> {
    if let Some(env) = &query.env {
        crate::releases::versions::check_env_name(env)?;
    }
    let wants_sse = accepts_event_stream(&headers);
    // A reconnecting EventSource says where it stopped.
    let since = query.since.or_else(|| last_event_id(&headers));
    let filter = Filter {
        env: query.env.clone(),
    };
    if !query.follow {
        let limit = page_limit(query.limit, 100)?;
        return Ok(axum::Json(recent(&state, since, limit, &filter)?).into_response());
    }
    let after = match since {
        Some(since) => since,
        None => state.store.revision()?,
    };
    let watch = state
        .store
        .watch("", after)
        .map_err(|error| gone(error, after))?;
    let audit = auth.may_read_audit(&identity).then(|| auth.audit.follow());
    let changes = with_audit(
        follow(watch, filter.clone()),
        audit,
        state.store.clone(),
        filter,
    );
    if wants_sse {
        let messages = changes.map(|item| {
            Ok::<_, Infallible>(match item {
                Ok(event) => SseEvent::default()
                    .id(event.revision.to_string())
                    .event(event.kind.as_str())
                    .json_data(&event)
                    .unwrap_or_else(|_| SseEvent::default().comment("unencodable event")),
                Err(reason) => SseEvent::default().event("error").data(reason),
            })
        });
        return Ok(Sse::new(messages)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    }
    let lines = changes.map(|item| {
        let mut line = match item {
            Ok(event) => serde_json::to_vec(&event).unwrap_or_default(),
            Err(reason) => {
                serde_json::to_vec(&serde_json::json!({ "error": reason })).unwrap_or_default()
            }
        };
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// The events after `since` (or the newest ones), oldest first, at most `limit` (the newest).
fn recent(
    state: &crate::state::ServerState,
    since: Option<u64>,
    limit: usize,
    filter: &Filter,
) -> Result<Vec<Event>, Failure> {
    let current = state.store.revision()?;
    let after = since.unwrap_or_else(|| current.saturating_sub(RECENT_REVISIONS));
    let changes = match state.store.history("", after) {
        Ok(changes) => changes,
        // Without `since`, "recent" starts wherever the store's memory does.
        Err(StoreError::Compacted { oldest, .. }) if since.is_none() => {
            state.store.history("", oldest.saturating_sub(1))?
        }
        Err(error) => return Err(gone(error, after)),
    };
    let mut events = std::collections::VecDeque::new();
    for change in changes {
        if let Some(event) = event_of(&change).filter(|event| filter.keeps(event)) {
            if events.len() == limit {
                events.pop_front();
            }
            events.push_back(event);
        }
    }
    Ok(events.into())
}

/// Changes as they come, from the watch; an error item (then the end) when the reader fell
/// too far behind, so it resumes with `since` instead of missing changes unknowingly.
fn follow(watch: WatchStream, filter: Filter) -> impl Stream<Item = Result<Event, String>> + Send {
    stream::unfold(Some((watch, filter)), |state| async move {
        let (mut watch, filter) = state?;
        loop {
            match watch.next().await? {
                Ok(change) => {
                    if let Some(event) = event_of(&change).filter(|event| filter.keeps(event)) {
                        return Some((Ok(event), Some((watch, filter))));
                    }
                }
                Err(error) => {
                    let reason = format!(
                        "the event stream stopped ({error}); read again with since=LAST_REVISION"
                    );
                    return Some((Err(reason), None));
                }
            }
        }
    })
}

/// `changes` with the audit log's entries as they are written, when the caller may read them
/// (`audit`). It ends when `changes` does: the audit log never ends on its own.
fn with_audit(
    changes: impl Stream<Item = Result<Event, String>> + Send + 'static,
    audit: Option<broadcast::Receiver<AuditEntry>>,
    store: Arc<dyn Store>,
    filter: Filter,
) -> BoxStream<'static, Result<Event, String>> {
    let Some(audit) = audit else {
        return changes.boxed();
    };
    let entries = BroadcastStream::new(audit).filter_map(move |entry| {
        // Entries a slow reader skipped stay in the log (`GET /v1/audit`).
        let event = entry
            .ok()
            .map(|entry| audit_event(&entry, store.revision().unwrap_or_default()))
            .filter(|event| filter.keeps(event));
        future::ready(event.map(|event| Some(Ok(event))))
    });
    let ended = stream::once(future::ready(None));
    stream::select(changes.map(Some).chain(ended), entries)
        .take_while(|item| future::ready(item.is_some()))
        .filter_map(future::ready)
        .boxed()
}

fn gone(error: StoreError, since: u64) -> Failure {
    match error {
        StoreError::Compacted { oldest, .. } => Failure::Gone(format!(
            "events after revision {since} are no longer kept; the oldest kept is {oldest} \
                 (read without since for the newest)"
        )),
        other => other.into(),
    }
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("text/event-stream"))
}

fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// Which events a reader asked for.
#[derive(Debug, Clone)]
struct Filter {
    env: Option<String>,
}

impl Filter {
    fn keeps(&self, event: &Event) -> bool {
        match (&self.env, &event.env) {
            (Some(wanted), Some(env)) => wanted == env,
            _ => true,
        }
    }
}

/// The event a store change is, if it is one a user would call a change of state.
pub fn event_of(change: &WatchEvent) -> Option<Event> {
    let parts: Vec<&str> = change.key.split('/').collect();
    let value = change.value.as_deref();
    let deleted = change.kind == WatchKind::Delete;
    let mut event = Event {
        revision: change.revision,
        kind: EventKind::Push,
        at: None,
        env: None,
        service: None,
        job: None,
        task: None,
        host: None,
        message: String::new(),
    };
    let json = |bytes: Option<&[u8]>| -> Option<serde_json::Value> {
        bytes.and_then(|bytes| serde_json::from_slice(bytes).ok())
    };
    match parts.as_slice() {
        ["services", env, service, "infos", _] => {
            let info: VersionInfo = serde_json::from_slice(value?).ok()?;
            event.env = Some((*env).into());
            event.service = Some((*service).into());
            event.at = Some(info.pushed_at);
            event.message = format!(
                "{service}: version {} pushed by {} ({})",
                info.version, info.pushed_by, info.file
            );
        }
        ["desired", env, service, job] => {
            event.kind = EventKind::Desired;
            event.env = Some((*env).into());
            event.service = Some((*service).into());
            event.job = Some((*job).into());
            event.message = match value.and_then(|v| serde_json::from_slice::<DesiredJob>(v).ok()) {
                None => format!("{service}/{job}: down"),
                Some(desired) => {
                    event.at = Some(desired.since.clone());
                    let moving = if desired.task_versions.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} tasks rolling)", desired.task_versions.len())
                    };
                    format!(
                        "{service}/{job}: up at version {}{moving} by {}",
                        desired.version, desired.by
                    )
                }
            };
        }
        ["containers", env, service, job, _] if !deleted => {
            let record: ContainerRecord = serde_json::from_slice(value?).ok()?;
            event.kind = EventKind::Container;
            event.env = Some((*env).into());
            event.service = Some((*service).into());
            event.job = Some((*job).into());
            event.task = Some(record.task.clone());
            event.host = Some(record.host.clone());
            let (state, at) = container_state(&record);
            event.at = at;
            event.message = format!(
                "{service}/{job}/{}: container {} {state} on {}",
                record.task,
                short(&record.id),
                record.host
            );
        }
        ["events", env, service, job, _] if !deleted => {
            let history: HistoryEvent = serde_json::from_slice(value?).ok()?;
            event.kind = match history.kind.as_str() {
                "healthy" | "unhealthy" => EventKind::Health,
                _ => EventKind::Container,
            };
            event.env = Some((*env).into());
            event.service = Some((*service).into());
            event.job = Some((*job).into());
            event.task = Some(history.task.clone());
            event.host = Some(history.host.clone());
            event.at = Some(history.at.clone());
            let exit = history
                .exit_code
                .map(|code| format!(" (exit {code})"))
                .unwrap_or_default();
            let detail = history
                .detail
                .map(|detail| format!(": {detail}"))
                .unwrap_or_default();
            event.message = format!(
                "{service}/{job}/{}: {}{exit} on {}{detail}",
                history.task, history.kind, history.host
            );
        }
        ["deployments", env, service, _] if !deleted => {
            let deployment: Deployment = serde_json::from_slice(value?).ok()?;
            event.kind = EventKind::Deployment;
            event.env = Some((*env).into());
            event.service = Some((*service).into());
            event.at = Some(deployment.updated.clone());
            let why = deployment
                .message
                .as_deref()
                .map(|message| format!(": {message}"))
                .unwrap_or_default();
            event.message = format!(
                "deployment {} ({}) of {service}: {}{why}",
                deployment.id,
                deployment.kind.as_str(),
                deployment.status.as_str()
            );
        }
        ["hosts", name] => {
            event.kind = EventKind::Host;
            event.host = Some((*name).into());
            let record = json(value)?;
            let joined = record["last_joined"].as_str().map(str::to_owned);
            let left = record["last_left"].as_str().map(str::to_owned);
            let (what, at) = match (joined, left) {
                (Some(joined), Some(left)) if left >= joined => ("disconnected", Some(left)),
                (joined, _) => ("connected", joined),
            };
            event.at = at;
            event.message = format!("host {name} {what}");
        }
        ["drains", name] => {
            event.kind = EventKind::Host;
            event.host = Some((*name).into());
            event.message = match deleted {
                true => format!("host {name} undrained"),
                false => format!("host {name} draining"),
            };
        }
        ["envs", name] => {
            let record = json(value)?;
            event.kind = EventKind::Env;
            event.env = Some((*name).into());
            let what = if record["destroyed_at"].is_string() {
                "destroyed"
            } else if record["destroying"].as_bool() == Some(true) {
                "being destroyed"
            } else {
                "created or changed"
            };
            event.message = format!("environment {name} {what}");
        }
        ["placements", env, service, job, task] => {
            event.kind = EventKind::Placement;
            event.env = Some((*env).into());
            event.service = Some((*service).into());
            event.job = Some((*job).into());
            event.task = Some((*task).into());
            event.message = match json(value) {
                None => format!("{service}/{job}/{task}: no longer placed"),
                Some(placement) => {
                    event.at = placement["since"].as_str().map(str::to_owned);
                    let host = placement["host"].as_str().unwrap_or("?").to_owned();
                    let reason = placement["reason"].as_str().unwrap_or("placed").to_owned();
                    event.host = Some(host.clone());
                    format!("{service}/{job}/{task}: on {host} ({reason})")
                }
            };
        }
        ["tokens", name] => {
            event.kind = EventKind::Token;
            event.message = match json(value) {
                None => format!("token {name} revoked"),
                Some(record) => format!(
                    "token {name} created with role {}",
                    record["role"].as_str().unwrap_or("?")
                ),
            };
        }
        ["alerts", ..] => {
            let alert: cj_api::alerts::Alert = serde_json::from_slice(value?).ok()?;
            event.kind = EventKind::Alert;
            let (what, at) = match &alert.resolved {
                Some(resolved) => ("resolved", resolved.clone()),
                None => ("firing", alert.started.clone()),
            };
            event.at = Some(at);
            event.message = format!(
                "alert {} {what}: {} ({})",
                alert.rule, alert.message, alert.subject
            );
        }
        _ => return None,
    }
    Some(event)
}

/// What a container record says happened last, and when.
fn container_state(record: &ContainerRecord) -> (String, Option<String>) {
    if let Some(removed) = &record.removed {
        return ("removed".into(), Some(removed.clone()));
    }
    if let Some(finished) = &record.finished {
        let exit = record
            .exit_code
            .map(|code| format!(" (exit {code})"))
            .unwrap_or_default();
        return (format!("exited{exit}"), Some(finished.clone()));
    }
    match &record.started {
        Some(started) => ("running".into(), Some(started.clone())),
        None => ("created".into(), Some(record.created.clone())),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, value: Option<serde_json::Value>) -> WatchEvent {
        WatchEvent {
            revision: 7,
            key: key.into(),
            kind: match value {
                Some(_) => WatchKind::Put,
                None => WatchKind::Delete,
            },
            value: value.map(|value| serde_json::to_vec(&value).unwrap()),
        }
    }

    fn check(key: &str, value: Option<serde_json::Value>, expected: Option<(&str, &str)>) {
        let event = event_of(&change(key, value));
        let got = event
            .as_ref()
            .map(|event| (event.kind.as_str(), event.message.as_str()));
        assert_eq!(got, expected, "{key}");
    }

    #[test]
    fn store_changes_read_as_events_and_bookkeeping_is_left_out() {
        let at = "2026-12-06T10:00:00Z";
        check(
            "services/production/shop/infos/0000000003",
            Some(
                serde_json::json!({"service": "shop", "version": 3, "file": "shop.yaml",
                "pushed_at": at, "pushed_by": "ada"}),
            ),
            Some(("push", "shop: version 3 pushed by ada (shop.yaml)")),
        );
        check(
            "desired/production/shop/web",
            Some(
                serde_json::json!({"env": "production", "service": "shop", "job": "web",
                "version": 3, "since": at, "by": "ada"}),
            ),
            Some(("desired", "shop/web: up at version 3 by ada")),
        );
        check(
            "desired/production/shop/web",
            None,
            Some(("desired", "shop/web: down")),
        );
        check(
            "events/production/shop/web/00000000000000000001",
            Some(
                serde_json::json!({"at": at, "kind": "died", "task": "web-1",
                "container_id": "abc", "version": 3, "host": "host-1", "exit_code": 137}),
            ),
            Some(("container", "shop/web/web-1: died (exit 137) on host-1")),
        );
        check(
            "events/production/shop/web/00000000000000000002",
            Some(
                serde_json::json!({"at": at, "kind": "unhealthy", "task": "web-1",
                "container_id": "abc", "version": 3, "host": "host-1", "exit_code": null}),
            ),
            Some(("health", "shop/web/web-1: unhealthy on host-1")),
        );
        check(
            "hosts/host-2",
            Some(serde_json::json!({"name": "host-2", "last_joined": at,
                "last_left": "2026-12-06T10:00:05Z"})),
            Some(("host", "host host-2 disconnected")),
        );
        check(
            "tokens/ci",
            Some(serde_json::json!({"name": "ci", "role": "deploy", "sha256": "00"})),
            Some(("token", "token ci created with role deploy")),
        );
        check("tokens/ci", None, Some(("token", "token ci revoked")));
        for internal in [
            "services/production/shop/latest",
            "services/production/shop/versions/0000000003",
            "counters/deployments/production/shop",
            "ports/30001",
            "task-ports/production/shop/web/web-1",
            "cluster/id",
        ] {
            check(internal, Some(serde_json::json!(1)), None);
        }
    }
}
