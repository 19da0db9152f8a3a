//! How the embedded backend lays its data out in redb, and how a file written by an older
//! version is brought up to date when it is opened.

use redb::{MultimapTableDefinition, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::types::{KeyValue, LeaseId, StoreError, WatchKind};

/// key -> [`HEADER_BYTES`] of header ([`Header`], little-endian) + value.
pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// revision -> the changes made at it (a JSON list of [`LogEntry`]), for watches that start
/// in the past.
pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// lease -> its TTL in milliseconds. Deadlines are not stored: a reopened store restarts each
/// lease's TTL, as etcd does when a new leader takes over.
pub(super) const LEASES: TableDefinition<i64, u64> = TableDefinition::new("leases");
/// lease -> the keys put with it, so ending a lease finds its keys without a scan.
pub(super) const LEASE_KEYS: MultimapTableDefinition<i64, &str> =
    MultimapTableDefinition::new("lease_keys");

/// `META` names.
pub(super) const REVISION: &str = "revision";
/// The log's size in bytes, kept as entries come and go.
pub(super) const LOG_BYTES: &str = "log_bytes";
/// The last lease id granted; the next is one more.
pub(super) const LAST_LEASE: &str = "last_lease";
/// The layout of `KV` entries: absent in files written before versions and leases, whose
/// headers hold only the two revisions.
const FORMAT: &str = "format";
const FORMAT_WITH_VERSION_AND_LEASE: u64 = 2;

const HEADER_BYTES: usize = 32;
const OLD_HEADER_BYTES: usize = 16;

/// What a `KV` entry says about its key besides the value.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
    /// Stored as 0 when there is none (etcd's own "no lease").
    pub lease: Option<LeaseId>,
}

pub(super) fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// A stored entry; one too short for its header (a damaged file) is an error, not a panic.
pub(super) fn decode(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let field = |index: usize| {
        bytes
            .get(index * 8..index * 8 + 8)
            .and_then(|slice| slice.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(create_revision), Some(mod_revision), Some(version), Some(lease)) =
        (field(0), field(1), field(2), field(3))
    else {
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
        value: bytes[HEADER_BYTES..].to_vec(),
        create_revision,
        mod_revision,
        version,
        lease: (lease != 0).then_some(LeaseId(lease as i64)),
    })
}

pub(super) fn encode(header: Header, value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + value.len());
    bytes.extend_from_slice(&header.create_revision.to_le_bytes());
    bytes.extend_from_slice(&header.mod_revision.to_le_bytes());
    bytes.extend_from_slice(&header.version.to_le_bytes());
    let lease = header.lease.map_or(0, |lease| lease.0 as u64);
    bytes.extend_from_slice(&lease.to_le_bytes());
    bytes.extend_from_slice(value);
    bytes
}

/// A counter in `META`, 0 when it was never written.
pub(super) fn meta_value(meta: &Table<&str, u64>, name: &str) -> Result<u64, StoreError> {
    Ok(meta.get(name).map_err(backend)?.map_or(0, |v| v.value()))
}

/// Creates the tables a new file lacks, and rewrites entries of the older layout (two
/// revisions only) in the current one. Their version is unknown and taken as 1, which is what
/// a key put once has; none of them had a lease.
pub(super) fn prepare(write: &WriteTransaction) -> Result<(), StoreError> {
    let mut kv = write.open_table(KV).map_err(backend)?;
    write.open_table(LOG).map_err(backend)?;
    write.open_table(LEASES).map_err(backend)?;
    write.open_multimap_table(LEASE_KEYS).map_err(backend)?;
    let mut meta = write.open_table(META).map_err(backend)?;
    if meta_value(&meta, FORMAT)? == FORMAT_WITH_VERSION_AND_LEASE {
        return Ok(());
    }
    let mut upgraded = Vec::new();
    for entry in kv.iter().map_err(backend)? {
        let (key, bytes) = entry.map_err(backend)?;
        let bytes = bytes.value();
        // A damaged entry stays as it is: reading it is an error, as it was before.
        if bytes.len() < OLD_HEADER_BYTES {
            continue;
        }
        let revision =
            |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let header = Header {
            create_revision: revision(0),
            mod_revision: revision(8),
            version: 1,
            lease: None,
        };
        upgraded.push((
            key.value().to_owned(),
            encode(header, &bytes[OLD_HEADER_BYTES..]),
        ));
    }
    for (key, bytes) in upgraded {
        kv.insert(key.as_str(), bytes.as_slice()).map_err(backend)?;
    }
    meta.insert(FORMAT, FORMAT_WITH_VERSION_AND_LEASE)
        .map_err(backend)?;
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct LogEntry {
    pub key: String,
    pub kind: WatchKind,
    pub value: Option<LogValue>,
}

/// A value as the log keeps it: as text when it is UTF-8 (every value the server writes is
/// JSON), which JSON holds at its own size instead of as a list of numbers. Logs written with
/// byte lists still read.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum LogValue {
    Text(String),
    Bytes(Vec<u8>),
}

impl LogValue {
    pub fn new(bytes: &[u8]) -> LogValue {
        match std::str::from_utf8(bytes) {
            Ok(text) => LogValue::Text(text.to_owned()),
            Err(_) => LogValue::Bytes(bytes.to_vec()),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            LogValue::Text(text) => text.into_bytes(),
            LogValue::Bytes(bytes) => bytes,
        }
    }
}
