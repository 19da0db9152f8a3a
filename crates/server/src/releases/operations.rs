//! `up` and `down`: change the desired state wave by wave in dependency order, and wait for the
//! agents to make it so before the next wave. Progress streams out as [`OperationEvent`]s.
//!
//! Everything that can refuse the operation is checked before anything changes, so a refused
//! `up` leaves the store as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cj_api::agent::TaskKey;
use cj_api::{OperationEvent, OperationSummary, TaskFailure};
use cj_store::StoreJson;
use tokio::sync::mpsc;

use crate::base::now_rfc3339;
use crate::error::Failure;
use crate::keys;
use crate::releases::waiting::Goal;
use crate::state::{DesiredJob, ServerState};

pub const DEFAULT_WAVE_TIMEOUT: Duration = Duration::from_secs(300);

/// A checked operation, ready to run.
#[derive(Debug, Clone)]
pub struct OperationPlan {
    pub direction: Direction,
    pub env: String,
    /// Jobs wave by wave: dependency order for `up` (across services), reversed for `down`.
    pub waves: Vec<Vec<JobRef>>,
    /// `up`: the version each job runs (its current one if already up, else the latest).
    pub versions: BTreeMap<JobRef, u64>,
    pub user: String,
    pub wave_timeout: Duration,
}

/// A job of a service, shown as `service/job`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobRef {
    pub service: String,
    pub job: String,
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.job)
    }
}

impl JobRef {
    pub fn new(service: &str, job: &str) -> Self {
        JobRef {
            service: service.to_owned(),
            job: job.to_owned(),
        }
    }

    /// What `depends_on` entry `dependency` of this job names: a job of the same service, or
    /// with `service/job` one of another.
    pub fn dependency(&self, dependency: &str) -> JobRef {
        match dependency.split_once('/') {
            Some((service, job)) => JobRef::new(service, job),
            None => JobRef::new(&self.service, dependency),
        }
    }
}

impl OperationPlan {
    /// A job as progress shows it: its name alone when the plan is about one service.
    fn shown(&self, job: &JobRef) -> String {
        let one_service = self
            .waves
            .iter()
            .flatten()
            .all(|other| other.service == job.service);
        if one_service {
            job.job.clone()
        } else {
            job.to_string()
        }
    }

    fn shown_wave(&self, wave: &[JobRef]) -> Vec<String> {
        wave.iter().map(|job| self.shown(job)).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Each task of a wave and where it must get to.
type WaveTasks = Vec<(TaskKey, Goal)>;

impl ServerState {
    /// `up TARGET`: the target's jobs and everything they depend on, in this service or others
    /// (`depends_on: [core/db]`), as `docker compose up JOB` brings up its dependencies.
    pub fn plan_up(
        &self,
        env: &str,
        target: &str,
        user: &str,
        wave_timeout: Duration,
    ) -> Result<OperationPlan, Failure> {
        self.check_env_writable(env)?;
        let resolved = self.resolve(env, target)?;
        let roots = resolved
            .jobs
            .iter()
            .map(|job| JobRef::new(&resolved.service, job))
            .collect();
        self.plan_up_jobs(env, roots, user, wave_timeout)
    }

    /// `env up ENV`: every job of every service, in dependency order across services.
    pub fn plan_env_up(
        &self,
        env: &str,
        user: &str,
        wave_timeout: Duration,
    ) -> Result<OperationPlan, Failure> {
        self.check_env_writable(env)?;
        if !self.env_exists(env)? {
            return Err(self.no_such_env(env)?);
        }
        let mut roots = Vec::new();
        for service in self.service_names(env)? {
            if let Some(version) = self.latest_version(env, &service)? {
                let record = self.versions.get(env, &service, version)?;
                roots.extend(
                    record
                        .spec
                        .jobs
                        .iter()
                        .map(|job| JobRef::new(&service, &job.name)),
                );
            }
        }
        self.plan_up_jobs(env, roots, user, wave_timeout)
    }

    /// The jobs of `roots` and, transitively, what they depend on; checked (each has a version
    /// and images, no fixed port another environment uses on the same host) and in waves.
    fn plan_up_jobs(
        &self,
        env: &str,
        roots: Vec<JobRef>,
        user: &str,
        wave_timeout: Duration,
    ) -> Result<OperationPlan, Failure> {
        let mut versions: BTreeMap<JobRef, u64> = BTreeMap::new();
        let mut dependencies: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut starting = Vec::new();
        let mut to_visit: Vec<(JobRef, Option<JobRef>)> =
            roots.into_iter().map(|job| (job, None)).collect();
        while let Some((job, needed_by)) = to_visit.pop() {
            if versions.contains_key(&job) {
                continue;
            }
            let desired: Option<DesiredJob> =
                self.store
                    .get_json(&keys::desired(env, &job.service, &job.job))?;
            let version = match &desired {
                Some(desired) => desired.version,
                None => self.latest_version(env, &job.service)?.ok_or_else(|| {
                    let needed = needed_by
                        .as_ref()
                        .map(|by| format!("{by} depends on {job}, but "))
                        .unwrap_or_default();
                    Failure::BadRequest(format!(
                        "{needed}environment {env} has no service {}",
                        job.service
                    ))
                })?,
            };
            let record = self.versions.get(env, &job.service, version)?;
            let job_spec = record.spec.job(&job.job).ok_or_else(|| match &needed_by {
                Some(by) => Failure::BadRequest(format!(
                    "{by} depends on {job}, but service {} (version {version}) has no job {}",
                    job.service, job.job
                )),
                None => Failure::Conflict(format!(
                    "job {} is running at version {version}, which no longer has it",
                    job.job
                )),
            })?;
            if let Some(task) = job_spec.tasks.iter().find(|task| task.image.is_none()) {
                return Err(Failure::BadRequest(format!(
                    "cannot start {job}/{}: the task has no image (set `image:` on the task or its job, then push)",
                    task.name
                )));
            }
            if desired.is_none() {
                let would_run = DesiredJob {
                    env: env.to_owned(),
                    service: job.service.clone(),
                    job: job.job.clone(),
                    version,
                    since: String::new(),
                    by: String::new(),
                    task_versions: BTreeMap::new(),
                    restart_generations: BTreeMap::new(),
                    volume_sources: BTreeMap::new(),
                };
                starting.extend(self.raw_desired_tasks(&would_run)?);
            }
            let depends_on: Vec<JobRef> = job_spec
                .depends_on
                .iter()
                .map(|dependency| job.dependency(dependency))
                .collect();
            dependencies.insert(
                job.to_string(),
                depends_on.iter().map(JobRef::to_string).collect(),
            );
            to_visit.extend(
                depends_on
                    .into_iter()
                    .map(|dependency| (dependency, Some(job.clone()))),
            );
            versions.insert(job, version);
        }
        self.check_fixed_ports(&starting)?;
        let by_name: BTreeMap<String, JobRef> = versions
            .keys()
            .map(|job| (job.to_string(), job.clone()))
            .collect();
        Ok(OperationPlan {
            direction: Direction::Up,
            env: env.into(),
            waves: ordered_waves(&dependencies, &by_name)?,
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
    ) -> Result<OperationPlan, Failure> {
        let resolved = self.resolve(env, target)?;
        let waves = job_waves(&resolved.latest.spec, resolved.jobs.iter())?
            .into_iter()
            .map(|wave| {
                wave.iter()
                    .map(|job| JobRef::new(&resolved.service, job))
                    .collect()
            })
            .collect();
        Ok(down_plan(env, waves, user, wave_timeout))
    }

    /// `env down ENV`: every job that is up, dependents first (across services).
    pub fn plan_env_down(
        &self,
        env: &str,
        user: &str,
        wave_timeout: Duration,
    ) -> Result<OperationPlan, Failure> {
        crate::releases::versions::check_env_name(env)?;
        if !self.env_exists(env)? {
            return Err(self.no_such_env(env)?);
        }
        let mut dependencies: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for desired in self.desired_jobs(&format!("{}{env}/", keys::DESIRED_ALL))? {
            let job = JobRef::new(&desired.service, &desired.job);
            let record = self.versions.get(env, &desired.service, desired.version)?;
            let depends_on = record
                .spec
                .job(&desired.job)
                .map(|spec| {
                    spec.depends_on
                        .iter()
                        .map(|dependency| job.dependency(dependency).to_string())
                        .collect()
                })
                .unwrap_or_default();
            dependencies.insert(job.to_string(), depends_on);
            by_name.insert(job.to_string(), job);
        }
        let waves = ordered_waves(&dependencies, &by_name)?;
        Ok(down_plan(env, waves, user, wave_timeout))
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
            waves: plan
                .waves
                .iter()
                .map(|wave| plan.shown_wave(wave))
                .collect(),
        })
        .await;
        let mut summary = OperationSummary {
            ok: true,
            ..OperationSummary::default()
        };
        let generation_at_start = self.observed.generation();
        // Every task an `up` brought up, to check again at the end: a task of the first wave that
        // died while a later one started fails the operation as much as one that never ran.
        let mut brought_up: WaveTasks = Vec::new();
        for (wave_index, wave) in plan.waves.iter().enumerate() {
            if !summary.ok {
                summary.skipped.extend(wave.iter().map(JobRef::to_string));
                continue;
            }
            send(OperationEvent::WaveStarted {
                wave: wave_index + 1,
                jobs: plan.shown_wave(wave),
            })
            .await;
            let result = match plan.direction {
                Direction::Up => {
                    self.up_wave(&plan, wave, &events, &mut summary, &mut brought_up)
                        .await
                }
                Direction::Down => self.down_wave(&plan, wave, &events, &mut summary).await,
            };
            if let Err(error) = result {
                let jobs: Vec<String> = wave.iter().map(JobRef::to_string).collect();
                summary
                    .failed
                    .push(TaskFailure::new(jobs.join(","), error.to_string()));
            }
            summary.ok = summary.failed.is_empty();
            if summary.ok {
                send(OperationEvent::WaveDone {
                    wave: wave_index + 1,
                })
                .await;
            }
        }
        if summary.ok && plan.direction == Direction::Up && plan.waves.len() > 1 {
            let progress = self.observed.subscribe_progress();
            self.wait_for_wave(
                &plan,
                &brought_up,
                generation_at_start,
                progress,
                &events,
                &mut summary,
            )
            .await;
            summary.ok = summary.failed.is_empty();
        }
        summary.seconds = started.elapsed().as_secs_f64();
        send(OperationEvent::Summary(summary)).await;
    }

    async fn up_wave(
        &self,
        plan: &OperationPlan,
        wave: &[JobRef],
        events: &mpsc::Sender<OperationEvent>,
        summary: &mut OperationSummary,
        brought_up: &mut WaveTasks,
    ) -> Result<(), Failure> {
        let generation_at_start = self.observed.generation();
        // A task counts as unchanged only if it already ran before this wave published: a fast
        // host may start a new task before the goals below are worked out.
        let wave_started = tokio::time::Instant::now();
        // Subscribed before publishing, so no progress of this wave is missed.
        let progress = self.observed.subscribe_progress();
        let mut desired_jobs = Vec::new();
        for job in wave {
            desired_jobs.push(self.desire_job(plan, job)?);
        }
        self.assignments_caught_up().await?;
        // Goals after publishing: a task's rendered configuration depends on where the jobs it
        // names (`addr`) were just placed.
        let mut tasks: WaveTasks = Vec::new();
        for desired in &desired_jobs {
            for task in self.desired_tasks(desired)? {
                let config_hash = task.config_hash();
                let running = self.copies_of(&task.key).iter().any(|(_, c)| {
                    c.is_live()
                        && c.config_hash == config_hash
                        && self
                            .observed
                            .running_since(&c.id)
                            .is_some_and(|since| since < wave_started)
                });
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
        self.wait_for_wave(plan, &tasks, generation_at_start, progress, events, summary)
            .await;
        brought_up.extend(tasks);
        Ok(())
    }

    /// The job's desired record: as stored if it is up already (it stays at its version: a
    /// rollout moves it, not `up`), else written now at the plan's version. Written only if
    /// still absent, so an `up` racing another `up` or a rollout never overwrites its record.
    fn desire_job(&self, plan: &OperationPlan, job: &JobRef) -> Result<DesiredJob, Failure> {
        let desired_key = keys::desired(&plan.env, &job.service, &job.job);
        loop {
            if let Some(desired) = self.store.get_json::<DesiredJob>(&desired_key)? {
                return Ok(desired);
            }
            let desired = DesiredJob {
                env: plan.env.clone(),
                service: job.service.clone(),
                job: job.job.clone(),
                version: plan.versions[job],
                since: now_rfc3339(),
                by: plan.user.clone(),
                task_versions: BTreeMap::new(),
                restart_generations: BTreeMap::new(),
                // A copy made with its data: the job's volumes come from the source's snapshots.
                volume_sources: self
                    .env_record(&plan.env)?
                    .and_then(|record| {
                        record
                            .volume_sources
                            .get(&format!("{}/{}", job.service, job.job))
                            .cloned()
                    })
                    .unwrap_or_default(),
            };
            let value = serde_json::to_vec(&desired).map_err(cj_store::StoreError::encode)?;
            if self
                .store
                .compare_and_swap(&desired_key, None, value)?
                .is_some()
            {
                return Ok(desired);
            }
        }
    }

    async fn down_wave(
        &self,
        plan: &OperationPlan,
        wave: &[JobRef],
        events: &mpsc::Sender<OperationEvent>,
        summary: &mut OperationSummary,
    ) -> Result<(), Failure> {
        let generation_at_start = self.observed.generation();
        let mut tasks: WaveTasks = Vec::new();
        let keys: BTreeSet<TaskKey> = self
            .observed
            .task_keys()
            .into_iter()
            .filter(|key| {
                key.env == plan.env && wave.contains(&JobRef::new(&key.service, &key.job))
            })
            .collect();
        tasks.extend(keys.into_iter().map(|key| (key, Goal::Gone)));
        for job in wave {
            self.store
                .delete(&keys::desired(&plan.env, &job.service, &job.job))?;
            if !tasks
                .iter()
                .any(|(key, _)| key.service == job.service && key.job == job.job)
            {
                summary.unchanged.push(job.to_string());
            }
        }
        summary
            .changed
            .extend(tasks.iter().map(|(key, _)| key.to_string()));
        // Subscribed before publishing, so no progress of this wave is missed.
        let progress = self.observed.subscribe_progress();
        self.assignments_caught_up().await?;
        self.wait_for_wave(plan, &tasks, generation_at_start, progress, events, summary)
            .await;
        Ok(())
    }

    /// Waits for the wave's tasks (published already) and records those that failed.
    async fn wait_for_wave(
        &self,
        plan: &OperationPlan,
        tasks: &WaveTasks,
        generation_at_start: u64,
        progress: tokio::sync::broadcast::Receiver<crate::hosts::observed::TaskProgress>,
        events: &mpsc::Sender<OperationEvent>,
        summary: &mut OperationSummary,
    ) {
        let failures = self
            .wait_for_tasks(
                tasks,
                generation_at_start,
                plan.wave_timeout,
                progress,
                events,
            )
            .await;
        summary.failed.extend(failures.failures);
        summary.waiting_for_host.extend(failures.waiting_for_host);
    }
}

/// Orders jobs (by `service/job` name, each with the names it depends on) into waves.
fn ordered_waves(
    dependencies: &BTreeMap<String, Vec<String>>,
    jobs: &BTreeMap<String, JobRef>,
) -> Result<Vec<Vec<JobRef>>, Failure> {
    let waves = cj_spec::dependency_waves(
        dependencies
            .iter()
            .map(|(job, deps)| (job.as_str(), deps.as_slice())),
    )
    .map_err(|cycle| Failure::BadRequest(cycle.to_string()))?;
    Ok(waves
        .into_iter()
        .map(|wave| wave.iter().map(|name| jobs[name].clone()).collect())
        .collect())
}

/// A `down` of jobs in these (start-order) waves: reversed, so dependents stop first.
fn down_plan(
    env: &str,
    mut waves: Vec<Vec<JobRef>>,
    user: &str,
    wave_timeout: Duration,
) -> OperationPlan {
    waves.reverse();
    OperationPlan {
        direction: Direction::Down,
        env: env.into(),
        waves,
        versions: BTreeMap::new(),
        user: user.into(),
        wave_timeout,
    }
}

/// Jobs of `spec` grouped into waves by their dependencies among themselves.
pub fn job_waves<'a>(
    spec: &cj_spec::ServiceSpec,
    jobs: impl Iterator<Item = &'a String>,
) -> Result<Vec<Vec<String>>, Failure> {
    let edges: Vec<(&str, &[String])> = jobs
        .map(|job| {
            let depends_on = spec
                .job(job)
                .map(|j| j.depends_on.as_slice())
                .unwrap_or_default();
            (job.as_str(), depends_on)
        })
        .collect();
    cj_spec::dependency_waves(edges).map_err(|cycle| Failure::BadRequest(cycle.to_string()))
}
