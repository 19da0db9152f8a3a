//! The labels every container (and volume) coding-job makes carries. They are the source of
//! truth for what a container is: an agent restarted from nothing rebuilds its view from them
//! alone.

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
/// How long a running container stays up, out of the routers' pool, before it is stopped on
/// purpose (milliseconds; the job's drain timeout when it was created). Not part of the
/// container's identity: the config hash alone decides whether a container is right.
pub const DRAIN_MS: &str = "coding-job.drain-ms";
/// On a container created to be seeded: the engine's names of the volumes it was created to
/// fill, comma-separated. The container is started only after every seed is in, so one still
/// in `created` with this label is a seeding that never finished (the agent stopped, or the
/// start failed): its volumes may be partly filled.
pub const SEEDING: &str = "coding-job.seeding";
/// On a container created to run an artifact: its SHA-256. The container is started only after
/// the artifact is unpacked, so one still in `created` with this label may hold part of it.
pub const ARTIFACT: &str = "coding-job.artifact";
/// On a volume: its name in the config (`volumes: - name:`); the cluster, env, service, job and
/// task labels say whose it is.
pub const VOLUME: &str = "coding-job.volume";
/// On a volume filled from a snapshot: the snapshot's id, so it is filled once per snapshot.
pub const RESTORED_FROM: &str = "coding-job.restored-from";
