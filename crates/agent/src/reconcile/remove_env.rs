//! Removing what an environment left on this host, on the server's request
//! ([`cj_api::agent::link::AgentRequest::RemoveEnv`]): its containers that no assignment wants
//! and, unless asked to keep them, its volumes (the one thing the loop never removes).
//!
//! It runs beside the loop and shares its memory: a container already leaving keeps its drain
//! (never drained twice), and stops made here are recorded as stops, not deaths.

use std::collections::{BTreeMap, HashSet};

use cj_api::agent::link::RemoveEnvOutcome;
use cj_api::agent::{Assignment, TaskKey};
use cj_api::time::later;
use cj_runtime::{Container, ContainerRuntime, RuntimeError, labels};
use futures_util::future::join_all;
use tokio::time::Instant;

use super::Agent;
use crate::observe::{lock, task_key};

impl<R: ContainerRuntime> Agent<R> {
    /// Removes every container of `env` that no assignment wants (a running one after its drain)
    /// and then, unless `keep_volumes`, every volume of `env` whose task is not assigned here.
    /// `assignments` are the current ones; `None` (none received yet) refuses, as the loop
    /// touches nothing before it knows what is wanted.
    pub(crate) async fn remove_env(
        &self,
        env: &str,
        keep_volumes: bool,
        assignments: Option<&[Assignment]>,
    ) -> Result<RemoveEnvOutcome, String> {
        let Some(assignments) = assignments else {
            return Err(
                "this agent has no assignments yet, so it cannot tell what is wanted".to_owned(),
            );
        };
        let wanted: HashSet<&TaskKey> = assignments
            .iter()
            .map(|a| &a.key)
            .filter(|key| key.env == env)
            .collect();
        let is_wanted = |labels: &BTreeMap<String, String>| {
            task_key(labels).is_some_and(|key| wanted.contains(&key))
        };
        let cluster = self.config.cluster.as_str();
        let of_env = [(labels::CLUSTER, cluster), (labels::ENV, env)];
        let mut outcome = RemoveEnvOutcome::default();
        let mut errors = Vec::new();

        let containers = self
            .runtime
            .list(&of_env)
            .await
            .map_err(|e| e.to_string())?;
        let unwanted: Vec<&Container> = containers
            .iter()
            .filter(|c| !is_wanted(&c.labels))
            .collect();
        // Together, so their drains overlap.
        let removals = join_all(unwanted.iter().map(|c| self.drain_and_remove(c))).await;
        for (container, removed) in unwanted.iter().zip(removals) {
            match removed {
                Ok(()) => outcome.containers_removed.push(container.name.clone()),
                Err(error) => errors.push(format!("container {}: {error}", container.name)),
            }
        }

        let volumes = self
            .runtime
            .list_volumes(&of_env)
            .await
            .map_err(|e| e.to_string())?;
        for volume in volumes {
            if keep_volumes || is_wanted(&volume.labels) {
                outcome.volumes_kept.push(volume.name);
                continue;
            }
            match self.runtime.remove_volume(&volume.name).await {
                Ok(()) => outcome.volumes_removed.push(volume.name),
                Err(error) => errors.push(format!("volume {}: {error}", volume.name)),
            }
        }
        if !errors.is_empty() {
            return Err(format!("could not remove {}", errors.join("; ")));
        }
        outcome.containers_removed.sort();
        outcome.volumes_removed.sort();
        outcome.volumes_kept.sort();
        Ok(outcome)
    }

    /// Stops a running container after its drain (reported leaving at once, unless it already
    /// is) and removes it.
    async fn drain_and_remove(&self, container: &Container) -> Result<(), RuntimeError> {
        let live = container.state.is_live();
        let drain_ms: u64 = container.label(labels::DRAIN_MS).parse().unwrap_or(0);
        if live && drain_ms > 0 {
            let (until, started) = {
                let mut memory = lock(&self.memory);
                match memory.leaving.get(&container.id) {
                    Some(until) => (*until, false),
                    None => {
                        let until =
                            later(Instant::now(), std::time::Duration::from_millis(drain_ms));
                        memory.leaving.insert(container.id.clone(), until);
                        (until, true)
                    }
                }
            };
            if started {
                self.snapshot_now().await;
            }
            tokio::time::sleep_until(until).await;
        }
        self.stop_and_remove(&container.id, live).await
    }
}
