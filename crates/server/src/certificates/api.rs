//! `/v1/router/...`: the handlers of what routers share (see the module above). Only the
//! `router` role (and `admin`) reaches them (`edge::auth`).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use cj_api::certificates::{
    CertificateSummary, ChallengeAnswer, LeaseAnswer, LeaseRequest, StoredCertificate,
};

use crate::edge::extract::ApiJson;
use crate::error::Failure;
use crate::state::AppState;

/// Every certificate the routers keep: names and expiry, never keys.
#[utoipa::path(
    get,
    path = "/v1/router/certificates",
    operation_id = "list_router_certificates",
    responses((status = 200, description = "the kept certificates, without keys", body = [CertificateSummary]))
)]
pub async fn list(
    axum::extract::State(state): AppState,
) -> Result<Json<Vec<CertificateSummary>>, Failure> {
    Ok(Json(state.router_certificates()?))
}

/// One name's certificate with its private key, for routers to serve.
#[utoipa::path(
    get,
    path = "/v1/router/certificates/{name}",
    operation_id = "get_router_certificate",
    params(("name" = String, Path, description = "the host name")),
    responses(
        (status = 200, description = "the certificate chain, its key and expiry", body = StoredCertificate),
        (status = 404, description = "no certificate is kept for this name", body = cj_api::ApiError),
    )
)]
pub async fn get(
    axum::extract::State(state): AppState,
    Path(name): Path<String>,
) -> Result<Json<StoredCertificate>, Failure> {
    match state.router_certificate(&name)? {
        Some(certificate) => Ok(Json(certificate)),
        None => Err(Failure::NotFound(format!(
            "no certificate is kept for {name}"
        ))),
    }
}

/// Keeps a certificate a router obtained for a name, replacing the one kept before.
#[utoipa::path(
    put,
    path = "/v1/router/certificates/{name}",
    operation_id = "put_router_certificate",
    params(("name" = String, Path, description = "the host name")),
    request_body = StoredCertificate,
    responses((status = 204, description = "kept"))
)]
pub async fn put(
    axum::extract::State(state): AppState,
    Path(name): Path<String>,
    ApiJson(certificate): ApiJson<StoredCertificate>,
) -> Result<StatusCode, Failure> {
    state.put_router_certificate(&name, &certificate)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to an ACME HTTP-01 challenge, for whichever router the ACME server reaches.
#[utoipa::path(
    get,
    path = "/v1/router/challenges/{token}",
    operation_id = "get_router_challenge",
    params(("token" = String, Path, description = "the challenge's token")),
    responses(
        (status = 200, description = "the key authorization to answer", body = ChallengeAnswer),
        (status = 404, description = "no such challenge (answered, or never made)", body = cj_api::ApiError),
    )
)]
pub async fn get_challenge(
    axum::extract::State(state): AppState,
    Path(token): Path<String>,
) -> Result<Json<ChallengeAnswer>, Failure> {
    match state.router_challenge(&token)? {
        Some(answer) => Ok(Json(answer)),
        None => Err(Failure::NotFound("no such challenge".into())),
    }
}

/// Keeps a challenge's answer (for 10 minutes at most).
#[utoipa::path(
    put,
    path = "/v1/router/challenges/{token}",
    operation_id = "put_router_challenge",
    params(("token" = String, Path, description = "the challenge's token")),
    request_body = ChallengeAnswer,
    responses((status = 204, description = "kept"))
)]
pub async fn put_challenge(
    axum::extract::State(state): AppState,
    Path(token): Path<String>,
    ApiJson(answer): ApiJson<ChallengeAnswer>,
) -> Result<StatusCode, Failure> {
    state.put_router_challenge(&token, &answer)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forgets a challenge's answer once its order is decided.
#[utoipa::path(
    delete,
    path = "/v1/router/challenges/{token}",
    operation_id = "delete_router_challenge",
    params(("token" = String, Path, description = "the challenge's token")),
    responses((status = 204, description = "gone (or was)"))
)]
pub async fn delete_challenge(
    axum::extract::State(state): AppState,
    Path(token): Path<String>,
) -> Result<StatusCode, Failure> {
    state.remove_router_challenge(&token)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes, extends or (`ttl_seconds: 0`) gives back the lease to order a name's certificate.
#[utoipa::path(
    put,
    path = "/v1/router/leases/{name}",
    operation_id = "router_lease",
    params(("name" = String, Path, description = "the host name")),
    request_body = LeaseRequest,
    responses((status = 200, description = "whether the caller holds the lease now", body = LeaseAnswer))
)]
pub async fn lease(
    axum::extract::State(state): AppState,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<LeaseRequest>,
) -> Result<Json<LeaseAnswer>, Failure> {
    Ok(Json(state.router_lease(&name, &request)?))
}
