//! The HTTP API (`/v1/...`): thin handlers that parse the request, call the state, and shape
//! the answer. Long operations (`up`, `down`) and logs answer with a stream; exec is a
//! WebSocket (`exec`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use cj_api::agent::TaskKey;
use cj_api::{ApiError, OperationEvent};
use cj_api::{
    DEFAULT_ENV, InspectResponse, MAX_TIMEOUT_SECONDS, OperationRequest, PushRequest, PushResponse,
    ServerInfo, TaskStatus, USER_HEADER, VersionInfo,
};
use cj_store::StoreJson;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;

use crate::agent_link::StreamItem;
use crate::auth::{self, Auth, Identity};
use crate::edge;
use crate::error::{ApiFailure, shown};
use crate::extract::{ApiJson, ApiQuery};
use crate::keys;
use crate::operations::{DEFAULT_WAVE_TIMEOUT, Direction, OperationPlan};
use crate::previews;
use crate::releases;
use crate::sanitize;
use crate::state::{AppState, DesiredJob, ServerState};
use crate::status::current_container;
use cj_api::agent::link::StreamKind;

/// Declares the routes once: [`ROUTES`] lists them and `routes()` builds them from the same
/// lines, so the list cannot miss one (the API abuse test covers every route it names).
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        /// Every route of the API, as (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn routes() -> Router<Arc<ServerState>> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
}

api_routes! {
    get "/v1/info" => info,
    get "/v1/agent/connect" => crate::agent_link::connect,
    post "/v1/push" => push,
    get "/v1/services" => services,
    get "/v1/versions" => versions,
    post "/v1/up" => up,
    post "/v1/down" => down,
    get "/v1/status" => status,
    get "/v1/hosts" => hosts,
    post "/v1/hosts/{name}/drain" => crate::drain::drain,
    post "/v1/hosts/{name}/undrain" => crate::drain::undrain,
    post "/v1/hosts/{name}/prewarm" => crate::prewarm::prewarm,
    get "/v1/inspect" => inspect,
    get "/v1/logs" => logs,
    get "/v1/exec" => crate::exec::exec,
    get "/v1/history" => history,
    post "/v1/rolling-update" => releases::rolling_update,
    post "/v1/rollback" => releases::rollback,
    post "/v1/reload" => releases::reload,
    post "/v1/update" => releases::update,
    get "/v1/update/tags" => previews::update_candidates,
    post "/v1/promote" => releases::promote,
    post "/v1/abort" => releases::abort,
    get "/v1/deployments" => releases::list,
    post "/v1/diff" => previews::diff,
    get "/v1/versions/diff" => previews::version_diff,
    post "/v1/tokens" => crate::tokens::create_token,
    get "/v1/tokens" => crate::tokens::list_tokens,
    delete "/v1/tokens/{name}" => crate::tokens::revoke_token,
    get "/v1/audit" => crate::audit::list,
    get "/v1/envs" => crate::env_api::list,
    post "/v1/envs" => crate::env_api::create,
    delete "/v1/envs/{name}" => crate::env_api::destroy,
    post "/v1/envs/{name}/up" => crate::env_api::up,
    post "/v1/envs/{name}/down" => crate::env_api::down,
    get "/v1/envs/{name}/vars" => crate::env_api::vars,
    put "/v1/envs/{name}/vars" => crate::env_api::set_vars,
    get "/v1/envs/{name}/addresses" => crate::env_api::addresses,
    get "/v1/routes" => crate::routes::routes,
    get "/v1/events" => crate::events::events,
    get "/metrics" => crate::scrape::metrics,
    get "/v1/alerts" => crate::alerts::list,
    get "/v1/openapi.json" => crate::openapi::serve,
}

/// The API: its routes behind the edge (limits, and JSON for every refusal; see `edge`), and
/// behind `auth` (tokens, roles, the audit log) within it.
pub fn router(state: Arc<ServerState>, auth: Arc<Auth>) -> Router {
    let guarded = |routes: Router<Arc<ServerState>>| {
        routes
            .layer(axum::Extension(auth.clone()))
            .layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                auth::check,
            ))
    };
    // Blocking reads run after auth: a caller without a token never holds a connection open.
    let routes = routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::blocking::blocking_reads,
    ));
    // The web UI answers HTML, so it sits beside the edge (which answers JSON), behind the
    // same auth layer.
    edge::wrap_with(routes, guarded)
        .merge(crate::ui::router(auth.clone(), guarded))
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::recorder::track_api))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Scope {
    /// The environment; `production` when absent.
    pub env: Option<String>,
    /// A service, `SERVICE/JOB` or `SERVICE/JOB/TASK`.
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

/// Who a request without a token says it is (the `x-coding-job-user` header), as the audit
/// trail keeps it: without control characters, at most 64 characters, `unknown` when absent.
/// Only an open `dev` server believes it (see `auth`); handlers take the caller's [`Identity`].
pub fn user(headers: &HeaderMap) -> String {
    headers
        .get(USER_HEADER)
        .map(|value| sanitize::user(&String::from_utf8_lossy(value.as_bytes())))
        .unwrap_or_else(|| "unknown".into())
}

#[utoipa::path(
    get,
    path = "/v1/info",
    responses((status = 200, description = "what this server is", body = ServerInfo))
)]
async fn info(State(state): AppState) -> Result<Json<ServerInfo>, ApiFailure> {
    let hosts = state.observed.hosts();
    Ok(Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        cluster: state.cluster.clone(),
        hosts,
        revision: state.store.revision()?,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/push",
    request_body = PushRequest,
    responses(
        (status = 200, description = "the version stored (or the latest, if the file is the same)", body = PushResponse),
        (status = 409, description = "the service changed after `check_revision`", body = ApiError),
        (status = 422, description = "the file is not a valid config; `errors` lists each problem", body = ApiError),
    )
)]
async fn push(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<PushRequest>,
) -> Result<Json<PushResponse>, ApiFailure> {
    let response = state.push(
        &request.env,
        &sanitize::file_name(&request.file),
        &request.source,
        &caller.name,
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

#[utoipa::path(
    get,
    path = "/v1/services",
    params(Scope),
    responses((status = 200, description = "the latest version of each service of the environment", body = Vec<VersionInfo>))
)]
async fn services(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<Scope>,
) -> Result<Json<Vec<VersionInfo>>, ApiFailure> {
    let mut latest = Vec::new();
    for service in state.service_names(scope.env())? {
        if let Some(version) = state.latest_version(scope.env(), &service)? {
            latest.push(state.versions.get(scope.env(), &service, version)?.info());
        }
    }
    Ok(Json(latest))
}

/// `GET /v1/versions`: one page of a service's versions, oldest first within the page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// The environment; `production` when absent.
    pub env: Option<String>,
    /// The service (or one of its jobs or tasks).
    pub target: String,
    /// How many versions (the newest ones, or the newest before `before`); 50 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only versions older than this one: the next page is `before=` the page's first version.
    pub before: Option<u64>,
}

/// The most entries one read returns; more is read page by page.
pub const MAX_PAGE: usize = 1000;

/// `limit` checked against [`MAX_PAGE`], or `default`.
pub fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiFailure> {
    match limit {
        None => Ok(default),
        Some(limit @ 1..=MAX_PAGE) => Ok(limit),
        Some(other) => Err(ApiFailure::BadRequest(format!(
            "limit {other} is out of range: expected 1 to {MAX_PAGE}"
        ))),
    }
}

#[utoipa::path(
    get,
    path = "/v1/versions",
    params(VersionsQuery),
    responses(
        (status = 200, description = "one page of the service's versions, oldest first", body = Vec<VersionInfo>),
        (status = 404, description = "no such service", body = ApiError),
    )
)]
async fn versions(
    State(state): AppState,
    ApiQuery(query): ApiQuery<VersionsQuery>,
) -> Result<Json<Vec<VersionInfo>>, ApiFailure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let resolved = state.resolve(env, &query.target)?;
    let limit = page_limit(query.limit, 50)?;
    let mut page = state.version_infos(env, &resolved.service, limit, query.before)?;
    page.reverse();
    Ok(Json(page))
}

#[utoipa::path(
    post,
    path = "/v1/up",
    request_body = OperationRequest,
    responses(
        (status = 200, description = "the operation's progress, one event per line, ending with a summary", content_type = "application/x-ndjson", body = OperationEvent),
        (status = 404, description = "no such service, job or task", body = ApiError),
        (status = 409, description = "it conflicts with what is there (a port taken, a job its running version no longer has)", body = ApiError),
    )
)]
async fn up(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<OperationRequest>,
) -> Result<Response, ApiFailure> {
    operation(state, Direction::Up, &caller, &request)
}

#[utoipa::path(
    post,
    path = "/v1/down",
    request_body = OperationRequest,
    responses(
        (status = 200, description = "the operation's progress, one event per line, ending with a summary", content_type = "application/x-ndjson", body = OperationEvent),
        (status = 404, description = "no such service, job or task", body = ApiError),
        (status = 409, description = "it conflicts with what is there (a port taken, a job its running version no longer has)", body = ApiError),
    )
)]
async fn down(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<OperationRequest>,
) -> Result<Response, ApiFailure> {
    operation(state, Direction::Down, &caller, &request)
}

/// Plans the operation (a refusal is an error status, with nothing changed) and streams it.
fn operation(
    state: Arc<ServerState>,
    direction: Direction,
    caller: &Identity,
    request: &OperationRequest,
) -> Result<Response, ApiFailure> {
    let (env, target, user) = (&request.env, &request.target, &caller.name);
    let timeout = wave_timeout(request.timeout_seconds)?;
    let plan = match direction {
        Direction::Up => state.plan_up(env, target, user, timeout)?,
        Direction::Down => state.plan_down(env, target, user, timeout)?,
    };
    Ok(stream_operation(state, plan))
}

/// The wait for each wave: 1 second to a day ([`MAX_TIMEOUT_SECONDS`]); longer is refused here,
/// before anything adds it to a clock.
pub(crate) fn wave_timeout(timeout_seconds: Option<u64>) -> Result<Duration, ApiFailure> {
    match timeout_seconds {
        None => Ok(DEFAULT_WAVE_TIMEOUT),
        Some(seconds @ 1..=MAX_TIMEOUT_SECONDS) => Ok(Duration::from_secs(seconds)),
        Some(seconds) => Err(ApiFailure::BadRequest(format!(
            "timeout_seconds {seconds} is out of range: expected 1 to {MAX_TIMEOUT_SECONDS}"
        ))),
    }
}

/// Starts the operation in its own task (it finishes even if the client goes away) and answers
/// with its events as newline-delimited JSON.
pub(crate) fn stream_operation(state: Arc<ServerState>, plan: OperationPlan) -> Response {
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

#[utoipa::path(
    get,
    path = "/v1/status",
    params(Scope),
    responses(
        (status = 200, description = "every task of the target (of the environment without one)", body = Vec<TaskStatus>),
        (status = 404, description = "no such service, job or task", body = ApiError),
    )
)]
async fn status(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<Scope>,
) -> Result<Json<Vec<TaskStatus>>, ApiFailure> {
    Ok(Json(state.status(scope.env(), scope.target.as_deref())?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HostsQuery {
    /// Also each host's readings over the last hour.
    #[serde(default)]
    history: bool,
}

#[utoipa::path(
    get,
    path = "/v1/hosts",
    params(HostsQuery),
    responses((status = 200, description = "every host, as its agent last reported it", body = Vec<cj_api::HostInfo>))
)]
async fn hosts(
    State(state): AppState,
    ApiQuery(query): ApiQuery<HostsQuery>,
) -> Result<Json<Vec<cj_api::HostInfo>>, ApiFailure> {
    Ok(Json(state.host_infos(query.history)))
}

/// The one task a target names (a job with a single task counts).
pub(crate) fn one_task(
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
            "\"{}\" names several tasks; name one: {}",
            shown(target),
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

#[utoipa::path(
    get,
    path = "/v1/inspect",
    params(Scope),
    responses(
        (status = 200, description = "the task and its container as Docker shows it (secret values masked)", body = InspectResponse),
        (status = 404, description = "no such task, or it has no container", body = ApiError),
        (status = 503, description = "the agent of the task's host is not connected", body = ApiError),
        (status = 502, description = "the host's agent did not answer in time, or failed", body = ApiError),
    )
)]
async fn inspect(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<Scope>,
) -> Result<Json<InspectResponse>, ApiFailure> {
    Ok(Json(
        inspect_task(&state, scope.env(), scope.target()?).await?,
    ))
}

/// Our view of one task and Docker's inspect of its current container, secret values masked:
/// `GET /v1/inspect` and the web UI's task page.
pub(crate) async fn inspect_task(
    state: &ServerState,
    env: &str,
    target: &str,
) -> Result<InspectResponse, ApiFailure> {
    let (key, task, hash) = one_task(state, env, target)?;
    let containers = state.copies_of(&key);
    let (host, current) = current_container(&containers, hash.as_deref()).ok_or_else(|| {
        ApiFailure::NotFound(format!(
            "task {key} has no container (state: {})",
            task.state
        ))
    })?;
    let mut container = state.links.inspect(host, &current.id).await?;
    // Docker shows the rendered environment: secret variables and `secret_env` values must
    // not come back in it.
    state.mask_task_secrets(&key, task.version, &mut container)?;
    Ok(InspectResponse {
        task,
        config_hash: Some(current.config_hash.clone()),
        container,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// The environment; `production` when absent.
    env: Option<String>,
    /// One task.
    target: String,
    /// Only the last this many lines.
    tail: Option<u32>,
    /// Keep the answer open and send new output as it comes.
    #[serde(default)]
    follow: bool,
    /// A specific container of the task (e.g. a replaced one), by id or id prefix.
    container: Option<String>,
    /// Only this stream of the container's output; both, as the engine interleaves them, when
    /// absent. `tail` counts lines of both streams, as the engine keeps them.
    #[param(inline)]
    stream: Option<LogStream>,
}

/// One of a container's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn carries(self, kind: StreamKind) -> bool {
        matches!(
            (self, kind),
            (LogStream::Stdout, StreamKind::Stdout) | (LogStream::Stderr, StreamKind::Stderr)
        )
    }
}

#[utoipa::path(
    get,
    path = "/v1/logs",
    params(LogsQuery),
    responses(
        (status = 200, description = "the container's output (stdout and stderr, or the one `stream` names), streamed", content_type = "text/plain", body = String),
        (status = 404, description = "no such task, or no such container of it", body = ApiError),
        (status = 503, description = "the agent of the container's host is not connected", body = ApiError),
        (status = 502, description = "the host's agent did not answer in time, or failed", body = ApiError),
    )
)]
async fn logs(
    State(state): AppState,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, ApiFailure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let (key, task, hash) = one_task(&state, env, &query.target)?;
    let (host, container_id) = match &query.container {
        Some(wanted) => {
            let records: Vec<cj_api::ContainerRecord> = state
                .store
                .range_json(&keys::containers(env, &key.service, &key.job))?;
            records
                .into_iter()
                .find(|record| record.task == key.task && record.id.starts_with(wanted.as_str()))
                .map(|record| (record.host, record.id))
                .ok_or_else(|| {
                    ApiFailure::NotFound(format!(
                        "task {key} never ran a container {}",
                        shown(wanted)
                    ))
                })?
        }
        None => {
            let containers = state.copies_of(&key);
            current_container(&containers, hash.as_deref())
                .map(|(host, c)| (host.clone(), c.id.clone()))
                .ok_or_else(|| {
                    ApiFailure::NotFound(format!(
                        "task {key} has no container (state: {})",
                        task.state
                    ))
                })?
        }
    };
    // Fail here, with a status code, if the engine no longer has the container.
    state.links.inspect(&host, &container_id).await?;
    let only = query.stream;
    let chunks = state
        .links
        .logs(&host, &container_id, query.tail, query.follow)
        .await?
        .filter_map(move |item| async move {
            match item {
                StreamItem::Data(kind, bytes) if only.is_none_or(|only| only.carries(kind)) => {
                    Some(Ok::<_, Infallible>(bytes))
                }
                StreamItem::Data(..) => None,
                StreamItem::End(None) => None,
                StreamItem::End(Some(error)) => Some(Ok(Bytes::from(format!(
                    "\n[coding-job: log stream ended: {error}]\n"
                )))),
            }
        });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(chunks),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// The environment; `production` when absent.
    env: Option<String>,
    /// One job (`SERVICE/JOB`) or a service with one job.
    target: String,
    /// The newest this many versions, containers and events (each); 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/history",
    params(HistoryQuery),
    responses(
        (status = 200, description = "the job's versions, containers and container events", body = cj_api::HistoryResponse),
        (status = 404, description = "no such job", body = ApiError),
    )
)]
async fn history(
    State(state): AppState,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<cj_api::HistoryResponse>, ApiFailure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let limit = page_limit(query.limit, 100)?;
    Ok(Json(state.history(env, &query.target, limit)?))
}
