//! Environments: `/v1/envs`. An environment is an isolated copy of the whole system: its own
//! versions of every service, its own variables, ports, volumes and routes.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// One environment, as `env list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvInfo {
    pub name: String,
    /// The environment it was cloned from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// When it was created (RFC 3339); `None` for an environment that was only ever pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When it is destroyed automatically (RFC 3339), with `--ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub services: Vec<String>,
    /// Jobs that are up (desired to run).
    pub jobs_up: usize,
    /// Tasks with a live container, and all tasks that are up.
    pub tasks_running: usize,
    pub tasks_total: usize,
    /// `up` (something is up), `down` (nothing is up), `destroying`, `destroyed`.
    pub state: String,
}

/// `POST /v1/envs`: create an environment as a copy of another.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvRequest {
    pub name: String,
    /// The environment whose latest version of every service is copied.
    pub from: String,
    /// Variables that override the source's (from `--vars FILE`), by name.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Names of variables in `vars` whose values are secret.
    #[serde(default)]
    pub secret_vars: Vec<String>,
    /// Destroy the environment this many seconds after it is created.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Pinned hosts of the source, and the host each one's tasks run on instead.
    #[serde(default)]
    pub map_hosts: BTreeMap<String, String>,
    /// Where the vars came from, for error messages (`vars.yaml`).
    #[serde(default)]
    pub vars_file: Option<String>,
    /// Copy volumes too, from fresh snapshots of the source's: of every job with volumes when
    /// empty, or of the jobs named (`JOB` or `SERVICE/JOB`). Absent: volumes start empty (or
    /// seeded), as without a copy.
    #[serde(default)]
    pub with_data: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateEnvResponse {
    pub env: EnvInfo,
    /// Each service copied: its version in the new environment and the source version.
    pub copied: Vec<CopiedService>,
    /// With `with_data`: the snapshots taken of the source's volumes, which the new
    /// environment's volumes are filled from when its tasks first start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<crate::snapshots::SnapshotRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CopiedService {
    pub service: String,
    pub version: u64,
    pub from_version: u64,
}

/// One variable of an environment. Secret values are never sent back: `value` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    #[serde(default)]
    pub secret: bool,
}

/// `GET /v1/envs/{name}/vars` and the answer to `PUT`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvVars {
    pub env: String,
    pub vars: Vec<EnvVar>,
    /// Tasks that restart because a value they use changed (only in the answer to a change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarting: Vec<String>,
}

/// `PUT /v1/envs/{name}/vars`: set (or, with `value: None`, remove) variables.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVarsRequest {
    pub set: BTreeMap<String, Option<String>>,
    /// Names among `set` whose values are secret.
    #[serde(default)]
    pub secret: Vec<String>,
}

/// `DELETE /v1/envs/{name}`: what was removed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DestroyEnvResponse {
    pub env: String,
    pub tasks_removed: Vec<String>,
    pub volumes_removed: Vec<String>,
    /// Volumes kept (`--keep-volumes`), or not removed because their host is unreachable.
    pub volumes_kept: Vec<String>,
    /// Hosts without an agent connected: each removes what is left of the environment on it
    /// when its agent is back (recorded in the store, so a server restart forgets nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts_pending: Vec<String>,
    pub ports_released: usize,
    pub seconds: f64,
}

/// `GET /v1/envs/{name}/addresses`: where each job of the environment can be reached.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvAddresses {
    pub env: String,
    pub jobs: Vec<JobAddress>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobAddress {
    pub service: String,
    pub job: String,
    /// `HOST:PORT` of each placed task, as `{{ addr("service/job") }}` renders them.
    pub addresses: Vec<String>,
    /// The job's route, if it has one, and its URL when the server knows the router's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Why `env` cannot be an environment's name, if it cannot: names end up in store keys,
/// container and volume names and URLs. The server refuses them, and the CLI before sending.
pub fn env_name_problem(env: &str) -> Option<String> {
    let valid = !env.is_empty()
        && env.len() <= 63
        && env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && env
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    (!valid).then(|| {
        format!(
            "invalid environment name \"{}\": expected letters, digits, '-' or '_'",
            cj_spec::shown(env)
        )
    })
}

/// Where `port: auto` ports come from unless `--port-range` says otherwise: Kubernetes'
/// NodePort range, which operators already keep free for allocated ports.
pub const DEFAULT_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// Parses `--port-range FIRST-LAST` (ports from 1024).
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("expected FIRST-LAST (e.g. 30000-32767), got {text:?}"))?;
    let parse = |part: &str| {
        part.trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port >= 1024)
            .ok_or_else(|| format!("{part:?} is not a port from 1024 to 65535"))
    };
    let (first, last) = (parse(first)?, parse(last)?);
    if first > last {
        return Err(format!("the range {first}-{last} is empty"));
    }
    Ok(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(parse_port_range("30000-32767"), Ok(30000..=32767));
        assert!(parse_port_range("3000").unwrap_err().contains("FIRST-LAST"));
        assert!(parse_port_range("80-90").unwrap_err().contains("1024"));
        assert!(
            parse_port_range("40000-30000")
                .unwrap_err()
                .contains("empty")
        );
    }
}
