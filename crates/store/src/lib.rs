//! The store: a versioned key-value space shaped like etcd's, so its two backends are
//! interchangeable: [`EmbeddedStore`] (one redb file, for a single server) and [`EtcdStore`]
//! (an etcd cluster, shared by several servers; reads answered from a copy in memory that one
//! etcd watch keeps current).
//!
//! Every write moves one global revision counter forward; each key remembers the revision that
//! created it, the one that last changed it and how many times it was put; a transaction
//! commits only if its comparisons on those hold (compare-and-swap); a lease deletes its keys
//! when it is revoked or not kept alive; and a watch replays the changes after a revision and
//! then follows new ones. Only this crate knows which backend holds the data; [`conformance`]
//! is what every backend must do.

mod compare;
pub mod conformance;
mod embedded;
mod etcd;
mod off_worker;
pub mod snapshot;
mod types;
mod watch;

use std::time::Duration;

pub use compare::{Compare, CompareOp, CompareTarget};
pub use embedded::EmbeddedStore;
pub use etcd::{EtcdOptions, EtcdStore, EtcdTls};
pub use off_worker::OffWorker;
pub use snapshot::{SnapshotError, SnapshotSummary};
pub use types::{KeyValue, LeaseId, Op, Page, StoreError, TxnOutcome, WatchEvent, WatchKind};
pub use watch::WatchStream;

/// The operations every backend provides. Calls are synchronous and block on IO (a commit is
/// fsynced, or acknowledged by a quorum, before it returns, so an acknowledged write survives
/// a crash). Async code holds a store wrapped in [`OffWorker`], which runs the calls that wait
/// on a disk or a network (writes, leases, history) off the async worker, and calls reads,
/// answered from memory, directly; a read on an async worker must still be bounded (a page,
/// not a whole history).
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key starting with `prefix`, in key order.
    fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError>;

    /// One page of the keys starting with `prefix` (see [`Page`]), so a long history is read a
    /// bounded piece at a time.
    fn range_page(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError>;

    /// Applies `ops` atomically, at one new revision, if every comparison holds; otherwise
    /// writes nothing and answers [`TxnOutcome::Failed`]. A put with a lease that does not
    /// exist (any more) is an error ([`StoreError::LeaseNotFound`]), and writes nothing either.
    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError>;

    /// The revision of the last committed write (0 for a new embedded store; etcd starts at 1).
    fn revision(&self) -> Result<u64, StoreError>;

    /// Changes to keys under `prefix` after `after_revision`, then new ones as they commit.
    /// `Err(Compacted)` if the history after `after_revision` is no longer kept.
    fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError>;

    /// The recorded changes under `prefix` after `after_revision`, up to the current
    /// revision: what [`Store::watch`] would replay first, returned without waiting for live
    /// ones (a listing of recent changes has no live part to wait for).
    fn history(&self, prefix: &str, after_revision: u64) -> Result<Vec<WatchEvent>, StoreError>;

    /// Forgets the changes before `revision`: a watch or history from an earlier revision is
    /// then `Err(Compacted)`, as in etcd. Values are not affected (the store keeps no older
    /// values to read).
    fn compact(&self, revision: u64) -> Result<(), StoreError>;

    /// A new lease that lives `ttl` unless kept alive. A backend may round the TTL up (etcd
    /// grants whole seconds); [`Store::keep_alive`] says the TTL it keeps.
    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Restarts the lease's TTL from now and returns it. `Err(LeaseNotFound)` once the lease
    /// has expired or was revoked: its keys are gone, and the caller must start over.
    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError>;

    /// Ends the lease now: its keys are deleted in one transaction (one revision, seen by
    /// watches as deletes), as when it expires.
    fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Writes a consistent copy of the whole store to `out` in the snapshot format
    /// ([`snapshot`]): every key with its revisions, version and lease, the revision, the live
    /// leases. Reads one view, so writes made meanwhile are either all in it or all not. A
    /// backend with its own tool for copies (etcd) answers [`SnapshotError::Unsupported`]
    /// naming it.
    fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<SnapshotSummary, SnapshotError>;

    fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        committed(self.txn(&[], &[Op::put(key, value)])?)
    }

    /// Commits `ops` in as few transactions as [`MAX_TXN_OPS`] allows, in order; the revision
    /// of each. Many small writes cost one commit (one fsync, one consensus round) each: a
    /// hundred thousand placements written one by one take minutes, in batches seconds. Each
    /// transaction is atomic; the whole is not (an error leaves the earlier ones committed).
    fn write_batched(&self, ops: &[Op]) -> Result<Vec<u64>, StoreError> {
        ops.chunks(MAX_TXN_OPS)
            .map(|chunk| committed(self.txn(&[], chunk)?))
            .collect()
    }

    /// Puts `key`, to be deleted when `lease` ends.
    fn put_with_lease(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<u64, StoreError> {
        committed(self.txn(&[], &[Op::put_with_lease(key, value, lease)])?)
    }

    /// Deletes `key`; returns the revision of the delete, or `None` if there was no such key.
    fn delete(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if self.get(key)?.is_none() {
            return Ok(None);
        }
        committed(self.txn(&[], &[Op::delete(key)])?).map(Some)
    }

    /// Writes `value` only if `key` was last changed at `expected_revision` (`None`: only if the
    /// key does not exist). Returns the new revision, or `None` if someone else changed it first.
    fn compare_and_swap(
        &self,
        key: &str,
        expected_revision: Option<u64>,
        value: Vec<u8>,
    ) -> Result<Option<u64>, StoreError> {
        let compare = Compare::mod_revision(key, expected_revision);
        match self.txn(&[compare], &[Op::put(key, value)])? {
            TxnOutcome::Committed { revision } => Ok(Some(revision)),
            TxnOutcome::Failed => Ok(None),
        }
    }
}

/// The most writes one transaction holds when writes are batched ([`Store::write_batched`]):
/// etcd refuses a transaction of more than 128 by default (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 100;

/// The revision of a transaction without comparisons, which always commits.
fn committed(outcome: TxnOutcome) -> Result<u64, StoreError> {
    match outcome {
        TxnOutcome::Committed { revision } => Ok(revision),
        TxnOutcome::Failed => unreachable!("a transaction without comparisons always commits"),
    }
}

/// Typed access for values stored as JSON; works on any store, including `dyn Store`.
pub trait StoreJson {
    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError>;
    fn put_json<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<u64, StoreError>;
    fn range_json<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError>;
    fn range_page_json<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        page: &Page,
    ) -> Result<Vec<T>, StoreError>;
}

impl<S: Store + ?Sized> StoreJson for S {
    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.get(key)?.map(|kv| kv.json()).transpose()
    }

    fn put_json<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<u64, StoreError> {
        self.put(key, serde_json::to_vec(value).map_err(StoreError::encode)?)
    }

    fn range_json<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.range(prefix)?.iter().map(KeyValue::json).collect()
    }

    fn range_page_json<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        page: &Page,
    ) -> Result<Vec<T>, StoreError> {
        self.range_page(prefix, page)?
            .iter()
            .map(KeyValue::json)
            .collect()
    }
}
