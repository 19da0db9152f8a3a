//! Rows several pages show: a task as the overview lists it, and the environments to choose
//! from.

use cj_api::TaskStatus;
use time::OffsetDateTime;

use super::view::{Moment, bytes, encode, percent, state_class};
use crate::error::Failure;
use crate::state::ServerState;

/// One task, formatted for a table row.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub link: String,
    pub history: String,
    pub env: String,
    pub service: String,
    pub job: String,
    pub task: String,
    pub state: String,
    pub state_class: &'static str,
    pub detail: String,
    pub health: String,
    pub health_class: &'static str,
    /// `v3`, or `v2 → v3` while it moves.
    pub version: String,
    pub host: String,
    pub uptime: Option<Moment>,
    pub cpu: String,
    pub memory: String,
}

impl TaskRow {
    pub fn new(status: &TaskStatus, now: OffsetDateTime) -> TaskRow {
        let version = match (status.version, status.desired_version) {
            (Some(running), Some(wanted)) if running != wanted => format!("v{running} → v{wanted}"),
            (Some(running), _) => format!("v{running}"),
            (None, Some(wanted)) => format!("(v{wanted})"),
            (None, None) => String::new(),
        };
        let health = status.health.clone().unwrap_or_default();
        let running = status.state == "running";
        TaskRow {
            link: task_link(&status.env, &status.service, &status.job, &status.task),
            history: history_link(&status.env, &status.service, &status.job),
            env: status.env.clone(),
            service: status.service.clone(),
            job: status.job.clone(),
            task: status.task.clone(),
            state_class: state_class(&status.state),
            state: status.state.clone(),
            detail: status.detail.clone().unwrap_or_default(),
            health_class: state_class(&health),
            health,
            version,
            host: status
                .actual_host
                .clone()
                .unwrap_or_else(|| status.host.clone()),
            uptime: running
                .then(|| Moment::since(status.started_at.as_deref(), now))
                .flatten(),
            cpu: status.cpu_percent.map(percent).unwrap_or_default(),
            memory: status.memory_bytes.map(bytes).unwrap_or_default(),
        }
    }
}

pub fn task_link(env: &str, service: &str, job: &str, task: &str) -> String {
    format!(
        "/ui/task/{}/{}/{}/{}",
        encode(env),
        encode(service),
        encode(job),
        encode(task)
    )
}

pub fn history_link(env: &str, service: &str, job: &str) -> String {
    format!(
        "/ui/history/{}/{}/{}",
        encode(env),
        encode(service),
        encode(job)
    )
}

/// The environments that exist now (not destroyed), by name.
pub fn env_names(state: &ServerState) -> Result<Vec<String>, Failure> {
    state.live_env_names()
}

/// A choice in an environment picker.
#[derive(Debug, Clone)]
pub struct Choice {
    pub name: String,
    pub selected: bool,
}

/// What a page with an environment picker (`?env=NAME`, empty or absent for all) shows: the
/// environments, and the picker's choices with the chosen one selected.
pub fn pick_envs(
    state: &ServerState,
    chosen: Option<String>,
) -> Result<(Vec<String>, Vec<Choice>), Failure> {
    let chosen = chosen.filter(|env| !env.is_empty());
    let names = env_names(state)?;
    let choices = names
        .iter()
        .map(|name| Choice {
            name: name.clone(),
            selected: Some(name) == chosen.as_ref(),
        })
        .collect();
    let shown = match chosen {
        Some(env) => vec![env],
        None => names,
    };
    Ok((shown, choices))
}
