//! `GET /v1/routes`: the router's table. Every routed job of every environment with the tasks
//! that may take requests now. With `?watch=true` the answer is a stream of newline-delimited
//! tables: the current one at once, then a new one whenever it changes.

use serde::{Deserialize, Serialize};

/// Every route the routers serve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouteTable {
    /// The store revision or report generation this table was built from; increases.
    #[serde(default)]
    pub generation: u64,
    pub routes: Vec<Route>,
}

/// One job reachable as `NAME.ENV.DOMAIN` (and `NAME.DOMAIN` in `production`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Route {
    pub env: String,
    /// The route's name: the job's `route:` (or the job's own name for `route: true`).
    pub name: String,
    pub service: String,
    pub job: String,
    /// Tasks that are running, healthy (or have no check) and not leaving: requests go here.
    pub backends: Vec<Backend>,
    /// Why `backends` is empty, in words, for the router's 503 page ("2 tasks: 1 starting,
    /// 1 unhealthy"). `None` when there are backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// `route: { path: /v2 }`: only requests whose path starts with this prefix (whole
    /// segments) take this route; the longest matching prefix of a name wins. `None`: any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `route: { timeout: 30s }`: how long a backend may take to start answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `route: { max_body: 10m }`: larger request bodies are refused with 413.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// During a canary phase whose job sets `update.canary_weight`: the share of the route's
    /// requests sent to the backends marked `canary`, in basis points (10% is 1000), whatever
    /// the number of backends on each side. `None`: requests spread over every backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight_bp: Option<u32>,
}

/// One task that takes requests for a route.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Backend {
    /// `SERVICE/JOB/TASK`.
    pub task: String,
    pub host: String,
    /// `ADDRESS:PORT` to connect to.
    pub address: String,
    /// The version of the service the task's serving container runs: routers count requests
    /// per version, so a canary's answers can be told from the stable version's.
    #[serde(default)]
    pub version: u64,
    /// The task runs the canary version of a canary phase with a weight (see
    /// [`Route::canary_weight_bp`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
}

/// The header (and cookie) that routes one request to a canary on purpose: `always` sends it to
/// the canary's backends, `never` to the stable ones, during a weighted canary phase.
pub const CANARY_HEADER: &str = "x-coding-job-canary";
/// The cookie of the same meaning, for browsers.
pub const CANARY_COOKIE: &str = "coding-job-canary";

/// Upper bounds of the routers' latency buckets, in milliseconds (the last bucket has none).
pub const LATENCY_BUCKETS_MS: [u64; 12] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

/// What one version of a route's job answered through one router, counted since the router
/// started (or the route appeared): the measure a canary is judged by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionCounts {
    pub version: u64,
    /// Requests a backend of this version answered.
    pub answered: u64,
    /// Of those, 5xx answers.
    pub status_5xx: u64,
    /// Requests sent to a backend of this version that failed before an answer.
    pub connection_failures: u64,
    /// How many answers took at most each of [`LATENCY_BUCKETS_MS`], then how many took longer.
    pub latency_buckets: Vec<u64>,
    /// The time all those answers took, in microseconds.
    #[serde(default)]
    pub latency_sum_us: u64,
}

impl VersionCounts {
    /// The upper bound, in milliseconds, of the bucket holding the `quantile` (0 to 1) of the
    /// answers; `None` with no answers, or when it is above the last bound.
    pub fn latency_quantile_ms(&self, quantile: f64) -> Option<u64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return LATENCY_BUCKETS_MS.get(index).copied();
            }
        }
        None
    }
}

/// One route's per-version counts in a router's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCounts {
    pub env: String,
    /// The route's name.
    pub route: String,
    pub service: String,
    pub job: String,
    pub versions: Vec<VersionCounts>,
}

/// `POST /v1/router/counts`: what one router counted, sent every few seconds. Counts are
/// cumulative since the router started (`started`), so a lost report loses nothing and a
/// restarted router is told apart from one whose counts went down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterCounts {
    /// The router's own name: unique per router process (`HOSTNAME:PORT` by default).
    pub router: String,
    /// When the router process started (RFC 3339).
    pub started: String,
    pub routes: Vec<RouteCounts>,
}

impl RouteTable {
    /// The route for `name` in `env`, if any.
    pub fn find(&self, env: &str, name: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|route| route.env == env && route.name == name)
    }
}
