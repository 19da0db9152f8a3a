//! `GET /v1/servers`: the servers of a cluster that share one store.

use serde::{Deserialize, Serialize};

/// One server: where it is reached, whether it leads (runs the controllers), and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterMember {
    pub name: String,
    /// Where its API is reached (its `--advertise`, else the address it listens on).
    pub address: String,
    /// It holds the cluster's leadership: it runs the controllers; the others forward to it.
    pub leader: bool,
    /// When it started (RFC 3339).
    pub since: String,
    /// When it began to lead (RFC 3339), if it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<String>,
    /// The coding-job version it runs.
    pub version: String,
}
