//! Keeping the cache under its bound: the least recently used files go first.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::is_checksum;

/// A temporary file this old was left by an agent that stopped while fetching.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Removes the least recently used artifacts of `dir` (oldest modification time first) until
/// their total is at most `max_bytes`, never `keep`; returns the checksums removed. Temporary
/// files of abandoned fetches are removed too; other files are left alone.
pub(crate) fn evict_least_recently_used(
    dir: &Path,
    max_bytes: u64,
    keep: &str,
) -> io::Result<Vec<String>> {
    let mut artifacts: Vec<(SystemTime, String, u64)> = Vec::new();
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let metadata = match entry.metadata() {
            Ok(metadata) if metadata.is_file() => metadata,
            // Gone meanwhile (another eviction), or not a file of ours.
            _ => continue,
        };
        let modified = metadata.modified()?;
        if name.starts_with(".partial-") {
            let age = SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default();
            if age > ABANDONED_AFTER {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        if !is_checksum(&name) {
            continue;
        }
        total += metadata.len();
        artifacts.push((modified, name, metadata.len()));
    }
    artifacts.sort();
    let mut removed = Vec::new();
    for (_, name, bytes) in artifacts {
        if total <= max_bytes {
            break;
        }
        if name == keep {
            continue;
        }
        match std::fs::remove_file(dir.join(&name)) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        total -= bytes;
        removed.push(name);
    }
    Ok(removed)
}
