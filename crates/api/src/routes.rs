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
}

impl RouteTable {
    /// The route for `name` in `env`, if any.
    pub fn find(&self, env: &str, name: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|route| route.env == env && route.name == name)
    }
}
