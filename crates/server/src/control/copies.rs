//! Which of a task's containers count. Agents report every container of ours on their host, and a
//! host that comes back after its tasks moved away still runs (and may report) their old copies
//! until its agent has stopped them. Such a stale copy must never look like the task running: it
//! is not counted by `status`, by `up` and rollouts waiting for a task, nor by the routers' table.
//! So a task's containers count only on the hosts it is assigned to now, as last published (two
//! while a drained task hands over: `handover`).

use cj_api::agent::{ObservedContainer, TaskKey};

use crate::state::ServerState;

impl ServerState {
    /// The hosts whose agents run `key` now: its assignment's host, and while it hands over, the
    /// host it leaves (on a `dev` server, its own host stands in for those no agent has joined
    /// as). Empty when it is not assigned (not desired, not placed, or nothing published yet).
    pub fn assigned_hosts(&self, key: &TaskKey) -> Vec<String> {
        let Some(published) = self.scheduler.current() else {
            return Vec::new();
        };
        published
            .hosts_of(key)
            .into_iter()
            .map(|declared| self.serving_host(declared).to_owned())
            .collect()
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
                let assigned = self.assigned_hosts(key);
                !assigned.is_empty() && !assigned.iter().any(|assigned| assigned == host)
            })
            .collect();
        moved.sort();
        moved.dedup();
        moved
    }

    /// A task's containers that count, with their hosts: those on a host it is assigned to. A
    /// task assigned nowhere (being brought down, or no longer desired) counts every container
    /// it has anywhere, since each must still go.
    pub fn copies_of(&self, key: &TaskKey) -> Vec<(String, ObservedContainer)> {
        let containers = self.observed.containers_of(key);
        let assigned = self.assigned_hosts(key);
        if assigned.is_empty() {
            return containers;
        }
        containers
            .into_iter()
            .filter(|(host, _)| assigned.contains(host))
            .collect()
    }
}
