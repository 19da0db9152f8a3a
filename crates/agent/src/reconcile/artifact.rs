//! A task's artifact, got before anything of its old container is touched: the download (or a
//! cache hit) happens while the old container still serves, and an artifact that cannot be had
//! (a wrong checksum, a missing version) fails the new container without stopping the old one.
//! While such a task backs off, its old container is not stopped either; a rollout waiting for
//! the task fails on its deadline, and its rollback finds the old container still running.

use cj_api::agent::{Assignment, Phase};
use cj_runtime::ContainerRuntime;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::Agent;
use crate::artifacts::CachedArtifact;
use crate::observe::lock;
use crate::plan::Action;
use crate::seed;

/// Whether `actions` start replacing or creating the task's container.
fn replaces_or_creates(actions: &[Action]) -> bool {
    actions.iter().any(|action| {
        matches!(
            action,
            Action::Create | Action::Stop { .. } | Action::Drain { .. }
        )
    })
}

impl<R: ContainerRuntime> Agent<R> {
    /// While the task backs off from an artifact it could not get, its old container stays:
    /// the stops (and drains) of the plan are dropped, before the routers hear of any.
    pub(super) fn keep_old_while_artifact_fails(
        &self,
        assignment: &Assignment,
        actions: &mut Vec<Action>,
    ) {
        if assignment.spec.artifact.is_none() || actions.contains(&Action::Create) {
            return;
        }
        let failed = lock(&self.memory).artifact_failed.get(&assignment.key)
            == Some(&assignment.config_hash);
        if failed {
            actions.retain(|action| !matches!(action, Action::Stop { .. } | Action::Drain { .. }));
        }
    }

    /// The task's artifact in the host's cache, when `actions` replace or create its container;
    /// `Ok(None)` when it has none or nothing is replaced. On failure the task has failed (the
    /// error is when to look again) and none of the actions may be carried out.
    pub(super) async fn artifact_before_actions(
        &self,
        assignment: &Assignment,
        actions: &[Action],
    ) -> Result<Option<CachedArtifact>, Instant> {
        let Some(artifact) = &assignment.spec.artifact else {
            return Ok(None);
        };
        if !replaces_or_creates(actions) {
            return Ok(None);
        }
        let key = &assignment.key;
        let shown = seed::shown(&artifact.url);
        self.phase(
            key,
            &assignment.config_hash,
            Phase::FetchingArtifact { url: shown.clone() },
        );
        match self.artifacts.get(&artifact.url, &artifact.sha256).await {
            Ok(cached) => {
                let mut memory = lock(&self.memory);
                memory.artifact_failed.remove(key);
                if let Some(took) = cached.fetched_in {
                    tracing::info!(task = %key, artifact = shown, bytes = cached.bytes, seconds = took.as_secs_f64(), "artifact fetched");
                    // Told with the container that is created with it, maybe in a later pass.
                    memory.artifact_notes.insert(key.clone(), cached.note());
                }
                Ok(Some(cached))
            }
            Err(cause) => {
                lock(&self.memory)
                    .artifact_failed
                    .insert(key.clone(), assignment.config_hash.clone());
                Err(self.failed(assignment, format!("artifact {shown}: {cause}")))
            }
        }
    }

    /// Unpacks `artifact` into the created container at the artifact's `path` (made first, with
    /// its parents, when the image lacks it); the error is the task's reason.
    pub(super) async fn unpack_artifact(
        &self,
        assignment: &Assignment,
        container_id: &str,
        artifact: CachedArtifact,
    ) -> Result<(), String> {
        let Some(spec) = &assignment.spec.artifact else {
            return Ok(());
        };
        let shown = seed::shown(&spec.url);
        self.phase(
            &assignment.key,
            &assignment.config_hash,
            Phase::UnpackingArtifact {
                path: spec.path.clone(),
            },
        );
        let directories = crate::artifacts::directories_tar(&spec.path);
        if !directories.is_empty() {
            let archive = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(bytes::Bytes::from(directories))
            });
            self.runtime
                .upload_archive(container_id, "/", archive.boxed())
                .await
                .map_err(|error| format!("artifact {shown}: cannot make {}: {error}", spec.path))?;
        }
        let file = tokio::fs::File::from_std(artifact.file);
        let archive = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
        self.runtime
            .upload_archive(container_id, &spec.path, archive.boxed())
            .await
            .map_err(|error| {
                format!(
                    "artifact {shown}: cannot unpack into {}: {error}",
                    spec.path
                )
            })
    }
}
