//! The agent's control loop: on every change of assignments, every container event and a
//! periodic resync, compare what is wanted with what runs and act on the difference. It never
//! acts on the event that woke it, only on the state it then reads, so a missed or repeated event
//! does no harm.
//!
//! The loop is here; carrying out a plan's actions is in `actions`, creating (with volumes and
//! seeds) in `create`, getting a task's artifact before its old container stops in `artifact`,
//! check verdicts in `checks`, engine events in `events`, and removing an environment's
//! leftovers on the server's request in `remove_env`.

mod actions;
mod artifact;
mod checks;
mod create;
mod events;
mod remove_env;
mod restore;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_api::agent::{AgentReport, Assignment, Health, ObservedContainer, Phase, TaskKey};
use cj_api::time::later;
use cj_runtime::{ContainerRuntime, RuntimeError};
use futures_util::future::join_all;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::artifacts::{ArtifactCache, ArtifactCacheConfig};
use crate::backoff::Backoff;
use crate::health::HealthUpdate;
use crate::observe::{InspectCache, Notes, lock, observe};
use crate::plan::{Action, Drains, plan_task, plan_unwanted};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This host's name, as agents and `status` know it.
    pub host: String,
    /// The installation this agent belongs to; only containers with this label are touched.
    pub cluster: String,
    /// Re-read everything this often even without events (a safety net, not the mechanism).
    pub resync_interval: Duration,
    /// SIGTERM to SIGKILL, when stopping a container.
    pub stop_grace_seconds: u32,
    /// How often the host's and the containers' resource use is reported.
    pub stats_interval: Duration,
    /// A simulated host's size, reported instead of the machine's own (`coding-job sim`).
    pub host_size: Option<crate::stats::HostSize>,
    /// Where tasks' artifacts are kept on this host, and how much of them.
    pub artifact_cache: ArtifactCacheConfig,
}

/// What the agent remembers between passes; all of it can be lost (a restart) without harm.
#[derive(Default)]
struct AgentMemory {
    backoffs: HashMap<TaskKey, Backoff>,
    /// Containers we are stopping or removing ourselves: their deaths are not failures.
    expected_stops: HashSet<String>,
    last_phase: HashMap<TaskKey, Phase>,
    /// Config hash of each assigned task, to tell the right container's death from others'.
    assigned_hashes: HashMap<TaskKey, String>,
    /// Containers Docker announced dead (with their exit code) that may still be listed as
    /// running: the event can arrive before the engine's list catches up, and waiting for the
    /// next resync would cost seconds of downtime.
    announced_deaths: HashMap<String, Option<i64>>,
    /// The last verdict of each probed container's check, with what the probe saw.
    health: HashMap<String, (Health, String)>,
    /// The running probe of each checked container.
    probers: HashMap<String, tokio::task::AbortHandle>,
    /// Containers reported leaving, by id, with the end of their drain: the stops under way.
    /// Whoever stops one (a pass, or removing its environment) keeps that end, so no container
    /// is drained twice. (Lost on a restart: the container then gets a whole drain again.)
    leaving: HashMap<String, Instant>,
    /// Why each task's last attempt to create or start failed, until one succeeds: what it is
    /// backing off from (a seed that cannot be read, say), rather than a generic word.
    last_failure: HashMap<TaskKey, String>,
    /// Tasks whose artifact could not be had, with the config hash it was for: while they back
    /// off, their old container is not stopped (it keeps serving).
    artifact_failed: HashMap<TaskKey, String>,
    /// Where a task's artifact came from, when it was fetched in a pass before the one that
    /// creates the container (the old one was draining): for the created event.
    artifact_notes: HashMap<TaskKey, String>,
}

pub struct Agent<R> {
    runtime: Arc<R>,
    config: AgentConfig,
    reports: mpsc::UnboundedSender<AgentReport>,
    memory: Mutex<AgentMemory>,
    inspect_cache: Mutex<InspectCache>,
    /// For HTTP checks; one client keeps connections and its pool small.
    http: reqwest::Client,
    /// For seeds given as URLs: unlike checks, they may come from far away, through the
    /// environment's proxy.
    seed_http: reqwest::Client,
    /// The server snapshots are read from (the current link's), for volumes filled from one.
    snapshot_server: Mutex<Option<crate::snapshot::SnapshotServer>>,
    artifacts: ArtifactCache,
    health_updates: mpsc::UnboundedSender<HealthUpdate>,
    health_receiver: Mutex<Option<mpsc::UnboundedReceiver<HealthUpdate>>>,
    /// Tasks whose containers here stop at once, without a drain: copies the routers no longer
    /// send to (the task moved to another host, or this host fenced it when cut off).
    stop_at_once: StopAtOnce,
}

/// The set of tasks whose containers stop without a drain, shared with whoever decides it (the
/// link to the server).
pub type StopAtOnce = Arc<Mutex<std::collections::HashSet<TaskKey>>>;

/// Why an action failed, in the words the task's phase shows.
#[derive(Debug)]
pub(crate) enum Failure {
    Runtime(RuntimeError),
    /// A volume's seed could not be put in: `seed SOURCE for volume NAME: CAUSE`.
    Seed(String),
    /// The task's artifact could not be had or unpacked: `artifact URL: CAUSE`.
    Artifact(String),
}

impl From<RuntimeError> for Failure {
    fn from(error: RuntimeError) -> Self {
        Failure::Runtime(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Runtime(error) => error.fmt(f),
            Failure::Seed(reason) | Failure::Artifact(reason) => f.write_str(reason),
        }
    }
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl<R: ContainerRuntime> Agent<R> {
    pub fn new(
        runtime: Arc<R>,
        config: AgentConfig,
        reports: mpsc::UnboundedSender<AgentReport>,
    ) -> Self {
        let (health_updates, health_receiver) = mpsc::unbounded_channel();
        let artifacts = ArtifactCache::new(config.artifact_cache.clone());
        Agent {
            runtime,
            config,
            reports,
            memory: Mutex::default(),
            inspect_cache: Mutex::default(),
            // Checks probe the task's own host: never through a proxy from the environment.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a client without a proxy builds"),
            seed_http: crate::seed::client(),
            snapshot_server: Mutex::new(None),
            artifacts,
            health_updates,
            health_receiver: Mutex::new(Some(health_receiver)),
            stop_at_once: StopAtOnce::default(),
        }
    }

    /// Reads the tasks to stop without a drain from `shared` (see [`StopAtOnce`]).
    pub fn with_stop_at_once(mut self, shared: StopAtOnce) -> Self {
        self.stop_at_once = shared;
        self
    }

    /// Runs until the assignment channel closes. Until the first assignments arrive (`None`),
    /// nothing is touched: an agent that starts before its server has loaded must not take
    /// "nothing assigned yet" for "remove everything".
    pub async fn run(
        self: Arc<Self>,
        mut assignments: watch::Receiver<Option<Arc<Vec<Assignment>>>>,
    ) {
        tokio::spawn(crate::stats::report_usage(
            self.runtime.clone(),
            self.config.cluster.clone(),
            self.config.host.clone(),
            self.config.stats_interval,
            self.config.host_size,
            self.reports.clone(),
        ));
        let (event_sender, mut events) = mpsc::unbounded_channel();
        tokio::spawn(events::follow_events(
            self.runtime.clone(),
            self.config.cluster.clone(),
            event_sender,
        ));
        let mut health_updates = lock(&self.health_receiver)
            .take()
            .expect("an agent runs once");
        let mut needs_pass = true;
        let mut next_wake = later(Instant::now(), self.config.resync_interval);
        loop {
            if needs_pass {
                let current = assignments.borrow_and_update().clone();
                next_wake = match current {
                    Some(current) => {
                        let started = std::time::Instant::now();
                        let next = self.pass(&current).await;
                        // Recorded only where a recorder is installed (`dev`, in process).
                        metrics::histogram!("coding_job_agent_reconcile_duration_seconds")
                            .record(started.elapsed().as_secs_f64());
                        next
                    }
                    None => later(Instant::now(), self.config.resync_interval),
                };
            }
            needs_pass = tokio::select! {
                changed = assignments.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    true
                }
                Some(event) = events.recv() => {
                    let mut needs_pass = self.handle_event(event);
                    while let Ok(event) = events.try_recv() {
                        needs_pass |= self.handle_event(event);
                    }
                    needs_pass
                }
                Some(update) = health_updates.recv() => {
                    self.handle_health(update);
                    while let Ok(update) = health_updates.try_recv() {
                        self.handle_health(update);
                    }
                    true
                }
                _ = tokio::time::sleep_until(next_wake) => true,
            };
        }
    }

    /// One reconcile pass; returns when to look again at the latest.
    async fn pass(&self, assignments: &[Assignment]) -> Instant {
        let resync_at = later(Instant::now(), self.config.resync_interval);
        let retry_soon = Instant::now() + Duration::from_secs(1);
        let (observed, notes) =
            match observe(&*self.runtime, &self.config.cluster, &self.inspect_cache).await {
                Ok(observed) => observed,
                Err(error) => {
                    tracing::warn!(%error, "cannot read containers; retrying shortly");
                    return retry_soon;
                }
            };
        // Undone before anything is planned: a container started on a half-filled volume would
        // take it for its data.
        let Some(observed) = self.undo_unfinished_seeds(observed, &notes).await else {
            return retry_soon;
        };
        let mut observed = self.apply_announced_deaths(observed);
        self.track_health(assignments, &mut observed);
        let seen = observed.clone();
        let mut by_task: BTreeMap<TaskKey, Vec<ObservedContainer>> = BTreeMap::new();
        for container in observed {
            by_task
                .entry(container.key.clone())
                .or_default()
                .push(container);
        }
        {
            let mut memory = lock(&self.memory);
            let assigned_hashes: HashMap<TaskKey, String> = assignments
                .iter()
                .map(|a| (a.key.clone(), a.config_hash.clone()))
                .collect();
            // A task given another configuration (a rollout, or its rollback) starts with no
            // backoff: the old configuration's crash loop must not delay the new one.
            let previous = std::mem::replace(&mut memory.assigned_hashes, assigned_hashes.clone());
            memory.backoffs.retain(|key, _| {
                let current = assigned_hashes.get(key);
                current.is_some() && previous.get(key).is_none_or(|old| current == Some(old))
            });
            let AgentMemory {
                backoffs,
                last_failure,
                ..
            } = &mut *memory;
            last_failure.retain(|key, _| backoffs.contains_key(key));
            memory
                .artifact_failed
                .retain(|key, hash| assigned_hashes.get(key) == Some(hash));
            memory
                .artifact_notes
                .retain(|key, _| assigned_hashes.contains_key(key));
        }

        let now = Instant::now();
        let mut drains = Drains {
            drain_ms: notes.drain_ms,
            leaving_until: lock(&self.memory).leaving.clone(),
        };
        {
            let stop_at_once = lock(&self.stop_at_once);
            for container in seen.iter().filter(|c| stop_at_once.contains(&c.key)) {
                drains.drain_ms.remove(&container.id);
                drains.leaving_until.remove(&container.id);
            }
        }
        let mut plans = Vec::new();
        for assignment in assignments {
            let containers = by_task.remove(&assignment.key).unwrap_or_default();
            let backoff = lock(&self.memory)
                .backoffs
                .get(&assignment.key)
                .cloned()
                .unwrap_or_default();
            let mut actions = plan_task(assignment, &containers, &backoff, &drains, now);
            self.keep_old_while_artifact_fails(assignment, &mut actions);
            plans.push((
                Some(assignment),
                assignment.key.clone(),
                containers,
                actions,
            ));
        }
        for (key, containers) in by_task {
            let actions = plan_unwanted(&containers, &drains, now);
            plans.push((None, key, containers, actions));
        }
        // The routers hear of every container leaving before anything else is done, so no
        // request goes to a container on its way out.
        if self.record_leaving(plans.iter().flat_map(|plan| &plan.3)) {
            self.snapshot(seen);
        }
        let work = plans
            .into_iter()
            .map(|(assignment, key, containers, actions)| {
                self.carry_out(assignment, key, containers, actions)
            });
        let wakes = join_all(work).await;

        match observe(&*self.runtime, &self.config.cluster, &self.inspect_cache).await {
            Ok((containers, _)) => {
                // Also starts the probes of containers this pass created, without waiting for
                // the next pass.
                let mut containers = self.apply_announced_deaths(containers);
                self.track_health(assignments, &mut containers);
                self.snapshot(containers);
            }
            Err(error) => tracing::warn!(%error, "cannot read containers after a pass"),
        }
        wakes.into_iter().flatten().fold(resync_at, Instant::min)
    }

    /// Remembers the drains the plans start (keeping the end of those under way) and forgets
    /// those of containers no longer to be stopped (a rollback made one right again). Returns
    /// whether a container started leaving.
    fn record_leaving<'a>(&self, actions: impl Iterator<Item = &'a Action>) -> bool {
        let mut to_stop = HashSet::new();
        let mut started = false;
        let mut memory = lock(&self.memory);
        for action in actions {
            match action {
                Action::Drain {
                    container_id,
                    until,
                } => {
                    to_stop.insert(container_id.clone());
                    if !memory.leaving.contains_key(container_id) {
                        memory.leaving.insert(container_id.clone(), *until);
                        started = true;
                    }
                }
                Action::Stop { container_id } | Action::Remove { container_id } => {
                    to_stop.insert(container_id.clone());
                }
                _ => {}
            }
        }
        memory.leaving.retain(|id, _| to_stop.contains(id));
        started
    }

    /// Reports every container of ours on the host, the leaving ones marked.
    fn snapshot(&self, mut containers: Vec<ObservedContainer>) {
        {
            let memory = lock(&self.memory);
            for container in &mut containers {
                container.leaving = memory.leaving.contains_key(&container.id);
            }
        }
        self.report(AgentReport::Snapshot {
            host: self.config.host.clone(),
            containers,
        });
    }

    /// Reads the host's containers and reports them now, outside a pass (a container started
    /// leaving on a request).
    async fn snapshot_now(&self) {
        match observe(&*self.runtime, &self.config.cluster, &self.inspect_cache).await {
            Ok((containers, _)) => {
                let mut containers = self.apply_announced_deaths(containers);
                self.fill_health(&mut containers);
                self.snapshot(containers);
            }
            Err(error) => tracing::warn!(%error, "cannot read containers for a report"),
        }
    }

    /// Removes every container whose seeding never finished, with the volumes it was filling
    /// (never used by a started container, so nothing of a task's own is lost), so the task's
    /// next container seeds them afresh. Returns the other containers, or `None` when a removal
    /// failed and the pass should wait.
    async fn undo_unfinished_seeds(
        &self,
        mut observed: Vec<ObservedContainer>,
        notes: &Notes,
    ) -> Option<Vec<ObservedContainer>> {
        for (container_id, volumes) in &notes.unfinished_seeds {
            tracing::warn!(
                container_id,
                ?volumes,
                "a seeding or an artifact's unpacking did not finish; starting over"
            );
            lock(&self.memory)
                .expected_stops
                .insert(container_id.clone());
            if let Err(error) = self.runtime.remove(container_id).await {
                tracing::warn!(%error, container_id, "cannot remove a half-seeded container");
                return None;
            }
            for volume in volumes {
                if let Err(error) = self.runtime.remove_volume(volume).await {
                    tracing::warn!(%error, volume, "cannot remove a half-seeded volume");
                    return None;
                }
            }
        }
        observed.retain(|c| !notes.unfinished_seeds.contains_key(&c.id));
        Some(observed)
    }

    /// Trusts a death event over a list that has not caught up with it yet.
    fn apply_announced_deaths(
        &self,
        mut observed: Vec<ObservedContainer>,
    ) -> Vec<ObservedContainer> {
        let mut memory = lock(&self.memory);
        for container in &mut observed {
            if let Some(exit_code) = memory.announced_deaths.get(&container.id).copied() {
                if container.is_live() {
                    container.state = cj_runtime::ContainerState::Exited;
                    container.exit_code = container.exit_code.or(exit_code);
                } else {
                    memory.announced_deaths.remove(&container.id);
                }
            }
        }
        observed
    }

    /// Records a failed attempt: the task backs off before the next one.
    fn failed(&self, assignment: &Assignment, reason: String) -> Instant {
        let now = Instant::now();
        let pause = {
            let mut memory = lock(&self.memory);
            memory
                .last_failure
                .insert(assignment.key.clone(), reason.clone());
            let backoff = memory.backoffs.entry(assignment.key.clone()).or_default();
            // A failure to start is never a one-off crash of a running service: always pause.
            backoff.started_at = None;
            backoff.consecutive_failures = backoff.consecutive_failures.max(1);
            backoff.record_failure(now)
        };
        self.phase(
            &assignment.key,
            &assignment.config_hash,
            Phase::Failed { reason },
        );
        later(now, pause)
    }

    /// Reports a task's phase when it differs from the last one reported.
    fn phase(&self, key: &TaskKey, config_hash: &str, phase: Phase) {
        let changed = lock(&self.memory)
            .last_phase
            .insert(key.clone(), phase.clone())
            .as_ref()
            != Some(&phase);
        if changed {
            self.report(AgentReport::Phase {
                host: self.config.host.clone(),
                key: key.clone(),
                config_hash: config_hash.to_owned(),
                phase,
            });
        }
    }

    fn report(&self, report: AgentReport) {
        // The server side going away ends the agent through the assignment channel instead.
        let _ = self.reports.send(report);
    }
}
