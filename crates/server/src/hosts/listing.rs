//! What the server knows of each host besides its containers: when its agent was last heard
//! from, its engine's version, and its resource use over the last hour (kept in memory only:
//! it is a reading, not state, and agents send a fresh one every stats interval).
//!
//! Two things are stored, because decisions rest on them: every host that ever joined
//! (`hosts/NAME`, so a restarted `dev` server never stands in for a host that merely has not
//! reconnected yet, and a host that never comes back is still known to be down), and which
//! hosts are draining (`drains/NAME`, an operator's decision).

use std::collections::{BTreeMap, BTreeSet};

use cj_store::StoreJson;

use crate::error::{Failure, shown};
use crate::keys;

use cj_api::HostInfo;

use crate::state::ServerState;

use crate::base::{lock, now_rfc3339};
use time::format_description::well_known::Rfc3339;

pub mod registry;
#[allow(unused_imports)]
pub(crate) use registry::*;

impl ServerState {
    /// A `not_found` failure unless an agent has joined as `host` at some time.
    pub(crate) fn check_known_host(&self, host: &str) -> Result<(), Failure> {
        match self.hosts.known().contains(host) {
            true => Ok(()),
            false => Err(Failure::NotFound(format!(
                "no host named {} has joined (see `coding-job hosts`)",
                shown(host)
            ))),
        }
    }

    /// An agent linked as `host`: remembered (in the store, so a restart knows it) and heard.
    pub fn host_joined(
        &self,
        host: &str,
        address: Option<String>,
        labels: BTreeMap<String, String>,
    ) {
        let known = KnownHost {
            name: host.to_owned(),
            address: address.clone(),
            labels: labels.clone(),
            last_joined: now_rfc3339(),
            last_left: None,
        };
        if let Err(error) = self.store.put_json(&keys::host(host), &known) {
            tracing::error!(host, %error, "failed to remember a host");
        }
        self.hosts.joined(host, address, labels);
        self.hosts.heard_from(host);
    }

    /// An agent's link ended: the store says so (an event readers see), keeping what it knew
    /// of the host.
    pub fn record_host_left(&self, host: &str) {
        let key = keys::host(host);
        let known: Option<KnownHost> = match self.store.get_json(&key) {
            Ok(known) => known,
            Err(error) => {
                tracing::error!(host, %error, "failed to read a known host");
                return;
            }
        };
        if let Some(mut known) = known {
            known.last_left = Some(now_rfc3339());
            if let Err(error) = self.store.put_json(&key, &known) {
                tracing::error!(host, %error, "failed to record a host leaving");
            }
        }
    }

    /// Every host the server knows: connected, reported before, or named by a task's config.
    pub fn host_infos(&self, with_history: bool) -> Vec<HostInfo> {
        let connected = self.links.hosts();
        let live = self.observed.live_per_host();
        let mut names: BTreeSet<String> = connected.iter().cloned().collect();
        names.extend(live.keys().cloned());
        if let Some(published) = self.scheduler.current() {
            names.extend(published.hosts().cloned());
        }
        names.remove("");
        let records = lock(&self.hosts.records);
        names
            .into_iter()
            .map(|name| {
                let record = records.get(&name);
                let tasks = live.get(&name).copied().unwrap_or(0);
                let draining = record.is_some_and(|r| r.draining.is_some());
                HostInfo {
                    state: match (connected.contains(&name), draining) {
                        (true, false) => "ready",
                        (true, true) => "draining",
                        (false, _) => "down",
                    }
                    .into(),
                    draining,
                    address: record.and_then(|r| r.address.clone()),
                    labels: record.map(|r| r.labels.clone()).unwrap_or_default(),
                    engine_version: record.and_then(|r| r.engine_version.clone()),
                    last_heartbeat: record
                        .and_then(|r| r.last_heard)
                        .and_then(|(_, at)| at.format(&Rfc3339).ok()),
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
    /// this server's own agent stands in for hosts that have never joined.
    pub fn host_is_up(&self, host: &str) -> bool {
        self.links.is_connected(self.serving_host(host))
    }

    /// The host whose agent runs the tasks declared for `host`: `host` itself, except on a
    /// `dev` server, whose own host stands in for hosts no agent has joined as.
    pub fn serving_host<'a>(&'a self, host: &'a str) -> &'a str {
        match self.local_host.as_deref() {
            Some(local) if !self.hosts.is_known(host) => local,
            _ => host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cj_api::HostResources;
    use cj_api::agent::ContainerStats;

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
                key: cj_api::agent::TaskKey {
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
