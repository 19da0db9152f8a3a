//! The host's artifact cache: each task's code (a tarball named by `artifact.url`) is fetched
//! once per host, checked against its `sha256` and kept as `DIR/SHA256`, so the host's other
//! tasks of that version, and every restart, take it from disk.
//!
//! A fetch writes to a temporary file in the cache's directory while computing the checksum, and
//! only a file whose checksum matches is renamed into place: nothing half-written or corrupt is
//! ever taken for an artifact. Tasks that need the same checksum at once wait on one lock, so
//! the first fetches and the others find its file. The cache is bounded: after a file is added,
//! the least recently used ones (by modification time, touched on every use) are removed until
//! the total is under the bound, never the one just added. A handle of the file is kept open
//! until it is unpacked, so an eviction meanwhile cannot take it away.

mod directories;
mod evict;
mod fetch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub(crate) use directories::directories_tar;
use evict::evict_least_recently_used;

/// Where `coding-job agent` keeps artifacts unless told (`--artifact-cache`).
pub const DEFAULT_ARTIFACT_CACHE_DIR: &str = "/var/lib/coding-job/artifacts";
/// How much the cache keeps at most unless told (`--artifact-cache-size`): 5 GiB.
pub const DEFAULT_ARTIFACT_CACHE_BYTES: u64 = 5 << 30;

/// Where the host's artifacts are kept and how much of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactCacheConfig {
    /// Made when the first artifact is fetched; nothing is written before.
    pub dir: PathBuf,
    /// The bound on the total size of the cached files, in bytes.
    pub max_bytes: u64,
}

impl Default for ArtifactCacheConfig {
    fn default() -> Self {
        ArtifactCacheConfig {
            dir: PathBuf::from(DEFAULT_ARTIFACT_CACHE_DIR),
            max_bytes: DEFAULT_ARTIFACT_CACHE_BYTES,
        }
    }
}

/// An artifact ready to be unpacked: its file, open.
#[derive(Debug)]
pub(crate) struct CachedArtifact {
    pub file: std::fs::File,
    pub bytes: u64,
    /// How long fetching it took; `None` when it was in the cache already.
    pub fetched_in: Option<Duration>,
}

impl CachedArtifact {
    /// Where it came from, for the task's history: `artifact fetched: 12.3 MB in 0.4 s` or
    /// `artifact from the host's cache`.
    pub fn note(&self) -> String {
        match self.fetched_in {
            Some(took) => format!(
                "artifact fetched: {:.1} MB in {:.1} s",
                self.bytes as f64 / 1e6,
                took.as_secs_f64()
            ),
            None => "artifact from the host's cache".to_owned(),
        }
    }
}

pub(crate) struct ArtifactCache {
    config: ArtifactCacheConfig,
    /// Downloads come from anywhere (through the environment's proxy), with the timeouts of
    /// seeds.
    http: reqwest::Client,
    /// One lock per checksum being looked up or fetched; an entry goes when its last user does.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ArtifactCache {
    /// A cache in `config.dir`; touches nothing until the first artifact.
    pub fn new(config: ArtifactCacheConfig) -> ArtifactCache {
        ArtifactCache {
            config,
            http: crate::seed::client(),
            fetching: Mutex::default(),
        }
    }

    /// The artifact of checksum `sha256` (64 lowercase hex digits), from the cache or else
    /// fetched from `url` (an http(s) URL or a file on the host). The error is the cause in
    /// words: `sha256 mismatch: expected ..., got ...`, `HTTP 404 Not Found`,
    /// `connection refused`.
    pub async fn get(&self, url: &str, sha256: &str) -> Result<CachedArtifact, String> {
        if !is_checksum(sha256) {
            // Rendered specs are checked; this keeps a path out of the cache's directory name.
            return Err(format!("invalid sha256 {sha256:?}"));
        }
        let lock = {
            let mut fetching = crate::observe::lock(&self.fetching);
            fetching.entry(sha256.to_owned()).or_default().clone()
        };
        let result = {
            let _only_one = lock.lock().await;
            self.get_alone(url, sha256).await
        };
        let mut fetching = crate::observe::lock(&self.fetching);
        // Two references: the map's and this one. Anyone else waiting keeps the entry.
        if Arc::strong_count(&lock) == 2 {
            fetching.remove(sha256);
        }
        result
    }

    /// [`Self::get`], holding the checksum's lock.
    async fn get_alone(&self, url: &str, sha256: &str) -> Result<CachedArtifact, String> {
        let dir = self.config.dir.clone();
        let cached_path = dir.join(sha256);
        let cached = {
            let path = cached_path.clone();
            tokio::task::spawn_blocking(move || open_and_touch(&path))
                .await
                .map_err(|error| error.to_string())?
        };
        match cached {
            Ok(Some(artifact)) => return Ok(artifact),
            Ok(None) => {}
            Err(error) => {
                let cause = crate::seed::reason(&error);
                tracing::warn!(path = %cached_path.display(), cause, "cannot read a cached artifact; fetching it again");
            }
        }
        tokio::fs::create_dir_all(&dir).await.map_err(|error| {
            format!(
                "cannot make the artifact cache {}: {}",
                dir.display(),
                crate::seed::reason(&error)
            )
        })?;
        let started = Instant::now();
        let fetched = fetch::to_temporary_file(&self.http, url, &dir).await?;
        if fetched.sha256 != sha256 {
            return Err(format!(
                "sha256 mismatch: expected {sha256}, got {}",
                fetched.sha256
            ));
        }
        let file = fetched.temporary.persist(&cached_path).map_err(|error| {
            format!(
                "cannot keep it in the cache: {}",
                crate::seed::reason(&error)
            )
        })?;
        let fetched_in = started.elapsed();
        let (max_bytes, keep) = (self.config.max_bytes, sha256.to_owned());
        let evicted =
            tokio::task::spawn_blocking(move || evict_least_recently_used(&dir, max_bytes, &keep))
                .await
                .map_err(|error| error.to_string())?;
        match evicted {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, "artifacts evicted from the host's cache")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot evict artifacts from the host's cache"),
        }
        Ok(CachedArtifact {
            file,
            bytes: fetched.bytes,
            fetched_in: Some(fetched_in),
        })
    }
}

/// 64 lowercase hex digits: the names of the cache's files.
pub(crate) fn is_checksum(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The cached file at `path`, opened and marked used now; `None` when there is none.
fn open_and_touch(path: &Path) -> std::io::Result<Option<CachedArtifact>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    file.set_modified(SystemTime::now())?;
    let bytes = file.metadata()?.len();
    Ok(Some(CachedArtifact {
        file,
        bytes,
        fetched_in: None,
    }))
}

#[cfg(test)]
mod tests;
