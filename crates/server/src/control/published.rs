//! What the assignment controller last published, and how to wait for it: every host's
//! assignments ([`Published`]), where each unpinned task was placed or why it could not be
//! ([`Scheduler::placed`]), and up to which store revision the desired state has been
//! published ([`Scheduler::wait_published`]), so a request that wrote can answer once what it
//! wrote is in force.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_api::agent::{Assignment, TaskKey};
use tokio::sync::watch;

use crate::base::lock;
use crate::error::Failure;

/// Every host's assignments as last published (`None` until the desired state is loaded).
pub type Assignments = Option<Arc<Published>>;

/// One publication. Built from persistent maps, so the next one shares all it does not change:
/// a change to one service costs that service's tasks, not the cluster's.
#[derive(Clone)]
pub struct Published {
    /// When they were published (Unix time in microseconds), so an agent can tell how long
    /// they took to reach it.
    pub at_unix_micros: i64,
    /// Each task's assignment: where it runs from now on.
    by_task: imbl::HashMap<TaskKey, Arc<Assignment>>,
    /// What each declared host runs, hand-over copies included.
    by_host: imbl::HashMap<String, imbl::OrdMap<TaskKey, Arc<Assignment>>>,
    /// Tasks handing over from a host that still runs them (a drain), with that host: it is
    /// also assigned the task until the new copy serves (`handover`).
    handovers: imbl::OrdMap<TaskKey, String>,
}

impl Default for Published {
    fn default() -> Self {
        Published {
            at_unix_micros: 0,
            by_task: imbl::HashMap::new(),
            by_host: imbl::HashMap::new(),
            handovers: imbl::OrdMap::new(),
        }
    }
}

impl Published {
    /// `all` lists each task's assignment before any hand-over copy of it.
    pub fn new(all: Vec<Assignment>, handovers: BTreeMap<TaskKey, String>) -> Self {
        let mut published = Published::default();
        for assignment in all {
            let leaving = published.by_task.contains_key(&assignment.key);
            published.insert(Arc::new(assignment), leaving);
        }
        published.handovers = handovers.into_iter().collect();
        published.stamp();
        published
    }

    /// Records the time of publication.
    pub(crate) fn stamp(&mut self) {
        self.at_unix_micros =
            (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64;
    }

    /// Adds an assignment: the task's own, or (`hand_over_copy`) the copy on the host it leaves.
    pub(crate) fn insert(&mut self, assignment: Arc<Assignment>, hand_over_copy: bool) {
        if !hand_over_copy {
            self.by_task
                .insert(assignment.key.clone(), assignment.clone());
        }
        self.by_host
            .entry(assignment.declared_host.clone())
            .or_default()
            .insert(assignment.key.clone(), assignment);
    }

    /// Takes a task away from `host` (and, if it is the task's own host, from the task).
    pub(crate) fn remove(&mut self, key: &TaskKey, host: &str) {
        if self
            .by_task
            .get(key)
            .is_some_and(|assignment| assignment.declared_host == host)
        {
            self.by_task.remove(key);
        }
        if let Some(on_host) = self.by_host.get_mut(host) {
            on_host.remove(key);
            if on_host.is_empty() {
                self.by_host.remove(host);
            }
        }
    }

    pub(crate) fn set_handover(&mut self, key: &TaskKey, from: Option<&String>) {
        match from {
            Some(from) => {
                self.handovers.insert(key.clone(), from.clone());
            }
            None => {
                self.handovers.remove(key);
            }
        }
    }

    /// Where `key` runs from now on, if it is assigned.
    pub fn assignment_of(&self, key: &TaskKey) -> Option<&Assignment> {
        self.by_task.get(key).map(|assignment| &**assignment)
    }

    /// The declared hosts `key` is assigned to: its host and, while it hands over, the host it
    /// leaves.
    pub fn hosts_of(&self, key: &TaskKey) -> Vec<&str> {
        let host = self.assignment_of(key).map(|a| a.declared_host.as_str());
        let leaving = self.handovers.get(key).map(String::as_str);
        host.into_iter().chain(leaving).collect()
    }

    /// The tasks handing over, with the host each leaves.
    pub fn handovers(&self) -> impl Iterator<Item = (&TaskKey, &String)> {
        self.handovers.iter()
    }

    /// What `host` is assigned, in task order.
    pub fn on_host(&self, host: &str) -> impl Iterator<Item = &Assignment> {
        self.by_host
            .get(host)
            .into_iter()
            .flat_map(|tasks| tasks.values().map(|assignment| &**assignment))
    }

    /// Every declared host that is assigned something.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.by_host.keys()
    }

    /// Every assignment, hand-over copies included.
    pub fn all(&self) -> impl Iterator<Item = &Assignment> {
        self.by_host
            .values()
            .flat_map(|tasks| tasks.values().map(|assignment| &**assignment))
    }

    /// How many tasks are assigned.
    pub fn len(&self) -> usize {
        self.by_task.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }
}

/// Where each unpinned task is, or why it is nowhere, as last published.
#[derive(Debug, Default)]
pub(crate) struct PlacementState {
    pub placed: BTreeMap<TaskKey, String>,
    pub unplaced: BTreeMap<TaskKey, String>,
}

/// Where a task stands after a publish.
pub enum Placed {
    On(String),
    /// It fits nowhere, for this reason.
    Nowhere(String),
}

/// How long a request waits for the controller to publish what it wrote before it answers
/// that it could not.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(30);

/// The published side of the desired state: every host's assignments and where each task was
/// placed. Only the assignment controller (`control::publisher`) changes them.
pub struct Scheduler {
    /// The agents' links and pre-warm tasks watch it.
    pub(crate) assignments: watch::Sender<Assignments>,
    /// Where each unpinned task was placed, or why it could not be, as last published.
    pub(crate) placements: Mutex<PlacementState>,
    /// How long a host may be down before its unpinned tasks are placed elsewhere.
    host_down_after: Duration,
    /// The store revision the published assignments reflect.
    pub(crate) published_revision: watch::Sender<u64>,
    /// Requests for a publish of everything (numbered), and the last one served.
    pub(crate) full_requested: watch::Sender<u64>,
    pub(crate) full_served: watch::Sender<u64>,
    /// Why the last publish failed, if it did.
    pub(crate) last_error: Mutex<Option<String>>,
    /// How long the last publish took the controller.
    pub(crate) last_took: Mutex<Duration>,
}

impl Scheduler {
    pub fn new(host_down_after: Duration) -> Self {
        Scheduler {
            assignments: watch::channel(None).0,
            placements: Mutex::default(),
            host_down_after,
            published_revision: watch::channel(0).0,
            full_requested: watch::channel(0).0,
            full_served: watch::channel(0).0,
            last_error: Mutex::default(),
            last_took: Mutex::default(),
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

    /// Completes once the published assignments reflect every store write up to `revision`.
    pub async fn wait_published(&self, revision: u64) -> Result<(), Failure> {
        let mut published = self.published_revision.subscribe();
        let reached = tokio::time::timeout(
            PUBLISH_DEADLINE,
            published.wait_for(|done| *done >= revision),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.not_published()),
        }
    }

    /// The assignments now reflect every store write up to `revision`, and the last publish
    /// succeeded.
    pub(crate) fn published_through(&self, revision: u64) {
        *lock(&self.last_error) = None;
        self.published_revision.send_if_modified(|published| {
            let moved = revision > *published;
            *published = (*published).max(revision);
            moved
        });
    }

    /// Asks for everything to be placed and published again (what changes outside the store,
    /// such as which agents are linked, is read anew), and completes once it has been.
    pub async fn republish(&self) -> Result<(), Failure> {
        let mut request = 0;
        self.full_requested.send_modify(|n| {
            *n += 1;
            request = *n;
        });
        let mut served = self.full_served.subscribe();
        let reached =
            tokio::time::timeout(PUBLISH_DEADLINE, served.wait_for(|done| *done >= request)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.not_published()),
        }
    }

    fn not_published(&self) -> Failure {
        let why = lock(&self.last_error)
            .clone()
            .unwrap_or_else(|| "the assignment controller is not running".into());
        Failure::Unavailable(format!(
            "the change is stored, but assignments were not published within {} s: {why}",
            PUBLISH_DEADLINE.as_secs()
        ))
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

    /// The services with a task placed on one of `hosts`.
    pub fn services_placed_on(
        &self,
        hosts: &std::collections::BTreeSet<String>,
    ) -> Vec<(String, String)> {
        let placements = lock(&self.placements);
        let mut services: Vec<(String, String)> = placements
            .placed
            .iter()
            .filter(|(_, placed)| hosts.contains(*placed))
            .map(|(task, _)| (task.env.clone(), task.service.clone()))
            .collect();
        services.dedup();
        services
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

    /// How long the controller took for its last publish.
    pub fn last_publish_took(&self) -> Duration {
        *lock(&self.last_took)
    }

    pub fn host_down_after(&self) -> Duration {
        self.host_down_after
    }
}
