//! `GET /v1/events`: every change of the cluster's state, as the store recorded it. Each event
//! carries the store revision that made it, so a reader resumes exactly where it stopped
//! (`since=REVISION`, or an SSE client's `Last-Event-ID`).

use serde::{Deserialize, Serialize};

/// The header every read answers with: the store revision it reflects. A later read with
/// `?index=THAT&wait=30s` blocks until something newer exists.
pub const INDEX_HEADER: &str = "x-coding-job-index";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new version of a service was pushed (or copied into an environment).
    Push,
    /// A job's desired state: up at a version, a rollout step, a reload, or down.
    Desired,
    /// A container was created, started, died, stopped or removed; a task moved.
    Container,
    /// A task's check passed or failed.
    Health,
    /// A deployment started, moved a batch, waited, finished or failed.
    Deployment,
    /// A host joined, left, was drained or undrained.
    Host,
    /// An environment was created, changed, or destroyed.
    Env,
    /// The server placed a task on a host.
    Placement,
    /// A token was created or revoked (never its secret).
    Token,
    /// An alert fired or resolved.
    Alert,
    /// A write request (or an exec) was answered, allowed or refused: who, what, the status.
    /// Sent live, with `follow`, to callers who may read the audit log; `GET /v1/audit` keeps
    /// them. It carries the revision the store was at, and is not replayed after `since`.
    Audit,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Push => "push",
            EventKind::Desired => "desired",
            EventKind::Container => "container",
            EventKind::Health => "health",
            EventKind::Deployment => "deployment",
            EventKind::Host => "host",
            EventKind::Env => "env",
            EventKind::Placement => "placement",
            EventKind::Token => "token",
            EventKind::Alert => "alert",
            EventKind::Audit => "audit",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// The store revision of the change: never decreasing (the changes of one transaction share
    /// it: container events are written in batches), and the `since` to resume after it.
    pub revision: u64,
    pub kind: EventKind,
    /// When it happened (RFC 3339), when the record says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// What happened, in a line: `core/nginx/nginx-1: died (exit 137) on host-1`.
    pub message: String,
}
