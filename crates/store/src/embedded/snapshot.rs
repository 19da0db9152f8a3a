//! Snapshots of the embedded backend: taken from one redb read transaction while the store
//! serves, and restored into a new file (see `crate::snapshot` for the format).
//!
//! A restored file holds what a snapshot keeps: every key with its revisions, version and
//! lease, the revision, the leases with their TTLs and the last lease id granted. Its watch
//! log is empty, so its history starts at the snapshot's revision (a watch from before it is
//! told it was compacted); its leases get their full TTL when it is opened, as after any
//! restart.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable};

use super::format::{
    self, Header, KV, LAST_LEASE, LEASE_KEYS, LEASES, LOG_BYTES, META, REVISION, backend, decode,
    encode,
};
use super::{EmbeddedStore, Shared};
use crate::snapshot::{self, Entry, SnapshotError, SnapshotSummary, SnapshotWriter};
use crate::types::LeaseId;

impl Shared {
    pub(super) fn snapshot(&self, out: &mut dyn Write) -> Result<SnapshotSummary, SnapshotError> {
        // One read transaction: what it reads is one revision, whatever commits meanwhile.
        let read = self.db.begin_read().map_err(backend)?;
        let meta = read.open_table(META).map_err(backend)?;
        let counter = |name: &str| -> Result<u64, SnapshotError> {
            Ok(meta.get(name).map_err(backend)?.map_or(0, |v| v.value()))
        };
        let revision = counter(REVISION)?;
        let last_lease = i64::try_from(counter(LAST_LEASE)?).map_err(backend)?;
        let out = BufWriter::with_capacity(64 << 10, out);
        let mut writer = SnapshotWriter::start(out, revision, last_lease)?;
        for entry in read
            .open_table(LEASES)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (lease, ttl_ms) = entry.map_err(backend)?;
            writer.lease(LeaseId(lease.value()), ttl_ms.value())?;
        }
        for entry in read
            .open_table(KV)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (key, bytes) = entry.map_err(backend)?;
            writer.key(&decode(key.value(), bytes.value())?)?;
        }
        writer.finish()
    }
}

impl EmbeddedStore {
    /// Builds a new store file at `path` from a snapshot. The file is written beside `path`
    /// and renamed into place only once the whole snapshot has been read and checked, so a bad
    /// snapshot leaves nothing behind. An existing file at `path` is an error unless `replace`;
    /// one that a process has open (a running server) is never replaced.
    pub fn restore(
        snapshot: impl Read,
        path: &Path,
        replace: bool,
    ) -> Result<SnapshotSummary, SnapshotError> {
        // Held until the new file is in place, so no server opens the old one meanwhile.
        let _old = match path.try_exists() {
            Ok(false) => None,
            Ok(true) if !replace => {
                return Err(SnapshotError::Exists {
                    path: path.to_owned(),
                });
            }
            Ok(true) => match Database::open(path) {
                Ok(old) => Some(old),
                Err(DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(SnapshotError::InUse {
                        path: path.to_owned(),
                    });
                }
                // A damaged file is what a restore is for: it is replaced all the same.
                Err(_) => None,
            },
            Err(error) => return Err(restore_failed(path, error)),
        };
        let partial = partial_path(path);
        let _ = std::fs::remove_file(&partial);
        let written = write_restored(snapshot, &partial);
        let summary = match written {
            Ok(summary) => summary,
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                return Err(error);
            }
        };
        std::fs::rename(&partial, path).map_err(|error| restore_failed(path, error))?;
        // The rename itself survives a crash once the directory is on disk.
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| restore_failed(path, error))?;
        }
        Ok(summary)
    }
}

/// `store.redb` -> `store.redb.restoring`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".restoring");
    path.with_file_name(name)
}

fn restore_failed(path: &Path, error: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Restore {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Writes the snapshot's contents into a new redb file at `path` in one transaction, committed
/// only if the snapshot was read whole.
fn write_restored(snapshot: impl Read, path: &Path) -> Result<SnapshotSummary, SnapshotError> {
    let db = Database::create(path).map_err(|error| restore_failed(path, error))?;
    let write = db.begin_write().map_err(backend)?;
    format::prepare(&write)?;
    let summary = {
        let mut kv = write.open_table(KV).map_err(backend)?;
        let mut leases = write.open_table(LEASES).map_err(backend)?;
        let mut lease_keys = write.open_multimap_table(LEASE_KEYS).map_err(backend)?;
        let mut meta = write.open_table(META).map_err(backend)?;
        snapshot::read(snapshot, |entry| {
            match entry {
                Entry::Header {
                    revision,
                    last_lease,
                } => {
                    meta.insert(REVISION, revision).map_err(backend)?;
                    let last_lease = u64::try_from(last_lease).map_err(backend)?;
                    meta.insert(LAST_LEASE, last_lease).map_err(backend)?;
                    meta.insert(LOG_BYTES, 0).map_err(backend)?;
                }
                Entry::Lease { lease, ttl_ms } => {
                    leases.insert(lease.0, ttl_ms).map_err(backend)?;
                }
                Entry::Key(entry) => {
                    let header = Header {
                        create_revision: entry.create_revision,
                        mod_revision: entry.mod_revision,
                        version: entry.version,
                        lease: entry.lease,
                    };
                    kv.insert(entry.key.as_str(), encode(header, &entry.value).as_slice())
                        .map_err(backend)?;
                    if let Some(lease) = entry.lease {
                        lease_keys
                            .insert(lease.0, entry.key.as_str())
                            .map_err(backend)?;
                    }
                }
            }
            Ok(())
        })?
    };
    write.commit().map_err(backend)?;
    Ok(summary)
}
