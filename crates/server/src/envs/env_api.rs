//! The environments' routes: `/v1/envs` (list, create), `/v1/envs/{name}` (destroy),
//! `/v1/envs/{name}/up|down` (streamed like `up`), `/v1/envs/{name}/vars` and
//! `/v1/envs/{name}/addresses`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use cj_api::envs::{
    CreateEnvRequest, CreateEnvResponse, DestroyEnvResponse, EnvAddresses, EnvInfo, EnvVars,
    JobAddress, SetVarsRequest,
};
use serde::Deserialize;

use crate::edge::api::handlers::{stream_operation, wave_timeout};
use crate::edge::auth::Identity;
use crate::edge::extract::{ApiJson, ApiQuery};
use crate::error::Failure;
use crate::keys;
use crate::releases::versions::check_env_name;

use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Also destroyed environments.
    #[serde(default)]
    all: bool,
}

#[utoipa::path(
    get,
    path = "/v1/envs",
    operation_id = "list_envs",
    params(ListQuery),
    responses((status = 200, description = "every environment", body = Vec<EnvInfo>))
)]
pub async fn list(
    State(state): AppState,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<EnvInfo>>, Failure> {
    Ok(Json(state.env_infos(query.all)?))
}

#[utoipa::path(
    post,
    path = "/v1/envs",
    operation_id = "create_env",
    request_body = CreateEnvRequest,
    responses(
        (status = 200, description = "the environment, and each service copied into it", body = CreateEnvResponse),
        (status = 404, description = "no such source environment", body = cj_api::ApiError),
        (status = 409, description = "an environment of that name exists", body = cj_api::ApiError),
        (status = 422, description = "a copied file does not render with the new variables", body = cj_api::ApiError),
    )
)]
pub async fn create(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<CreateEnvRequest>,
) -> Result<Json<CreateEnvResponse>, Failure> {
    if request.with_data.is_none() {
        return Ok(Json(state.create_env(&request, &caller.name)?));
    }
    let (sources, snapshots) = state.snapshots_for_copy(&request, &caller.name).await?;
    Ok(Json(state.create_env_with_data(
        &request,
        &caller.name,
        sources,
        snapshots,
    )?))
}

/// `POST /v1/envs/{name}/up|down?timeout_seconds=N`: the wait for each wave.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnvOperationQuery {
    /// Give up waiting for a wave after this many seconds (1 to a day).
    #[serde(default)]
    #[param(minimum = 1, maximum = 86400)]
    timeout_seconds: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/v1/envs/{name}/up",
    operation_id = "up_env",
    params(("name" = String, Path, description = "the environment's name"), EnvOperationQuery),
    responses(
        (status = 200, description = "the operation's progress, one event per line, ending with a summary", content_type = "application/x-ndjson", body = cj_api::OperationEvent),
        (status = 404, description = "no such environment", body = cj_api::ApiError),
        (status = 409, description = "it conflicts with what is there (a port taken)", body = cj_api::ApiError),
    )
)]
pub async fn up(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiQuery(request): ApiQuery<EnvOperationQuery>,
) -> Result<Response, Failure> {
    let timeout = wave_timeout(request.timeout_seconds)?;
    let plan = state.plan_env_up(&env, &caller.name, timeout)?;
    Ok(stream_operation(state, plan))
}

#[utoipa::path(
    post,
    path = "/v1/envs/{name}/down",
    operation_id = "down_env",
    params(("name" = String, Path, description = "the environment's name"), EnvOperationQuery),
    responses(
        (status = 200, description = "the operation's progress, one event per line, ending with a summary", content_type = "application/x-ndjson", body = cj_api::OperationEvent),
        (status = 404, description = "no such environment", body = cj_api::ApiError),
    )
)]
pub async fn down(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiQuery(request): ApiQuery<EnvOperationQuery>,
) -> Result<Response, Failure> {
    let timeout = wave_timeout(request.timeout_seconds)?;
    let plan = state.plan_env_down(&env, &caller.name, timeout)?;
    Ok(stream_operation(state, plan))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DestroyQuery {
    /// Keep the environment's volumes.
    #[serde(default)]
    keep_volumes: bool,
}

#[utoipa::path(
    delete,
    path = "/v1/envs/{name}",
    operation_id = "destroy_env",
    params(("name" = String, Path, description = "the environment's name"), DestroyQuery),
    responses(
        (status = 200, description = "what was removed", body = DestroyEnvResponse),
        (status = 404, description = "no such environment", body = cj_api::ApiError),
    )
)]
pub async fn destroy(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiQuery(query): ApiQuery<DestroyQuery>,
) -> Result<Json<DestroyEnvResponse>, Failure> {
    // Its own task: a client that goes away must not leave an environment half destroyed.
    let destroying = tokio::spawn(async move {
        state
            .destroy_env(&env, query.keep_volumes, &caller.name)
            .await
    });
    let response = destroying
        .await
        .map_err(|error| Failure::Internal(format!("destroy failed: {error}")))??;
    Ok(Json(response))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{name}/vars",
    operation_id = "env_vars",
    params(("name" = String, Path, description = "the environment's name")),
    responses(
        (status = 200, description = "the environment's variables; secret values are never shown", body = EnvVars),
        (status = 404, description = "no such environment", body = cj_api::ApiError),
    )
)]
pub async fn vars(
    State(state): AppState,
    Path(env): Path<String>,
) -> Result<Json<EnvVars>, Failure> {
    Ok(Json(state.env_vars(&env)?))
}

#[utoipa::path(
    put,
    path = "/v1/envs/{name}/vars",
    operation_id = "set_env_vars",
    params(("name" = String, Path, description = "the environment's name")),
    request_body = SetVarsRequest,
    responses(
        (status = 200, description = "the variables now, and the tasks restarting for the change", body = EnvVars),
        (status = 404, description = "no such environment", body = cj_api::ApiError),
        (status = 422, description = "a file of the environment does not render with the new values", body = cj_api::ApiError),
    )
)]
pub async fn set_vars(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiJson(request): ApiJson<SetVarsRequest>,
) -> Result<Json<EnvVars>, Failure> {
    Ok(Json(
        state.set_env_vars(&env, &request, &caller.name).await?,
    ))
}

/// Where every job of the environment is reached: its tasks' `HOST:PORT` and its route's URL.
#[utoipa::path(
    get,
    path = "/v1/envs/{name}/addresses",
    operation_id = "env_addresses",
    params(("name" = String, Path, description = "the environment's name")),
    responses(
        (status = 200, description = "where each job of the environment is reached", body = EnvAddresses),
        (status = 404, description = "no such environment", body = cj_api::ApiError),
    )
)]
pub async fn addresses(
    State(state): AppState,
    Path(env): Path<String>,
) -> Result<Json<EnvAddresses>, Failure> {
    check_env_name(&env)?;
    if !state.env_exists(&env)? {
        return Err(state.no_such_env(&env)?);
    }
    let mut jobs = Vec::new();
    for desired in state.desired_jobs(&format!("{}{env}/", keys::DESIRED_ALL))? {
        let route = state
            .raw_desired_tasks(&desired)?
            .first()
            .and_then(|task| task.route.clone());
        let url = match (&route, &state.route_urls) {
            (Some(route), Some(urls)) => Some(urls.url(&env, route)),
            _ => None,
        };
        jobs.push(JobAddress {
            addresses: state.job_addresses(&env, &desired.service, &desired.job)?,
            service: desired.service,
            job: desired.job,
            route,
            url,
        });
    }
    Ok(Json(EnvAddresses { env, jobs }))
}
