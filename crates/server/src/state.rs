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

    pub fn declared_host(&self, local_host: &str) -> String {
        self.spec
            .run_on_host
            .clone()
            .unwrap_or_else(|| local_host.to_owned())
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
    /// Serialises recomputing and publishing assignments.
    publish_lock: tokio::sync::Mutex<()>,
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
    ) -> Arc<Self> {
        let (deployment_events, _) = broadcast::channel(4096);
        let (progress, _) = broadcast::channel(4096);
        let (changed, _) = watch::channel(0);
        let (assignments, _) = watch::channel(None);
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
            publish_lock: tokio::sync::Mutex::new(()),
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

    /// Recomputes every host's assignments from the desired state and hands them to the agents.
    pub async fn publish_assignments(&self) -> Result<(), ApiFailure> {
        let _publishing = self.publish_lock.lock().await;
        let mut assignments = Vec::new();
        for desired in self.desired_jobs(keys::DESIRED_ALL)? {
            for task in self.desired_tasks(&desired)? {
                let declared_host = task.declared_host(self.default_host());
                let mut assignment = Assignment::new(
                    task.key,
                    task.version,
                    task.spec,
                    declared_host,
                    task.on_failure,
                )
                .with_restart_generation(task.restart_generation);
                // One machine: a replacement that needs the same port must wait for the old
                // container to stop; one without a port can start first.
                assignment.start_first = assignment.spec.port == 0;
                assignments.push(assignment);
            }
        }
        self.assignments.send_replace(Some(Arc::new(Published {
            at_unix_micros: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64,
            all: assignments,
        })));
        Ok(())
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

    /// Where a task without a declared host runs: the local agent's host, if there is one.
    pub fn default_host(&self) -> &str {
        self.local_host.as_deref().unwrap_or_default()
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
