//! What runs where: desired state joined with what the agents observe, one row per task.

use cj_agent::{ObservedContainer, Phase, TaskKey};
use cj_api::TaskStatus;
use cj_store::StoreJson;

use crate::error::ApiFailure;
use crate::keys;
use crate::resolve::Resolved;
use crate::state::{DesiredJob, ServerState};

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

impl ServerState {
    /// Rows for every task of the target, or of every service in `env`.
    pub fn status(&self, env: &str, target: Option<&str>) -> Result<Vec<TaskStatus>, ApiFailure> {
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
        for scope in scopes {
            for job in &scope.jobs {
                let desired: Option<DesiredJob> =
                    self.store
                        .get_json(&keys::desired(env, &scope.service, job))?;
                let record = match &desired {
                    Some(desired) => self.version(env, &scope.service, desired.version)?,
                    None => scope.latest.clone(),
                };
                let Some(job_spec) = record.spec.job(job) else {
                    continue;
                };
                for task in &job_spec.tasks {
                    if scope.task.as_ref().is_some_and(|only| *only != task.name) {
                        continue;
                    }
                    let key = TaskKey {
                        env: env.to_owned(),
                        service: scope.service.clone(),
                        job: job.clone(),
                        task: task.name.clone(),
                    };
                    let wanted_hash = desired.as_ref().map(|_| task.config_hash());
                    let declared_host = task
                        .run_on_host
                        .clone()
                        .unwrap_or_else(|| self.local_host.clone());
                    rows.push(self.task_status(
                        key,
                        declared_host,
                        desired.as_ref(),
                        wanted_hash.as_deref(),
                    ));
                }
            }
        }
        Ok(rows)
    }

    pub fn task_status(
        &self,
        key: TaskKey,
        declared_host: String,
        desired: Option<&DesiredJob>,
        wanted_hash: Option<&str>,
    ) -> TaskStatus {
        let containers = self.containers_of(&key);
        let current = current_container(&containers, wanted_hash);
        let progress = self
            .progress_of(&key)
            .filter(|p| Some(p.config_hash.as_str()) == wanted_hash);
        let live = current.is_some_and(|(_, c)| c.is_live());
        let (state, detail) = match (desired, current, progress.map(|p| p.phase)) {
            (None, _, _) if live => (
                "stopping".to_owned(),
                Some("not wanted; being removed".to_owned()),
            ),
            (None, _, _) => ("down".to_owned(), None),
            (Some(_), Some((_, container)), _) if live => {
                let state = serde_json::to_value(container.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                (state.unwrap_or_else(|| "running".into()), None)
            }
            (Some(_), _, Some(Phase::Pulling { image })) => ("pulling".into(), Some(image)),
            (Some(_), _, Some(Phase::Creating)) => ("creating".into(), None),
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
            (Some(_), None, _) => ("pending".into(), None),
        };
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
        }
    }
}
