//! The engine's container events: what they tell the history (started, died, stopped,
//! removed) and whether a pass should look again. The pass itself reads the state anew.

use std::sync::Arc;
use std::time::Duration;

use cj_api::agent::{AgentReport, ContainerEvent, ContainerEventKind};
use cj_runtime::{ContainerRuntime, RuntimeEvent, labels};
use futures_util::StreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Agent, now_rfc3339};
use crate::observe::{lock, task_key};

fn nanos_rfc3339(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(now_rfc3339)
}

impl<R: ContainerRuntime> Agent<R> {
    /// Handles one engine event; returns whether a reconcile pass is needed.
    pub(super) fn handle_event(&self, event: RuntimeEvent) -> bool {
        lock(&self.inspect_cache).forget(&event.container_id);
        let Some(key) = task_key(&event.labels) else {
            return false;
        };
        // A stopped container's next run is judged afresh. (Not on "start": that event can
        // arrive after the new run's probe has already judged it.)
        if matches!(event.action.as_str(), "die" | "destroy") {
            self.forget_health(&event.container_id);
        }
        let kind = match event.action.as_str() {
            "start" => {
                lock(&self.memory)
                    .announced_deaths
                    .remove(&event.container_id);
                ContainerEventKind::Started
            }
            "die" => {
                let mut memory = lock(&self.memory);
                memory
                    .announced_deaths
                    .insert(event.container_id.clone(), event.exit_code);
                if memory.expected_stops.remove(&event.container_id) {
                    ContainerEventKind::Stopped
                } else {
                    let is_current = memory.assigned_hashes.get(&key).map(String::as_str)
                        == event.labels.get(labels::CONFIG_HASH).map(String::as_str);
                    if is_current {
                        memory
                            .backoffs
                            .entry(key.clone())
                            .or_default()
                            .record_failure(Instant::now());
                    }
                    ContainerEventKind::Died
                }
            }
            "destroy" => {
                let mut memory = lock(&self.memory);
                memory.expected_stops.remove(&event.container_id);
                memory.announced_deaths.remove(&event.container_id);
                ContainerEventKind::Removed
            }
            _ => return false,
        };
        self.report(AgentReport::Container {
            host: self.config.host.clone(),
            event: ContainerEvent {
                kind,
                key,
                container_id: event.container_id.clone(),
                container_name: event.labels.get("name").cloned().unwrap_or_default(),
                image: event.labels.get("image").cloned().unwrap_or_default(),
                version: event
                    .labels
                    .get(labels::VERSION)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                config_hash: event
                    .labels
                    .get(labels::CONFIG_HASH)
                    .cloned()
                    .unwrap_or_default(),
                host: self.config.host.clone(),
                at: nanos_rfc3339(event.time_nanos),
                exit_code: event.exit_code,
                detail: None,
            },
        });
        true
    }
}

/// Forwards the engine's container events, resubscribing if the stream breaks. A synthetic
/// event with an empty action after a break makes the loop re-read everything it may have missed.
pub(super) async fn follow_events<R: ContainerRuntime>(
    runtime: Arc<R>,
    cluster: String,
    sender: mpsc::UnboundedSender<RuntimeEvent>,
) {
    loop {
        let mut stream = runtime.events(&[(labels::CLUSTER, &cluster)]);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if sender.send(event).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "docker event stream broke; resubscribing");
                    break;
                }
            }
        }
        if sender.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
