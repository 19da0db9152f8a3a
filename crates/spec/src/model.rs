//! The resolved form of a service: every task carries its complete configuration (job defaults
//! already merged in), so nothing downstream has to know about inheritance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One service: the jobs released together, as stored for a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub service: String,
    pub jobs: Vec<JobSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    /// Jobs that must be running before this one starts: `JOB` for a job of this service,
    /// `SERVICE/JOB` for one of another service of the environment (checked by the server).
    pub depends_on: Vec<String>,
    pub on_failure: OnFailure,
    /// What an agent cut off from its server does with this job's unpinned tasks.
    #[serde(default, skip_serializing_if = "OnHostLost::is_keep")]
    pub on_host_lost: OnHostLost,
    /// How rollouts move this job's tasks to another version.
    #[serde(default)]
    pub update: UpdatePolicy,
    /// `route:` the name the router serves the job's tasks under (`NAME.ENV.DOMAIN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `route: { path, timeout, max_body }`: how the router serves the route. Left out of
    /// stored versions when unset, so versions stored before it load and read the same.
    #[serde(default, skip_serializing_if = "RouteOptions::is_unset")]
    pub route_options: RouteOptions,
    /// How long a routed task stays up after it leaves the routers' pool before it is stopped,
    /// so requests in flight finish (`drain_timeout:`).
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// `secret_env:` keys of its tasks' `env` whose values are never shown (not part of any
    /// task's config hash: marking a key secret replaces nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    pub tasks: Vec<TaskSpec>,
}

pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 2_000;

/// How the router serves a job's route, beyond its name. Not part of any task's config hash:
/// it changes the routers' table, never a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteOptions {
    /// `path:` only requests whose path starts with this prefix (whole segments) take the
    /// route; two jobs may share a route name with different paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `timeout:` how long a backend may take to start answering before the router gives up
    /// with 504. `None`: as long as it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `max_body:` larger request bodies are refused with 413. `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
}

impl RouteOptions {
    pub fn is_unset(&self) -> bool {
        *self == RouteOptions::default()
    }
}

fn default_drain_timeout_ms() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}

/// What the agent does when a task's container stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Start it again, with exponential backoff between attempts.
    #[default]
    Restart,
    /// Leave the dead container exactly as it is, for inspection.
    Keep,
}

/// `on_host_lost:` what happens to a job's unpinned tasks on a host that cannot reach the server
/// (Nomad's `disconnect.stop_on_client_after`). The server places them on another host after
/// `--host-down-after` either way; this says whether the cut-off copy keeps running meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnHostLost {
    /// Keep running: a server outage or restart never stops a fleet. Until the host hears the
    /// server again, the old copy and the new one may both run.
    #[default]
    Keep,
    /// The cut-off host's agent stops them itself before the server moves them, so two copies
    /// never run at once; the price is a gap, and a server outage stops them too.
    Stop,
}

impl OnHostLost {
    pub fn is_keep(&self) -> bool {
        *self == OnHostLost::Keep
    }
}

/// A task with its complete configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    /// `None` is accepted at push (the seed's own example has a job without one); `up` refuses it.
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// The port the task listens on, on its host; 0 means none declared. With `auto_port`, the
    /// port the server allocated (0 until it is rendered for a host).
    pub port: u16,
    /// `port: auto` (or the seed's `port: 0`): the server allocates a port for the task, unique
    /// on every host, and keeps it across restarts and rollouts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_port: bool,
    /// The declared host; `None` lets the scheduler choose.
    pub run_on_host: Option<String>,
    pub resources: Resources,
    /// Run Docker's init as PID 1 (reaps zombies, forwards signals).
    pub init: bool,
    /// Docker Engine API `HostConfig` fields, by Docker's own names, passed through as written.
    pub docker_hostconfig: serde_json::Map<String, serde_json::Value>,
    /// Docker Engine API container `Config` fields, by Docker's own names, passed through.
    pub docker_config: serde_json::Map<String, serde_json::Value>,
    /// Readiness and health probe, run by the agent on the task's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
    /// Where the server may place the task when no host is declared. Not part of the
    /// container's identity: narrowing it never replaces a container that still fits.
    #[serde(default, skip_serializing_if = "Placement::is_unrestricted")]
    pub placement: Placement,
    /// Named volumes, one per task and environment, optionally filled from a tarball before the
    /// container first starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// The task's code, fetched by its host's agent and unpacked into the container before it
    /// first starts. Left out when unset, so the hash of a task without one stays what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactSpec>,
}

/// `artifact:` a tarball of the task's code (a fixed image runs it), fetched by the agent,
/// checked against its checksum, kept in the host's cache and unpacked at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactSpec {
    /// An `http(s)` URL, or an absolute path of a tarball on the task's host; may be a
    /// template until the task is rendered.
    pub url: String,
    /// The tarball's SHA-256, 64 lowercase hex digits once rendered: what is unpacked is
    /// exactly what was built, and the host's cache is keyed by it.
    pub sha256: String,
    /// The absolute directory in the container it is unpacked into (made when missing).
    pub path: String,
}

/// `volumes:` one named Docker volume mounted into the task's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub name: String,
    /// Absolute path in the container.
    pub mount: String,
    /// A tarball (`.tar`, `.tar.gz`) on the task's host, or an `http(s)` URL, unpacked into the
    /// volume when it is created, before the container first starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The hosts an unpinned task may run on: those named in `hosts` (any, when empty) whose
/// labels carry every `constraints` pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub constraints: BTreeMap<String, String>,
}

impl Placement {
    pub fn is_unrestricted(&self) -> bool {
        self.hosts.is_empty() && self.constraints.is_empty()
    }

    /// Whether a host of this name and these labels is one the task may be placed on.
    pub fn allows(&self, host: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|allowed| allowed == host))
            && self
                .constraints
                .iter()
                .all(|(label, value)| labels.get(label) == Some(value))
    }

    /// What a host must be, in words, for messages about a task that fits nowhere.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            parts.push(format!("one of {}", self.hosts.join(", ")));
        }
        parts.extend(
            self.constraints
                .iter()
                .map(|(label, value)| format!("{label}={value}")),
        );
        parts.join(", ")
    }
}

/// A health probe with its timing (all in milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub probe: Probe,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failures (after the start period) that make the task unhealthy.
    pub retries: u32,
    /// Failures in this time after a start do not count.
    pub start_period_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Probe {
    /// A GET; healthy on 2xx. A path in the config becomes a URL on the task's port on its host
    /// (with `port: auto`, a template naming `{{port}}` until the task is rendered).
    Http { url: String },
    /// A TCP connection to the port on the task's host. 0 (only with `port: auto`, until the
    /// task is rendered): the task's allocated port.
    Tcp { port: u16 },
    /// A command in the container; healthy on exit 0.
    Exec { command: Vec<String> },
}

impl CheckSpec {
    pub const DEFAULT_INTERVAL_MS: u64 = 5_000;
    pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
    pub const DEFAULT_RETRIES: u32 = 3;
}

/// `update:` how a rollout moves a job's tasks to another version (Nomad's names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpdatePolicy {
    /// Tasks replaced at once after the canaries.
    pub batch_size: u32,
    /// Tasks replaced first, on their own; with `manual_gate` the rest wait for `promote`.
    pub canary: u32,
    /// A batch must stay healthy this long before the next one starts.
    pub min_healthy_time_ms: u64,
    /// A batch that is not healthy within this time fails the rollout.
    pub healthy_deadline_ms: u64,
    /// On failure, move the tasks already replaced back to the previous version.
    pub auto_rollback: bool,
    /// Wait for `promote` after the canaries.
    pub manual_gate: bool,
    /// `canary_weight:` the share of the route's requests the canaries take while the canary
    /// phase lasts, in basis points (10% is 1000). `None`: spread over every task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight_bp: Option<u32>,
    /// `analysis:` the canary phase is judged by the canaries' traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy {
            batch_size: 1,
            canary: 0,
            min_healthy_time_ms: 0,
            healthy_deadline_ms: 60_000,
            auto_rollback: false,
            manual_gate: false,
            canary_weight_bp: None,
            analysis: None,
        }
    }
}

/// `update.analysis:` one measurement per `interval` of the canaries' requests through the
/// routers (and of their logs); `checks` passing measurements promote, more than
/// `failure_limit` failing ones roll back, and too few requests leave a measurement
/// inconclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CanaryAnalysis {
    pub interval_ms: u64,
    pub checks: u32,
    pub failure_limit: u32,
    pub min_requests: u64,
    /// The lowest share of non-5xx answers (connection failures count as failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<Threshold>,
    /// The highest 99th percentile of the time to the answer's headers, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99: Option<Threshold>,
    /// Also no worse than the stable version: a success rate at most
    /// [`CanaryAnalysis::STABLE_RATE_MARGIN_BP`] below the stable one's, and a p99 at most
    /// [`CanaryAnalysis::STABLE_LATENCY_FACTOR`] times the stable one's.
    #[serde(default)]
    pub relative_to_stable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_errors: Option<LogErrorLimit>,
}

impl CanaryAnalysis {
    pub const DEFAULT_INTERVAL_MS: u64 = 30_000;
    pub const DEFAULT_CHECKS: u32 = 5;
    pub const DEFAULT_FAILURE_LIMIT: u32 = 1;
    pub const DEFAULT_MIN_REQUESTS: u64 = 20;
    /// `relative_to_stable`: the canary's success rate may be this much lower (1 point).
    pub const STABLE_RATE_MARGIN_BP: u32 = 100;
    /// `relative_to_stable`: the canary's p99 may be this many times the stable one's.
    pub const STABLE_LATENCY_FACTOR: f64 = 1.5;
}

/// A bound a measure must stay within: `>= 99%` (a success rate in basis points) or
/// `< 500ms` (a latency in milliseconds). `inclusive`: the bound itself passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Threshold {
    pub value: u64,
    pub inclusive: bool,
}

/// `analysis.log_errors:` lines matching `pattern` in the canaries' logs, at most
/// `max_per_minute` on average over each interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogErrorLimit {
    pub pattern: String,
    pub max_per_minute: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub memory_bytes: Option<u64>,
    /// CPU limit in billionths of a CPU, as Docker's `NanoCpus`.
    pub nano_cpus: Option<u64>,
}

impl JobSpec {
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|task| task.name == name)
    }
}

impl ServiceSpec {
    pub fn job(&self, name: &str) -> Option<&JobSpec> {
        self.jobs.iter().find(|job| job.name == name)
    }
}

impl TaskSpec {
    /// A short, stable digest of everything that shapes the container. Two tasks with the same
    /// hash need the same container, so an agent leaves a running container alone when its label
    /// carries the desired hash, whatever version it was created for.
    pub fn config_hash(&self) -> String {
        // serde_json writes struct fields in declaration order and maps sorted (BTreeMap and
        // serde_json::Map without `preserve_order`), so the encoding is canonical. Placement
        // says where, not what: it is left out.
        let encoded = if self.placement.is_unrestricted() {
            serde_json::to_vec(self)
        } else {
            serde_json::to_vec(&TaskSpec {
                placement: Placement::default(),
                ..self.clone()
            })
        }
        .expect("a task spec always serializes");
        let digest = Sha256::digest(&encoded);
        hex::encode(&digest[..6])
    }
}
