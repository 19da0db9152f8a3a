//! The audit log: every write request (any method but GET and HEAD), allowed or refused, with
//! who made it, what it was about and the status it got; `GET /v1/audit` reads it newest first.
//!
//! It lives in a store of its own (`audit.redb` next to `store.redb`, keys `audit/NANOS`), so
//! that a flood of refused requests neither moves the revision of desired state (which
//! `/v1/info` reports and `push --check-rev` relies on) nor pushes real changes out of the main
//! store's watch log. It keeps the newest [`MAX_ENTRIES`]; older entries are deleted as new
//! ones arrive. What an entry holds comes from the request's path, method and JSON body,
//! never from its headers: the `Authorization` header (the secret) is never read here.
//!
//! Entries are also sent, as they are written, to admins following the event stream
//! ([`AuditLog::follow`], [`audit_event`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::Extension;
use cj_api::AuditEntry;
use cj_api::events::{Event, EventKind};
use cj_store::{Op, Page, Store, StoreError, StoreJson};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::edge::auth::Auth;
use crate::edge::extract::ApiQuery;
use crate::edge::extract::page_limit;
use crate::edge::sanitize;
use crate::error::Failure;
use crate::keys;

/// How many entries are kept; at a few hundred bytes each, tens of megabytes.
pub const MAX_ENTRIES: usize = 100_000;
/// Entries are counted, and deleted, this many at a time.
const BATCH: usize = 1000;
/// The longest target or environment kept in an entry, in characters.
const MAX_LABEL_CHARS: usize = 128;
/// How far a follower of the event stream may fall behind the audit log before it skips
/// entries (which stay in the log).
const LIVE_BACKLOG: usize = 256;

pub struct AuditLog {
    store: Arc<dyn Store>,
    /// [`MAX_ENTRIES`]; the oldest are deleted once there are a hundredth more.
    max_entries: usize,
    /// Entries in the store, as counted at start and kept since: when it passes the bound the
    /// oldest are deleted. (With several servers on one store the count is each one's own
    /// estimate; the bound is then approximate.)
    entries: AtomicUsize,
    /// One trim at a time.
    trimming: Mutex<()>,
    /// Each entry as it is recorded, to followers of the event stream.
    live: broadcast::Sender<AuditEntry>,
}

impl AuditLog {
    /// Opens the log on `store`, counting what it holds.
    pub fn open(store: Arc<dyn Store>) -> Result<AuditLog, StoreError> {
        AuditLog::open_bounded(store, MAX_ENTRIES)
    }

    fn open_bounded(store: Arc<dyn Store>, max_entries: usize) -> Result<AuditLog, StoreError> {
        let mut entries = 0;
        let mut beyond = None;
        loop {
            let page = Page {
                limit: BATCH,
                newest_first: false,
                beyond,
            };
            let read = store.range_page(keys::AUDIT, &page)?;
            entries += read.len();
            match read.last() {
                Some(last) if read.len() == BATCH => beyond = Some(last.key.clone()),
                _ => break,
            }
        }
        Ok(AuditLog {
            store,
            max_entries,
            entries: AtomicUsize::new(entries),
            trimming: Mutex::new(()),
            live: broadcast::channel(LIVE_BACKLOG).0,
        })
    }

    /// Stores `entry` (a failure is logged: the request it is about has already happened).
    pub fn record(&self, entry: &AuditEntry) {
        if let Err(error) = self.write(entry) {
            tracing::warn!(%error, "failed to write an audit entry");
        }
        // Nobody following is the usual case: then there is nothing to copy the entry for.
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(entry.clone());
        }
    }

    /// The entries recorded from now on.
    pub fn follow(&self) -> broadcast::Receiver<AuditEntry> {
        self.live.subscribe()
    }

    fn write(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let value = serde_json::to_vec(entry).map_err(StoreError::encode)?;
        let mut nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        // Two requests in the same nanosecond: the later one takes the next free key.
        while self
            .store
            .compare_and_swap(&keys::audit(nanos), None, value.clone())?
            .is_none()
        {
            nanos += 1;
        }
        let entries = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        if entries > self.max_entries + self.max_entries / 100 {
            self.trim()?;
        }
        Ok(())
    }

    /// Deletes the oldest entries beyond the bound.
    fn trim(&self) -> Result<(), StoreError> {
        let Ok(_trimming) = self.trimming.try_lock() else {
            return Ok(());
        };
        while self.entries.load(Ordering::Relaxed) > self.max_entries {
            let excess = self.entries.load(Ordering::Relaxed) - self.max_entries;
            let page = Page {
                limit: excess.min(BATCH),
                newest_first: false,
                beyond: None,
            };
            let oldest = self.store.range_page(keys::AUDIT, &page)?;
            if oldest.is_empty() {
                self.entries.store(0, Ordering::Relaxed);
                break;
            }
            let ops: Vec<Op> = oldest
                .iter()
                .map(|kv| Op::Delete {
                    key: kv.key.clone(),
                })
                .collect();
            self.store.txn(&[], &ops)?;
            self.entries.fetch_sub(ops.len(), Ordering::Relaxed);
        }
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn newest(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.store
            .range_page_json(keys::AUDIT, &Page::newest(limit))
    }
}

/// What a query string says it is about (`env` and `target`), for requests without a body
/// that are audited (`exec`).
pub fn query_subject(uri: &axum::http::Uri) -> (Option<String>, Option<String>) {
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|axum::extract::Query(pairs)| pairs)
        .unwrap_or_default();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| sanitize::bounded(value, MAX_LABEL_CHARS))
            .filter(|value| !value.is_empty())
    };
    (field("env"), field("target"))
}

/// What a request body says it is about: its environment and target (`target`; the `name` of
/// a token; the `service:` line of a pushed file). Only JSON bodies are looked at; anything
/// else says nothing.
pub fn subject(path: &str, body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize, Default)]
    struct Fields {
        env: Option<serde_json::Value>,
        target: Option<serde_json::Value>,
        name: Option<serde_json::Value>,
        source: Option<serde_json::Value>,
    }
    let fields: Fields = serde_json::from_slice(body).unwrap_or_default();
    let text = |value: Option<serde_json::Value>| match value {
        Some(serde_json::Value::String(text)) => Some(text),
        _ => None,
    };
    let from_path = path
        .strip_prefix("/v1/tokens/")
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    let declared_service = text(fields.source).and_then(|source| {
        source.lines().find_map(|line| {
            let service = line.strip_prefix("service:")?.trim();
            Some(service.trim_matches(|c| c == '"' || c == '\'').to_owned())
        })
    });
    let target = text(fields.target)
        .or_else(|| text(fields.name))
        .or(declared_service)
        .or(from_path);
    let label = |value: String| sanitize::bounded(&value, MAX_LABEL_CHARS);
    (
        text(fields.env).map(label),
        target.map(label).filter(|target| !target.is_empty()),
    )
}

/// An audit entry as an event of the stream, at `revision` (the store's, when it was seen):
/// `alice (deploy): POST /v1/rollback core/web -> 200`.
pub fn audit_event(entry: &AuditEntry, revision: u64) -> Event {
    let role = entry
        .role
        .map(|role| format!(" ({role})"))
        .unwrap_or_default();
    let about = entry
        .target
        .as_deref()
        .map(|target| format!(" {target}"))
        .unwrap_or_default();
    Event {
        revision,
        kind: EventKind::Audit,
        at: Some(entry.at.clone()),
        env: entry.env.clone(),
        service: None,
        job: None,
        task: None,
        host: None,
        message: format!(
            "{}{role}: {} {}{about} -> {}",
            entry.who, entry.method, entry.path, entry.status
        ),
    }
}

/// `GET /v1/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many entries, newest first; 100 by default, at most 1000.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "audit",
    params(AuditQuery),
    responses((status = 200, description = "the newest write requests, newest first", body = Vec<AuditEntry>))
)]
pub async fn list(
    Extension(auth): Extension<Arc<Auth>>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, Failure> {
    let limit = page_limit(query.limit, 100)?;
    Ok(Json(auth.audit.newest(limit)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(who: &str) -> AuditEntry {
        AuditEntry {
            at: "2026-01-01T00:00:00Z".into(),
            who: who.into(),
            role: None,
            method: "POST".into(),
            path: "/v1/push".into(),
            env: None,
            target: None,
            status: 200,
        }
    }

    #[test]
    fn entries_are_read_newest_first_and_counted_again_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(cj_store::EmbeddedStore::open(&dir.path().join("audit.redb")).unwrap());
        let log = AuditLog::open(store.clone()).unwrap();
        for n in 0..5 {
            log.record(&entry(&format!("user-{n}")));
        }
        let who: Vec<String> = log.newest(3).unwrap().into_iter().map(|e| e.who).collect();
        assert_eq!(who, ["user-4", "user-3", "user-2"]);
        let again = AuditLog::open(store).unwrap();
        assert_eq!(again.entries.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn the_oldest_entries_go_once_the_log_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(cj_store::EmbeddedStore::open(&dir.path().join("audit.redb")).unwrap());
        let log = AuditLog::open_bounded(store.clone(), 5).unwrap();
        for n in 0..12 {
            log.record(&entry(&format!("user-{n}")));
        }
        let who: Vec<String> = log
            .newest(100)
            .unwrap()
            .into_iter()
            .map(|e| e.who)
            .collect();
        assert_eq!(who, ["user-11", "user-10", "user-9", "user-8", "user-7"]);
        assert_eq!(log.entries.load(Ordering::Relaxed), 5);
        assert_eq!(
            AuditLog::open(store)
                .unwrap()
                .entries
                .load(Ordering::Relaxed),
            5
        );
    }

    #[test]
    fn the_subject_comes_from_the_body_or_the_path() {
        let cases: [(&str, &str, Option<&str>, Option<&str>); 6] = [
            (
                "/v1/up",
                r#"{"env": "staging", "target": "core/web"}"#,
                Some("staging"),
                Some("core/web"),
            ),
            (
                "/v1/push",
                r##"{"env": "production", "file": "c.yaml", "source": "# x\nservice: \"core\"\njobs: []\n"}"##,
                Some("production"),
                Some("core"),
            ),
            (
                "/v1/tokens",
                r#"{"name": "ci", "role": "read"}"#,
                None,
                Some("ci"),
            ),
            ("/v1/tokens/ci-old", "", None, Some("ci-old")),
            ("/v1/up", "not json", None, None),
            ("/v1/up", r#"{"target": 5, "env": ["x"]}"#, None, None),
        ];
        for (path, body, env, target) in cases {
            let (got_env, got_target) = subject(path, body.as_bytes());
            assert_eq!(
                (got_env.as_deref(), got_target.as_deref()),
                (env, target),
                "{path} {body}"
            );
        }
        let (_, long) = subject(
            "/v1/up",
            format!(r#"{{"target": "{}"}}"#, "t\\n".repeat(500)).as_bytes(),
        );
        let long = long.unwrap();
        assert_eq!(long.chars().count(), MAX_LABEL_CHARS);
        assert!(!long.contains('\n'));
    }
}
