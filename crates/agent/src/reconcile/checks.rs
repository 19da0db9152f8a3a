//! Check verdicts: one probe per live container of the right configuration whose task has a
//! check, and the verdicts they send, kept for reports and plans.

use std::collections::{HashMap, HashSet};

use cj_api::agent::{AgentReport, Assignment, Health, ObservedContainer, TaskKey};
use cj_runtime::ContainerRuntime;
use tokio::time::Instant;

use super::Agent;
use crate::health::{HealthUpdate, probe_loop};
use crate::observe::lock;

impl<R: ContainerRuntime> Agent<R> {
    /// Records a check's new verdict; an unhealthy task counts as a failure for its backoff.
    pub(super) fn handle_health(&self, update: HealthUpdate) {
        {
            let mut memory = lock(&self.memory);
            if !memory.probers.contains_key(&update.container_id) {
                return; // A verdict about a container whose probe was stopped meanwhile.
            }
            memory.health.insert(
                update.container_id.clone(),
                (update.health, update.detail.clone()),
            );
            if update.health == Health::Unhealthy {
                memory
                    .backoffs
                    .entry(update.key.clone())
                    .or_default()
                    .record_failure(Instant::now());
            }
        }
        self.report(AgentReport::Health {
            host: self.config.host.clone(),
            key: update.key,
            container_id: update.container_id,
            config_hash: update.config_hash,
            health: update.health,
            detail: update.detail,
        });
    }

    /// Fills in check verdicts, and keeps exactly one probe running for each live container of
    /// the right configuration whose task has a check.
    pub(super) fn track_health(
        &self,
        assignments: &[Assignment],
        observed: &mut [ObservedContainer],
    ) {
        let checks: HashMap<(&TaskKey, &str), &cj_spec::CheckSpec> = assignments
            .iter()
            .filter_map(|a| Some(((&a.key, a.config_hash.as_str()), a.spec.check.as_ref()?)))
            .collect();
        let mut memory = lock(&self.memory);
        let mut probed = HashSet::new();
        for container in observed.iter_mut().filter(|c| c.is_live()) {
            let Some(check) = checks.get(&(&container.key, container.config_hash.as_str())) else {
                continue;
            };
            probed.insert(container.id.clone());
            if !memory.probers.contains_key(&container.id) {
                let prober = tokio::spawn(probe_loop(
                    self.runtime.clone(),
                    self.http.clone(),
                    container.id.clone(),
                    container.key.clone(),
                    container.config_hash.clone(),
                    (*check).clone(),
                    self.health_updates.clone(),
                ));
                memory
                    .probers
                    .insert(container.id.clone(), prober.abort_handle());
                memory
                    .health
                    .insert(container.id.clone(), (Health::Starting, String::new()));
            }
            let (health, detail) = memory
                .health
                .get(&container.id)
                .cloned()
                .unwrap_or((Health::Starting, String::new()));
            container.health = Some(health);
            container.health_detail = Some(detail).filter(|d| !d.is_empty());
        }
        memory.probers.retain(|id, prober| {
            let keep = probed.contains(id);
            if !keep {
                prober.abort();
            }
            keep
        });
        memory.health.retain(|id, _| probed.contains(id));
    }

    /// Forgets a container's probe and verdict: it stopped or started again, so its next run is
    /// judged afresh.
    pub(super) fn forget_health(&self, container_id: &str) {
        let mut memory = lock(&self.memory);
        if let Some(prober) = memory.probers.remove(container_id) {
            prober.abort();
        }
        memory.health.remove(container_id);
    }

    /// Fills in the verdicts known for probed containers, without touching the probes (a
    /// report outside a pass).
    pub(super) fn fill_health(&self, observed: &mut [ObservedContainer]) {
        let memory = lock(&self.memory);
        for container in observed {
            if let Some((health, detail)) = memory.health.get(&container.id) {
                container.health = Some(*health);
                container.health_detail = Some(detail.clone()).filter(|d| !d.is_empty());
            }
        }
    }
}
