//! Restoring a task's volume from a snapshot, as a normal rollout step: the snapshot's data is
//! checked first (nothing changes for one that does not match its checksum), the task's
//! desired record is told which snapshot the volume comes from (`volume_sources`), and a
//! one-task reload replaces the container. Its host's agent, creating the new container,
//! sees the volume was not filled from that snapshot, fetches and checks it, removes the old
//! volume and fills a new one before the container starts; the rollout's checks and gates
//! apply as for any reload.

use cj_api::agent::VolumeSource;
use cj_api::snapshots::RestoreRequest;
use cj_api::{Deployment, DeploymentKind};

use crate::error::Failure;
use crate::keys;
use crate::state::{DesiredJob, ServerState};

/// Which desired record a restore marked, and what it held before, to undo the mark when
/// the deployment cannot start.
pub struct RestoreMark {
    key: String,
    task: String,
    volume: String,
    before: Option<VolumeSource>,
}

impl ServerState {
    /// Marks the task's volume to be filled from the snapshot and plans the reload that does
    /// it (to be started by the caller).
    pub async fn restore_snapshot(
        &self,
        request: &RestoreRequest,
        by: &str,
    ) -> Result<(Deployment, RestoreMark), Failure> {
        let record = self.snapshot_record(&request.snapshot)?;
        let (key, _, _) = crate::edge::api::handlers::one_task(self, &request.env, &request.task)?;
        self.task_volume(&key, &request.volume)?;
        let target = self.snapshots.target()?;
        target
            .verify(&record.id, &record.sha256)
            .await
            .map_err(|reason| {
                Failure::Conflict(format!(
                    "snapshot {}: {reason}; nothing was changed",
                    record.id
                ))
            })?;
        let resolved = self.resolve(
            &request.env,
            &format!("{}/{}/{}", key.service, key.job, key.task),
        )?;
        let deployment = self.plan_deployment(
            &resolved,
            DeploymentKind::Reload,
            resolved.latest.version,
            by,
        )?;
        let desired_key = keys::desired(&key.env, &key.service, &key.job);
        let source = VolumeSource {
            snapshot: record.id.clone(),
            sha256: record.sha256.clone(),
        };
        let updated =
            self.update_json::<DesiredJob, Option<VolumeSource>>(&desired_key, |desired| {
                Ok(desired
                    .volume_sources
                    .entry(key.task.clone())
                    .or_default()
                    .insert(request.volume.clone(), source.clone()))
            })?;
        let Some((_, before)) = updated else {
            return Err(Failure::Conflict(format!(
                "task {key} is not up: its job is down"
            )));
        };
        tracing::info!(task = %key, volume = request.volume, snapshot = record.id, "restore");
        Ok((
            deployment,
            RestoreMark {
                key: desired_key,
                task: key.task.clone(),
                volume: request.volume.clone(),
                before,
            },
        ))
    }

    /// Puts back what a restore's mark replaced.
    pub fn unmark_restore(&self, mark: &RestoreMark) -> Result<(), Failure> {
        self.update_json::<DesiredJob, ()>(&mark.key, |desired| {
            let sources = desired.volume_sources.entry(mark.task.clone()).or_default();
            match &mark.before {
                Some(before) => {
                    sources.insert(mark.volume.clone(), before.clone());
                }
                None => {
                    sources.remove(&mark.volume);
                }
            }
            if sources.is_empty() {
                desired.volume_sources.remove(&mark.task);
            }
            Ok(())
        })?;
        Ok(())
    }
}
