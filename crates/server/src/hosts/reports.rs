//! Taking in what agents report: snapshots become the observed state, phases feed waiting
//! operations, and container events become the job's history in the store (written in
//! batches by [`crate::hosts::history_writer`]).

use cj_api::agent::{AgentReport, ContainerEventKind};

use crate::hosts::history_writer::Entry;
use crate::hosts::observed::ProgressKind;
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
                self.history_writer.write(Entry::Health {
                    host,
                    key: key.clone(),
                    container_id: container_id.clone(),
                    health,
                });
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
                self.history_writer.write(Entry::Container(event));
            }
        }
        self.observed.bump();
    }
}
