//! `container.docker.parameters`: the `docker run` flags Marathon passed through, written as the
//! Docker Engine API fields they set (`--cap-add` is `HostConfig.CapAdd`), so they keep working
//! under `docker_config`. Flags that coding-job decides itself (names, restarts, networks,
//! published ports) or that have no field here are reported.

use serde_json::{Map, Value, json};

use super::Context;
use crate::fields::item;
use crate::service_file::Job;
use crate::text::{self, literal};

/// `--log-driver` and `--log-opt`, gathered into one `LogConfig`.
#[derive(Default)]
struct Log {
    driver: Option<String>,
    options: Map<String, Value>,
}

pub(super) fn apply(context: &mut Context, path: &str, parameters: &[Value], job: &mut Job) {
    let mut log = Log::default();
    for (index, parameter) in parameters.iter().enumerate() {
        let parameter_path = item(path, index);
        let key = parameter.get("key").and_then(Value::as_str);
        let value = parameter.get("value").and_then(text::scalar);
        let (Some(key), Some(value)) = (key, value) else {
            let why = "expected {\"key\": FLAG, \"value\": VALUE}";
            context.left(parameter_path, text::shown(parameter), why);
            continue;
        };
        let flag = key.trim_start_matches('-');
        if let Err(why) = carry(flag, &value, job, &mut log) {
            context.left(parameter_path, format!("--{flag}={value}"), why);
        }
    }
    if log.driver.is_some() || !log.options.is_empty() {
        let driver = log.driver.unwrap_or_else(|| "json-file".into());
        let config = json!({ "Type": driver, "Config": log.options });
        job.docker_config
            .docker_hostconfig
            .insert("LogConfig".into(), config);
        let note = "--log-driver/--log-opt are docker_config.docker_hostconfig.LogConfig, in place of coding-job's rotated json-file logs (10 MB x 3)";
        context.note(path, note);
    }
}

/// Sets the field `--FLAG=VALUE` sets, or says why it is not carried.
fn carry(flag: &str, value: &str, job: &mut Job, log: &mut Log) -> Result<(), String> {
    let docker = &mut job.docker_config;
    match flag {
        "label" | "l" => {
            let (name, label) = value.split_once('=').unwrap_or((value, ""));
            let labels = docker
                .docker_config
                .entry("Labels".into())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(labels) = labels {
                labels.insert(name.to_string(), Value::String(literal(label)));
            }
        }
        "cap-add" => docker.push_host("CapAdd", literal(value)),
        "cap-drop" => docker.push_host("CapDrop", literal(value)),
        "add-host" => docker.push_host("ExtraHosts", literal(value)),
        "dns" => docker.push_host("Dns", literal(value)),
        "dns-search" => docker.push_host("DnsSearch", literal(value)),
        "dns-opt" | "dns-option" => docker.push_host("DnsOptions", literal(value)),
        "security-opt" => docker.push_host("SecurityOpt", literal(value)),
        "group-add" => docker.push_host("GroupAdd", literal(value)),
        "device-cgroup-rule" => docker.push_host("DeviceCgroupRules", literal(value)),
        "volume" | "v" if value.contains(':') => docker.push_host("Binds", literal(value)),
        "volume" | "v" => {
            return Err(
                "an anonymous volume: give the job a named volume (`volumes: [{name, mount}]`)"
                    .into(),
            );
        }
        "device" => {
            let mut parts = value.splitn(3, ':');
            let on_host = parts.next().unwrap_or_default();
            let in_container = parts.next().unwrap_or(on_host);
            let permissions = parts.next().unwrap_or("rwm");
            let device = json!({
                "PathOnHost": literal(on_host),
                "PathInContainer": literal(in_container),
                "CgroupPermissions": permissions,
            });
            docker.push_host("Devices", device);
        }
        "ulimit" => {
            let (name, limits) = value.split_once('=').ok_or("expected NAME=SOFT[:HARD]")?;
            let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
            let (Ok(soft), Ok(hard)) = (soft.parse::<i64>(), hard.parse::<i64>()) else {
                return Err("expected NAME=SOFT[:HARD] with whole numbers".into());
            };
            docker.push_host(
                "Ulimits",
                json!({ "Name": name, "Soft": soft, "Hard": hard }),
            );
        }
        "sysctl" | "tmpfs" => {
            let (field, separator) = match flag {
                "sysctl" => ("Sysctls", '='),
                _ => ("Tmpfs", ':'),
            };
            let (name, setting) = value.split_once(separator).unwrap_or((value, ""));
            let map = docker
                .docker_hostconfig
                .entry(field.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = map {
                map.insert(name.to_string(), Value::String(literal(setting)));
            }
        }
        "env" | "e" => {
            let (name, setting) = value
                .split_once('=')
                .ok_or("passes a variable from Mesos' environment, which coding-job does not have: set it in env")?;
            job.env
                .entry(name.to_string())
                .or_insert_with(|| literal(setting));
        }
        "user" | "u" => set(&mut docker.docker_config, "User", literal(value)),
        "workdir" | "w" => set(&mut docker.docker_config, "WorkingDir", literal(value)),
        "hostname" | "h" => set(&mut docker.docker_config, "Hostname", literal(value)),
        "stop-signal" => set(&mut docker.docker_config, "StopSignal", literal(value)),
        "entrypoint" => {
            let entrypoint = Value::Array(vec![Value::String(literal(value))]);
            docker.docker_config.insert("Entrypoint".into(), entrypoint);
        }
        "volume-driver" => set(
            &mut docker.docker_hostconfig,
            "VolumeDriver",
            literal(value),
        ),
        "ipc" => set(&mut docker.docker_hostconfig, "IpcMode", literal(value)),
        "pid" => set(&mut docker.docker_hostconfig, "PidMode", literal(value)),
        "uts" => set(&mut docker.docker_hostconfig, "UTSMode", literal(value)),
        "userns" => set(&mut docker.docker_hostconfig, "UsernsMode", literal(value)),
        "cgroupns" => set(
            &mut docker.docker_hostconfig,
            "CgroupnsMode",
            literal(value),
        ),
        "cgroup-parent" => set(
            &mut docker.docker_hostconfig,
            "CgroupParent",
            literal(value),
        ),
        "runtime" => set(&mut docker.docker_hostconfig, "Runtime", literal(value)),
        "cpuset-cpus" => set(&mut docker.docker_hostconfig, "CpusetCpus", literal(value)),
        "cpuset-mems" => set(&mut docker.docker_hostconfig, "CpusetMems", literal(value)),
        "privileged" => set(
            &mut docker.docker_hostconfig,
            "Privileged",
            flag_value(value)?,
        ),
        "read-only" => set(
            &mut docker.docker_hostconfig,
            "ReadonlyRootfs",
            flag_value(value)?,
        ),
        "oom-kill-disable" => set(
            &mut docker.docker_hostconfig,
            "OomKillDisable",
            flag_value(value)?,
        ),
        "init" => job.init = Some(flag_value(value)?),
        "shm-size" => set(&mut docker.docker_hostconfig, "ShmSize", bytes(value)?),
        "memory-reservation" => set(
            &mut docker.docker_hostconfig,
            "MemoryReservation",
            bytes(value)?,
        ),
        "memory-swap" if value.trim() == "-1" => {
            set(&mut docker.docker_hostconfig, "MemorySwap", -1)
        }
        "memory-swap" => set(&mut docker.docker_hostconfig, "MemorySwap", bytes(value)?),
        "memory-swappiness" | "oom-score-adj" | "pids-limit" | "cpu-shares" | "cpu-period"
        | "cpu-quota" | "blkio-weight" => {
            let field = match flag {
                "memory-swappiness" => "MemorySwappiness",
                "oom-score-adj" => "OomScoreAdj",
                "pids-limit" => "PidsLimit",
                "cpu-shares" => "CpuShares",
                "cpu-period" => "CpuPeriod",
                "cpu-quota" => "CpuQuota",
                _ => "BlkioWeight",
            };
            let number = value
                .trim()
                .parse::<i64>()
                .map_err(|_| "expected a whole number".to_string())?;
            set(&mut docker.docker_hostconfig, field, number);
        }
        "log-driver" => log.driver = Some(literal(value)),
        "log-opt" => {
            let (name, setting) = value.split_once('=').ok_or("expected NAME=VALUE")?;
            log.options
                .insert(name.to_string(), Value::String(literal(setting)));
        }
        "net" | "network" if value == "host" => {}
        "net" | "network" => {
            return Err("coding-job runs tasks on their host's network, where their port and checks reach them; another Docker network would hide them".into());
        }
        "name" => {
            return Err("coding-job names each container itself (TASK_SERVICE_ENV_TIME)".into());
        }
        "restart" | "rm" => {
            return Err(
                "coding-job's agent restarts and removes containers itself (`on_failure:`)".into(),
            );
        }
        "publish" | "p" | "publish-all" | "P" | "expose" => {
            return Err(
                "tasks run on their host's network: nothing is published or exposed".into(),
            );
        }
        "memory" | "m" | "cpus" => {
            return Err("the limits come from the app's mem and cpus (`resources:`)".into());
        }
        "link" => {
            return Err("links need Docker's bridge network: reach other jobs with {{ addr(\"JOB\") }} instead".into());
        }
        "volumes-from" => {
            return Err(
                "coding-job names containers itself, so no container can be named here".into(),
            );
        }
        flag if flag.starts_with("health-") || flag == "no-healthcheck" => {
            return Err("the agent runs the job's `check:` itself".into());
        }
        flag => {
            return Err(format!(
                "no Docker Engine API field is known here for `docker run --{flag}`: set it under docker_config by hand"
            ));
        }
    }
    Ok(())
}

fn set(
    section: &mut std::collections::BTreeMap<String, Value>,
    field: &str,
    value: impl Into<Value>,
) {
    section.insert(field.to_string(), value.into());
}

/// A boolean flag's value: `true` (or empty, as `--privileged` alone) or `false`.
fn flag_value(value: &str) -> Result<bool, String> {
    match value.trim() {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("expected true or false, found {other}")),
    }
}

/// A size as Docker's flags write it (`64m`, `1g`, bytes) in bytes.
fn bytes(value: &str) -> Result<i64, String> {
    cj_spec::parse_memory(value)
        .and_then(|bytes| i64::try_from(bytes).ok())
        .ok_or_else(|| format!("expected a size such as 64m, found {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(flag: &str, value: &str) -> Result<Job, String> {
        let mut job = Job::default();
        carry(flag, value, &mut job, &mut Log::default()).map(|()| job)
    }

    #[test]
    fn flags_become_engine_api_fields() {
        let job = carried("cap-add", "NET_ADMIN").unwrap();
        assert_eq!(
            job.docker_config.docker_hostconfig["CapAdd"],
            json!(["NET_ADMIN"])
        );
        let job = carried("ulimit", "nofile=1024:2048").unwrap();
        assert_eq!(
            job.docker_config.docker_hostconfig["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
        );
        let job = carried("label", "team=a").unwrap();
        assert_eq!(
            job.docker_config.docker_config["Labels"],
            json!({"team": "a"})
        );
        let job = carried("shm-size", "64m").unwrap();
        assert_eq!(
            job.docker_config.docker_hostconfig["ShmSize"],
            json!(64 << 20)
        );
        assert_eq!(carried("init", "false").unwrap().init, Some(false));
    }

    #[test]
    fn flags_coding_job_decides_are_refused_with_a_reason() {
        assert!(
            carried("name", "kdc")
                .unwrap_err()
                .contains("names each container")
        );
        assert!(carried("net", "weave").is_err());
        assert!(carried("net", "host").is_ok());
        assert!(
            carried("frobnicate", "1")
                .unwrap_err()
                .contains("--frobnicate")
        );
    }
}
