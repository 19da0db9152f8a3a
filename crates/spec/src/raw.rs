//! The file as written: serde types that mirror the YAML, with source locations kept for the
//! checks made after parsing. Unknown keys are rejected here (`deny_unknown_fields`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, de};
use serde_saphyr::Spanned;

use crate::docker_fields::DockerFields;
use crate::error::shown;
use crate::limits::{
    MAX_ANALYSIS_CHECKS, MAX_ANALYSIS_REQUESTS, MAX_BATCH_SIZE, MAX_CANARY, MAX_INSTANCES,
    MAX_RETRIES, MIN_BATCH_SIZE, MIN_RETRIES,
};
use crate::model::{OnFailure, OnHostLost};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub service: Spanned<String>,
    pub jobs: Spanned<Vec<RawJob>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJob {
    pub name: Spanned<String>,
    pub image: Option<Spanned<String>>,
    pub command: Option<Spanned<RawCommand>>,
    pub env: Option<Spanned<RawEnv>>,
    /// Keys of `env` (the job's or its tasks') whose values are secret: masked in every
    /// answer of the API and page of the UI; only the container gets them.
    #[serde(default)]
    pub secret_env: Vec<Spanned<String>>,
    pub port: Option<Spanned<RawPort>>,
    pub run_on_host: Option<Spanned<String>>,
    pub resources: Option<RawResources>,
    pub init: Option<bool>,
    pub docker_config: Option<RawDockerConfig>,
    pub check: Option<Spanned<RawCheck>>,
    pub volumes: Option<Spanned<Vec<RawVolume>>>,
    pub artifact: Option<Spanned<RawArtifact>>,
    /// Jobs of this service (`JOB`), or of another service of the environment (`SERVICE/JOB`).
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    pub update: Option<Spanned<RawUpdate>>,
    pub on_failure: Option<OnFailure>,
    pub on_host_lost: Option<OnHostLost>,
    pub route: Option<Spanned<RawRoute>>,
    /// How long a routed task keeps serving after it leaves the routers' pool.
    pub drain_timeout: Option<Spanned<DurationText>>,
    /// Run this many identical tasks, named `JOB-1` .. `JOB-N`.
    pub instances: Option<Spanned<Count<1, MAX_INSTANCES>>>,
    /// Alone: run one task on each of these hosts, named `JOB-HOST`. With `instances`: the
    /// hosts the server may place the instances on.
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    /// Host labels (`agent --label KEY=VALUE`) a host must carry for the server to place this
    /// job's unpinned tasks on it.
    pub constraints: Option<Spanned<BTreeMap<String, Spanned<EnvValue>>>>,
    pub tasks: Option<Spanned<Vec<RawTask>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTask {
    pub name: Spanned<String>,
    pub image: Option<Spanned<String>>,
    pub command: Option<Spanned<RawCommand>>,
    pub env: Option<Spanned<RawEnv>>,
    pub port: Option<Spanned<RawPort>>,
    pub run_on_host: Option<Spanned<String>>,
    pub resources: Option<RawResources>,
    pub init: Option<bool>,
    pub docker_config: Option<RawDockerConfig>,
    pub check: Option<Spanned<RawCheck>>,
    pub volumes: Option<Spanned<Vec<RawVolume>>>,
    pub artifact: Option<Spanned<RawArtifact>>,
}

impl RawJob {
    pub fn settings(&self) -> RawSettingsRef<'_> {
        RawSettingsRef {
            image: self.image.as_ref(),
            command: self.command.as_ref(),
            env: self.env.as_ref(),
            port: self.port.as_ref(),
            run_on_host: self.run_on_host.as_ref(),
            resources: self.resources.as_ref(),
            init: self.init,
            docker_config: self.docker_config.as_ref(),
            check: self.check.as_ref(),
            volumes: self.volumes.as_ref(),
            artifact: self.artifact.as_ref(),
        }
    }
}

impl RawTask {
    pub fn settings(&self) -> RawSettingsRef<'_> {
        RawSettingsRef {
            image: self.image.as_ref(),
            command: self.command.as_ref(),
            env: self.env.as_ref(),
            port: self.port.as_ref(),
            run_on_host: self.run_on_host.as_ref(),
            resources: self.resources.as_ref(),
            init: self.init,
            docker_config: self.docker_config.as_ref(),
            check: self.check.as_ref(),
            volumes: self.volumes.as_ref(),
            artifact: self.artifact.as_ref(),
        }
    }
}

/// The inheritable settings of a job or a task, borrowed, so both merge the same way.
#[derive(Clone, Copy)]
pub(crate) struct RawSettingsRef<'a> {
    pub image: Option<&'a Spanned<String>>,
    pub command: Option<&'a Spanned<RawCommand>>,
    pub env: Option<&'a Spanned<RawEnv>>,
    pub port: Option<&'a Spanned<RawPort>>,
    pub run_on_host: Option<&'a Spanned<String>>,
    pub resources: Option<&'a RawResources>,
    pub init: Option<bool>,
    pub docker_config: Option<&'a RawDockerConfig>,
    pub check: Option<&'a Spanned<RawCheck>>,
    pub volumes: Option<&'a Spanned<Vec<RawVolume>>>,
    pub artifact: Option<&'a Spanned<RawArtifact>>,
}

/// `command: "httpd -f -p 80"` (split like a shell would) or `command: [httpd, -f, -p, "80"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a command: a string or a list of strings"
)]
pub(crate) enum RawCommand {
    Line(String),
    Argv(Vec<String>),
}

/// `env: {KEY: value}` or, as in Compose, `env: ["KEY=value"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected environment variables: a map of NAME: value or a list of \"NAME=value\""
)]
pub(crate) enum RawEnv {
    Map(BTreeMap<String, EnvValue>),
    List(Vec<String>),
}

/// An environment value written as a string, number or boolean.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a string, number or boolean")]
pub(crate) enum EnvValue {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl EnvValue {
    pub fn into_string(self) -> String {
        match self {
            EnvValue::String(value) => value,
            EnvValue::Integer(value) => value.to_string(),
            EnvValue::Float(value) => value.to_string(),
            EnvValue::Bool(value) => value.to_string(),
        }
    }
}

/// `port:` a number as written (or, as in the seed's config, a string of digits), or `auto`;
/// `0` (the seed's own example) also asks for a port to be allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawPort {
    Fixed(u16),
    Auto,
}

impl<'de> Deserialize<'de> for RawPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(i64),
            Text(String),
        }
        let expected = "a port number from 1 to 65535, or auto (0 also means auto)";
        let number = match Written::deserialize(deserializer)
            .map_err(|_| de::Error::custom(format!("expected {expected}")))?
        {
            Written::Number(number) => number,
            Written::Text(text) if text.trim() == "auto" => return Ok(RawPort::Auto),
            Written::Text(text) => text.trim().parse::<i64>().map_err(|_| {
                de::Error::custom(format!("expected {expected}, found \"{}\"", shown(&text)))
            })?,
        };
        match u16::try_from(number) {
            Ok(0) => Ok(RawPort::Auto),
            Ok(port) => Ok(RawPort::Fixed(port)),
            Err(_) => Err(de::Error::custom(format!(
                "expected {expected}, found {number}"
            ))),
        }
    }
}

/// `route:` a name, `true` for the job's own name (`false`: no route), or a mapping with the
/// name (`host`) and how the router serves it.
#[derive(Debug, Clone)]
pub(crate) enum RawRoute {
    JobName(bool),
    Name(String),
    /// Boxed: the mapping is far larger than the other forms.
    Options(Box<RawRouteOptions>),
}

/// `route: { host: api, path: /v2, timeout: 30s, max_body: 10m }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteOptions {
    /// The route's name (`NAME.ENV.DOMAIN`); the job's own name when left out.
    pub host: Option<Spanned<String>>,
    /// Only requests under this path prefix take the route.
    pub path: Option<Spanned<String>>,
    /// How long a backend may take to start answering.
    pub timeout: Option<Spanned<DurationText>>,
    /// The largest request body the route takes.
    pub max_body: Option<Spanned<SizeText>>,
}

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RouteVisitor;
        impl<'de> de::Visitor<'de> for RouteVisitor {
            type Value = RawRoute;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                // Short enough to be shown whole (messages cap what they quote at 64 characters).
                f.write_str("a route name, true for the job's name, or a mapping")
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<RawRoute, E> {
                Ok(RawRoute::JobName(value))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawRoute, E> {
                Ok(RawRoute::Name(value.to_owned()))
            }
            fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<RawRoute, M::Error> {
                let options =
                    RawRouteOptions::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawRoute::Options(Box::new(options)))
            }
        }
        deserializer.deserialize_any(RouteVisitor)
    }
}

/// One of `volumes:`: a named volume mounted into the task's container.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVolume {
    pub name: Spanned<String>,
    pub mount: Spanned<String>,
    /// A tarball on the host or an `http(s)` URL, unpacked into the volume when it is created.
    pub seed: Option<Spanned<String>>,
}

/// `artifact:` the task's code as a tarball, unpacked into the container before it starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArtifact {
    /// An `http(s)` URL or an absolute path of a tarball on the host.
    pub url: Spanned<String>,
    /// Its SHA-256 in hex.
    pub sha256: Spanned<String>,
    /// Where it is unpacked in the container.
    pub path: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResources {
    /// `256m`, `1g`, `512MiB` or a number of bytes.
    pub memory: Option<Spanned<MemoryText>>,
    /// Number of CPUs, e.g. `0.5`.
    pub cpu: Option<Spanned<f64>>,
}

/// A memory size as written; interpreted by [`crate::units::parse_memory`].
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a memory size from 6 MiB to 16 TiB, such as 256m, 1g or a number of bytes"
)]
pub(crate) enum MemoryText {
    Bytes(u64),
    Text(String),
}

/// A size as written (`10m`, `1g`, a number of bytes); interpreted by
/// [`crate::units::parse_memory`].
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a size such as 256k, 10m, 1g or a number of bytes"
)]
pub(crate) enum SizeText {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDockerConfig {
    pub docker_hostconfig: Option<DockerFields>,
    pub docker_config: Option<DockerFields>,
}

/// `check:` a probe and its timing. Exactly one of `http`, `tcp`, `exec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    /// A path (probed on the task's port on its host) or a full `http://` URL.
    pub http: Option<Spanned<String>>,
    /// A port, or `true` for the task's port.
    pub tcp: Option<Spanned<RawTcp>>,
    /// A command run in the container; exit 0 is healthy.
    pub exec: Option<Spanned<RawCommand>>,
    pub interval: Option<Spanned<DurationText>>,
    pub timeout: Option<Spanned<DurationText>>,
    pub retries: Option<Spanned<Count<MIN_RETRIES, MAX_RETRIES>>>,
    pub start_period: Option<Spanned<DurationText>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a port number, or true for the task's port"
)]
pub(crate) enum RawTcp {
    TaskPort(bool),
    Port(i64),
}

/// A duration as written: `500ms`, `2s`, `1m`, or a number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a duration such as 500ms, 2s or 1m")]
pub(crate) enum DurationText {
    Seconds(f64),
    Text(String),
}

/// `update:` how a rollout moves the job's tasks to a new version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpdate {
    pub batch_size: Option<Spanned<Count<MIN_BATCH_SIZE, MAX_BATCH_SIZE>>>,
    pub canary: Option<Spanned<Count<0, MAX_CANARY>>>,
    pub min_healthy_time: Option<Spanned<DurationText>>,
    pub healthy_deadline: Option<Spanned<DurationText>>,
    pub auto_rollback: Option<bool>,
    pub manual_gate: Option<bool>,
    /// `10%`: the share of the route's requests the canaries take during the canary phase.
    pub canary_weight: Option<Spanned<RawNumberText>>,
    /// How the canary phase is judged by the canaries' real traffic.
    pub analysis: Option<Spanned<RawAnalysis>>,
}

/// A number, or a text such as `10%`, `>= 99%` or `< 500ms`, read by the checker.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a number or a text such as 10% or < 500ms"
)]
pub(crate) enum RawNumberText {
    Number(f64),
    Text(String),
}

/// `update.analysis:` thresholds the canaries' measurements must meet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnalysis {
    pub interval: Option<Spanned<DurationText>>,
    pub checks: Option<Spanned<Count<1, MAX_ANALYSIS_CHECKS>>>,
    pub failure_limit: Option<Spanned<Count<0, MAX_ANALYSIS_CHECKS>>>,
    pub min_requests: Option<Spanned<Count<0, MAX_ANALYSIS_REQUESTS>>>,
    pub success_rate: Option<Spanned<RawNumberText>>,
    pub latency_p99: Option<Spanned<RawNumberText>>,
    pub relative_to_stable: Option<bool>,
    pub log_errors: Option<Spanned<RawLogErrors>>,
}

/// `analysis.log_errors:` lines of the canaries' logs that count as errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogErrors {
    pub pattern: Spanned<String>,
    pub max_per_minute: Option<Spanned<Count<0, MAX_ANALYSIS_REQUESTS>>>,
}

/// A whole number that must lie in `MIN..=MAX`. Any single value is read, so the checker can
/// report one that is not such a number (`None` here) at its place, along with every other
/// mistake; only a list or a mapping is refused while parsing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Count<const MIN: u32, const MAX: u32>(pub Option<u32>);

impl<'de, const MIN: u32, const MAX: u32> Deserialize<'de> for Count<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor<const MIN: u32, const MAX: u32>;
        impl<const MIN: u32, const MAX: u32> de::Visitor<'_> for CountVisitor<MIN, MAX> {
            type Value = Count<MIN, MAX>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a number from {MIN} to {MAX}")
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
                let in_range = u32::try_from(number)
                    .ok()
                    .filter(|number| (MIN..=MAX).contains(number));
                Ok(Count(in_range))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
                match u64::try_from(number) {
                    Ok(number) => self.visit_u64(number),
                    Err(_) => Ok(Count(None)),
                }
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
                // A whole number too large for an integer is read as a float.
                let whole = number.fract() == 0.0 && (0.0..=f64::from(MAX)).contains(&number);
                match whole {
                    true => self.visit_u64(number as u64),
                    false => Ok(Count(None)),
                }
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Count(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Count(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Count(None))
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
                Ok(Count(None))
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
                Ok(Count(None))
            }
        }
        deserializer.deserialize_any(CountVisitor::<MIN, MAX>)
    }
}
