//! The store: a versioned key-value space shaped like etcd's, so the embedded backend and a
//! future etcd backend are interchangeable.
//!
//! Every write moves one global revision counter forward; each key remembers the revision that
//! created it and the one that last changed it; a transaction commits only if its comparisons
//! on those revisions hold (compare-and-swap); and a watch replays the changes after a revision
//! and then follows new ones. Only this crate knows which backend holds the data.

mod embedded;
mod types;
mod watch;

pub use embedded::EmbeddedStore;
pub use types::{Compare, KeyValue, Op, Page, StoreError, TxnOutcome, WatchEvent, WatchKind};
pub use watch::Watch;

/// The operations every backend provides. Calls block on disk IO (a commit is fsynced before it
/// returns, so an acknowledged write survives a crash); they are short, so async callers may call
/// them directly.
pub trait Store: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key starting with `prefix`, in key order.
    fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError>;

    /// One page of the keys starting with `prefix` (see [`Page`]), so a long history is read a
    /// bounded piece at a time.
    fn range_page(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError>;

    /// Applies `ops` atomically if every comparison holds.
    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError>;

    /// The revision of the last committed write (0 for an empty store).
    fn revision(&self) -> Result<u64, StoreError>;

    /// Changes to keys under `prefix` after `after_revision`, then new ones as they commit.
    fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watch, StoreError>;

    fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        match self.txn(
            &[],
            &[Op::Put {
                key: key.to_owned(),
                value,
            }],
        )? {
            TxnOutcome::Committed { revision } => Ok(revision),
            TxnOutcome::Failed => unreachable!("a transaction without comparisons always commits"),
        }
    }

    /// Deletes `key`; returns the revision of the delete, or `None` if there was no such key.
    fn delete(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if self.get(key)?.is_none() {
            return Ok(None);
        }
        match self.txn(
            &[],
            &[Op::Delete {
                key: key.to_owned(),
            }],
        )? {
            TxnOutcome::Committed { revision } => Ok(Some(revision)),
            TxnOutcome::Failed => unreachable!("a transaction without comparisons always commits"),
        }
    }

    /// Writes `value` only if `key` was last changed at `expected_revision` (`None`: only if the
    /// key does not exist). Returns the new revision, or `None` if someone else changed it first.
    fn compare_and_swap(
        &self,
        key: &str,
        expected_revision: Option<u64>,
        value: Vec<u8>,
    ) -> Result<Option<u64>, StoreError> {
        let compare = Compare {
            key: key.to_owned(),
            mod_revision: expected_revision,
        };
        match self.txn(
            &[compare],
            &[Op::Put {
                key: key.to_owned(),
                value,
            }],
        )? {
            TxnOutcome::Committed { revision } => Ok(Some(revision)),
            TxnOutcome::Failed => Ok(None),
        }
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
