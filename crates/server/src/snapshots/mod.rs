//! Volume snapshots: a task's volume copied by its host's agent, kept on the snapshot target
//! (`target`), recorded in the store (`volume-snapshots/ID`), listed with the volumes they copy
//! (`listing`) and served back (`api`).
//!
//! Taking one: the server checks the task runs and has the volume, gives the snapshot an id and
//! an upload slot, and asks the task's agent to copy the volume (paused, unless live) and `PUT`
//! it to `/v1/agent/snapshots/ID`. The upload is written to the target as it arrives, checked
//! against the checksum the agent computed, and only then recorded: an interrupted snapshot
//! (an agent restart, a full target) leaves no record and no object.

pub mod api;
pub mod copies;
pub mod listing;
pub mod restore;
pub mod target;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use cj_api::agent::link::{AgentRequest, Outcome, SnapshotTaken};
use cj_api::snapshots::{SnapshotRecord, SnapshotRequest, new_snapshot_id};
use cj_store::StoreJson;
use tokio::sync::oneshot;

use crate::base::{lock, now_rfc3339};
use crate::error::Failure;
use crate::state::ServerState;
use target::{SnapshotTarget, Written};

/// The longest a snapshot may take from the request to the agent's answer.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(3 * 3600);

/// The snapshot target and the uploads under way.
#[derive(Default)]
pub struct Snapshots {
    target: Option<SnapshotTarget>,
    /// Snapshot id -> who waits for its data to be written.
    uploads: Mutex<HashMap<String, oneshot::Sender<Result<Written, String>>>>,
}

impl Snapshots {
    pub fn new(target: Option<SnapshotTarget>) -> Snapshots {
        Snapshots {
            target,
            uploads: Mutex::default(),
        }
    }

    pub(crate) fn target(&self) -> Result<&SnapshotTarget, Failure> {
        self.target.as_ref().ok_or_else(|| {
            Failure::Unavailable(
                "this server has no snapshot target (`snapshots:` in its config)".into(),
            )
        })
    }

    /// The waiting side of snapshot `id`'s upload, if one is expected.
    pub(crate) fn take_upload(&self, id: &str) -> Option<oneshot::Sender<Result<Written, String>>> {
        lock(&self.uploads).remove(id)
    }
}

/// Removes an upload slot that nobody filled, however the snapshot ended.
struct UploadSlot<'a> {
    snapshots: &'a Snapshots,
    id: String,
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        lock(&self.snapshots.uploads).remove(&self.id);
    }
}

pub(crate) fn record_key(id: &str) -> String {
    format!("{}{id}", crate::keys::VOLUME_SNAPSHOTS)
}

impl ServerState {
    /// Snapshots one volume of one task; see the module's description.
    pub async fn take_snapshot(
        &self,
        request: &SnapshotRequest,
        by: &str,
    ) -> Result<SnapshotRecord, Failure> {
        let target = self.snapshots.target()?;
        let (key, task, hash) =
            crate::edge::api::handlers::one_task(self, &request.env, &request.task)?;
        let volume = self.task_volume(&key, &request.volume)?;
        let (host, container_id) =
            crate::hosts::exec::running_container(self, &key, &task, hash, None)?;
        self.links.check_connected(&host)?;

        let id = new_snapshot_id();
        let (written_sender, written) = oneshot::channel();
        lock(&self.snapshots.uploads).insert(id.clone(), written_sender);
        let _slot = UploadSlot {
            snapshots: &self.snapshots,
            id: id.clone(),
        };
        tracing::info!(task = %key, volume = volume.name, host, id, live = request.live, "snapshot");
        let asked = AgentRequest::SnapshotVolume {
            container_id,
            mount: volume.mount.clone(),
            pause: !request.live,
            upload: format!("/v1/agent/snapshots/{id}"),
        };
        let outcome = self.links.ask(&host, asked, SNAPSHOT_DEADLINE).await;
        // Whatever the agent says, what reached the target is known by now (the agent answers
        // after its upload ended); an object without a record is removed.
        let written = match written.await {
            Ok(written) => written,
            Err(_) => Err("the agent sent nothing".into()),
        };
        let taken = match outcome {
            Ok(Outcome::Ok(value)) => serde_json::from_value::<SnapshotTaken>(value)
                .map_err(|error| format!("an answer this server does not understand: {error}")),
            Ok(Outcome::Failed { error, .. }) => Err(error),
            Err(failure) => Err(failure.to_string()),
        };
        let (taken, written) = match (taken, written) {
            (Ok(taken), Ok(written)) if taken.sha256 == written.sha256 => (taken, written),
            (taken, written) => {
                let _ = target.delete(&id).await;
                let reason = match (taken, written) {
                    (Err(error), _) => error,
                    (Ok(_), Err(error)) => error,
                    (Ok(taken), Ok(written)) => format!(
                        "the data that arrived does not match the agent's checksum ({} against {})",
                        written.sha256, taken.sha256
                    ),
                };
                return Err(Failure::BadGateway(format!(
                    "snapshot of volume {} of task {key} on {host} failed: {reason}",
                    volume.name
                )));
            }
        };
        let record = SnapshotRecord {
            id: id.clone(),
            env: key.env.clone(),
            service: key.service.clone(),
            job: key.job.clone(),
            task: key.task.clone(),
            volume: volume.name.clone(),
            host: Some(host),
            size_bytes: written.size_bytes,
            content_bytes: taken.content_bytes,
            sha256: written.sha256,
            created_at: now_rfc3339(),
            created_by: by.to_owned(),
            method: if request.live { "live" } else { "paused" }.into(),
            paused_ms: taken.paused_ms,
            pre_ran: false,
        };
        if let Err(error) = self.store.put_json(&record_key(&id), &record) {
            let _ = target.delete(&id).await;
            return Err(error.into());
        }
        Ok(record)
    }

    /// Volume `name` of the task, as its job is desired now, or why there is none.
    fn task_volume(
        &self,
        key: &cj_api::agent::TaskKey,
        name: &str,
    ) -> Result<cj_spec::VolumeSpec, Failure> {
        let spec = self.task_spec(key)?;
        if let Some(volume) = spec.volumes.iter().find(|v| v.name == name) {
            return Ok(volume.clone());
        }
        let names: Vec<&str> = spec.volumes.iter().map(|v| v.name.as_str()).collect();
        Err(Failure::NotFound(match names.is_empty() {
            true => format!("task {key} has no volumes"),
            false => format!(
                "task {key} has no volume \"{}\" (it has: {})",
                crate::error::shown(name),
                names.join(", ")
            ),
        }))
    }

    /// The task's rendered spec, as its job is desired now.
    fn task_spec(&self, key: &cj_api::agent::TaskKey) -> Result<cj_spec::TaskSpec, Failure> {
        let desired: Option<crate::state::DesiredJob> = self
            .store
            .get_json(&crate::keys::desired(&key.env, &key.service, &key.job))?;
        let desired = desired
            .ok_or_else(|| Failure::Conflict(format!("task {key} is not up: its job is down")))?;
        self.desired_tasks(&desired)?
            .into_iter()
            .find(|task| &task.key == key)
            .map(|task| task.spec)
            .ok_or_else(|| Failure::NotFound(format!("no task {key}")))
    }

    /// Every snapshot record, newest first.
    pub fn snapshot_records(&self) -> Result<Vec<SnapshotRecord>, Failure> {
        let mut records: Vec<SnapshotRecord> =
            self.store.range_json(crate::keys::VOLUME_SNAPSHOTS)?;
        records.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(records)
    }

    pub fn snapshot_record(&self, id: &str) -> Result<SnapshotRecord, Failure> {
        if !cj_api::snapshots::is_snapshot_id(id) {
            return Err(Failure::BadRequest(format!(
                "\"{}\" is not a snapshot id (snap- and 16 hex digits)",
                crate::error::shown(id)
            )));
        }
        self.store
            .get_json(&record_key(id))?
            .ok_or_else(|| Failure::NotFound(format!("no snapshot {id}")))
    }
}
