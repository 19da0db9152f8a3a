//! Environments: `envs/NAME` records an environment's origin, variables, host map and expiry.
//! An environment that was only ever pushed to (`production`, usually) has no record until one
//! of its variables is set; it exists because it has services.
//!
//! Creating (a copy of another environment) is `env_create`; destroying, and destroying on
//! expiry, is `env_destroy`. Here: reading records, listing, variables, and the checks every
//! write to an environment makes first.

use std::collections::{BTreeMap, BTreeSet};

use cj_api::envs::{EnvInfo, EnvVar, EnvVars, SetVarsRequest};
use cj_spec::TemplateScope;
use cj_store::StoreJson;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Failure, shown};
use crate::keys;
use crate::releases::versions::check_env_name;
use crate::state::{DesiredJob, ServerState};

/// `envs/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Destroyed automatically after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, StoredVar>,
    /// Pinned hosts of the file, and the host this environment runs their tasks on instead.
    #[serde(default)]
    pub host_map: BTreeMap<String, String>,
    /// Being destroyed: nothing new may start in it.
    #[serde(default)]
    pub destroying: bool,
    /// Destroyed (its versions and history stay); it can be created again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<String>,
    /// A copy made `--with-data`: by `SERVICE/JOB`, then task, then volume, the snapshot of
    /// the source's volume each new volume is filled from (see `DesiredJob::volume_sources`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_sources: BTreeMap<String, crate::envs::records::TaskVolumeSources>,
}

/// Task -> volume -> the snapshot it is filled from.
pub type TaskVolumeSources = BTreeMap<String, BTreeMap<String, cj_api::agent::VolumeSource>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVar {
    pub value: String,
    #[serde(default)]
    pub secret: bool,
}

impl EnvRecord {
    pub fn is_destroyed(&self) -> bool {
        self.destroyed_at.is_some()
    }

    /// Whether its time is up at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at()
            .is_some_and(|expires| expires <= now && !self.is_destroyed())
    }

    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
            .as_deref()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
    }

    /// The values secret variables hold, to mask wherever rendered configuration is shown.
    pub fn secret_values(&self) -> Vec<String> {
        self.vars
            .values()
            .filter(|var| var.secret && !var.value.is_empty())
            .map(|var| var.value.clone())
            .collect()
    }
}

/// Variables by name with their values, as templates see them.
pub fn values(vars: &BTreeMap<String, StoredVar>) -> BTreeMap<String, String> {
    vars.iter()
        .map(|(name, var)| (name.clone(), var.value.clone()))
        .collect()
}

/// A variable name usable as `{{ vars.NAME }}`: a letter or `_`, then letters, digits or `_`.
pub fn check_var_name(name: &str) -> Result<(), Failure> {
    let valid = name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Failure::BadRequest(format!(
            "invalid variable name \"{}\": expected a letter or '_', then letters, digits or '_' (it is used as {{{{ vars.NAME }}}})",
            shown(name)
        )))
    }
}

impl ServerState {
    pub fn env_record(&self, env: &str) -> Result<Option<EnvRecord>, Failure> {
        Ok(self.store.get_json(&keys::env(env))?)
    }

    /// Whether `env` exists now: created and not destroyed, or pushed to without a record.
    pub fn env_exists(&self, env: &str) -> Result<bool, Failure> {
        Ok(match self.env_record(env)? {
            Some(record) => !record.is_destroyed(),
            None => !self.service_names(env)?.is_empty(),
        })
    }

    /// Refuses changes to an environment that was destroyed, is being destroyed, or expired.
    pub fn check_env_writable(&self, env: &str) -> Result<Option<EnvRecord>, Failure> {
        check_env_name(env)?;
        let record = self.env_record(env)?;
        if let Some(record) = &record {
            if let Some(at) = &record.destroyed_at {
                return Err(Failure::Conflict(format!(
                    "environment {env} was destroyed at {at}; create it again with `coding-job env create {env} --from ENV`"
                )));
            }
            if record.destroying {
                return Err(Failure::Conflict(format!(
                    "environment {env} is being destroyed"
                )));
            }
            if record.is_expired(OffsetDateTime::now_utc()) {
                return Err(Failure::Conflict(format!(
                    "environment {env} expired at {} and is being destroyed",
                    record.expires_at.as_deref().unwrap_or_default()
                )));
            }
        }
        Ok(record)
    }

    /// Every environment's name (those with services or a record), with its record if it has
    /// one.
    fn env_records(&self) -> Result<(BTreeSet<String>, BTreeMap<String, EnvRecord>), Failure> {
        let records: BTreeMap<String, EnvRecord> = self
            .store
            .range_json::<EnvRecord>(keys::ENVS)?
            .into_iter()
            .map(|record| (record.name.clone(), record))
            .collect();
        let mut names: BTreeSet<String> = self
            .distinct_children(keys::SERVICES_ALL)?
            .into_iter()
            .collect();
        names.extend(records.keys().cloned());
        Ok((names, records))
    }

    /// The environments that exist now (not destroyed), by name: what [`ServerState::env_infos`]
    /// lists, without counting each one's tasks (every page's picker asks for this).
    pub fn live_env_names(&self) -> Result<Vec<String>, Failure> {
        let (names, records) = self.env_records()?;
        Ok(names
            .into_iter()
            .filter(|name| !records.get(name).is_some_and(EnvRecord::is_destroyed))
            .collect())
    }

    /// Every environment with services or a record (destroyed ones only with `all`).
    pub fn env_infos(&self, all: bool) -> Result<Vec<EnvInfo>, Failure> {
        let (names, records) = self.env_records()?;
        let desired: Vec<DesiredJob> = self.desired_jobs(keys::DESIRED_ALL)?;
        let mut infos = Vec::new();
        for name in names {
            let record = records.get(&name);
            if !all && record.is_some_and(EnvRecord::is_destroyed) {
                continue;
            }
            infos.push(self.env_info(&name, record, &desired)?);
        }
        Ok(infos)
    }

    fn env_info(
        &self,
        name: &str,
        record: Option<&EnvRecord>,
        desired: &[DesiredJob],
    ) -> Result<EnvInfo, Failure> {
        let jobs: Vec<&DesiredJob> = desired.iter().filter(|job| job.env == name).collect();
        let mut tasks_total = 0;
        let mut tasks_running = 0;
        for job in &jobs {
            for task in self.raw_desired_tasks(job)? {
                tasks_total += 1;
                if self
                    .copies_of(&task.key)
                    .iter()
                    .any(|(_, container)| container.is_live())
                {
                    tasks_running += 1;
                }
            }
        }
        let state = match record {
            Some(record) if record.is_destroyed() => "destroyed",
            Some(record) if record.destroying => "destroying",
            _ if jobs.is_empty() => "down",
            _ => "up",
        };
        Ok(EnvInfo {
            name: name.to_owned(),
            from: record.and_then(|r| r.from.clone()),
            created_at: record.and_then(|r| r.created_at.clone()),
            created_by: record.and_then(|r| r.created_by.clone()),
            expires_at: record.and_then(|r| r.expires_at.clone()),
            services: self.service_names(name)?,
            jobs_up: jobs.len(),
            tasks_running,
            tasks_total,
            state: state.into(),
        })
    }

    /// `env vars ENV`: secret values are never sent.
    pub fn env_vars(&self, env: &str) -> Result<EnvVars, Failure> {
        check_env_name(env)?;
        if env != cj_api::DEFAULT_ENV && !self.env_exists(env)? {
            return Err(self.no_such_env(env)?);
        }
        let record = self.env_record(env)?.unwrap_or_default();
        Ok(EnvVars {
            env: env.to_owned(),
            vars: shown_vars(&record),
            restarting: Vec::new(),
        })
    }

    /// `env vars ENV --set K=V`: refused if a variable some service's templates use would be
    /// removed; answers with the tasks whose rendered configuration changed (they restart).
    pub async fn set_env_vars(
        &self,
        env: &str,
        request: &SetVarsRequest,
        user: &str,
    ) -> Result<EnvVars, Failure> {
        let existing = self.check_env_writable(env)?;
        // `production` exists before its first push: its variables come first, so the push
        // that uses them is accepted.
        if existing.is_none() && env != cj_api::DEFAULT_ENV && !self.env_exists(env)? {
            return Err(self.no_such_env(env)?);
        }
        let mut record = existing.clone().unwrap_or_else(|| EnvRecord {
            name: env.to_owned(),
            ..EnvRecord::default()
        });
        for name in request.set.keys().chain(&request.secret) {
            check_var_name(name)?;
        }
        for name in &request.secret {
            if !request.set.contains_key(name) && !record.vars.contains_key(name) {
                return Err(Failure::BadRequest(format!(
                    "cannot mark {name} secret: it is not set in environment {env}"
                )));
            }
        }
        for (name, value) in &request.set {
            match value {
                Some(value) => {
                    let secret = request.secret.contains(name)
                        || record.vars.get(name).is_some_and(|var| var.secret);
                    record.vars.insert(
                        name.clone(),
                        StoredVar {
                            value: value.clone(),
                            secret,
                        },
                    );
                }
                None => {
                    record.vars.remove(name);
                }
            }
        }
        for name in &request.secret {
            if let Some(var) = record.vars.get_mut(name) {
                var.secret = true;
            }
        }
        self.check_templates_of_env(env, &record)?;

        let before = self.rendered_hashes(env)?;
        let key = keys::env(env);
        let compare = cj_store::Compare::mod_revision(
            key.clone(),
            self.store.get(&key)?.map(|kv| kv.mod_revision),
        );
        let put = cj_store::Op::put(key, crate::releases::versions::to_json(&record)?);
        if let cj_store::TxnOutcome::Failed = self.store.txn(&[compare], &[put])? {
            return Err(Failure::Conflict(format!(
                "the variables of {env} changed meanwhile; try again"
            )));
        }
        tracing::info!(env, user, names = ?request.set.keys().collect::<Vec<_>>(), "variables set");
        let after = self.rendered_hashes(env)?;
        let restarting: Vec<String> = after
            .iter()
            .filter(|(task, hash)| before.get(*task) != Some(*hash))
            .map(|(task, _)| task.clone())
            .collect();
        self.assignments_caught_up().await?;
        Ok(EnvVars {
            env: env.to_owned(),
            vars: shown_vars(&record),
            restarting,
        })
    }

    /// Every up task of `env` and the hash of its rendered configuration.
    fn rendered_hashes(&self, env: &str) -> Result<BTreeMap<String, String>, Failure> {
        let mut hashes = BTreeMap::new();
        for desired in self.desired_jobs(&format!("{}{env}/", keys::DESIRED_ALL))? {
            for task in self.desired_tasks(&desired)? {
                hashes.insert(task.key.to_string(), task.config_hash());
            }
        }
        Ok(hashes)
    }

    /// The latest version of every service of `env` must render with `record`'s variables.
    fn check_templates_of_env(&self, env: &str, record: &EnvRecord) -> Result<(), Failure> {
        let values = values(&record.vars);
        let mut errors = Vec::new();
        for service in self.service_names(env)? {
            let Some(version) = self.latest_version(env, &service)? else {
                continue;
            };
            let version = self.versions.get(env, &service, version)?;
            let job_exists = |other: &str, job: &str| self.job_in_env(env, other, job);
            let scope = TemplateScope {
                env,
                service: &service,
                vars: &values,
                job_exists: &job_exists,
            };
            if let Err(found) = cj_spec::check_templates(&version.file, &version.source, &scope) {
                errors.extend(found.0);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Failure::InvalidConfig(cj_spec::SpecErrors(errors)))
        }
    }

    /// Whether the latest version of `service` in `env` has `job`.
    pub fn job_in_env(&self, env: &str, service: &str, job: &str) -> bool {
        let Ok(Some(version)) = self.latest_version(env, service) else {
            return false;
        };
        self.versions
            .get(env, service, version)
            .is_ok_and(|record| record.spec.job(job).is_some())
    }

    /// The "no such environment" answer, naming those that exist.
    pub fn no_such_env(&self, env: &str) -> Result<Failure, Failure> {
        let names: Vec<String> = self
            .env_infos(false)?
            .into_iter()
            .map(|info| info.name)
            .collect();
        let known = if names.is_empty() {
            "there are none yet".to_owned()
        } else {
            format!("environments: {}", names.join(", "))
        };
        Ok(Failure::NotFound(format!(
            "no environment named {} ({known})",
            shown(env)
        )))
    }
}

/// Variables as shown: secret values withheld.
fn shown_vars(record: &EnvRecord) -> Vec<EnvVar> {
    record
        .vars
        .iter()
        .map(|(name, var)| EnvVar {
            name: name.clone(),
            value: (!var.secret).then(|| var.value.clone()),
            secret: var.secret,
        })
        .collect()
}
