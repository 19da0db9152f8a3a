//! The values the store trades in.

/// A key with its value and the revisions that created and last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    /// How many times the key was put since it was created (1 after the first put); a delete
    /// ends the count, so a key created again starts at 1, as in etcd.
    pub version: u64,
    /// The lease the key goes away with, if it was last put with one.
    pub lease: Option<LeaseId>,
}

impl KeyValue {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_slice(&self.value).map_err(|error| StoreError::Decode {
            key: self.key.clone(),
            reason: error.to_string(),
        })
    }
}

/// A lease: keys put with it are deleted when it expires or is revoked. An `i64`, as etcd's
/// lease ids are, so a backend on etcd passes them through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// Which part of a prefix to read: at most `limit` keys, from the first key (or, with
/// `newest_first`, from the last), continuing past `beyond` (exclusive) when it is given. Keys
/// that sort by time or sequence (zero-padded) thus read newest first, one page at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub newest_first: bool,
    /// The last key of the previous page; this page starts after it (before it, newest first).
    pub beyond: Option<String>,
}

impl Page {
    /// The last `limit` keys, newest first.
    pub fn newest(limit: usize) -> Page {
        Page {
            limit,
            newest_first: true,
            beyond: None,
        }
    }
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets `key` to `value`. With a lease, the key is deleted when the lease ends; without
    /// one, a key that had a lease no longer has it (as in etcd, each put says which lease).
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
}

impl Op {
    /// A put without a lease: the key stays until deleted.
    pub fn put(key: impl Into<String>, value: Vec<u8>) -> Op {
        Op::Put {
            key: key.into(),
            value,
            lease: None,
        }
    }

    /// A put whose key is deleted when `lease` expires or is revoked.
    pub fn put_with_lease(key: impl Into<String>, value: Vec<u8>, lease: LeaseId) -> Op {
        Op::Put {
            key: key.into(),
            value,
            lease: Some(lease),
        }
    }

    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete { key: key.into() }
    }

    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    Committed {
        revision: u64,
    },
    /// A comparison did not hold; nothing was written.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WatchKind {
    Put,
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub revision: u64,
    pub key: String,
    pub kind: WatchKind,
    /// The new value of a put.
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend failed: {0}")]
    Backend(String),
    #[error("cannot decode the value of {key}: {reason}")]
    Decode { key: String, reason: String },
    #[error("cannot encode a value: {0}")]
    Encode(String),
    #[error("watch from revision {requested} is no longer possible: history starts at {oldest}")]
    Compacted { requested: u64, oldest: u64 },
    #[error("revision {requested} is in the future: the store is at revision {current}")]
    FutureRevision { requested: u64, current: u64 },
    #[error("watch fell behind and lost changes; read again and watch from the current revision")]
    Lagged,
    /// The lease was never granted, was revoked, or expired (its keys are gone or going).
    #[error("lease {0} does not exist: it expired, was revoked or was never granted")]
    LeaseNotFound(LeaseId),
    /// A networked backend cannot answer now: its server is unreachable, did not answer within
    /// the call's deadline, or the backend's view of the data is not known to be current. Calls
    /// fail fast with this rather than wait or answer from a stale view; the caller retries
    /// later. A write that fails so may or may not have been applied (its answer was lost).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub fn encode(error: impl std::fmt::Display) -> Self {
        StoreError::Encode(error.to_string())
    }
}
