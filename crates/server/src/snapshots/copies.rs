//! `env create --with-data`: fresh snapshots of the source environment's volumes, which the new
//! environment's volumes are filled from when its tasks first start (on whatever host they are
//! placed). The copies are independent: each new volume is its own Docker volume, filled from
//! a tar of the source's, so a write in one never reaches the other.

use std::collections::BTreeMap;

use cj_api::agent::VolumeSource;
use cj_api::envs::CreateEnvRequest;
use cj_api::snapshots::{SnapshotRecord, SnapshotRequest};

use crate::envs::records::TaskVolumeSources;
use crate::error::Failure;
use crate::keys;
use crate::state::{DesiredJob, ServerState};

impl ServerState {
    /// Snapshots the volumes `request.with_data` names in `request.from`, after the checks a
    /// copy makes first (so a copy that would be refused takes no snapshot).
    pub async fn snapshots_for_copy(
        &self,
        request: &CreateEnvRequest,
        by: &str,
    ) -> Result<(BTreeMap<String, TaskVolumeSources>, Vec<SnapshotRecord>), Failure> {
        crate::releases::versions::check_env_name(&request.name)?;
        crate::releases::versions::check_env_name(&request.from)?;
        if self.env_exists(&request.name)? {
            return Err(Failure::Conflict(format!(
                "environment {} already exists; destroy it first with `coding-job env destroy {}`",
                request.name, request.name
            )));
        }
        let wanted = request.with_data.clone().unwrap_or_default();
        let desired: Vec<DesiredJob> =
            self.desired_jobs(&format!("{}{}/", keys::DESIRED_ALL, request.from))?;
        let mut jobs = Vec::new();
        for job in &desired {
            let tasks = self.desired_tasks(job)?;
            if tasks.iter().any(|task| !task.spec.volumes.is_empty()) {
                jobs.push((job, tasks));
            }
        }
        let named = |job: &DesiredJob, name: &str| {
            name == job.job || name == format!("{}/{}", job.service, job.job)
        };
        for name in &wanted {
            if !jobs.iter().any(|(job, _)| named(job, name)) {
                let with: Vec<String> = jobs
                    .iter()
                    .map(|(job, _)| format!("{}/{}", job.service, job.job))
                    .collect();
                return Err(Failure::BadRequest(format!(
                    "--with-data: no job \"{}\" with volumes is up in {} (those with volumes: {})",
                    crate::error::shown(name),
                    request.from,
                    if with.is_empty() {
                        "none".to_owned()
                    } else {
                        with.join(", ")
                    }
                )));
            }
        }
        let mut sources: BTreeMap<String, TaskVolumeSources> = BTreeMap::new();
        let mut taken = Vec::new();
        for (job, tasks) in jobs {
            if !wanted.is_empty() && !wanted.iter().any(|name| named(job, name)) {
                continue;
            }
            for task in tasks {
                for volume in &task.spec.volumes {
                    let snapshot = SnapshotRequest {
                        env: request.from.clone(),
                        task: format!("{}/{}/{}", task.key.service, task.key.job, task.key.task),
                        volume: volume.name.clone(),
                        live: false,
                    };
                    let record = self.take_snapshot(&snapshot, by).await.map_err(|failure| {
                        Failure::Conflict(format!(
                            "--with-data: {failure}; environment {} was not created",
                            request.name
                        ))
                    })?;
                    sources
                        .entry(format!("{}/{}", job.service, job.job))
                        .or_default()
                        .entry(task.key.task.clone())
                        .or_default()
                        .insert(
                            volume.name.clone(),
                            VolumeSource {
                                snapshot: record.id.clone(),
                                sha256: record.sha256.clone(),
                            },
                        );
                    taken.push(record);
                }
            }
        }
        Ok((sources, taken))
    }
}
