//! The snapshot format: a consistent copy of a whole store, written while it serves and read
//! back into a new store file (`EmbeddedStore::restore`) or checked on its own ([`check`]).
//!
//! A snapshot is UTF-8 text, one JSON object per line, so it streams in both directions and a
//! person can read it with `head`:
//!
//! ```text
//! {"record":"header","format":"coding-job-store-snapshot","version":1,"revision":42,"last_lease":3}
//! {"record":"lease","id":3,"ttl_ms":10000}
//! {"record":"key","key":"cluster/id","create_revision":1,"mod_revision":1,"version":1,"text":"\"ab12\""}
//! {"record":"key","key":"x","create_revision":7,"mod_revision":9,"version":2,"lease":3,"hex":"00ff"}
//! {"record":"end","keys":2,"leases":1,"sha256":"..."}
//! ```
//!
//! The header comes first: the store's revision and the last lease id it granted (so a
//! restored store never grants an id again). Then every live lease with its TTL, then every key
//! in key order with its create and mod revisions, its version, its lease if it has one, and
//! its value: `text` when the value is UTF-8 (every value the server writes is JSON), `hex`
//! otherwise. The last line counts the keys and leases and carries the SHA-256 of every byte
//! before it, so a truncated or altered file is refused rather than half restored. The watch
//! history is not part of a snapshot: a restored store's history starts at its revision.
//!
//! `version` is the format's; a reader refuses a version it does not know.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::types::{KeyValue, LeaseId, StoreError};

/// The `format` of a snapshot's header.
pub const SNAPSHOT_FORMAT: &str = "coding-job-store-snapshot";
/// The version of the format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What a snapshot holds, as its writer or reader counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotSummary {
    /// The store's revision when the snapshot was taken.
    pub revision: u64,
    pub keys: u64,
    pub leases: u64,
    /// The snapshot's size.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// This backend keeps its data elsewhere and has its own tool for copies (etcd).
    #[error("{0}")]
    Unsupported(String),
    #[error("failed to write the snapshot: {0}")]
    Write(std::io::Error),
    #[error("failed to read the snapshot: {0}")]
    Read(std::io::Error),
    #[error("line {line} of the snapshot: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("the snapshot ends after line {lines} without its end record: it is truncated")]
    Truncated { lines: u64 },
    #[error("the snapshot's checksum does not match its contents: it was damaged or altered")]
    Checksum,
    #[error("{} already exists; restoring over a store needs it to be replaced explicitly", path.display())]
    Exists { path: PathBuf },
    #[error("{} is open in another process (is a server running on it?); stop it first", path.display())]
    InUse { path: PathBuf },
    #[error("failed to write the restored store {}: {reason}", path.display())]
    Restore { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One line of a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    Header {
        format: String,
        version: u32,
        revision: u64,
        last_lease: i64,
    },
    Lease {
        id: i64,
        ttl_ms: u64,
    },
    Key {
        key: String,
        create_revision: u64,
        mod_revision: u64,
        version: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
    },
    End {
        keys: u64,
        leases: u64,
        sha256: String,
    },
}

/// Writes a snapshot record by record: the header, the leases, the keys in key order, then
/// [`SnapshotWriter::finish`]. The caller reads them all from one consistent view.
pub(crate) struct SnapshotWriter<W: Write> {
    out: W,
    hasher: Sha256,
    summary: SnapshotSummary,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn start(out: W, revision: u64, last_lease: i64) -> Result<Self, SnapshotError> {
        let mut writer = SnapshotWriter {
            out,
            hasher: Sha256::new(),
            summary: SnapshotSummary {
                revision,
                keys: 0,
                leases: 0,
                bytes: 0,
            },
        };
        writer.record(&Record::Header {
            format: SNAPSHOT_FORMAT.into(),
            version: SNAPSHOT_VERSION,
            revision,
            last_lease,
        })?;
        Ok(writer)
    }

    pub fn lease(&mut self, lease: LeaseId, ttl_ms: u64) -> Result<(), SnapshotError> {
        self.summary.leases += 1;
        self.record(&Record::Lease {
            id: lease.0,
            ttl_ms,
        })
    }

    pub fn key(&mut self, kv: &KeyValue) -> Result<(), SnapshotError> {
        self.summary.keys += 1;
        let (text, hex) = match std::str::from_utf8(&kv.value) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(hex::encode(&kv.value))),
        };
        self.record(&Record::Key {
            key: kv.key.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease.map(|lease| lease.0),
            text,
            hex,
        })
    }

    /// Writes the end record and flushes.
    pub fn finish(mut self) -> Result<SnapshotSummary, SnapshotError> {
        let end = Record::End {
            keys: self.summary.keys,
            leases: self.summary.leases,
            sha256: hex::encode(self.hasher.finalize_reset()),
        };
        self.record(&end)?;
        self.out.flush().map_err(SnapshotError::Write)?;
        Ok(self.summary)
    }

    fn record(&mut self, record: &Record) -> Result<(), SnapshotError> {
        let mut line = serde_json::to_vec(record).map_err(StoreError::encode)?;
        line.push(b'\n');
        self.hasher.update(&line);
        self.summary.bytes += line.len() as u64;
        self.out.write_all(&line).map_err(SnapshotError::Write)
    }
}

/// What a snapshot says, in order, as [`read`] hands it on.
pub(crate) enum Entry {
    Header { revision: u64, last_lease: i64 },
    Lease { lease: LeaseId, ttl_ms: u64 },
    Key(KeyValue),
}

/// Reads a whole snapshot, checking it as it goes, and hands each entry to `visit`; succeeds
/// only if the snapshot is whole (its end record's counts and checksum match). A caller
/// building something from the entries keeps it only then.
pub(crate) fn read(
    input: impl Read,
    mut visit: impl FnMut(Entry) -> Result<(), SnapshotError>,
) -> Result<SnapshotSummary, SnapshotError> {
    let mut input = BufReader::with_capacity(64 << 10, input);
    let mut checker = Checker::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(SnapshotError::Read)?;
        if read == 0 || line.last() != Some(&b'\n') {
            return Err(SnapshotError::Truncated {
                lines: checker.lines,
            });
        }
        if let Some(summary) = checker.line(&line, &mut visit)? {
            // Nothing may follow the end record.
            let mut rest = [0u8; 1];
            return match input.read(&mut rest).map_err(SnapshotError::Read)? {
                0 => Ok(summary),
                _ => Err(checker.malformed("data follows the end record")),
            };
        }
    }
}

/// Checks a snapshot without restoring it: whole, unaltered, well-formed. Its summary.
pub fn check(input: impl Read) -> Result<SnapshotSummary, SnapshotError> {
    read(input, |_| Ok(()))
}

/// The reader's state between lines: what has been seen and what may come next.
#[derive(Default)]
struct Checker {
    hasher: Sha256,
    lines: u64,
    bytes: u64,
    /// The header's revision and last lease, once it has been read.
    header: Option<(u64, i64)>,
    leases: std::collections::HashSet<i64>,
    keys: u64,
    last_key: Option<String>,
}

impl Checker {
    fn malformed(&self, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Malformed {
            line: self.lines,
            reason: reason.into(),
        }
    }

    /// Takes one line (with its newline); the summary once it was the end record.
    fn line(
        &mut self,
        line: &[u8],
        visit: &mut impl FnMut(Entry) -> Result<(), SnapshotError>,
    ) -> Result<Option<SnapshotSummary>, SnapshotError> {
        self.lines += 1;
        let record: Record = serde_json::from_slice(line)
            .map_err(|error| self.malformed(format!("not a snapshot record: {error}")))?;
        let Some((revision, last_lease)) = self.header else {
            let Record::Header {
                format,
                version,
                revision,
                last_lease,
            } = record
            else {
                return Err(self.malformed("the first line is not a snapshot header"));
            };
            if format != SNAPSHOT_FORMAT {
                return Err(self.malformed(format!("not a coding-job store snapshot ({format})")));
            }
            if version != SNAPSHOT_VERSION {
                return Err(self.malformed(format!(
                    "format version {version}; this coding-job reads version {SNAPSHOT_VERSION}"
                )));
            }
            self.header = Some((revision, last_lease));
            self.hash(line);
            visit(Entry::Header {
                revision,
                last_lease,
            })?;
            return Ok(None);
        };
        match record {
            Record::Header { .. } => Err(self.malformed("a second header")),
            Record::Lease { id, ttl_ms } => {
                if self.keys > 0 {
                    return Err(self.malformed("a lease after the keys"));
                }
                if id <= 0 || id > last_lease {
                    return Err(self.malformed(format!(
                        "lease {id} is outside the ids granted (1 to {last_lease})"
                    )));
                }
                if ttl_ms == 0 || !self.leases.insert(id) {
                    return Err(self.malformed(format!("lease {id} is listed twice or has no TTL")));
                }
                self.hash(line);
                visit(Entry::Lease {
                    lease: LeaseId(id),
                    ttl_ms,
                })
                .map(|()| None)
            }
            Record::Key {
                key,
                create_revision,
                mod_revision,
                version,
                lease,
                text,
                hex,
            } => {
                if self.last_key.as_ref().is_some_and(|last| *last >= key) {
                    return Err(self.malformed(format!("key {key} is out of order")));
                }
                if create_revision == 0
                    || create_revision > mod_revision
                    || mod_revision > revision
                    || version == 0
                {
                    return Err(self.malformed(format!(
                        "key {key} has revisions {create_revision}..{mod_revision} and version \
                         {version}, impossible at revision {revision}"
                    )));
                }
                if let Some(lease) = lease.filter(|lease| !self.leases.contains(lease)) {
                    return Err(
                        self.malformed(format!("key {key} names lease {lease}, not listed"))
                    );
                }
                let value = match (text, hex) {
                    (Some(text), None) => text.into_bytes(),
                    (None, Some(hex)) => ::hex::decode(hex)
                        .map_err(|error| self.malformed(format!("key {key}: {error}")))?,
                    _ => {
                        return Err(self.malformed(format!("key {key} needs one of text or hex")));
                    }
                };
                self.hash(line);
                self.keys += 1;
                self.last_key = Some(key.clone());
                visit(Entry::Key(KeyValue {
                    key,
                    value,
                    create_revision,
                    mod_revision,
                    version,
                    lease: lease.map(LeaseId),
                }))
                .map(|()| None)
            }
            Record::End {
                keys,
                leases,
                sha256,
            } => {
                let expected = hex::encode(self.hasher.finalize_reset());
                if sha256 != expected {
                    return Err(SnapshotError::Checksum);
                }
                if keys != self.keys || leases != self.leases.len() as u64 {
                    return Err(self.malformed(format!(
                        "the end record counts {keys} keys and {leases} leases; the snapshot \
                         has {} and {}",
                        self.keys,
                        self.leases.len()
                    )));
                }
                Ok(Some(SnapshotSummary {
                    revision,
                    keys,
                    leases,
                    bytes: self.bytes + line.len() as u64,
                }))
            }
        }
    }

    fn hash(&mut self, line: &[u8]) {
        self.hasher.update(line);
        self.bytes += line.len() as u64;
    }
}
