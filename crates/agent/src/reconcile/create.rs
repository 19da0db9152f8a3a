//! Creating a task's container: its image (pulled when missing), its volumes (created when
//! missing), the container, and, for a volume this attempt created that has a seed, the seed
//! unpacked into it before the container first starts; then the task's artifact, if it has one,
//! unpacked into the container too.
//!
//! A volume is filled exactly once: only when it is new. So whatever stops a seeding half-way
//! must leave no such volume behind: a failed attempt removes its container and every new
//! volume not yet seeded, and a container left in `created` by an agent that stopped mid-way
//! carries the `seeding` label, by which the next pass undoes it (`undo_unfinished_seeds`). A
//! container made for an artifact carries the `artifact` label: one still in `created` may hold
//! part of it, and is removed the same way.

use std::collections::BTreeMap;

use cj_api::agent::{AgentReport, Assignment, ContainerEvent, ContainerEventKind, Phase, TaskKey};
use cj_runtime::{ContainerRuntime, CreateRequest, RuntimeError, VolumeMount, labels};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Agent, Failure, now_rfc3339};
use crate::artifacts::CachedArtifact;
use crate::naming::{container_name, volume_name};
use crate::observe::lock;
use crate::seed;

/// One of a task's volumes, as this attempt found it.
struct TaskVolume {
    /// Its name in the config.
    name: String,
    mount: VolumeMount,
    /// Its seed, when this attempt created it and it has one: to be unpacked before the start.
    seed: Option<String>,
    /// The snapshot to fill it from instead, when this attempt created it for one.
    snapshot: Option<super::restore::SnapshotFile>,
}

impl TaskVolume {
    /// Something is to be unpacked into it before the start.
    fn to_fill(&self) -> bool {
        self.seed.is_some() || self.snapshot.is_some()
    }
}

impl<R: ContainerRuntime> Agent<R> {
    /// `artifact`: the task's artifact, got before the old container was touched (fetched now
    /// if not).
    pub(super) async fn create_and_start(
        &self,
        assignment: &Assignment,
        artifact: Option<CachedArtifact>,
    ) -> Result<(), Failure> {
        let key = &assignment.key;
        let hash = &assignment.config_hash;
        let Some(image) = assignment.spec.image.clone() else {
            return Err(RuntimeError::InvalidConfig(format!("task {key} has no image")).into());
        };
        if !self.runtime.image_present(&image).await? {
            self.phase(
                key,
                hash,
                Phase::Pulling {
                    image: image.clone(),
                },
            );
            self.runtime
                .pull(&image, |line| tracing::debug!(task = %key, line, "pull"))
                .await?;
        }
        let artifact = match (&assignment.spec.artifact, artifact) {
            (Some(spec), None) => Some(self.artifacts.get(&spec.url, &spec.sha256).await.map_err(
                |cause| Failure::Artifact(format!("artifact {}: {cause}", seed::shown(&spec.url))),
            )?),
            (_, artifact) => artifact,
        };
        let artifact_note = artifact.as_ref().map(|artifact| {
            lock(&self.memory)
                .artifact_notes
                .remove(key)
                .unwrap_or_else(|| artifact.note())
        });
        self.phase(key, hash, Phase::Creating);
        let volumes = self.ensure_volumes(assignment).await?;
        let to_seed: Vec<&TaskVolume> = volumes.iter().filter(|v| v.to_fill()).collect();
        let created = self
            .create(assignment, &image, &volumes, artifact_note)
            .await;
        let container_id = match created {
            Ok(id) => id,
            Err(error) => {
                self.drop_volumes(&to_seed).await;
                return Err(error.into());
            }
        };
        for (done, volume) in to_seed.iter().enumerate() {
            if let Err(reason) = self.seed(assignment, &container_id, volume).await {
                if let Err(error) = self.stop_and_remove(&container_id, false).await {
                    tracing::warn!(%error, container_id, "cannot remove a container whose seeding failed");
                }
                // The volumes seeded already are complete; the rest are seeded next time.
                self.drop_volumes(&to_seed[done..]).await;
                return Err(Failure::Seed(reason));
            }
        }
        if let Some(artifact) = artifact
            && let Err(reason) = self
                .unpack_artifact(assignment, &container_id, artifact)
                .await
        {
            if let Err(error) = self.stop_and_remove(&container_id, false).await {
                tracing::warn!(%error, container_id, "cannot remove a container whose artifact was not unpacked");
            }
            return Err(Failure::Artifact(reason));
        }
        Ok(self.start(key, hash, &container_id).await?)
    }

    /// Creates the task's missing volumes. On failure, the new ones that would have been
    /// seeded are removed again.
    async fn ensure_volumes(&self, assignment: &Assignment) -> Result<Vec<TaskVolume>, Failure> {
        let key = &assignment.key;
        let mut volumes: Vec<TaskVolume> = Vec::new();
        for spec in &assignment.spec.volumes {
            let name = volume_name(&spec.name, key, &self.config.cluster);
            let mut volume_labels = self.task_labels(key);
            volume_labels.insert(labels::VOLUME.to_owned(), spec.name.clone());
            let source = assignment.volume_sources.get(&spec.name);
            if let Some(source) = source {
                volume_labels.insert(labels::RESTORED_FROM.to_owned(), source.snapshot.clone());
            }
            let prepared = match source {
                Some(source) => self.prepare_restore(key, &spec.name, &name, source).await,
                None => Ok(None),
            };
            let outcome = match prepared {
                Ok(snapshot) => match self.runtime.create_volume(&name, &volume_labels).await {
                    Ok(created) => Ok((created, snapshot)),
                    Err(error) => Err(Failure::from(error)),
                },
                Err(error) => Err(error),
            };
            let (created, snapshot) = match outcome {
                Ok(pair) => pair,
                Err(error) => {
                    let seeded: Vec<&TaskVolume> = volumes.iter().filter(|v| v.to_fill()).collect();
                    self.drop_volumes(&seeded).await;
                    return Err(error);
                }
            };
            if created {
                tracing::info!(task = %key, volume = name, "volume created");
            }
            volumes.push(TaskVolume {
                name: spec.name.clone(),
                mount: VolumeMount {
                    volume: name,
                    path: spec.mount.clone(),
                },
                seed: spec.seed.clone().filter(|_| created && snapshot.is_none()),
                snapshot: snapshot.filter(|_| created),
            });
        }
        Ok(volumes)
    }

    /// Creates the container (not started) and reports it, with `note` (where its artifact
    /// came from) for the history; returns its id.
    async fn create(
        &self,
        assignment: &Assignment,
        image: &str,
        volumes: &[TaskVolume],
        note: Option<String>,
    ) -> Result<String, RuntimeError> {
        let key = &assignment.key;
        let mut labels = self.task_labels(key);
        labels.extend([
            (labels::VERSION.to_owned(), assignment.version.to_string()),
            (
                labels::CONFIG_HASH.to_owned(),
                assignment.config_hash.clone(),
            ),
            (labels::HOST.to_owned(), assignment.declared_host.clone()),
            (labels::DRAIN_MS.to_owned(), assignment.drain_ms.to_string()),
        ]);
        let seeding: Vec<&str> = volumes
            .iter()
            .filter(|v| v.to_fill())
            .map(|v| v.mount.volume.as_str())
            .collect();
        if !seeding.is_empty() {
            labels.insert(labels::SEEDING.to_owned(), seeding.join(","));
        }
        if let Some(artifact) = &assignment.spec.artifact {
            labels.insert(labels::ARTIFACT.to_owned(), artifact.sha256.clone());
        }
        let mounts: Vec<VolumeMount> = volumes.iter().map(|v| v.mount.clone()).collect();
        let unix_now = OffsetDateTime::now_utc().unix_timestamp();
        let mut attempt = 0;
        let (container_id, name) = loop {
            let name = container_name(key, unix_now, attempt);
            let request = CreateRequest {
                name: name.clone(),
                image: image.to_owned(),
                task: assignment.spec.clone(),
                labels: labels.clone(),
                mounts: mounts.clone(),
            };
            match self.runtime.create(&request).await {
                Ok(id) => break (id, name),
                Err(RuntimeError::NameConflict(_)) if attempt < 20 => attempt += 1,
                Err(error) => return Err(error),
            }
        };
        self.report(AgentReport::Container {
            host: self.config.host.clone(),
            event: ContainerEvent {
                kind: ContainerEventKind::Created,
                key: key.clone(),
                container_id: container_id.clone(),
                container_name: name,
                image: image.to_owned(),
                version: assignment.version,
                config_hash: assignment.config_hash.clone(),
                host: self.config.host.clone(),
                at: now_rfc3339(),
                exit_code: None,
                detail: note,
            },
        });
        Ok(container_id)
    }

    /// Unpacks a new volume's seed into it, through the created container; the error is the
    /// task's reason: `seed SOURCE for volume NAME: CAUSE`.
    async fn seed(
        &self,
        assignment: &Assignment,
        container_id: &str,
        volume: &TaskVolume,
    ) -> Result<(), String> {
        if let Some(snapshot) = &volume.snapshot {
            let key = &assignment.key;
            let phase = Phase::Seeding {
                volume: volume.name.clone(),
            };
            self.phase(key, &assignment.config_hash, phase);
            let started = Instant::now();
            let archive = snapshot.archive().await?;
            return match self
                .runtime
                .upload_archive(container_id, &volume.mount.path, archive)
                .await
            {
                Ok(()) => {
                    let seconds = started.elapsed().as_secs_f64();
                    tracing::info!(task = %key, volume = volume.name, snapshot = snapshot.id, seconds, "volume filled from a snapshot");
                    Ok(())
                }
                Err(error) => Err(format!(
                    "snapshot {} for volume {}: {error}",
                    snapshot.id, volume.name
                )),
            };
        }
        let Some(source) = volume.seed.as_deref() else {
            return Ok(());
        };
        let key = &assignment.key;
        self.phase(
            key,
            &assignment.config_hash,
            Phase::Seeding {
                volume: volume.name.clone(),
            },
        );
        let started = Instant::now();
        let result = match seed::open(&self.seed_http, source).await {
            Ok(seed) => {
                let read_error = seed.read_error.clone();
                let uploaded = self
                    .runtime
                    .upload_archive(container_id, &volume.mount.path, seed.archive)
                    .await;
                // A broken source shows to the engine as a request cut short: the source's
                // own error says more.
                uploaded.map_err(|error| {
                    lock(&read_error)
                        .take()
                        .unwrap_or_else(|| error.to_string())
                })
            }
            Err(reason) => Err(reason),
        };
        let shown = seed::shown(source);
        match result {
            Ok(()) => {
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(task = %key, volume = volume.name, seed = shown, seconds, "volume seeded");
                Ok(())
            }
            Err(cause) => Err(format!("seed {shown} for volume {}: {cause}", volume.name)),
        }
    }

    /// Removes volumes this attempt created but did not fill, so the next attempt creates and
    /// seeds them again.
    async fn drop_volumes(&self, volumes: &[&TaskVolume]) {
        for volume in volumes {
            if let Err(error) = self.runtime.remove_volume(&volume.mount.volume).await {
                tracing::warn!(%error, volume = volume.mount.volume, "cannot remove a volume that was not seeded; it stays unseeded");
            }
        }
    }

    /// The labels saying whose a container or volume is.
    fn task_labels(&self, key: &TaskKey) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::CLUSTER.to_owned(), self.config.cluster.clone()),
            (labels::ENV.to_owned(), key.env.clone()),
            (labels::SERVICE.to_owned(), key.service.clone()),
            (labels::JOB.to_owned(), key.job.clone()),
            (labels::TASK.to_owned(), key.task.clone()),
        ])
    }
}
