//! How a deployment ends: stopped short (failed or aborted), with the tasks moved back when
//! the policy or the abort says so, and announced (metrics, alerts, the webhook).

use std::collections::BTreeMap;
use std::time::Duration;

use cj_api::{
    BatchState, Deployment, DeploymentKind, DeploymentStatus, OperationEvent, TaskFailure,
};
use cj_store::StoreJson;
use tokio::sync::mpsc;

use crate::base::now_rfc3339;
use crate::keys;
use crate::observe::notify::Notification;
use crate::releases::waiting::Goal;
use crate::state::{DesiredJob, ServerState};

/// How a deployment stopped short.
pub(crate) enum Stop {
    Failed(String),
    /// The canary analysis judged the canaries bad: they are rolled back whatever
    /// `auto_rollback` says, as that is what analysing them is for.
    Rejected(String),
    Aborted,
}

impl ServerState {
    /// Ends a deployment that stopped short: moves the tasks back if the policy (or an abort)
    /// says so, and records where everything is.
    pub(crate) async fn stop_deployment(
        &self,
        deployment: &mut Deployment,
        stop: Stop,
        events: &mpsc::Sender<OperationEvent>,
    ) -> Vec<TaskFailure> {
        let current = deployment
            .jobs
            .iter()
            .position(|job| !job.done)
            .unwrap_or(deployment.jobs.len().saturating_sub(1));
        if let Some(job) = deployment.jobs.get_mut(current)
            && let Some(batch) = job.batches.get_mut(job.next_batch)
            && batch.state == BatchState::InProgress
        {
            batch.state = BatchState::Failed;
            batch.finished = Some(now_rfc3339());
        }
        let (reason, aborted, rejected) = match stop {
            Stop::Failed(reason) => (reason, false, false),
            Stop::Rejected(reason) => (reason, false, true),
            Stop::Aborted => ("aborted".to_owned(), true, false),
        };
        let auto_rollback = rejected
            || deployment
                .jobs
                .get(current)
                .is_some_and(|job| job.policy.auto_rollback);
        let can_roll_back = deployment.kind != DeploymentKind::Reload;
        if (aborted || auto_rollback) && can_roll_back {
            match self.roll_back(deployment, current, events).await {
                Ok(()) => {
                    deployment.status = if aborted {
                        DeploymentStatus::Aborted
                    } else {
                        DeploymentStatus::RolledBack
                    };
                    let versions: Vec<String> = deployment.jobs[..=current]
                        .iter()
                        .map(|j| format!("{} at version {}", j.job, j.from_version))
                        .collect();
                    deployment.message =
                        Some(format!("{reason}; rolled back: {}", versions.join(", ")));
                }
                Err(error) => {
                    deployment.status = DeploymentStatus::Failed;
                    deployment.message =
                        Some(format!("{reason}; rolling back failed too: {error}"));
                }
            }
        } else {
            deployment.status = if aborted {
                DeploymentStatus::Aborted
            } else {
                DeploymentStatus::Failed
            };
            deployment.message = Some(format!(
                "{reason}; tasks are left where they are: {}",
                self.where_tasks_are(deployment)
            ));
        }
        vec![TaskFailure::new(deployment.id.clone(), reason)]
    }

    /// Puts every job this deployment touched back at its previous version and waits for it.
    async fn roll_back(
        &self,
        deployment: &Deployment,
        last_job: usize,
        events: &mpsc::Sender<OperationEvent>,
    ) -> Result<(), String> {
        let mut goals = Vec::new();
        let since = self.observed.generation();
        let progress = self.observed.subscribe_progress();
        let mut deadline = Duration::ZERO;
        for job in &deployment.jobs[..=last_job] {
            let key = keys::desired(&deployment.env, &deployment.service, &job.job);
            let from_version = job.from_version;
            let Some(desired) = self
                .update_desired(&key, |desired| {
                    desired.version = from_version;
                    desired.task_versions.clear();
                    Ok(())
                })
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            for task in self.desired_tasks(&desired).map_err(|e| e.to_string())? {
                let config_hash = task.config_hash();
                goals.push((task.key, Goal::Ready { config_hash }));
            }
            deadline = deadline.max(Duration::from_millis(job.policy.healthy_deadline_ms));
        }
        self.assignments_caught_up()
            .await
            .map_err(|e| e.to_string())?;
        let failures = self
            .wait_for_tasks(&goals, since, deadline, progress, events)
            .await
            .failures;
        match failures.first() {
            Some(failure) => Err(format!("{}: {}", failure.task, failure.reason)),
            None => Ok(()),
        }
    }

    /// "web-1 at version 3, web-2 at version 2" for every job of the deployment.
    fn where_tasks_are(&self, deployment: &Deployment) -> String {
        let mut places = Vec::new();
        for job in &deployment.jobs {
            let key = keys::desired(&deployment.env, &deployment.service, &job.job);
            if let Ok(Some(desired)) = self.store.get_json::<DesiredJob>(&key) {
                let versions: BTreeMap<String, u64> = match desired.task_versions.is_empty() {
                    true => self
                        .desired_tasks(&desired)
                        .map(|tasks| tasks.into_iter().map(|t| (t.key.task, t.version)).collect())
                        .unwrap_or_default(),
                    false => desired.task_versions.clone(),
                };
                places.extend(
                    versions
                        .into_iter()
                        .map(|(task, version)| format!("{}/{task} at version {version}", job.job)),
                );
            }
        }
        places.join(", ")
    }

    pub(crate) fn announce_end(&self, deployment: &Deployment) {
        let (env, service, id, kind) = (
            deployment.env.clone(),
            deployment.service.clone(),
            deployment.id.clone(),
            deployment.kind.as_str().to_owned(),
        );
        let at = now_rfc3339();
        crate::observe::recorder::deployment_ended(deployment.status.as_str());
        let failure = (deployment.status != DeploymentStatus::Succeeded)
            .then(|| deployment.message.clone().unwrap_or_default());
        self.alerts
            .deployment_ended(&deployment.env, &deployment.service, failure);
        let notification = match deployment.status {
            DeploymentStatus::Succeeded => Notification::RolloutFinished {
                env,
                service,
                deployment: id,
                kind,
                at,
            },
            status => Notification::RolloutFailed {
                env,
                service,
                deployment: id,
                kind,
                reason: deployment.message.clone().unwrap_or_default(),
                rolled_back: matches!(
                    status,
                    DeploymentStatus::RolledBack | DeploymentStatus::Aborted
                ),
                at,
            },
        };
        self.notifier.send(notification);
    }
}
