//! What to create, and how it becomes Docker's create body: our defaults first, then the user's
//! passthrough fields by Docker's own names, then our labels (which nothing may override) and
//! the task's volumes (added to any `Mounts` the user passed through).

use std::collections::BTreeMap;

use cj_spec::TaskSpec;
use serde_json::{Map, Value, json};

use crate::types::VolumeMount;

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    pub name: String,
    pub image: String,
    pub task: TaskSpec,
    pub labels: BTreeMap<String, String>,
    /// Named volumes (created beforehand) and where they are mounted.
    pub mounts: Vec<VolumeMount>,
}

/// json-file rotation on by default: a chatty container can neither fill the disk nor (through
/// an unbounded log) push the daemon towards OOM, a failure seen in production.
pub const DEFAULT_LOG_MAX_SIZE: &str = "10m";
pub const DEFAULT_LOG_MAX_FILE: &str = "3";

impl CreateRequest {
    /// The Docker Engine API create body, as JSON.
    pub fn docker_body(&self) -> Value {
        let task = &self.task;
        let mut host_config = Map::new();
        // Docker's init as PID 1 reaps zombies and forwards signals to the real process.
        host_config.insert("Init".into(), json!(task.init));
        // Host networking by default: tasks listen on their host's ports, no SDN or proxy in
        // between. `NetworkMode` in docker_hostconfig changes it.
        host_config.insert("NetworkMode".into(), json!("host"));
        host_config.insert(
            "LogConfig".into(),
            json!({"Type": "json-file", "Config": {"max-size": DEFAULT_LOG_MAX_SIZE, "max-file": DEFAULT_LOG_MAX_FILE}}),
        );
        if let Some(memory) = task.resources.memory_bytes {
            host_config.insert("Memory".into(), json!(memory));
        }
        if let Some(nano_cpus) = task.resources.nano_cpus {
            host_config.insert("NanoCpus".into(), json!(nano_cpus));
        }
        for (key, value) in &task.docker_hostconfig {
            host_config.insert(key.clone(), value.clone());
        }
        if !self.mounts.is_empty() {
            // Added to the user's own mounts rather than replacing them: both are wanted. A
            // clash of paths is the engine's to refuse, naming the path.
            let mut mounts = match host_config.remove("Mounts") {
                Some(Value::Array(user_mounts)) => user_mounts,
                _ => Vec::new(),
            };
            mounts.extend(self.mounts.iter().map(
                |mount| json!({"Type": "volume", "Source": mount.volume, "Target": mount.path}),
            ));
            host_config.insert("Mounts".into(), Value::Array(mounts));
        }

        let mut config = Map::new();
        config.insert("Image".into(), json!(self.image));
        if let Some(command) = &task.command {
            config.insert("Cmd".into(), json!(command));
        }
        let env: Vec<String> = task
            .env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        config.insert("Env".into(), json!(env));
        for (key, value) in &task.docker_config {
            config.insert(key.clone(), value.clone());
        }
        let mut labels = match config.remove("Labels") {
            Some(Value::Object(user_labels)) => user_labels,
            _ => Map::new(),
        };
        for (key, value) in &self.labels {
            labels.insert(key.clone(), json!(value));
        }
        config.insert("Labels".into(), Value::Object(labels));
        config.insert("HostConfig".into(), Value::Object(host_config));
        Value::Object(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(yaml_job: &str) -> CreateRequest {
        let spec =
            cj_spec::parse_service("t.yaml", &format!("service: s\njobs:\n{yaml_job}")).unwrap();
        CreateRequest {
            name: "t".into(),
            image: "img:1".into(),
            task: spec.jobs[0].tasks[0].clone(),
            labels: BTreeMap::from([("coding-job.job".into(), "a".into())]),
            mounts: Vec::new(),
        }
    }

    #[test]
    fn defaults_guard_against_docker_pitfalls() {
        let body = request("  - name: a\n    image: img:1\n").docker_body();
        assert_eq!(body["HostConfig"]["Init"], true);
        assert_eq!(
            body["HostConfig"]["LogConfig"]["Config"]["max-size"],
            DEFAULT_LOG_MAX_SIZE
        );
        assert_eq!(body["HostConfig"]["NetworkMode"], "host");
        assert_eq!(body["Labels"]["coding-job.job"], "a");
    }

    #[test]
    fn passthrough_fields_win_over_defaults_but_not_over_our_labels() {
        let body = request(
            "  - name: a\n    image: img:1\n    init: false\n    env: {A: 1}\n    resources: {memory: 64m}\n    docker_config:\n      docker_hostconfig: {NetworkMode: bridge, Binds: [\"/d:/d\"]}\n      docker_config: {WorkingDir: /srv, Labels: {team: x, coding-job.job: evil}}\n",
        )
        .docker_body();
        assert_eq!(body["HostConfig"]["Init"], false);
        assert_eq!(body["HostConfig"]["NetworkMode"], "bridge");
        assert_eq!(body["HostConfig"]["Binds"], json!(["/d:/d"]));
        assert_eq!(body["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(body["WorkingDir"], "/srv");
        assert_eq!(body["Env"], json!(["A=1"]));
        assert_eq!(body["Labels"]["team"], "x");
        assert_eq!(body["Labels"]["coding-job.job"], "a");
    }

    #[test]
    fn volumes_are_mounted_beside_the_users_own_mounts() {
        let mut request = request(
            "  - name: a\n    image: img:1\n    docker_config:\n      docker_hostconfig: {Mounts: [{Type: tmpfs, Target: /run}]}\n",
        );
        request.mounts = vec![VolumeMount {
            volume: "data_a_s_e_0123abcd".into(),
            path: "/var/lib/data".into(),
        }];
        let body = request.docker_body();
        assert_eq!(
            body["HostConfig"]["Mounts"],
            json!([
                {"Type": "tmpfs", "Target": "/run"},
                {"Type": "volume", "Source": "data_a_s_e_0123abcd", "Target": "/var/lib/data"}
            ])
        );
        let plain = self::request("  - name: a\n    image: img:1\n").docker_body();
        assert!(plain["HostConfig"].get("Mounts").is_none());
    }
}
