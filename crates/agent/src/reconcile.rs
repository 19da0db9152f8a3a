//! The agent's control loop: on every change of assignments, every container event and a
//! periodic resync, compare what is wanted with what runs and act on the difference. It never
//! acts on the event that woke it, only on the state it then reads, so a missed or repeated event
//! does no harm.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_runtime::{ContainerRuntime, CreateRequest, RuntimeError, RuntimeEvent, labels};
use futures_util::StreamExt;
use futures_util::future::join_all;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::health::{HealthUpdate, probe_loop};
use crate::naming::container_name;
use crate::observe::{InspectCache, lock, observe};
use crate::plan::{Action, plan_task, plan_unwanted};
use crate::time::later;
use crate::types::{
    AgentReport, Assignment, ContainerEvent, ContainerEventKind, Health, ObservedContainer, Phase,
    TaskKey,
};

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
}

pub struct Agent<R> {
    runtime: Arc<R>,
    config: AgentConfig,
    reports: mpsc::UnboundedSender<AgentReport>,
    memory: Mutex<AgentMemory>,
    inspect_cache: Mutex<InspectCache>,
    /// For HTTP checks; one client keeps connections and its pool small.
    http: reqwest::Client,
    health_updates: mpsc::UnboundedSender<HealthUpdate>,
    health_receiver: Mutex<Option<mpsc::UnboundedReceiver<HealthUpdate>>>,
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn nanos_rfc3339(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(now_rfc3339)
}

impl<R: ContainerRuntime> Agent<R> {
    pub fn new(
        runtime: Arc<R>,
        config: AgentConfig,
        reports: mpsc::UnboundedSender<AgentReport>,
    ) -> Self {
        let (health_updates, health_receiver) = mpsc::unbounded_channel();
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
            health_updates,
            health_receiver: Mutex::new(Some(health_receiver)),
        }
    }

    /// Runs until the assignment channel closes. Until the first assignments arrive (`None`),
    /// nothing is touched: an agent that starts before its server has loaded must not take
    /// "nothing assigned yet" for "remove everything".
    pub async fn run(self, mut assignments: watch::Receiver<Option<Arc<Vec<Assignment>>>>) {
        tokio::spawn(crate::stats::report_usage(
            self.runtime.clone(),
            self.config.cluster.clone(),
            self.config.host.clone(),
            self.config.stats_interval,
            self.reports.clone(),
        ));
        let (event_sender, mut events) = mpsc::unbounded_channel();
        tokio::spawn(follow_events(
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
                    Some(current) => self.pass(&current).await,
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

    /// Records a check's new verdict; an unhealthy task counts as a failure for its backoff.
    fn handle_health(&self, update: HealthUpdate) {
        {
            let mut memory = lock(&self.memory);
            if !memory.probers.contains_key(&update.container_id) {
                return; // A verdict about a container whose probe was stopped meanwhile.
            }
            memory.health.insert(
                update.container_id.clone(),
                (update.health, update.detail.clone()),
            );
            if update.health == Health::Unhealthy {
                memory
                    .backoffs
                    .entry(update.key.clone())
                    .or_default()
                    .record_failure(Instant::now());
            }
        }
        self.report(AgentReport::Health {
            host: self.config.host.clone(),
            key: update.key,
            container_id: update.container_id,
            config_hash: update.config_hash,
            health: update.health,
            detail: update.detail,
        });
    }

    /// Fills in check verdicts, and keeps exactly one probe running for each live container of
    /// the right configuration whose task has a check.
    fn track_health(&self, assignments: &[Assignment], observed: &mut [ObservedContainer]) {
        let checks: HashMap<(&TaskKey, &str), &cj_spec::CheckSpec> = assignments
            .iter()
            .filter_map(|a| Some(((&a.key, a.config_hash.as_str()), a.spec.check.as_ref()?)))
            .collect();
        let mut memory = lock(&self.memory);
        let mut probed = HashSet::new();
        for container in observed.iter_mut().filter(|c| c.is_live()) {
            let Some(check) = checks.get(&(&container.key, container.config_hash.as_str())) else {
                continue;
            };
            probed.insert(container.id.clone());
            if !memory.probers.contains_key(&container.id) {
                let prober = tokio::spawn(probe_loop(
                    self.runtime.clone(),
                    self.http.clone(),
                    container.id.clone(),
                    container.key.clone(),
                    container.config_hash.clone(),
                    (*check).clone(),
                    self.health_updates.clone(),
                ));
                memory
                    .probers
                    .insert(container.id.clone(), prober.abort_handle());
                memory
                    .health
                    .insert(container.id.clone(), (Health::Starting, String::new()));
            }
            let (health, detail) = memory
                .health
                .get(&container.id)
                .cloned()
                .unwrap_or((Health::Starting, String::new()));
            container.health = Some(health);
            container.health_detail = Some(detail).filter(|d| !d.is_empty());
        }
        memory.probers.retain(|id, prober| {
            let keep = probed.contains(id);
            if !keep {
                prober.abort();
            }
            keep
        });
        memory.health.retain(|id, _| probed.contains(id));
    }

    /// Forgets a container's probe and verdict: it stopped or started again, so its next run is
    /// judged afresh.
    fn forget_health(&self, container_id: &str) {
        let mut memory = lock(&self.memory);
        if let Some(prober) = memory.probers.remove(container_id) {
            prober.abort();
        }
        memory.health.remove(container_id);
    }

    /// One reconcile pass; returns when to look again at the latest.
    async fn pass(&self, assignments: &[Assignment]) -> Instant {
        let resync_at = later(Instant::now(), self.config.resync_interval);
        let observed =
            match observe(&*self.runtime, &self.config.cluster, &self.inspect_cache).await {
                Ok(observed) => observed,
                Err(error) => {
                    tracing::warn!(%error, "cannot read containers; retrying shortly");
                    return Instant::now() + Duration::from_secs(1);
                }
            };
        let mut observed = self.apply_announced_deaths(observed);
        self.track_health(assignments, &mut observed);
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
        }

        let now = Instant::now();
        let mut work = Vec::new();
        for assignment in assignments {
            let containers = by_task.remove(&assignment.key).unwrap_or_default();
            let backoff = lock(&self.memory)
                .backoffs
                .get(&assignment.key)
                .cloned()
                .unwrap_or_default();
            let actions = plan_task(assignment, &containers, &backoff, now);
            work.push(self.carry_out(
                Some(assignment),
                assignment.key.clone(),
                containers,
                actions,
            ));
        }
        for (key, containers) in by_task {
            let actions = plan_unwanted(&containers);
            work.push(self.carry_out(None, key, containers, actions));
        }
        let wakes = join_all(work).await;

        match observe(&*self.runtime, &self.config.cluster, &self.inspect_cache).await {
            Ok(containers) => {
                // Also starts the probes of containers this pass created, without waiting for
                // the next pass.
                let mut containers = self.apply_announced_deaths(containers);
                self.track_health(assignments, &mut containers);
                self.report(AgentReport::Snapshot {
                    host: self.config.host.clone(),
                    containers,
                });
            }
            Err(error) => tracing::warn!(%error, "cannot read containers after a pass"),
        }
        wakes.into_iter().flatten().fold(resync_at, Instant::min)
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

    /// Carries out one task's actions in order; returns when the task wants another look.
    async fn carry_out(
        &self,
        assignment: Option<&Assignment>,
        key: TaskKey,
        containers: Vec<ObservedContainer>,
        actions: Vec<Action>,
    ) -> Option<Instant> {
        let hash = assignment
            .map(|a| a.config_hash.clone())
            .unwrap_or_default();
        let mut wake = None;
        let mut all_done = true;
        for action in actions {
            let result = match &action {
                Action::Keep { container_id } => {
                    self.phase(
                        &key,
                        &hash,
                        Phase::Running {
                            container_id: container_id.clone(),
                        },
                    );
                    Ok(())
                }
                Action::Create => match assignment {
                    Some(assignment) => self.create_and_start(assignment).await,
                    None => Ok(()),
                },
                Action::Restart { container_id } => self.start(&key, &hash, container_id).await,
                Action::WaitBackoff { until } => {
                    let millis = until.saturating_duration_since(Instant::now()).as_millis() as u64;
                    let reason = "restarting after the container stopped".to_owned();
                    self.phase(&key, &hash, Phase::BackingOff { millis, reason });
                    wake = Some(*until);
                    Ok(())
                }
                Action::KeepDead {
                    container_id,
                    exit_code,
                } => {
                    let reason = match exit_code {
                        Some(code) => format!(
                            "exited with code {code}; kept for inspection (on_failure: keep)"
                        ),
                        None => "stopped; kept for inspection (on_failure: keep)".to_owned(),
                    };
                    self.phase(
                        &key,
                        &hash,
                        Phase::Kept {
                            container_id: container_id.clone(),
                            reason,
                        },
                    );
                    Ok(())
                }
                Action::RestartUnhealthy { container_id } => {
                    match self.stop_ours(container_id).await {
                        Ok(()) => self.start(&key, &hash, container_id).await,
                        Err(error) => Err(error),
                    }
                }
                Action::KeepUnhealthy {
                    container_id,
                    detail,
                } => {
                    let reason =
                        format!("unhealthy ({detail}); kept for inspection (on_failure: keep)");
                    self.phase(
                        &key,
                        &hash,
                        Phase::Kept {
                            container_id: container_id.clone(),
                            reason,
                        },
                    );
                    Ok(())
                }
                Action::Stop { container_id } => self.stop_ours(container_id).await,
                Action::Remove { container_id } => {
                    lock(&self.memory)
                        .expected_stops
                        .insert(container_id.clone());
                    let live = containers
                        .iter()
                        .any(|c| &c.id == container_id && c.is_live());
                    if live {
                        self.phase(
                            &key,
                            &hash,
                            Phase::Stopping {
                                container_id: container_id.clone(),
                            },
                        );
                        if let Err(error) = self.stop_ours(container_id).await {
                            tracing::warn!(%error, container_id, "stop failed; removing by force");
                        }
                    }
                    self.runtime.remove(container_id).await
                }
            };
            if let Err(error) = result {
                tracing::warn!(task = %key, %error, ?action, "action failed");
                wake = Some(match assignment {
                    Some(assignment) => self.failed(assignment, error.to_string()),
                    // Try the removal again soon rather than at the next resync.
                    None => Instant::now() + Duration::from_secs(1),
                });
                all_done = false;
                break;
            }
        }
        if assignment.is_none() && all_done {
            self.phase(&key, "", Phase::Removed);
            lock(&self.memory).last_phase.remove(&key);
        }
        wake
    }

    /// Stops a container on purpose: its death is then recorded as a stop, not a failure.
    async fn stop_ours(&self, container_id: &str) -> Result<(), RuntimeError> {
        lock(&self.memory)
            .expected_stops
            .insert(container_id.to_owned());
        self.runtime
            .stop(container_id, self.config.stop_grace_seconds)
            .await
    }

    async fn create_and_start(&self, assignment: &Assignment) -> Result<(), RuntimeError> {
        let key = &assignment.key;
        let hash = &assignment.config_hash;
        let Some(image) = assignment.spec.image.clone() else {
            return Err(RuntimeError::InvalidConfig(format!(
                "task {key} has no image"
            )));
        };
        if !self.runtime.image_present(&image).await? {
            self.phase(
                key,
                hash,
                Phase::Pulling {
                    image: image.clone(),
                },
            );
            self.runtime
                .pull(&image, |line| tracing::debug!(task = %key, line, "pull"))
                .await?;
        }
        self.phase(key, hash, Phase::Creating);
        let labels = BTreeMap::from([
            (labels::CLUSTER.to_owned(), self.config.cluster.clone()),
            (labels::ENV.to_owned(), key.env.clone()),
            (labels::SERVICE.to_owned(), key.service.clone()),
            (labels::JOB.to_owned(), key.job.clone()),
            (labels::TASK.to_owned(), key.task.clone()),
            (labels::VERSION.to_owned(), assignment.version.to_string()),
            (labels::CONFIG_HASH.to_owned(), hash.clone()),
            (labels::HOST.to_owned(), assignment.declared_host.clone()),
        ]);
        let unix_now = OffsetDateTime::now_utc().unix_timestamp();
        let mut attempt = 0;
        let (container_id, name) = loop {
            let name = container_name(key, unix_now, attempt);
            let request = CreateRequest {
                name: name.clone(),
                image: image.clone(),
                task: assignment.spec.clone(),
                labels: labels.clone(),
            };
            match self.runtime.create(&request).await {
                Ok(id) => break (id, name),
                Err(RuntimeError::NameConflict(_)) if attempt < 20 => attempt += 1,
                Err(error) => return Err(error),
            }
        };
        self.report(AgentReport::Container {
            host: self.config.host.clone(),
            event: ContainerEvent {
                kind: ContainerEventKind::Created,
                key: key.clone(),
                container_id: container_id.clone(),
                container_name: name,
                image,
                version: assignment.version,
                host: self.config.host.clone(),
                at: now_rfc3339(),
                exit_code: None,
                detail: None,
            },
        });
        self.start(key, hash, &container_id).await
    }

    async fn start(
        &self,
        key: &TaskKey,
        hash: &str,
        container_id: &str,
    ) -> Result<(), RuntimeError> {
        self.phase(key, hash, Phase::Starting);
        self.runtime.start(container_id).await?;
        // Its earlier death is now history: do not let it mask the running container.
        lock(&self.memory).announced_deaths.remove(container_id);
        lock(&self.memory)
            .backoffs
            .entry(key.clone())
            .or_default()
            .record_start(Instant::now());
        self.phase(
            key,
            hash,
            Phase::Running {
                container_id: container_id.to_owned(),
            },
        );
        Ok(())
    }

    /// Records a failed attempt: the task backs off before the next one.
    fn failed(&self, assignment: &Assignment, reason: String) -> Instant {
        let now = Instant::now();
        let pause = {
            let mut memory = lock(&self.memory);
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

    /// Handles one engine event; returns whether a reconcile pass is needed.
    fn handle_event(&self, event: RuntimeEvent) -> bool {
        lock(&self.inspect_cache).forget(&event.container_id);
        let Some(key) = TaskKey::from_labels(&event.labels) else {
            return false;
        };
        // A stopped container's next run is judged afresh. (Not on "start": that event can
        // arrive after the new run's probe has already judged it.)
        if matches!(event.action.as_str(), "die" | "destroy") {
            self.forget_health(&event.container_id);
        }
        let kind = match event.action.as_str() {
            "start" => {
                lock(&self.memory)
                    .announced_deaths
                    .remove(&event.container_id);
                ContainerEventKind::Started
            }
            "die" => {
                let mut memory = lock(&self.memory);
                memory
                    .announced_deaths
                    .insert(event.container_id.clone(), event.exit_code);
                if memory.expected_stops.remove(&event.container_id) {
                    ContainerEventKind::Stopped
                } else {
                    let is_current = memory.assigned_hashes.get(&key).map(String::as_str)
                        == event.labels.get(labels::CONFIG_HASH).map(String::as_str);
                    if is_current {
                        memory
                            .backoffs
                            .entry(key.clone())
                            .or_default()
                            .record_failure(Instant::now());
                    }
                    ContainerEventKind::Died
                }
            }
            "destroy" => {
                let mut memory = lock(&self.memory);
                memory.expected_stops.remove(&event.container_id);
                memory.announced_deaths.remove(&event.container_id);
                ContainerEventKind::Removed
            }
            _ => return false,
        };
        self.report(AgentReport::Container {
            host: self.config.host.clone(),
            event: ContainerEvent {
                kind,
                key,
                container_id: event.container_id.clone(),
                container_name: event.labels.get("name").cloned().unwrap_or_default(),
                image: event.labels.get("image").cloned().unwrap_or_default(),
                version: event
                    .labels
                    .get(labels::VERSION)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                host: self.config.host.clone(),
                at: nanos_rfc3339(event.time_nanos),
                exit_code: event.exit_code,
                detail: None,
            },
        });
        true
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

/// Forwards the engine's container events, resubscribing if the stream breaks. A synthetic
/// event with an empty action after a break makes the loop re-read everything it may have missed.
async fn follow_events<R: ContainerRuntime>(
    runtime: Arc<R>,
    cluster: String,
    sender: mpsc::UnboundedSender<RuntimeEvent>,
) {
    loop {
        let mut stream = runtime.events(&[(labels::CLUSTER, &cluster)]);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if sender.send(event).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "docker event stream broke; resubscribing");
                    break;
                }
            }
        }
        if sender.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
