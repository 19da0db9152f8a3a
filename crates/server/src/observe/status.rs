//! What runs where: desired state joined with what the agents observe, one row per task.

use cj_api::TaskStatus;
use cj_api::agent::{ObservedContainer, Phase, TaskKey};
use cj_spec::TaskSpec;
use cj_store::StoreJson;

use crate::error::Failure;
use crate::hosts::observed::ProgressKind;
use crate::keys;
use crate::releases::resolve::Resolved;
use crate::state::{DesiredJob, DesiredTask, ServerState};

/// A task's current container: the live one of the wanted configuration if any, then any live
/// one, then the newest.
pub fn current_container<'a>(
    containers: &'a [(String, ObservedContainer)],
    wanted_hash: Option<&str>,
) -> Option<&'a (String, ObservedContainer)> {
    let live_and_right = containers
        .iter()
        .find(|(_, c)| c.is_live() && Some(c.config_hash.as_str()) == wanted_hash);
    live_and_right
        .or_else(|| containers.iter().find(|(_, c)| c.is_live()))
        .or_else(|| containers.iter().max_by_key(|(_, c)| c.created))
}

/// A task `status` lists: one a job that is up asks for, or (the job is down) one of its
/// latest version.
enum Listed {
    Desired(DesiredTask),
    Latest(TaskSpec),
}

impl Listed {
    fn spec(&self) -> &TaskSpec {
        match self {
            Listed::Desired(task) => &task.spec,
            Listed::Latest(spec) => spec,
        }
    }
}

impl ServerState {
    /// Rows for every task of the target, or of every service in `env`.
    pub fn status(&self, env: &str, target: Option<&str>) -> Result<Vec<TaskStatus>, Failure> {
        let (rows, _) = self.status_page(env, target, 0, usize::MAX)?;
        Ok(rows)
    }

    /// Rows `skip..skip + take` of [`ServerState::status`], and how many rows there are in all.
    /// Only the rows shown are worked out (each joins the task's containers, progress and use),
    /// so a page of a hundred thousand tasks costs what its own rows cost.
    pub fn status_page(
        &self,
        env: &str,
        target: Option<&str>,
        skip: usize,
        take: usize,
    ) -> Result<(Vec<TaskStatus>, usize), Failure> {
        let scopes: Vec<Resolved> = match target {
            Some(target) => vec![self.resolve(env, target)?],
            None => {
                let mut scopes = Vec::new();
                for service in self.service_names(env)? {
                    scopes.push(self.resolve(env, &service)?);
                }
                scopes
            }
        };
        let mut rows = Vec::new();
        let mut total = 0;
        for scope in scopes {
            for job in &scope.jobs {
                let desired: Option<DesiredJob> =
                    self.store
                        .get_json(&keys::desired(env, &scope.service, job))?;
                // A job wholly before or after the page is only counted: rendering its tasks
                // is what a page of a hundred thousand would spend its time on.
                if scope.task.is_none()
                    && let Some(count) = self.task_count(env, &scope, job, desired.as_ref())?
                    && (total + count <= skip || rows.len() >= take)
                {
                    total += count;
                    continue;
                }
                // A job that is up shows what it asks for; one that is down, its latest tasks.
                let tasks: Vec<Listed> = match &desired {
                    Some(desired) => self
                        .desired_tasks(desired)?
                        .into_iter()
                        .map(Listed::Desired)
                        .collect(),
                    None => match scope.latest.spec.job(job) {
                        Some(job_spec) => {
                            job_spec.tasks.iter().cloned().map(Listed::Latest).collect()
                        }
                        None => continue,
                    },
                };
                let tasks = tasks.iter().filter(|listed| {
                    scope
                        .task
                        .as_ref()
                        .is_none_or(|only| *only == listed.spec().name)
                });
                for listed in tasks {
                    total += 1;
                    if total <= skip || rows.len() >= take {
                        continue;
                    }
                    let task = listed.spec();
                    // Hashing a task's configuration is the dear part: only for rows shown.
                    let wanted_hash = match listed {
                        Listed::Desired(desired_task) => Some(desired_task.config_hash()),
                        Listed::Latest(_) => None,
                    };
                    let key = TaskKey {
                        env: env.to_owned(),
                        service: scope.service.clone(),
                        job: job.clone(),
                        task: task.name.clone(),
                    };
                    // Pinned, placed, or (not placed yet) none.
                    let declared_host = self.scheduler.host_of(&key, task).unwrap_or_default();
                    rows.push(self.task_status(
                        key,
                        declared_host,
                        desired.as_ref(),
                        wanted_hash.as_deref(),
                    ));
                }
            }
        }
        Ok((rows, total))
    }

    /// How many tasks a job lists, when that is known without rendering them: every task at
    /// one version (not in the middle of a rollout).
    fn task_count(
        &self,
        env: &str,
        scope: &Resolved,
        job: &str,
        desired: Option<&DesiredJob>,
    ) -> Result<Option<usize>, Failure> {
        Ok(match desired {
            Some(desired) if desired.task_versions.is_empty() => self
                .versions
                .get(env, &scope.service, desired.version)?
                .spec
                .job(job)
                .map(|spec| spec.tasks.len()),
            Some(_) => None,
            None => scope.latest.spec.job(job).map(|spec| spec.tasks.len()),
        })
    }

    pub fn task_status(
        &self,
        key: TaskKey,
        declared_host: String,
        desired: Option<&DesiredJob>,
        wanted_hash: Option<&str>,
    ) -> TaskStatus {
        let containers = self.copies_of(&key);
        let current = current_container(&containers, wanted_hash);
        let progress = self
            .observed
            .progress_of(&key)
            .filter(|p| Some(p.config_hash.as_str()) == wanted_hash);
        let live = current.is_some_and(|(_, c)| c.is_live());
        let (state, detail) = match (
            desired,
            current,
            progress.and_then(|p| match p.kind {
                ProgressKind::Phase(phase) => Some(phase),
                ProgressKind::Health(..) => None,
            }),
        ) {
            (None, _, _) if live => (
                "stopping".to_owned(),
                Some("not wanted; being removed".to_owned()),
            ),
            (None, _, _) => ("down".to_owned(), None),
            // The old container serves while its replacement cannot be made (its artifact
            // does not match, say): running, and why the new one is not.
            (
                Some(_),
                Some((_, container)),
                Some(Phase::Failed { reason } | Phase::BackingOff { reason, .. }),
            ) if live && Some(container.config_hash.as_str()) != wanted_hash => {
                let state = serde_json::to_value(container.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                (
                    state.unwrap_or_else(|| "running".into()),
                    Some(format!("its replacement failed: {reason}")),
                )
            }
            (Some(_), Some((_, container)), _) if live => {
                let state = serde_json::to_value(container.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                let unhealthy = container.health == Some(cj_api::agent::Health::Unhealthy);
                let detail = container.health_detail.clone().filter(|_| unhealthy);
                (state.unwrap_or_else(|| "running".into()), detail)
            }
            (Some(_), _, Some(Phase::Pulling { image })) => ("pulling".into(), Some(image)),
            (Some(_), _, Some(Phase::Creating)) => ("creating".into(), None),
            (Some(_), _, Some(Phase::Seeding { volume })) => {
                ("seeding".into(), Some(format!("volume {volume}")))
            }
            (Some(_), _, Some(Phase::FetchingArtifact { url })) => {
                ("fetching".into(), Some(format!("artifact {url}")))
            }
            (Some(_), _, Some(Phase::UnpackingArtifact { path })) => {
                ("unpacking".into(), Some(format!("artifact into {path}")))
            }
            (Some(_), _, Some(Phase::Starting)) => ("starting".into(), None),
            (Some(_), _, Some(Phase::BackingOff { millis, reason })) => (
                "restarting".into(),
                Some(format!(
                    "{reason}; next attempt in {:.1}s",
                    millis as f64 / 1000.0
                )),
            ),
            (Some(_), _, Some(Phase::Failed { reason })) => ("failed".into(), Some(reason)),
            (Some(_), _, Some(Phase::Kept { reason, .. })) => ("exited".into(), Some(reason)),
            (Some(_), Some((_, container)), _) => (
                "exited".into(),
                container.exit_code.map(|code| format!("exit code {code}")),
            ),
            (Some(_), None, _) if declared_host.is_empty() => (
                "pending".into(),
                self.scheduler
                    .unplaced_reason(&key)
                    .map(|reason| format!("not placed: {reason}")),
            ),
            (Some(_), None, _) if !self.host_is_up(&declared_host) => (
                "pending".into(),
                Some(format!(
                    "host down: no agent is connected as {declared_host}"
                )),
            ),
            // A pinned task whose config no longer renders (a variable was removed).
            (Some(_), None, _) => ("pending".into(), self.scheduler.unplaced_reason(&key)),
        };
        let usage = current
            .filter(|(_, c)| c.is_live())
            .and_then(|(host, c)| self.hosts.container(host, &c.id));
        TaskStatus {
            env: key.env.clone(),
            service: key.service.clone(),
            job: key.job.clone(),
            task: key.task.clone(),
            host: declared_host,
            actual_host: current.map(|(host, _)| host.clone()),
            state,
            detail,
            image: current.map(|(_, c)| c.image.clone()),
            container_id: current.map(|(_, c)| c.id.clone()),
            container_name: current.map(|(_, c)| c.name.clone()),
            version: current.map(|(_, c)| c.version),
            desired_version: desired.map(|d| d.version),
            started_at: current.and_then(|(_, c)| c.started_at.clone()),
            exit_code: current
                .filter(|(_, c)| !c.is_live())
                .and_then(|(_, c)| c.exit_code),
            health: current
                .filter(|(_, c)| c.is_live())
                .and_then(|(_, c)| c.health)
                .map(health_word),
            cpu_percent: usage.as_ref().and_then(|u| u.cpu_percent),
            memory_bytes: usage.map(|u| u.memory_bytes),
        }
    }
}

pub fn health_word(health: cj_api::agent::Health) -> String {
    match health {
        cj_api::agent::Health::Starting => "starting",
        cj_api::agent::Health::Healthy => "healthy",
        cj_api::agent::Health::Unhealthy => "unhealthy",
    }
    .to_owned()
}

impl crate::state::ServerState {
    /// Masks, in `value` (Docker's inspect of a task's container), the secret variables of
    /// the task's environment and the `secret_env` values of its job at `version`.
    pub fn mask_task_secrets(
        &self,
        key: &cj_api::agent::TaskKey,
        version: Option<u64>,
        value: &mut serde_json::Value,
    ) -> Result<(), crate::error::Failure> {
        let mut secrets = self
            .env_record(&key.env)?
            .map(|record| record.secret_values())
            .unwrap_or_default();
        let mut keys = Vec::new();
        if let Some(version) = version {
            let record = self.versions.get(&key.env, &key.service, version)?;
            if let Some(job) = record.spec.job(&key.job) {
                keys.extend(job.secret_env.iter().cloned());
            }
            secrets.extend(
                crate::envs::secrets::secret_env_values(&record.spec)
                    .into_iter()
                    .map(|(_, value)| value)
                    .filter(|value| value.len() >= crate::envs::secrets::MIN_MASKED_ANYWHERE),
            );
        }
        crate::envs::secrets::mask_json(value, &secrets, &keys);
        Ok(())
    }
}
