//! The handlers of the API's own routes (server info, push, up/down, status, hosts, inspect,
//! logs, history) and what other handlers share with them: the target of a request (`Scope`),
//! one task from a target (`one_task`), a wave timeout, streaming an operation's progress.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cj_api::agent::TaskKey;
use cj_api::{ApiError, OperationEvent};
use cj_api::{
    DEFAULT_ENV, InspectResponse, MAX_TIMEOUT_SECONDS, OperationRequest, PushRequest, PushResponse,
    ServerInfo, TaskStatus, VersionInfo,
};
use cj_store::StoreJson;
use futures_util::StreamExt;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;

use crate::edge::auth::Identity;
use crate::edge::extract::{ApiJson, ApiQuery};
use crate::edge::sanitize;
use crate::error::{Failure, shown};
use crate::hosts::agent_link::StreamItem;
use crate::keys;
use crate::observe::status::current_container;
use crate::releases::operations::{DEFAULT_WAVE_TIMEOUT, Direction, OperationPlan};
use crate::state::{AppState, DesiredJob, ServerState};
use cj_api::agent::link::{LogsOptions, StreamKind};

use crate::edge::extract::page_limit;

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

    pub fn target(&self) -> Result<&str, Failure> {
        self.target
            .as_deref()
            .ok_or_else(|| Failure::BadRequest("a target is required".into()))
    }
}

#[utoipa::path(
    get,
    path = "/v1/info",
    responses((status = 200, description = "what this server is", body = ServerInfo))
)]
pub(crate) async fn info(State(state): AppState) -> Result<Json<ServerInfo>, Failure> {
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
pub(crate) async fn push(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<PushRequest>,
) -> Result<Json<PushResponse>, Failure> {
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
pub(crate) async fn services(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<Scope>,
) -> Result<Json<Vec<VersionInfo>>, Failure> {
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

#[utoipa::path(
    get,
    path = "/v1/versions",
    params(VersionsQuery),
    responses(
        (status = 200, description = "one page of the service's versions, oldest first", body = Vec<VersionInfo>),
        (status = 404, description = "no such service", body = ApiError),
    )
)]
pub(crate) async fn versions(
    State(state): AppState,
    ApiQuery(query): ApiQuery<VersionsQuery>,
) -> Result<Json<Vec<VersionInfo>>, Failure> {
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
pub(crate) async fn up(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<OperationRequest>,
) -> Result<Response, Failure> {
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
pub(crate) async fn down(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<OperationRequest>,
) -> Result<Response, Failure> {
    operation(state, Direction::Down, &caller, &request)
}

/// Plans the operation (a refusal is an error status, with nothing changed) and streams it.
pub(crate) fn operation(
    state: Arc<ServerState>,
    direction: Direction,
    caller: &Identity,
    request: &OperationRequest,
) -> Result<Response, Failure> {
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
pub(crate) fn wave_timeout(timeout_seconds: Option<u64>) -> Result<Duration, Failure> {
    match timeout_seconds {
        None => Ok(DEFAULT_WAVE_TIMEOUT),
        Some(seconds @ 1..=MAX_TIMEOUT_SECONDS) => Ok(Duration::from_secs(seconds)),
        Some(seconds) => Err(Failure::BadRequest(format!(
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
pub(crate) async fn status(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<Scope>,
) -> Result<Json<Vec<TaskStatus>>, Failure> {
    Ok(Json(state.status(scope.env(), scope.target.as_deref())?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HostsQuery {
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
pub(crate) async fn hosts(
    State(state): AppState,
    ApiQuery(query): ApiQuery<HostsQuery>,
) -> Result<Json<Vec<cj_api::HostInfo>>, Failure> {
    Ok(Json(state.host_infos(query.history)))
}

#[utoipa::path(
    get,
    path = "/v1/servers",
    responses((status = 200, description = "every server sharing this store, the leader marked", body = Vec<cj_api::servers::ClusterMember>))
)]
pub(crate) async fn servers(
    State(state): AppState,
) -> Result<Json<Vec<cj_api::servers::ClusterMember>>, Failure> {
    Ok(Json(crate::cluster::members::list(&*state.store)?))
}

/// The one task a target names (a job with a single task counts).
pub(crate) fn one_task(
    state: &ServerState,
    env: &str,
    target: &str,
) -> Result<(TaskKey, TaskStatus, Option<String>), Failure> {
    let rows = state.status(env, Some(target))?;
    let [row] = rows.as_slice() else {
        let names: Vec<String> = rows
            .iter()
            .map(|r| format!("{}/{}/{}", r.service, r.job, r.task))
            .collect();
        return Err(Failure::BadRequest(format!(
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
pub(crate) async fn inspect(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<Scope>,
) -> Result<Json<InspectResponse>, Failure> {
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
) -> Result<InspectResponse, Failure> {
    let (key, task, hash) = one_task(state, env, target)?;
    let containers = state.copies_of(&key);
    let (host, current) = current_container(&containers, hash.as_deref()).ok_or_else(|| {
        Failure::NotFound(format!(
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
pub(crate) struct LogsQuery {
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
    /// Only output written at or after this time, to the second: an RFC 3339 time
    /// (`2024-05-01T12:00:00Z`), or a duration before now by the server's clock (`10m`,
    /// `1h30m`, `90s`). With `tail`, the last lines of those.
    #[param(example = "10m")]
    since: Option<String>,
    /// Begin each line with the time the engine received it, RFC 3339 with nanoseconds and a
    /// space (`2024-05-01T12:00:00.123456789Z hello`).
    #[serde(default)]
    timestamps: bool,
}

/// `since` of `GET /v1/logs` in whole seconds since the Unix epoch: an RFC 3339 time, or a
/// duration before `now`. A duration needs its unit: a bare number could as well be meant as a
/// Unix time (as Docker's API reads one) as seconds.
fn since_unix_seconds(text: &str, now: OffsetDateTime) -> Result<i64, Failure> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.unix_timestamp());
    }
    let has_unit = text.ends_with(|c: char| c.is_ascii_alphabetic());
    let before_now = cj_spec::parse_duration_ms(text)
        .filter(|_| has_unit)
        .ok_or_else(|| {
            Failure::BadRequest(format!(
                "since: expected an RFC 3339 time such as 2024-05-01T12:00:00Z, or a duration \
                 before now such as 10m or 1h30m, found \"{}\"",
                shown(text)
            ))
        })?;
    // A duration reaching back before the calendar's start asks for everything.
    Ok(i64::try_from(before_now)
        .ok()
        .and_then(|ms| now.checked_sub(time::Duration::milliseconds(ms)))
        .map_or(i64::MIN, OffsetDateTime::unix_timestamp))
}

/// One of a container's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogStream {
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
pub(crate) async fn logs(
    State(state): AppState,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, Failure> {
    let since_unix_seconds = query
        .since
        .as_deref()
        .map(|since| since_unix_seconds(since, OffsetDateTime::now_utc()))
        .transpose()?;
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let (key, task, hash) = one_task(&state, env, &query.target)?;
    let (host, container_id) = match &query.container {
        Some(wanted) => {
            state.history_writer.flush();
            let records: Vec<cj_api::ContainerRecord> = state
                .store
                .range_json(&keys::containers(env, &key.service, &key.job))?;
            records
                .into_iter()
                .find(|record| record.task == key.task && record.id.starts_with(wanted.as_str()))
                .map(|record| (record.host, record.id))
                .ok_or_else(|| {
                    Failure::NotFound(format!(
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
                    Failure::NotFound(format!(
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
        .logs(
            &host,
            &container_id,
            LogsOptions {
                tail: query.tail,
                follow: query.follow,
                since_unix_seconds,
                timestamps: query.timestamps,
            },
        )
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
pub(crate) struct HistoryQuery {
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
pub(crate) async fn history(
    State(state): AppState,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<cj_api::HistoryResponse>, Failure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let limit = page_limit(query.limit, 100)?;
    Ok(Json(state.history(env, &query.target, limit)?))
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::since_unix_seconds;

    #[test]
    fn logs_since_is_a_time_or_a_duration_before_now() {
        let now: OffsetDateTime = datetime!(2026-05-01 12:00:00.700 UTC);
        let at = |text: &str| since_unix_seconds(text, now).map_err(|failure| failure.to_string());
        let noon = now.unix_timestamp();
        assert_eq!(at("2026-05-01T11:00:00Z"), Ok(noon - 3600));
        assert_eq!(at("2026-05-01T13:00:00+02:00"), Ok(noon - 3600));
        assert_eq!(at("10m"), Ok(noon - 600));
        assert_eq!(at("1h30m"), Ok(noon - 5400));
        // 11:59:59.2, to the second it falls in.
        assert_eq!(at("1500ms"), Ok(noon - 1));
        assert_eq!(at("1000000000h"), Ok(i64::MIN));
        for refused in ["", "600", "yesterday", "10 minutes", "-5m", "2026-05-01"] {
            let error = at(refused).unwrap_err();
            assert!(
                error.starts_with("since: expected an RFC 3339 time"),
                "{refused}: {error}"
            );
        }
    }
}
