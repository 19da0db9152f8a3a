//! What Kamal hands to `docker run` for a role or an accessory (`options`, `labels`,
//! `volumes`, `logging`, stop timeouts), as the job's own settings or as Docker Engine API fields
//! under `docker_config`.

use serde_json::{Map, Value};

use super::Reader;
use crate::fields::{Fields, item, join};
use crate::service_file::{Job, Resources};
use crate::text::{memory, scalar};

/// Why a `docker run` flag about networking is not carried.
pub const HOST_NETWORK: &str = "tasks use host networking: a task listens on its host's own interfaces, and jobs reach each other by address ({{ addr(\"job\") }})";

/// `options:` the flags Kamal passes to `docker run` as `--NAME VALUE`.
pub fn options(job: &mut Job, value: &Value, path: &str, reader: &mut Reader) {
    let Some(map) = super::mapping(value, path, reader) else {
        return;
    };
    for (flag, written) in map {
        let flag_path = join(path, &reader.erb.restore(flag));
        let values: Vec<Option<String>> = match written {
            Value::Bool(true) => vec![None],
            Value::Bool(false) | Value::Null => continue,
            Value::Array(items) => items.iter().map(scalar).collect(),
            other => vec![scalar(other)],
        };
        option(
            job,
            flag.trim_start_matches('-'),
            &values,
            written,
            &flag_path,
            reader,
        );
    }
}

fn option(
    job: &mut Job,
    flag: &str,
    values: &[Option<String>],
    written: &Value,
    path: &str,
    reader: &mut Reader,
) {
    let texts: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
    let single = match texts.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let template = |text: &str, reader: &mut Reader| Value::String(reader.template(text, path));
    let mut carried = true;
    match flag {
        "memory" | "m" => {
            let bytes = single
                .and_then(|text| reader.plain(text, path, "memory limit"))
                .and_then(|text| cj_spec::parse_memory(&text))
                .filter(|bytes| (6 << 20..=16 << 40).contains(bytes));
            match bytes {
                Some(bytes) => resources(job).memory = Some(memory(bytes)),
                None => carried = false,
            }
        }
        "cpus" => {
            let cpus = single
                .and_then(|text| text.trim().parse::<f64>().ok())
                .filter(|cpus| (0.01..=1024.0).contains(cpus));
            match cpus {
                Some(cpus) => resources(job).cpu = Some(cpus),
                None => carried = false,
            }
        }
        "init" => job.init = Some(true),
        "privileged" => host(job, "Privileged", Value::Bool(true)),
        "read-only" => host(job, "ReadonlyRootfs", Value::Bool(true)),
        "user" | "u" | "workdir" | "w" | "entrypoint" if single.is_some() => {
            let value = template(single.unwrap_or_default(), reader);
            let (field, value) = match flag {
                "user" | "u" => ("User", value),
                "workdir" | "w" => ("WorkingDir", value),
                _ => ("Entrypoint", Value::Array(vec![value])),
            };
            job.docker_config
                .docker_config
                .insert(field.to_string(), value);
        }
        "add-host" | "cap-add" | "cap-drop" | "volume" | "v" | "security-opt" | "group-add"
            if !texts.is_empty() =>
        {
            let field = match flag {
                "add-host" => "ExtraHosts",
                "cap-add" => "CapAdd",
                "cap-drop" => "CapDrop",
                "security-opt" => "SecurityOpt",
                "group-add" => "GroupAdd",
                _ => "Binds",
            };
            for text in &texts {
                let value = template(text, reader);
                job.docker_config.push_host(field, value);
            }
        }
        "shm-size" => match single.and_then(cj_spec::parse_memory) {
            Some(bytes) => host(job, "ShmSize", Value::from(bytes)),
            None => carried = false,
        },
        "stop-timeout" => match single.and_then(|text| text.trim().parse::<u64>().ok()) {
            Some(seconds) => stop_timeout(job, seconds),
            None => carried = false,
        },
        "label" | "l" => {
            for text in &texts {
                match text.split_once('=') {
                    Some((key, value)) => label(job, key, value, path, reader),
                    None => label(job, text, "", path, reader),
                }
            }
        }
        "network" | "net" | "publish" | "p" | "expose" | "hostname" | "h" | "dns"
        | "dns-search" | "ip" | "mac-address" | "network-alias" => {
            reader.left(path, written, HOST_NETWORK);
            return;
        }
        "restart" => {
            let why =
                "coding-job restarts a failed task itself (`on_failure: restart`, the default)";
            reader.left(path, written, why);
            return;
        }
        "env" | "e" | "env-file" => {
            reader.left(path, written, "give environment variables under `env`");
            return;
        }
        "name" => {
            reader.left(
                path,
                written,
                "coding-job names the containers after the task",
            );
            return;
        }
        _ => carried = false,
    }
    if !carried {
        let why = "a `docker run` flag with no carried equivalent (or a value it cannot take): give it under docker_config by its Docker Engine API name";
        reader.left(path, written, why);
    }
}

fn resources(job: &mut Job) -> &mut Resources {
    job.resources.get_or_insert_with(Resources::default)
}

fn host(job: &mut Job, field: &str, value: Value) {
    job.docker_config
        .docker_hostconfig
        .insert(field.to_string(), value);
}

/// Seconds Docker waits after SIGTERM before it kills the container.
pub fn stop_timeout(job: &mut Job, seconds: u64) {
    job.docker_config
        .docker_config
        .insert("StopTimeout".to_string(), Value::from(seconds));
}

/// `labels:` container labels, as Docker's `Labels`. Traefik's own labels configured Kamal 1's
/// routing, which the router does by `route`.
pub fn labels(job: &mut Job, value: &Value, path: &str, reader: &mut Reader) {
    let Some(map) = super::mapping(value, path, reader) else {
        return;
    };
    for (key, value) in map {
        let label_path = join(path, &reader.erb.restore(key));
        if key.starts_with("traefik.") {
            let why = "a Traefik routing label (Kamal 1): the router serves the job by its `route` at JOB.ENV.DOMAIN";
            reader.left(&label_path, value, why);
            continue;
        }
        let Some(text) = scalar(value) else {
            reader.left(&label_path, value, "expected a string, number or boolean");
            continue;
        };
        label(job, key, &text, &label_path, reader);
    }
}

fn label(job: &mut Job, key: &str, value: &str, path: &str, reader: &mut Reader) {
    let Some(key) = reader.plain(key, path, "label name") else {
        return;
    };
    let value = reader.template(value, path);
    let labels = job
        .docker_config
        .docker_config
        .entry("Labels".to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(labels) = labels {
        labels.insert(key, Value::String(value));
    }
}

/// `volumes:` `HOST:CONTAINER[:OPTIONS]` binds (a host path or a Docker volume), as `Binds`.
pub fn binds(job: &mut Job, value: &Value, path: &str, reader: &mut Reader) {
    let Some(items) = value.as_array() else {
        reader.left(path, value, "expected a list of HOST:CONTAINER binds");
        return;
    };
    for (index, bind) in items.iter().enumerate() {
        let bind_path = item(path, index);
        match scalar(bind).filter(|text| text.contains(':')) {
            Some(text) => {
                let text = reader.template(&text, &bind_path);
                job.docker_config.push_host("Binds", Value::String(text));
            }
            None => reader.left(&bind_path, bind, "expected HOST:CONTAINER[:OPTIONS]"),
        }
    }
    reader.note(
        path,
        "kept as Docker binds (`docker_config.docker_hostconfig.Binds`), shared by every environment on a host; a coding-job `volumes:` entry gives each environment its own",
    );
}

/// `logging:` the Docker log driver and its options, as `LogConfig`.
pub fn logging(job: &mut Job, value: &Value, path: &str, reader: &mut Reader) {
    let mut fields = Fields::new(path, value);
    let mut config = Map::new();
    if let Some(driver) = fields.text("driver") {
        config.insert("Type".into(), Value::String(driver));
    }
    if let Some(options) = fields.take("options") {
        let mut log_options = Map::new();
        for (key, value) in options.as_object().into_iter().flatten() {
            match scalar(value) {
                Some(text) => {
                    log_options.insert(key.clone(), Value::String(text));
                }
                None => reader.left(
                    &join(&fields.at("options"), key),
                    value,
                    "expected a string",
                ),
            }
        }
        config.insert("Config".into(), Value::Object(log_options));
        // Options without a driver are for Docker's default one.
        config
            .entry("Type")
            .or_insert_with(|| Value::String("json-file".into()));
    }
    if !config.is_empty() {
        host(job, "LogConfig", Value::Object(config));
    }
    reader.leave_rest(fields, |_| None);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::report::Report;

    #[test]
    fn docker_run_flags_become_job_settings_or_docker_fields() {
        let mut report = Report::default();
        let mut reader = Reader::new(&mut report);
        let mut job = Job::default();
        let written = json!({
            "memory": "2g",
            "cpus": 2,
            "user": "app",
            "add-host": ["db:10.0.0.9"],
            "volume": "/srv/a:/a:ro",
            "cap-add": ["NET_ADMIN"],
            "network": "private",
            "restart": "always",
            "ulimit": "nofile=1024",
        });
        options(&mut job, &written, "servers.web.options", &mut reader);
        let resources = job.resources.as_ref().expect("resources");
        assert_eq!(resources.memory.as_deref(), Some("2g"));
        assert_eq!(resources.cpu, Some(2.0));
        assert_eq!(job.docker_config.docker_config["User"], json!("app"));
        let host = &job.docker_config.docker_hostconfig;
        assert_eq!(host["ExtraHosts"], json!(["db:10.0.0.9"]));
        assert_eq!(host["Binds"], json!(["/srv/a:/a:ro"]));
        assert_eq!(host["CapAdd"], json!(["NET_ADMIN"]));
        let import = report.finish(Vec::new());
        let left: Vec<&str> = import
            .not_carried
            .iter()
            .map(|left| left.path.as_str())
            .collect();
        assert_eq!(
            left,
            [
                "servers.web.options.network",
                "servers.web.options.restart",
                "servers.web.options.ulimit"
            ]
        );
    }
}
