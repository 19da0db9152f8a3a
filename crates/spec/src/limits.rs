//! The bounds every accepted config stays within, each with the reason for it.
//!
//! A config comes from a user (or a script) and ends up in container names, store keys, Docker
//! API calls and the agents' timers, so every number, name and size is bounded at push, where the
//! error can point at the line, rather than failing somewhere later. Other crates may rely on an
//! accepted [`crate::ServiceSpec`] staying within these bounds.

/// Largest config file accepted, in bytes. A service file is a few kilobytes; the bound keeps the
/// time and memory parsing may take small whatever a client sends.
pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// Longest name of a service, job, task or host: a DNS label's limit. Names become parts of
/// container names (`TASK_SERVICE_ENV_UNIXTIME`), store keys and, later, host names in routes.
pub const MAX_NAME_LEN: usize = 63;

/// Most jobs in one service: far more than a service needs, and it keeps the whole-file checks
/// (duplicates, dependencies, cycles) fast.
pub const MAX_JOBS: usize = 1000;

/// Most tasks in one service, counting those made by `instances` and `hosts`.
pub const MAX_TASKS: usize = 1000;

/// Most tasks one job may ask for with `instances`.
pub const MAX_INSTANCES: u32 = 1000;

/// Most bytes of settings (environment, command, Docker fields) all tasks of a service hold
/// together once job defaults are copied into every task: a job with a large environment and
/// many instances must not make a resolved spec of gigabytes.
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;

/// `check.interval`: probing more often than 10 times a second only loads the task; a check
/// that runs less than hourly does not watch anything.
pub const MIN_INTERVAL_MS: u64 = 100;
pub const MAX_INTERVAL_MS: u64 = 60 * 60 * 1000;

/// `check.timeout`: a probe that needs more than 10 minutes to answer is not a health check.
pub const MIN_TIMEOUT_MS: u64 = 100;
pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// `check.start_period`: failures in this time after a start do not count; an hour covers slow
/// starts such as database recovery.
pub const MAX_START_PERIOD_MS: u64 = 60 * 60 * 1000;

/// `check.retries`: consecutive failures before a task is unhealthy.
pub const MIN_RETRIES: u32 = 1;
pub const MAX_RETRIES: u32 = 100;

/// `update.min_healthy_time`: how long a batch must stay healthy before the next one starts.
pub const MAX_MIN_HEALTHY_TIME_MS: u64 = 60 * 60 * 1000;

/// `update.healthy_deadline`: a batch must be healthy within this time; a rollout that waits
/// more than a day for one batch has failed.
pub const MIN_HEALTHY_DEADLINE_MS: u64 = 1000;
pub const MAX_HEALTHY_DEADLINE_MS: u64 = 24 * 60 * 60 * 1000;

/// `update.batch_size` and `update.canary`: no more than a service's tasks.
pub const MIN_BATCH_SIZE: u32 = 1;
pub const MAX_BATCH_SIZE: u32 = MAX_TASKS as u32;
pub const MAX_CANARY: u32 = MAX_TASKS as u32;

/// `update.analysis.checks` and `failure_limit`: a canary judged by more than 100 measurements
/// is a canary nobody is watching.
pub const MAX_ANALYSIS_CHECKS: u32 = 100;
/// `update.analysis.min_requests` and `log_errors.max_per_minute`.
pub const MAX_ANALYSIS_REQUESTS: u32 = 1_000_000;
/// `update.analysis.interval`: the routers report every 2 s, so a shorter interval measures
/// nothing; an hour per measurement is as long as anyone waits for a verdict.
pub const MIN_ANALYSIS_INTERVAL_MS: u64 = 2_000;
pub const MAX_ANALYSIS_INTERVAL_MS: u64 = 60 * 60 * 1000;
/// `update.analysis.log_errors.pattern`: a regular expression, kept small.
pub const MAX_LOG_PATTERN_BYTES: usize = 1024;

/// `resources.memory`: Docker refuses limits below 6 MiB; 16 TiB is more than any host has, and
/// anything larger is a typo (or an overflow).
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;
pub const MAX_MEMORY_BYTES: u64 = 16 << 40;

/// `resources.cpu`: below a hundredth of a CPU the limit rounds to nothing in Docker's CFS
/// quota; 1024 is the largest CPU count Linux hosts commonly have.
pub const MIN_CPUS: f64 = 0.01;
pub const MAX_CPUS: f64 = 1024.0;

/// Most environment variables of one task.
pub const MAX_ENV_VARS: usize = 1000;

/// Longest environment variable name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;

/// Most bytes of a task's whole environment (every `NAME=value`): Linux refuses to start a
/// process whose single environment string exceeds 128 KiB, and a larger environment is a file
/// that belongs in a mount.
pub const MAX_ENV_BYTES: usize = 128 * 1024;

/// Most arguments of a command (and of an `exec` check).
pub const MAX_COMMAND_ARGS: usize = 1000;

/// Most bytes of a command's arguments together, as for the environment.
pub const MAX_COMMAND_BYTES: usize = 128 * 1024;

/// Most bytes (roughly, as JSON) of one `docker_hostconfig` or `docker_config` section.
pub const MAX_DOCKER_FIELDS_BYTES: usize = 64 * 1024;

/// Longest `check.http` target (a path or a URL), as browsers and proxies commonly accept.
pub const MAX_HTTP_TARGET_LEN: usize = 2048;

/// Longest image name (`[REGISTRY/]REPOSITORY`), as Docker's reference grammar says.
pub const MAX_IMAGE_NAME_LEN: usize = 255;

/// `drain_timeout`: how long a routed task keeps serving after it leaves the routers' pool
/// before it is stopped. Requests in flight finish in seconds; a task held for more than ten
/// minutes slows every rollout and `down` by that much.
pub const MAX_DRAIN_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// `route: { path }`: the longest path prefix. Paths name an API's version or a section of a
/// site; a prefix longer than this is a full URL pasted by mistake.
pub const MAX_ROUTE_PATH_LEN: usize = 256;

/// `route: { timeout }`: the longest a backend may take to start answering. A request held
/// open longer than an hour is a stream, which needs no timeout at all.
pub const MAX_ROUTE_TIMEOUT_MS: u64 = 60 * 60 * 1000;

/// `route: { max_body }`: the largest request body a limit may allow; above it, leave the
/// limit out.
pub const MAX_ROUTE_BODY_BYTES: u64 = 1 << 40;

/// Longest volume name. The runtime names each Docker volume after the environment, service,
/// task and this name, and Docker volume names become directory names on the host, so the name
/// is short and holds none of the separators (`_`, `.`) the parts are joined with.
pub const MAX_VOLUME_NAME_LEN: usize = 40;

/// Most volumes of one task: each is a Docker volume created per task and environment, and
/// seeding one unpacks a tarball before the container starts.
pub const MAX_VOLUMES: usize = 32;

/// Longest `mount` path or `seed` (a host path or an http(s) URL), as Linux (PATH_MAX) and
/// common HTTP servers accept.
pub const MAX_VOLUME_PATH_LEN: usize = 2048;

/// Longest `artifact.path`: the agent makes the directory with a tar of plain (ustar) entries,
/// whose names hold at most 100 bytes.
pub const MAX_ARTIFACT_PATH_LEN: usize = 100;

/// Longest image written as a template: an image reference is at most about 460 bytes (name,
/// tag and digest), and a template of one names a few variables besides.
pub const MAX_IMAGE_TEMPLATE_LEN: usize = 1024;

/// Longest template: a value holding `{{`, `{%` or `{#` is read as one. Templates are short
/// values; the template engine counts a template's columns in 16 bits.
pub const MAX_TEMPLATE_BYTES: usize = 32 * 1024;

/// Longest value a template renders to. Templates show values that exist already (names,
/// variables, addresses), so a rendered value is short; the bound keeps rendering a file for
/// every task of an environment small whatever the variables hold.
pub const MAX_RENDERED_BYTES: usize = 128 * 1024;

/// YAML nesting accepted: the deepest a service file needs is about ten levels (a Docker
/// field's value inside a task); the bound protects the parser's stack and time.
pub const MAX_YAML_DEPTH: usize = 32;

/// YAML values (scalars, lists, mappings) accepted in one file, far above what a 1 MiB file of
/// real settings holds.
pub const MAX_YAML_NODES: usize = 200_000;

/// YAML aliases (`*NAME`) accepted in one file. Each alias copies its anchor's value, so aliases
/// can multiply a small file into a huge one; a service file needs a few, for shared settings.
pub const MAX_YAML_ALIASES: usize = 100;

/// Most problems reported for one file; the rest are counted, so a broken generated file does
/// not produce megabytes of errors.
pub const MAX_REPORTED_ERRORS: usize = 100;
