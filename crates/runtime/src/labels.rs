//! The labels every container coding-job runs carries. They are the source of truth for what a
//! container is: an agent restarted from nothing rebuilds its view from them alone.

/// Which coding-job installation owns the container, so two installations (or two test runs)
/// sharing one Docker engine never touch each other's containers.
pub const CLUSTER: &str = "coding-job.cluster";
pub const ENV: &str = "coding-job.env";
pub const SERVICE: &str = "coding-job.service";
pub const JOB: &str = "coding-job.job";
pub const TASK: &str = "coding-job.task";
/// The service version the container was created for.
pub const VERSION: &str = "coding-job.version";
/// Digest of the task's configuration; equal hashes mean the container is still right.
pub const CONFIG_HASH: &str = "coding-job.config-hash";
/// The host the task was placed on (its declared `run_on_host`, or the chosen one).
pub const HOST: &str = "coding-job.host";
