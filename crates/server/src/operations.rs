//! `up` and `down`: change the desired state wave by wave in dependency order, and wait for the
//! agents to make it so before the next wave. Progress streams out as [`OperationEvent`]s.
//!
//! Everything that can refuse the operation is checked before anything changes, so a refused
//! `up` leaves the store as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cj_agent::TaskKey;
use cj_api::{OperationEvent, OperationSummary, TaskFailure};
use cj_store::StoreJson;
use tokio::sync::mpsc;

use crate::error::ApiFailure;
use crate::keys;
use crate::state::{DesiredJob, ServerState, now_rfc3339};
use crate::waiting::Goal;

pub const DEFAULT_WAVE_TIMEOUT: Duration = Duration::from_secs(300);

/// A checked operation, ready to run.
#[derive(Debug, Clone)]
pub struct OperationPlan {
    pub direction: Direction,
    pub env: String,
    pub service: String,
    /// Jobs wave by wave: dependency order for `up`, reversed for `down`.
    pub waves: Vec<Vec<String>>,
    /// `up`: the version each job runs (its current one if already up, else the latest).
    pub versions: BTreeMap<String, u64>,
    pub user: String,
    pub wave_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Each task of a wave and where it must get to.
type WaveTasks = Vec<(TaskKey, Goal)>;

impl ServerState {
    pub fn plan_up(
        &self,
        env: &str,
        target: &str,
        user: &str,
        wave_timeout: Duration,
    ) -> Result<OperationPlan, ApiFailure> {
        let resolved = self.resolve(env, target)?;
        let spec = &resolved.latest.spec;
        // A job brings up the jobs it depends on, as `docker compose up JOB` does.
        let mut selected: BTreeSet<String> = BTreeSet::new();
        let mut to_visit = resolved.jobs.clone();
        while let Some(job) = to_visit.pop() {
            if selected.insert(job.clone())
                && let Some(job_spec) = spec.job(&job)
            {
                to_visit.extend(job_spec.depends_on.iter().cloned());
            }
        }
        let mut versions = BTreeMap::new();
        for job in &selected {
            let desired: Option<DesiredJob> =
                self.store
                    .get_json(&keys::desired(env, &resolved.service, job))?;
            let version = desired
                .map(|d| d.version)
                .unwrap_or(resolved.latest.version);
            let record = self.versions.get(env, &resolved.service, version)?;
            let job_spec = record.spec.job(job).ok_or_else(|| {
                ApiFailure::Conflict(format!(
                    "job {job} is running at version {version}, which no longer has it"
                ))
            })?;
            if let Some(task) = job_spec.tasks.iter().find(|task| task.image.is_none()) {
                return Err(ApiFailure::BadRequest(format!(
                    "cannot start {}/{job}/{}: the task has no image (set `image:` on the task or its job, then push)",
                    resolved.service, task.name
                )));
            }
            versions.insert(job.clone(), version);
        }
        let waves = job_waves(spec, selected.iter())?;
        Ok(OperationPlan {
            direction: Direction::Up,
            env: env.into(),
            service: resolved.service,
            waves,
            versions,
            user: user.into(),
            wave_timeout,
        })
    }

    pub fn plan_down(
        &self,
        env: &str,
        target: &str,
        user: &str,
        wave_timeout: Duration,
    ) -> Result<OperationPlan, ApiFailure> {
        let resolved = self.resolve(env, target)?;
        let mut waves = job_waves(&resolved.latest.spec, resolved.jobs.iter())?;
        // Dependents stop before what they depend on.
        waves.reverse();
        Ok(OperationPlan {
            direction: Direction::Down,
            env: env.into(),
            service: resolved.service,
            waves,
            versions: BTreeMap::new(),
            user: user.into(),
            wave_timeout,
        })
    }

    /// Runs the operation, sending progress to `events`. Keeps going if the receiver goes away.
    pub async fn run_operation(
        self: Arc<Self>,
        plan: OperationPlan,
        events: mpsc::Sender<OperationEvent>,
    ) {
        let started = Instant::now();
        let send = |event: OperationEvent| {
            let events = events.clone();
            async move {
                let _ = events.send(event).await;
            }
        };
        send(OperationEvent::Plan {
            waves: plan.waves.clone(),
        })
        .await;
        let mut summary = OperationSummary {
            ok: true,
            ..OperationSummary::default()
        };
        for (wave_index, wave) in plan.waves.iter().enumerate() {
            if !summary.ok {
                summary
                    .skipped
                    .extend(wave.iter().map(|job| format!("{}/{job}", plan.service)));
                continue;
            }
            send(OperationEvent::WaveStarted {
                wave: wave_index + 1,
                jobs: wave.clone(),
            })
            .await;
            let result = match plan.direction {
                Direction::Up => self.up_wave(&plan, wave, &events, &mut summary).await,
                Direction::Down => self.down_wave(&plan, wave, &events, &mut summary).await,
            };
            if let Err(error) = result {
                summary.failed.push(TaskFailure {
                    task: format!("{}/{}", plan.service, wave.join(",")),
                    reason: error.to_string(),
                });
            }
            summary.ok = summary.failed.is_empty();
            if summary.ok {
                send(OperationEvent::WaveDone {
                    wave: wave_index + 1,
                })
                .await;
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        send(OperationEvent::Summary(summary)).await;
    }

    async fn up_wave(
        &self,
        plan: &OperationPlan,
        wave: &[String],
        events: &mpsc::Sender<OperationEvent>,
        summary: &mut OperationSummary,
    ) -> Result<(), ApiFailure> {
        let generation_at_start = self.observed.generation();
        let mut tasks: WaveTasks = Vec::new();
        for job in wave {
            let desired_key = keys::desired(&plan.env, &plan.service, job);
            let desired = match self.store.get_json::<DesiredJob>(&desired_key)? {
                // Already up: it stays at its version (a rollout moves it, not `up`).
                Some(desired) => desired,
                None => {
                    let desired = DesiredJob {
                        env: plan.env.clone(),
                        service: plan.service.clone(),
                        job: job.clone(),
                        version: plan.versions[job],
                        since: now_rfc3339(),
                        by: plan.user.clone(),
                        task_versions: BTreeMap::new(),
                        restart_generations: BTreeMap::new(),
                    };
                    self.store.put_json(&desired_key, &desired)?;
                    desired
                }
            };
            for task in self.desired_tasks(&desired)? {
                let config_hash = task.config_hash();
                let running = self
                    .observed
                    .containers_of(&task.key)
                    .iter()
                    .any(|(_, c)| c.is_live() && c.config_hash == config_hash);
                if running {
                    summary.unchanged.push(task.key.to_string());
                    let event = OperationEvent::Task {
                        task: task.key.to_string(),
                        phase: "running".into(),
                        detail: Some("unchanged".into()),
                    };
                    let _ = events.send(event).await;
                } else {
                    summary.changed.push(task.key.to_string());
                }
                // Unchanged tasks are awaited too: `up` ends when every task passes its check.
                tasks.push((task.key, Goal::Ready { config_hash }));
            }
        }
        self.apply_and_wait(plan, &tasks, generation_at_start, events, summary)
            .await
    }

    async fn down_wave(
        &self,
        plan: &OperationPlan,
        wave: &[String],
        events: &mpsc::Sender<OperationEvent>,
        summary: &mut OperationSummary,
    ) -> Result<(), ApiFailure> {
        let generation_at_start = self.observed.generation();
        let mut tasks: WaveTasks = Vec::new();
        let keys: BTreeSet<TaskKey> = self
            .observed
            .task_keys()
            .into_iter()
            .filter(|key| {
                key.env == plan.env && key.service == plan.service && wave.contains(&key.job)
            })
            .collect();
        tasks.extend(keys.into_iter().map(|key| (key, Goal::Gone)));
        for job in wave {
            self.store
                .delete(&keys::desired(&plan.env, &plan.service, job))?;
            if !tasks.iter().any(|(key, _)| &key.job == job) {
                summary.unchanged.push(format!("{}/{job}", plan.service));
            }
        }
        summary
            .changed
            .extend(tasks.iter().map(|(key, _)| key.to_string()));
        self.apply_and_wait(plan, &tasks, generation_at_start, events, summary)
            .await
    }

    /// Hands the new desired state to the agents and waits for the wave's tasks.
    async fn apply_and_wait(
        &self,
        plan: &OperationPlan,
        tasks: &WaveTasks,
        generation_at_start: u64,
        events: &mpsc::Sender<OperationEvent>,
        summary: &mut OperationSummary,
    ) -> Result<(), ApiFailure> {
        // Subscribed before publishing, so no progress of this wave is missed.
        let progress = self.observed.subscribe_progress();
        self.publish_assignments().await?;
        let failures = self
            .wait_for_tasks(
                tasks,
                generation_at_start,
                plan.wave_timeout,
                progress,
                events,
            )
            .await;
        summary.failed.extend(failures);
        Ok(())
    }
}

/// Jobs of `spec` grouped into waves by their dependencies among themselves.
pub fn job_waves<'a>(
    spec: &cj_spec::ServiceSpec,
    jobs: impl Iterator<Item = &'a String>,
) -> Result<Vec<Vec<String>>, ApiFailure> {
    let edges: Vec<(&str, &[String])> = jobs
        .map(|job| {
            let depends_on = spec
                .job(job)
                .map(|j| j.depends_on.as_slice())
                .unwrap_or_default();
            (job.as_str(), depends_on)
        })
        .collect();
    cj_spec::dependency_waves(edges).map_err(|cycle| ApiFailure::BadRequest(cycle.to_string()))
}
