//! Waiting for tasks to reach a goal (running the wanted configuration and passing its check,
//! or gone), while forwarding their progress. `up`, `down` and rollouts all wait this way.

use std::collections::BTreeMap;
use std::time::Duration;

use cj_agent::{Health, Phase, TaskKey};
use cj_api::{OperationEvent, TaskFailure};
use tokio::sync::{broadcast, mpsc};

use crate::observed::{ProgressKind, TaskProgress};
use crate::state::ServerState;

/// Where a task must get to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// A live container of this config hash that passes its check (if it has one).
    Ready { config_hash: String },
    /// No container at all.
    Gone,
}

impl ServerState {
    /// Waits until every task reaches its goal. Returns the tasks that failed (a failure to
    /// start, a kept dead container, a failed check) and those still pending at the deadline.
    /// Only progress after `since_generation` counts, so old failures do not end a new wait.
    pub async fn wait_for_tasks(
        &self,
        tasks: &[(TaskKey, Goal)],
        since_generation: u64,
        timeout: Duration,
        mut progress: broadcast::Receiver<TaskProgress>,
        events: &mpsc::Sender<OperationEvent>,
    ) -> Vec<TaskFailure> {
        let deadline = cj_agent::later(tokio::time::Instant::now(), timeout);
        let mut changed = self.observed.subscribe_changed();
        // Failures seen on the progress stream: the latest phase may already have moved on (a
        // failure is followed by backing off), but the wait must still end on it.
        let mut seen_failures: BTreeMap<TaskKey, String> = BTreeMap::new();
        loop {
            let mut pending = Vec::new();
            let mut failures = Vec::new();
            for (key, goal) in tasks {
                match self.task_outcome(key, goal, since_generation, &seen_failures) {
                    Outcome::Reached => {}
                    Outcome::Failed(reason) => failures.push(TaskFailure {
                        task: key.to_string(),
                        reason,
                    }),
                    Outcome::Pending => pending.push(key),
                }
            }
            if pending.is_empty() {
                // Show what arrived with the state that ended the wait.
                while let Ok(update) = progress.try_recv() {
                    forward(tasks, update, &mut seen_failures, events).await;
                }
                return failures;
            }
            tokio::select! {
                // Progress first, so it is shown before the state change it led to ends the wait.
                biased;
                received = progress.recv() => {
                    if let Ok(update) = received {
                        forward(tasks, update, &mut seen_failures, events).await;
                    }
                }
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    failures.extend(pending.into_iter().map(|key| TaskFailure {
                        task: key.to_string(),
                        reason: format!("timed out after {}s waiting for the task", timeout.as_secs()),
                    }));
                    return failures;
                }
            }
        }
    }

    fn task_outcome(
        &self,
        key: &TaskKey,
        goal: &Goal,
        since_generation: u64,
        seen_failures: &BTreeMap<TaskKey, String>,
    ) -> Outcome {
        let containers = self.observed.containers_of(key);
        let Goal::Ready { config_hash } = goal else {
            return if containers.is_empty() {
                Outcome::Reached
            } else {
                Outcome::Pending
            };
        };
        let live = containers
            .iter()
            .map(|(_, c)| c)
            .find(|c| c.is_live() && c.config_hash == *config_hash);
        match live.map(|c| (c.health, c.health_detail.clone())) {
            Some((None | Some(Health::Healthy), _)) => return Outcome::Reached,
            Some((Some(Health::Unhealthy), detail)) => {
                return Outcome::Failed(format!("unhealthy: {}", detail.unwrap_or_default()));
            }
            Some((Some(Health::Starting), _)) => {}
            // A task no host can take fails the wait at once, with why, rather than timing out.
            None => {
                if let Some(reason) = self.scheduler.unplaced_reason(key) {
                    return Outcome::Failed(format!("not placed: {reason}"));
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
            Some(reason) => Outcome::Failed(reason),
            None => Outcome::Pending,
        }
    }
}

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
    Failed(String),
    Pending,
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
