//! What the server knows of each host besides its containers: when its agent was last heard
//! from, its engine's version, and its resource use over the last hour (kept in memory only:
//! it is a reading, not state, and agents send a fresh one every stats interval).
//!
//! Two things are stored, because decisions rest on them: every host that ever joined
//! (`hosts/NAME`, so a restarted `dev` server never stands in for a host that merely has not
//! reconnected yet, and a host that never comes back is still known to be down), and which
//! hosts are draining (`drains/NAME`, an operator's decision).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use cj_store::{Store, StoreJson};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{ApiFailure, shown};
use crate::keys;
use crate::placement::{Capacity, HostView};

use cj_api::agent::ContainerStats;
use cj_api::{HostInfo, HostResources};

use crate::state::ServerState;

use crate::base::{lock, now_rfc3339};
use time::format_description::well_known::Rfc3339;

/// Readings kept per host: an hour at the default interval of 10 s.
const HISTORY_LEN: usize = 360;

pub struct Hosts {
    records: std::sync::Mutex<HashMap<String, HostRecord>>,
    /// When this server started: hosts known from the store but not connected since count as
    /// down from then.
    started: Instant,
}

impl Default for Hosts {
    fn default() -> Self {
        Hosts {
            records: std::sync::Mutex::default(),
            started: Instant::now(),
        }
    }
}

/// `hosts/NAME`: a host that has joined, as it last said it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KnownHost {
    pub name: String,
    pub address: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub last_joined: String,
    /// When its agent's link last ended (a host whose link is down shows it in events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_left: Option<String>,
}

/// `drains/NAME`: the host takes no new tasks and its unpinned tasks move away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drain {
    pub by: String,
    pub since: String,
}

#[derive(Default)]
struct HostRecord {
    /// Stored under `hosts/`: it has joined at some time.
    known: bool,
    /// Set when its agent's link ends; `None` while connected (or never seen by this server).
    disconnected_at: Option<Instant>,
    /// The last message from its agent (a pong at least every ping interval): when, for
    /// timing, and the wall-clock time, for showing. Set on every message, so nothing is
    /// formatted here.
    last_heard: Option<(Instant, time::OffsetDateTime)>,
    draining: Option<Drain>,
    address: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
    engine_version: Option<String>,
    history: VecDeque<HostResources>,
    /// The last reading of each running container, by container id.
    containers: HashMap<String, ContainerStats>,
}

impl HostRecord {
    /// Down counts from the last thing its agent said (a cut link is noticed only after the
    /// link timeout, but the host was gone from its last message), else from when its link
    /// ended, else (never seen by this server) from the server's start.
    fn down_since(&self, server_started: Instant) -> Instant {
        match (self.last_heard.map(|(at, _)| at), self.disconnected_at) {
            (Some(heard), Some(ended)) => heard.min(ended),
            (None, Some(ended)) => ended,
            (_, None) => server_started,
        }
    }
}

impl Hosts {
    /// The agent of `host` said something.
    pub fn heard_from(&self, host: &str) {
        let mut records = lock(&self.records);
        let record = records.entry(host.to_owned()).or_default();
        record.last_heard = Some((Instant::now(), time::OffsetDateTime::now_utc()));
    }

    /// Loads the hosts that joined before and the drains, at start.
    pub fn load(&self, store: &dyn Store) -> Result<(), ApiFailure> {
        let known: Vec<KnownHost> = store.range_json(keys::HOSTS)?;
        let drains = store.range(keys::DRAINS)?;
        let mut records = lock(&self.records);
        for host in known {
            let record = records.entry(host.name.clone()).or_default();
            record.known = true;
            record.address = host.address;
            record.labels = host.labels;
        }
        for entry in drains {
            let name = entry.key.trim_start_matches(keys::DRAINS).to_owned();
            records.entry(name).or_default().draining = Some(entry.json()?);
        }
        Ok(())
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
        record.known = true;
        record.disconnected_at = None;
        record.address = address;
        record.labels = labels;
    }

    /// Where a host's agent said it is reached (or connected from).
    pub fn address_of(&self, host: &str) -> Option<String> {
        lock(&self.records).get(host)?.address.clone()
    }

    /// Whether an agent ever joined as `host`.
    pub fn is_known(&self, host: &str) -> bool {
        lock(&self.records)
            .get(host)
            .is_some_and(|record| record.known)
    }

    /// The agent's link ended.
    pub fn left(&self, host: &str) {
        if let Some(record) = lock(&self.records).get_mut(host) {
            record.disconnected_at = Some(Instant::now());
        }
    }

    pub fn set_draining(&self, host: &str, drain: Option<Drain>) {
        lock(&self.records)
            .entry(host.to_owned())
            .or_default()
            .draining = drain;
    }

    pub fn is_draining(&self, host: &str) -> bool {
        lock(&self.records)
            .get(host)
            .is_some_and(|record| record.draining.is_some())
    }

    /// The labels `host`'s agent last joined with (none for a host never seen).
    pub fn labels(&self, host: &str) -> BTreeMap<String, String> {
        lock(&self.records)
            .get(host)
            .map(|record| record.labels.clone())
            .unwrap_or_default()
    }

    /// Hosts that have joined at some time (now or before this server started).
    pub fn known(&self) -> BTreeSet<String> {
        lock(&self.records)
            .iter()
            .filter(|(_, record)| record.known)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every known host as placement sees it. A host not connected for longer than
    /// `down_after` is lost.
    pub fn views(&self, connected: &BTreeSet<String>, down_after: Duration) -> Vec<HostView> {
        lock(&self.records)
            .iter()
            .filter(|(name, record)| record.known || connected.contains(*name))
            .map(|(name, record)| {
                let ready = connected.contains(name);
                let down_since = record.down_since(self.started);
                HostView {
                    name: name.clone(),
                    labels: record.labels.clone(),
                    ready,
                    lost: !ready && down_since.elapsed() >= down_after,
                    draining: record.draining.is_some(),
                    capacity: record.history.back().map(|reading| Capacity {
                        memory_bytes: reading.memory_total_bytes,
                        nano_cpus: u64::from(reading.cpus) * 1_000_000_000,
                    }),
                }
            })
            .collect()
    }

    /// When the next disconnected host will have been down for `down_after`, if any will.
    pub fn next_loss(&self, connected: &BTreeSet<String>, down_after: Duration) -> Option<Instant> {
        lock(&self.records)
            .iter()
            .filter(|(name, record)| record.known && !connected.contains(*name))
            .map(|(_, record)| record.down_since(self.started) + down_after)
            .filter(|at| *at > Instant::now())
            .min()
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
    /// A `not_found` failure unless an agent has joined as `host` at some time.
    pub(crate) fn check_known_host(&self, host: &str) -> Result<(), ApiFailure> {
        match self.hosts.known().contains(host) {
            true => Ok(()),
            false => Err(ApiFailure::NotFound(format!(
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
