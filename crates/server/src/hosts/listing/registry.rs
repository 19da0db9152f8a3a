use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use cj_store::{Store, StoreJson};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::control::placement::{Capacity, HostView};
use crate::error::Failure;
use crate::keys;

use cj_api::HostResources;
use cj_api::agent::ContainerStats;

use crate::base::lock;

/// Readings kept per host: an hour at the default interval of 10 s.
pub(crate) const HISTORY_LEN: usize = 360;

pub struct Hosts {
    pub(crate) records: std::sync::Mutex<HashMap<String, HostRecord>>,
    /// When this server started: hosts known from the store but not connected since count as
    /// down from then.
    pub(crate) started: Instant,
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
pub(crate) struct HostRecord {
    /// Stored under `hosts/`: it has joined at some time.
    pub(crate) known: bool,
    /// Set when its agent's link ends; `None` while connected (or never seen by this server).
    pub(crate) disconnected_at: Option<Instant>,
    /// The last message from its agent (a pong at least every ping interval): when, for
    /// timing, and the wall-clock time, for showing. Set on every message, so nothing is
    /// formatted here.
    pub(crate) last_heard: Option<(Instant, time::OffsetDateTime)>,
    pub(crate) draining: Option<Drain>,
    pub(crate) address: Option<String>,
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    pub(crate) engine_version: Option<String>,
    pub(crate) history: VecDeque<HostResources>,
    /// The last reading of each running container, by container id.
    pub(crate) containers: HashMap<String, ContainerStats>,
}

impl HostRecord {
    /// Down counts from the last thing its agent said (a cut link is noticed only after the
    /// link timeout, but the host was gone from its last message), else from when its link
    /// ended, else (never seen by this server) from the server's start.
    pub(crate) fn down_since(&self, server_started: Instant) -> Instant {
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
    pub fn load(&self, store: &dyn Store) -> Result<(), Failure> {
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
