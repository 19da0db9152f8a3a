//! Taking in what agents report: snapshots become the observed state, phases feed waiting
//! operations, and container events become the job's history in the store.

use cj_api::agent::{AgentReport, ContainerEvent, ContainerEventKind};
use cj_api::{ContainerRecord, HistoryEvent};
use cj_store::StoreJson;

use crate::hosts::observed::ProgressKind;
use crate::keys;
use crate::state::ServerState;

impl ServerState {
    pub fn take_report(&self, report: AgentReport) {
        match report {
            AgentReport::Stats {
                host,
                engine_version,
                host_stats,
                containers,
            } => self
                .hosts
                .record_stats(&host, engine_version, host_stats, containers),
            AgentReport::Snapshot { host, containers } => {
                self.observed.replace(host, containers);
            }
            AgentReport::Phase {
                key,
                config_hash,
                phase,
                ..
            } => self
                .observed
                .record_progress(key, config_hash, ProgressKind::Phase(phase)),
            AgentReport::Health {
                host,
                key,
                container_id,
                config_hash,
                health,
                detail,
            } => {
                if let Err(error) = self.record_health(&host, &key, &container_id, health) {
                    tracing::error!(%error, container = container_id, "cannot record a health change");
                }
                if health == cj_api::agent::Health::Unhealthy {
                    self.notifier
                        .send(crate::observe::notify::Notification::TaskUnhealthy {
                            env: key.env.clone(),
                            service: key.service.clone(),
                            job: key.job.clone(),
                            task: key.task.clone(),
                            container_id: container_id.clone(),
                            detail: detail.clone(),
                            at: crate::base::now_rfc3339(),
                        });
                }
                self.observed.record_progress(
                    key,
                    config_hash,
                    ProgressKind::Health(health, detail),
                );
            }
            AgentReport::Container { host, event } => {
                if event.kind == ContainerEventKind::Died {
                    let death = crate::hosts::observed::Death {
                        generation: self.observed.generation() + 1,
                        host,
                        container_id: event.container_id.clone(),
                        config_hash: event.config_hash.clone(),
                        exit_code: event.exit_code,
                    };
                    self.observed.record_death(event.key.clone(), death);
                }
                if let Err(error) = self.record_container_event(&event) {
                    tracing::error!(%error, container = event.container_id, "cannot record a container event");
                }
            }
        }
        self.observed.bump();
    }

    /// Health changes go into the job's history beside the container's life events.
    fn record_health(
        &self,
        host: &str,
        key: &cj_api::agent::TaskKey,
        container_id: &str,
        health: cj_api::agent::Health,
    ) -> Result<(), cj_store::StoreError> {
        let kind = match health {
            cj_api::agent::Health::Healthy => "healthy",
            cj_api::agent::Health::Unhealthy => "unhealthy",
            cj_api::agent::Health::Starting => return Ok(()),
        };
        let record_key = keys::container(&key.env, &key.service, &key.job, container_id);
        let version = self
            .store
            .get_json::<ContainerRecord>(&record_key)?
            .map(|r| r.version)
            .unwrap_or(0);
        let history = HistoryEvent {
            at: crate::base::now_rfc3339(),
            kind: kind.into(),
            task: key.task.clone(),
            container_id: container_id.to_owned(),
            version,
            host: host.to_owned(),
            exit_code: None,
            detail: None,
        };
        self.append_history(key, &history)
    }

    fn record_container_event(&self, event: &ContainerEvent) -> Result<(), cj_store::StoreError> {
        let key = &event.key;
        let record_key = keys::container(&key.env, &key.service, &key.job, &event.container_id);
        let mut record = self
            .store
            .get_json::<ContainerRecord>(&record_key)?
            .unwrap_or_else(|| ContainerRecord {
                id: event.container_id.clone(),
                name: event.container_name.clone(),
                task: key.task.clone(),
                image: event.image.clone(),
                version: event.version,
                host: event.host.clone(),
                created: event.at.clone(),
                started: None,
                finished: None,
                exit_code: None,
                restarts: 0,
                removed: None,
            });
        match event.kind {
            ContainerEventKind::Created => {}
            ContainerEventKind::Started => {
                if record.started.is_some() {
                    record.restarts += 1;
                    crate::observe::recorder::task_restarted(key);
                    self.alerts.task_restarted(key);
                }
                record.started = Some(event.at.clone());
                record.finished = None;
                record.exit_code = None;
            }
            ContainerEventKind::Died | ContainerEventKind::Stopped => {
                record.finished = Some(event.at.clone());
                record.exit_code = event.exit_code;
            }
            ContainerEventKind::Removed => record.removed = Some(event.at.clone()),
        }
        self.store.put_json(&record_key, &record)?;
        let kind = serde_json::to_value(event.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let history = HistoryEvent {
            at: event.at.clone(),
            kind,
            task: key.task.clone(),
            container_id: event.container_id.clone(),
            version: event.version,
            host: event.host.clone(),
            exit_code: event.exit_code,
            detail: None,
        };
        self.append_history(key, &history)
    }

    /// Adds an event to the job's history, in time order.
    pub(crate) fn append_history(
        &self,
        key: &cj_api::agent::TaskKey,
        event: &HistoryEvent,
    ) -> Result<(), cj_store::StoreError> {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        self.store
            .put_json(&keys::event(&key.env, &key.service, &key.job, nanos), event)?;
        Ok(())
    }
}
