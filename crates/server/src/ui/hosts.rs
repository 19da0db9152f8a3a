//! `/ui/hosts`: every host's cpu, memory and disk now and over the last hour (charts), and
//! the tasks on it with their containers' Docker stats.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State;
use cj_api::{HostInfo, HostResources};
use time::OffsetDateTime;

use super::chart::sparkline;
use super::rows::{TaskRow, env_names};
use super::view::{Chrome, Moment, bytes, percent, state_class};
use crate::edge::auth::{Identity, Session};
use crate::error::Failure;
use crate::state::ServerState;

pub struct HostView {
    pub name: String,
    pub state: String,
    pub state_class: &'static str,
    pub address: String,
    pub engine: String,
    pub heard: Option<Moment>,
    pub cpu: String,
    pub memory: String,
    pub disk: String,
    pub cpu_chart: String,
    pub memory_chart: String,
    pub disk_chart: String,
    pub tasks: Vec<TaskRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/hosts.html")]
pub struct HostsPage {
    chrome: Chrome,
    hosts: Vec<HostView>,
}

pub async fn page(
    State(state): State<Arc<ServerState>>,
    caller: Identity,
    session: Option<Extension<Session>>,
) -> Result<HostsPage, Failure> {
    let now = OffsetDateTime::now_utc();
    let mut tasks: BTreeMap<String, Vec<TaskRow>> = BTreeMap::new();
    for env in env_names(&state)? {
        for status in state.status(&env, None)? {
            if status.container_id.is_some() {
                let row = TaskRow::new(&status, now);
                tasks.entry(row.host.clone()).or_default().push(row);
            }
        }
    }
    let hosts = state
        .host_infos(true)
        .into_iter()
        .map(|host| {
            let rows = tasks.remove(&host.name).unwrap_or_default();
            view(host, rows, now)
        })
        .collect();
    Ok(HostsPage {
        chrome: Chrome::new("Hosts", &caller, session.as_deref()),
        hosts,
    })
}

fn share(used: u64, total: u64) -> f64 {
    match total {
        0 => 0.0,
        _ => used as f64 * 100.0 / total as f64,
    }
}

fn view(host: HostInfo, tasks: Vec<TaskRow>, now: OffsetDateTime) -> HostView {
    let series =
        |pick: fn(&HostResources) -> f64| -> Vec<f64> { host.history.iter().map(pick).collect() };
    let cpu = series(|r| r.cpu_percent);
    let memory = series(|r| share(r.memory_used_bytes, r.memory_total_bytes));
    let disk = series(|r| share(r.disk_used_bytes, r.disk_total_bytes));
    let now_text = |text: Option<String>| text.unwrap_or_else(|| "no reading yet".into());
    let resources = host.resources.as_ref();
    HostView {
        state_class: state_class(&host.state),
        state: host.state.clone(),
        address: host.address.clone().unwrap_or_default(),
        engine: host.engine_version.clone().unwrap_or_default(),
        heard: Moment::ago(host.last_heartbeat.as_deref(), now),
        cpu: now_text(resources.map(|r| format!("{} of {} CPUs", percent(r.cpu_percent), r.cpus))),
        memory: now_text(resources.map(|r| {
            format!(
                "{} of {}",
                bytes(r.memory_used_bytes),
                bytes(r.memory_total_bytes)
            )
        })),
        disk: now_text(resources.map(|r| {
            format!(
                "{} of {}",
                bytes(r.disk_used_bytes),
                bytes(r.disk_total_bytes)
            )
        })),
        cpu_chart: sparkline(&format!("{} cpu over the last hour", host.name), &cpu),
        memory_chart: sparkline(&format!("{} memory over the last hour", host.name), &memory),
        disk_chart: sparkline(&format!("{} disk over the last hour", host.name), &disk),
        name: host.name,
        tasks,
    }
}
