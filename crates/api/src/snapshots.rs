//! Volumes and their snapshots: `/v1/volumes`, `/v1/snapshots`.
//!
//! A snapshot is a task's volume as a zstd-compressed tar, made on the task's host by its agent
//! and kept where the server's config says (a directory, or an S3-compatible bucket). Its record
//! in the store says which task and volume it copies, how big it is, its checksum, and how it
//! was made; a snapshot is recorded only once its data is complete and checked.

use serde::{Deserialize, Serialize};

/// The header a snapshot's archive travels with its SHA-256 in (hex), checked on arrival.
pub const SHA256_HEADER: &str = "x-coding-job-sha256";

/// One snapshot, as `volume snapshots` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotRecord {
    /// `snap-` and 16 hex digits.
    pub id: String,
    pub env: String,
    pub service: String,
    pub job: String,
    pub task: String,
    /// The volume's name in the config (`volumes[].name`).
    pub volume: String,
    /// The host whose agent made it (none for one uploaded from a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Bytes of the compressed archive as stored.
    pub size_bytes: u64,
    /// Bytes of the tar inside.
    pub content_bytes: u64,
    /// SHA-256 of the compressed archive, hex.
    pub sha256: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Who asked for it (a token's name, `schedule` for a scheduled one).
    pub created_by: String,
    /// How it was made: `paused` (the task paused for the copy), `live` (copied while the task
    /// ran, so possibly inconsistent), `stopped` (the task was not running), or `file`
    /// (uploaded).
    pub method: String,
    /// How long the task was paused, in milliseconds, for a `paused` snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
    /// The volume's `snapshot.pre` command ran first.
    #[serde(default)]
    pub pre_ran: bool,
}

/// `POST /v1/snapshots`: snapshot one volume of one task.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    pub env: String,
    /// `SERVICE/JOB/TASK`, or a task name that is unique in the environment.
    pub task: String,
    /// The volume's name in the config.
    pub volume: String,
    /// Copy without pausing the task (the copy may be inconsistent).
    #[serde(default)]
    pub live: bool,
}

/// `POST /v1/snapshots/restore`: replace one volume of one task with a snapshot's content, as
/// a one-task reload whose new container starts on the restored volume.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub env: String,
    /// `SERVICE/JOB/TASK`, or a task name that is unique in the environment.
    pub task: String,
    pub volume: String,
    /// The snapshot's id (of any task's volume).
    pub snapshot: String,
    /// Answer with the deployment's progress (newline-delimited JSON) until it ends.
    #[serde(default)]
    pub follow: bool,
}

/// One volume of one task, as `volumes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VolumeRow {
    pub env: String,
    pub service: String,
    pub job: String,
    pub task: String,
    pub volume: String,
    pub mount: String,
    /// The host the task's volume is on (none while the task is not placed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The engine's name of the volume.
    pub docker_name: String,
    /// The seed it was filled from when created, as the config shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// The newest snapshot of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<SnapshotRecord>,
    /// Snapshots kept of it.
    pub snapshots: usize,
}

/// An id for a new snapshot: `snap-` and 16 random hex digits.
pub fn new_snapshot_id() -> String {
    let mut bytes = [0u8; 8];
    // Without the system's randomness, the clock's nanoseconds: ids are checked against the
    // store before use anyway.
    if getrandom::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes = (now.as_nanos() as u64).to_be_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("snap-{hex}")
}

/// A snapshot id as [`new_snapshot_id`] makes them (checked before it names a file or key).
pub fn is_snapshot_id(id: &str) -> bool {
    id.strip_prefix("snap-")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_well_formed_and_differ() {
        let a = new_snapshot_id();
        let b = new_snapshot_id();
        assert!(is_snapshot_id(&a), "{a}");
        assert_ne!(a, b);
        assert!(!is_snapshot_id("snap-../../etc"));
        assert!(!is_snapshot_id("snap-0123"));
    }
}
