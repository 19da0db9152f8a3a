//! `/ui/deployments`: the newest deployments of every environment (`?env=` for one), their
//! batches and each task's progress and health, with promote, abort and rollback forms for
//! callers who may deploy.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Query, State};
use cj_api::{BatchState, Deployment, DeploymentStatus, TaskStatus};
use serde::Deserialize;
use time::OffsetDateTime;

use super::rows::{Choice, pick_envs, task_link};
use super::view::{Chrome, Moment, state_class};
use crate::edge::auth::{Identity, Session};
use crate::error::Failure;
use crate::state::ServerState;

/// How many deployments of each environment the page shows (the newest).
const SHOWN_PER_ENV: usize = 20;

#[derive(Debug, Deserialize)]
pub struct DeploymentsQuery {
    env: Option<String>,
}

pub struct TaskProgress {
    pub name: String,
    pub link: String,
    pub state: String,
    pub state_class: &'static str,
    pub health: String,
    pub version: String,
}

pub struct BatchView {
    pub number: usize,
    pub canary: bool,
    pub state: &'static str,
    pub state_class: &'static str,
    pub tasks: Vec<TaskProgress>,
}

pub struct JobView {
    pub job: String,
    pub from_version: u64,
    pub to_version: u64,
    pub done: bool,
    pub batches: Vec<BatchView>,
}

pub struct DeploymentView {
    pub id: String,
    pub env: String,
    pub service: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub status_class: &'static str,
    pub user: String,
    pub created: Option<Moment>,
    pub updated: Option<Moment>,
    pub message: String,
    pub active: bool,
    pub awaiting: bool,
    /// Finished: each job may be rolled back to the version it came from.
    pub finished: bool,
    pub jobs: Vec<JobView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/deployments.html")]
pub struct DeploymentsPage {
    chrome: Chrome,
    envs: Vec<Choice>,
    deployments: Vec<DeploymentView>,
}

pub async fn page(
    State(state): State<Arc<ServerState>>,
    caller: Identity,
    session: Option<Extension<Session>>,
    Query(query): Query<DeploymentsQuery>,
) -> Result<DeploymentsPage, Failure> {
    let (shown, envs) = pick_envs(&state, query.env)?;
    let now = OffsetDateTime::now_utc();
    let mut deployments = Vec::new();
    for env in &shown {
        let found = state.deployments(env, SHOWN_PER_ENV)?;
        if found.is_empty() {
            continue;
        }
        let tasks: BTreeMap<(String, String, String), TaskStatus> = state
            .status(env, None)?
            .into_iter()
            .map(|task| {
                let key = (task.service.clone(), task.job.clone(), task.task.clone());
                (key, task)
            })
            .collect();
        deployments.extend(found.iter().map(|d| view(d, &tasks, now)));
    }
    // Active ones first (a stable sort keeps each group newest first).
    deployments.sort_by_key(|deployment| std::cmp::Reverse(deployment.active));
    Ok(DeploymentsPage {
        chrome: Chrome::new("Deployments", &caller, session.as_deref()),
        envs,
        deployments,
    })
}

fn view(
    deployment: &Deployment,
    tasks: &BTreeMap<(String, String, String), TaskStatus>,
    now: OffsetDateTime,
) -> DeploymentView {
    let status = deployment.status.as_str();
    let jobs = deployment
        .jobs
        .iter()
        .map(|job| JobView {
            job: job.job.clone(),
            from_version: job.from_version,
            to_version: job.to_version,
            done: job.done,
            batches: job
                .batches
                .iter()
                .enumerate()
                .map(|(index, batch)| {
                    let state = batch_word(batch.state);
                    BatchView {
                        number: index + 1,
                        canary: batch.canary,
                        state,
                        state_class: state_class(state),
                        tasks: batch
                            .tasks
                            .iter()
                            .map(|task| {
                                let key =
                                    (deployment.service.clone(), job.job.clone(), task.clone());
                                progress(&deployment.env, &key, tasks.get(&key))
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    DeploymentView {
        id: deployment.id.clone(),
        env: deployment.env.clone(),
        service: deployment.service.clone(),
        kind: deployment.kind.as_str(),
        status,
        status_class: state_class(status),
        user: deployment.user.clone(),
        created: Moment::ago(Some(&deployment.created), now),
        updated: Moment::ago(Some(&deployment.updated), now),
        message: deployment.message.clone().unwrap_or_default(),
        active: deployment.status.is_active(),
        awaiting: deployment.status == DeploymentStatus::AwaitingPromotion,
        finished: deployment.status == DeploymentStatus::Succeeded,
        jobs,
    }
}

fn progress(
    env: &str,
    (service, job, task): &(String, String, String),
    status: Option<&TaskStatus>,
) -> TaskProgress {
    let state = status.map_or("unknown".to_owned(), |s| s.state.clone());
    TaskProgress {
        name: task.clone(),
        link: task_link(env, service, job, task),
        state_class: state_class(&state),
        state,
        health: status.and_then(|s| s.health.clone()).unwrap_or_default(),
        version: status
            .and_then(|s| s.version)
            .map(|v| format!("v{v}"))
            .unwrap_or_default(),
    }
}

fn batch_word(state: BatchState) -> &'static str {
    match state {
        BatchState::Pending => "pending",
        BatchState::InProgress => "in progress",
        BatchState::Healthy => "healthy",
        BatchState::Failed => "failed",
    }
}
