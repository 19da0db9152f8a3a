//! What a router counted, sent to the server: every few seconds `POST /v1/router/counts` with
//! each route's per-version counts ([`RouterCounts`]), so the server judges a canary by what
//! every router saw, standalone ones included. Counts are cumulative since the router started,
//! so a lost report loses nothing; given several servers (a comma-separated list), a report
//! that fails on one goes to the next at once, and the one that took it is kept.

use std::sync::Arc;
use std::time::Duration;

use cj_api::routes::{RouteCounts, RouterCounts};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::proxy::Proxy;

/// How often a router reports unless told otherwise.
pub const DEFAULT_REPORT_EVERY: Duration = Duration::from_secs(2);
/// A report not answered in this long (at least) counts as failed.
const MIN_REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on a router's counters, kept after the router is serving (see
/// [`crate::Router::counts_source`]).
#[derive(Clone)]
pub struct CountsSource {
    pub(crate) proxy: Arc<Proxy>,
}

impl CountsSource {
    /// Every route's per-version counts now, in the report of router `router`, started at
    /// `started` (RFC 3339). Sorted by environment, route name and job.
    pub fn counts(&self, router: &str, started: &str) -> RouterCounts {
        let table = self.proxy.table();
        let mut routes: Vec<RouteCounts> = table
            .routes()
            .map(|entry| RouteCounts {
                env: entry.route.env.clone(),
                route: entry.route.name.clone(),
                service: entry.route.service.clone(),
                job: entry.route.job.clone(),
                versions: entry.counters.versions(),
            })
            .collect();
        routes.sort_by(|a, b| (&a.env, &a.route, &a.job).cmp(&(&b.env, &b.route, &b.job)));
        RouterCounts {
            router: router.to_owned(),
            started: started.to_owned(),
            routes,
        }
    }
}

/// Reports `source`'s counts as router `router_name` to the server at `server_url`
/// (`http(s)://HOST:PORT`, or several separated by commas) every `every`, until the task is
/// dropped. A failure is logged once, when an outage begins, and once more when it ends.
///
/// `http` carries the TLS configuration; `token` is sent as `Authorization: Bearer`.
pub async fn report_counts(
    server_url: &str,
    token: Option<String>,
    http: reqwest::Client,
    source: CountsSource,
    router_name: String,
    every: Duration,
) {
    let servers: Vec<&str> = server_url
        .split(',')
        .map(|server| server.trim().trim_end_matches('/'))
        .filter(|server| !server.is_empty())
        .collect();
    if servers.is_empty() {
        return;
    }
    let started = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let timeout = every.max(MIN_REPORT_TIMEOUT);
    let mut current = 0;
    let mut outage = false;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let report = source.counts(&router_name, &started);
        let mut last_error = None;
        for _ in 0..servers.len() {
            let server = servers[current];
            let mut request = http
                .post(format!("{server}/v1/router/counts"))
                .timeout(timeout)
                .json(&report);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    last_error = None;
                    break;
                }
                Ok(response) => {
                    last_error = Some(format!("{server} answered {}", response.status()))
                }
                Err(error) => last_error = Some(format!("{server}: {error}")),
            }
            current = (current + 1) % servers.len();
        }
        match (last_error, outage) {
            (None, true) => {
                outage = false;
                tracing::info!(server = %servers[current], "reporting the router's counts again");
            }
            (Some(error), false) => {
                outage = true;
                tracing::warn!(%error, "failed to report the router's counts; trying on quietly");
            }
            (Some(error), true) => tracing::debug!(%error, "still failing to report counts"),
            (None, false) => {}
        }
    }
}
