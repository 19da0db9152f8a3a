//! The API of releases: rolling-update, rollback, reload and update (each a deployment), the
//! gate (promote, abort) and the list of deployments. What a release would change, seen before
//! it is made, is in `previews`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cj_api::{
    DEFAULT_ENV, DeployRequest, Deployment, DeploymentKind, DeploymentStatus, OperationEvent,
};
use cj_registry::ImageRef;
use cj_store::StoreJson;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::edge::auth::Identity;
use crate::edge::extract::{ApiJson, ApiQuery};
use crate::error::Failure;
use crate::keys;
use crate::state::{DesiredJob, ServerState};

use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/v1/rolling-update",
    request_body = DeployRequest,
    responses(
        (status = 200, description = "the deployment; with `follow`, its events, one per line, until it ends or waits for promotion", content((cj_api::Deployment = "application/json"), (cj_api::OperationEvent = "application/x-ndjson"))),
        (status = 404, description = "no such service or job", body = cj_api::ApiError),
        (status = 409, description = "a deployment of the service is in progress, or the job is not in a state to deploy", body = cj_api::ApiError),
    )
)]
pub async fn rolling_update(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<DeployRequest>,
) -> Result<Response, Failure> {
    deploy_latest(state, &caller, &request, DeploymentKind::RollingUpdate)
}

#[utoipa::path(
    post,
    path = "/v1/rollback",
    request_body = DeployRequest,
    responses(
        (status = 200, description = "the deployment; with `follow`, its events, one per line, until it ends or waits for promotion", content((cj_api::Deployment = "application/json"), (cj_api::OperationEvent = "application/x-ndjson"))),
        (status = 404, description = "no such service or job", body = cj_api::ApiError),
        (status = 409, description = "a deployment of the service is in progress, or the job is not in a state to deploy", body = cj_api::ApiError),
    )
)]
pub async fn rollback(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<DeployRequest>,
) -> Result<Response, Failure> {
    let deployment = plan_rollback(
        &state,
        &request.env,
        &request.target,
        request.to_version,
        &caller.name,
    )?;
    start(state, deployment, request.follow)
}

/// The deployment that moves one job back to `to_version` (default: the version before the
/// one it runs), planned but not stored: `rollback` here and the web UI's form share it.
pub(crate) fn plan_rollback(
    state: &ServerState,
    env: &str,
    target: &str,
    to_version: Option<u64>,
    user: &str,
) -> Result<Deployment, Failure> {
    let resolved = state.resolve(env, target)?;
    let job = &one_job(&resolved)?;
    let desired: DesiredJob = state
        .store
        .get_json(&keys::desired(&resolved.env, &resolved.service, job))?
        .ok_or_else(|| {
            Failure::BadRequest(format!("{}/{job} is not up: use `up`", resolved.service))
        })?;
    let to_version = match to_version {
        Some(version) => version,
        None if desired.version > 1 => desired.version - 1,
        None => {
            return Err(Failure::BadRequest(format!(
                "{}/{job} runs version 1: there is nothing before it",
                resolved.service
            )));
        }
    };
    let record = state
        .versions
        .get(&resolved.env, &resolved.service, to_version)?;
    if record.spec.job(job).is_none() {
        return Err(Failure::BadRequest(format!(
            "version {to_version} of {} has no job {job}",
            resolved.service
        )));
    }
    state.plan_deployment(&resolved, DeploymentKind::Rollback, to_version, user)
}

#[utoipa::path(
    post,
    path = "/v1/reload",
    request_body = DeployRequest,
    responses(
        (status = 200, description = "the deployment; with `follow`, its events, one per line, until it ends or waits for promotion", content((cj_api::Deployment = "application/json"), (cj_api::OperationEvent = "application/x-ndjson"))),
        (status = 404, description = "no such service or job", body = cj_api::ApiError),
        (status = 409, description = "a deployment of the service is in progress, or the job is not in a state to deploy", body = cj_api::ApiError),
    )
)]
pub async fn reload(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<DeployRequest>,
) -> Result<Response, Failure> {
    deploy_latest(state, &caller, &request, DeploymentKind::Reload)
}

/// A deployment of the target's running jobs towards the service's latest version.
fn deploy_latest(
    state: Arc<ServerState>,
    caller: &Identity,
    request: &DeployRequest,
    kind: DeploymentKind,
) -> Result<Response, Failure> {
    let resolved = state.resolve(&request.env, &request.target)?;
    let deployment =
        state.plan_deployment(&resolved, kind, resolved.latest.version, &caller.name)?;
    start(state, deployment, request.follow)
}

/// `update JOB --tag T`: a new version of the service with the job's image at tag T (made from
/// the latest file, only the image values changed), rolled out to the job. The new version and
/// the deployment are stored in one transaction: a refused update stores nothing.
#[utoipa::path(
    post,
    path = "/v1/update",
    request_body = DeployRequest,
    responses(
        (status = 200, description = "the deployment; with `follow`, its events, one per line, until it ends or waits for promotion", content((cj_api::Deployment = "application/json"), (cj_api::OperationEvent = "application/x-ndjson"))),
        (status = 404, description = "no such service or job", body = cj_api::ApiError),
        (status = 409, description = "a deployment of the service is in progress, or the job is not in a state to deploy", body = cj_api::ApiError),
        (status = 502, description = "the image's registry failed or refused", body = cj_api::ApiError),
    )
)]
pub async fn update(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<DeployRequest>,
) -> Result<Response, Failure> {
    let tag = request
        .tag
        .clone()
        .ok_or_else(|| Failure::BadRequest("update needs a tag".into()))?;
    let resolved = state.resolve(&request.env, &request.target)?;
    let job = one_job(&resolved)?;
    let image = job_image(&resolved, &job)?;
    let new_image = image_with_tag(&image, &tag)?;
    let latest = &resolved.latest;
    let (source, spec) = rewrite_image(latest, &job, &new_image)?;
    let user = caller.name;
    let resolved = state.resolve(&request.env, &format!("{}/{job}", resolved.service))?;
    // Planned against the new spec before anything is stored; the version number is given out
    // in the transaction.
    let mut deployment = state.plan_deployment_to(
        &resolved,
        DeploymentKind::Update,
        &spec,
        latest.version,
        &user,
    )?;
    let mut stored_version = None;
    let events = state.deployment_signals.subscribe();
    state.create_deployment(&mut deployment, |deployment| {
        let next = state.next_version(&resolved.env, &latest.file, &source, &spec, &user, None)?;
        for job in &mut deployment.jobs {
            job.to_version = next.version;
        }
        stored_version = next.stored().then_some(next.version);
        Ok((next.compares, next.ops))
    })?;
    if let Some(version) = stored_version {
        state.announce_version(&resolved.env, &resolved.service, version, &user);
    }
    state.start_deployment(&deployment);
    Ok(answer(deployment, events, request.follow))
}

/// `image` at `tag`, refusing a tag outside the OCI reference grammar: the tag is written into
/// the stored file, so nothing else may get through.
fn image_with_tag(image: &ImageRef, tag: &str) -> Result<String, Failure> {
    let new_image = image.with_tag(tag);
    match ImageRef::parse(&new_image) {
        Ok(parsed) if cj_spec::is_valid_tag(tag) && parsed.tag.as_deref() == Some(tag) => {
            Ok(new_image)
        }
        _ => Err(Failure::BadRequest(format!(
            "invalid tag \"{}\": expected 1 to 128 letters, digits, '_', '.' or '-', \
             starting with a letter, digit or '_'",
            crate::error::shown(tag)
        ))),
    }
}

/// The latest file with the job's image changed, and its parsed form. Refused unless the new
/// file parses to exactly the latest spec with only that job's image changed.
fn rewrite_image(
    latest: &crate::releases::versions::VersionRecord,
    job: &str,
    new_image: &str,
) -> Result<(String, cj_spec::ServiceSpec), Failure> {
    let source = cj_spec::set_job_image(&latest.file, &latest.source, job, new_image)
        .map_err(Failure::InvalidConfig)?
        .ok_or_else(|| Failure::BadRequest(format!("job {job} names no image to change")))?;
    let spec = cj_spec::parse_service(&latest.file, &source).map_err(Failure::InvalidConfig)?;
    let mut expected = latest.spec.clone();
    for job_spec in expected.jobs.iter_mut().filter(|j| j.name == job) {
        for task in &mut job_spec.tasks {
            task.image = Some(new_image.to_owned());
        }
    }
    if spec != expected {
        return Err(Failure::BadRequest(format!(
            "cannot change the image of {job} in {} without changing more than the image: \
             edit the file and push it",
            latest.file
        )));
    }
    Ok((source, spec))
}

pub(crate) fn one_job(resolved: &crate::releases::resolve::Resolved) -> Result<String, Failure> {
    match resolved.jobs.as_slice() {
        [job] => Ok(job.clone()),
        _ => Err(Failure::BadRequest(
            "name one job, as SERVICE/JOB or JOB".into(),
        )),
    }
}

/// The job's image as configured in the latest version (all its tasks must share it).
pub(crate) fn job_image(
    resolved: &crate::releases::resolve::Resolved,
    job: &str,
) -> Result<ImageRef, Failure> {
    let job_spec = resolved
        .latest
        .spec
        .job(job)
        .ok_or_else(|| Failure::NotFound(format!("no job {job}")))?;
    let mut images: Vec<&str> = job_spec
        .tasks
        .iter()
        .filter_map(|task| task.image.as_deref())
        .collect();
    images.dedup();
    match images.as_slice() {
        [image] => ImageRef::parse(image).map_err(|error| Failure::BadRequest(error.to_string())),
        [] => Err(Failure::BadRequest(format!("job {job} has no image"))),
        _ => Err(Failure::BadRequest(format!(
            "the tasks of job {job} run different images: {}",
            images.join(", ")
        ))),
    }
}

/// Stores a planned deployment (refused if another is active), starts it, and answers with
/// the record or, with `follow`, its progress.
pub(crate) fn start(
    state: Arc<ServerState>,
    deployment: Deployment,
    follow: bool,
) -> Result<Response, Failure> {
    let events = state.deployment_signals.subscribe();
    let deployment = store_and_start(&state, deployment)?;
    Ok(answer(deployment, events, follow))
}

/// Stores a planned deployment (refused if another is active) and starts it.
pub(crate) fn store_and_start(
    state: &Arc<ServerState>,
    mut deployment: Deployment,
) -> Result<Deployment, Failure> {
    state.create_deployment(&mut deployment, |_| Ok((Vec::new(), Vec::new())))?;
    state.start_deployment(&deployment);
    Ok(deployment)
}

fn answer(
    deployment: Deployment,
    events: broadcast::Receiver<(String, OperationEvent)>,
    follow: bool,
) -> Response {
    if follow {
        follow_deployment(deployment.id, events)
    } else {
        Json(deployment).into_response()
    }
}

/// The deployment's events as newline-delimited JSON, until it ends or waits for promotion.
fn follow_deployment(
    id: String,
    events: broadcast::Receiver<(String, OperationEvent)>,
) -> Response {
    let lines = futures_util::stream::unfold((events, false), move |(mut events, ended)| {
        let id = id.clone();
        async move {
            if ended {
                return None;
            }
            loop {
                match events.recv().await {
                    Ok((event_id, event)) if event_id == id => {
                        let ends = matches!(
                            event,
                            OperationEvent::Summary(_)
                                | OperationEvent::Deployment {
                                    status: DeploymentStatus::AwaitingPromotion,
                                    ..
                                }
                        );
                        let mut line = serde_json::to_vec(&event).unwrap_or_default();
                        line.push(b'\n');
                        return Some((Ok::<_, Infallible>(Bytes::from(line)), (events, ends)));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    pub env: String,
    /// The service whose deployment to promote or abort.
    pub target: String,
    #[serde(default)]
    pub follow: bool,
}

#[utoipa::path(
    post,
    path = "/v1/promote",
    request_body = GateRequest,
    responses(
        (status = 200, description = "the deployment; with `follow`, its events, one per line, until it ends", content((cj_api::Deployment = "application/json"), (cj_api::OperationEvent = "application/x-ndjson"))),
        (status = 404, description = "no deployment of the service is in progress", body = cj_api::ApiError),
        (status = 409, description = "the deployment has ended, or (promote) is not waiting for promotion", body = cj_api::ApiError),
    )
)]
pub async fn promote(
    State(state): AppState,
    ApiJson(request): ApiJson<GateRequest>,
) -> Result<Response, Failure> {
    gate(state, request, true)
}

#[utoipa::path(
    post,
    path = "/v1/abort",
    request_body = GateRequest,
    responses(
        (status = 200, description = "the deployment; with `follow`, its events, one per line, until it ends", content((cj_api::Deployment = "application/json"), (cj_api::OperationEvent = "application/x-ndjson"))),
        (status = 404, description = "no deployment of the service is in progress", body = cj_api::ApiError),
        (status = 409, description = "the deployment has ended, or (promote) is not waiting for promotion", body = cj_api::ApiError),
    )
)]
pub async fn abort(
    State(state): AppState,
    ApiJson(request): ApiJson<GateRequest>,
) -> Result<Response, Failure> {
    gate(state, request, false)
}

fn gate(state: Arc<ServerState>, request: GateRequest, promote: bool) -> Result<Response, Failure> {
    let events = state.deployment_signals.subscribe();
    let deployment = decide_gate(&state, &request.env, &request.target, promote)?;
    Ok(answer(deployment, events, request.follow))
}

/// Asks the active deployment of the target's service to go on past its gate (`promote`) or
/// to stop and move back (`abort`): `/v1/promote`, `/v1/abort` and the web UI's buttons.
pub(crate) fn decide_gate(
    state: &ServerState,
    env: &str,
    target: &str,
    promote: bool,
) -> Result<Deployment, Failure> {
    let resolved = state.resolve(env, target)?;
    let active = state
        .active_deployment(env, &resolved.service)?
        .ok_or_else(|| {
            Failure::NotFound(format!(
                "{} has no deployment in progress",
                resolved.service
            ))
        })?;
    // Compare-and-swap: the runner may be recording a step at the same moment.
    let (deployment, ()) = state.update_deployment(&active, |stored| {
        if !stored.status.is_active() {
            return Err(Failure::Conflict(format!(
                "deployment {} has already ended: {}",
                stored.id,
                stored.status.as_str()
            )));
        }
        if promote {
            let waits = matches!(
                stored.status,
                DeploymentStatus::AwaitingPromotion | DeploymentStatus::Analysing
            );
            if !waits {
                return Err(Failure::Conflict(format!(
                    "deployment {} is not waiting for promotion",
                    stored.id
                )));
            }
            stored.promote_requested = true;
        } else {
            stored.abort_requested = true;
        }
        Ok(())
    })?;
    Ok(deployment)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeploymentsQuery {
    env: Option<String>,
    target: Option<String>,
    /// The newest this many; 50 by default.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/deployments",
    operation_id = "deployments",
    params(DeploymentsQuery),
    responses(
        (status = 200, description = "the newest deployments, newest first", body = Vec<Deployment>),
        (status = 404, description = "no such service", body = cj_api::ApiError),
    )
)]
pub async fn list(
    State(state): AppState,
    ApiQuery(query): ApiQuery<DeploymentsQuery>,
) -> Result<Json<Vec<Deployment>>, Failure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let limit = crate::edge::extract::page_limit(query.limit, 50)?;
    let deployments = match &query.target {
        Some(target) => {
            let service = state.resolve(env, target)?.service;
            let mut deployments: Vec<Deployment> =
                state.store.range_json(&keys::deployments(env, &service))?;
            deployments.reverse();
            deployments.truncate(limit);
            deployments
        }
        None => state.deployments(env, limit)?,
    };
    Ok(Json(deployments))
}
