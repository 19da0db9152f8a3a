//! The HTTP API's JSON types (`/v1/...`). The server produces them, the CLI and the web UI read
//! them, and scripts get them from `--json`. Field names are part of the contract: add fields,
//! never rename them. Beside them, what the other crates share without linking each other:
//! the agent protocol ([`agent`]), deadlines that cannot overflow ([`time`]) and HTML escaping
//! ([`html`]).

pub mod agent;
pub mod alerts;
pub mod certificates;
pub mod envs;
pub mod events;
pub mod exec;
pub mod html;
mod local_user;
pub mod metrics_text;
pub mod routes;
pub mod servers;
pub mod snapshots;
pub mod time;

use cj_spec::SpecError;
use serde::{Deserialize, Serialize};

/// The environment used when none is given.
pub const DEFAULT_ENV: &str = "production";
pub use local_user::local_user;

/// Header carrying who makes a change, for the audit trail.
pub const USER_HEADER: &str = "x-coding-job-user";
/// What a secret value reads as in every answer: it never leaves the server, except towards
/// the container that needs it.
pub const SECRET_MASK: &str = "******";
/// The longest wait for a wave `up` and `down` accept (`timeout_seconds`): one day. Longer
/// waits are refused rather than risk overflowing the server's clock arithmetic.
pub const MAX_TIMEOUT_SECONDS: u64 = 24 * 60 * 60;

/// An error answer, whatever refused the request (a handler, a malformed request, an unknown
/// route, a limit). `errors` lists every problem of a rejected config file.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiError {
    pub error: String,
    /// A stable snake_case word for what went wrong (`bad_request`, `not_found`, `conflict`,
    /// `invalid_config`, `payload_too_large`, ...), for scripts; empty from older servers.
    #[serde(default)]
    pub code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SpecError>,
}

/// `POST /v1/push`: a service file, as written.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub env: String,
    /// The file name, used in error messages and kept with the version.
    pub file: String,
    pub source: String,
    /// Refuse (409) if anything about the service changed after this revision (from `diff`).
    #[serde(default)]
    pub check_revision: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushResponse {
    pub env: String,
    pub service: String,
    pub version: u64,
    /// The version this one replaces as the latest, if any.
    pub previous: Option<u64>,
    /// Whether the file differs from the previous version's.
    pub changed: bool,
    /// Whether a new version was stored: a file identical to the latest version's stores
    /// nothing, and `version` is then that latest version.
    #[serde(default = "stored_by_default")]
    pub stored: bool,
    pub revision: u64,
}

fn stored_by_default() -> bool {
    true
}

/// One stored version of a service.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub service: String,
    pub version: u64,
    pub file: String,
    pub pushed_at: String,
    pub pushed_by: String,
}

/// `POST /v1/up` and `POST /v1/down`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationRequest {
    pub env: String,
    pub target: String,
    /// Give up waiting for a wave after this many seconds (1 to a day).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_seconds: Option<u64>,
}

/// One line of the newline-delimited JSON stream `up` and `down` answer with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A deployment's state changed.
    Deployment {
        id: String,
        status: DeploymentStatus,
        message: Option<String>,
    },
    /// A deployment started moving a batch of a job's tasks.
    Batch {
        job: String,
        batch: usize,
        of: usize,
        tasks: Vec<String>,
        canary: bool,
    },
    /// One measurement of a job's canaries (`update.analysis`).
    Measurement {
        job: String,
        measurement: CanaryMeasurement,
    },
    Summary(OperationSummary),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// `down`: tasks whose host has no agent connected. Nothing of them is wanted any more; each
    /// host stops them when its agent links again (its assignments no longer hold them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for_host: Vec<WaitingForHost>,
    pub seconds: f64,
}

/// A task whose containers are on a host that is down: they go when the host is back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitingForHost {
    pub task: String,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskFailure {
    pub task: String,
    pub reason: String,
    /// The exit code of the container whose death failed the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The last lines that container wrote (stdout and stderr), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

impl TaskFailure {
    pub fn new(task: impl Into<String>, reason: impl Into<String>) -> Self {
        TaskFailure {
            task: task.into(),
            reason: reason.into(),
            exit_code: None,
            log_tail: Vec::new(),
        }
    }
}

/// `GET /v1/status`: one task.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The running container's CPU use in percent of one CPU, from its host's last stats.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// The running container's memory in use, from its host's last stats.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// `GET /v1/hosts`: one host, as its agent last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostInfo {
    pub name: String,
    /// Where the host is reached: its agent's `--advertise`, or the address its link comes from.
    #[serde(default)]
    pub address: Option<String>,
    /// The agent's `--label KEY=VALUE`s.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `ready` (its agent is connected), `draining` (connected, taking no new tasks) or `down`
    /// (not connected now, or never was).
    pub state: String,
    /// `hosts drain` was run for it and not undone: it takes no new tasks.
    #[serde(default)]
    pub draining: bool,
    /// The Docker engine's version, once the agent has said it.
    pub engine_version: Option<String>,
    /// When the server last heard from the agent (RFC 3339).
    pub last_heartbeat: Option<String>,
    /// Containers of this installation running there.
    pub tasks: usize,
    /// The latest resource reading, if any.
    pub resources: Option<HostResources>,
    /// Readings over the last hour, oldest first (every stats interval, 10 s by default).
    #[serde(default)]
    pub history: Vec<HostResources>,
}

/// `POST /v1/hosts/{name}/drain` and `/undrain`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DrainResponse {
    pub host: String,
    pub draining: bool,
    /// Unpinned tasks placed on other hosts by the drain.
    pub moved: Vec<MovedTask>,
    /// Unpinned tasks that had to leave but fit nowhere else, with why.
    pub unplaced: Vec<TaskFailure>,
    /// Tasks whose config pins them to this host: they stay.
    pub pinned: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MovedTask {
    pub task: String,
    pub to: String,
}

/// `POST /v1/hosts/{name}/prewarm`: every image the host runs or may run, as its agent found
/// or pulled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrewarmResponse {
    pub host: String,
    pub images: Vec<ImagePull>,
}

/// One image of a pre-warm: `{"image": "...", "outcome": "pulled", "seconds": 2.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImagePull {
    pub image: String,
    #[serde(flatten)]
    pub outcome: PullOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PullOutcome {
    /// The engine had it already: nothing was pulled.
    Present,
    /// Pulled now, in this many seconds.
    Pulled { seconds: f64 },
    /// The engine's reason (the agent sends no registry credentials, so none can be in it).
    Failed { error: String },
}

impl PullOutcome {
    /// The engine has the image now.
    pub fn is_ready(&self) -> bool {
        !matches!(self, PullOutcome::Failed { .. })
    }
}

/// A host's resources at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostResources {
    pub at: String,
    pub cpus: u32,
    /// Of all CPUs together: 100 is every CPU busy.
    pub cpu_percent: f64,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    /// The filesystem that holds the most (where images and containers live on a Docker host).
    pub disk_total_bytes: u64,
    pub disk_used_bytes: u64,
}

/// `GET /v1/inspect`: our view of a task plus Docker's own inspect document.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InspectResponse {
    pub task: TaskStatus,
    pub config_hash: Option<String>,
    /// Docker's inspect object, as the engine returned it.
    pub container: serde_json::Value,
}

/// Every container a job ran, with the times of its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    pub at: String,
    pub kind: String,
    pub task: String,
    pub container_id: String,
    pub version: u64,
    pub host: String,
    pub exit_code: Option<i64>,
    /// Why, for events that are not a container's (a task moved to another host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `GET /v1/history`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryResponse {
    pub env: String,
    pub service: String,
    pub job: String,
    pub versions: Vec<VersionInfo>,
    pub containers: Vec<ContainerRecord>,
    pub events: Vec<HistoryEvent>,
}

/// `GET /v1/info`: what this server is.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerInfo {
    pub version: String,
    pub cluster: String,
    pub hosts: Vec<String>,
    pub revision: u64,
}

/// What a deployment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentKind {
    /// Move jobs to the service's latest pushed version.
    RollingUpdate,
    /// Move a job back to an earlier version.
    Rollback,
    /// Replace tasks with identical fresh containers.
    Reload,
    /// Move a job to another image tag (a new version made from the previous one).
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentStatus {
    Running,
    /// The canaries are healthy; the rest waits for `promote` (or `abort`).
    AwaitingPromotion,
    /// The canaries are being judged by their traffic (`update.analysis`); `promote` ends the
    /// analysis early, `abort` rolls them back.
    Analysing,
    Succeeded,
    /// Stopped on a failure; tasks stay where the batches say they are.
    Failed,
    /// Stopped on a failure, and the tasks already moved were moved back.
    RolledBack,
    /// Stopped by `abort`, and the tasks already moved were moved back.
    Aborted,
}

impl DeploymentKind {
    /// The word the API uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::RollingUpdate => "rolling-update",
            DeploymentKind::Rollback => "rollback",
            DeploymentKind::Reload => "reload",
            DeploymentKind::Update => "update",
        }
    }
}

impl DeploymentStatus {
    /// The word the API uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Running => "running",
            DeploymentStatus::AwaitingPromotion => "awaiting-promotion",
            DeploymentStatus::Analysing => "analysing",
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::RolledBack => "rolled-back",
            DeploymentStatus::Aborted => "aborted",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Running
                | DeploymentStatus::AwaitingPromotion
                | DeploymentStatus::Analysing
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    Pending,
    /// Its tasks were moved; waiting for them to be healthy for `min_healthy_time`.
    InProgress,
    Healthy,
    Failed,
}

/// A group of tasks moved together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Batch {
    pub tasks: Vec<String>,
    pub canary: bool,
    pub state: BatchState,
    pub started: Option<String>,
    pub finished: Option<String>,
}

/// One job's part of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRollout {
    pub job: String,
    pub from_version: u64,
    pub to_version: u64,
    /// What happens to each task, with reasons (the plan `diff` shows).
    pub changes: Vec<cj_spec::TaskChange>,
    pub policy: cj_spec::UpdatePolicy,
    pub batches: Vec<Batch>,
    /// The first batch not yet healthy.
    pub next_batch: usize,
    pub done: bool,
    /// The canary phase's measurements (`update.analysis`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<CanaryMeasurement>,
}

/// What one interval of a canary phase measured, and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CanaryMeasurement {
    /// When the interval ended (RFC 3339).
    pub at: String,
    /// How long it lasted, in milliseconds.
    pub interval_ms: u64,
    /// Requests the canaries answered or failed to answer, through every router.
    pub requests: u64,
    /// Their share of non-5xx answers, in basis points; `None` without requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_bp: Option<u64>,
    /// Their 99th percentile time to the answer's headers (a bucket's upper bound), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<u64>,
    /// The same of the stable version, in the same interval.
    #[serde(default)]
    pub stable_requests: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_success_rate_bp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_p99_ms: Option<u64>,
    /// Lines of the canaries' logs matching `log_errors.pattern` (when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_errors: Option<u64>,
    pub verdict: Verdict,
    /// Why it failed or was inconclusive, in words; empty when it passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What a measurement of a canary says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Too few requests to judge by (`min_requests`).
    Inconclusive,
}

impl CanaryMeasurement {
    /// The measurement in a line: `fail: 412 requests, 71.35% ok, p99 8ms (canary success ...)`.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{} requests", self.requests)];
        if let Some(rate) = self.success_rate_bp {
            parts.push(format!("{} ok", cj_spec::percent_text(rate)));
        }
        if let Some(p99) = self.p99_ms {
            parts.push(format!("p99 {}", latency_text(p99)));
        }
        if let Some(errors) = self.log_errors {
            parts.push(format!("{errors} log errors"));
        }
        let mut line = format!("{}: {}", self.verdict.as_str(), parts.join(", "));
        if !self.reasons.is_empty() {
            line.push_str(&format!(" ({})", self.reasons.join("; ")));
        }
        line
    }
}

/// A latency as a measurement shows it: `730ms`, `2.5s`, or `over 30s` above the routers'
/// last latency bucket.
pub fn latency_text(millis: u64) -> String {
    let last = routes::LATENCY_BUCKETS_MS[routes::LATENCY_BUCKETS_MS.len() - 1];
    if millis > last {
        format!("over {}", seconds_text(last))
    } else if millis < 1000 {
        format!("{millis}ms")
    } else {
        seconds_text(millis)
    }
}

/// Milliseconds as seconds: `30s`, `2.5s`.
pub fn seconds_text(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{:.1}s", millis as f64 / 1000.0)
    }
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The durable record of moving jobs from one version to another. The server keeps it in the
/// store at every step, so after a restart the rollout continues where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deployment {
    pub id: String,
    pub env: String,
    pub service: String,
    pub kind: DeploymentKind,
    pub status: DeploymentStatus,
    pub user: String,
    pub created: String,
    pub updated: String,
    /// In dependency order.
    pub jobs: Vec<JobRollout>,
    /// Why it failed, was rolled back or is waiting.
    pub message: Option<String>,
    #[serde(default)]
    pub promote_requested: bool,
    #[serde(default)]
    pub abort_requested: bool,
}

/// `POST /v1/rolling-update`, `/v1/rollback`, `/v1/reload`, `/v1/update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub env: String,
    pub target: String,
    /// `rollback`: the version to go back to (default: the one before the current).
    #[serde(default)]
    pub to_version: Option<u64>,
    /// `update`: the image tag to move to.
    #[serde(default)]
    pub tag: Option<String>,
    /// Follow the deployment's progress in the answer (newline-delimited JSON) until it ends or
    /// waits for promotion; otherwise answer at once with the deployment.
    #[serde(default)]
    pub follow: bool,
}

/// `GET /v1/update/tags`: what runs, and what the registry has.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpdateCandidates {
    pub service: String,
    pub job: String,
    /// The job's image reference as configured.
    pub image: String,
    pub running: Vec<RunningImage>,
    /// The registry's tags for the image's repository, newest first.
    pub tags: Vec<RegistryTag>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunningImage {
    pub task: String,
    pub container_id: String,
    pub container_name: String,
    pub version: u64,
    pub image: String,
    pub image_id: String,
    pub created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegistryTag {
    pub tag: String,
    pub image_id: String,
    pub digest: String,
    pub created: Option<String>,
}

/// `POST /v1/diff`: what pushing a file (and rolling it out) would change.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffRequest {
    pub env: String,
    pub file: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffResponse {
    pub service: String,
    /// The latest stored version compared against (none for a new service).
    pub latest_version: Option<u64>,
    pub latest_source: Option<String>,
    pub source: String,
    /// Task by task, against what each job runs now (or, for a job that is down, its latest).
    pub changes: Vec<cj_spec::TaskChange>,
    /// Pass to `push --check-rev` to push only if nothing about the service changed since.
    pub revision: u64,
}

/// `GET /v1/versions/diff`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionDiff {
    pub service: String,
    pub from: VersionInfo,
    pub to: VersionInfo,
    pub from_source: String,
    pub to_source: String,
}

/// What a token's requests may do. `deploy` includes `read`, and `admin` includes both; `agent`
/// is for agents only (the routes under `/v1/agent/`) and includes nothing else; `router` is
/// for standalone routers: `read` plus the routes under `/v1/router/` (their counts,
/// certificates and ACME challenges), which `admin` includes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET routes: status, history, logs, versions, deployments.
    Read,
    /// Changes to what runs: push, up, down, rollouts, promote/abort, update, diff.
    Deploy,
    /// Tokens and hosts, besides everything `deploy` can do.
    Admin,
    /// An agent's link to the server.
    Agent,
    /// A standalone router: reads the route table, reports its counts, shares certificates.
    Router,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Read,
        Role::Deploy,
        Role::Admin,
        Role::Agent,
        Role::Router,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Deploy => "deploy",
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Router => "router",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                format!("unknown role \"{text}\": expected read, deploy, admin, agent or router")
            })
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// 1 to 63 letters, digits, `_`, `.` or `-`.
    pub name: String,
    pub role: Role,
}

/// The answer to `POST /v1/tokens`: the only time the secret is shown (the server keeps its
/// hash). `Debug` leaves the secret out.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// `GET /v1/tokens`: one token, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created: String,
    /// The identity that created it (`server` for the admin token made at first start).
    pub created_by: String,
}

/// `GET /v1/audit`: one write request (any method but GET and HEAD), allowed or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: String,
    /// The token's name; without a token (a loopback `dev`) the `x-coding-job-user` header;
    /// `anonymous` or `invalid token` for refused requests without a valid one.
    pub who: String,
    /// The token's role; none without a token.
    pub role: Option<Role>,
    pub method: String,
    pub path: String,
    /// The environment the request names, if any.
    #[serde(default)]
    pub env: Option<String>,
    /// What the request is about, when it says: its target, the service a pushed file
    /// declares, or the token it creates or revokes.
    #[serde(default)]
    pub target: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_words_are_the_api_words() {
        use DeploymentKind as K;
        use DeploymentStatus as S;
        for kind in [K::RollingUpdate, K::Rollback, K::Reload, K::Update] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for status in [
            S::Running,
            S::AwaitingPromotion,
            S::Succeeded,
            S::Failed,
            S::RolledBack,
            S::Aborted,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn event_kinds_are_the_api_words() {
        use events::EventKind as E;
        for kind in [
            E::Push,
            E::Desired,
            E::Container,
            E::Health,
            E::Deployment,
            E::Host,
            E::Env,
            E::Placement,
            E::Token,
            E::Alert,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn an_error_from_an_older_server_has_an_empty_code() {
        let error: ApiError = serde_json::from_str(r#"{"error": "no such job"}"#).unwrap();
        assert_eq!(
            (error.error.as_str(), error.code.as_str()),
            ("no such job", "")
        );
    }

    #[test]
    fn request_types_refuse_unknown_fields() {
        let misspelt = r#"{"env": "e", "file": "f", "source": "s", "check_revison": 3}"#;
        let error = serde_json::from_str::<PushRequest>(misspelt).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `check_revison`"),
            "{error}"
        );
        let extra = r#"{"env": "e", "target": "t", "timeout": 3}"#;
        assert!(serde_json::from_str::<OperationRequest>(extra).is_err());
        let extra = r#"{"env": "e", "target": "t", "version": 3}"#;
        assert!(serde_json::from_str::<DeployRequest>(extra).is_err());
        let extra = r#"{"env": "e", "file": "f", "source": "s", "check_revision": 1}"#;
        assert!(serde_json::from_str::<DiffRequest>(extra).is_err());
        let extra = r#"{"name": "ci", "role": "read", "secret": "x"}"#;
        assert!(serde_json::from_str::<CreateTokenRequest>(extra).is_err());
    }

    #[test]
    fn roles_read_and_print_as_one_word() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("Admin".parse::<Role>().is_err());
    }

    #[test]
    fn image_pulls_are_flat_objects_with_their_outcome() {
        let pulls = vec![
            ImagePull {
                image: "a:1".into(),
                outcome: PullOutcome::Present,
            },
            ImagePull {
                image: "b:1".into(),
                outcome: PullOutcome::Pulled { seconds: 1.5 },
            },
            ImagePull {
                image: "c:1".into(),
                outcome: PullOutcome::Failed {
                    error: "connection refused".into(),
                },
            },
        ];
        let text = serde_json::to_string(&pulls).unwrap();
        assert_eq!(
            text,
            r#"[{"image":"a:1","outcome":"present"},{"image":"b:1","outcome":"pulled","seconds":1.5},{"image":"c:1","outcome":"failed","error":"connection refused"}]"#
        );
        assert_eq!(
            serde_json::from_str::<Vec<ImagePull>>(&text).unwrap(),
            pulls
        );
    }

    #[test]
    fn a_created_token_does_not_show_its_secret_in_debug_output() {
        let token = CreatedToken {
            name: "ci".into(),
            role: Role::Deploy,
            secret: "cj_0123456789abcdef".into(),
        };
        assert!(!format!("{token:?}").contains("0123456789abcdef"));
    }
}
