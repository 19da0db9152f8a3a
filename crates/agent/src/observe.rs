//! Reading the host's containers: the engine's list, completed by inspects (cached while a
//! container's state does not change, and dropped on any event about it), and what their labels
//! tell the agent alone ([`Notes`]).

use std::collections::{BTreeMap, HashMap};

use cj_api::agent::{ObservedContainer, TaskKey};
use cj_runtime::{
    Container, ContainerRuntime, ContainerState, ContainerStatus, RuntimeError, labels,
};

#[derive(Default)]
pub(crate) struct InspectCache {
    entries: HashMap<String, (ContainerState, ContainerStatus)>,
}

impl InspectCache {
    pub fn forget(&mut self, container_id: &str) {
        self.entries.remove(container_id);
    }
}

/// What containers' labels say that only the agent acts on, by container id.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    /// The drain of each container that has one, in milliseconds.
    pub drain_ms: HashMap<String, u64>,
    /// Containers never started that were created to seed volumes (the volumes' names) or to
    /// unpack an artifact (no volume): a seeding or unpacking that did not finish.
    pub unfinished_seeds: HashMap<String, Vec<String>>,
}

/// Every container of this installation (`cluster`) on the host that names its task.
pub(crate) async fn observe<R: ContainerRuntime>(
    runtime: &R,
    cluster: &str,
    cache: &std::sync::Mutex<InspectCache>,
) -> Result<(Vec<ObservedContainer>, Notes), RuntimeError> {
    let containers = runtime.list(&[(labels::CLUSTER, cluster)]).await?;
    let mut observed = Vec::with_capacity(containers.len());
    let mut notes = Notes::default();
    for container in &containers {
        let Some(key) = task_key(&container.labels) else {
            continue;
        };
        if let Ok(millis @ 1..) = container.label(labels::DRAIN_MS).parse::<u64>() {
            notes.drain_ms.insert(container.id.clone(), millis);
        }
        let seeding = container.label(labels::SEEDING);
        if container.state == ContainerState::Created && !seeding.is_empty() {
            let volumes = seeding.split(',').map(str::to_owned).collect();
            notes.unfinished_seeds.insert(container.id.clone(), volumes);
        }
        let artifact = container.label(labels::ARTIFACT);
        if container.state == ContainerState::Created && !artifact.is_empty() {
            notes
                .unfinished_seeds
                .entry(container.id.clone())
                .or_default();
        }
        let mut entry = observed_container(key, container);
        let cached = lock(cache)
            .entries
            .get(&container.id)
            .filter(|(state, _)| *state == container.state)
            .cloned();
        let status = match cached {
            Some((_, status)) => Some(status),
            None => match runtime.inspect(&container.id).await {
                Ok((status, _)) => {
                    lock(cache)
                        .entries
                        .insert(container.id.clone(), (container.state, status.clone()));
                    Some(status)
                }
                // Removed between list and inspect: it is gone, leave it out.
                Err(RuntimeError::NoSuchContainer(_)) => continue,
                Err(error) => return Err(error),
            },
        };
        if let Some(status) = status {
            entry.image_id = status.image_id;
            entry.started_at = status.started_at;
            entry.finished_at = status.finished_at;
            entry.exit_code = status.exit_code;
        }
        observed.push(entry);
    }
    let live_ids: std::collections::HashSet<&str> =
        containers.iter().map(|c| c.id.as_str()).collect();
    lock(cache)
        .entries
        .retain(|id, _| live_ids.contains(id.as_str()));
    Ok((observed, notes))
}

/// The task a container's (or a volume's) labels name, if they carry all of its parts.
pub(crate) fn task_key(labels: &BTreeMap<String, String>) -> Option<TaskKey> {
    Some(TaskKey {
        env: labels.get(labels::ENV)?.clone(),
        service: labels.get(labels::SERVICE)?.clone(),
        job: labels.get(labels::JOB)?.clone(),
        task: labels.get(labels::TASK)?.clone(),
    })
}

/// What the engine's list and the labels say of a container; the inspect adds the rest.
fn observed_container(key: TaskKey, container: &Container) -> ObservedContainer {
    ObservedContainer {
        key,
        id: container.id.clone(),
        name: container.name.clone(),
        image: container.image.clone(),
        image_id: String::new(),
        version: container.label(labels::VERSION).parse().unwrap_or(0),
        config_hash: container.label(labels::CONFIG_HASH).to_owned(),
        declared_host: container.label(labels::HOST).to_owned(),
        state: container.state,
        created: container.created,
        started_at: None,
        finished_at: None,
        exit_code: None,
        health: None,
        health_detail: None,
        leaving: false,
    }
}

pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
