//! The embedded backend: one redb file. redb commits are atomic and fsynced, so a write that
//! returned survives a SIGKILL or power loss; a write that did not return left nothing behind.

mod format;
mod leases;
mod read;
mod snapshot;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
mod write;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::broadcast;

use self::format::backend;
use self::leases::Leases;
use crate::Store;
use crate::compare::Compare;
use crate::snapshot::{SnapshotError, SnapshotSummary};
use crate::types::{KeyValue, LeaseId, Op, Page, StoreError, TxnOutcome, WatchEvent};
use crate::watch::WatchStream;

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    /// The thread that ends leases at their deadlines; joined when the store is dropped, so
    /// the file is closed (and can be opened again) once the drop returns.
    expiry: Option<JoinHandle<()>>,
}

/// What the store's callers and its expiry thread share.
struct Shared {
    db: Database,
    /// Serialises writers so revisions are handed out, and live events sent, in order.
    write_lock: Mutex<()>,
    events: broadcast::Sender<crate::watch::LiveChanges>,
    leases: Leases,
    options: Options,
}

/// The limits of the store; only tests choose others.
struct Options {
    /// How many past changes a watch can replay; older ones are dropped as new ones arrive.
    log_retained: u64,
    /// ... and at most this many bytes of them: a history of large values (whole config
    /// files) must not keep a second copy of every one on disk.
    log_budget_bytes: u64,
    /// How many transactions' changes a watch may fall behind before it is told it lagged.
    live_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_retained: 50_000,
            log_budget_bytes: 128 << 20,
            live_capacity: 16_384,
        }
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`. Works with or without an async runtime:
    /// leases are ended by a thread of the store's own.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        EmbeddedStore::open_with(path, Options::default())
    }

    fn open_with(path: &Path, options: Options) -> Result<Self, StoreError> {
        let mut builder = Database::builder();
        // The working set is small (configs, records); a modest cache keeps the process lean.
        builder.set_cache_size(16 << 20);
        let db = builder.create(path).map_err(backend)?;
        let write = db.begin_write().map_err(backend)?;
        format::prepare(&write)?;
        write.commit().map_err(backend)?;
        let leases = Leases::restore(&db)?;
        let (events, _) = broadcast::channel(options.live_capacity);
        let shared = Arc::new(Shared {
            db,
            write_lock: Mutex::new(()),
            events,
            leases,
            options,
        });
        let expiry = leases::spawn_expiry(shared.clone())?;
        Ok(EmbeddedStore {
            shared,
            expiry: Some(expiry),
        })
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.shared.leases.stop();
        if let Some(expiry) = self.expiry.take() {
            // A panic there has been reported already; the store is going away regardless.
            let _ = expiry.join();
        }
    }
}

impl Shared {
    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
        off_async(|| self.shared.get(key))
    }

    fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        off_async(|| self.shared.range(prefix))
    }

    fn range_page(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError> {
        off_async(|| self.shared.range_page(prefix, page))
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        off_async(|| self.shared.txn(compares, ops))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.shared.revision()
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        off_async(|| self.shared.watch(prefix, after_revision))
    }

    fn history(&self, prefix: &str, after_revision: u64) -> Result<Vec<WatchEvent>, StoreError> {
        off_async(|| self.shared.recorded(prefix, after_revision)).map(|(replay, _)| replay.into())
    }

    fn compact(&self, revision: u64) -> Result<(), StoreError> {
        off_async(|| self.shared.compact(revision))
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        off_async(|| self.shared.grant_lease(ttl))
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        // Memory only: etcd does not write a keep-alive to disk either.
        self.shared.leases.keep_alive(lease, Instant::now())
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        off_async(|| self.shared.revoke_lease(lease))
    }

    fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<SnapshotSummary, SnapshotError> {
        off_async(|| self.shared.snapshot(out))
    }
}
