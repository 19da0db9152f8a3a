//! The embedded backend's reads: keys, prefixes, pages, and the recorded changes a watch
//! replays. Each read is one redb read transaction, a consistent snapshot.

use std::collections::VecDeque;
use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable};

use super::Shared;
use super::format::{KV, LOG, LogEntry, LogValue, META, REVISION, backend, decode};
use super::write::read_entry;
use crate::types::{KeyValue, Page, StoreError, WatchEvent};
use crate::watch::{WatchStream, replay_then_follow};

impl Shared {
    pub(super) fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        read_entry(&read.open_table(KV).map_err(backend)?, key)
    }

    pub(super) fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
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

    pub(super) fn range_page(
        &self,
        prefix: &str,
        page: &Page,
    ) -> Result<Vec<KeyValue>, StoreError> {
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

    pub(super) fn revision(&self) -> Result<u64, StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        let meta = read.open_table(META).map_err(backend)?;
        Ok(meta
            .get(REVISION)
            .map_err(backend)?
            .map_or(0, |r| r.value()))
    }

    pub(super) fn watch(
        &self,
        prefix: &str,
        after_revision: u64,
    ) -> Result<WatchStream, StoreError> {
        // Subscribe before reading the log so no change falls between the two.
        let live = self.events.subscribe();
        let (replay, current) = self.recorded(prefix, after_revision)?;
        Ok(replay_then_follow(
            prefix.to_owned(),
            replay,
            current,
            live,
            |changes| Some(changes.clone()),
        ))
    }

    /// The logged changes under `prefix` after `after_revision`, and the revision they go up
    /// to; `Err(Compacted)` when the log no longer reaches back that far.
    pub(super) fn recorded(
        &self,
        prefix: &str,
        after_revision: u64,
    ) -> Result<(VecDeque<WatchEvent>, u64), StoreError> {
        let read = self.db.begin_read().map_err(backend)?;
        let log = read.open_table(LOG).map_err(backend)?;
        let current = read
            .open_table(META)
            .map_err(backend)?
            .get(REVISION)
            .map_err(backend)?
            .map_or(0, |r| r.value());
        let oldest = log
            .first()
            .map_err(backend)?
            .map_or(current + 1, |(revision, _)| revision.value());
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
            let under_prefix = entries
                .into_iter()
                .filter(|entry| entry.key.starts_with(prefix));
            for entry in under_prefix {
                replay.push_back(WatchEvent {
                    revision: revision.value(),
                    key: entry.key,
                    kind: entry.kind,
                    value: entry.value.map(LogValue::into_bytes),
                });
            }
        }
        Ok((replay, current))
    }
}
