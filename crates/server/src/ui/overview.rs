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
    /// Which page of tasks, from 1.
    page: Option<usize>,
}

/// Tasks per page: a page of a hundred thousand tasks would take the browser seconds to lay
/// out, and the server as long to join each with its containers.
pub const PAGE_SIZE: usize = 500;

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
    paging: Paging,
    firing: Vec<AlertRow>,
    resolved: Vec<AlertRow>,
}

/// Where this page is among the overview's pages, and the links to its neighbours.
pub struct Paging {
    /// The first and last task shown, from 1 (0 and 0 when none are).
    pub first: usize,
    pub last: usize,
    pub page: usize,
    pub pages: usize,
    pub previous: Option<String>,
    pub next: Option<String>,
}

impl Paging {
    fn new(env: Option<&str>, page: usize, shown: usize, total: usize) -> Paging {
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let link = |page: usize| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(env) = env {
                query.append_pair("env", env);
            }
            query.append_pair("page", &page.to_string());
            format!("/?{}", query.finish())
        };
        let before = (page - 1) * PAGE_SIZE;
        let (first, last) = match shown {
            0 => (0, 0),
            shown => (before + 1, before + shown),
        };
        Paging {
            first,
            last,
            page,
            pages,
            previous: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
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
    let chosen = query.env.clone().filter(|env| !env.is_empty());
    let (shown, envs) = pick_envs(&state, query.env)?;
    let now = OffsetDateTime::now_utc();
    let page = query.page.unwrap_or(1).max(1);
    // The pages run through every shown environment's tasks in turn.
    let mut skip = (page - 1) * PAGE_SIZE;
    let mut take = PAGE_SIZE;
    let mut total = 0;
    let mut sections = Vec::new();
    for env in shown {
        let (statuses, count) = state.status_page(&env, None, skip, take)?;
        total += count;
        skip = skip.saturating_sub(count);
        take -= statuses.len();
        let rows = statuses
            .iter()
            .map(|status| TaskRow::new(status, now))
            .collect::<Vec<_>>();
        // An environment whose tasks are all on other pages is not shown on this one.
        if !rows.is_empty() || count == 0 {
            sections.push(EnvSection { env, rows });
        }
    }
    let shown_rows = sections.iter().map(|section| section.rows.len()).sum();
    let paging = Paging::new(chosen.as_deref(), page, shown_rows, total);
    let (firing, resolved) = alert_rows(&state, now)?;
    Ok(OverviewPage {
        firing,
        resolved,
        chrome: Chrome::new("Overview", &caller, session.as_deref()),
        envs,
        tasks: total,
        paging,
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_tasks_and_link_their_neighbours() {
        let only = Paging::new(None, 1, 3, 3);
        assert_eq!((only.first, only.last, only.pages), (1, 3, 1));
        assert!(only.previous.is_none() && only.next.is_none());

        let middle = Paging::new(Some("pr 7"), 2, PAGE_SIZE, 3 * PAGE_SIZE - 1);
        assert_eq!((middle.first, middle.last), (PAGE_SIZE + 1, 2 * PAGE_SIZE));
        assert_eq!(middle.pages, 3);
        assert_eq!(middle.previous.as_deref(), Some("/?env=pr+7&page=1"));
        assert_eq!(middle.next.as_deref(), Some("/?env=pr+7&page=3"));

        let last = Paging::new(None, 3, PAGE_SIZE - 1, 3 * PAGE_SIZE - 1);
        assert_eq!(
            (last.first, last.last),
            (2 * PAGE_SIZE + 1, 3 * PAGE_SIZE - 1)
        );
        assert!(last.next.is_none());

        let beyond = Paging::new(None, 9, 0, 10);
        assert_eq!((beyond.first, beyond.last), (0, 0));
        assert_eq!(beyond.previous.as_deref(), Some("/?page=8"));
    }
}
