//! From desired state to what each agent runs: every desired task gets a host (the one its
//! config pins it to, or the one `placement` chose, stored so a restart moves nothing), and
//! the result is published for the agents' links. Republished whenever the desired state
//! changes, an agent comes or goes, a host has been down for `--host-down-after`, or a drain
//! starts or ends ([`run_placement_loop`]). [`Scheduler`] holds what was last published.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_api::HistoryEvent;
use cj_api::agent::{Assignment, TaskKey};
use cj_store::StoreJson;

use crate::error::ApiFailure;
use crate::keys;
use crate::placement::{self, Demand, StoredPlacement};
use crate::state::{DesiredTask, ServerState, lock, now_rfc3339};
use tokio::sync::watch;

/// Every host's assignments as last published (`None` until the desired state is loaded).
pub type Assignments = Option<Arc<Published>>;

pub struct Published {
    /// When they were published (Unix time in microseconds), so an agent can tell how long
    /// they took to reach it.
    pub at_unix_micros: i64,
    pub all: Vec<Assignment>,
    /// Each task's assignment in `all`: where it runs from now on.
    by_task: HashMap<TaskKey, usize>,
    /// Tasks handing over from a host that still runs them (a drain), with that host: `all` also
    /// assigns them there until the new copy serves (`handover`).
    handovers: BTreeMap<TaskKey, String>,
}

impl Published {
    /// `all` lists each task's assignment before any hand-over copy of it.
    pub fn new(all: Vec<Assignment>, handovers: BTreeMap<TaskKey, String>) -> Self {
        let mut by_task = HashMap::new();
        for (index, assignment) in all.iter().enumerate() {
            by_task.entry(assignment.key.clone()).or_insert(index);
        }
        Published {
            at_unix_micros: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64,
            all,
            by_task,
            handovers,
        }
    }

    /// Where `key` runs from now on, if it is assigned.
    pub fn assignment_of(&self, key: &TaskKey) -> Option<&Assignment> {
        Some(&self.all[*self.by_task.get(key)?])
    }

    /// The declared hosts `key` is assigned to: its host and, while it hands over, the host it
    /// leaves.
    pub fn hosts_of(&self, key: &TaskKey) -> Vec<&str> {
        let host = self.assignment_of(key).map(|a| a.declared_host.as_str());
        let leaving = self.handovers.get(key).map(String::as_str);
        host.into_iter().chain(leaving).collect()
    }

    /// The tasks handing over, with the host each leaves.
    pub fn handovers(&self) -> &BTreeMap<TaskKey, String> {
        &self.handovers
    }
}

/// Where each unpinned task is, or why it is nowhere, as last published.
#[derive(Debug, Default)]
struct PlacementState {
    placed: BTreeMap<TaskKey, String>,
    unplaced: BTreeMap<TaskKey, String>,
}

/// Where a task stands after a publish.
pub enum Placed {
    On(String),
    /// It fits nowhere, for this reason.
    Nowhere(String),
}

/// The published side of the desired state: every host's assignments and where each task was
/// placed. Only [`ServerState::publish_assignments`] changes them, one publish at a time.
pub struct Scheduler {
    /// The agents' links and pre-warm tasks watch it.
    assignments: watch::Sender<Assignments>,
    /// Serialises recomputing and publishing assignments.
    publish_lock: tokio::sync::Mutex<()>,
    /// Where each unpinned task was placed, or why it could not be, as last published.
    placements: Mutex<PlacementState>,
    /// How long a host may be down before its unpinned tasks are placed elsewhere.
    host_down_after: Duration,
}

impl Scheduler {
    pub fn new(host_down_after: Duration) -> Self {
        let (assignments, _) = watch::channel(None);
        Scheduler {
            assignments,
            publish_lock: tokio::sync::Mutex::new(()),
            placements: Mutex::default(),
            host_down_after,
        }
    }

    /// The assignments as last published.
    pub fn current(&self) -> Assignments {
        self.assignments.borrow().clone()
    }

    /// Changes on every publish.
    pub fn subscribe(&self) -> watch::Receiver<Assignments> {
        self.assignments.subscribe()
    }

    /// The host a task runs on: its pinned host, or where it was placed.
    pub fn host_of(&self, key: &TaskKey, spec: &cj_spec::TaskSpec) -> Option<String> {
        spec.run_on_host
            .clone()
            .or_else(|| lock(&self.placements).placed.get(key).cloned())
    }

    /// Why a task has no host, if it has none.
    pub fn unplaced_reason(&self, key: &TaskKey) -> Option<String> {
        lock(&self.placements).unplaced.get(key).cloned()
    }

    /// The unpinned tasks placed on `host` now.
    pub fn placed_on(&self, host: &str) -> Vec<TaskKey> {
        lock(&self.placements)
            .placed
            .iter()
            .filter(|(_, placed)| *placed == host)
            .map(|(task, _)| task.clone())
            .collect()
    }

    /// Where each of `tasks` stands now, as one reading (tasks no longer desired are left out).
    pub fn placed<'a>(
        &self,
        tasks: impl IntoIterator<Item = &'a TaskKey>,
    ) -> Vec<(&'a TaskKey, Placed)> {
        let placements = lock(&self.placements);
        tasks
            .into_iter()
            .filter_map(
                |task| match (placements.placed.get(task), placements.unplaced.get(task)) {
                    (Some(to), _) => Some((task, Placed::On(to.clone()))),
                    (None, Some(reason)) => Some((task, Placed::Nowhere(reason.clone()))),
                    (None, None) => None,
                },
            )
            .collect()
    }

    pub fn host_down_after(&self) -> Duration {
        self.host_down_after
    }
}

impl ServerState {
    /// Recomputes every host's assignments from the desired state and hands them to the agents.
    pub async fn publish_assignments(&self) -> Result<(), ApiFailure> {
        let _publishing = self.scheduler.publish_lock.lock().await;
        let _timer = crate::recorder::PublishTimer::start();
        let mut tasks: Vec<DesiredTask> = Vec::new();
        for desired in self.desired_jobs(keys::DESIRED_ALL)? {
            tasks.extend(self.raw_desired_tasks(&desired)?);
        }
        let stored = self.stored_placements()?;
        let connected = self.links.hosts();
        let views = self.hosts.views(&connected, self.scheduler.host_down_after);
        let demands: Vec<Demand> = tasks
            .iter()
            .map(|task| Demand {
                key: &task.key,
                spec: &task.spec,
            })
            .collect();
        let decisions = placement::place(&demands, &views, &stored, &now_rfc3339());
        self.store_placements(&tasks, &stored, &decisions.changed)?;
        let mut unplaced = decisions.unplaced;
        let handovers = decisions.handovers;
        // Placed first, rendered second: `{{ addr("job") }}` renders where jobs were just placed.
        *lock(&self.scheduler.placements) = PlacementState {
            placed: decisions.placed,
            unplaced: unplaced.clone(),
        };

        // Tasks that fit nowhere wait, with their reason, until a host can take it.
        let (mut placed, hosts): (Vec<DesiredTask>, Vec<String>) = tasks
            .into_iter()
            .filter_map(|task| {
                let host = self.scheduler.host_of(&task.key, &task.spec)?;
                Some((task, host))
            })
            .unzip();
        self.render_tasks(&mut placed)?;
        let mut assignments = Vec::new();
        for (mut task, host) in placed.into_iter().zip(hosts) {
            if let Some(reason) = task.render_error.take() {
                // Not run as written: the reason shows in `status`, and `up` fails on it.
                tracing::warn!(task = %task.key, reason, "cannot render the task's config");
                unplaced.insert(task.key.clone(), format!("config: {reason}"));
                continue;
            }
            let mut assignment =
                Assignment::new(task.key, task.version, task.spec, host, task.on_failure)
                    .with_restart_generation(task.restart_generation);
            // A replacement that needs the same port must wait for the old container to stop;
            // one without a port can start first.
            assignment.start_first = assignment.spec.port == 0;
            assignment.drain_ms = task.drain_ms;
            assignment.stop_when_cut = task.on_host_lost == cj_spec::OnHostLost::Stop
                && assignment.spec.run_on_host.is_none();
            assignments.push(assignment);
        }
        // A task handing over keeps running where it was until its new copy serves.
        let leaving: Vec<Assignment> = assignments
            .iter()
            .filter_map(|assignment| {
                let from = handovers.get(&assignment.key)?;
                let mut there = assignment.clone();
                there.declared_host = from.clone();
                Some(there)
            })
            .collect();
        assignments.extend(leaving);
        lock(&self.scheduler.placements).unplaced = unplaced;
        self.scheduler
            .assignments
            .send_replace(Some(Arc::new(Published::new(assignments, handovers))));
        Ok(())
    }

    fn stored_placements(&self) -> Result<HashMap<TaskKey, StoredPlacement>, ApiFailure> {
        let mut stored = HashMap::new();
        for entry in self.store.range(keys::PLACEMENTS)? {
            let path = entry.key.trim_start_matches(keys::PLACEMENTS);
            let parts: Vec<&str> = path.split('/').collect();
            let [env, service, job, task] = parts[..] else {
                tracing::warn!(key = entry.key, "ignoring a malformed placement key");
                continue;
            };
            let key = TaskKey {
                env: env.into(),
                service: service.into(),
                job: job.into(),
                task: task.into(),
            };
            stored.insert(key, entry.json()?);
        }
        Ok(stored)
    }

    /// Stores new and moved placements and forgets those of tasks no longer desired; a move is
    /// also an event in the job's history.
    fn store_placements(
        &self,
        tasks: &[DesiredTask],
        stored: &HashMap<TaskKey, StoredPlacement>,
        changed: &[(TaskKey, StoredPlacement)],
    ) -> Result<(), ApiFailure> {
        let desired: BTreeSet<&TaskKey> = tasks.iter().map(|task| &task.key).collect();
        for key in stored.keys().filter(|key| !desired.contains(key)) {
            self.store.delete(&keys::placement(key))?;
        }
        for (key, placement) in changed {
            self.store.put_json(&keys::placement(key), placement)?;
            let Some(old) = stored.get(key) else {
                tracing::info!(task = %key, host = placement.host, "placed");
                continue;
            };
            tracing::warn!(task = %key, from = old.host, to = placement.host, reason = placement.reason, "moved");
            let version = tasks
                .iter()
                .find(|task| task.key == *key)
                .map(|task| task.version)
                .unwrap_or_default();
            let event = HistoryEvent {
                at: placement.since.clone(),
                kind: "moved".into(),
                task: key.task.clone(),
                container_id: String::new(),
                version,
                host: placement.host.clone(),
                exit_code: None,
                detail: Some(placement.reason.clone()),
            };
            self.append_history(key, &event)?;
        }
        Ok(())
    }
}

/// Republishes when an agent comes or goes, a drain starts or ends, and when a disconnected
/// host reaches `--host-down-after` (then its unpinned tasks are placed elsewhere).
pub async fn run_placement_loop(state: Arc<ServerState>) {
    let mut joined = state.links.subscribe_joined();
    loop {
        let connected = state.links.hosts();
        let next_loss = state
            .hosts
            .next_loss(&connected, state.scheduler.host_down_after());
        let lost = async {
            match next_loss {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = joined.changed() => if changed.is_err() { return },
            () = lost => {}
        }
        if let Err(error) = state.publish_assignments().await {
            tracing::error!(%error, "failed to place tasks");
        }
    }
}
