//! [`OffWorker`]: a store whose slow calls do not hold up the async tasks sharing a worker.
//!
//! The store's calls are synchronous. Reads are answered from memory-mapped pages (the
//! embedded backend) or from memory (the etcd backend's mirror) in microseconds, so async code
//! calls them directly. A write waits for its commit to reach the disk (an fsync,
//! milliseconds; a quorum, for a networked backend), as do lease calls, compaction and history
//! reads: made on a worker of tokio's multi-threaded runtime, those run under
//! `block_in_place`, which hands the worker's other tasks to another thread for the duration,
//! so a slow disk slows the writer, not every request and agent link of the server. Elsewhere
//! (a current-thread runtime, as in tests, or no runtime) they simply run.

use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::{
    Compare, KeyValue, LeaseId, Op, Page, SnapshotError, SnapshotSummary, Store, StoreError,
    TxnOutcome, WatchEvent, WatchStream,
};

pub struct OffWorker<S> {
    inner: S,
}

impl<S: Store> OffWorker<S> {
    pub fn new(inner: S) -> Self {
        OffWorker { inner }
    }
}

/// Runs `call` so that it does not block a multi-threaded runtime's worker.
fn off_worker<T>(call: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

impl<S: Store> Store for OffWorker<S> {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key)
    }

    fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.range(prefix)
    }

    fn range_page(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.range_page(prefix, page)
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        off_worker(|| self.inner.txn(compares, ops))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.inner.revision()
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        off_worker(|| self.inner.watch(prefix, after_revision))
    }

    fn history(&self, prefix: &str, after_revision: u64) -> Result<Vec<WatchEvent>, StoreError> {
        off_worker(|| self.inner.history(prefix, after_revision))
    }

    fn compact(&self, revision: u64) -> Result<(), StoreError> {
        off_worker(|| self.inner.compact(revision))
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        off_worker(|| self.inner.grant_lease(ttl))
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        off_worker(|| self.inner.keep_alive(lease))
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        off_worker(|| self.inner.revoke_lease(lease))
    }

    fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<SnapshotSummary, SnapshotError> {
        off_worker(|| self.inner.snapshot(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedStore;

    fn write_and_read(store: &OffWorker<EmbeddedStore>) {
        for n in 0..20u32 {
            store.put("k", n.to_be_bytes().to_vec()).unwrap();
        }
        assert_eq!(store.get("k").unwrap().unwrap().value, 19u32.to_be_bytes());
    }

    /// `block_in_place` on a multi-threaded runtime; a plain call on a current-thread one
    /// (where `block_in_place` would panic) and outside any runtime.
    #[test]
    fn writes_work_on_every_kind_of_runtime_and_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffWorker::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        write_and_read(&store);
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        current.block_on(async { write_and_read(&store) });
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = std::sync::Arc::new(store);
        let on_worker = store.clone();
        multi
            .block_on(async { tokio::spawn(async move { write_and_read(&on_worker) }).await })
            .unwrap();
    }
}
