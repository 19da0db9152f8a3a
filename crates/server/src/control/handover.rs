//! Moving a task off a host that still runs it (`hosts drain`) without a gap, as a rolling
//! update does: placement puts the task on its new host and records the old one in the
//! placement (`handover_from`); publishing assigns the task to both, so the old copy keeps serving
//! while the new one starts. Once the new copy serves (running, not leaving, healthy or without
//! a check: what the routers' table asks), this loop ends the hand-over in the store and
//! publishes again: the old host's assignment no longer holds the task, so its agent takes the
//! old copy out of the routers' pool, drains it and stops it. A hand-over whose old host is gone
//! ends at once (there is nothing left to keep); one whose new copy never serves keeps the old
//! copy running, never leaving the task with none.

use std::sync::Arc;

use crate::control::placement::StoredPlacement;
use crate::control::routes::serves;
use crate::error::Failure;
use crate::keys;
use crate::state::ServerState;

/// Ends each hand-over once its new copy serves: looks again on every agent report, link and
/// publish.
pub async fn run_handover_loop(state: Arc<ServerState>) {
    let mut reports = state.observed.subscribe_changed();
    let mut joined = state.links.subscribe_joined();
    let mut published = state.scheduler.subscribe();
    loop {
        if let Err(error) = state.finish_handovers().await {
            tracing::error!(%error, "cannot end a hand-over");
        }
        tokio::select! {
            changed = reports.changed() => if changed.is_err() { return },
            changed = joined.changed() => if changed.is_err() { return },
            changed = published.changed() => if changed.is_err() { return },
        }
    }
}

impl ServerState {
    async fn finish_handovers(&self) -> Result<(), Failure> {
        let Some(published) = self.scheduler.current() else {
            return Ok(());
        };
        let mut finished = Vec::new();
        for (key, from) in published.handovers() {
            let Some(assignment) = published.assignment_of(key) else {
                continue;
            };
            let to = self.serving_host(&assignment.declared_host);
            let new_copy_serves = self.observed.containers_on(to).iter().any(|container| {
                container.key == *key
                    && container.config_hash == assignment.config_hash
                    && serves(container)
            });
            let old_host_gone = !self.links.is_connected(self.serving_host(from));
            if new_copy_serves || old_host_gone {
                tracing::info!(task = %key, from, to, new_copy_serves, "hand-over done");
                finished.push(key.clone());
            }
        }
        if finished.is_empty() {
            return Ok(());
        }
        for key in &finished {
            self.update_json::<StoredPlacement, ()>(&keys::placement(key), |placement| {
                placement.handover_from = None;
                Ok(())
            })?;
        }
        self.assignments_caught_up().await
    }
}
