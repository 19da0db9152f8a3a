//! The UI's forms: `POST /ui/actions/...`, form-encoded, each calling the same function as
//! its `/v1/...` route and answering with a redirect back to its page (303). The auth layer
//! has already checked the role and, for a session, the `csrf` field.

use axum::Form;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cj_api::envs::CreateEnvRequest;
use serde::Deserialize;

use crate::edge::auth::Identity;
use crate::error::Failure;
use crate::releases::requests::{decide_gate, plan_rollback, store_and_start};

use crate::state::AppState;

/// Refuses a form posted from another site. A session's forms carry its CSRF value (checked by
/// the auth layer), but an open `dev` server has no session: without this, any page the
/// browser visits could post to it. Browsers say where a form comes from (`Origin`, and
/// `Sec-Fetch-Site`); a request without either is not a browser's cross-site form.
pub async fn same_origin(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let origin_host = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .map(|origin| origin.split_once("://").map_or(origin, |(_, rest)| rest));
    let cross_site = matches!(fetch_site, Some("cross-site" | "same-site"))
        || origin_host.is_some_and(|origin| Some(origin) != host);
    if cross_site {
        return Failure::Csrf(
            "this form was sent from another site: use the pages of this server".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Promote or abort: the deployment of the target's service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateForm {
    env: String,
    target: String,
    /// Checked by the auth layer, before the handler runs.
    #[serde(default, rename = "csrf")]
    _csrf: Option<String>,
}

pub async fn promote(
    State(state): AppState,
    Form(form): Form<GateForm>,
) -> Result<Redirect, Failure> {
    decide_gate(&state, &form.env, &form.target, true)?;
    Ok(Redirect::to("/ui/deployments"))
}

pub async fn abort(
    State(state): AppState,
    Form(form): Form<GateForm>,
) -> Result<Redirect, Failure> {
    decide_gate(&state, &form.env, &form.target, false)?;
    Ok(Redirect::to("/ui/deployments"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackForm {
    env: String,
    /// `SERVICE/JOB`.
    target: String,
    to_version: Option<u64>,
    /// Checked by the auth layer, before the handler runs.
    #[serde(default, rename = "csrf")]
    _csrf: Option<String>,
}

pub async fn rollback(
    State(state): AppState,
    caller: Identity,
    Form(form): Form<RollbackForm>,
) -> Result<Redirect, Failure> {
    let planned = plan_rollback(
        &state,
        &form.env,
        &form.target,
        form.to_version,
        &caller.name,
    )?;
    store_and_start(&state, planned)?;
    Ok(Redirect::to("/ui/deployments"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvForm {
    name: String,
    from: String,
    /// How long it lives: `90s`, `30m`, `4h`, `2d`; empty for no limit.
    #[serde(default)]
    ttl: String,
    /// Checked by the auth layer, before the handler runs.
    #[serde(default, rename = "csrf")]
    _csrf: Option<String>,
}

pub async fn create_env(
    State(state): AppState,
    caller: Identity,
    Form(form): Form<CreateEnvForm>,
) -> Result<Redirect, Failure> {
    let request = CreateEnvRequest {
        name: form.name.trim().to_owned(),
        from: form.from,
        vars: Default::default(),
        secret_vars: Vec::new(),
        ttl_seconds: ttl_seconds(&form.ttl)?,
        map_hosts: Default::default(),
        vars_file: None,
        with_data: None,
    };
    state.create_env(&request, &caller.name)?;
    Ok(Redirect::to("/ui/envs"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyEnvForm {
    name: String,
    /// Checked by the auth layer, before the handler runs.
    #[serde(default, rename = "csrf")]
    _csrf: Option<String>,
}

pub async fn destroy_env(
    State(state): AppState,
    caller: Identity,
    Form(form): Form<DestroyEnvForm>,
) -> Result<Redirect, Failure> {
    // Its own task, as `DELETE /v1/envs/{name}`: a browser that goes away must not leave an
    // environment half destroyed.
    let destroying =
        tokio::spawn(async move { state.destroy_env(&form.name, false, &caller.name).await });
    destroying
        .await
        .map_err(|error| Failure::Internal(format!("destroy failed: {error}")))??;
    Ok(Redirect::to("/ui/envs"))
}

/// `90s`, `30m`, `4h`, `2d` (a bare number is seconds) in seconds; empty is none.
fn ttl_seconds(text: &str) -> Result<Option<u64>, Failure> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(count) if scale > 0 => Ok(Some(count.saturating_mul(scale))),
        _ => Err(Failure::BadRequest(format!(
            "ttl {} is not a duration: expected a number with s, m, h or d (e.g. 4h)",
            crate::error::shown(text)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_with_their_unit() {
        let cases = [
            ("", Some(None)),
            ("90", Some(Some(90))),
            ("30m", Some(Some(1800))),
            ("4h", Some(Some(14400))),
            (" 2d ", Some(Some(172800))),
            ("4 weeks", None),
            ("h", None),
        ];
        for (text, expected) in cases {
            assert_eq!(ttl_seconds(text).ok(), expected, "{text:?}");
        }
    }
}
