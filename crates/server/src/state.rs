//! What the server holds: the store (desired state, versions, history), what agents last
//! reported (observed state, kept in memory and rebuilt from their next reports after a restart),
//! and the channels that carry assignments out and progress to waiting operations.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use cj_agent::{Assignment, Health, ObservedContainer, Phase, TaskKey, effective_hash};
use cj_spec::{OnFailure, TaskSpec};
use cj_store::{Store, StoreJson};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::error::ApiFailure;
use crate::keys;
use crate::version_cache::VersionCache;
use crate::versions::VersionRecord;

/// `desired/ENV/SERVICE/JOB`: the job should run at `version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesiredJob {
    pub env: String,
    pub service: String,
    pub job: String,
    pub version: u64,
    pub since: String,
    pub by: String,
    /// During a rollout, the version of each task (the set of tasks is these keys); empty
    /// otherwise, when every task of `version` runs at `version`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_versions: BTreeMap<String, u64>,
    /// Bumped by `reload` for a task, to replace its container with an identical one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restart_generations: BTreeMap<String, u64>,
}

/// One task the desired state asks for, with its complete configuration.
#[derive(Debug, Clone)]
pub struct DesiredTask {
    pub key: TaskKey,
    pub version: u64,
    pub spec: TaskSpec,
    pub on_failure: OnFailure,
    pub restart_generation: u64,
}

impl DesiredTask {
    /// The identity of the container this task wants.
    pub fn config_hash(&self) -> String {
        effective_hash(&self.spec.config_hash(), self.restart_generation)
    }
}

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

/// Every host's assignments as last published (`None` until the desired state is loaded).
pub type Assignments = Option<Arc<Published>>;

pub struct Published {
    /// When they were published (Unix time in microseconds), so an agent can tell how long
    /// they took to reach it.
    pub at_unix_micros: i64,
    pub all: Vec<Assignment>,
}

pub struct ServerState {
    pub store: Arc<dyn Store>,
    /// Labels this installation's containers, so agents touch nothing else.
    pub cluster: String,
    /// The host of this process's own agent (`dev`): tasks without a host run there, and so do
    /// those declared for hosts no agent has joined as. `None` for a server without one.
    pub local_host: Option<String>,
    /// The connected agents: the only way to anything on a host (the server never talks to
    /// Docker).
    pub links: crate::agent_link::AgentLinks,
    /// Each host's heartbeat, engine version and resource use.
    pub hosts: crate::hosts::Hosts,
    /// Each host's containers, as its agent last reported them.
    pub observed: RwLock<HashMap<String, Vec<ObservedContainer>>>,
    /// Each task's last reported phase (not health), with the config hash it was about.
    pub last_progress: Mutex<HashMap<TaskKey, TaskProgress>>,
    /// Every phase and health report, for operations that show progress.
    pub progress: broadcast::Sender<TaskProgress>,
    /// Bumped after every agent report, so waiters re-check their condition.
    pub changed: watch::Sender<u64>,
    pub assignments: watch::Sender<Assignments>,
    /// Bumped after every new version (a push or an `update`), so agents pre-warm the images
    /// it names before it is rolled out (see `prewarm`).
    pub versions_stored: watch::Sender<u64>,
    /// Serialises recomputing and publishing assignments.
    pub(crate) publish_lock: tokio::sync::Mutex<()>,
    /// Where each unpinned task was placed, or why it could not be, as last published.
    pub(crate) placements: Mutex<crate::publish::PlacementState>,
    /// How long a host may be down before its unpinned tasks are placed elsewhere.
    pub host_down_after: std::time::Duration,
    /// Webhooks for pushes, rollouts and unhealthy tasks.
    pub notifier: crate::notify::Notifier,
    /// Registry access for `update` (tags of a job's image).
    pub registry: cj_registry::RegistryClient,
    /// Every deployment's progress, for clients following one.
    pub deployment_events: broadcast::Sender<(String, cj_api::OperationEvent)>,
    /// Woken when a deployment is promoted or aborted.
    pub deployment_signal: tokio::sync::Notify,
    /// Versions are immutable, so parsed ones are kept (within a memory budget).
    version_cache: VersionCache,
}

impl ServerState {
    pub fn new(
        store: Arc<dyn Store>,
        cluster: String,
        local_host: Option<String>,
        config: crate::config::ServerConfig,
        host_down_after: std::time::Duration,
    ) -> Arc<Self> {
        let (deployment_events, _) = broadcast::channel(4096);
        let (progress, _) = broadcast::channel(4096);
        let (changed, _) = watch::channel(0);
        let (assignments, _) = watch::channel(None);
        let (versions_stored, _) = watch::channel(0);
        Arc::new(ServerState {
            store,
            cluster,
            local_host,
            links: crate::agent_link::AgentLinks::default(),
            hosts: crate::hosts::Hosts::default(),
            observed: RwLock::default(),
            last_progress: Mutex::default(),
            progress,
            changed,
            assignments,
            versions_stored,
            publish_lock: tokio::sync::Mutex::new(()),
            placements: Mutex::default(),
            host_down_after,
            notifier: crate::notify::Notifier::new(config.notify),
            registry: cj_registry::RegistryClient::new(config.registries),
            deployment_events,
            deployment_signal: tokio::sync::Notify::new(),
            version_cache: VersionCache::new(VersionCache::DEFAULT_BUDGET_BYTES),
        })
    }

    pub fn version(
        &self,
        env: &str,
        service: &str,
        version: u64,
    ) -> Result<Arc<VersionRecord>, ApiFailure> {
        let cache_key = (env.to_owned(), service.to_owned(), version);
        if let Some(record) = self.version_cache.get(&cache_key) {
            return Ok(record);
        }
        let stored = self
            .store
            .get(&keys::version(env, service, version))?
            .ok_or_else(|| {
                ApiFailure::NotFound(format!(
                    "service {service} has no version {version} in {env}"
                ))
            })?;
        let record: Arc<VersionRecord> = Arc::new(stored.json()?);
        self.version_cache
            .insert(cache_key, record.clone(), stored.value.len());
        Ok(record)
    }

    pub fn desired_jobs(&self, prefix: &str) -> Result<Vec<DesiredJob>, ApiFailure> {
        Ok(self.store.range_json(prefix)?)
    }

    /// The tasks a desired job asks for: every task of its version, or during a rollout each
    /// task at its own version.
    pub fn desired_tasks(&self, desired: &DesiredJob) -> Result<Vec<DesiredTask>, ApiFailure> {
        let versions: Vec<(Option<String>, u64)> = if desired.task_versions.is_empty() {
            vec![(None, desired.version)]
        } else {
            desired
                .task_versions
                .iter()
                .map(|(task, version)| (Some(task.clone()), *version))
                .collect()
        };
        let mut tasks = Vec::new();
        for (only, version) in versions {
            let record = self.version(&desired.env, &desired.service, version)?;
            let Some(job) = record.spec.job(&desired.job) else {
                tracing::warn!(
                    job = desired.job,
                    version,
                    "desired job missing from its version"
                );
                continue;
            };
            for task in job
                .tasks
                .iter()
                .filter(|task| only.as_ref().is_none_or(|only| *only == task.name))
            {
                tasks.push(DesiredTask {
                    key: TaskKey {
                        env: desired.env.clone(),
                        service: desired.service.clone(),
                        job: desired.job.clone(),
                        task: task.name.clone(),
                    },
                    version,
                    spec: task.clone(),
                    on_failure: job.on_failure,
                    restart_generation: desired
                        .restart_generations
                        .get(&task.name)
                        .copied()
                        .unwrap_or(0),
                });
            }
        }
        Ok(tasks)
    }

    /// Every observed container of a task, on any host, with the host it is on.
    pub fn containers_of(&self, key: &TaskKey) -> Vec<(String, ObservedContainer)> {
        let observed = self
            .observed
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        observed
            .iter()
            .flat_map(|(host, containers)| {
                containers
                    .iter()
                    .filter(|c| &c.key == key)
                    .map(move |c| (host.clone(), c.clone()))
            })
            .collect()
    }

    pub fn progress_of(&self, key: &TaskKey) -> Option<TaskProgress> {
        lock(&self.last_progress).get(key).cloned()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
