//! Which of a task's containers count. Agents report every container of ours on their host, and a
//! host that comes back after its tasks moved away still runs (and may report) their old copies
//! until its agent has stopped them. Such a stale copy must never look like the task running: it
//! is not counted by `status`, by `up` and rollouts waiting for a task, nor by the routers' table.
//! So a task's containers count only on the host it is assigned to now, as last published.

use cj_agent::{ObservedContainer, TaskKey};

use crate::state::ServerState;

impl ServerState {
    /// The host whose agent runs `key` now: its assignment's host (on a `dev` server, its own
    /// host stands in for those no agent has joined as). `None` when it is not assigned (not
    /// desired, not placed, or nothing published yet).
    pub fn assigned_host(&self, key: &TaskKey) -> Option<String> {
        let published = self.scheduler.current()?;
        let declared = published.host_of(key)?;
        Some(self.serving_host(declared).to_owned())
    }

    /// Tasks `host` has containers of (as it last reported) that are assigned to another host
    /// now: they moved away while it could not hear the server.
    pub fn moved_away_from(&self, host: &str) -> Vec<TaskKey> {
        let mut moved: Vec<TaskKey> = self
            .observed
            .containers_on(host)
            .into_iter()
            .map(|container| container.key)
            .filter(|key| {
                self.assigned_host(key)
                    .is_some_and(|assigned| assigned != host)
            })
            .collect();
        moved.sort();
        moved.dedup();
        moved
    }

    /// A task's containers that count, with their hosts: those on the host it is assigned to. A
    /// task assigned nowhere (being brought down, or no longer desired) counts every container
    /// it has anywhere, since each must still go.
    pub fn copies_of(&self, key: &TaskKey) -> Vec<(String, ObservedContainer)> {
        let containers = self.observed.containers_of(key);
        match self.assigned_host(key) {
            Some(assigned) => containers
                .into_iter()
                .filter(|(host, _)| *host == assigned)
                .collect(),
            None => containers,
        }
    }
}
