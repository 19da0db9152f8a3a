//! The HTTP API (`/v1/...`): thin handlers that parse the request, call the state, and shape
//! the answer. Long operations (`up`, `down`) and logs answer with a stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use cj_agent::TaskKey;
use cj_api::{
    DEFAULT_ENV, InspectResponse, OperationRequest, PushRequest, PushResponse, ServerInfo,
    TaskStatus, USER_HEADER, VersionInfo,
};
use cj_runtime::{ContainerRuntime, LogChunk};
use cj_store::StoreJson;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiFailure;
use crate::keys;
use crate::operations::{DEFAULT_WAVE_TIMEOUT, Direction, OperationPlan};
use crate::releases;
use crate::state::{DesiredJob, ServerState};
use crate::status::current_container;

type AppState = State<Arc<ServerState>>;

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/push", post(push))
        .route("/v1/services", get(services))
        .route("/v1/versions", get(versions))
        .route("/v1/up", post(up))
        .route("/v1/down", post(down))
        .route("/v1/status", get(status))
        .route("/v1/inspect", get(inspect))
        .route("/v1/logs", get(logs))
        .route("/v1/history", get(history))
        .route("/v1/rolling-update", post(releases::rolling_update))
        .route("/v1/rollback", post(releases::rollback))
        .route("/v1/reload", post(releases::reload))
        .route("/v1/update", post(releases::update))
        .route("/v1/update/tags", get(releases::update_candidates))
        .route("/v1/promote", post(releases::promote))
        .route("/v1/abort", post(releases::abort))
        .route("/v1/deployments", get(releases::list))
        .route("/v1/diff", post(releases::diff))
        .route("/v1/versions/diff", get(releases::version_diff))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
pub struct Scope {
    pub env: Option<String>,
    pub target: Option<String>,
}

impl Scope {
    pub fn env(&self) -> &str {
        self.env.as_deref().unwrap_or(DEFAULT_ENV)
    }

    pub fn target(&self) -> Result<&str, ApiFailure> {
        self.target
            .as_deref()
            .ok_or_else(|| ApiFailure::BadRequest("a target is required".into()))
    }
}

pub fn user(headers: &HeaderMap) -> String {
    headers
        .get(USER_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("unknown")
        .to_owned()
}

async fn info(State(state): AppState) -> Result<Json<ServerInfo>, ApiFailure> {
    let hosts = state
        .observed
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    Ok(Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        cluster: state.cluster.clone(),
        hosts,
        revision: state.store.revision()?,
    }))
}

async fn push(
    State(state): AppState,
    headers: HeaderMap,
    Json(request): Json<PushRequest>,
) -> Result<Json<PushResponse>, ApiFailure> {
    let user = user(&headers);
    let response = state.push(
        &request.env,
        &request.file,
        &request.source,
        &user,
        request.check_revision,
    )?;
    tracing::info!(
        service = response.service,
        version = response.version,
        env = response.env,
        "pushed"
    );
    Ok(Json(response))
}

async fn services(
    State(state): AppState,
    Query(scope): Query<Scope>,
) -> Result<Json<Vec<VersionInfo>>, ApiFailure> {
    let mut latest = Vec::new();
    for service in state.service_names(scope.env())? {
        if let Some(version) = state.latest_version(scope.env(), &service)? {
            latest.push(state.version(scope.env(), &service, version)?.info());
        }
    }
    Ok(Json(latest))
}

async fn versions(
    State(state): AppState,
    Query(scope): Query<Scope>,
) -> Result<Json<Vec<VersionInfo>>, ApiFailure> {
    let resolved = state.resolve(scope.env(), scope.target()?)?;
    Ok(Json(state.version_infos(scope.env(), &resolved.service)?))
}

async fn up(
    State(state): AppState,
    headers: HeaderMap,
    Json(request): Json<OperationRequest>,
) -> Result<Response, ApiFailure> {
    operation(state, Direction::Up, &headers, &request)
}

async fn down(
    State(state): AppState,
    headers: HeaderMap,
    Json(request): Json<OperationRequest>,
) -> Result<Response, ApiFailure> {
    operation(state, Direction::Down, &headers, &request)
}

/// Plans the operation (a refusal is an error status, with nothing changed) and streams it.
fn operation(
    state: Arc<ServerState>,
    direction: Direction,
    headers: &HeaderMap,
    request: &OperationRequest,
) -> Result<Response, ApiFailure> {
    let (env, target, user) = (&request.env, &request.target, user(headers));
    let timeout = wave_timeout(request);
    let plan = match direction {
        Direction::Up => state.plan_up(env, target, &user, timeout)?,
        Direction::Down => state.plan_down(env, target, &user, timeout)?,
    };
    Ok(stream_operation(state, plan))
}

fn wave_timeout(request: &OperationRequest) -> Duration {
    request
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WAVE_TIMEOUT)
}

/// Starts the operation in its own task (it finishes even if the client goes away) and answers
/// with its events as newline-delimited JSON.
fn stream_operation(state: Arc<ServerState>, plan: OperationPlan) -> Response {
    let (events, receiver) = mpsc::channel(256);
    tokio::spawn(state.run_operation(plan, events));
    let lines = ReceiverStream::new(receiver).map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

async fn status(
    State(state): AppState,
    Query(scope): Query<Scope>,
) -> Result<Json<Vec<TaskStatus>>, ApiFailure> {
    Ok(Json(state.status(scope.env(), scope.target.as_deref())?))
}

/// The one task a target names (a job with a single task counts).
fn one_task(
    state: &ServerState,
    env: &str,
    target: &str,
) -> Result<(TaskKey, TaskStatus, Option<String>), ApiFailure> {
    let rows = state.status(env, Some(target))?;
    let [row] = rows.as_slice() else {
        let names: Vec<String> = rows
            .iter()
            .map(|r| format!("{}/{}/{}", r.service, r.job, r.task))
            .collect();
        return Err(ApiFailure::BadRequest(format!(
            "\"{target}\" names several tasks; name one: {}",
            names.join(", ")
        )));
    };
    let key = TaskKey {
        env: env.into(),
        service: row.service.clone(),
        job: row.job.clone(),
        task: row.task.clone(),
    };
    // The container identity the task wants, as assignments compute it (a task's own version
    // during a rollout, its restart generation after a reload).
    let desired: Option<DesiredJob> =
        state
            .store
            .get_json(&keys::desired(env, &key.service, &key.job))?;
    let hash = match desired {
        Some(desired) => state
            .desired_tasks(&desired)?
            .into_iter()
            .find(|task| task.key == key)
            .map(|task| task.config_hash()),
        None => None,
    };
    Ok((key, row.clone(), hash))
}

async fn inspect(
    State(state): AppState,
    Query(scope): Query<Scope>,
) -> Result<Json<InspectResponse>, ApiFailure> {
    let (key, task, hash) = one_task(&state, scope.env(), scope.target()?)?;
    let containers = state.containers_of(&key);
    let (_, current) = current_container(&containers, hash.as_deref()).ok_or_else(|| {
        ApiFailure::NotFound(format!(
            "task {key} has no container (state: {})",
            task.state
        ))
    })?;
    let (_, container) = state.runtime.inspect(&current.id).await?;
    Ok(Json(InspectResponse {
        task,
        config_hash: Some(current.config_hash.clone()),
        container,
    }))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    env: Option<String>,
    target: String,
    tail: Option<u32>,
    #[serde(default)]
    follow: bool,
    /// A specific container of the task (e.g. a replaced one), by id or id prefix.
    container: Option<String>,
}

async fn logs(
    State(state): AppState,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ApiFailure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let (key, task, hash) = one_task(&state, env, &query.target)?;
    let container_id = match &query.container {
        Some(wanted) => {
            let records: Vec<cj_api::ContainerRecord> = state
                .store
                .range_json(&keys::containers(env, &key.service, &key.job))?;
            records
                .into_iter()
                .find(|record| record.task == key.task && record.id.starts_with(wanted.as_str()))
                .map(|record| record.id)
                .ok_or_else(|| {
                    ApiFailure::NotFound(format!("task {key} never ran a container {wanted}"))
                })?
        }
        None => {
            let containers = state.containers_of(&key);
            current_container(&containers, hash.as_deref())
                .map(|(_, c)| c.id.clone())
                .ok_or_else(|| {
                    ApiFailure::NotFound(format!(
                        "task {key} has no container (state: {})",
                        task.state
                    ))
                })?
        }
    };
    // Fail here, with a status code, if Docker no longer has the container.
    state.runtime.inspect(&container_id).await?;
    let chunks = state
        .runtime
        .logs(&container_id, query.tail, query.follow)
        .map(|chunk| {
            Ok::<_, Infallible>(match chunk {
                Ok(LogChunk::Stdout(bytes) | LogChunk::Stderr(bytes)) => bytes,
                Err(error) => Bytes::from(format!("\n[coding-job: log stream ended: {error}]\n")),
            })
        });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(chunks),
    )
        .into_response())
}

async fn history(
    State(state): AppState,
    Query(scope): Query<Scope>,
) -> Result<Json<cj_api::HistoryResponse>, ApiFailure> {
    Ok(Json(state.history(scope.env(), scope.target()?)?))
}
