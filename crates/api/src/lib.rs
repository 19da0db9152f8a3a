//! The HTTP API's JSON types (`/v1/...`). The server produces them, the CLI and the web UI read
//! them, and scripts get them from `--json`. Field names are part of the contract: add fields,
//! never rename them.

use cj_spec::SpecError;
use serde::{Deserialize, Serialize};

/// The environment used when none is given.
pub const DEFAULT_ENV: &str = "production";
/// Header carrying who makes a change, for the audit trail.
pub const USER_HEADER: &str = "x-coding-job-user";

/// An error answer. `errors` lists every problem of a rejected config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SpecError>,
}

/// `POST /v1/push`: a service file, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRequest {
    pub env: String,
    /// The file name, used in error messages and kept with the version.
    pub file: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushResponse {
    pub env: String,
    pub service: String,
    pub version: u64,
    /// The version this one replaces as the latest, if any.
    pub previous: Option<u64>,
    /// Whether the file differs from the previous version's.
    pub changed: bool,
    pub revision: u64,
}

/// One stored version of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionInfo {
    pub service: String,
    pub version: u64,
    pub file: String,
    pub pushed_at: String,
    pub pushed_by: String,
}

/// `POST /v1/up` and `POST /v1/down`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationRequest {
    pub env: String,
    pub target: String,
    /// Give up waiting for a wave after this many seconds.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// One line of the newline-delimited JSON stream `up` and `down` answer with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OperationEvent {
    /// The jobs, wave by wave, in the order they will be handled.
    Plan {
        waves: Vec<Vec<String>>,
    },
    WaveStarted {
        wave: usize,
        jobs: Vec<String>,
    },
    /// A task's progress: pulling, creating, starting, running, stopping, removed, failed, ...
    Task {
        task: String,
        phase: String,
        detail: Option<String>,
    },
    WaveDone {
        wave: usize,
    },
    Summary(OperationSummary),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OperationSummary {
    pub ok: bool,
    /// Tasks started (up) or removed (down) by this operation.
    pub changed: Vec<String>,
    /// Tasks that were already as wanted.
    pub unchanged: Vec<String>,
    /// Tasks that failed, each with its reason.
    pub failed: Vec<TaskFailure>,
    /// Jobs not handled because an earlier wave failed.
    pub skipped: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub task: String,
    pub reason: String,
}

/// `GET /v1/status`: one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatus {
    pub env: String,
    pub service: String,
    pub job: String,
    pub task: String,
    /// The declared host (`run_on_host`), or the one the task was placed on.
    pub host: String,
    /// The host whose agent runs the container.
    pub actual_host: Option<String>,
    /// `running`, `restarting`, `exited`, `failed`, `pending`, `pulling`, `down`, ...
    pub state: String,
    /// Why the state is what it is, when that is not obvious (a failure's reason, an exit code).
    pub detail: Option<String>,
    pub image: Option<String>,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    /// The version the running container was created for.
    pub version: Option<u64>,
    /// The version the task should run (`up` keeps a running job at its version).
    pub desired_version: Option<u64>,
    pub started_at: Option<String>,
    pub exit_code: Option<i64>,
    /// The check's verdict on the running container: `starting`, `healthy`, `unhealthy`;
    /// absent when the task has no check.
    #[serde(default)]
    pub health: Option<String>,
}

/// `GET /v1/inspect`: our view of a task plus Docker's own inspect document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InspectResponse {
    pub task: TaskStatus,
    pub config_hash: Option<String>,
    /// Docker's inspect object, as the engine returned it.
    pub container: serde_json::Value,
}

/// Every container a job ran, with the times of its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub task: String,
    pub image: String,
    pub version: u64,
    pub host: String,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub exit_code: Option<i64>,
    /// How many times it was started again after stopping.
    pub restarts: u32,
    pub removed: Option<String>,
}

/// A change in a container's life: `created`, `started`, `died`, `stopped`, `removed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at: String,
    pub kind: String,
    pub task: String,
    pub container_id: String,
    pub version: u64,
    pub host: String,
    pub exit_code: Option<i64>,
}

/// `GET /v1/history`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryResponse {
    pub env: String,
    pub service: String,
    pub job: String,
    pub versions: Vec<VersionInfo>,
    pub containers: Vec<ContainerRecord>,
    pub events: Vec<HistoryEvent>,
}

/// `GET /v1/info`: what this server is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: String,
    pub cluster: String,
    pub hosts: Vec<String>,
    pub revision: u64,
}
