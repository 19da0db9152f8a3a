//! How the assignment controller (`publisher`) computes a publication: everything at once, or
//! one service at a time against what the others take of each host, and what it stores of its
//! placements.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cj_api::HistoryEvent;
use cj_api::agent::{Assignment, TaskKey};
use cj_store::Op;

use super::placement::{self, Demand, HostView, Load, StoredPlacement};
use super::published::{PlacementState, Published};
use super::publisher::{Publisher, ServiceKey};
use super::render::JobRef;
use crate::base::{lock, now_rfc3339};
use crate::error::Failure;
use crate::keys;
use crate::state::{DesiredTask, ServerState};

impl Publisher {
    /// Places every task again, as one, and publishes. The revision it read at.
    pub(super) fn publish_everything(&mut self) -> Result<u64, Failure> {
        let _timer = crate::observe::recorder::PublishTimer::start();
        let state = self.state.clone();
        let revision = state.store.revision()?;
        let mut by_service: BTreeMap<ServiceKey, Vec<DesiredTask>> = BTreeMap::new();
        for desired in state.desired_jobs(keys::DESIRED_ALL)? {
            let service = (desired.env.clone(), desired.service.clone());
            by_service
                .entry(service)
                .or_default()
                .extend(state.raw_desired_tasks(&desired)?);
        }
        let stored = stored_placements(&state, keys::PLACEMENTS)?;
        let all: Vec<&DesiredTask> = by_service.values().flatten().collect();
        let demands: Vec<Demand> = all
            .iter()
            .map(|task| Demand {
                key: &task.key,
                spec: &task.spec,
            })
            .collect();
        let decisions = placement::place(
            &demands,
            &self.views(),
            &stored,
            &now_rfc3339(),
            &HashMap::new(),
        );
        self.store_placements(all.iter().copied(), &stored, &decisions.changed)?;

        // Start afresh from these decisions.
        self.services.clear();
        self.totals.clear();
        self.named_by.clear();
        self.published = Published::default();
        *lock(&state.scheduler.placements) = PlacementState::default();
        let mut placed = by_service_of(decisions.placed);
        let mut unplaced = by_service_of(decisions.unplaced);
        let mut handovers = by_service_of(decisions.handovers);
        for (service, raw) in by_service {
            self.settle(
                &service,
                raw,
                placed.remove(&service).unwrap_or_default(),
                unplaced.remove(&service).unwrap_or_default(),
                handovers.remove(&service).unwrap_or_default(),
            );
        }
        let services: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for service in &services {
            self.assign(service)?;
        }
        self.send();
        state.scheduler.published_through(revision);
        Ok(revision)
    }

    /// Places and publishes `services` again, and renders again those that name their jobs.
    pub(super) fn publish_services(
        &mut self,
        services: &BTreeSet<ServiceKey>,
    ) -> Result<(), Failure> {
        let _timer = crate::observe::recorder::PublishTimer::start();
        let views = self.views();
        for service in services {
            self.place_service(service, &views)?;
        }
        let mut to_render = services.clone();
        for service in services {
            if let Some(naming) = self.named_by.get(service) {
                to_render.extend(naming.iter().cloned());
            }
        }
        for service in &to_render {
            self.assign(service)?;
        }
        self.send();
        Ok(())
    }

    pub(super) fn views(&self) -> Vec<HostView> {
        let state = &self.state;
        state
            .hosts
            .views(&state.links.hosts(), state.scheduler.host_down_after())
    }

    /// Places one service's tasks against what the others take of each host.
    pub(super) fn place_service(
        &mut self,
        service: &ServiceKey,
        views: &[HostView],
    ) -> Result<(), Failure> {
        let state = self.state.clone();
        let (env, name) = service;
        let mut raw = Vec::new();
        for desired in state.desired_jobs(&keys::desired_of_service(env, name))? {
            raw.extend(state.raw_desired_tasks(&desired)?);
        }
        let stored = stored_placements(&state, &keys::placements_of_service(env, name))?;
        if let Some(old) = self.services.get(service) {
            for (host, load) in &old.load {
                if let Some(total) = self.totals.get_mut(host) {
                    total.remove_all(load);
                }
            }
        }
        let demands: Vec<Demand> = raw
            .iter()
            .map(|task| Demand {
                key: &task.key,
                spec: &task.spec,
            })
            .collect();
        let decisions = placement::place(&demands, views, &stored, &now_rfc3339(), &self.totals);
        self.store_placements(raw.iter(), &stored, &decisions.changed)?;
        self.settle(
            service,
            raw,
            decisions.placed,
            decisions.unplaced,
            decisions.handovers,
        );
        Ok(())
    }

    /// Records where a service's tasks now are: in the scheduler's placements and in what it
    /// takes of each host.
    pub(super) fn settle(
        &mut self,
        service: &ServiceKey,
        raw: Vec<DesiredTask>,
        placed: BTreeMap<TaskKey, String>,
        unplaced: BTreeMap<TaskKey, String>,
        handovers: BTreeMap<TaskKey, String>,
    ) {
        let entry = self.services.entry(service.clone()).or_default();
        {
            let mut placements = lock(&self.state.scheduler.placements);
            for key in entry.placed.keys().chain(entry.unplaced.keys()) {
                placements.placed.remove(key);
                placements.unplaced.remove(key);
            }
            for (key, host) in &placed {
                placements.placed.insert(key.clone(), host.clone());
            }
            for (key, reason) in &unplaced {
                placements.unplaced.insert(key.clone(), reason.clone());
            }
        }
        let mut load: HashMap<String, Load> = HashMap::new();
        for task in &raw {
            let host = task.spec.run_on_host.as_ref().or(placed.get(&task.key));
            if let Some(host) = host {
                load.entry(host.clone()).or_default().add(&task.spec);
            }
        }
        for (host, taken) in &load {
            self.totals.entry(host.clone()).or_default().add_all(taken);
        }
        entry.raw = raw;
        entry.placed = placed;
        entry.unplaced = unplaced;
        entry.handovers = handovers;
        entry.load = load;
    }

    /// Renders a service's placed tasks and puts their assignments in the next publication in
    /// place of its old ones.
    pub(super) fn assign(&mut self, service: &ServiceKey) -> Result<(), Failure> {
        let state = self.state.clone();
        let Some(entry) = self.services.get_mut(service) else {
            return Ok(());
        };
        let mut tasks: Vec<DesiredTask> = Vec::new();
        let mut hosts: Vec<String> = Vec::new();
        for task in &entry.raw {
            let host = task
                .spec
                .run_on_host
                .as_ref()
                .or(entry.placed.get(&task.key));
            if let Some(host) = host {
                tasks.push(task.clone());
                hosts.push(host.clone());
            }
        }
        let mut named = BTreeSet::new();
        state.render_tasks_noting(&mut tasks, &mut named)?;

        for (host, key) in entry.assigned.drain(..) {
            self.published.remove(&key, &host);
            self.published.set_handover(&key, None);
        }
        let mut assigned = Vec::new();
        {
            let mut placements = lock(&state.scheduler.placements);
            for (mut task, host) in tasks.into_iter().zip(hosts) {
                placements.unplaced.remove(&task.key);
                if let Some(reason) = task.render_error.take() {
                    // Not run as written: the reason shows in `status`, and `up` fails on it.
                    tracing::warn!(task = %task.key, reason, "cannot render the task's config");
                    placements
                        .unplaced
                        .insert(task.key.clone(), format!("config: {reason}"));
                    continue;
                }
                let assignment = Arc::new(assignment_of(task, host.clone()));
                if let Some(from) = entry.handovers.get(&assignment.key) {
                    // A task handing over keeps running where it was until its new copy serves.
                    let mut there = (*assignment).clone();
                    there.declared_host = from.clone();
                    self.published.set_handover(&assignment.key, Some(from));
                    assigned.push((from.clone(), assignment.key.clone()));
                    self.published.insert(Arc::new(there), true);
                }
                assigned.push((host, assignment.key.clone()));
                self.published.insert(assignment, false);
            }
        }
        entry.assigned = assigned;

        // Who names whom, for the next change.
        let names: BTreeSet<ServiceKey> = named
            .into_iter()
            .map(|JobRef { env, service, .. }| (env, service))
            .filter(|named| named != service)
            .collect();
        for old in entry.names.difference(&names) {
            if let Some(naming) = self.named_by.get_mut(old) {
                naming.remove(service);
            }
        }
        for new in names.difference(&entry.names) {
            self.named_by
                .entry(new.clone())
                .or_default()
                .insert(service.clone());
        }
        entry.names = names;
        if entry.raw.is_empty() {
            self.services.remove(service);
        }
        Ok(())
    }

    pub(super) fn send(&mut self) {
        self.published.stamp();
        let next = Arc::new(self.published.clone());
        self.state.scheduler.assignments.send_replace(Some(next));
    }

    /// Stores new and moved placements and forgets those of tasks no longer desired (among
    /// `stored`); a move is also an event in the job's history.
    pub(super) fn store_placements<'a>(
        &mut self,
        tasks: impl Iterator<Item = &'a DesiredTask>,
        stored: &HashMap<TaskKey, StoredPlacement>,
        changed: &[(TaskKey, StoredPlacement)],
    ) -> Result<(), Failure> {
        let state = self.state.clone();
        let versions: HashMap<&TaskKey, u64> =
            tasks.map(|task| (&task.key, task.version)).collect();
        let mut ops = Vec::new();
        for key in stored.keys().filter(|key| !versions.contains_key(key)) {
            ops.push(Op::delete(keys::placement(key)));
        }
        for (key, placement) in changed {
            ops.push(Op::put(keys::placement(key), json(placement)?));
            let Some(old) = stored.get(key) else {
                tracing::info!(task = %key, host = placement.host, "placed");
                continue;
            };
            tracing::warn!(task = %key, from = old.host, to = placement.host, reason = placement.reason, "moved");
            let event = HistoryEvent {
                at: placement.since.clone(),
                kind: "moved".into(),
                task: key.task.clone(),
                container_id: String::new(),
                version: versions.get(key).copied().unwrap_or_default(),
                host: placement.host.clone(),
                exit_code: None,
                detail: Some(placement.reason.clone()),
            };
            ops.push(Op::put(keys::new_event(key), json(&event)?));
        }
        self.own_writes.extend(state.store.write_batched(&ops)?);
        Ok(())
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    Ok(serde_json::to_vec(value).map_err(cj_store::StoreError::encode)?)
}

/// What a rendered, placed task is told to its host.
fn assignment_of(task: DesiredTask, host: String) -> Assignment {
    let mut assignment = Assignment::new(task.key, task.version, task.spec, host, task.on_failure)
        .with_restart_generation(task.restart_generation);
    // A replacement that needs the same port must wait for the old container to stop; one
    // without a port can start first.
    assignment.start_first = assignment.spec.port == 0 && task.volume_sources.is_empty();
    // A volume being replaced from a snapshot cannot stay mounted by the old container.
    assignment.volume_sources = task.volume_sources;
    assignment.drain_ms = task.drain_ms;
    assignment.stop_when_cut =
        task.on_host_lost == cj_spec::OnHostLost::Stop && assignment.spec.run_on_host.is_none();
    assignment
}

/// The stored placements under `prefix`.
fn stored_placements(
    state: &ServerState,
    prefix: &str,
) -> Result<HashMap<TaskKey, StoredPlacement>, Failure> {
    let mut stored = HashMap::new();
    for entry in state.store.range(prefix)? {
        let path = entry.key.trim_start_matches(keys::PLACEMENTS);
        let parts: Vec<&str> = path.split('/').collect();
        let [env, service, job, task] = parts[..] else {
            tracing::warn!(key = entry.key, "ignoring a malformed placement key");
            continue;
        };
        let key = TaskKey {
            env: env.into(),
            service: service.into(),
            job: job.into(),
            task: task.into(),
        };
        stored.insert(key, entry.json()?);
    }
    Ok(stored)
}

/// `map` split by the service of each task.
fn by_service_of<V>(map: BTreeMap<TaskKey, V>) -> BTreeMap<ServiceKey, BTreeMap<TaskKey, V>> {
    let mut split: BTreeMap<ServiceKey, BTreeMap<TaskKey, V>> = BTreeMap::new();
    for (key, value) in map {
        let service = (key.env.clone(), key.service.clone());
        split.entry(service).or_default().insert(key, value);
    }
    split
}
