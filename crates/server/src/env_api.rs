//! The environments' routes: `/v1/envs` (list, create), `/v1/envs/{name}` (destroy),
//! `/v1/envs/{name}/up|down` (streamed like `up`), `/v1/envs/{name}/vars` and
//! `/v1/envs/{name}/addresses`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use cj_api::envs::{
    CreateEnvRequest, CreateEnvResponse, DestroyEnvResponse, EnvAddresses, EnvInfo, EnvVars,
    JobAddress, SetVarsRequest,
};
use serde::Deserialize;

use crate::api::{stream_operation, wave_timeout};
use crate::auth::Identity;
use crate::error::ApiFailure;
use crate::extract::{ApiJson, ApiQuery};
use crate::keys;
use crate::state::ServerState;
use crate::versions::check_env_name;

type AppState = State<Arc<ServerState>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Also destroyed environments.
    #[serde(default)]
    all: bool,
}

pub async fn list(
    State(state): AppState,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<EnvInfo>>, ApiFailure> {
    Ok(Json(state.env_infos(query.all)?))
}

pub async fn create(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<CreateEnvRequest>,
) -> Result<Json<CreateEnvResponse>, ApiFailure> {
    Ok(Json(state.create_env(&request, &caller.name)?))
}

/// `POST /v1/envs/{name}/up|down?timeout_seconds=N`: the wait for each wave.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvOperationQuery {
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

pub async fn up(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiQuery(request): ApiQuery<EnvOperationQuery>,
) -> Result<Response, ApiFailure> {
    let timeout = wave_timeout(request.timeout_seconds)?;
    let plan = state.plan_env_up(&env, &caller.name, timeout)?;
    Ok(stream_operation(state, plan))
}

pub async fn down(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiQuery(request): ApiQuery<EnvOperationQuery>,
) -> Result<Response, ApiFailure> {
    let timeout = wave_timeout(request.timeout_seconds)?;
    let plan = state.plan_env_down(&env, &caller.name, timeout)?;
    Ok(stream_operation(state, plan))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyQuery {
    #[serde(default)]
    keep_volumes: bool,
}

pub async fn destroy(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiQuery(query): ApiQuery<DestroyQuery>,
) -> Result<Json<DestroyEnvResponse>, ApiFailure> {
    // Its own task: a client that goes away must not leave an environment half destroyed.
    let destroying = tokio::spawn(async move {
        state
            .destroy_env(&env, query.keep_volumes, &caller.name)
            .await
    });
    let response = destroying
        .await
        .map_err(|error| ApiFailure::Internal(format!("destroy failed: {error}")))??;
    Ok(Json(response))
}

pub async fn vars(
    State(state): AppState,
    Path(env): Path<String>,
) -> Result<Json<EnvVars>, ApiFailure> {
    Ok(Json(state.env_vars(&env)?))
}

pub async fn set_vars(
    State(state): AppState,
    caller: Identity,
    Path(env): Path<String>,
    ApiJson(request): ApiJson<SetVarsRequest>,
) -> Result<Json<EnvVars>, ApiFailure> {
    Ok(Json(
        state.set_env_vars(&env, &request, &caller.name).await?,
    ))
}

/// Where every job of the environment is reached: its tasks' `HOST:PORT` and its route's URL.
pub async fn addresses(
    State(state): AppState,
    Path(env): Path<String>,
) -> Result<Json<EnvAddresses>, ApiFailure> {
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
