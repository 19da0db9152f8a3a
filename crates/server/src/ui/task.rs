//! `/ui/task/{env}/{service}/{job}/{task}`: one task: our view, Docker's inspect (secret
//! values masked as `GET /v1/inspect` masks them), its live logs, the containers it ran, and
//! an exec terminal for callers who may deploy.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, State};
use cj_api::ContainerRecord;
use time::OffsetDateTime;

use super::rows::{TaskRow, history_link};
use super::view::{Chrome, Moment, encode};
use crate::edge::auth::{Identity, Session};
use crate::error::Failure;
use crate::state::ServerState;

/// A container the task ran.
pub struct ContainerRow {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub version: u64,
    pub host: String,
    pub created: Option<Moment>,
    pub started: Option<Moment>,
    pub finished: Option<Moment>,
    pub exit_code: String,
    pub restarts: u32,
    pub removed: Option<Moment>,
    pub logs: String,
}

impl ContainerRow {
    pub fn new(record: &ContainerRecord, env: &str, target: &str, now: OffsetDateTime) -> Self {
        ContainerRow {
            id: record.id.clone(),
            short_id: record.id.chars().take(12).collect(),
            name: record.name.clone(),
            version: record.version,
            host: record.host.clone(),
            created: Moment::ago(Some(&record.created), now),
            started: Moment::ago(record.started.as_deref(), now),
            finished: Moment::ago(record.finished.as_deref(), now),
            exit_code: record
                .exit_code
                .map(|code| code.to_string())
                .unwrap_or_default(),
            restarts: record.restarts,
            removed: Moment::ago(record.removed.as_deref(), now),
            logs: format!(
                "/v1/logs?env={}&target={}&container={}",
                encode(env),
                encode(target),
                encode(&record.id)
            ),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/task.html")]
pub struct TaskPage {
    chrome: Chrome,
    row: TaskRow,
    history: String,
    image: String,
    container_id: String,
    inspect: Result<String, String>,
    /// The `/v1/logs` URL of the current container (the script adds `follow=true`).
    logs: String,
    containers: Vec<ContainerRow>,
    /// The `/v1/exec` URL the terminal opens, for callers who may deploy.
    exec: Option<String>,
}

/// How many of the task's containers the page lists (the newest).
const CONTAINERS_SHOWN: usize = 50;

pub async fn page(
    State(state): State<Arc<ServerState>>,
    caller: Identity,
    session: Option<Extension<Session>>,
    Path((env, service, job, task)): Path<(String, String, String, String)>,
) -> Result<TaskPage, Failure> {
    let target = format!("{service}/{job}/{task}");
    let (_, status, _) = crate::edge::api::handlers::one_task(&state, &env, &target)?;
    let now = OffsetDateTime::now_utc();
    let inspect = match crate::edge::api::handlers::inspect_task(&state, &env, &target).await {
        Ok(answer) => Ok(serde_json::to_string_pretty(&answer.container).unwrap_or_default()),
        Err(failure) => Err(failure.to_string()),
    };
    let history = state.history(&env, &format!("{service}/{job}"), 1000)?;
    let containers: Vec<ContainerRow> = history
        .containers
        .iter()
        .rev()
        .filter(|record| record.task == task)
        .take(CONTAINERS_SHOWN)
        .map(|record| ContainerRow::new(record, &env, &target, now))
        .collect();
    let chrome = Chrome::new(format!("{env} · {target}"), &caller, session.as_deref());
    let query = format!("env={}&target={}", encode(&env), encode(&target));
    let exec = chrome
        .can_deploy
        .then(|| format!("/v1/exec?{query}&stdin=true&cmd=sh"));
    Ok(TaskPage {
        row: TaskRow::new(&status, now),
        history: history_link(&env, &service, &job),
        image: status.image.clone().unwrap_or_default(),
        container_id: status.container_id.clone().unwrap_or_default(),
        inspect,
        logs: format!("/v1/logs?{query}"),
        containers,
        exec,
        chrome,
    })
}
