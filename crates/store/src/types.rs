//! The values the store trades in.

/// A key with its value and the revisions that created and last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
}

impl KeyValue {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_slice(&self.value).map_err(|error| StoreError::Decode {
            key: self.key.clone(),
            reason: error.to_string(),
        })
    }
}

/// A condition of a transaction: `key` was last changed at `mod_revision` (`None`: is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: Option<u64>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
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
    #[error("watch fell behind and lost changes; read again and watch from the current revision")]
    Lagged,
}

impl StoreError {
    pub fn encode(error: impl std::fmt::Display) -> Self {
        StoreError::Encode(error.to_string())
    }
}
