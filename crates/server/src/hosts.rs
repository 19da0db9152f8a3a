//! What the server knows of each host besides its containers: when its agent was last heard
//! from, its engine's version, and its resource use over the last hour (kept in memory only:
//! it is a reading, not state, and agents send a fresh one every stats interval).

use std::collections::{BTreeSet, HashMap, VecDeque};

use cj_agent::ContainerStats;
use cj_api::{HostInfo, HostResources};

use crate::state::{ServerState, lock, now_rfc3339};

/// Readings kept per host: an hour at the default interval of 10 s.
const HISTORY_LEN: usize = 360;

#[derive(Default)]
pub struct Hosts {
    records: std::sync::Mutex<HashMap<String, HostRecord>>,
}

#[derive(Default)]
struct HostRecord {
    address: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
    last_heartbeat: Option<String>,
    engine_version: Option<String>,
    history: VecDeque<HostResources>,
    /// The last reading of each running container, by container id.
    containers: HashMap<String, ContainerStats>,
}

impl Hosts {
    /// The agent of `host` said something.
    pub fn heard_from(&self, host: &str) {
        lock(&self.records)
            .entry(host.to_owned())
            .or_default()
            .last_heartbeat = Some(now_rfc3339());
    }

    /// An agent linked, saying where the host is reached and what it is.
    pub fn joined(
        &self,
        host: &str,
        address: Option<String>,
        labels: std::collections::BTreeMap<String, String>,
    ) {
        let mut records = lock(&self.records);
        let record = records.entry(host.to_owned()).or_default();
        record.address = address;
        record.labels = labels;
    }

    pub fn record_stats(
        &self,
        host: &str,
        engine_version: String,
        stats: HostResources,
        containers: Vec<ContainerStats>,
    ) {
        let mut records = lock(&self.records);
        let record = records.entry(host.to_owned()).or_default();
        record.engine_version = Some(engine_version);
        record.history.push_back(stats);
        while record.history.len() > HISTORY_LEN {
            record.history.pop_front();
        }
        record.containers = containers
            .into_iter()
            .map(|stats| (stats.container_id.clone(), stats))
            .collect();
    }

    /// The last reading of a running container.
    pub fn container(&self, host: &str, container_id: &str) -> Option<ContainerStats> {
        lock(&self.records)
            .get(host)?
            .containers
            .get(container_id)
            .cloned()
    }
}

impl ServerState {
    /// Every host the server knows: connected, reported before, or named by a task's config.
    pub fn host_infos(&self, with_history: bool) -> Vec<HostInfo> {
        let connected = self.links.hosts();
        let observed = self
            .observed
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut names: BTreeSet<String> = connected.iter().cloned().collect();
        names.extend(observed.keys().cloned());
        if let Some(published) = self.assignments.borrow().as_ref() {
            names.extend(published.all.iter().map(|a| a.declared_host.clone()));
        }
        names.remove("");
        let records = lock(&self.hosts.records);
        names
            .into_iter()
            .map(|name| {
                let record = records.get(&name);
                let tasks = observed
                    .get(&name)
                    .map(|containers| containers.iter().filter(|c| c.is_live()).count())
                    .unwrap_or(0);
                HostInfo {
                    state: if connected.contains(&name) {
                        "ready"
                    } else {
                        "down"
                    }
                    .into(),
                    address: record.and_then(|r| r.address.clone()),
                    labels: record.map(|r| r.labels.clone()).unwrap_or_default(),
                    engine_version: record.and_then(|r| r.engine_version.clone()),
                    last_heartbeat: record.and_then(|r| r.last_heartbeat.clone()),
                    tasks,
                    resources: record.and_then(|r| r.history.back().cloned()),
                    history: match (with_history, record) {
                        (true, Some(record)) => record.history.iter().cloned().collect(),
                        _ => Vec::new(),
                    },
                    name,
                }
            })
            .collect()
    }

    /// Whether tasks declared for `host` have somewhere to run now: its agent is connected, or
    /// this server's own agent stands in for hosts that have not joined.
    pub fn host_is_up(&self, host: &str) -> bool {
        let connected = self.links.hosts();
        connected.contains(host)
            || self
                .local_host
                .as_ref()
                .is_some_and(|local| connected.contains(local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(at: &str) -> HostResources {
        HostResources {
            at: at.into(),
            cpus: 2,
            cpu_percent: 12.5,
            memory_total_bytes: 100,
            memory_used_bytes: 40,
            disk_total_bytes: 1000,
            disk_used_bytes: 10,
        }
    }

    #[test]
    fn keeps_an_hour_of_readings_and_the_latest_per_container() {
        let hosts = Hosts::default();
        for n in 0..HISTORY_LEN + 3 {
            let container = ContainerStats {
                key: cj_agent::TaskKey {
                    env: "e".into(),
                    service: "s".into(),
                    job: "j".into(),
                    task: "t".into(),
                },
                container_id: "c1".into(),
                cpu_percent: Some(n as f64),
                memory_bytes: 5,
                memory_limit_bytes: 10,
            };
            hosts.record_stats("h", "28.2.2".into(), stats(&n.to_string()), vec![container]);
        }
        let records = lock(&hosts.records);
        let record = &records["h"];
        assert_eq!(record.history.len(), HISTORY_LEN);
        assert_eq!(record.history.front().unwrap().at, "3");
        drop(records);
        assert_eq!(
            hosts.container("h", "c1").unwrap().cpu_percent,
            Some((HISTORY_LEN + 2) as f64)
        );
        assert!(hosts.container("h", "c2").is_none());
    }
}
