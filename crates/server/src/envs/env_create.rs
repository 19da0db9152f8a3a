//! `env create NAME --from SRC`: a new environment holding a copy of the latest version of every
//! service of SRC, recorded as coming from it, with SRC's variables overridden by the request's,
//! its pinned hosts mapped (`--map-hosts`), and an expiry (`--ttl`).
//!
//! Everything is checked first (names, the source, the variables every template uses, the host
//! map), and the record and every copied version are written in one transaction: a refused or
//! failed create leaves nothing behind.

use std::collections::BTreeMap;

use cj_api::envs::{CopiedService, CreateEnvRequest, CreateEnvResponse};
use cj_spec::{SpecErrors, TemplateScope};
use cj_store::{Compare, Op, TxnOutcome};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::base::now_rfc3339;
use crate::envs::records::{EnvRecord, StoredVar, check_var_name};
use crate::error::{Failure, shown};
use crate::keys;
use crate::releases::versions::{CopiedFrom, VersionRecord, check_env_name, to_json};
use crate::state::ServerState;

/// The longest `--ttl`: 30 days. An environment meant to last longer is not temporary.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 60 * 60;

impl ServerState {
    pub fn create_env(
        &self,
        request: &CreateEnvRequest,
        user: &str,
    ) -> Result<CreateEnvResponse, Failure> {
        self.create_env_with_data(request, user, BTreeMap::new(), Vec::new())
    }

    /// [`ServerState::create_env`], the new environment's volumes to be filled from
    /// `volume_sources` (snapshots of the source's, `snapshots`).
    pub fn create_env_with_data(
        &self,
        request: &CreateEnvRequest,
        user: &str,
        volume_sources: BTreeMap<String, crate::envs::records::TaskVolumeSources>,
        snapshots: Vec<cj_api::snapshots::SnapshotRecord>,
    ) -> Result<CreateEnvResponse, Failure> {
        let name = request.name.as_str();
        check_env_name(name)?;
        check_env_name(&request.from)?;
        if name == request.from {
            return Err(Failure::BadRequest(format!(
                "an environment cannot be a copy of itself ({name})"
            )));
        }
        if self.env_exists(name)? {
            return Err(Failure::Conflict(format!(
                "environment {name} already exists; destroy it first with `coding-job env destroy {name}`"
            )));
        }
        let source = self.copy_source(&request.from)?;
        let ttl = request.ttl_seconds.map(check_ttl).transpose()?;

        // Variables: the source's, then the request's over them.
        let mut vars = source.record.vars.clone();
        for (var, value) in &request.vars {
            check_var_name(var)?;
            let secret = request.secret_vars.contains(var)
                || vars.get(var).is_some_and(|existing| existing.secret);
            vars.insert(
                var.clone(),
                StoredVar {
                    value: value.clone(),
                    secret,
                },
            );
        }
        for var in &request.secret_vars {
            if !request.vars.contains_key(var) {
                return Err(Failure::BadRequest(format!(
                    "--secret {var}: no value for {var} was given"
                )));
            }
        }
        let host_map = self.composed_host_map(&source, &request.map_hosts)?;

        // Every service of the source, copied, must render in the new environment.
        let values = crate::envs::records::values(&vars);
        let job_exists = |service: &str, job: &str| {
            source
                .services
                .iter()
                .any(|version| version.service == service && version.spec.job(job).is_some())
        };
        let mut errors = Vec::new();
        for version in &source.services {
            let scope = TemplateScope {
                env: name,
                service: &version.service,
                vars: &values,
                job_exists: &job_exists,
            };
            if let Err(found) = cj_spec::check_templates(&version.file, &version.source, &scope) {
                errors.extend(found.0);
            }
        }
        if !errors.is_empty() {
            let errors = errors
                .into_iter()
                .map(|mut error| {
                    if let Some(file) = &request.vars_file {
                        error.message = format!("{} (variables from {file})", error.message);
                    }
                    error
                })
                .collect();
            return Err(Failure::InvalidConfig(SpecErrors(errors)));
        }

        let now = OffsetDateTime::now_utc();
        let record = EnvRecord {
            name: name.to_owned(),
            from: Some(request.from.clone()),
            created_at: Some(now_rfc3339()),
            created_by: Some(user.to_owned()),
            expires_at: ttl
                .map(|ttl| (now + time::Duration::seconds(ttl as i64)).format(&Rfc3339))
                .transpose()
                .map_err(|error| Failure::Internal(error.to_string()))?,
            vars,
            host_map: host_map.clone(),
            destroying: false,
            destroyed_at: None,
            volume_sources,
        };
        let env_key = keys::env(name);
        let mut compares = vec![Compare::mod_revision(
            env_key.clone(),
            self.store.get(&env_key)?.map(|kv| kv.mod_revision),
        )];
        let mut ops = vec![Op::put(env_key, to_json(&record)?)];
        let mut copied = Vec::new();
        for version in &source.services {
            let mut spec = version.spec.clone();
            spec.map_hosts(&request.map_hosts);
            let next = self.next_version(
                name,
                &version.file,
                &version.source,
                &spec,
                user,
                Some(CopiedFrom {
                    env: request.from.clone(),
                    version: version.version,
                }),
            )?;
            copied.push(CopiedService {
                service: version.service.clone(),
                version: next.version,
                from_version: version.version,
            });
            compares.extend(next.compares);
            ops.extend(next.ops);
        }
        if let TxnOutcome::Failed = self.store.txn(&compares, &ops)? {
            return Err(Failure::Conflict(format!(
                "environment {name} or one of its services changed while it was being created; try again"
            )));
        }
        for service in &copied {
            self.announce_version(name, &service.service, service.version, user);
        }
        self.env_changed();
        tracing::info!(
            env = name,
            from = request.from,
            user,
            services = copied.len(),
            "environment created"
        );
        let env = self
            .env_infos(false)?
            .into_iter()
            .find(|info| info.name == name)
            .ok_or_else(|| Failure::Internal(format!("environment {name} vanished")))?;
        Ok(CreateEnvResponse {
            env,
            copied,
            snapshots,
        })
    }

    /// The environment a copy is made from, with the latest version of each of its services.
    fn copy_source(&self, from: &str) -> Result<CopySource, Failure> {
        let record = self.env_record(from)?;
        if let Some(at) = record.as_ref().and_then(|r| r.destroyed_at.as_ref()) {
            return Err(Failure::NotFound(format!(
                "environment {from} was destroyed at {at}; there is nothing to copy"
            )));
        }
        let mut services = Vec::new();
        for service in self.service_names(from)? {
            if let Some(version) = self.latest_version(from, &service)? {
                let record = self.versions.get(from, &service, version)?;
                services.push(VersionRecord::clone(&record));
            }
        }
        if services.is_empty() {
            return Err(match record {
                Some(_) => Failure::BadRequest(format!(
                    "environment {from} has no services to copy; push some first"
                )),
                None => self.no_such_env(from)?,
            });
        }
        Ok(CopySource {
            record: record.unwrap_or_default(),
            services,
        })
    }

    /// The new environment's host map: the source's, followed by the request's. Every host the
    /// request maps must be one the source's services name.
    fn composed_host_map(
        &self,
        source: &CopySource,
        requested: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Failure> {
        let named: std::collections::BTreeSet<String> = source
            .services
            .iter()
            .flat_map(|version| version.spec.named_hosts())
            .collect();
        for (from, to) in requested {
            for host in [from, to] {
                if !cj_spec::is_valid_name(host) {
                    return Err(Failure::BadRequest(format!(
                        "--map-hosts: invalid host name \"{}\"",
                        shown(host)
                    )));
                }
            }
            if !named.contains(from) {
                let names: Vec<&str> = named.iter().map(String::as_str).collect();
                return Err(Failure::BadRequest(format!(
                    "--map-hosts {from}={to}: no task of {} runs on {from} (hosts named: {})",
                    source.services[0].env,
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        // File host -> source host -> new host, so a copy of a copy keeps mapping from the file.
        let mut composed: BTreeMap<String, String> = source
            .record
            .host_map
            .iter()
            .map(|(file_host, via)| {
                let to = requested.get(via).unwrap_or(via);
                (file_host.clone(), to.clone())
            })
            .collect();
        for (from, to) in requested {
            if !source.record.host_map.values().any(|via| via == from) {
                composed.insert(from.clone(), to.clone());
            }
        }
        Ok(composed)
    }
}

struct CopySource {
    record: EnvRecord,
    services: Vec<VersionRecord>,
}

fn check_ttl(seconds: u64) -> Result<u64, Failure> {
    if (1..=MAX_TTL_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(Failure::BadRequest(format!(
            "ttl of {seconds} s is out of range: expected 1s to 30 days"
        )))
    }
}
