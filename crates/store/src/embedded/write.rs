//! The embedded backend's writes: transactions, the log of changes that watches replay, and
//! its compaction. Every write runs under the writer lock, so revisions are handed out, and
//! live events sent, in order.

use std::time::Instant;

use redb::{ReadableTable, Table, WriteTransaction};

use super::Shared;
use super::format::{
    Header, KV, LEASE_KEYS, LOG, LOG_BYTES, LogEntry, LogValue, META, REVISION, backend, decode,
    encode, meta_value,
};
use crate::compare::Compare;
use crate::types::{KeyValue, Op, StoreError, TxnOutcome, WatchEvent, WatchKind};

impl Shared {
    pub(super) fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        let _writer = self.lock_writer();
        let write = self.db.begin_write().map_err(backend)?;
        {
            let kv = write.open_table(KV).map_err(backend)?;
            for compare in compares {
                if !compare.holds(read_entry(&kv, &compare.key)?.as_ref()) {
                    return Ok(TxnOutcome::Failed);
                }
            }
        }
        // As etcd: the comparisons decide first; only the writes that would run need their
        // leases. Checked under the writer lock, so a lease cannot end between here and the
        // commit (ending one is a write too).
        let now = Instant::now();
        let leases = ops.iter().filter_map(|op| match op {
            Op::Put { lease, .. } => *lease,
            Op::Delete { .. } => None,
        });
        for lease in leases {
            if !self.leases.is_live(lease, now) {
                return Err(StoreError::LeaseNotFound(lease));
            }
        }
        let (revision, events) = self.apply(&write, ops)?;
        write.commit().map_err(backend)?;
        self.publish(events);
        Ok(TxnOutcome::Committed { revision })
    }

    /// Writes `ops` at the next revision inside `write`, with their entry in the log; returns
    /// the revision and the events to send once `write` commits.
    pub(super) fn apply(
        &self,
        write: &WriteTransaction,
        ops: &[Op],
    ) -> Result<(u64, Vec<WatchEvent>), StoreError> {
        let mut kv = write.open_table(KV).map_err(backend)?;
        let mut lease_keys = write.open_multimap_table(LEASE_KEYS).map_err(backend)?;
        let mut meta = write.open_table(META).map_err(backend)?;
        let revision = meta_value(&meta, REVISION)? + 1;
        meta.insert(REVISION, revision).map_err(backend)?;
        let mut events = Vec::with_capacity(ops.len());
        for op in ops {
            let key = op.key();
            let existing = match (op, read_entry(&kv, key)) {
                // A damaged entry can still be deleted. Its lease is unknown, so the lease's
                // index may keep the key: ending the lease checks each key's own lease.
                (Op::Delete { .. }, Err(StoreError::Decode { .. })) => None,
                (_, read) => read?,
            };
            let old_lease = existing.as_ref().and_then(|kv| kv.lease);
            let (new_lease, kind, value) = match op {
                Op::Put { value, lease, .. } => {
                    let header = Header {
                        create_revision: existing
                            .as_ref()
                            .map_or(revision, |kv| kv.create_revision),
                        mod_revision: revision,
                        version: existing.as_ref().map_or(0, |kv| kv.version) + 1,
                        lease: *lease,
                    };
                    kv.insert(key, encode(header, value).as_slice())
                        .map_err(backend)?;
                    (*lease, WatchKind::Put, Some(value.clone()))
                }
                Op::Delete { .. } => {
                    kv.remove(key).map_err(backend)?;
                    (None, WatchKind::Delete, None)
                }
            };
            if old_lease != new_lease {
                if let Some(old) = old_lease {
                    lease_keys.remove(old.0, key).map_err(backend)?;
                }
                if let Some(new) = new_lease {
                    lease_keys.insert(new.0, key).map_err(backend)?;
                }
            }
            events.push(WatchEvent {
                revision,
                key: key.to_owned(),
                kind,
                value,
            });
        }
        let entries: Vec<LogEntry> = events
            .iter()
            .map(|event| LogEntry {
                key: event.key.clone(),
                kind: event.kind,
                value: event.value.as_deref().map(LogValue::new),
            })
            .collect();
        let encoded = serde_json::to_vec(&entries).map_err(StoreError::encode)?;
        let mut log = write.open_table(LOG).map_err(backend)?;
        log.insert(revision, encoded.as_slice()).map_err(backend)?;
        let log_bytes = meta_value(&meta, LOG_BYTES)? + encoded.len() as u64;
        // Drop the oldest entries beyond the count or the size budget (never this one).
        let log_bytes = drop_oldest(&mut log, log_bytes, |oldest, log_bytes| {
            oldest != revision
                && (revision - oldest >= self.options.log_retained
                    || log_bytes > self.options.log_budget_bytes)
        })?;
        meta.insert(LOG_BYTES, log_bytes).map_err(backend)?;
        Ok((revision, events))
    }

    pub(super) fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let _writer = self.lock_writer();
        let write = self.db.begin_write().map_err(backend)?;
        {
            let mut meta = write.open_table(META).map_err(backend)?;
            let current = meta_value(&meta, REVISION)?;
            if revision > current {
                return Err(StoreError::FutureRevision {
                    requested: revision,
                    current,
                });
            }
            let mut log = write.open_table(LOG).map_err(backend)?;
            let log_bytes = meta_value(&meta, LOG_BYTES)?;
            let log_bytes = drop_oldest(&mut log, log_bytes, |oldest, _| oldest < revision)?;
            meta.insert(LOG_BYTES, log_bytes).map_err(backend)?;
        }
        write.commit().map_err(backend)
    }

    /// Sends committed changes to the live watches, in order (the caller holds the writer
    /// lock). No receiver is fine: nobody is watching.
    pub(super) fn publish(&self, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            let _ = self.events.send(events.into());
        }
    }
}

pub(super) fn read_entry(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<KeyValue>, StoreError> {
    kv.get(key)
        .map_err(backend)?
        .map(|bytes| decode(key, bytes.value()))
        .transpose()
}

/// Removes the log's oldest entries while `drop(oldest revision, log bytes)` says so; returns
/// the log's size afterwards.
fn drop_oldest(
    log: &mut Table<u64, &[u8]>,
    mut log_bytes: u64,
    drop: impl Fn(u64, u64) -> bool,
) -> Result<u64, StoreError> {
    loop {
        let Some((oldest, size)) = log
            .first()
            .map_err(backend)?
            .map(|(revision, bytes)| (revision.value(), bytes.value().len() as u64))
        else {
            return Ok(log_bytes);
        };
        if !drop(oldest, log_bytes) {
            return Ok(log_bytes);
        }
        log.remove(oldest).map_err(backend)?;
        log_bytes = log_bytes.saturating_sub(size);
    }
}
