//! `/ui/history/{env}/{service}/{job}`: the versions of the job's service (who pushed each and
//! when), the diff between any two of them (`?from=&to=`, from the same versions as
//! `GET /v1/versions/diff`), every container the job ran with its exit code, and the events.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use similar::{ChangeTag, TextDiff};
use time::OffsetDateTime;

use super::task::ContainerRow;
use super::view::{Chrome, Moment};
use crate::edge::auth::{Identity, Session};
use crate::error::Failure;
use crate::state::ServerState;

#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: Option<u64>,
    to: Option<u64>,
}

pub struct VersionRow {
    pub version: u64,
    pub file: String,
    pub pushed_by: String,
    pub pushed_at: Option<Moment>,
    pub from_selected: bool,
    pub to_selected: bool,
}

/// One line of a diff: `add`, `remove` or `same`, with its sign.
pub struct DiffLine {
    pub class: &'static str,
    pub sign: char,
    pub text: String,
}

pub struct EventRow {
    pub at: Option<Moment>,
    pub kind: String,
    pub task: String,
    pub container: String,
    pub version: u64,
    pub host: String,
    pub exit_code: String,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/history.html")]
pub struct HistoryPage {
    chrome: Chrome,
    versions: Vec<VersionRow>,
    from: u64,
    to: u64,
    diff: Vec<DiffLine>,
    containers: Vec<ContainerRow>,
    events: Vec<EventRow>,
}

/// How many versions, containers and events the page shows (the newest of each).
const SHOWN: usize = 200;

pub async fn page(
    State(state): State<Arc<ServerState>>,
    caller: Identity,
    session: Option<Extension<Session>>,
    Path((env, service, job)): Path<(String, String, String)>,
    Query(query): Query<DiffQuery>,
) -> Result<HistoryPage, Failure> {
    let target = format!("{service}/{job}");
    let history = state.history(&env, &target, SHOWN)?;
    let now = OffsetDateTime::now_utc();
    let newest = history.versions.last().map_or(1, |v| v.version);
    let to = query.to.unwrap_or(newest);
    let from = query.from.unwrap_or(to.saturating_sub(1).max(1));
    let diff = diff_lines(&state, &env, &target, from, to)?;
    let versions = history
        .versions
        .iter()
        .rev()
        .map(|info| VersionRow {
            version: info.version,
            file: info.file.clone(),
            pushed_by: info.pushed_by.clone(),
            pushed_at: Moment::ago(Some(&info.pushed_at), now),
            from_selected: info.version == from,
            to_selected: info.version == to,
        })
        .collect();
    let containers = history
        .containers
        .iter()
        .rev()
        .map(|record| {
            let task_target = format!("{service}/{job}/{}", record.task);
            ContainerRow::new(record, &env, &task_target, now)
        })
        .collect();
    let events = history
        .events
        .iter()
        .rev()
        .map(|event| EventRow {
            at: Moment::ago(Some(&event.at), now),
            kind: event.kind.clone(),
            task: event.task.clone(),
            container: event.container_id.chars().take(12).collect(),
            version: event.version,
            host: event.host.clone(),
            exit_code: event.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            detail: event.detail.clone().unwrap_or_default(),
        })
        .collect();
    Ok(HistoryPage {
        chrome: Chrome::new(
            format!("{env} · {service}/{job} history"),
            &caller,
            session.as_deref(),
        ),
        versions,
        from,
        to,
        diff,
        containers,
        events,
    })
}

/// The line diff between two versions' files; empty when they are the same version.
fn diff_lines(
    state: &ServerState,
    env: &str,
    target: &str,
    from: u64,
    to: u64,
) -> Result<Vec<DiffLine>, Failure> {
    if from == to {
        return Ok(Vec::new());
    }
    let versions = crate::releases::previews::versions_between(state, env, target, from, to)?;
    let diff = TextDiff::from_lines(&versions.from_source, &versions.to_source);
    Ok(diff
        .iter_all_changes()
        .map(|change| {
            let (class, sign) = match change.tag() {
                ChangeTag::Insert => ("add", '+'),
                ChangeTag::Delete => ("remove", '-'),
                ChangeTag::Equal => ("same", ' '),
            };
            DiffLine {
                class,
                sign,
                text: change.value().trim_end_matches('\n').to_owned(),
            }
        })
        .collect())
}
