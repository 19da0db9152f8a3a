//! Waiting for tasks to reach a goal (running the wanted configuration and passing its check,
//! or gone), while forwarding their progress. `up`, `down` and rollouts all wait this way.

use std::collections::BTreeMap;
use std::time::Duration;

use cj_api::agent::link::LogsOptions;
use cj_api::agent::{Health, Phase, TaskKey};
use cj_api::{OperationEvent, TaskFailure, WaitingForHost};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::hosts::agent_link::StreamItem;

use crate::hosts::observed::{ProgressKind, TaskProgress};
use crate::state::ServerState;

/// How long a container of a task without a check must have run, as this server saw it, before
/// an operation counts it as running. A start that fails at once (a wrong flag, a missing file,
/// a port in use) is the most common failure; a container that dies within this time fails `up`
/// instead of being reported running. A task with a check is running once it passes it.
pub const MIN_RUNNING: Duration = Duration::from_millis(500);

/// The least time between two looks at the tasks a wait waits for.
const PASS_GAP: Duration = Duration::from_millis(20);

/// One look at a wait's tasks.
#[derive(Default)]
struct Pass {
    result: WaitResult,
    /// Indices of the tasks still pending.
    pending: Vec<usize>,
    /// The failures that are deaths, by index, with their container's host and id.
    deaths: Vec<(usize, String, String)>,
    /// When a pending task will have got there with no news (it will have run long enough).
    look_again: Option<Instant>,
}

/// Where a task must get to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// A live container of this config hash, on a host the task is assigned to, that passes its
    /// check (or, without one, has run for [`MIN_RUNNING`]), with no death of that
    /// configuration since the operation began.
    Ready { config_hash: String },
    /// No container at all.
    Gone,
}

/// How a wait ended.
#[derive(Debug, Default)]
pub struct WaitResult {
    pub failures: Vec<TaskFailure>,
    /// `Gone` tasks whose only containers are on hosts without an agent connected: nothing can
    /// remove them now; the host does it when it is back.
    pub waiting_for_host: Vec<WaitingForHost>,
}

impl ServerState {
    /// Waits until every task reaches its goal. Returns the tasks that failed (a failure to
    /// start, a death, a kept dead container, a failed check) and those still pending at the
    /// deadline. Only what happened after `since_generation` counts, so old failures do not end
    /// a new wait.
    pub async fn wait_for_tasks(
        &self,
        tasks: &[(TaskKey, Goal)],
        since_generation: u64,
        timeout: Duration,
        mut progress: broadcast::Receiver<TaskProgress>,
        events: &mpsc::Sender<OperationEvent>,
    ) -> WaitResult {
        let deadline = cj_api::time::later(Instant::now(), timeout);
        let mut changed = self.observed.subscribe_changed();
        let mut joined = self.links.subscribe_joined();
        // Failures seen on the progress stream: the latest phase may already have moved on (a
        // failure is followed by backing off), but the wait must still end on it.
        let mut seen_failures: BTreeMap<TaskKey, String> = BTreeMap::new();
        // Each pass looks only at the tasks still pending: with thousands of tasks and a
        // report every millisecond, looking at all of them each time is what would take the
        // time. Once none is pending, one pass over all of them decides (a task that got there
        // may have died since).
        let mut pending: Vec<usize> = (0..tasks.len()).collect();
        let mut last_pass: Option<Instant> = None;
        loop {
            if let Some(last) = last_pass {
                // Reports come in bursts: one pass per burst, not one per report.
                tokio::time::sleep_until(last + PASS_GAP).await;
            }
            last_pass = Some(Instant::now());
            let mut pass = self.pass(tasks, &pending, since_generation, &seen_failures);
            if pass.pending.is_empty() {
                let all: Vec<usize> = (0..tasks.len()).collect();
                pass = self.pass(tasks, &all, since_generation, &seen_failures);
            }
            if pass.pending.is_empty() {
                // Show what arrived with the state that ended the wait.
                while let Ok(update) = progress.try_recv() {
                    forward(tasks, update, &mut seen_failures, events).await;
                }
                self.add_log_tails(&mut pass.result.failures, &pass.deaths)
                    .await;
                return pass.result;
            }
            pending = pass.pending;
            let settled = async {
                match pass.look_again {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Progress first, so it is shown before the state change it led to ends the wait.
                biased;
                received = progress.recv() => {
                    if let Ok(update) = received {
                        forward(tasks, update, &mut seen_failures, events).await;
                    }
                }
                _ = changed.changed() => {}
                _ = joined.changed() => {}
                () = settled => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let all: Vec<usize> = (0..tasks.len()).collect();
                    let mut pass = self.pass(tasks, &all, since_generation, &seen_failures);
                    pass.result.failures.extend(pass.pending.iter().map(|index| TaskFailure::new(
                        tasks[*index].0.to_string(),
                        format!("timed out after {}s waiting for the task", timeout.as_secs()),
                    )));
                    self.add_log_tails(&mut pass.result.failures, &pass.deaths).await;
                    return pass.result;
                }
            }
        }
    }

    /// Where each of `tasks[indices]` stands.
    fn pass(
        &self,
        tasks: &[(TaskKey, Goal)],
        indices: &[usize],
        since_generation: u64,
        seen_failures: &BTreeMap<TaskKey, String>,
    ) -> Pass {
        let mut pass = Pass::default();
        for &index in indices {
            let (key, goal) = &tasks[index];
            match self.task_outcome(key, goal, since_generation, seen_failures) {
                Outcome::Reached => {}
                Outcome::Failed(failure) => pass.result.failures.push(failure),
                Outcome::Died(failure, host, container_id) => {
                    pass.deaths
                        .push((pass.result.failures.len(), host, container_id));
                    pass.result.failures.push(failure);
                }
                Outcome::WaitsForHost(host) => pass.result.waiting_for_host.push(WaitingForHost {
                    task: key.to_string(),
                    host,
                }),
                Outcome::Pending(at) => {
                    pass.pending.push(index);
                    if let Some(at) = at {
                        pass.look_again = Some(pass.look_again.map_or(at, |other| other.min(at)));
                    }
                }
            }
        }
        pass
    }

    fn task_outcome(
        &self,
        key: &TaskKey,
        goal: &Goal,
        since_generation: u64,
        seen_failures: &BTreeMap<TaskKey, String>,
    ) -> Outcome {
        let Goal::Ready { config_hash } = goal else {
            let containers = self.observed.containers_of(key);
            let Some((host, _)) = containers.first() else {
                return Outcome::Reached;
            };
            // Containers only a host that is down still has: that host removes them when its
            // agent is back (nothing wants them), so nobody waits for it.
            if containers.iter().all(|(host, _)| !self.host_is_up(host)) {
                return Outcome::WaitsForHost(host.clone());
            }
            return Outcome::Pending(None);
        };
        if let Some(death) = self
            .observed
            .death_since(key, since_generation)
            .filter(|death| death.config_hash == *config_hash)
        {
            let reason = match death.exit_code {
                Some(code) => format!("its container exited with code {code}"),
                None => "its container stopped".to_owned(),
            };
            let failure = TaskFailure {
                exit_code: death.exit_code,
                ..TaskFailure::new(key.to_string(), format!("{reason} on {}", death.host))
            };
            return Outcome::Died(failure, death.host, death.container_id);
        }
        // Only copies on a host it is assigned to whose agent is connected: a stale copy left on
        // a host it moved away from, or one a cut-off host last reported, proves nothing.
        let live = self
            .copies_of(key)
            .into_iter()
            .filter(|(host, _)| self.host_is_up(host))
            .find(|(_, c)| c.is_live() && c.config_hash == *config_hash);
        match live
            .as_ref()
            .map(|(_, c)| (c, c.health, c.health_detail.clone()))
        {
            Some((_, Some(Health::Healthy), _)) => return Outcome::Reached,
            Some((container, None, _)) => {
                return match self.observed.running_since(&container.id) {
                    Some(since) if since.elapsed() >= MIN_RUNNING => Outcome::Reached,
                    Some(since) => Outcome::Pending(Some(since + MIN_RUNNING)),
                    None => Outcome::Pending(None),
                };
            }
            Some((_, Some(Health::Unhealthy), detail)) => {
                return Outcome::Failed(TaskFailure::new(
                    key.to_string(),
                    format!("unhealthy: {}", detail.unwrap_or_default()),
                ));
            }
            Some((_, Some(Health::Starting), _)) => {}
            // A task no host can take fails the wait at once, with why, rather than timing out.
            None => {
                if let Some(reason) = self.scheduler.unplaced_reason(key) {
                    return Outcome::Failed(TaskFailure::new(
                        key.to_string(),
                        format!("not placed: {reason}"),
                    ));
                }
            }
        }
        let recent = self
            .observed
            .progress_of(key)
            .filter(|p| p.generation > since_generation && p.config_hash == *config_hash);
        match recent
            .and_then(|p| failure_reason(&p.kind))
            .or_else(|| seen_failures.get(key).cloned())
        {
            Some(reason) => Outcome::Failed(TaskFailure::new(key.to_string(), reason)),
            None => Outcome::Pending(None),
        }
    }

    /// Adds to each failure whose container is known the last lines it wrote, asked of its host's
    /// agent (briefly: a failure is reported without them rather than late).
    async fn add_log_tails(
        &self,
        failures: &mut [TaskFailure],
        deaths: &[(usize, String, String)],
    ) {
        for (index, host, container_id) in deaths {
            let tail = tokio::time::timeout(
                LOG_TAIL_TIMEOUT,
                self.log_tail(host, container_id, LOG_TAIL_LINES),
            )
            .await;
            if let (Ok(Some(lines)), Some(failure)) = (tail, failures.get_mut(*index)) {
                failure.log_tail = lines;
            }
        }
    }

    async fn log_tail(&self, host: &str, container_id: &str, lines: u32) -> Option<Vec<String>> {
        let stream = self
            .links
            .logs(
                host,
                container_id,
                LogsOptions {
                    tail: Some(lines),
                    ..LogsOptions::default()
                },
            )
            .await
            .ok()?;
        let mut stream = std::pin::pin!(stream);
        let mut text = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                StreamItem::Data(_, bytes) => text.extend_from_slice(&bytes),
                StreamItem::End(_) => break,
            }
            if text.len() > LOG_TAIL_BYTES {
                break;
            }
        }
        let text = String::from_utf8_lossy(&text);
        Some(
            text.lines()
                .map(|line| line.chars().take(LOG_LINE_CHARS).collect())
                .collect(),
        )
    }
}

/// What a failure's log tail may hold: lines, bytes read, characters shown per line.
const LOG_TAIL_LINES: u32 = 10;
const LOG_TAIL_BYTES: usize = 16 * 1024;
const LOG_LINE_CHARS: usize = 300;
const LOG_TAIL_TIMEOUT: Duration = Duration::from_secs(3);

/// Shows a task's progress, and remembers it if it is a failure of the awaited configuration.
async fn forward(
    tasks: &[(TaskKey, Goal)],
    update: TaskProgress,
    seen_failures: &mut BTreeMap<TaskKey, String>,
    events: &mpsc::Sender<OperationEvent>,
) {
    let Some((_, goal)) = tasks.iter().find(|(key, _)| *key == update.key) else {
        return;
    };
    let about_goal =
        matches!(goal, Goal::Ready { config_hash } if *config_hash == update.config_hash);
    if about_goal && let Some(reason) = failure_reason(&update.kind) {
        seen_failures.insert(update.key.clone(), reason);
    }
    let (phase, detail) = describe_progress(&update.kind);
    let _ = events
        .send(OperationEvent::Task {
            task: update.key.to_string(),
            phase,
            detail,
        })
        .await;
}

enum Outcome {
    Reached,
    Failed(TaskFailure),
    /// Failed by the death of this container (host, id): its log's last lines go with it.
    Died(TaskFailure, String, String),
    /// Not there yet; look again at this moment if nothing else happens first.
    Pending(Option<Instant>),
    /// Only a host that is down still has the task's containers.
    WaitsForHost(String),
}

fn failure_reason(kind: &ProgressKind) -> Option<String> {
    match kind {
        ProgressKind::Phase(Phase::Failed { reason } | Phase::Kept { reason, .. }) => {
            Some(reason.clone())
        }
        ProgressKind::Health(Health::Unhealthy, detail) => Some(format!("unhealthy: {detail}")),
        _ => None,
    }
}

/// Progress as a word and an optional detail, for output.
pub fn describe_progress(kind: &ProgressKind) -> (String, Option<String>) {
    let short = |id: &str| Some(id.chars().take(12).collect::<String>());
    match kind {
        ProgressKind::Health(Health::Starting, _) => ("checking".into(), None),
        ProgressKind::Health(Health::Healthy, detail) => ("healthy".into(), Some(detail.clone())),
        ProgressKind::Health(Health::Unhealthy, detail) => {
            ("unhealthy".into(), Some(detail.clone()))
        }
        ProgressKind::Phase(phase) => match phase {
            Phase::Pulling { image } => ("pulling".into(), Some(image.clone())),
            Phase::Creating => ("creating".into(), None),
            Phase::Seeding { volume } => ("seeding".into(), Some(volume.clone())),
            Phase::FetchingArtifact { url } => ("fetching".into(), Some(format!("artifact {url}"))),
            Phase::UnpackingArtifact { path } => {
                ("unpacking".into(), Some(format!("artifact into {path}")))
            }
            Phase::Starting => ("starting".into(), None),
            Phase::Running { container_id } => ("running".into(), short(container_id)),
            Phase::BackingOff { millis, reason } => (
                "restarting".into(),
                Some(format!(
                    "{reason}; next attempt in {:.1}s",
                    *millis as f64 / 1000.0
                )),
            ),
            Phase::Failed { reason } => ("failed".into(), Some(reason.clone())),
            Phase::Kept { reason, .. } => ("exited".into(), Some(reason.clone())),
            Phase::Stopping { container_id } => ("stopping".into(), short(container_id)),
            Phase::Removed => ("removed".into(), None),
        },
    }
}
