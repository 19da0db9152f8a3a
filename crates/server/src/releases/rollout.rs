//! Carrying out a deployment, batch by batch, with health gates. Every step is written to the
//! store before the next begins, so a server killed at any moment resumes the deployment where
//! it was: the batch in progress is applied again (which changes nothing) and awaited again.

use std::sync::Arc;
use std::time::Duration;

use cj_api::{
    BatchState, Deployment, DeploymentKind, DeploymentStatus, OperationEvent, OperationSummary,
};
use cj_spec::ChangeKind;
use cj_store::StoreJson;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::base::now_rfc3339;
use crate::error::Failure;
use crate::keys;
use crate::releases::analysis::CanaryPhase;
use crate::releases::rollout_end::Stop;
use crate::releases::waiting::Goal;
use crate::state::{DesiredJob, ServerState};

impl ServerState {
    /// Runs (or resumes) a deployment to its end.
    pub async fn run_deployment(self: Arc<Self>, deployment: Deployment) {
        let started = std::time::Instant::now();
        let mut deployment = match self.load_deployment(&deployment) {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%error, id = deployment.id, "cannot load the deployment");
                return;
            }
        };
        // Task progress of this deployment goes to whoever follows it.
        let (events, progress) = mpsc::channel::<OperationEvent>(256);
        let forward = self
            .deployment_signals
            .forward(deployment.id.clone(), progress);
        self.emit(
            &deployment,
            OperationEvent::Deployment {
                id: deployment.id.clone(),
                status: deployment.status,
                message: None,
            },
        );
        let outcome = self.carry_out(&mut deployment, &events).await;
        let failed = match outcome {
            Ok(()) => {
                deployment.status = DeploymentStatus::Succeeded;
                deployment.message = None;
                Vec::new()
            }
            Err(stop) => self.stop_deployment(&mut deployment, stop, &events).await,
        };
        for job_index in 0..deployment.jobs.len() {
            self.end_canary_phase(&deployment, job_index);
        }
        if let Err(error) = self.record_progress(&mut deployment) {
            tracing::error!(%error, id = deployment.id, "cannot record the end of a deployment");
        }
        self.announce_end(&deployment);
        drop(events);
        let _ = forward.await;
        let summary = OperationSummary {
            ok: deployment.status == DeploymentStatus::Succeeded,
            changed: moved_tasks(&deployment),
            unchanged: Vec::new(),
            failed,
            skipped: Vec::new(),
            waiting_for_host: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.emit(
            &deployment,
            OperationEvent::Deployment {
                id: deployment.id.clone(),
                status: deployment.status,
                message: deployment.message.clone(),
            },
        );
        self.emit(&deployment, OperationEvent::Summary(summary));
    }

    async fn carry_out(
        &self,
        deployment: &mut Deployment,
        events: &mpsc::Sender<OperationEvent>,
    ) -> Result<(), Stop> {
        // Resumed while waiting at the gate: keep waiting, do not walk past it.
        if deployment.status == DeploymentStatus::AwaitingPromotion {
            self.await_promotion(deployment).await?;
        }
        for job_index in 0..deployment.jobs.len() {
            if deployment.jobs[job_index].done {
                continue;
            }
            self.move_unchanged_tasks(deployment, job_index)
                .await
                .map_err(failed)?;
            // Resumed in the middle of a canary analysis: it goes on with its tally.
            self.judge_canaries_if_due(deployment, job_index).await?;
            while deployment.jobs[job_index].next_batch < deployment.jobs[job_index].batches.len() {
                self.check_abort(deployment)?;
                self.run_batch(deployment, job_index, events).await?;
                self.judge_canaries_if_due(deployment, job_index).await?;
                let job = &deployment.jobs[job_index];
                let finished = &job.batches[job.next_batch - 1];
                let more_to_come = job.next_batch < job.batches.len();
                if finished.canary && job.policy.manual_gate && more_to_come {
                    self.await_promotion(deployment).await?;
                }
            }
            self.end_canary_phase(deployment, job_index);
            self.finish_job(deployment, job_index, events).await?;
        }
        Ok(())
    }

    /// Tasks whose configuration does not change move to the new version at once: their
    /// containers stay as they are.
    async fn move_unchanged_tasks(
        &self,
        deployment: &Deployment,
        job_index: usize,
    ) -> Result<(), Failure> {
        let job = &deployment.jobs[job_index];
        if deployment.kind == DeploymentKind::Reload {
            return Ok(());
        }
        let unchanged: Vec<String> = job
            .changes
            .iter()
            .filter(|change| change.change == ChangeKind::Unchanged)
            .map(|change| change.task.clone())
            .collect();
        if !unchanged.is_empty() {
            self.set_task_versions(deployment, job_index, &unchanged)
                .await?;
        }
        Ok(())
    }

    async fn run_batch(
        &self,
        deployment: &mut Deployment,
        job_index: usize,
        events: &mpsc::Sender<OperationEvent>,
    ) -> Result<(), Stop> {
        let job = &mut deployment.jobs[job_index];
        let batch_index = job.next_batch;
        let batch = &mut job.batches[batch_index];
        batch.state = BatchState::InProgress;
        batch.started.get_or_insert_with(now_rfc3339);
        let (tasks, canary, of) = (batch.tasks.clone(), batch.canary, job.batches.len());
        let (healthy_deadline, min_healthy) = (
            Duration::from_millis(job.policy.healthy_deadline_ms),
            Duration::from_millis(job.policy.min_healthy_time_ms),
        );
        let job_name = job.job.clone();
        let weighted = job.policy.canary_weight_bp.is_some();
        let phase = match (canary, job.policy.canary_weight_bp) {
            (true, Some(weight_bp)) => Some(CanaryPhase {
                version: job.to_version,
                weight_bp,
                deployment: deployment.id.clone(),
            }),
            _ => None,
        };
        self.record_progress(deployment).map_err(failed)?;
        // The weight applies from the canaries' first request; any later batch ends it.
        if weighted {
            self.set_canary_phase(deployment, &job_name, phase)
                .map_err(failed)?;
        }
        self.emit(
            deployment,
            OperationEvent::Batch {
                job: job_name.clone(),
                batch: batch_index + 1,
                of,
                tasks: tasks.clone(),
                canary,
            },
        );

        let since = self.observed.generation();
        let progress = self.observed.subscribe_progress();
        let goals = match deployment.kind {
            DeploymentKind::Reload => {
                self.bump_restart_generations(deployment, job_index, &tasks)
                    .await
            }
            _ => self.set_task_versions(deployment, job_index, &tasks).await,
        }
        .map_err(failed)?;
        let failures = self
            .wait_for_tasks(&goals, since, healthy_deadline, progress, events)
            .await
            .failures;
        if let Some(failure) = failures.first() {
            return Err(Stop::Failed(format!(
                "{}: {}",
                failure.task, failure.reason
            )));
        }
        self.stay_healthy(&goals, min_healthy).await?;

        let job = &mut deployment.jobs[job_index];
        let batch = &mut job.batches[batch_index];
        batch.state = BatchState::Healthy;
        batch.finished = Some(now_rfc3339());
        job.next_batch = batch_index + 1;
        self.record_progress(deployment).map_err(failed)
    }

    /// The batch must stay ready for `min_healthy_time` before the rollout goes on.
    async fn stay_healthy(
        &self,
        goals: &[(cj_api::agent::TaskKey, Goal)],
        min_healthy: Duration,
    ) -> Result<(), Stop> {
        let until = cj_api::time::later(tokio::time::Instant::now(), min_healthy);
        let mut changed = self.observed.subscribe_changed();
        loop {
            if let Some((key, _)) = goals.iter().find(|(key, goal)| !self.is_ready(key, goal)) {
                let reason = format!("{key} stopped being healthy within min_healthy_time");
                return Err(Stop::Failed(reason));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Ok(()),
                _ = changed.changed() => {}
            }
        }
    }

    fn is_ready(&self, key: &cj_api::agent::TaskKey, goal: &Goal) -> bool {
        let Goal::Ready { config_hash } = goal else {
            return self.observed.containers_of(key).is_empty();
        };
        self.copies_of(key).iter().any(|(_, c)| {
            c.is_live()
                && c.config_hash == *config_hash
                && matches!(c.health, None | Some(cj_api::agent::Health::Healthy))
        })
    }

    async fn await_promotion(&self, deployment: &mut Deployment) -> Result<(), Stop> {
        let message = format!(
            "canaries healthy; `coding-job promote {}` to go on",
            deployment.service
        );
        self.await_promotion_because(deployment, message).await
    }

    /// Waits at the gate, saying why in `message`, until `promote` or `abort`.
    pub(crate) async fn await_promotion_because(
        &self,
        deployment: &mut Deployment,
        message: String,
    ) -> Result<(), Stop> {
        deployment.status = DeploymentStatus::AwaitingPromotion;
        deployment.message = Some(message);
        self.record_progress(deployment).map_err(failed)?;
        self.emit(
            deployment,
            OperationEvent::Deployment {
                id: deployment.id.clone(),
                status: deployment.status,
                message: deployment.message.clone(),
            },
        );
        let key = crate::releases::deployments::record_key(deployment);
        loop {
            // Watched from before the read, so no promote or abort written meanwhile is missed,
            // whichever server took the request.
            let read_at = self.store.revision().map_err(|e| failed(e.into()))?;
            let stored = self.load_deployment(deployment).map_err(failed)?;
            if stored.abort_requested {
                return Err(Stop::Aborted);
            }
            if stored.promote_requested {
                deployment.promote_requested = false;
                deployment.status = DeploymentStatus::Running;
                deployment.message = None;
                self.record_progress(deployment).map_err(failed)?;
                self.emit(
                    deployment,
                    OperationEvent::Deployment {
                        id: deployment.id.clone(),
                        status: deployment.status,
                        message: Some("promoted".into()),
                    },
                );
                return Ok(());
            }
            let mut changes = self
                .store
                .watch(&key, read_at)
                .map_err(|e| failed(e.into()))?;
            let _ = tokio::time::timeout(Duration::from_secs(5), changes.next()).await;
        }
    }

    /// Ends the job's weighted canary phase, if it has one (logged: the table then routes to
    /// every task, which is what a failed removal would delay).
    fn end_canary_phase(&self, deployment: &Deployment, job_index: usize) {
        let job = &deployment.jobs[job_index];
        if job.policy.canary_weight_bp.is_none() {
            return;
        }
        if let Err(error) = self.set_canary_phase(deployment, &job.job, None) {
            tracing::warn!(%error, id = deployment.id, job = job.job, "cannot end a canary phase");
        }
    }

    fn check_abort(&self, deployment: &Deployment) -> Result<(), Stop> {
        match self.load_deployment(deployment) {
            Ok(stored) if stored.abort_requested => Err(Stop::Aborted),
            Ok(_) => Ok(()),
            Err(error) => Err(failed(error)),
        }
    }

    /// Every task at the new version: the job's record says so in one line again, and tasks the
    /// new version no longer has are removed.
    async fn finish_job(
        &self,
        deployment: &mut Deployment,
        job_index: usize,
        events: &mpsc::Sender<OperationEvent>,
    ) -> Result<(), Stop> {
        let job = &deployment.jobs[job_index];
        let key = keys::desired(&deployment.env, &deployment.service, &job.job);
        let since = self.observed.generation();
        let progress = self.observed.subscribe_progress();
        let to_version = job.to_version;
        let updated = self
            .update_desired(&key, |desired| {
                desired.version = to_version;
                desired.task_versions.clear();
                Ok(())
            })
            .map_err(failed)?;
        if updated.is_some() {
            self.assignments_caught_up().await.map_err(failed)?;
        }
        let removed: Vec<(cj_api::agent::TaskKey, Goal)> = job
            .changes
            .iter()
            .filter(|change| change.change == ChangeKind::Remove)
            .map(|change| {
                (
                    self.task_key(deployment, &change.task, &job.job),
                    Goal::Gone,
                )
            })
            .collect();
        let failures = self
            .wait_for_tasks(&removed, since, Duration::from_secs(60), progress, events)
            .await
            .failures;
        if let Some(failure) = failures.first() {
            return Err(Stop::Failed(format!(
                "{}: {}",
                failure.task, failure.reason
            )));
        }
        deployment.jobs[job_index].done = true;
        self.record_progress(deployment).map_err(failed)
    }

    /// Moves `tasks` of a job to the deployment's target version; returns what to wait for.
    async fn set_task_versions(
        &self,
        deployment: &Deployment,
        job_index: usize,
        tasks: &[String],
    ) -> Result<Vec<(cj_api::agent::TaskKey, Goal)>, Failure> {
        let job = &deployment.jobs[job_index];
        self.change_desired(deployment, &job.job, |desired, current| {
            if desired.task_versions.is_empty() {
                desired.task_versions = current
                    .iter()
                    .map(|task| (task.clone(), desired.version))
                    .collect();
            }
            for task in tasks {
                desired.task_versions.insert(task.clone(), job.to_version);
            }
        })
        .await?;
        self.goals_of(deployment, &job.job, tasks)
    }

    /// Gives `tasks` a restart generation unique to this deployment (so applying it twice after
    /// a restart replaces each container once).
    async fn bump_restart_generations(
        &self,
        deployment: &Deployment,
        job_index: usize,
        tasks: &[String],
    ) -> Result<Vec<(cj_api::agent::TaskKey, Goal)>, Failure> {
        let job = &deployment.jobs[job_index];
        let generation = deployment
            .id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(1);
        self.change_desired(deployment, &job.job, |desired, _| {
            for task in tasks {
                desired.restart_generations.insert(task.clone(), generation);
            }
        })
        .await?;
        self.goals_of(deployment, &job.job, tasks)
    }

    async fn change_desired(
        &self,
        deployment: &Deployment,
        job: &str,
        change: impl Fn(&mut DesiredJob, &[String]),
    ) -> Result<(), Failure> {
        let key = keys::desired(&deployment.env, &deployment.service, job);
        let updated = self.update_desired(&key, |desired| {
            let current: Vec<String> = self
                .desired_tasks(desired)?
                .into_iter()
                .map(|task| task.key.task)
                .collect();
            change(desired, &current);
            Ok(())
        })?;
        if updated.is_none() {
            return Err(Failure::Conflict(format!(
                "job {job} was brought down during the deployment"
            )));
        }
        self.assignments_caught_up().await
    }

    fn goals_of(
        &self,
        deployment: &Deployment,
        job: &str,
        tasks: &[String],
    ) -> Result<Vec<(cj_api::agent::TaskKey, Goal)>, Failure> {
        let desired: DesiredJob = self
            .store
            .get_json(&keys::desired(&deployment.env, &deployment.service, job))?
            .ok_or_else(|| {
                Failure::Conflict(format!("job {job} was brought down during the deployment"))
            })?;
        Ok(self
            .desired_tasks(&desired)?
            .into_iter()
            .filter(|task| tasks.contains(&task.key.task))
            .map(|task| {
                let config_hash = task.config_hash();
                (task.key, Goal::Ready { config_hash })
            })
            .collect())
    }

    fn task_key(&self, deployment: &Deployment, task: &str, job: &str) -> cj_api::agent::TaskKey {
        cj_api::agent::TaskKey {
            env: deployment.env.clone(),
            service: deployment.service.clone(),
            job: job.to_owned(),
            task: task.to_owned(),
        }
    }

    pub(crate) fn emit(&self, deployment: &Deployment, event: OperationEvent) {
        self.deployment_signals.publish(&deployment.id, event);
    }

    /// The deployment's status and `message` to whoever follows it.
    pub(crate) fn emit_status(&self, deployment: &Deployment, message: Option<String>) {
        self.emit(
            deployment,
            OperationEvent::Deployment {
                id: deployment.id.clone(),
                status: deployment.status,
                message,
            },
        );
    }
}

fn failed(error: Failure) -> Stop {
    Stop::Failed(error.to_string())
}

fn moved_tasks(deployment: &Deployment) -> Vec<String> {
    deployment
        .jobs
        .iter()
        .flat_map(|job| {
            job.batches
                .iter()
                .filter(|batch| batch.state == BatchState::Healthy)
                .flat_map(move |batch| {
                    batch
                        .tasks
                        .iter()
                        .map(move |task| format!("{}/{}/{task}", deployment.service, job.job))
                })
        })
        .collect()
}
