//! `GET /v1/alerts`: the alerts the server raised from its `alerts:` rules, active and recently
//! resolved, newest first.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Unique per alert: a new one starts each time its condition begins again.
    pub id: String,
    /// The rule that raised it: `crash_loop`, `unhealthy`, `host_down`, `deployment_failed`,
    /// `disk`, `route_down`.
    pub rule: String,
    /// What it is about: `ENV/SERVICE/JOB/TASK`, a host's name, `ENV/SERVICE`, `ENV/ROUTE`.
    pub subject: String,
    /// In words, what was seen.
    pub message: String,
    /// When it fired (RFC 3339).
    pub started: String,
    /// When its condition ended; absent while it is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

impl Alert {
    pub fn is_active(&self) -> bool {
        self.resolved.is_none()
    }
}
