//! Engine-neutral descriptions of containers, events and output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    pub fn from_docker(state: &str) -> Self {
        match state {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            _ => ContainerState::Unknown,
        }
    }

    /// Whether the container's process is (or is about to be) alive.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
        )
    }
}

/// A container as listed by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// Unix seconds.
    pub created: i64,
}

impl Container {
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// The parts of an inspect the agent acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub state: ContainerState,
    /// RFC 3339, as Docker reports it; `None` before the first start.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub image_id: String,
    /// The engine's error for the last start attempt, if any.
    pub error: String,
}

/// A lifecycle event of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// Docker's action: `create`, `start`, `die`, `kill`, `oom`, `stop`, `destroy`, ...
    pub action: String,
    pub container_id: String,
    pub labels: BTreeMap<String, String>,
    /// Set on `die`.
    pub exit_code: Option<i64>,
    /// Unix nanoseconds.
    pub time_nanos: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogChunk {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {image} not found: {reason}")]
    ImageNotFound { image: String, reason: String },
    #[error("no such container {0}")]
    NoSuchContainer(String),
    #[error("a container named {0} already exists")]
    NameConflict(String),
    #[error("invalid container configuration: {0}")]
    InvalidConfig(String),
    #[error("docker: {0}")]
    Docker(String),
}
