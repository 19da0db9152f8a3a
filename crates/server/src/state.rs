//! What the server holds ([`ServerState`]) and the desired state as stored: which job runs at
//! which version ([`DesiredJob`]) and the tasks that asks for ([`DesiredTask`]). The other
//! concerns have their own types: `observed`, `versions::Versions`, `control::published::Scheduler`,
//! `deployments::DeploymentSignals`, `hosts`, `agent_link`.

use std::collections::BTreeMap;
use std::sync::Arc;

use cj_api::agent::{TaskKey, effective_hash};
use cj_spec::{OnFailure, TaskSpec};
use cj_store::{Store, StoreJson};
use serde::{Deserialize, Serialize};

use crate::control::published::Scheduler;
use crate::error::Failure;
use crate::hosts::observed::Observed;
use crate::releases::deployments::signals::DeploymentSignals;
use crate::releases::versions::record::Versions;

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
    /// Set by a restore, per task: the snapshot each of its volumes is to be filled from (see
    /// `Assignment::volume_sources`). Kept, so a volume is replaced once per snapshot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_sources: BTreeMap<String, BTreeMap<String, cj_api::agent::VolumeSource>>,
}

/// One task the desired state asks for, with its complete configuration.
#[derive(Debug, Clone)]
pub struct DesiredTask {
    pub key: TaskKey,
    pub version: u64,
    /// Its configuration: as written ([`ServerState::raw_desired_tasks`]), or rendered for its
    /// environment, port and the addresses of the jobs it names ([`ServerState::desired_tasks`]).
    pub spec: TaskSpec,
    pub on_failure: OnFailure,
    /// The job's `on_host_lost:`.
    pub on_host_lost: cj_spec::OnHostLost,
    pub restart_generation: u64,
    /// The snapshots its volumes are filled from (by volume), after a restore.
    pub volume_sources: BTreeMap<String, cj_api::agent::VolumeSource>,
    /// The job's `route:`, if the router serves it.
    pub route: Option<String>,
    /// How long the task stays up after leaving the routers' pool (routed jobs only).
    pub drain_ms: u64,
    /// Why its templates could not be rendered (a variable that is no longer set); such a task
    /// is not assigned, and `status` shows the reason.
    pub render_error: Option<String>,
}

impl DesiredTask {
    /// The identity of the container this task wants.
    pub fn config_hash(&self) -> String {
        effective_hash(&self.spec.config_hash(), self.restart_generation)
    }
}

/// What every request handler is handed: the server.
pub(crate) type AppState = axum::extract::State<Arc<ServerState>>;

/// The server: the store and one part per concern, each with its own small API. The store holds
/// what must survive a restart (desired state, versions, deployments, history, tokens); every
/// other part is in memory and rebuilt from the store and the agents' reports.
pub struct ServerState {
    pub store: Arc<dyn Store>,
    /// Labels this installation's containers, so agents touch nothing else.
    pub cluster: String,
    /// The host of this process's own agent (`dev`): tasks without a host run there, and so do
    /// those declared for hosts no agent has joined as. `None` for a server without one.
    pub local_host: Option<String>,
    /// The connected agents: the only way to anything on a host (the server never talks to
    /// Docker).
    pub links: crate::hosts::agent_link::links::AgentLinks,
    /// Each host's heartbeat, engine version and resource use.
    pub hosts: crate::hosts::listing::registry::Hosts,
    /// What the agents last reported: containers, progress, a report generation.
    pub observed: Observed,
    /// Stored versions, parsed and cached, and the news of new ones.
    pub versions: Versions,
    /// Every host's assignments and each task's placement, as last published.
    pub scheduler: Scheduler,
    /// Running deployments' progress for followers, and promote/abort for their runners.
    pub deployment_signals: DeploymentSignals,
    /// The tasks whose images hosts pre-warm, worked out once per change for every agent.
    pub prewarm: crate::hosts::prewarm::catalog::Catalog,
    /// Webhooks for pushes, rollouts, unhealthy tasks and alerts.
    pub notifier: crate::observe::notify::Notifier,
    /// The `alerts:` rules and the alerts they raised.
    pub alerts: crate::observe::alerts::engine::Alerts,
    /// Registry access for `update` (tags of a job's image).
    pub registry: cj_registry::RegistryClient,
    /// Where `port: auto` ports come from.
    pub port_range: std::ops::RangeInclusive<u16>,
    /// How routes are reached from outside, when routers run: for the URLs `env run` and
    /// `env addresses` show.
    pub route_urls: Option<RouteUrls>,
    /// The route table for routers, rebuilt whenever what it depends on changes.
    pub routes: crate::control::routes::table::RouteTableWatch,
    /// Writes the containers' events into the jobs' history, in batches.
    pub history_writer: crate::hosts::history_writer::HistoryWriter,
    /// What every router last reported counting, for canary analysis.
    pub router_counts: crate::releases::traffic::RouterCountsBook,
    /// Where volume snapshots are kept, and the uploads under way.
    pub snapshots: crate::snapshots::Snapshots,
}

/// What the server is told about the routers, to show each route's URL.
#[derive(Debug, Clone)]
pub struct RouteUrls {
    /// The wildcard domain: routes are `NAME.ENV.DOMAIN`.
    pub domain: String,
    /// The routers' port, when not 80.
    pub port: Option<u16>,
}

impl RouteUrls {
    pub fn url(&self, env: &str, route: &str) -> String {
        let port = self.port.map(|port| format!(":{port}")).unwrap_or_default();
        format!("http://{route}.{env}.{}{port}", self.domain)
    }
}

/// How a server schedules, besides its config file.
#[derive(Debug, Clone)]
pub struct StateOptions {
    /// How long a host may be down before its unpinned tasks are placed elsewhere.
    pub host_down_after: std::time::Duration,
    pub port_range: std::ops::RangeInclusive<u16>,
    pub route_urls: Option<RouteUrls>,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            host_down_after: std::time::Duration::from_secs(30),
            port_range: cj_api::envs::DEFAULT_PORT_RANGE,
            route_urls: None,
        }
    }
}

impl ServerState {
    pub fn new(
        store: Arc<dyn Store>,
        cluster: String,
        local_host: Option<String>,
        config: crate::config::ServerConfig,
        options: StateOptions,
    ) -> Arc<Self> {
        crate::observe::recorder::install();
        let snapshot_target = config.snapshots.as_ref().and_then(|config| {
            crate::snapshots::target::SnapshotTarget::open(config)
                .inspect_err(|error| tracing::error!(%error, "no snapshot target"))
                .ok()
        });
        Arc::new_cyclic(|state: &std::sync::Weak<ServerState>| ServerState {
            history_writer: {
                let state = state.clone();
                crate::hosts::history_writer::HistoryWriter::start(
                    store.clone(),
                    Box::new(move |key| {
                        crate::observe::recorder::task_restarted(key);
                        if let Some(state) = state.upgrade() {
                            state.alerts.task_restarted(key);
                        }
                    }),
                )
            },
            versions: Versions::new(store.clone()),
            store,
            cluster,
            local_host,
            links: crate::hosts::agent_link::links::AgentLinks::default(),
            hosts: crate::hosts::listing::registry::Hosts::default(),
            observed: Observed::default(),
            scheduler: Scheduler::new(options.host_down_after),
            deployment_signals: DeploymentSignals::default(),
            prewarm: crate::hosts::prewarm::catalog::Catalog::default(),
            notifier: crate::observe::notify::Notifier::for_webhooks(config.notify),
            alerts: crate::observe::alerts::engine::Alerts::new(config.alerts),
            registry: cj_registry::RegistryClient::new(config.registries),
            port_range: options.port_range,
            route_urls: options.route_urls,
            routes: crate::control::routes::table::RouteTableWatch::default(),
            router_counts: Default::default(),
            snapshots: crate::snapshots::Snapshots::new(snapshot_target),
        })
    }

    /// Changes a stored JSON record by compare-and-swap: `change` is applied to what is stored
    /// now and written only if nobody wrote the record meanwhile, else read and applied again; so
    /// no concurrent change is lost. `None` if there is no such record.
    pub fn update_json<T, R>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> Result<R, Failure>,
    ) -> Result<Option<(T, R)>, Failure>
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        loop {
            let Some(stored) = self.store.get(key)? else {
                return Ok(None);
            };
            let mut record: T = stored.json()?;
            let outcome = change(&mut record)?;
            let value = serde_json::to_vec(&record).map_err(cj_store::StoreError::encode)?;
            if self
                .store
                .compare_and_swap(key, Some(stored.mod_revision), value)?
                .is_some()
            {
                return Ok(Some((record, outcome)));
            }
        }
    }

    /// Changes a job's desired record (see [`ServerState::update_json`]); `None` if the job is
    /// not desired (it was brought down).
    pub fn update_desired(
        &self,
        key: &str,
        change: impl FnMut(&mut DesiredJob) -> Result<(), Failure>,
    ) -> Result<Option<DesiredJob>, Failure> {
        Ok(self.update_json(key, change)?.map(|(desired, ())| desired))
    }

    pub fn desired_jobs(&self, prefix: &str) -> Result<Vec<DesiredJob>, Failure> {
        Ok(self.store.range_json(prefix)?)
    }

    /// The tasks a desired job asks for, rendered: what agents run and what `status`, `up` and
    /// rollouts compare containers with.
    pub fn desired_tasks(&self, desired: &DesiredJob) -> Result<Vec<DesiredTask>, Failure> {
        let mut tasks = self.raw_desired_tasks(desired)?;
        self.render_tasks(&mut tasks)?;
        Ok(tasks)
    }

    /// The tasks a desired job asks for, as written (with their allocated ports): every task of
    /// its version, or during a rollout each task at its own version.
    pub fn raw_desired_tasks(&self, desired: &DesiredJob) -> Result<Vec<DesiredTask>, Failure> {
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
            let record = self.versions.get(&desired.env, &desired.service, version)?;
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
                let key = TaskKey {
                    env: desired.env.clone(),
                    service: desired.service.clone(),
                    job: desired.job.clone(),
                    task: task.name.clone(),
                };
                let mut spec = task.clone();
                if spec.auto_port {
                    spec.port = self.allocated_port(&key)?;
                }
                tasks.push(DesiredTask {
                    key,
                    version,
                    spec,
                    on_failure: job.on_failure,
                    on_host_lost: job.on_host_lost,
                    restart_generation: desired
                        .restart_generations
                        .get(&task.name)
                        .copied()
                        .unwrap_or(0),
                    volume_sources: desired
                        .volume_sources
                        .get(&task.name)
                        .cloned()
                        .unwrap_or_default(),
                    route: job.route.clone(),
                    drain_ms: job.route.as_ref().map_or(0, |_| job.drain_timeout_ms),
                    render_error: None,
                });
            }
        }
        Ok(tasks)
    }
}
