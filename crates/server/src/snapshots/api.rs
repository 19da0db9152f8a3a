//! The snapshot routes: `GET /v1/volumes`, `GET`/`POST /v1/snapshots`, a snapshot's data at
//! `GET /v1/snapshot-data/{id}` (the `deploy` role: a volume may hold anything), and the
//! agents' uploads at `PUT /v1/agent/snapshots/{id}`, whose bodies the edge passes through as
//! they arrive instead of reading them whole.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cj_api::snapshots::{SnapshotRecord, SnapshotRequest, VolumeRow};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::edge::api::handlers::Scope;
use crate::edge::auth::Identity;
use crate::edge::extract::{ApiJson, ApiQuery};
use crate::error::Failure;
use crate::state::AppState;

use cj_api::snapshots::SHA256_HEADER;

#[utoipa::path(
    get,
    path = "/v1/volumes",
    operation_id = "list_volumes",
    params(Scope),
    responses(
        (status = 200, description = "every volume of the tasks named, with its host and newest snapshot", body = Vec<VolumeRow>),
        (status = 404, description = "no such service, job or task", body = cj_api::ApiError),
    )
)]
pub async fn volumes(
    State(state): AppState,
    ApiQuery(scope): ApiQuery<Scope>,
) -> Result<Json<Vec<VolumeRow>>, Failure> {
    Ok(Json(
        state.volume_rows(scope.env(), scope.target.as_deref())?,
    ))
}

/// `GET /v1/snapshots`: which snapshots to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// Only this environment's.
    env: Option<String>,
    /// Only this task's (its name, as listed).
    task: Option<String>,
    /// Only this volume's.
    volume: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/snapshots",
    operation_id = "list_snapshots",
    params(SnapshotQuery),
    responses((status = 200, description = "snapshots, newest first", body = Vec<SnapshotRecord>))
)]
pub async fn list(
    State(state): AppState,
    ApiQuery(query): ApiQuery<SnapshotQuery>,
) -> Result<Json<Vec<SnapshotRecord>>, Failure> {
    if let Some(env) = &query.env {
        crate::releases::versions::check_env_name(env)?;
    }
    let wanted =
        |value: &str, filter: &Option<String>| filter.as_deref().is_none_or(|f| f == value);
    let records = state
        .snapshot_records()?
        .into_iter()
        .filter(|r| {
            wanted(&r.env, &query.env)
                && wanted(&r.task, &query.task)
                && wanted(&r.volume, &query.volume)
        })
        .collect();
    Ok(Json(records))
}

#[utoipa::path(
    post,
    path = "/v1/snapshots",
    operation_id = "create_snapshot",
    request_body = SnapshotRequest,
    responses(
        (status = 200, description = "the snapshot, once its data is kept and checked", body = SnapshotRecord),
        (status = 404, description = "no such task, or it has no such volume", body = cj_api::ApiError),
        (status = 409, description = "the task is not running", body = cj_api::ApiError),
        (status = 502, description = "the copy failed on the task's host, or the target refused it", body = cj_api::ApiError),
        (status = 503, description = "the task's agent is not connected, or there is no snapshot target", body = cj_api::ApiError),
    )
)]
pub async fn create(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<SnapshotRequest>,
) -> Result<Json<SnapshotRecord>, Failure> {
    Ok(Json(state.take_snapshot(&request, &caller.name).await?))
}

#[utoipa::path(
    get,
    path = "/v1/snapshot-data/{id}",
    operation_id = "snapshot_data",
    params(("id" = String, Path, description = "the snapshot's id")),
    responses(
        (status = 200, description = "the snapshot: a zstd-compressed tar", content_type = "application/zstd", body = Vec<u8>),
        (status = 404, description = "no such snapshot", body = cj_api::ApiError),
    )
)]
pub async fn data(State(state): AppState, Path(id): Path<String>) -> Result<Response, Failure> {
    serve_data(&state, &id).await
}

#[utoipa::path(
    get,
    path = "/v1/agent/snapshots/{id}",
    operation_id = "agent_snapshot_data",
    params(("id" = String, Path, description = "the snapshot's id")),
    responses(
        (status = 200, description = "the snapshot, for an agent filling a volume from it", content_type = "application/zstd", body = Vec<u8>),
        (status = 404, description = "no such snapshot", body = cj_api::ApiError),
    )
)]
pub async fn agent_data(
    State(state): AppState,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    serve_data(&state, &id).await
}

async fn serve_data(state: &crate::state::ServerState, id: &str) -> Result<Response, Failure> {
    let record = state.snapshot_record(id)?;
    let target = state.snapshots.target()?;
    let stream = target.read(id).await.map_err(Failure::BadGateway)?;
    let body = Body::from_stream(futures_util::TryStreamExt::map_err(
        stream,
        std::io::Error::other,
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_owned()),
            (header::CONTENT_LENGTH, record.size_bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.tar.zst\""),
            ),
            (
                header::HeaderName::from_static(SHA256_HEADER),
                record.sha256,
            ),
        ],
        body,
    )
        .into_response())
}

#[utoipa::path(
    put,
    path = "/v1/agent/snapshots/{id}",
    operation_id = "upload_snapshot",
    params(("id" = String, Path, description = "the snapshot's id, as the server gave it")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the snapshot, a zstd-compressed tar"),
    responses(
        (status = 204, description = "kept, and its checksum matched"),
        (status = 400, description = "its checksum did not match", body = cj_api::ApiError),
        (status = 404, description = "no snapshot of that id is waiting for its data", body = cj_api::ApiError),
        (status = 502, description = "the snapshot target refused it", body = cj_api::ApiError),
    )
)]
pub async fn upload(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Failure> {
    let Some(waiting) = state.snapshots.take_upload(&id) else {
        return Err(Failure::NotFound(format!(
            "no snapshot {} is waiting for its data",
            crate::error::shown(&id)
        )));
    };
    let target = state.snapshots.target()?;
    let expected = headers
        .get(SHA256_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let written = target.write(&id, body.into_data_stream()).await;
    let outcome = match written {
        Ok(written) if expected.as_deref() == Some(written.sha256.as_str()) => Ok(written),
        Ok(written) => {
            let _ = target.delete(&id).await;
            Err(format!(
                "its data does not match its checksum ({} sent, {} arrived)",
                expected.as_deref().unwrap_or("none"),
                written.sha256
            ))
        }
        Err(error) => Err(error),
    };
    let answer = match &outcome {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(Failure::BadGateway(error.clone())),
    };
    let _ = waiting.send(outcome);
    answer
}

#[utoipa::path(
    post,
    path = "/v1/snapshots/restore",
    operation_id = "restore_snapshot",
    request_body = cj_api::snapshots::RestoreRequest,
    responses(
        (status = 200, description = "the deployment replacing the task; with `follow`, its events, one per line, until it ends", content((cj_api::Deployment = "application/json"), (cj_api::OperationEvent = "application/x-ndjson"))),
        (status = 404, description = "no such snapshot, task or volume", body = cj_api::ApiError),
        (status = 409, description = "the task is not up, another deployment of its service is active, or the snapshot's data does not match its checksum", body = cj_api::ApiError),
    )
)]
pub async fn restore(
    State(state): AppState,
    caller: Identity,
    ApiJson(request): ApiJson<cj_api::snapshots::RestoreRequest>,
) -> Result<Response, Failure> {
    let (deployment, marked) = state.restore_snapshot(&request, &caller.name).await?;
    let started = crate::releases::requests::start(state.clone(), deployment, request.follow);
    if started.is_err() {
        // Nothing will replace the task: the volume keeps what it has.
        state.unmark_restore(&marked)?;
    }
    started
}
