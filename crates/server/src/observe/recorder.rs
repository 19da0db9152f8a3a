//! The process's metrics recorder (the `metrics` facade, rendered as Prometheus text by
//! `metrics-exporter-prometheus`) and what is counted through it: events and latencies, which
//! only the moment they happen can record. Current state (tasks, hosts, resource use) is not
//! recorded here but read from the server at scrape time (`scrape`), so nothing stale stays.
//!
//! Series recorded here (all `coding_job_*`):
//! - `coding_job_api_request_duration_seconds{method, route, status}`: the API, by matched route
//!   template (never the raw path, which would make one series per id) and status class;
//! - `coding_job_publish_duration_seconds`: one computation and publication of every host's
//!   assignments;
//! - `coding_job_task_restarts_total{env, service, job}`: a task's container started again;
//! - `coding_job_deployments_total{outcome}`: deployments as they end;
//! - the router's and the agent's own series (`cj_router`, `cj_agent`), recorded through the
//!   same facade when they run in this process (`dev`).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: from a cached read (1 ms) to a slow reconcile pass (30 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Finer buckets for how long assignments take to reach an agent, whose p99 is read off them
/// (`bench/thousand_hosts.py`): tens of milliseconds apart where deliveries fall.
const DELIVERY_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing the recorder the first time. A process has one global
/// recorder, and tests start several servers in one process: every later call gets the same
/// handle. If something else installed a recorder first, ours still renders, though empty of
/// what the other one took.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Suffix("_delivery_seconds".to_owned()),
                    DELIVERY_BUCKETS,
                )
            })
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "latency buckets refused; histograms become summaries");
                PrometheusBuilder::new().build_recorder()
            });
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics shows only server state");
        }
        handle
    })
}

/// What the recorder holds, as Prometheus text.
pub fn render() -> String {
    let recorded = handle();
    // Histograms keep raw samples until upkeep folds them in; a scrape is a fine moment.
    recorded.run_upkeep();
    recorded.render()
}

/// Installs the recorder (if not yet), so events before the first scrape are counted.
pub fn install() {
    handle();
}

/// Middleware: the latency of every API request, by method, matched route and status class.
/// Requests that matched no route count under `route="unmatched"`.
pub async fn track_api(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics::histogram!(
        "coding_job_api_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status_class(response.status().as_u16()),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// `2xx`, `4xx`, ...: the class keeps the label's values few.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A task's container started again after it had run.
pub fn task_restarted(key: &cj_api::agent::TaskKey) {
    metrics::counter!(
        "coding_job_task_restarts_total",
        "env" => key.env.clone(),
        "service" => key.service.clone(),
        "job" => key.job.clone(),
    )
    .increment(1);
}

/// A deployment ended with `outcome` (`succeeded`, `failed`, `rolled-back`, `aborted`: the
/// API's words for its status).
pub fn deployment_ended(outcome: &str) {
    metrics::counter!("coding_job_deployments_total", "outcome" => outcome.to_owned()).increment(1);
}

/// Times one publication of assignments: recorded when dropped, on every way out (errors too).
pub struct PublishTimer(Instant);

impl PublishTimer {
    pub fn start() -> PublishTimer {
        PublishTimer(Instant::now())
    }
}

impl Drop for PublishTimer {
    fn drop(&mut self) {
        metrics::histogram!("coding_job_publish_duration_seconds")
            .record(self.0.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
    }

    #[test]
    fn installing_twice_gives_the_same_handle() {
        let first: *const PrometheusHandle = handle();
        let second: *const PrometheusHandle = handle();
        assert_eq!(first, second);
    }
}
