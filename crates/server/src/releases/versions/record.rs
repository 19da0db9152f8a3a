use std::sync::Arc;

use cj_api::VersionInfo;
use cj_spec::ServiceSpec;
use cj_store::{Compare, Op, Store};
use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::keys;
use crate::releases::version_cache::VersionCache;
use tokio::sync::watch;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub env: String,
    pub service: String,
    pub version: u64,
    pub file: String,
    /// The file exactly as pushed.
    pub source: String,
    pub spec: ServiceSpec,
    pub pushed_at: String,
    pub pushed_by: String,
    /// The version of another environment this one is a copy of (`env create --from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<CopiedFrom>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedFrom {
    pub env: String,
    pub version: u64,
}

impl VersionRecord {
    /// The file as pushed, with its `secret_env` values masked: what any answer may show.
    pub fn shown_source(&self) -> String {
        crate::envs::secrets::mask_source(&self.source, &self.spec)
    }

    pub fn info(&self) -> VersionInfo {
        VersionInfo {
            service: self.service.clone(),
            version: self.version,
            file: self.file.clone(),
            pushed_at: self.pushed_at.clone(),
            pushed_by: self.pushed_by.clone(),
        }
    }
}

/// Stored versions as the rest of the server reads them, and the news that one was stored.
pub struct Versions {
    pub(crate) store: Arc<dyn Store>,
    /// Versions are immutable, so parsed ones are kept (within a memory budget).
    pub(crate) cache: VersionCache,
    /// Bumped after every new version (a push or an `update`), so agents pre-warm the images
    /// it names before it is rolled out (see `prewarm`).
    pub(crate) stored: watch::Sender<u64>,
}

impl Versions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let (stored, _) = watch::channel(0);
        Versions {
            store,
            cache: VersionCache::new(VersionCache::DEFAULT_BUDGET_BYTES),
            stored,
        }
    }

    /// A stored version, parsed.
    pub fn get(
        &self,
        env: &str,
        service: &str,
        version: u64,
    ) -> Result<Arc<VersionRecord>, Failure> {
        let cache_key = (env.to_owned(), service.to_owned(), version);
        if let Some(record) = self.cache.get(&cache_key) {
            return Ok(record);
        }
        let stored = self
            .store
            .get(&keys::version(env, service, version))?
            .ok_or_else(|| {
                Failure::NotFound(format!(
                    "service {service} has no version {version} in {env}"
                ))
            })?;
        let record: Arc<VersionRecord> = Arc::new(stored.json()?);
        self.cache
            .insert(cache_key, record.clone(), stored.value.len());
        Ok(record)
    }

    /// A new version was stored.
    pub(crate) fn announce_stored(&self) {
        self.stored.send_modify(|n| *n += 1);
    }

    /// Changes after every new version.
    pub fn subscribe_stored(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }
}
/// What storing a file as a new version takes; no writes if the file is the latest version's.
pub struct NextVersion {
    /// The new version's number, or the latest's when nothing is to be stored.
    pub version: u64,
    pub previous: Option<u64>,
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl NextVersion {
    pub fn stored(&self) -> bool {
        !self.ops.is_empty()
    }
}

/// Environment names end up in store keys and container names.
pub fn check_env_name(env: &str) -> Result<(), Failure> {
    match cj_api::envs::env_name_problem(env) {
        None => Ok(()),
        Some(problem) => Err(Failure::BadRequest(problem)),
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(value).map_err(|error| Failure::Internal(error.to_string()))
}
