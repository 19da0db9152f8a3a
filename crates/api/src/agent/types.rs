//! What the server asks of an agent and what the agent tells the server.

use std::fmt;

use cj_spec::{OnFailure, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::HostResources;

/// The identity of a task: unique across the whole installation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskKey {
    pub env: String,
    pub service: String,
    pub job: String,
    pub task: String,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.service, self.job, self.task)
    }
}

impl TaskKey {
    /// The engine's name of this task's volume `volume`: one per task and environment, kept
    /// across the task's containers (restarts and rollouts reuse it). Unlike a container name
    /// it has no time in it, since it is found again by name; so it ends with the first 8
    /// characters of the cluster id, and two installations (or two test runs) sharing an engine
    /// never share a volume. Every part is a checked name (letters, digits, `-`, `_`, `.`), so
    /// the result is a valid volume name. The agent names volumes so; the server shows them.
    pub fn volume_name(&self, volume: &str, cluster: &str) -> String {
        let cluster8: String = cluster.chars().take(8).collect();
        format!(
            "{volume}_{}_{}_{}_{cluster8}",
            self.task, self.service, self.env
        )
    }
}

/// One task the server wants running on this agent's host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub key: TaskKey,
    /// The service version the task's configuration comes from.
    pub version: u64,
    pub spec: TaskSpec,
    /// The identity of the wanted container: the spec's hash, mixed with the restart generation
    /// when one is set (so `reload` gets a fresh container with the same configuration).
    pub config_hash: String,
    /// The host the config names (or the scheduler chose), recorded on the container.
    pub declared_host: String,
    pub on_failure: OnFailure,
    /// Bumped by `reload` to replace a container whose configuration did not change.
    #[serde(default)]
    pub restart_generation: u64,
    /// Start the replacement before stopping the old container (and stop the old one only once
    /// the new one is healthy). Off when both would need the same port on the same host.
    #[serde(default)]
    pub start_first: bool,
    /// How long a running container of this task stays up after it is reported leaving (out of
    /// the routers' pool) before it is stopped on purpose, so requests in flight finish: the
    /// job's drain timeout for a routed job, 0 otherwise. Recorded on the container when it is
    /// created (not part of its identity).
    #[serde(default)]
    pub drain_ms: u64,
    /// The job says `on_host_lost: stop` and the task is not pinned: if this agent hears nothing
    /// from its server for `LinkTiming::stop_when_cut_after`, it stops the task itself, before the
    /// server places it on another host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_when_cut: bool,
    /// Volumes (by their config name) to fill from a snapshot instead of their seed: when the
    /// volume is new here, or when it was not filled from this snapshot yet (a restore: the
    /// volume is replaced before the new container starts).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub volume_sources: std::collections::BTreeMap<String, VolumeSource>,
}

/// A snapshot a volume is filled from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VolumeSource {
    /// The snapshot's id; the agent reads it from its server's `/v1/agent/snapshots/ID`.
    pub snapshot: String,
    /// SHA-256 of its compressed data, checked before anything is replaced.
    pub sha256: String,
}

/// The container identity for a spec hash and a restart generation (0: the spec hash itself).
pub fn effective_hash(spec_hash: &str, restart_generation: u64) -> String {
    if restart_generation == 0 {
        return spec_hash.to_owned();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{spec_hash}/{restart_generation}").as_bytes());
    digest[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Assignment {
    /// The same assignment with a restart generation (see [`effective_hash`]).
    pub fn with_restart_generation(mut self, generation: u64) -> Self {
        self.restart_generation = generation;
        self.config_hash = effective_hash(&self.spec.config_hash(), generation);
        self
    }

    pub fn new(
        key: TaskKey,
        version: u64,
        spec: TaskSpec,
        declared_host: String,
        on_failure: OnFailure,
    ) -> Self {
        let config_hash = spec.config_hash();
        Assignment {
            restart_generation: 0,
            start_first: false,
            drain_ms: 0,
            stop_when_cut: false,
            volume_sources: std::collections::BTreeMap::new(),
            key,
            version,
            spec,
            config_hash,
            declared_host,
            on_failure,
        }
    }
}

/// Where a task is in being brought up or down; reported as it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Pulling {
        image: String,
    },
    Creating,
    /// Filling a newly created volume from its seed, before the container first starts.
    Seeding {
        /// The volume's name in the config.
        volume: String,
    },
    /// Getting the task's artifact into the host's cache (a download, or a read of a file on
    /// the host), before the old container is stopped.
    FetchingArtifact {
        /// Its URL without user, password or query.
        url: String,
    },
    /// Unpacking the task's artifact into its created container.
    UnpackingArtifact {
        /// Where in the container.
        path: String,
    },
    Starting,
    Running {
        container_id: String,
    },
    /// Will try again after a pause that grows with each consecutive failure.
    BackingOff {
        millis: u64,
        reason: String,
    },
    Failed {
        reason: String,
    },
    /// `on_failure: keep`: the dead container is left as it is.
    Kept {
        container_id: String,
        reason: String,
    },
    Stopping {
        container_id: String,
    },
    Removed,
}

/// A container's state, in the engine's words (`docker ps`'s `State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl ContainerState {
    /// Whether the container's process is (or is about to be) alive.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
        )
    }
}

/// A container as the agent sees it, with the details the status and history views need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedContainer {
    pub key: TaskKey,
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub version: u64,
    pub config_hash: String,
    pub declared_host: String,
    pub state: ContainerState,
    pub created: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    /// The check's verdict for a live container whose task has a check.
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub health_detail: Option<String>,
    /// Out of the routers' pool: it is about to be stopped on purpose and still serves the
    /// requests it has until its drain ends. Reported before the stop, at once.
    #[serde(default)]
    pub leaving: bool,
}

/// What a task's check says about its running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Started, not yet passed its check.
    Starting,
    Healthy,
    /// Failed its check `retries` times in a row.
    Unhealthy,
}

impl ObservedContainer {
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerEventKind {
    Created,
    Started,
    /// Stopped on its own (crashed, exited, killed from outside).
    Died,
    /// Stopped by coding-job (replaced or brought down).
    Stopped,
    Removed,
}

/// A change in a container's life, for the job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerEvent {
    pub kind: ContainerEventKind,
    pub key: TaskKey,
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub version: u64,
    /// The configuration the container was made for, so the server can tell the death of the
    /// container it waits for from that of an older one.
    #[serde(default)]
    pub config_hash: String,
    pub host: String,
    /// RFC 3339.
    pub at: String,
    pub exit_code: Option<i64>,
    pub detail: Option<String>,
}

/// One running container's use, as `docker stats` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub key: TaskKey,
    pub container_id: String,
    /// Of one CPU: 200 is two CPUs busy. `None` until two reads could be compared.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
}

/// Everything an agent tells the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum AgentReport {
    Phase {
        host: String,
        key: TaskKey,
        config_hash: String,
        phase: Phase,
    },
    Container {
        host: String,
        event: ContainerEvent,
    },
    /// A check's verdict changed.
    Health {
        host: String,
        key: TaskKey,
        container_id: String,
        config_hash: String,
        health: Health,
        detail: String,
    },
    /// Every container of ours on the host, after each reconcile pass.
    Snapshot {
        host: String,
        containers: Vec<ObservedContainer>,
    },
    /// What the host and its running containers use, every stats interval.
    Stats {
        host: String,
        /// The Docker engine's version.
        engine_version: String,
        host_stats: HostResources,
        containers: Vec<ContainerStats>,
    },
}

impl AgentReport {
    /// The report as from `host`: a server takes an agent's word for what runs, not for which
    /// host it is.
    pub fn from_host(mut self, host: &str) -> AgentReport {
        match &mut self {
            AgentReport::Phase { host: from, .. }
            | AgentReport::Container { host: from, .. }
            | AgentReport::Health { host: from, .. }
            | AgentReport::Snapshot { host: from, .. }
            | AgentReport::Stats { host: from, .. } => *from = host.to_owned(),
        }
        if let AgentReport::Container { event, .. } = &mut self {
            event.host = host.to_owned();
        }
        self
    }
}
