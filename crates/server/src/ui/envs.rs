//! `/ui/envs`: the environments with their TTLs, a form to create one as a copy of another
//! (with a TTL), and a destroy button on each, for callers who may deploy.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;
use cj_api::envs::EnvInfo;
use time::OffsetDateTime;

use super::view::{Chrome, Moment, state_class};
use crate::edge::auth::{Identity, Session};
use crate::error::Failure;
use crate::state::ServerState;

pub struct EnvRow {
    pub name: String,
    pub from: String,
    pub created: Option<Moment>,
    pub created_by: String,
    pub expires: Option<Moment>,
    pub services: String,
    pub jobs_up: usize,
    pub tasks: String,
    pub state: String,
    pub state_class: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/envs.html")]
pub struct EnvsPage {
    chrome: Chrome,
    envs: Vec<EnvRow>,
}

pub async fn page(
    State(state): State<Arc<ServerState>>,
    caller: Identity,
    session: Option<Extension<Session>>,
) -> Result<EnvsPage, Failure> {
    let now = OffsetDateTime::now_utc();
    Ok(EnvsPage {
        chrome: Chrome::new("Environments", &caller, session.as_deref()),
        envs: state
            .env_infos(false)?
            .iter()
            .map(|info| row(info, now))
            .collect(),
    })
}

fn row(info: &EnvInfo, now: OffsetDateTime) -> EnvRow {
    EnvRow {
        name: info.name.clone(),
        from: info.from.clone().unwrap_or_default(),
        created: Moment::ago(info.created_at.as_deref(), now),
        created_by: info.created_by.clone().unwrap_or_default(),
        expires: Moment::ago(info.expires_at.as_deref(), now),
        services: info.services.join(", "),
        jobs_up: info.jobs_up,
        tasks: format!("{}/{}", info.tasks_running, info.tasks_total),
        state_class: state_class(&info.state),
        state: info.state.clone(),
    }
}
