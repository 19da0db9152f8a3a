//! `http://DOMAIN/metrics`: what the router counted for each version of each routed job, in
//! Prometheus' text format, so any router (standalone ones too) can be scraped:
//!
//! - `coding_job_router_version_requests_total{env, route, path, service, job, version}`:
//!   requests a backend of that version answered (`path` only for a route with a path prefix,
//!   so a name's routes are told apart);
//! - `coding_job_router_version_responses_5xx_total{...}`: of those, 5xx answers;
//! - `coding_job_router_version_connection_failures_total{...}`: requests sent to a backend of
//!   that version that failed before an answer;
//! - `coding_job_router_version_response_seconds{...}`: a histogram of the time to the answer's
//!   headers.

use cj_api::metrics_text::escape_label as escape;

use cj_api::routes::VersionCounts;

use crate::stats::RouteStatus;

/// The exposition of `routes`' per-version counts.
pub(crate) fn render(routes: &[RouteStatus]) -> String {
    let rows: Vec<(String, &VersionCounts)> = versions(routes)
        .map(|(route, counts)| (labels(route, counts), counts))
        .collect();
    cj_api::metrics_text::version_counts(&rows)
}

fn versions(routes: &[RouteStatus]) -> impl Iterator<Item = (&RouteStatus, &VersionCounts)> {
    routes
        .iter()
        .flat_map(|route| route.versions.iter().map(move |counts| (route, counts)))
}

fn labels(route: &RouteStatus, counts: &VersionCounts) -> String {
    let path = match &route.path {
        Some(path) => format!(",path=\"{}\"", escape(path)),
        None => String::new(),
    };
    format!(
        "env=\"{}\",route=\"{}\"{path},service=\"{}\",job=\"{}\",version=\"{}\"",
        escape(&route.env),
        escape(&route.name),
        escape(&route.service),
        escape(&route.job),
        counts.version
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counts;
    use cj_api::routes::LATENCY_BUCKETS_MS;

    #[test]
    fn each_version_is_a_series_and_its_latency_a_cumulative_histogram() {
        let mut buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        buckets[0] = 3;
        buckets[2] = 1;
        let route = RouteStatus {
            env: "production".into(),
            name: "api".into(),
            path: None,
            service: "shop".into(),
            job: "api".into(),
            url: String::new(),
            backends: 1,
            unavailable: None,
            counts: Counts::default(),
            versions: vec![VersionCounts {
                version: 7,
                answered: 4,
                status_5xx: 1,
                connection_failures: 2,
                latency_buckets: buckets,
                latency_sum_us: 40_000,
            }],
        };
        let text = render(std::slice::from_ref(&route));
        let labels = r#"env="production",route="api",service="shop",job="api",version="7""#;
        for line in [
            format!("coding_job_router_version_requests_total{{{labels}}} 4"),
            format!("coding_job_router_version_responses_5xx_total{{{labels}}} 1"),
            format!("coding_job_router_version_connection_failures_total{{{labels}}} 2"),
            format!("coding_job_router_version_response_seconds_bucket{{{labels},le=\"0.005\"}} 3"),
            format!("coding_job_router_version_response_seconds_bucket{{{labels},le=\"0.025\"}} 4"),
            format!("coding_job_router_version_response_seconds_bucket{{{labels},le=\"+Inf\"}} 4"),
            format!("coding_job_router_version_response_seconds_sum{{{labels}}} 0.04"),
            format!("coding_job_router_version_response_seconds_count{{{labels}}} 4"),
        ] {
            assert!(
                text.lines().any(|written| written == line),
                "no {line} in:\n{text}"
            );
        }
        let with_path = RouteStatus {
            path: Some("/v2".into()),
            ..route
        };
        let text = render(&[with_path]);
        let labels =
            r#"env="production",route="api",path="/v2",service="shop",job="api",version="7""#;
        let line = format!("coding_job_router_version_requests_total{{{labels}}} 4");
        assert!(
            text.lines().any(|written| written == line),
            "no {line} in:\n{text}"
        );
    }
}
