//! Per-route counters, kept in memory as atomics so counting costs a request no lock, and the
//! shapes the status page shows them in (`Accept: application/json` gets [`StatusPage`]).
//!
//! A route's counters live as long as the route is in the table: a new table carries them over,
//! so a deployment that changes a route's backends does not reset what the status page shows.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    pub service: String,
    pub job: String,
    /// `http://NAME.ENV.DOMAIN/`.
    pub url: String,
    /// How many backends take requests now.
    pub backends: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    pub counts: Counts,
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
