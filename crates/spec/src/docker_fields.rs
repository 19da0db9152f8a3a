//! The Docker passthrough (`docker_config.docker_hostconfig` / `docker_config.docker_config`):
//! fields of Docker Engine API `HostConfig` and container `Config`, by Docker's own names.
//!
//! They are handed to Docker as written, but checked first against the names and JSON kinds of
//! the Engine API (v1.41), so a misspelt `Bind` is caught at push with a hint, not when a
//! container fails to start on some host days later.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// The JSON kind Docker expects for a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Integer,
    Bool,
    List,
    Map,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Bool => "true or false",
            Kind::List => "a list",
            Kind::Map => "a map",
        }
    }

    pub fn matches(self, value: &serde_json::Value) -> bool {
        match self {
            Kind::String => value.is_string(),
            Kind::Integer => value.is_i64() || value.is_u64(),
            Kind::Bool => value.is_boolean(),
            Kind::List => value.is_array(),
            Kind::Map => value.is_object(),
        }
    }
}

use Kind::{Bool, Integer, List, Map, String as Str};

/// `HostConfig` fields of the Docker Engine API v1.41.
pub(crate) const HOST_CONFIG_FIELDS: &[(&str, Kind)] = &[
    ("Binds", List),
    ("ContainerIDFile", Str),
    ("LogConfig", Map),
    ("NetworkMode", Str),
    ("PortBindings", Map),
    ("RestartPolicy", Map),
    ("AutoRemove", Bool),
    ("VolumeDriver", Str),
    ("VolumesFrom", List),
    ("Mounts", List),
    ("CapAdd", List),
    ("CapDrop", List),
    ("CgroupnsMode", Str),
    ("Dns", List),
    ("DnsOptions", List),
    ("DnsSearch", List),
    ("ExtraHosts", List),
    ("GroupAdd", List),
    ("IpcMode", Str),
    ("Cgroup", Str),
    ("Links", List),
    ("OomScoreAdj", Integer),
    ("PidMode", Str),
    ("Privileged", Bool),
    ("PublishAllPorts", Bool),
    ("ReadonlyRootfs", Bool),
    ("SecurityOpt", List),
    ("StorageOpt", Map),
    ("Tmpfs", Map),
    ("UTSMode", Str),
    ("UsernsMode", Str),
    ("ShmSize", Integer),
    ("Sysctls", Map),
    ("Runtime", Str),
    ("ConsoleSize", List),
    ("Isolation", Str),
    ("CpuShares", Integer),
    ("Memory", Integer),
    ("NanoCpus", Integer),
    ("CgroupParent", Str),
    ("BlkioWeight", Integer),
    ("BlkioWeightDevice", List),
    ("BlkioDeviceReadBps", List),
    ("BlkioDeviceWriteBps", List),
    ("BlkioDeviceReadIOps", List),
    ("BlkioDeviceWriteIOps", List),
    ("CpuPeriod", Integer),
    ("CpuQuota", Integer),
    ("CpuRealtimePeriod", Integer),
    ("CpuRealtimeRuntime", Integer),
    ("CpusetCpus", Str),
    ("CpusetMems", Str),
    ("Devices", List),
    ("DeviceCgroupRules", List),
    ("DeviceRequests", List),
    ("KernelMemoryTCP", Integer),
    ("MemoryReservation", Integer),
    ("MemorySwap", Integer),
    ("MemorySwappiness", Integer),
    ("OomKillDisable", Bool),
    ("Init", Bool),
    ("PidsLimit", Integer),
    ("Ulimits", List),
    ("CpuCount", Integer),
    ("CpuPercent", Integer),
    ("IOMaximumIOps", Integer),
    ("IOMaximumBandwidth", Integer),
    ("MaskedPaths", List),
    ("ReadonlyPaths", List),
];

/// Container `Config` fields of the Docker Engine API v1.41.
pub(crate) const CONTAINER_CONFIG_FIELDS: &[(&str, Kind)] = &[
    ("Hostname", Str),
    ("Domainname", Str),
    ("User", Str),
    ("AttachStdin", Bool),
    ("AttachStdout", Bool),
    ("AttachStderr", Bool),
    ("ExposedPorts", Map),
    ("Tty", Bool),
    ("OpenStdin", Bool),
    ("StdinOnce", Bool),
    ("Env", List),
    ("Cmd", List),
    ("Healthcheck", Map),
    ("ArgsEscaped", Bool),
    ("Image", Str),
    ("Volumes", Map),
    ("WorkingDir", Str),
    ("Entrypoint", List),
    ("NetworkDisabled", Bool),
    ("MacAddress", Str),
    ("OnBuild", List),
    ("Labels", Map),
    ("StopSignal", Str),
    ("StopTimeout", Integer),
    ("Shell", List),
];

/// A map of Docker fields with the location of each key, in the order written.
#[derive(Debug, Clone, Default)]
pub(crate) struct DockerFields(pub Vec<(Spanned<String>, serde_json::Value)>);

impl<'de> Deserialize<'de> for DockerFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = DockerFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of Docker Engine API fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DockerFields, A::Error> {
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<serde_json::Value>()?;
                    fields.push((key, value));
                }
                Ok(DockerFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

impl DockerFields {
    pub fn to_json_map(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(key, value)| (key.value.clone(), value.clone()))
            .collect()
    }
}
