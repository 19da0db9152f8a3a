//! `/`: every environment's services, jobs and tasks with state, health, version, host,
//! uptime, cpu and memory (`?env=` for one environment).

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Query, State};
use serde::Deserialize;
use time::OffsetDateTime;

use super::rows::{Choice, TaskRow, choices, env_names};
use super::view::Chrome;
use crate::auth::{Identity, Session};
use crate::error::ApiFailure;
use crate::state::ServerState;

#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    env: Option<String>,
}

pub struct EnvSection {
    pub env: String,
    pub rows: Vec<TaskRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    envs: Vec<Choice>,
    sections: Vec<EnvSection>,
    tasks: usize,
}

pub async fn page(
    State(state): State<Arc<ServerState>>,
    caller: Identity,
    session: Option<Extension<Session>>,
    Query(query): Query<OverviewQuery>,
) -> Result<OverviewPage, ApiFailure> {
    let chosen = query.env.filter(|env| !env.is_empty());
    let names = env_names(&state)?;
    let shown: Vec<String> = match &chosen {
        Some(env) => vec![env.clone()],
        None => names.clone(),
    };
    let now = OffsetDateTime::now_utc();
    let mut sections = Vec::new();
    for env in shown {
        let rows = state
            .status(&env, None)?
            .iter()
            .map(|status| TaskRow::new(status, now))
            .collect();
        sections.push(EnvSection { env, rows });
    }
    Ok(OverviewPage {
        chrome: Chrome::new("Overview", &caller, session.as_deref()),
        envs: choices(&names, chosen.as_deref()),
        tasks: sections.iter().map(|section| section.rows.len()).sum(),
        sections,
    })
}
