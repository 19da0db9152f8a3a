//! Pushed versions: every push stores the file as written and its parsed form, under the next
//! version number, atomically (compare-and-swap on the `latest` pointer), so concurrent pushes
//! never share a number and a crash never leaves half a version.

use cj_api::{PushResponse, VersionInfo};
use cj_spec::ServiceSpec;
use cj_store::{Compare, Op, StoreJson, TxnOutcome};
use serde::{Deserialize, Serialize};

use crate::error::ApiFailure;
use crate::keys;
use crate::state::{ServerState, now_rfc3339};

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
}

impl VersionRecord {
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

impl ServerState {
    /// Parses and stores a new version. A rejected file changes nothing.
    pub fn push(
        &self,
        env: &str,
        file: &str,
        source: &str,
        user: &str,
        check_revision: Option<u64>,
    ) -> Result<PushResponse, ApiFailure> {
        check_env_name(env)?;
        let spec = cj_spec::parse_service(file, source).map_err(ApiFailure::InvalidConfig)?;
        self.store_version(env, file, source, spec, user, check_revision)
    }

    /// Stores a parsed file as the service's next version. With `check_revision`, refuses if
    /// anything about the service changed after that revision (optimistic concurrency).
    pub fn store_version(
        &self,
        env: &str,
        file: &str,
        source: &str,
        spec: cj_spec::ServiceSpec,
        user: &str,
        check_revision: Option<u64>,
    ) -> Result<PushResponse, ApiFailure> {
        let latest_key = keys::latest(env, &spec.service);
        if let Some(expected) = check_revision {
            let current = self.service_revision(env, &spec.service)?;
            if current > expected {
                return Err(ApiFailure::Conflict(format!(
                    "service {} changed since revision {expected} (now {current}): run `diff` again",
                    spec.service
                )));
            }
        }
        loop {
            let latest = self.store.get(&latest_key)?;
            let previous: Option<u64> = latest.as_ref().map(|kv| kv.json()).transpose()?;
            let version = previous.unwrap_or(0) + 1;
            let changed = match previous {
                Some(previous) => self.version(env, &spec.service, previous)?.source != source,
                None => true,
            };
            let record = VersionRecord {
                env: env.to_owned(),
                service: spec.service.clone(),
                version,
                file: file.to_owned(),
                source: source.to_owned(),
                spec: spec.clone(),
                pushed_at: now_rfc3339(),
                pushed_by: user.to_owned(),
            };
            let compare = Compare {
                key: latest_key.clone(),
                mod_revision: latest.as_ref().map(|kv| kv.mod_revision),
            };
            let ops = [
                Op::Put {
                    key: keys::version(env, &spec.service, version),
                    value: to_json(&record)?,
                },
                Op::Put {
                    key: latest_key.clone(),
                    value: to_json(&version)?,
                },
            ];
            // Lost a race with another push: read the new latest and try again.
            if let TxnOutcome::Committed { revision } = self.store.txn(&[compare], &ops)? {
                // Ops hear of every new version, whoever made it (a push or an `update`).
                self.notifier.send(crate::notify::Notification::Push {
                    env: env.to_owned(),
                    service: spec.service.clone(),
                    version,
                    user: user.to_owned(),
                    at: now_rfc3339(),
                });
                return Ok(PushResponse {
                    env: env.to_owned(),
                    service: spec.service,
                    version,
                    previous,
                    changed,
                    revision,
                });
            }
        }
    }

    /// The last revision at which anything about the service changed: a push, `up`/`down`, or
    /// a deployment step.
    pub fn service_revision(&self, env: &str, service: &str) -> Result<u64, ApiFailure> {
        let mut revision = self
            .store
            .get(&keys::latest(env, service))?
            .map(|kv| kv.mod_revision)
            .unwrap_or(0);
        for prefix in [
            keys::desired_of_service(env, service),
            keys::deployments(env, service),
        ] {
            for kv in self.store.range(&prefix)? {
                revision = revision.max(kv.mod_revision);
            }
        }
        Ok(revision)
    }

    pub fn latest_version(&self, env: &str, service: &str) -> Result<Option<u64>, ApiFailure> {
        Ok(self.store.get_json(&keys::latest(env, service))?)
    }

    /// The names of every service pushed to `env`.
    pub fn service_names(&self, env: &str) -> Result<Vec<String>, ApiFailure> {
        let prefix = keys::services(env);
        Ok(self
            .store
            .range(&prefix)?
            .into_iter()
            .filter_map(|kv| {
                kv.key
                    .strip_prefix(&prefix)?
                    .strip_suffix("/latest")
                    .map(str::to_owned)
            })
            .collect())
    }

    pub fn version_infos(&self, env: &str, service: &str) -> Result<Vec<VersionInfo>, ApiFailure> {
        let records: Vec<VersionRecord> = self.store.range_json(&keys::versions(env, service))?;
        Ok(records.iter().map(VersionRecord::info).collect())
    }
}

/// Environment names end up in store keys and container names.
pub fn check_env_name(env: &str) -> Result<(), ApiFailure> {
    let valid = !env.is_empty()
        && env.len() <= 63
        && env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && env
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(ApiFailure::BadRequest(format!(
            "invalid environment name \"{env}\": expected letters, digits, '-' or '_'"
        )))
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiFailure> {
    serde_json::to_vec(value).map_err(|error| ApiFailure::Internal(error.to_string()))
}
