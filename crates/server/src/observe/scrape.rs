//! `GET /metrics`: the Prometheus text exposition. Current state (tasks by state and health,
//! hosts' and tasks' resource use) is computed from the server's state on every scrape, so a
//! task or host that is gone simply is not in the next answer; events and latencies come from
//! the process's recorder (`recorder`).
//!
//! Series computed here:
//! - `coding_job_tasks{env, service, job, state, health}`: how many tasks (of jobs that are up)
//!   are in that state; `health` is `none` for tasks without a check;
//! - `coding_job_host_up{host}` (1 connected, 0 down) and, for connected hosts, their last
//!   reading: `coding_job_host_cpus`, `coding_job_host_cpu_percent` (100 is every CPU busy),
//!   `coding_job_host_memory_{used,total}_bytes`, `coding_job_host_disk_{used,total}_bytes`;
//! - `coding_job_task_cpu_percent` and `coding_job_task_memory_bytes{env, service, job, task,
//!   host}` for running containers, from the stats their agents last sent;
//! - on the leader, what every router (standalone ones too) last reported for each version of
//!   each routed job: `coding_job_router_version_requests_total`, `..._responses_5xx_total`,
//!   `..._connection_failures_total` and the `..._response_seconds` histogram, labelled
//!   `{router, env, route, service, job, version}`.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cj_api::metrics_text::escape_label as escape;
use cj_api::{HostInfo, TaskStatus};

use crate::error::Failure;
use crate::keys;
use crate::state::AppState;
use crate::state::ServerState;

/// The content type of the text format Prometheus scrapes.
pub(crate) const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition of the `coding_job_*` series",
        content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(State(state): AppState) -> Result<Response, Failure> {
    let tasks = state.all_task_statuses()?;
    let hosts = state.host_infos(false);
    let mut text = state_text(&tasks, &hosts);
    text.push_str(&state.router_counts.exposition());
    text.push_str(&crate::observe::recorder::render());
    Ok(([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response())
}

impl ServerState {
    /// A status row for every task of every job that is up, in every environment.
    pub(crate) fn all_task_statuses(&self) -> Result<Vec<TaskStatus>, Failure> {
        let mut rows = Vec::new();
        for desired in self.desired_jobs(keys::DESIRED_ALL)? {
            for task in self.desired_tasks(&desired)? {
                let hash = task.config_hash();
                let host = self
                    .scheduler
                    .host_of(&task.key, &task.spec)
                    .unwrap_or_default();
                rows.push(self.task_status(task.key, host, Some(&desired), Some(&hash)));
            }
        }
        Ok(rows)
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// The text of the state-derived series.
pub fn state_text(tasks: &[TaskStatus], hosts: &[HostInfo]) -> String {
    let mut text = String::new();
    let mut counts: BTreeMap<[&str; 5], u64> = BTreeMap::new();
    for task in tasks {
        let health = task.health.as_deref().unwrap_or("none");
        let labels = [
            task.env.as_str(),
            &task.service,
            &task.job,
            &task.state,
            health,
        ];
        *counts.entry(labels).or_default() += 1;
    }
    let samples: Vec<(Labels, f64)> = counts
        .iter()
        .map(|([env, service, job, state, health], count)| {
            let labels = vec![
                ("env", *env),
                ("service", *service),
                ("job", *job),
                ("state", *state),
                ("health", *health),
            ];
            (labels, *count as f64)
        })
        .collect();
    family(
        &mut text,
        "coding_job_tasks",
        "Tasks of jobs that are up, by state and health.",
        &samples,
    );

    let connected: Vec<&HostInfo> = hosts.iter().filter(|host| host.state != "down").collect();
    let up: Vec<(Labels, f64)> = hosts
        .iter()
        .map(|host| {
            let up = if host.state == "down" { 0.0 } else { 1.0 };
            (vec![("host", host.name.as_str())], up)
        })
        .collect();
    family(
        &mut text,
        "coding_job_host_up",
        "1 while the host's agent is connected, 0 while it is down.",
        &up,
    );
    type Reading = fn(&cj_api::HostResources) -> f64;
    let readings: [(&str, &str, Reading); 6] = [
        ("coding_job_host_cpus", "CPUs of the host.", |r| {
            f64::from(r.cpus)
        }),
        (
            "coding_job_host_cpu_percent",
            "CPU use of the host; 100 is every CPU busy.",
            |r| r.cpu_percent,
        ),
        (
            "coding_job_host_memory_used_bytes",
            "Memory in use on the host.",
            |r| r.memory_used_bytes as f64,
        ),
        (
            "coding_job_host_memory_total_bytes",
            "Memory of the host.",
            |r| r.memory_total_bytes as f64,
        ),
        (
            "coding_job_host_disk_used_bytes",
            "Disk in use on the host's largest filesystem.",
            |r| r.disk_used_bytes as f64,
        ),
        (
            "coding_job_host_disk_total_bytes",
            "Size of the host's largest filesystem.",
            |r| r.disk_total_bytes as f64,
        ),
    ];
    for (name, help, reading) in readings {
        let samples: Vec<(Labels, f64)> = connected
            .iter()
            .filter_map(|host| {
                let resources = host.resources.as_ref()?;
                Some((vec![("host", host.name.as_str())], reading(resources)))
            })
            .collect();
        family(&mut text, name, help, &samples);
    }

    fn task_labels(task: &TaskStatus) -> Option<Labels<'_>> {
        Some(vec![
            ("env", task.env.as_str()),
            ("service", task.service.as_str()),
            ("job", task.job.as_str()),
            ("task", task.task.as_str()),
            ("host", task.actual_host.as_deref()?),
        ])
    }
    let cpu: Vec<(Labels, f64)> = tasks
        .iter()
        .filter_map(|task| Some((task_labels(task)?, task.cpu_percent?)))
        .collect();
    family(
        &mut text,
        "coding_job_task_cpu_percent",
        "CPU use of a task's running container, in percent of one CPU.",
        &cpu,
    );
    let memory: Vec<(Labels, f64)> = tasks
        .iter()
        .filter_map(|task| Some((task_labels(task)?, task.memory_bytes? as f64)))
        .collect();
    family(
        &mut text,
        "coding_job_task_memory_bytes",
        "Memory in use by a task's running container.",
        &memory,
    );
    text
}

/// One gauge family: its HELP and TYPE lines, then a line per sample. A family without samples
/// is left out whole.
fn family(text: &mut String, name: &str, help: &str, samples: &[(Labels, f64)]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} gauge");
    for (labels, value) in samples {
        let labels: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
            .collect();
        let _ = writeln!(text, "{name}{{{}}} {value}", labels.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, state: &str, health: Option<&str>) -> TaskStatus {
        TaskStatus {
            env: "production".into(),
            service: "shop".into(),
            job: "web".into(),
            task: name.into(),
            host: "h1".into(),
            actual_host: Some("h1".into()),
            state: state.into(),
            health: health.map(str::to_owned),
            cpu_percent: Some(1.5),
            memory_bytes: Some(2048),
            detail: None,
            image: None,
            container_id: None,
            container_name: None,
            version: None,
            desired_version: None,
            started_at: None,
            exit_code: None,
        }
    }

    fn host(name: &str, state: &str) -> HostInfo {
        HostInfo {
            name: name.into(),
            state: state.into(),
            resources: Some(cj_api::HostResources {
                at: "2026-12-06T00:00:00Z".into(),
                cpus: 2,
                cpu_percent: 12.5,
                memory_total_bytes: 1000,
                memory_used_bytes: 400,
                disk_total_bytes: 5000,
                disk_used_bytes: 4500,
            }),
            address: None,
            labels: Default::default(),
            draining: false,
            engine_version: None,
            last_heartbeat: None,
            tasks: 0,
            history: Vec::new(),
        }
    }

    #[test]
    fn tasks_are_counted_by_state_and_health_and_hosts_read() {
        let tasks = [
            task("web-1", "running", Some("healthy")),
            task("web-2", "running", Some("healthy")),
            task("web-3", "restarting", None),
        ];
        let hosts = [host("h1", "ready"), host("h2", "down")];
        let text = state_text(&tasks, &hosts);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        for expected in [
            r#"coding_job_tasks{env="production",service="shop",job="web",state="restarting",health="none"} 1"#,
            r#"coding_job_tasks{env="production",service="shop",job="web",state="running",health="healthy"} 2"#,
            r#"coding_job_host_up{host="h1"} 1"#,
            r#"coding_job_host_up{host="h2"} 0"#,
            r#"coding_job_host_cpu_percent{host="h1"} 12.5"#,
            r#"coding_job_host_disk_used_bytes{host="h1"} 4500"#,
            r#"coding_job_task_memory_bytes{env="production",service="shop",job="web",task="web-3",host="h1"} 2048"#,
        ] {
            assert!(lines.contains(&expected), "missing {expected} in\n{text}");
        }
        // A down host's last reading is stale: only its `up` is shown.
        assert!(
            !text.contains(r#"coding_job_host_cpus{host="h2"}"#),
            "{text}"
        );
        assert!(text.contains("# TYPE coding_job_tasks gauge\n"));
    }

    #[test]
    fn nothing_is_left_of_what_is_gone() {
        let text = state_text(&[], &[]);
        assert_eq!(text, "");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
