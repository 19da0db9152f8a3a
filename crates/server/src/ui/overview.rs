//! `/`: every environment's services, jobs and tasks with state, health, version, host,
//! uptime, cpu and memory (`?env=` for one environment).

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Query, State};
use serde::Deserialize;
use time::OffsetDateTime;

use super::rows::{Choice, TaskRow, pick_envs};
use super::view::{Chrome, Moment};
use crate::edge::auth::{Identity, Session};
use crate::error::Failure;
use crate::state::ServerState;

#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    env: Option<String>,
}

pub struct EnvSection {
    pub env: String,
    pub rows: Vec<TaskRow>,
}

/// How many resolved alerts the overview shows under the firing ones.
const RESOLVED_SHOWN: usize = 5;

/// An alert as the overview lists it: firing ones first, then the latest resolved.
pub struct AlertRow {
    pub rule: String,
    pub subject: String,
    pub message: String,
    pub started: Option<Moment>,
    pub resolved: Option<Moment>,
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    envs: Vec<Choice>,
    sections: Vec<EnvSection>,
    tasks: usize,
    firing: Vec<AlertRow>,
    resolved: Vec<AlertRow>,
}

/// The alerts the server's rules raised: every firing one, and the latest resolved.
fn alert_rows(
    state: &ServerState,
    now: OffsetDateTime,
) -> Result<(Vec<AlertRow>, Vec<AlertRow>), Failure> {
    let row = |alert: cj_api::alerts::Alert| AlertRow {
        started: Moment::ago(Some(&alert.started), now),
        resolved: Moment::ago(alert.resolved.as_deref(), now),
        rule: alert.rule,
        subject: alert.subject,
        message: alert.message,
    };
    let (firing, resolved): (Vec<_>, Vec<_>) = crate::observe::alerts::Alerts::list(&*state.store)?
        .into_iter()
        .partition(|alert| alert.is_active());
    Ok((
        firing.into_iter().map(row).collect(),
        resolved.into_iter().take(RESOLVED_SHOWN).map(row).collect(),
    ))
}

pub async fn page(
    State(state): State<Arc<ServerState>>,
    caller: Identity,
    session: Option<Extension<Session>>,
    Query(query): Query<OverviewQuery>,
) -> Result<OverviewPage, Failure> {
    let (shown, envs) = pick_envs(&state, query.env)?;
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
    let (firing, resolved) = alert_rows(&state, now)?;
    Ok(OverviewPage {
        firing,
        resolved,
        chrome: Chrome::new("Overview", &caller, session.as_deref()),
        envs,
        tasks: sections.iter().map(|section| section.rows.len()).sum(),
        sections,
    })
}
