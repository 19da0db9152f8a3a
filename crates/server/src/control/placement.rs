//! Placement: which host runs each task that no config pins to one. A pure function of the
//! desired tasks, the hosts as the server sees them and the placements already stored, so it is
//! tested in memory and a server restart (which reloads the stored placements) moves nothing.
//!
//! A stored placement is kept while its host may still run the task: the host is not lost
//! (down longer than `--host-down-after`), not draining, and still matches the task's `hosts`
//! and `constraints`. Only tasks without a kept placement are placed, after every pinned and
//! kept task has been counted:
//! - eligible hosts are ready (agent connected), not draining, and match `hosts`/`constraints`;
//! - a fixed `port` must be free on the host (two tasks needing one host port never share a
//!   host, across environments);
//! - `resources` (memory, cpu) are reserved against the host's capacity; a host whose size is
//!   not known yet (no reading since it joined) takes such a task only when no host of known
//!   size has room, as it could be full;
//! - among those left, spread first (fewest tasks of the same job), then fewest tasks, then
//!   most free memory, then name, so the result is deterministic.
//!
//! A task that fits nowhere gets the reason, in the user's terms.

use std::collections::{BTreeMap, HashMap};

use cj_api::agent::TaskKey;
use cj_spec::TaskSpec;
use serde::{Deserialize, Serialize};

/// `placements/ENV/SERVICE/JOB/TASK`: where the server put an unpinned task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlacement {
    pub host: String,
    pub since: String,
    /// Why it is there: placed, or moved and why.
    pub reason: String,
    /// Moved off a host that still runs it (a drain): the copy there keeps running until the
    /// new one serves, then goes (`handover`). Cleared once the hand-over is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_from: Option<String>,
}

/// A host as placement sees it.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Its agent is connected.
    pub ready: bool,
    /// Down longer than `--host-down-after`: its unpinned tasks go elsewhere.
    pub lost: bool,
    pub draining: bool,
    /// From its last resource reading; unknown until the agent reports one.
    pub capacity: Option<Capacity>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub memory_bytes: u64,
    pub nano_cpus: u64,
}

/// A task to run: pinned ones are counted against their host, the others are placed.
pub struct Demand<'a> {
    pub key: &'a TaskKey,
    pub spec: &'a TaskSpec,
}

/// What placement decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    /// The host of every unpinned task that has one.
    pub placed: BTreeMap<TaskKey, String>,
    /// Placements that are new or changed, to store, with the reason.
    pub changed: Vec<(TaskKey, StoredPlacement)>,
    /// Tasks that fit nowhere, with why.
    pub unplaced: BTreeMap<TaskKey, String>,
    /// Tasks handing over from a host that still runs them (its agent connected): the host.
    pub handovers: BTreeMap<TaskKey, String>,
}

/// What tasks take of a host: its fixed ports, reserved memory and CPUs, and their number.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Load {
    ports: Vec<u16>,
    memory_bytes: u64,
    nano_cpus: u64,
    tasks: usize,
}

impl Load {
    pub fn add(&mut self, spec: &TaskSpec) {
        if spec.port != 0 {
            self.ports.push(spec.port);
        }
        self.memory_bytes += spec.resources.memory_bytes.unwrap_or(0);
        self.nano_cpus += spec.resources.nano_cpus.unwrap_or(0);
        self.tasks += 1;
    }

    pub fn add_all(&mut self, other: &Load) {
        self.ports.extend(&other.ports);
        self.memory_bytes += other.memory_bytes;
        self.nano_cpus += other.nano_cpus;
        self.tasks += other.tasks;
    }

    /// Takes away `other`, which was added before.
    pub fn remove_all(&mut self, other: &Load) {
        for port in &other.ports {
            if let Some(at) = self.ports.iter().position(|used| used == port) {
                self.ports.swap_remove(at);
            }
        }
        self.memory_bytes = self.memory_bytes.saturating_sub(other.memory_bytes);
        self.nano_cpus = self.nano_cpus.saturating_sub(other.nano_cpus);
        self.tasks = self.tasks.saturating_sub(other.tasks);
    }
}

/// What every host takes during one placement, by the host's position in `hosts`: what tasks
/// outside the placement take, plus what its own tasks take so far; and for each job, how many
/// of its tasks each host has (spread is within a job, and a job's tasks are all in one
/// placement). Arrays by position rather than maps by name, because every task to place looks
/// at every host: a hundred thousand tasks on a thousand hosts are a hundred million looks.
struct Ledger<'h> {
    hosts: &'h [HostView],
    position: HashMap<&'h str, usize>,
    loads: Vec<Load>,
    by_job: HashMap<(String, String, String), Vec<u32>>,
}

impl<'h> Ledger<'h> {
    fn new(hosts: &'h [HostView], others: &HashMap<String, Load>) -> Self {
        Ledger {
            hosts,
            position: hosts
                .iter()
                .enumerate()
                .map(|(at, host)| (host.name.as_str(), at))
                .collect(),
            loads: hosts
                .iter()
                .map(|host| others.get(&host.name).cloned().unwrap_or_default())
                .collect(),
            by_job: HashMap::new(),
        }
    }

    /// Counts a task against `host`. A host placement does not know (a pinned task's host that
    /// never joined) is no candidate, so nothing needs counting there.
    fn add(&mut self, host: &str, key: &TaskKey, spec: &TaskSpec) {
        let Some(&at) = self.position.get(host) else {
            return;
        };
        self.loads[at].add(spec);
        let hosts = self.hosts.len();
        self.by_job
            .entry(job_of(key))
            .or_insert_with(|| vec![0; hosts])[at] += 1;
    }
}

fn job_of(key: &TaskKey) -> (String, String, String) {
    (key.env.clone(), key.service.clone(), key.job.clone())
}

/// Which hosts a placement allows, worked out once for a run of tasks with the same one (a
/// job's instances come one after another).
struct Allowed<'a> {
    placement: Option<&'a cj_spec::Placement>,
    hosts: Vec<bool>,
}

impl<'a> Allowed<'a> {
    fn of(&mut self, spec: &'a TaskSpec, hosts: &[HostView]) -> &[bool] {
        if self.placement != Some(&spec.placement) {
            self.hosts = hosts
                .iter()
                .map(|host| spec.placement.allows(&host.name, &host.labels))
                .collect();
            self.placement = Some(&spec.placement);
        }
        &self.hosts
    }
}

/// Places every unpinned task of `demands`; `now` stamps new placements. `others` is what tasks
/// outside `demands` already take of each host (nothing when `demands` is every task).
pub fn place(
    demands: &[Demand<'_>],
    hosts: &[HostView],
    stored: &HashMap<TaskKey, StoredPlacement>,
    now: &str,
    others: &HashMap<String, Load>,
) -> Decisions {
    let by_name: HashMap<&str, &HostView> = hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    let mut ledger = Ledger::new(hosts, others);
    let mut decisions = Decisions::default();
    let mut to_place = Vec::new();
    for demand in demands {
        if let Some(host) = &demand.spec.run_on_host {
            ledger.add(host, demand.key, demand.spec);
            continue;
        }
        let kept = stored.get(demand.key).filter(|placement| {
            by_name.get(placement.host.as_str()).is_some_and(|host| {
                !host.lost
                    && !host.draining
                    && demand.spec.placement.allows(&host.name, &host.labels)
            })
        });
        match kept {
            Some(placement) => {
                if let Some(from) = &placement.handover_from
                    && by_name.get(from.as_str()).is_some_and(|host| host.ready)
                {
                    decisions.handovers.insert(demand.key.clone(), from.clone());
                }
                ledger.add(&placement.host, demand.key, demand.spec);
                decisions
                    .placed
                    .insert(demand.key.clone(), placement.host.clone());
            }
            None => to_place.push(demand),
        }
    }
    to_place.sort_by(|a, b| a.key.cmp(b.key));
    let mut allowed = Allowed {
        placement: None,
        hosts: Vec::new(),
    };
    for demand in to_place {
        let allowed = allowed.of(demand.spec, hosts);
        match choose(demand, &ledger, allowed) {
            Ok(host) => {
                ledger.add(&host, demand.key, demand.spec);
                let reason = match stored.get(demand.key) {
                    Some(old) => format!(
                        "moved from {}: {}",
                        old.host,
                        why_moved(&old.host, &by_name, demand.spec)
                    ),
                    None => "placed".to_owned(),
                };
                // Off a draining host that still runs it: start here first, stop there after.
                let handover_from = stored
                    .get(demand.key)
                    .map(|old| old.host.as_str())
                    .filter(|old| {
                        by_name
                            .get(old)
                            .is_some_and(|old| old.ready && old.draining)
                    })
                    .map(str::to_owned);
                if let Some(from) = &handover_from {
                    decisions.handovers.insert(demand.key.clone(), from.clone());
                }
                decisions.placed.insert(demand.key.clone(), host.clone());
                decisions.changed.push((
                    demand.key.clone(),
                    StoredPlacement {
                        host,
                        since: now.to_owned(),
                        reason,
                        handover_from,
                    },
                ));
            }
            Err(reason) => {
                decisions.unplaced.insert(demand.key.clone(), reason);
            }
        }
    }
    decisions
}

fn why_moved(old: &str, hosts: &HashMap<&str, &HostView>, spec: &TaskSpec) -> String {
    match hosts.get(old) {
        None => "host unknown".to_owned(),
        Some(host) if host.lost => "host down".to_owned(),
        Some(host) if host.draining => "host draining".to_owned(),
        Some(_) if !spec.placement.is_unrestricted() => {
            "no longer matches hosts/constraints".to_owned()
        }
        Some(_) => "host unusable".to_owned(),
    }
}

/// How a candidate host ranks; the lowest wins: for a task that reserves resources, a host
/// whose size is known (one not heard from yet could be full), then fewest tasks of the job
/// (spread), fewest tasks, most free memory, then the name.
type Rank<'h> = (bool, u32, usize, std::cmp::Reverse<u64>, &'h str);

/// The best host for `demand`, or why there is none: one pass over the hosts, each looked at
/// only as far as it stays a candidate.
fn choose(demand: &Demand<'_>, ledger: &Ledger<'_>, allowed: &[bool]) -> Result<String, String> {
    let spec = demand.spec;
    let memory = spec.resources.memory_bytes.unwrap_or(0);
    let cpus = spec.resources.nano_cpus.unwrap_or(0);
    let of_job = ledger.by_job.get(&job_of(demand.key));
    let (mut eligible, mut port_free, mut with_memory) = (false, false, false);
    let mut best: Option<(Rank<'_>, usize)> = None;
    for (at, host) in ledger.hosts.iter().enumerate() {
        if !host.ready || host.draining || !allowed[at] {
            continue;
        }
        eligible = true;
        let load = &ledger.loads[at];
        if spec.port != 0 && load.ports.contains(&spec.port) {
            continue;
        }
        port_free = true;
        let free = host.capacity.map(|capacity| {
            (
                capacity.memory_bytes.saturating_sub(load.memory_bytes),
                capacity.nano_cpus.saturating_sub(load.nano_cpus),
            )
        });
        if free.is_some_and(|(free_memory, _)| free_memory < memory) {
            continue;
        }
        with_memory = true;
        if free.is_some_and(|(_, free_cpus)| free_cpus < cpus) {
            continue;
        }
        let rank = (
            (memory > 0 || cpus > 0) && host.capacity.is_none(),
            of_job.map_or(0, |counts| counts[at]),
            load.tasks,
            std::cmp::Reverse(free.map_or(u64::MAX, |(free_memory, _)| free_memory)),
            host.name.as_str(),
        );
        if best.as_ref().is_none_or(|(best, _)| rank < *best) {
            best = Some((rank, at));
        }
    }
    match best {
        Some((_, at)) => Ok(ledger.hosts[at].name.clone()),
        None if !eligible => Err(no_eligible_host(spec, ledger.hosts)),
        None if !port_free => Err(format!(
            "port {} already used on every eligible host",
            spec.port
        )),
        None if !with_memory => Err(format!(
            "no host has {} free",
            cj_spec::format_bytes(memory)
        )),
        None => Err(format!("no host has {} CPUs free", cpus as f64 / 1e9)),
    }
}

fn no_eligible_host(spec: &TaskSpec, hosts: &[HostView]) -> String {
    if hosts.iter().all(|host| !host.ready) {
        return "no host is ready: no agent is connected".to_owned();
    }
    let wanted = spec.placement.describe();
    let matching: Vec<&HostView> = hosts
        .iter()
        .filter(|host| spec.placement.allows(&host.name, &host.labels))
        .collect();
    if matching.is_empty() {
        return format!("no host matches {wanted}");
    }
    let ready: Vec<&HostView> = matching.into_iter().filter(|host| host.ready).collect();
    if !ready.is_empty() && ready.iter().all(|host| host.draining) {
        let names: Vec<&str> = ready.iter().map(|host| host.name.as_str()).collect();
        return format!("every matching host is draining ({})", names.join(", "));
    }
    match wanted.is_empty() {
        true => "no host is ready".to_owned(),
        false => format!("no ready host matches {wanted}"),
    }
}

#[cfg(test)]
mod tests;
