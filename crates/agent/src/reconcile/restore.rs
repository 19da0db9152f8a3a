//! Volumes filled from a snapshot (`Assignment::volume_sources`): after a restore, or for a
//! task whose volume is new on this host. The volume carries the snapshot's id in its
//! `restored-from` label, so it is filled once per snapshot.
//!
//! Nothing is replaced before the snapshot is here and checked: it is read from the server
//! into a temporary file with its SHA-256 computed on the way, and compared with the one the
//! assignment names. Only then are the task's old containers (stopped: a replacement from a
//! snapshot is always stop-first) and the old volume removed.

use std::io::Write;

use async_compression::tokio::bufread::ZstdDecoder;
use cj_api::agent::{TaskKey, VolumeSource};
use cj_runtime::{ArchiveStream, ContainerRuntime, ContainerState, labels};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{Agent, Failure};
use crate::observe::lock;

/// A snapshot fetched from the server and checked, on this host's disk until used.
pub(super) struct SnapshotFile {
    pub id: String,
    file: tempfile::NamedTempFile,
}

impl<R: ContainerRuntime> Agent<R> {
    /// Where snapshots are read from: the server of the current link, set by the link.
    pub(crate) fn set_snapshot_server(&self, server: crate::snapshot::SnapshotServer) {
        *lock(&self.snapshot_server) = Some(server);
    }

    /// For volume `docker_name` of task `key`, whose config wants it filled from `source`:
    /// `None` when it already holds that snapshot; else the snapshot, fetched and checked, with
    /// the old volume (and the task's stopped containers that mount it) removed.
    pub(super) async fn prepare_restore(
        &self,
        key: &TaskKey,
        volume: &str,
        docker_name: &str,
        source: &VolumeSource,
    ) -> Result<Option<SnapshotFile>, Failure> {
        let cluster = self.config.cluster.as_str();
        let existing = self
            .runtime
            .list_volumes(&[
                (labels::CLUSTER, cluster),
                (labels::ENV, &key.env),
                (labels::SERVICE, &key.service),
                (labels::TASK, &key.task),
                (labels::VOLUME, volume),
            ])
            .await?
            .into_iter()
            .find(|found| found.name == docker_name);
        if existing
            .as_ref()
            .is_some_and(|found| found.label(labels::RESTORED_FROM) == source.snapshot)
        {
            return Ok(None);
        }
        let fetched = self.fetch_snapshot(source).await.map_err(|cause| {
            Failure::Seed(format!(
                "snapshot {} for volume {volume}: {cause}",
                source.snapshot
            ))
        })?;
        if existing.is_some() {
            self.remove_stopped_containers(key, volume).await?;
            self.runtime.remove_volume(docker_name).await?;
            tracing::info!(task = %key, volume = docker_name, snapshot = source.snapshot, "volume removed, to be filled from a snapshot");
        }
        Ok(Some(fetched))
    }

    /// Removes the task's containers on this host, which must all be stopped: a running one
    /// still mounts the volume (the old copy has not stopped yet), so this attempt waits.
    async fn remove_stopped_containers(&self, key: &TaskKey, volume: &str) -> Result<(), Failure> {
        let cluster = self.config.cluster.as_str();
        let containers = self
            .runtime
            .list(&[
                (labels::CLUSTER, cluster),
                (labels::ENV, &key.env),
                (labels::SERVICE, &key.service),
                (labels::TASK, &key.task),
            ])
            .await?;
        if let Some(running) = containers
            .iter()
            .find(|c| matches!(c.state, ContainerState::Running | ContainerState::Paused))
        {
            return Err(Failure::Seed(format!(
                "volume {volume} is still mounted by the running container {}",
                &running.id[..running.id.len().min(12)]
            )));
        }
        for container in containers {
            self.stop_and_remove(&container.id, false).await?;
        }
        Ok(())
    }

    /// The snapshot, from the server into a temporary file, checked against its checksum.
    async fn fetch_snapshot(&self, source: &VolumeSource) -> Result<SnapshotFile, String> {
        let server = lock(&self.snapshot_server)
            .clone()
            .ok_or("this agent is not linked to a server to read it from")?;
        let url = format!(
            "{}/v1/agent/snapshots/{}",
            server.server.trim_end_matches('/'),
            source.snapshot
        );
        let mut request = server.client.get(&url);
        if let Some(token) = &server.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("reading it from the server: {}", error.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("the server answered {}", response.status()));
        }
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|error| format!("no temporary file: {error}"))?;
        let mut hasher = Sha256::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk
                .map_err(|error| format!("reading it from the server: {}", error.without_url()))?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|error| format!("writing it to this host's disk: {error}"))?;
        }
        file.flush()
            .map_err(|error| format!("writing it to this host's disk: {error}"))?;
        let found: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if found != source.sha256 {
            return Err(format!(
                "its data does not match its checksum (expected {}, got {found}); nothing was replaced",
                source.sha256
            ));
        }
        Ok(SnapshotFile {
            id: source.snapshot.clone(),
            file,
        })
    }
}

impl SnapshotFile {
    /// The snapshot's tar, decompressed as it is read.
    pub(super) async fn archive(&self) -> Result<ArchiveStream, String> {
        let file = tokio::fs::File::open(self.file.path())
            .await
            .map_err(|error| format!("reading the fetched snapshot: {error}"))?;
        let decoder = ZstdDecoder::new(tokio::io::BufReader::new(file));
        Ok(tokio_util::io::ReaderStream::with_capacity(decoder, 64 * 1024).boxed())
    }
}
