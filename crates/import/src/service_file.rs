//! The service files an import writes: the config format's fields, as the importers fill them,
//! serialized in the order a person would write them. Values of templated fields (image,
//! command, env, Docker fields, checks, seeds) are templates: literal text is escaped where it
//! holds template syntax ([`crate::text::literal`]).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceFile {
    pub service: String,
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Job {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    /// `Some(0)`: a port allocated per task, written `auto`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "port_or_auto"
    )]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_on_host: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub constraints: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(skip_serializing_if = "DockerConfig::is_empty")]
    pub docker_config: DockerConfig,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    /// As the config writes it: `512m`, `1g`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
}

/// `check:` exactly one of `http`, `tcp`, `exec`, and its timing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Check {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// A port number, or `true` for the task's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Update {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_healthy_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_deadline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_gate: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Volume {
    pub name: String,
    pub mount: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
}

/// The Docker passthrough, by Docker's own field names.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DockerConfig {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_hostconfig: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_config: BTreeMap<String, serde_json::Value>,
}

impl DockerConfig {
    pub fn is_empty(&self) -> bool {
        self.docker_hostconfig.is_empty() && self.docker_config.is_empty()
    }

    /// Appends to a list field of `HostConfig` (`Binds`, `CapAdd`, `ExtraHosts`).
    pub fn push_host(&mut self, field: &str, value: impl Into<serde_json::Value>) {
        let entry = self
            .docker_hostconfig
            .entry(field.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(items) = entry {
            items.push(value.into());
        }
    }
}

/// `port:` as a person writes it: a number, or `auto` for 0 (which the config reads as auto too).
fn port_or_auto<S: serde::Serializer>(port: &Option<u16>, out: S) -> Result<S::Ok, S::Error> {
    match port {
        Some(0) => out.serialize_str("auto"),
        Some(port) => out.serialize_u16(*port),
        None => out.serialize_none(),
    }
}

/// The YAML text of a service file, after a comment line saying where it came from.
pub fn render_service(service: &ServiceFile, header: &str) -> String {
    let body = serde_saphyr::to_string(service)
        .unwrap_or_else(|error| unreachable!("a service file always serializes: {error}"));
    let newline = if body.ends_with('\n') { "" } else { "\n" };
    format!("# {header}\n{body}{newline}")
}
