//! The observed state: what the agents last reported. Each host's containers, each task's last
//! phase, the stream of progress for operations that show it, and a generation bumped after
//! every report so waiters re-check their condition. It lives only in memory: after a restart
//! the agents' next reports rebuild it. `reports` is the writer; everyone else reads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use cj_api::agent::ContainerState;
use cj_api::agent::{Health, ObservedContainer, Phase, TaskKey};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::base::lock;

/// A task's progress as an agent reported it.
#[derive(Debug, Clone)]
pub struct TaskProgress {
    /// The report generation it arrived in, so an operation ignores what came before it.
    pub generation: u64,
    pub key: TaskKey,
    pub config_hash: String,
    pub kind: ProgressKind,
}

#[derive(Debug, Clone)]
pub enum ProgressKind {
    Phase(Phase),
    /// A check's verdict on the task's container, with what the probe saw.
    Health(Health, String),
}

pub struct Observed {
    /// Each host's containers, as its agent last reported them.
    containers: RwLock<Containers>,
    /// Each task's last reported phase (not health), with the config hash it was about.
    last_progress: Mutex<HashMap<TaskKey, TaskProgress>>,
    /// Every phase and health report, for operations that show progress.
    progress: broadcast::Sender<TaskProgress>,
    /// Bumped after every agent report, so waiters re-check their condition.
    changed: watch::Sender<u64>,
    /// When this server first saw each container running (by container id), on its own clock:
    /// how long a container has run, whatever the host's clock says.
    running_since: Mutex<HashMap<String, Instant>>,
    /// Each task's last death that its agent did not cause, for operations waiting on it.
    deaths: Mutex<HashMap<TaskKey, Death>>,
}

/// Each host's containers, and where each task has some: a task's containers are found among
/// its hosts' few, not by a scan of every container of the cluster (a status or an operation
/// looks up every task it shows or waits on).
#[derive(Default)]
struct Containers {
    by_host: HashMap<String, Vec<ObservedContainer>>,
    hosts_of: HashMap<TaskKey, Vec<String>>,
}

impl Containers {
    fn replace(&mut self, host: String, containers: Vec<ObservedContainer>) {
        if let Some(old) = self.by_host.get(&host) {
            for key in old.iter().map(|c| &c.key).collect::<HashSet<_>>() {
                if let Some(hosts) = self.hosts_of.get_mut(key) {
                    hosts.retain(|h| *h != host);
                    if hosts.is_empty() {
                        self.hosts_of.remove(key);
                    }
                }
            }
        }
        for key in containers.iter().map(|c| &c.key).collect::<HashSet<_>>() {
            let hosts = self.hosts_of.entry(key.clone()).or_default();
            if !hosts.contains(&host) {
                hosts.push(host.clone());
            }
        }
        self.by_host.insert(host, containers);
    }
}

/// A container of a task died on its own (its agent reported `died`, not a stop it made).
#[derive(Debug, Clone)]
pub struct Death {
    /// The report generation it arrived in.
    pub generation: u64,
    pub host: String,
    pub container_id: String,
    pub config_hash: String,
    pub exit_code: Option<i64>,
}

impl Default for Observed {
    fn default() -> Self {
        let (progress, _) = broadcast::channel(4096);
        let (changed, _) = watch::channel(0);
        Observed {
            containers: RwLock::default(),
            last_progress: Mutex::default(),
            progress,
            changed,
            running_since: Mutex::default(),
            deaths: Mutex::default(),
        }
    }
}

impl Observed {
    /// Every observed container of a task, on any host, with the host it is on.
    pub fn containers_of(&self, key: &TaskKey) -> Vec<(String, ObservedContainer)> {
        let all = self.read();
        let Some(hosts) = all.hosts_of.get(key) else {
            return Vec::new();
        };
        let mut found: Vec<(String, ObservedContainer)> = hosts
            .iter()
            .filter_map(|host| Some((host, all.by_host.get(host)?)))
            .flat_map(|(host, containers)| {
                containers
                    .iter()
                    .filter(|c| &c.key == key)
                    .map(move |c| (host.clone(), c.clone()))
            })
            .collect();
        // In host order, whatever order the hosts reported in.
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// The containers `host` last reported.
    pub fn containers_on(&self, host: &str) -> Vec<ObservedContainer> {
        self.read().by_host.get(host).cloned().unwrap_or_default()
    }

    /// The hosts that have reported containers (possibly none).
    pub fn hosts(&self) -> Vec<String> {
        self.read().by_host.keys().cloned().collect()
    }

    /// Each host that has reported, with how many of its containers are live.
    pub fn live_per_host(&self) -> HashMap<String, usize> {
        self.read()
            .by_host
            .iter()
            .map(|(host, containers)| {
                let live = containers.iter().filter(|c| c.is_live()).count();
                (host.clone(), live)
            })
            .collect()
    }

    /// Every task that has a container on some host.
    pub fn task_keys(&self) -> BTreeSet<TaskKey> {
        self.read().hosts_of.keys().cloned().collect()
    }

    /// A host's snapshot replaces whatever it reported before.
    pub fn replace(&self, host: String, containers: Vec<ObservedContainer>) {
        let mut all = self
            .containers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut since = lock(&self.running_since);
        let now = Instant::now();
        let running: HashSet<&str> = containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.id.as_str())
            .collect();
        // This host's containers no longer running lose their time; the others keep it.
        for old in all.by_host.get(&host).into_iter().flatten() {
            if !running.contains(old.id.as_str()) {
                since.remove(&old.id);
            }
        }
        for id in running {
            since.entry(id.to_owned()).or_insert(now);
        }
        drop(since);
        all.replace(host, containers);
    }

    /// When this server first saw the container running, if it runs.
    pub fn running_since(&self, container_id: &str) -> Option<Instant> {
        lock(&self.running_since).get(container_id).copied()
    }

    /// A container died on its own (reported by its agent as `died`).
    pub fn record_death(&self, key: TaskKey, death: Death) {
        lock(&self.deaths).insert(key, death);
    }

    /// The task's last death reported after report generation `after`.
    pub fn death_since(&self, key: &TaskKey, after: u64) -> Option<Death> {
        lock(&self.deaths)
            .get(key)
            .filter(|death| death.generation > after)
            .cloned()
    }

    /// A task's last reported phase.
    pub fn progress_of(&self, key: &TaskKey) -> Option<TaskProgress> {
        lock(&self.last_progress).get(key).cloned()
    }

    /// Sends a phase or health report to whoever follows progress, stamped with the generation
    /// of the report it arrived in; a phase is also kept as the task's last.
    pub fn record_progress(&self, key: TaskKey, config_hash: String, kind: ProgressKind) {
        let progress = TaskProgress {
            generation: self.generation() + 1,
            key,
            config_hash,
            kind,
        };
        if let ProgressKind::Phase(_) = progress.kind {
            lock(&self.last_progress).insert(progress.key.clone(), progress.clone());
        }
        let _ = self.progress.send(progress);
    }

    /// Every progress report from now on. Subscribe before acting, so none is missed.
    pub fn subscribe_progress(&self) -> broadcast::Receiver<TaskProgress> {
        self.progress.subscribe()
    }

    /// How many agent reports have been taken in.
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
    }

    /// Changes after every agent report.
    pub fn subscribe_changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Ends taking in a report: waiters look again.
    pub fn bump(&self) {
        self.changed.send_modify(|generation| *generation += 1);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Containers> {
        self.containers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
