//! The embedded backend: one redb file. redb commits are atomic and fsynced, so a write that
//! returned survives a SIGKILL or power loss; a write that did not return left nothing behind.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use crate::Store;
use crate::types::{Compare, KeyValue, Op, Page, StoreError, TxnOutcome, WatchEvent, WatchKind};
use crate::watch::Watch;

/// key -> 16-byte header (create revision, mod revision, little-endian) + value.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// revision -> the changes made at it (a JSON list), for watches that start in the past.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// How many past changes a watch can replay; older ones are dropped as new ones arrive.
const LOG_RETAINED: u64 = 50_000;
/// ... and at most this many bytes of them: a history of large values (whole config files)
/// must not keep a second copy of every one on disk.
const LOG_BUDGET_BYTES: u64 = 128 << 20;
/// The log's size in bytes, kept in `META` as entries come and go.
const LOG_BYTES: &str = "log_bytes";

pub struct EmbeddedStore {
    db: Database,
    /// Serialises writers so live events go out in revision order.
    write_lock: Mutex<()>,
    events: broadcast::Sender<WatchEvent>,
    /// How many bytes of past changes are kept for watches ([`LOG_BUDGET_BYTES`]).
    log_budget_bytes: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LogEntry {
    key: String,
    kind: WatchKind,
    value: Option<LogValue>,
}

/// A value as the log keeps it: as text when it is UTF-8 (every value the server writes is
/// JSON), which JSON holds at its own size instead of as a list of numbers. Logs written with
/// byte lists still read.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum LogValue {
    Text(String),
    Bytes(Vec<u8>),
}

impl LogValue {
    fn new(bytes: &[u8]) -> LogValue {
        match std::str::from_utf8(bytes) {
            Ok(text) => LogValue::Text(text.to_owned()),
            Err(_) => LogValue::Bytes(bytes.to_vec()),
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            LogValue::Text(text) => text.into_bytes(),
            LogValue::Bytes(bytes) => bytes,
        }
    }
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// A stored entry; one too short for its header (a damaged file) is an error, not a panic.
fn decode(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let header = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .and_then(|slice| slice.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(create_revision), Some(mod_revision)) = (header(0..8), header(8..16)) else {
        return Err(StoreError::Decode {
            key: key.to_owned(),
            reason: format!(
                "the stored entry is {} bytes, shorter than its header",
                bytes.len()
            ),
        });
    };
    Ok(KeyValue {
        key: key.to_owned(),
        value: bytes[16..].to_vec(),
        create_revision,
        mod_revision,
    })
}

fn encode(create_revision: u64, mod_revision: u64, value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + value.len());
    bytes.extend_from_slice(&create_revision.to_le_bytes());
    bytes.extend_from_slice(&mod_revision.to_le_bytes());
    bytes.extend_from_slice(value);
    bytes
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut builder = Database::builder();
        // The working set is small (configs, records); a modest cache keeps the process lean.
        builder.set_cache_size(16 << 20);
        let db = builder.create(path).map_err(backend)?;
        let write = db.begin_write().map_err(backend)?;
        {
            write.open_table(KV).map_err(backend)?;
            write.open_table(LOG).map_err(backend)?;
            write.open_table(META).map_err(backend)?;
        }
        write.commit().map_err(backend)?;
        let (events, _) = broadcast::channel(4096);
        Ok(EmbeddedStore {
            db,
            write_lock: Mutex::new(()),
            events,
            log_budget_bytes: LOG_BUDGET_BYTES,
        })
    }
}

impl EmbeddedStore {
    fn get_blocking(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        let table = read.open_table(KV).map_err(backend)?;
        table
            .get(key)
            .map_err(backend)?
            .map(|bytes| decode(key, bytes.value()))
            .transpose()
    }

    fn range_blocking(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        let table = read.open_table(KV).map_err(backend)?;
        let mut found = Vec::new();
        for entry in table.range(prefix..).map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            found.push(decode(key.value(), value.value())?);
        }
        Ok(found)
    }

    fn range_page_blocking(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError> {
        use std::ops::Bound;
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let read = self.db.begin_read().map_err(backend)?;
        let table = read.open_table(KV).map_err(backend)?;
        // Every key under the prefix sorts before the prefix followed by char::MAX.
        let end = format!("{prefix}{}", char::MAX);
        let (lower, upper) = match (&page.beyond, page.newest_first) {
            (Some(beyond), false) => (
                Bound::Excluded(beyond.as_str()),
                Bound::Excluded(end.as_str()),
            ),
            (Some(beyond), true) => (Bound::Included(prefix), Bound::Excluded(beyond.as_str())),
            (None, _) => (Bound::Included(prefix), Bound::Excluded(end.as_str())),
        };
        let entries = table.range::<&str>((lower, upper)).map_err(backend)?;
        let mut found = Vec::new();
        let mut take = |entry: Result<_, redb::StorageError>| -> Result<bool, StoreError> {
            let (key, value): (redb::AccessGuard<&str>, redb::AccessGuard<&[u8]>) =
                entry.map_err(backend)?;
            if key.value().starts_with(prefix) {
                found.push(decode(key.value(), value.value())?);
            }
            Ok(found.len() < page.limit)
        };
        if page.newest_first {
            for entry in entries.rev() {
                if !take(entry)? {
                    break;
                }
            }
        } else {
            for entry in entries {
                if !take(entry)? {
                    break;
                }
            }
        }
        Ok(found)
    }

    fn txn_blocking(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        let _writer = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let write = self.db.begin_write().map_err(backend)?;
        let mut committed_events = Vec::new();
        let revision = {
            let mut kv = write.open_table(KV).map_err(backend)?;
            for compare in compares {
                let current = kv
                    .get(compare.key.as_str())
                    .map_err(backend)?
                    .map(|b| decode(&compare.key, b.value()))
                    .transpose()?;
                if current.map(|kv| kv.mod_revision) != compare.mod_revision {
                    return Ok(TxnOutcome::Failed);
                }
            }
            let mut meta = write.open_table(META).map_err(backend)?;
            let revision = meta
                .get(REVISION)
                .map_err(backend)?
                .map(|r| r.value())
                .unwrap_or(0)
                + 1;
            meta.insert(REVISION, revision).map_err(backend)?;
            let mut log = write.open_table(LOG).map_err(backend)?;
            let mut entries = Vec::with_capacity(ops.len());
            for op in ops {
                let entry = match op {
                    Op::Put { key, value } => {
                        let created = kv
                            .get(key.as_str())
                            .map_err(backend)?
                            .map(|b| decode(key, b.value()).map(|kv| kv.create_revision))
                            .transpose()?
                            .unwrap_or(revision);
                        kv.insert(key.as_str(), encode(created, revision, value).as_slice())
                            .map_err(backend)?;
                        LogEntry {
                            key: key.clone(),
                            kind: WatchKind::Put,
                            value: Some(LogValue::new(value)),
                        }
                    }
                    Op::Delete { key } => {
                        kv.remove(key.as_str()).map_err(backend)?;
                        LogEntry {
                            key: key.clone(),
                            kind: WatchKind::Delete,
                            value: None,
                        }
                    }
                };
                let value = match op {
                    Op::Put { value, .. } => Some(value.clone()),
                    Op::Delete { .. } => None,
                };
                committed_events.push(WatchEvent {
                    revision,
                    key: entry.key.clone(),
                    kind: entry.kind,
                    value,
                });
                entries.push(entry);
            }
            let encoded = serde_json::to_vec(&entries).map_err(StoreError::encode)?;
            log.insert(revision, encoded.as_slice()).map_err(backend)?;
            let mut log_bytes = meta
                .get(LOG_BYTES)
                .map_err(backend)?
                .map(|bytes| bytes.value())
                .unwrap_or(0)
                + encoded.len() as u64;
            // Drop the oldest entries beyond the count or the size budget (never this one).
            loop {
                let Some((oldest, size)) = log
                    .first()
                    .map_err(backend)?
                    .map(|(rev, bytes)| (rev.value(), bytes.value().len() as u64))
                else {
                    break;
                };
                let too_old = revision - oldest >= LOG_RETAINED;
                if oldest == revision || !(too_old || log_bytes > self.log_budget_bytes) {
                    break;
                }
                log.remove(oldest).map_err(backend)?;
                log_bytes = log_bytes.saturating_sub(size);
            }
            meta.insert(LOG_BYTES, log_bytes).map_err(backend)?;
            revision
        };
        write.commit().map_err(backend)?;
        for event in committed_events {
            // No receiver is fine: nobody is watching.
            let _ = self.events.send(event);
        }
        Ok(TxnOutcome::Committed { revision })
    }
}

/// Runs a store call that may wait on the disk (a commit is fsynced) without stalling the async
/// workers: on tokio's multi-threaded runtime the worker hands its other tasks to another thread
/// for the duration (`block_in_place`); elsewhere (plain threads, single-threaded runtimes in
/// tests) the call just runs.
fn off_async<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

impl Store for EmbeddedStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        off_async(|| self.get_blocking(key))
    }

    fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        off_async(|| self.range_blocking(prefix))
    }

    fn range_page(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError> {
        off_async(|| self.range_page_blocking(prefix, page))
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        off_async(|| self.txn_blocking(compares, ops))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        let meta = read.open_table(META).map_err(backend)?;
        Ok(meta
            .get(REVISION)
            .map_err(backend)?
            .map(|r| r.value())
            .unwrap_or(0))
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watch, StoreError> {
        // Subscribe before reading the log so no change falls between the two.
        let live = self.events.subscribe();
        let read = self.db.begin_read().map_err(backend)?;
        let log = read.open_table(LOG).map_err(backend)?;
        let current = read
            .open_table(META)
            .map_err(backend)?
            .get(REVISION)
            .map_err(backend)?
            .map(|r| r.value())
            .unwrap_or(0);
        let oldest = log
            .first()
            .map_err(backend)?
            .map(|(rev, _)| rev.value())
            .unwrap_or(current + 1);
        if after_revision < current && after_revision + 1 < oldest {
            return Err(StoreError::Compacted {
                requested: after_revision,
                oldest,
            });
        }
        let mut replay = VecDeque::new();
        for entry in log.range(after_revision + 1..).map_err(backend)? {
            let (revision, bytes) = entry.map_err(backend)?;
            let entries: Vec<LogEntry> =
                serde_json::from_slice(bytes.value()).map_err(|e| StoreError::Decode {
                    key: format!("log/{}", revision.value()),
                    reason: e.to_string(),
                })?;
            for entry in entries
                .into_iter()
                .filter(|entry| entry.key.starts_with(prefix))
            {
                replay.push_back(WatchEvent {
                    revision: revision.value(),
                    key: entry.key,
                    kind: entry.kind,
                    value: entry.value.map(LogValue::into_bytes),
                });
            }
        }
        Ok(Watch {
            prefix: prefix.to_owned(),
            replay,
            replayed_up_to: current,
            live,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreJson;

    fn open() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn revisions_move_forward_and_keys_remember_them() {
        let (_dir, store) = open();
        assert_eq!(store.revision().unwrap(), 0);
        assert_eq!(store.put("a", b"1".to_vec()).unwrap(), 1);
        assert_eq!(store.put("a", b"2".to_vec()).unwrap(), 2);
        let a = store.get("a").unwrap().unwrap();
        assert_eq!(
            (a.value.as_slice(), a.create_revision, a.mod_revision),
            (&b"2"[..], 1, 2)
        );
        assert_eq!(store.delete("a").unwrap(), Some(3));
        assert_eq!(store.delete("a").unwrap(), None);
        assert_eq!(store.get("a").unwrap(), None);
    }

    #[test]
    fn range_reads_only_the_prefix() {
        let (_dir, store) = open();
        for key in ["svc/a", "svc/b", "svd/c", "sv"] {
            store.put(key, vec![]).unwrap();
        }
        let keys: Vec<String> = store
            .range("svc/")
            .unwrap()
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["svc/a", "svc/b"]);
    }

    #[test]
    fn pages_read_a_bounded_piece_in_either_direction() {
        let (_dir, store) = open();
        for key in [
            "log/01", "log/02", "log/03", "log/04", "log/05", "loh/00", "lof/99",
        ] {
            store.put(key, vec![]).unwrap();
        }
        let keys = |page: Page| -> Vec<String> {
            store
                .range_page("log/", &page)
                .unwrap()
                .into_iter()
                .map(|kv| kv.key)
                .collect()
        };
        assert_eq!(keys(Page::newest(2)), ["log/05", "log/04"]);
        assert_eq!(
            keys(Page {
                beyond: Some("log/04".into()),
                ..Page::newest(2)
            }),
            ["log/03", "log/02"]
        );
        assert_eq!(
            keys(Page {
                limit: 10,
                newest_first: false,
                beyond: Some("log/03".into()),
            }),
            ["log/04", "log/05"]
        );
        assert_eq!(keys(Page::newest(0)), Vec::<String>::new());
        assert_eq!(keys(Page::newest(100)).len(), 5);
    }

    #[test]
    fn the_watch_log_keeps_values_as_text_within_its_byte_budget() {
        let (_dir, mut store) = open();
        store.log_budget_bytes = 10_000;
        let value = format!("\"{}\"", "x".repeat(3_000));
        for n in 0..20 {
            store
                .put(&format!("big/{n:02}"), value.clone().into_bytes())
                .unwrap();
        }
        let read = store.db.begin_read().unwrap();
        let log = read.open_table(LOG).unwrap();
        let sizes: Vec<usize> = log
            .iter()
            .unwrap()
            .map(|entry| entry.unwrap().1.value().len())
            .collect();
        // Text, not a list of numbers: an entry is about the value's own size.
        assert!(sizes.iter().all(|size| *size < 3_100), "{sizes:?}");
        assert!(sizes.iter().sum::<usize>() <= 10_000, "{sizes:?}");
        assert_eq!(sizes.len(), 3);
        // A watch from a dropped revision is told so; one from a kept revision replays.
        assert!(matches!(
            store.watch("big/", 1),
            Err(StoreError::Compacted { oldest: 18, .. })
        ));
        assert!(store.watch("big/", 17).is_ok());
    }

    #[tokio::test]
    async fn log_entries_written_as_byte_lists_still_replay() {
        let (_dir, store) = open();
        store.put("k", b"1".to_vec()).unwrap();
        {
            let write = store.db.begin_write().unwrap();
            {
                let mut log = write.open_table(LOG).unwrap();
                let old = br#"[{"key":"k","kind":"Put","value":[50]}]"#;
                log.insert(1, old.as_slice()).unwrap();
            }
            write.commit().unwrap();
        }
        let mut watch = store.watch("k", 0).unwrap();
        assert_eq!(watch.next().await.unwrap().value, Some(b"2".to_vec()));
    }

    #[test]
    fn a_damaged_entry_is_an_error_not_a_panic() {
        let (_dir, store) = open();
        {
            let write = store.db.begin_write().unwrap();
            write
                .open_table(KV)
                .unwrap()
                .insert("broken", [1u8, 2, 3].as_slice())
                .unwrap();
            write.commit().unwrap();
        }
        assert!(matches!(
            store.get("broken"),
            Err(StoreError::Decode { key, .. }) if key == "broken"
        ));
        assert!(store.range("bro").is_err());
        assert!(store.put("broken", b"1".to_vec()).is_err());
    }

    #[test]
    fn store_calls_work_from_every_kind_of_runtime() {
        let (_dir, store) = open();
        let store = std::sync::Arc::new(store);
        // Multi-threaded: the call leaves the worker (block_in_place) and still answers.
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let in_multi = store.clone();
        multi.block_on(async move {
            tokio::spawn(async move { in_multi.put("a", b"1".to_vec()).unwrap() })
                .await
                .unwrap()
        });
        // Single-threaded (as in most tests), where block_in_place would panic: it runs as is.
        let single = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        single.block_on(async { store.put("b", b"2".to_vec()).unwrap() });
        assert_eq!(store.range("").unwrap().len(), 2);
    }

    #[test]
    fn compare_and_swap_refuses_a_stale_revision() {
        let (_dir, store) = open();
        assert_eq!(
            store
                .compare_and_swap("k", None, b"first".to_vec())
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            store
                .compare_and_swap("k", None, b"again".to_vec())
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .compare_and_swap("k", Some(7), b"stale".to_vec())
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .compare_and_swap("k", Some(1), b"second".to_vec())
                .unwrap(),
            Some(2)
        );
        assert_eq!(store.get("k").unwrap().unwrap().value, b"second");
        assert_eq!(
            store.revision().unwrap(),
            2,
            "failed swaps do not move the revision"
        );
    }

    #[test]
    fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            store.put_json("v/1", &serde_json::json!({"n": 1})).unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(
            store.get_json::<serde_json::Value>("v/1").unwrap(),
            Some(serde_json::json!({"n": 1}))
        );
        assert_eq!(store.revision().unwrap(), 1);
    }

    #[tokio::test]
    async fn watch_replays_the_past_then_follows_new_changes() {
        let (_dir, store) = open();
        store.put("jobs/a", b"1".to_vec()).unwrap();
        store.put("other/x", b"1".to_vec()).unwrap();
        store
            .txn(
                &[],
                &[
                    Op::Put {
                        key: "jobs/b".into(),
                        value: b"2".to_vec(),
                    },
                    Op::Delete {
                        key: "jobs/a".into(),
                    },
                ],
            )
            .unwrap();
        let mut watch = store.watch("jobs/", 1).unwrap();
        store.put("jobs/c", b"3".to_vec()).unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let event = watch.next().await.unwrap();
            seen.push((event.revision, event.key, event.kind));
        }
        assert_eq!(
            seen,
            [
                (3, "jobs/b".into(), WatchKind::Put),
                (3, "jobs/a".into(), WatchKind::Delete),
                (4, "jobs/c".into(), WatchKind::Put)
            ]
        );
    }
}
