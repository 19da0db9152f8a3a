//! Engine-neutral descriptions of containers, events and output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Shared with the agent protocol, which reports it (`cj_api::agent`).
pub use cj_api::agent::ContainerState;

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

/// A named volume as listed by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl Volume {
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The engine's name of the volume.
    pub volume: String,
    /// Absolute path in the container.
    pub path: String,
}

/// A tar archive (plain, or compressed with gzip, bzip2 or xz) as it is read, so an archive of
/// any size passes through without being held in memory.
pub type ArchiveStream =
    futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

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

/// A container's resource use at one moment, as the engine's stats say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContainerUsage {
    /// CPU time the container used since it started, in nanoseconds.
    pub cpu_nanos: u64,
    /// CPU time the whole host used in the same clock, in nanoseconds (with `cpu_nanos`, two
    /// reads give the container's share).
    pub system_cpu_nanos: u64,
    pub online_cpus: u32,
    /// Memory in use, without the page cache the kernel can drop (as `docker stats` shows it).
    pub memory_bytes: u64,
    /// The container's memory limit, or the host's memory when it has none.
    pub memory_limit_bytes: u64,
}

impl ContainerUsage {
    /// The CPU the container used between `earlier` and this read, in percent of one CPU (so a
    /// container using two CPUs fully shows 200), as `docker stats` computes it.
    pub fn cpu_percent_since(&self, earlier: &ContainerUsage) -> f64 {
        let container = self.cpu_nanos.saturating_sub(earlier.cpu_nanos) as f64;
        let system = self
            .system_cpu_nanos
            .saturating_sub(earlier.system_cpu_nanos) as f64;
        if system <= 0.0 {
            return 0.0;
        }
        container / system * f64::from(self.online_cpus.max(1)) * 100.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogChunk {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// How to run a command attached ([`crate::ContainerRuntime::exec_attached`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    /// A pseudo-terminal: output is one stream (read as stdout).
    pub tty: bool,
    /// Attach the command's stdin to [`AttachedExec::input`].
    pub stdin: bool,
    /// The terminal's size at the start (rows, columns), with `tty`.
    pub size: Option<(u16, u16)>,
}

/// A command running in a container with its streams attached.
pub struct AttachedExec {
    /// The engine's id of the exec, for resizing it and reading its exit code.
    pub id: String,
    /// Its output until the command ends (and its streams close).
    pub output: futures_util::stream::BoxStream<'static, Result<LogChunk, RuntimeError>>,
    /// Its stdin (ignored unless attached); shutting it down closes the command's stdin.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for AttachedExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachedExec")
            .field("id", &self.id)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {image} not found: {reason}")]
    ImageNotFound { image: String, reason: String },
    #[error("no such container {0}")]
    NoSuchContainer(String),
    /// The container is there but not running (an exec into it).
    #[error("{0}")]
    NotRunning(String),
    #[error("a container named {0} already exists")]
    NameConflict(String),
    #[error("invalid container configuration: {0}")]
    InvalidConfig(String),
    #[error("docker: {0}")]
    Docker(String),
}
