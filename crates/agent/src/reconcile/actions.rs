//! Carrying out one task's planned actions, in order, and what stopping and starting a
//! container on purpose involves.

use std::time::Duration;

use cj_api::agent::{Assignment, ObservedContainer, Phase, TaskKey};
use cj_runtime::{ContainerRuntime, RuntimeError};
use tokio::time::Instant;

use super::{Agent, Failure};
use crate::observe::lock;
use crate::plan::Action;

impl<R: ContainerRuntime> Agent<R> {
    /// Carries out one task's actions in order; returns when the task wants another look.
    pub(super) async fn carry_out(
        &self,
        assignment: Option<&Assignment>,
        key: TaskKey,
        containers: Vec<ObservedContainer>,
        actions: Vec<Action>,
    ) -> Option<Instant> {
        let hash = assignment
            .map(|a| a.config_hash.clone())
            .unwrap_or_default();
        // Before any action: an artifact that cannot be had must not cost the old container.
        let mut artifact = match assignment {
            Some(assignment) => match self.artifact_before_actions(assignment, &actions).await {
                Ok(artifact) => artifact,
                Err(wake) => return Some(wake),
            },
            None => None,
        };
        let mut wake: Option<Instant> = None;
        let mut all_done = true;
        for action in actions {
            let result: Result<(), Failure> = match &action {
                Action::Keep { container_id } => {
                    self.phase(
                        &key,
                        &hash,
                        Phase::Running {
                            container_id: container_id.clone(),
                        },
                    );
                    Ok(())
                }
                Action::Create => match assignment {
                    Some(assignment) => self.create_and_start(assignment, artifact.take()).await,
                    None => Ok(()),
                },
                Action::Restart { container_id } => self
                    .start(&key, &hash, container_id)
                    .await
                    .map_err(Into::into),
                Action::WaitBackoff { until } => {
                    let millis = until.saturating_duration_since(Instant::now()).as_millis() as u64;
                    let reason = lock(&self.memory)
                        .last_failure
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| "restarting after the container stopped".to_owned());
                    self.phase(&key, &hash, Phase::BackingOff { millis, reason });
                    wake = Some(*until);
                    Ok(())
                }
                Action::KeepDead {
                    container_id,
                    exit_code,
                } => {
                    let reason = match exit_code {
                        Some(code) => format!(
                            "exited with code {code}; kept for inspection (on_failure: keep)"
                        ),
                        None => "stopped; kept for inspection (on_failure: keep)".to_owned(),
                    };
                    self.phase(
                        &key,
                        &hash,
                        Phase::Kept {
                            container_id: container_id.clone(),
                            reason,
                        },
                    );
                    Ok(())
                }
                Action::RestartUnhealthy { container_id } => {
                    match self.stop_ours(container_id).await {
                        Ok(()) => self.start(&key, &hash, container_id).await,
                        Err(error) => Err(error),
                    }
                    .map_err(Into::into)
                }
                Action::KeepUnhealthy {
                    container_id,
                    detail,
                } => {
                    let reason =
                        format!("unhealthy ({detail}); kept for inspection (on_failure: keep)");
                    self.phase(
                        &key,
                        &hash,
                        Phase::Kept {
                            container_id: container_id.clone(),
                            reason,
                        },
                    );
                    Ok(())
                }
                // Already reported leaving (by the pass, before any action); it serves what it
                // has until the pass that follows its drain stops it. (An assigned task's phase
                // stays that of its wanted container, as for a plain stop.)
                Action::Drain {
                    container_id,
                    until,
                } => {
                    if assignment.is_none() {
                        self.phase(
                            &key,
                            &hash,
                            Phase::Stopping {
                                container_id: container_id.clone(),
                            },
                        );
                    }
                    wake = Some(wake.map_or(*until, |w| w.min(*until)));
                    Ok(())
                }
                Action::Stop { container_id } => {
                    self.stop_ours(container_id).await.map_err(Into::into)
                }
                Action::Remove { container_id } => {
                    let live = containers
                        .iter()
                        .any(|c| &c.id == container_id && c.is_live());
                    if live {
                        self.phase(
                            &key,
                            &hash,
                            Phase::Stopping {
                                container_id: container_id.clone(),
                            },
                        );
                    }
                    self.stop_and_remove(container_id, live)
                        .await
                        .map_err(Into::into)
                }
            };
            if let Err(error) = result {
                tracing::warn!(task = %key, %error, ?action, "action failed");
                wake = Some(match assignment {
                    Some(assignment) => self.failed(assignment, error.to_string()),
                    // Try the removal again soon rather than at the next resync.
                    None => Instant::now() + Duration::from_secs(1),
                });
                all_done = false;
                break;
            }
            if matches!(action, Action::Drain { .. }) {
                all_done = false;
            }
        }
        if assignment.is_none() && all_done {
            self.phase(&key, "", Phase::Removed);
            lock(&self.memory).last_phase.remove(&key);
        }
        wake
    }

    /// Stops a container on purpose: its death is then recorded as a stop, not a failure.
    pub(super) async fn stop_ours(&self, container_id: &str) -> Result<(), RuntimeError> {
        lock(&self.memory)
            .expected_stops
            .insert(container_id.to_owned());
        self.runtime
            .stop(container_id, self.config.stop_grace_seconds)
            .await
    }

    /// Stops (when `live`) and removes a container on purpose.
    pub(super) async fn stop_and_remove(
        &self,
        container_id: &str,
        live: bool,
    ) -> Result<(), RuntimeError> {
        lock(&self.memory)
            .expected_stops
            .insert(container_id.to_owned());
        if live && let Err(error) = self.stop_ours(container_id).await {
            tracing::warn!(%error, container_id, "stop failed; removing by force");
        }
        self.runtime.remove(container_id).await
    }

    pub(super) async fn start(
        &self,
        key: &TaskKey,
        hash: &str,
        container_id: &str,
    ) -> Result<(), RuntimeError> {
        self.phase(key, hash, Phase::Starting);
        self.runtime.start(container_id).await?;
        // Its earlier death is now history: do not let it mask the running container.
        lock(&self.memory).announced_deaths.remove(container_id);
        lock(&self.memory).last_failure.remove(key);
        lock(&self.memory)
            .backoffs
            .entry(key.clone())
            .or_default()
            .record_start(Instant::now());
        self.phase(
            key,
            hash,
            Phase::Running {
                container_id: container_id.to_owned(),
            },
        );
        Ok(())
    }
}
