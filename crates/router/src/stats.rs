//! Per-route counters, kept in memory as atomics so counting costs a request no lock, and the
//! shapes the status page shows them in (`Accept: application/json` gets [`StatusPage`]).
//!
//! A route's counters live as long as the route is in the table: a new table carries them over,
//! so a deployment that changes a route's backends does not reset what the status page shows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_api::routes::{LATENCY_BUCKETS_MS, VersionCounts};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

/// What the router counted for one route since the route appeared.
#[derive(Debug, Default)]
pub(crate) struct RouteCounters {
    requests: AtomicU64,
    /// 2xx, 3xx, 4xx and 5xx answers, in that order.
    classes: [AtomicU64; 4],
    retries: AtomicU64,
    failures: AtomicU64,
    /// The round-robin cursor: shared by the route's requests, carried over with the counters
    /// so a new table does not send the next burst to the first backend again.
    pub(crate) next: AtomicUsize,
    /// The same for the canary's backends of a weighted canary (`next` is then the stable
    /// version's).
    pub(crate) canary_next: AtomicUsize,
    /// Draws of a weighted canary's side so far (see `canary::draw`).
    pub(crate) canary_draws: AtomicU64,
    /// What each version of the route's job answered: looked up when a table is built, so a
    /// request counts without a lock.
    versions: Mutex<BTreeMap<u64, Arc<VersionCounters>>>,
}

impl RouteCounters {
    /// Counts one answered request by its status.
    pub(crate) fn answered(&self, status: StatusCode) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = match status.as_u16() {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            // 1xx (a WebSocket's 101) is a request but no class of answer.
            _ => return,
        };
        self.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// One more try of a request on another backend.
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A request no backend answered (it got the router's 502).
    pub(crate) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of `version`, made on first use.
    pub(crate) fn version(&self, version: u64) -> Arc<VersionCounters> {
        let mut versions = self
            .versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(versions.entry(version).or_insert_with(|| {
            Arc::new(VersionCounters {
                version,
                ..VersionCounters::default()
            })
        }))
    }

    /// Each version's counts, oldest version first.
    pub(crate) fn versions(&self) -> Vec<VersionCounts> {
        let versions = self
            .versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        versions
            .values()
            .map(|counters| counters.snapshot())
            .collect()
    }

    pub(crate) fn snapshot(&self) -> Counts {
        let class = |index: usize| self.classes[index].load(Ordering::Relaxed);
        Counts {
            requests: self.requests.load(Ordering::Relaxed),
            status_2xx: class(0),
            status_3xx: class(1),
            status_4xx: class(2),
            status_5xx: class(3),
            retries: self.retries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// What one version of a route's job answered: the measure a canary is judged by. Kept per
/// backend answer, so the router's own pages (404, 503, 502) count for no version.
#[derive(Debug, Default)]
pub(crate) struct VersionCounters {
    version: u64,
    /// Requests a backend of this version answered.
    answered: AtomicU64,
    /// Of those, 5xx answers.
    status_5xx: AtomicU64,
    /// Requests sent to a backend of this version that failed before an answer.
    connection_failures: AtomicU64,
    /// Time to the answer's headers, per [`LATENCY_BUCKETS_MS`] bucket and one more above.
    latency: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    /// Their sum, in microseconds.
    latency_sum_us: AtomicU64,
}

impl VersionCounters {
    pub(crate) fn answered(&self, status: StatusCode, took: Duration) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if status.is_server_error() {
            self.status_5xx.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let ms = took.as_millis() as u64;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_failed(&self) {
        self.connection_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> VersionCounts {
        VersionCounts {
            version: self.version,
            answered: self.answered.load(Ordering::Relaxed),
            status_5xx: self.status_5xx.load(Ordering::Relaxed),
            connection_failures: self.connection_failures.load(Ordering::Relaxed),
            latency_buckets: self
                .latency
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            latency_sum_us: self.latency_sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A route's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests answered for the route (proxied, or the route's 503 page).
    pub requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Extra tries on another backend after a backend failed.
    pub retries: u64,
    /// Requests no backend answered.
    pub failures: u64,
}

/// One route as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub env: String,
    pub name: String,
    /// The route's path prefix, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub service: String,
    pub job: String,
    /// `http://NAME.ENV.DOMAIN/`, or with the route's path in place of the last `/`.
    pub url: String,
    /// How many backends take requests now.
    pub backends: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    pub counts: Counts,
    /// What each version of the job answered, oldest first.
    #[serde(default)]
    pub versions: Vec<VersionCounts>,
}

/// The router's status page: every route of the table (or of one environment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPage {
    pub domain: String,
    /// The generation of the table being served.
    pub generation: u64,
    /// Set when the page shows one environment only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Sorted by environment, then name.
    pub routes: Vec<RouteStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_apart_with_their_latency() {
        let counters = RouteCounters::default();
        let old = counters.version(1);
        let new = counters.version(2);
        for _ in 0..98 {
            old.answered(StatusCode::OK, Duration::from_millis(3));
        }
        old.answered(StatusCode::OK, Duration::from_millis(400));
        new.answered(StatusCode::INTERNAL_SERVER_ERROR, Duration::from_millis(40));
        new.connection_failed();
        assert!(Arc::ptr_eq(&old, &counters.version(1)));
        let versions = counters.versions();
        assert_eq!(versions[0].answered, 99);
        assert_eq!(versions[0].latency_quantile_ms(0.5), Some(5));
        assert_eq!(versions[0].latency_quantile_ms(1.0), Some(500));
        assert_eq!(
            (
                versions[1].version,
                versions[1].status_5xx,
                versions[1].connection_failures
            ),
            (2, 1, 1)
        );
        assert_eq!(versions[1].latency_quantile_ms(0.99), Some(50));
    }
}
