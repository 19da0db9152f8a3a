//! `/ui/audit`: the newest entries of the audit log, for admins (others are told so).

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use cj_api::AuditEntry;
use time::OffsetDateTime;

use super::view::{Chrome, Moment};
use crate::edge::auth::{Auth, Identity, Session};
use crate::error::Failure;

/// How many entries the page shows (the newest).
const SHOWN: usize = 200;

pub struct EntryRow {
    pub at: Option<Moment>,
    pub who: String,
    pub role: String,
    pub method: String,
    pub path: String,
    pub subject: String,
    pub status: u16,
    pub refused: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/audit.html")]
pub struct AuditPage {
    chrome: Chrome,
    entries: Vec<EntryRow>,
}

pub async fn page(
    Extension(auth): Extension<Arc<Auth>>,
    caller: Identity,
    session: Option<Extension<Session>>,
) -> Result<AuditPage, Failure> {
    let chrome = Chrome::new("Audit log", &caller, session.as_deref());
    // Only admins read the log (as `GET /v1/audit`); others get the page that says so.
    let entries = match chrome.is_admin {
        true => auth.audit.newest(SHOWN)?,
        false => Vec::new(),
    };
    let now = OffsetDateTime::now_utc();
    Ok(AuditPage {
        entries: entries.iter().map(|entry| row(entry, now)).collect(),
        chrome,
    })
}

fn row(entry: &AuditEntry, now: OffsetDateTime) -> EntryRow {
    let subject = match (&entry.env, &entry.target) {
        (Some(env), Some(target)) => format!("{env} · {target}"),
        (Some(env), None) => env.clone(),
        (None, Some(target)) => target.clone(),
        (None, None) => String::new(),
    };
    EntryRow {
        at: Moment::ago(Some(&entry.at), now),
        who: entry.who.clone(),
        role: entry.role.map(|role| role.to_string()).unwrap_or_default(),
        method: entry.method.clone(),
        path: entry.path.clone(),
        subject,
        status: entry.status,
        refused: entry.status >= 400,
    }
}
