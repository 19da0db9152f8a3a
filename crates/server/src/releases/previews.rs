//! The read-only views that come before a release: what pushing a file would change
//! (`diff`), the registry's tags beside what a job runs (`update` without a tag), and two
//! stored versions side by side.

use axum::Json;
use axum::extract::State;
use cj_api::{
    DEFAULT_ENV, DiffRequest, DiffResponse, RegistryTag, RunningImage, UpdateCandidates,
    VersionDiff,
};
use cj_store::StoreJson;
use serde::Deserialize;

use crate::edge::extract::{ApiJson, ApiQuery};
use crate::error::Failure;
use crate::keys;
use crate::releases::requests::{job_image, one_job};
use crate::state::AppState;
use crate::state::{DesiredJob, ServerState};

/// What `update JOB` shows before a tag is chosen: the running containers and the registry's tags.
#[utoipa::path(
    get,
    path = "/v1/update/tags",
    params(crate::edge::api::handlers::Scope),
    responses(
        (status = 200, description = "what the job runs, and the registry's tags for its image", body = UpdateCandidates),
        (status = 404, description = "no such service or job", body = cj_api::ApiError),
        (status = 502, description = "the image's registry failed or refused", body = cj_api::ApiError),
    )
)]
pub async fn update_candidates(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<crate::edge::api::handlers::Scope>,
) -> Result<Json<UpdateCandidates>, Failure> {
    let resolved = state.resolve(scope.env(), scope.target()?)?;
    let job = one_job(&resolved)?;
    let image = job_image(&resolved, &job)?;
    let mut running = Vec::new();
    for task in state.status(scope.env(), Some(&format!("{}/{job}", resolved.service)))? {
        let (Some(container_id), Some(host)) =
            (task.container_id.clone(), task.actual_host.clone())
        else {
            continue;
        };
        let Ok(inspect) = state.links.inspect(&host, &container_id).await else {
            continue;
        };
        running.push(RunningImage {
            task: task.task.clone(),
            container_id,
            container_name: task.container_name.clone().unwrap_or_default(),
            version: task.version.unwrap_or_default(),
            image: task.image.clone().unwrap_or_default(),
            image_id: inspect["Image"].as_str().unwrap_or_default().to_owned(),
            created: inspect["Created"].as_str().unwrap_or_default().to_owned(),
        });
    }
    let tags = state
        .registry
        .list_tags(&image)
        .await
        .map_err(|error| Failure::BadGateway(error.to_string()))?
        .into_iter()
        .map(|tag| RegistryTag {
            tag: tag.tag,
            image_id: tag.image_id,
            digest: tag.digest,
            created: tag.created,
        })
        .collect();
    Ok(Json(UpdateCandidates {
        service: resolved.service,
        job,
        image: image.to_string(),
        running,
        tags,
    }))
}

/// What pushing `source` and rolling it out would change, task by task.
#[utoipa::path(
    post,
    path = "/v1/diff",
    request_body = DiffRequest,
    responses(
        (status = 200, description = "what pushing the file and rolling it out would change", body = DiffResponse),
        (status = 422, description = "the file is not a valid config; `errors` lists each problem", body = cj_api::ApiError),
    )
)]
pub async fn diff(
    State(state): AppState,
    ApiJson(request): ApiJson<DiffRequest>,
) -> Result<Json<DiffResponse>, Failure> {
    let file = crate::edge::sanitize::file_name(&request.file);
    let spec = cj_spec::parse_service(&file, &request.source).map_err(Failure::InvalidConfig)?;
    let env = &request.env;
    let revision = state.service_revision(env, &spec.service)?;
    let latest = match state.latest_version(env, &spec.service)? {
        Some(version) => Some(state.versions.get(env, &spec.service, version)?),
        None => None,
    };
    let mut changes = Vec::new();
    let mut job_names: Vec<String> = spec.jobs.iter().map(|job| job.name.clone()).collect();
    if let Some(latest) = &latest {
        job_names.extend(
            latest
                .spec
                .jobs
                .iter()
                .map(|job| job.name.clone())
                .filter(|name| spec.job(name).is_none()),
        );
    }
    for job in job_names {
        let desired: Option<DesiredJob> =
            state
                .store
                .get_json(&keys::desired(env, &spec.service, &job))?;
        // Against what runs for a job that is up; against the latest file for one that is down.
        let current: Vec<cj_spec::TaskSpec> = match (&desired, &latest) {
            (Some(desired), _) => state
                .desired_tasks(desired)?
                .into_iter()
                .map(|task| task.spec)
                .collect(),
            (None, Some(latest)) => latest
                .spec
                .job(&job)
                .map(|j| j.tasks.clone())
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        let wanted = spec.job(&job).map(|j| j.tasks.clone()).unwrap_or_default();
        let mut names: Vec<&String> = current
            .iter()
            .map(|t| &t.name)
            .chain(wanted.iter().map(|t| &t.name))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let old = current.iter().find(|t| t.name == *name);
            let new = wanted.iter().find(|t| t.name == *name);
            changes.push(cj_spec::task_change(&job, name, old, new));
        }
    }
    Ok(Json(DiffResponse {
        service: spec.service.clone(),
        latest_version: latest.as_ref().map(|record| record.version),
        latest_source: latest.map(|record| record.shown_source()),
        source: crate::envs::secrets::mask_source(&request.source, &spec),
        changes,
        revision,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionDiffQuery {
    env: Option<String>,
    target: String,
    from: u64,
    to: u64,
}

#[utoipa::path(
    get,
    path = "/v1/versions/diff",
    params(VersionDiffQuery),
    responses(
        (status = 200, description = "two versions of a service and their files", body = VersionDiff),
        (status = 404, description = "no such service or version", body = cj_api::ApiError),
    )
)]
pub async fn version_diff(
    State(state): AppState,
    ApiQuery(query): ApiQuery<VersionDiffQuery>,
) -> Result<Json<VersionDiff>, Failure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    Ok(Json(versions_between(
        &state,
        env,
        &query.target,
        query.from,
        query.to,
    )?))
}

/// Two stored versions of the target's service, with their files: `GET /v1/versions/diff` and
/// the web UI's history page.
pub(crate) fn versions_between(
    state: &ServerState,
    env: &str,
    target: &str,
    from: u64,
    to: u64,
) -> Result<VersionDiff, Failure> {
    let resolved = state.resolve(env, target)?;
    let from = state.versions.get(env, &resolved.service, from)?;
    let to = state.versions.get(env, &resolved.service, to)?;
    Ok(VersionDiff {
        service: resolved.service,
        from: from.info(),
        to: to.info(),
        from_source: from.shown_source(),
        to_source: to.shown_source(),
    })
}
