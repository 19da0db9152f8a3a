//! Deployments: durable records of moving jobs between versions, and how each kind is planned.
//! `rollout` carries them out.

use std::collections::BTreeMap;
use std::sync::Arc;

use cj_api::{Batch, BatchState, Deployment, DeploymentKind, DeploymentStatus, JobRollout};
use cj_spec::{ChangeKind, TaskChange, TaskSpec, UpdatePolicy};
use cj_store::StoreJson;

use crate::error::ApiFailure;
use crate::keys;
use crate::resolve::Resolved;
use crate::state::{DesiredJob, ServerState, now_rfc3339};

impl ServerState {
    pub fn deployments(&self, env: &str) -> Result<Vec<Deployment>, ApiFailure> {
        let mut all: Vec<Deployment> = self
            .store
            .range_json::<Deployment>(keys::DEPLOYMENTS_ALL)?
            .into_iter()
            .filter(|deployment| deployment.env == env)
            .collect();
        all.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        Ok(all)
    }

    /// Every deployment still running or waiting, in any environment (to resume after a restart).
    pub fn active_deployments(&self) -> Result<Vec<Deployment>, ApiFailure> {
        let all: Vec<Deployment> = self.store.range_json(keys::DEPLOYMENTS_ALL)?;
        Ok(all
            .into_iter()
            .filter(|deployment| deployment.status.is_active())
            .collect())
    }

    pub fn active_deployment(
        &self,
        env: &str,
        service: &str,
    ) -> Result<Option<Deployment>, ApiFailure> {
        let all: Vec<Deployment> = self.store.range_json(&keys::deployments(env, service))?;
        Ok(all
            .into_iter()
            .find(|deployment| deployment.status.is_active()))
    }

    pub fn save_deployment(&self, deployment: &Deployment) -> Result<(), ApiFailure> {
        let sequence = deployment_sequence(&deployment.id);
        self.store.put_json(
            &keys::deployment(&deployment.env, &deployment.service, sequence),
            deployment,
        )?;
        Ok(())
    }

    pub fn load_deployment(&self, deployment: &Deployment) -> Result<Deployment, ApiFailure> {
        let key = keys::deployment(
            &deployment.env,
            &deployment.service,
            deployment_sequence(&deployment.id),
        );
        self.store
            .get_json(&key)?
            .ok_or_else(|| ApiFailure::NotFound(format!("no deployment {}", deployment.id)))
    }

    /// Plans a deployment of `kind` for the jobs of `resolved` that are up, moving each to
    /// `to_version` (ignored by reload, which keeps each job at its version).
    pub fn plan_deployment(
        &self,
        resolved: &Resolved,
        kind: DeploymentKind,
        to_version: u64,
        user: &str,
    ) -> Result<Deployment, ApiFailure> {
        let (env, service) = (resolved.env.as_str(), resolved.service.as_str());
        if let Some(active) = self.active_deployment(env, service)? {
            return Err(ApiFailure::Conflict(format!(
                "deployment {} of {service} is still {}: promote or abort it first",
                active.id,
                status_word(active.status)
            )));
        }
        let target = self.version(env, service, to_version)?;
        let order = crate::operations::job_waves(&target.spec, resolved.jobs.iter())?.concat();
        let mut jobs = Vec::new();
        let mut not_up = Vec::new();
        for job in order {
            let Some(desired) = self
                .store
                .get_json::<DesiredJob>(&keys::desired(env, service, &job))?
            else {
                not_up.push(job);
                continue;
            };
            let current: BTreeMap<String, TaskSpec> = self
                .desired_tasks(&desired)?
                .into_iter()
                .map(|task| (task.spec.name.clone(), task.spec))
                .collect();
            let (to_version, wanted, policy) = if kind == DeploymentKind::Reload {
                let record = self.version(env, service, desired.version)?;
                let policy = record
                    .spec
                    .job(&job)
                    .map(|j| j.update.clone())
                    .unwrap_or_default();
                (desired.version, current.clone(), policy)
            } else {
                let job_spec = target.spec.job(&job);
                let wanted = job_spec.map(|j| {
                    j.tasks
                        .iter()
                        .map(|t| (t.name.clone(), t.clone()))
                        .collect()
                });
                (
                    to_version,
                    wanted.unwrap_or_default(),
                    job_spec.map(|j| j.update.clone()).unwrap_or_default(),
                )
            };
            let changes = task_changes(&job, &current, &wanted, kind == DeploymentKind::Reload);
            let batches = make_batches(&changes, &policy);
            jobs.push(JobRollout {
                job,
                from_version: desired.version,
                to_version,
                changes,
                policy,
                batches,
                next_batch: 0,
                done: false,
            });
        }
        if jobs.is_empty() {
            return Err(ApiFailure::BadRequest(format!(
                "nothing to deploy: {} of {service} is not up (use `coding-job up` first)",
                not_up.join(", ")
            )));
        }
        let existing = self.store.range(&keys::deployments(env, service))?.len() as u64;
        let now = now_rfc3339();
        Ok(Deployment {
            id: format!("{service}-{}", existing + 1),
            env: env.to_owned(),
            service: service.to_owned(),
            kind,
            status: DeploymentStatus::Running,
            user: user.to_owned(),
            created: now.clone(),
            updated: now,
            jobs,
            message: None,
            promote_requested: false,
            abort_requested: false,
        })
    }

    /// Stores a new deployment and starts carrying it out.
    pub fn start_deployment(self: &Arc<Self>, deployment: &Deployment) -> Result<(), ApiFailure> {
        self.save_deployment(deployment)?;
        self.notifier
            .send(crate::notify::Notification::RolloutStarted {
                env: deployment.env.clone(),
                service: deployment.service.clone(),
                deployment: deployment.id.clone(),
                kind: kind_word(deployment.kind).into(),
                jobs: deployment.jobs.iter().map(|job| job.job.clone()).collect(),
                user: deployment.user.clone(),
                at: now_rfc3339(),
            });
        tokio::spawn(self.clone().run_deployment(deployment.clone()));
        Ok(())
    }
}

/// Every task's change from `current` to `wanted`, in task-name order. A reload replaces every
/// current task with an identical fresh container.
fn task_changes(
    job: &str,
    current: &BTreeMap<String, TaskSpec>,
    wanted: &BTreeMap<String, TaskSpec>,
    reload: bool,
) -> Vec<TaskChange> {
    if reload {
        return current
            .keys()
            .map(|task| TaskChange {
                job: job.to_owned(),
                task: task.clone(),
                change: ChangeKind::Replace,
                reasons: vec!["reload".into()],
            })
            .collect();
    }
    let mut names: Vec<&String> = current.keys().chain(wanted.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|task| cj_spec::task_change(job, task, current.get(task), wanted.get(task)))
        .collect()
}

/// Canaries first (each alone in the first batch), then the rest `batch_size` at a time.
pub fn make_batches(changes: &[TaskChange], policy: &UpdatePolicy) -> Vec<Batch> {
    let moving: Vec<String> = changes
        .iter()
        .filter(|change| matches!(change.change, ChangeKind::Create | ChangeKind::Replace))
        .map(|change| change.task.clone())
        .collect();
    let canaries = (policy.canary as usize).min(moving.len());
    let batch = |tasks: &[String], canary: bool| Batch {
        tasks: tasks.to_vec(),
        canary,
        state: BatchState::Pending,
        started: None,
        finished: None,
    };
    let mut batches = Vec::new();
    if canaries > 0 {
        batches.push(batch(&moving[..canaries], true));
    }
    for chunk in moving[canaries..].chunks(policy.batch_size.max(1) as usize) {
        batches.push(batch(chunk, false));
    }
    batches
}

fn deployment_sequence(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub fn status_word(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::Running => "running",
        DeploymentStatus::AwaitingPromotion => "awaiting promotion",
        DeploymentStatus::Succeeded => "succeeded",
        DeploymentStatus::Failed => "failed",
        DeploymentStatus::RolledBack => "rolled back",
        DeploymentStatus::Aborted => "aborted",
    }
}

pub fn kind_word(kind: DeploymentKind) -> &'static str {
    match kind {
        DeploymentKind::RollingUpdate => "rolling-update",
        DeploymentKind::Rollback => "rollback",
        DeploymentKind::Reload => "reload",
        DeploymentKind::Update => "update",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(task: &str, change: ChangeKind) -> TaskChange {
        TaskChange {
            job: "j".into(),
            task: task.into(),
            change,
            reasons: vec![],
        }
    }

    #[test]
    fn canaries_go_first_then_batches() {
        let changes: Vec<TaskChange> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|t| change(t, ChangeKind::Replace))
            .chain([
                change("f", ChangeKind::Unchanged),
                change("g", ChangeKind::Remove),
            ])
            .collect();
        let policy = UpdatePolicy {
            batch_size: 2,
            canary: 1,
            ..UpdatePolicy::default()
        };
        let batches: Vec<(Vec<String>, bool)> = make_batches(&changes, &policy)
            .into_iter()
            .map(|b| (b.tasks, b.canary))
            .collect();
        assert_eq!(
            batches,
            [
                (vec!["a".to_string()], true),
                (vec!["b".to_string(), "c".to_string()], false),
                (vec!["d".to_string(), "e".to_string()], false)
            ]
        );
    }

    #[test]
    fn nothing_to_move_makes_no_batches() {
        let changes = [change("a", ChangeKind::Unchanged)];
        assert!(make_batches(&changes, &UpdatePolicy::default()).is_empty());
    }
}
