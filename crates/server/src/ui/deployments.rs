//! `/ui/deployments`: the newest deployments of every environment (`?env=` for one), their
//! batches and each task's progress and health, with promote, abort and rollback forms for
//! callers who may deploy.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Query, State};
use cj_api::{BatchState, Deployment, DeploymentStatus, JobRollout, TaskStatus, Verdict};
use serde::Deserialize;
use time::OffsetDateTime;

use super::chart::sparkline;
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
    /// The canary analysis, once it has measured.
    pub analysis: Option<AnalysisView>,
}

/// A canary analysis: a chart of each measure per interval, and each measurement in words.
pub struct AnalysisView {
    pub summary: String,
    pub charts: Vec<(String, String)>,
    pub measurements: Vec<MeasurementView>,
}

pub struct MeasurementView {
    pub at: Option<Moment>,
    pub verdict: &'static str,
    pub verdict_class: &'static str,
    pub line: String,
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
            analysis: analysis_view(job, now),
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
        awaiting: matches!(
            deployment.status,
            DeploymentStatus::AwaitingPromotion | DeploymentStatus::Analysing
        ),
        finished: deployment.status == DeploymentStatus::Succeeded,
        jobs,
    }
}

fn analysis_view(job: &JobRollout, now: OffsetDateTime) -> Option<AnalysisView> {
    let policy = job.policy.analysis.as_ref()?;
    if job.analysis.is_empty() {
        return None;
    }
    let measurements = &job.analysis;
    let summary = format!(
        "Canary analysis: every {}, {} passing measurements promote, more than {} failing ones \
         roll back",
        cj_api::seconds_text(policy.interval_ms),
        policy.checks,
        policy.failure_limit
    );
    let mut charts = Vec::new();
    let most_requests = measurements
        .iter()
        .map(|m| m.requests)
        .max()
        .unwrap_or(0)
        .max(1);
    let requests: Vec<f64> = measurements
        .iter()
        .map(|m| m.requests as f64 * 100.0 / most_requests as f64)
        .collect();
    charts.push((
        format!("Requests (up to {most_requests})"),
        sparkline(
            &format!("{} canary requests per interval", job.job),
            &requests,
        ),
    ));
    let rates: Vec<f64> = measurements
        .iter()
        .map(|m| m.success_rate_bp.map_or(0.0, |bp| bp as f64 / 100.0))
        .collect();
    charts.push((
        "Success rate (0-100%)".to_owned(),
        sparkline(
            &format!("{} canary success rate per interval", job.job),
            &rates,
        ),
    ));
    let p99s: Vec<u64> = measurements.iter().map(|m| m.p99_ms.unwrap_or(0)).collect();
    let threshold = policy.latency_p99.map_or(0, |t| t.value);
    let ceiling = p99s
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(threshold)
        .max(1);
    let p99_percents: Vec<f64> = p99s
        .iter()
        .map(|p99| *p99 as f64 * 100.0 / ceiling as f64)
        .collect();
    charts.push((
        format!("p99 latency (up to {})", cj_api::latency_text(ceiling)),
        sparkline(
            &format!("{} canary p99 latency per interval", job.job),
            &p99_percents,
        ),
    ));
    if policy.log_errors.is_some() {
        let errors: Vec<u64> = measurements
            .iter()
            .map(|m| m.log_errors.unwrap_or(0))
            .collect();
        let most = errors.iter().copied().max().unwrap_or(0).max(1);
        let percents: Vec<f64> = errors
            .iter()
            .map(|e| *e as f64 * 100.0 / most as f64)
            .collect();
        charts.push((
            format!("Log errors (up to {most})"),
            sparkline(
                &format!("{} canary log errors per interval", job.job),
                &percents,
            ),
        ));
    }
    let measurements = measurements
        .iter()
        .map(|m| {
            let verdict = m.verdict.as_str();
            let line = m.line();
            let line = line
                .split_once(": ")
                .map_or(line.clone(), |(_, rest)| rest.to_owned());
            MeasurementView {
                at: Moment::ago(Some(&m.at), now),
                verdict,
                verdict_class: match m.verdict {
                    Verdict::Pass => "ok",
                    Verdict::Fail => "bad",
                    Verdict::Inconclusive => "busy",
                },
                line,
            }
        })
        .collect();
    Some(AnalysisView {
        summary,
        charts,
        measurements,
    })
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
