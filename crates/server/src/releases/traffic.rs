//! What the routers counted, gathered for canary analysis: every router (the one in `dev`
//! and each standalone one) sends its cumulative per-version counts every few seconds with
//! `POST /v1/router/counts`, and the server keeps the last report of each in memory. Followers
//! forward the request to the leader, which runs the rollouts, so the leader holds them all.
//!
//! A measurement is the difference between two readings of the book: per router, the counts
//! now less the counts at the start, so routers that restarted, joined or went quiet in between
//! are each counted for what they saw in the interval and no more.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use cj_api::routes::{LATENCY_BUCKETS_MS, RouterCounts, VersionCounts};

use crate::base::lock;
use crate::edge::extract::ApiJson;
use crate::error::Failure;
use crate::state::ServerState;

/// A report older than this is a router that went away: forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(10 * 60);
/// Most routers whose reports are kept at once.
const MAX_ROUTERS: usize = 1000;

/// The last report of every router.
#[derive(Debug, Default)]
pub struct RouterCountsBook {
    reports: Mutex<HashMap<String, (RouterCounts, Instant)>>,
}

/// One job's counts as every router last reported them: router -> (when it started, version ->
/// counts summed over the job's routes).
pub(crate) type JobReading = BTreeMap<String, (String, BTreeMap<u64, VersionCounts>)>;

impl RouterCountsBook {
    pub fn record(&self, counts: RouterCounts) -> Result<(), Failure> {
        let now = Instant::now();
        let mut reports = lock(&self.reports);
        reports.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
        if reports.len() >= MAX_ROUTERS && !reports.contains_key(&counts.router) {
            return Err(Failure::Unavailable(format!(
                "the server already keeps the counts of {MAX_ROUTERS} routers"
            )));
        }
        reports.insert(counts.router.clone(), (counts, now));
        Ok(())
    }

    /// The counts of `job` of `service` in `env`, by router.
    pub(crate) fn reading(&self, env: &str, service: &str, job: &str) -> JobReading {
        let reports = lock(&self.reports);
        let mut reading = JobReading::new();
        for (router, (report, _)) in reports.iter() {
            let mut versions: BTreeMap<u64, VersionCounts> = BTreeMap::new();
            let routes = report
                .routes
                .iter()
                .filter(|route| route.env == env && route.service == service && route.job == job);
            for route in routes {
                for counts in &route.versions {
                    add(versions.entry(counts.version).or_default(), counts);
                }
            }
            reading.insert(router.clone(), (report.started.clone(), versions));
        }
        reading
    }
}

impl RouterCountsBook {
    /// `/metrics`' per-version series of every router's last report, labelled with the router.
    pub(crate) fn exposition(&self) -> String {
        use cj_api::metrics_text::escape_label as escape;
        let reports = lock(&self.reports);
        let mut routers: Vec<&RouterCounts> = reports.values().map(|(report, _)| report).collect();
        routers.sort_by(|a, b| a.router.cmp(&b.router));
        let mut rows = Vec::new();
        for report in routers {
            for route in &report.routes {
                for counts in &route.versions {
                    let labels = format!(
                        "router=\"{}\",env=\"{}\",route=\"{}\",service=\"{}\",job=\"{}\",version=\"{}\"",
                        escape(&report.router),
                        escape(&route.env),
                        escape(&route.route),
                        escape(&route.service),
                        escape(&route.job),
                        counts.version
                    );
                    rows.push((labels, counts));
                }
            }
        }
        if rows.is_empty() {
            return String::new();
        }
        cj_api::metrics_text::version_counts(&rows)
    }
}

/// What every router counted for each version between `before` and `after`. A router that
/// started again in between (or was not in `before`) counted everything it reports within the
/// interval; a router only in `before` counted nothing since.
pub(crate) fn counted_between(
    before: &JobReading,
    after: &JobReading,
) -> BTreeMap<u64, VersionCounts> {
    let mut total: BTreeMap<u64, VersionCounts> = BTreeMap::new();
    for (router, (started, versions)) in after {
        let baseline = before
            .get(router)
            .filter(|(started_before, _)| started_before == started)
            .map(|(_, versions)| versions);
        for (version, now) in versions {
            let then = baseline.and_then(|versions| versions.get(version));
            let entry = total.entry(*version).or_default();
            entry.version = *version;
            match then {
                Some(then) => add(entry, &subtract(now, then)),
                None => add(entry, now),
            }
        }
    }
    total
}

/// Adds `counts` to `into`.
pub(crate) fn add(into: &mut VersionCounts, counts: &VersionCounts) {
    into.version = counts.version;
    into.answered += counts.answered;
    into.status_5xx += counts.status_5xx;
    into.connection_failures += counts.connection_failures;
    into.latency_sum_us += counts.latency_sum_us;
    let buckets = LATENCY_BUCKETS_MS.len() + 1;
    into.latency_buckets.resize(buckets, 0);
    for (into, count) in into.latency_buckets.iter_mut().zip(&counts.latency_buckets) {
        *into += count;
    }
}

/// `now - then`, never below zero (a route that left and came back starts again from zero).
fn subtract(now: &VersionCounts, then: &VersionCounts) -> VersionCounts {
    let mut buckets = now.latency_buckets.clone();
    for (bucket, before) in buckets.iter_mut().zip(&then.latency_buckets) {
        *bucket = bucket.saturating_sub(*before);
    }
    VersionCounts {
        version: now.version,
        answered: now.answered.saturating_sub(then.answered),
        status_5xx: now.status_5xx.saturating_sub(then.status_5xx),
        connection_failures: now
            .connection_failures
            .saturating_sub(then.connection_failures),
        latency_buckets: buckets,
        latency_sum_us: now.latency_sum_us.saturating_sub(then.latency_sum_us),
    }
}

/// `POST /v1/router/counts`: a router's cumulative counts (routers send them every 2 s).
#[utoipa::path(
    post,
    path = "/v1/router/counts",
    request_body = RouterCounts,
    responses(
        (status = 204, description = "kept, in place of the router's previous report"),
        (status = 400, description = "not a router's report", body = cj_api::ApiError),
    )
)]
pub async fn report(
    State(state): State<Arc<ServerState>>,
    ApiJson(counts): ApiJson<RouterCounts>,
) -> Result<StatusCode, Failure> {
    if counts.router.is_empty() || counts.router.len() > 255 {
        return Err(Failure::BadRequest(
            "router: expected the router's name, 1 to 255 bytes".into(),
        ));
    }
    state.router_counts.record(counts)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A test's readings made from plain numbers.
#[cfg(test)]
mod tests {
    use super::*;

    fn counts(version: u64, answered: u64, errors: u64) -> VersionCounts {
        let mut buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        buckets[0] = answered;
        VersionCounts {
            version,
            answered,
            status_5xx: errors,
            connection_failures: 0,
            latency_buckets: buckets,
            latency_sum_us: answered * 1000,
        }
    }

    fn reading(routers: &[(&str, &str, &[VersionCounts])]) -> JobReading {
        routers
            .iter()
            .map(|(router, started, versions)| {
                let versions = versions.iter().map(|c| (c.version, c.clone())).collect();
                ((*router).to_owned(), ((*started).to_owned(), versions))
            })
            .collect()
    }

    #[test]
    fn each_router_counts_what_it_saw_in_the_interval() {
        let before = reading(&[
            ("a", "t1", &[counts(1, 100, 0), counts(2, 10, 1)]),
            ("b", "t1", &[counts(2, 50, 5)]),
            ("gone", "t1", &[counts(2, 70, 0)]),
        ]);
        let after = reading(&[
            ("a", "t1", &[counts(1, 130, 0), counts(2, 20, 4)]),
            // Restarted: everything it reports is new.
            ("b", "t2", &[counts(2, 7, 0)]),
            // Joined during the interval.
            ("new", "t3", &[counts(2, 3, 3)]),
        ]);
        let total = counted_between(&before, &after);
        assert_eq!((total[&1].answered, total[&1].status_5xx), (30, 0));
        assert_eq!((total[&2].answered, total[&2].status_5xx), (20, 6));
        assert_eq!(total[&2].latency_buckets[0], 20);
    }

    #[test]
    fn the_book_sums_a_jobs_routes_and_keeps_one_report_per_router() {
        let book = RouterCountsBook::default();
        let route = |route: &str, job: &str, answered| cj_api::routes::RouteCounts {
            env: "production".into(),
            route: route.into(),
            service: "shop".into(),
            job: job.into(),
            versions: vec![counts(3, answered, 0)],
        };
        for answered in [5, 9] {
            book.record(RouterCounts {
                router: "r1".into(),
                started: "t1".into(),
                routes: vec![
                    route("api", "api", answered),
                    route("api-v2", "api", 1),
                    route("web", "web", 100),
                ],
            })
            .unwrap();
        }
        let reading = book.reading("production", "shop", "api");
        assert_eq!(reading.len(), 1);
        assert_eq!(reading["r1"].1[&3].answered, 10);

        let text = book.exposition();
        let labels =
            r#"router="r1",env="production",route="api",service="shop",job="api",version="3""#;
        assert!(
            text.contains(&format!(
                "coding_job_router_version_requests_total{{{labels}}} 9\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "coding_job_router_version_response_seconds_count{{{labels}}} 9\n"
        )));
        assert_eq!(RouterCountsBook::default().exposition(), "");
    }
}
