//! One Compose service as one job: what it runs, with what, where it listens, what it mounts,
//! what it waits for and how it is checked.

use serde_json::{Value, json};

use super::deploy;
use super::health;
use super::ports;
use super::storage;
use super::values::{FileContext, Reader};
use crate::fields::{Fields, item};
use crate::service_file::Job;
use crate::text::{looks_secret, scalar, shown, var_name, var_ref};

/// Converts service `name` (`value`) into a job named `job_name`.
pub fn convert(
    name: &str,
    job_name: &str,
    value: &Value,
    file: &FileContext,
    reader: &mut Reader,
) -> Job {
    let path = format!("services.{name}");
    let mut fields = Fields::new(path.clone(), value);
    let mut job = Job {
        name: job_name.to_string(),
        ..Job::default()
    };

    image(&mut job, &mut fields, name, reader);
    if let Some(command) = fields.take("command") {
        job.command = reader.argv(command, &fields.at("command"));
    }
    if let Some(entrypoint) = fields.take("entrypoint")
        && let Some(argv) = reader.argv(entrypoint, &fields.at("entrypoint"))
    {
        job.docker_config
            .docker_config
            .insert("Entrypoint".into(), json!(argv));
    }
    environment(&mut job, &mut fields, file, reader);
    secrets(&mut job, &mut fields, file, reader);
    ports::read(&mut job, &mut fields, reader);
    storage::volumes(&mut job, &mut fields, file, reader);
    storage::tmpfs(&mut job, &mut fields, reader);
    depends_on(&mut job, &mut fields, file, reader);
    health::read(&mut job, &mut fields, reader);
    restart(&mut job, &mut fields, reader);
    deploy::read(&mut job, &mut fields, reader);
    docker_fields(&mut job, &mut fields, reader);
    labels(&mut job, &mut fields, reader);

    // Taken by the file's import (profiles decide the service file; extends was merged).
    fields.take("profiles");
    fields.take("extends").inspect(|extends| {
        let base = extends.get("file").map(shown).unwrap_or_default();
        reader.report.left(
            format!("{path}.extends"),
            shown(extends),
            format!("extends a service of another file ({base}): its settings are not imported; import that file too, or copy them in"),
        );
    });
    fields.leave_rest(reader.report, why_left);
    job
}

fn why_left(key: &str) -> Option<&'static str> {
    Some(match key {
        "build" => "coding-job runs images; build and push it first (the image is a variable)",
        "container_name" => "coding-job names each task's container itself",
        "networks" | "network_mode" | "links" | "external_links" => {
            "tasks run on their hosts' network and reach each other through {{ addr(\"job\") }}"
        }
        "hostname" | "domainname" | "mac_address" => {
            "on the host's network a container has its host's name and address"
        }
        "logging" => {
            "coding-job keeps every container's logs (json-file, 10 MB x 3) and shows them with `logs`"
        }
        "platform" => "each host's engine runs its own platform's image",
        "pull_policy" => "agents pull a missing image and pre-warm images before rollouts",
        "configs" => {
            "coding-job has no config files; bake the file into the image or seed a volume"
        }
        "scale" => "use deploy.replicas (instances)",
        "develop" => "Compose watch is a development loop of Compose itself",
        "stdin_open" | "tty" | "attach" => "tasks run detached; use `coding-job exec -it`",
        "annotations" => "not part of coding-job's model",
        "devices" | "device_cgroup_rules" | "gpus" => {
            "devices are not carried; add docker_config.docker_hostconfig.Devices by hand"
        }
        "ipc" | "pid" | "cgroup" | "cgroup_parent" | "uts" | "userns_mode" | "isolation" => {
            "namespace settings are not carried; add them under docker_config by hand"
        }
        "post_start" | "pre_stop" => "lifecycle hooks are not part of coding-job's model",
        "runtime" => "not carried; add docker_config.docker_hostconfig.Runtime by hand",
        _ if key.starts_with("x-") => "an extension field: Compose itself ignores it",
        _ => return None,
    })
}

fn image(job: &mut Job, fields: &mut Fields, name: &str, reader: &mut Reader) {
    let image_path = fields.at("image");
    let image = fields
        .take("image")
        .and_then(|image| reader.template(image, &image_path))
        .filter(|image| {
            // A template is checked once rendered; a plain reference push checks now.
            let plain = !cj_spec::is_template(image);
            match cj_spec::ImageRef::parse(image) {
                Err(error) if plain => {
                    reader.report.left(
                        &image_path,
                        image.clone(),
                        format!("not an image reference Docker accepts: {}", error.reason),
                    );
                    false
                }
                _ => true,
            }
        });
    let build = fields.take("build");
    job.image = match (image, build) {
        (Some(image), _) => Some(image),
        (None, build) => {
            let variable = var_name(&format!("{name}_image"));
            let at = fields.path().to_string();
            reader.report.variable(&variable, None, false, &at);
            let why = match (
                build,
                fields.rest().iter().find(|(key, _)| *key == "extends"),
            ) {
                (Some(build), _) => format!(
                    "built by Compose from {}: build the image, push it to a registry the hosts can reach, and set {variable} to its reference",
                    shown(build.get("context").unwrap_or(build))
                ),
                (None, Some(_)) => {
                    format!("its image comes from a file it extends: set {variable} to the image")
                }
                (None, None) => format!("no image: set {variable} to the image to run"),
            };
            reader.report.note(at, why);
            Some(var_ref(&variable))
        }
    };
}

fn environment(job: &mut Job, fields: &mut Fields, file: &FileContext, reader: &mut Reader) {
    if let Some(paths) = fields.take("env_file") {
        let listed: Vec<(String, bool)> = match paths {
            Value::String(path) => vec![(path.clone(), true)],
            Value::Array(items) => items
                .iter()
                .filter_map(|entry| match entry {
                    Value::String(path) => Some((path.clone(), true)),
                    Value::Object(_) => Some((
                        entry.get("path").and_then(scalar).unwrap_or_default(),
                        entry
                            .get("required")
                            .and_then(Value::as_bool)
                            .unwrap_or(true),
                    )),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for (index, (env_path, required)) in listed.into_iter().enumerate() {
            let at = item(&fields.at("env_file"), index);
            match file.read_beside.and_then(|read| read(&env_path)) {
                Some(text) => {
                    for (key, value) in dotenv(&text) {
                        let value = reader.template(&Value::String(value), &format!("{at}:{key}"));
                        job.env.insert(key, value.unwrap_or_default());
                    }
                    reader.report.note(at, format!("read {env_path} into env"));
                }
                None => reader.report.left(
                    at,
                    env_path,
                    if required {
                        "the file could not be read beside the Compose file: its variables are not in env"
                    } else {
                        "optional, and not found beside the Compose file"
                    },
                ),
            }
        }
    }
    let Some(environment) = fields.take("environment") else {
        return;
    };
    let path = fields.at("environment");
    let entries: Vec<(String, Option<Value>)> = match environment {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| (key.clone(), (!value.is_null()).then(|| value.clone())))
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(scalar)
            .map(|line| match line.split_once('=') {
                Some((key, value)) => (key.to_string(), Some(Value::String(value.to_string()))),
                None => (line, None),
            })
            .collect(),
        _ => Vec::new(),
    };
    for (key, value) in entries {
        let at = format!("{path}.{key}");
        let value = match value {
            Some(value) => reader.template(&value, &at).unwrap_or_default(),
            // `- NAME` alone passes the value from where Compose runs.
            None => {
                let variable = var_name(&key);
                reader
                    .report
                    .variable(&variable, None, looks_secret(&key), &at);
                reader.report.note(
                    &at,
                    format!(
                        "passed through from the shell running Compose: now the variable {variable}"
                    ),
                );
                var_ref(&variable)
            }
        };
        let secret = looks_secret(&key) && value.contains("vars.");
        if secret && !job.secret_env.contains(&key) {
            job.secret_env.push(key.clone());
        }
        job.env.insert(key, value);
    }
}

/// `KEY=VALUE` lines of an env file, as Compose reads them.
pub fn dotenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// Compose secrets are files under `/run/secrets/`; coding-job has secret variables. A
/// `KEY_FILE: /run/secrets/NAME` pair becomes `KEY: {{ vars.NAME }}` (the convention of the
/// official images); other secrets are given as an environment variable, and the report says so.
fn secrets(job: &mut Job, fields: &mut Fields, file: &FileContext, reader: &mut Reader) {
    let Some(Value::Array(secrets)) = fields.take("secrets") else {
        return;
    };
    let path = fields.at("secrets");
    for (index, secret) in secrets.iter().enumerate() {
        let at = item(&path, index);
        let (source, target) = match secret {
            Value::Object(long) => (
                long.get("source").and_then(scalar).unwrap_or_default(),
                long.get("target").and_then(scalar),
            ),
            other => (scalar(other).unwrap_or_default(), None),
        };
        let variable = var_name(&source);
        let file_path = match target {
            Some(target) if target.starts_with('/') => target,
            Some(target) => format!("/run/secrets/{target}"),
            None => format!("/run/secrets/{source}"),
        };
        let from = file
            .secrets
            .and_then(|secrets| secrets.get(&source))
            .map(|definition| {
                let source = definition
                    .get("file")
                    .or_else(|| definition.get("environment"))
                    .map(shown)
                    .unwrap_or_default();
                format!(" (Compose read it from {source})")
            })
            .unwrap_or_default();
        reader.report.variable(&variable, None, true, &at);
        reader.report.mark_secret(&variable);
        let file_key = job
            .env
            .iter()
            .find(|(key, value)| key.ends_with("_FILE") && **value == file_path)
            .map(|(key, _)| key.clone());
        let key = match file_key {
            Some(file_key) => {
                job.env.remove(&file_key);
                let key = file_key.trim_end_matches("_FILE").to_string();
                reader.report.note(
                    &at,
                    format!("secret {source}{from}: {file_key}={file_path} became {key} set from the secret variable {variable}"),
                );
                key
            }
            None => {
                let key = variable.to_ascii_uppercase();
                reader.report.note(
                    &at,
                    format!("secret {source}{from}: coding-job has no secret files; the container gets it as the environment variable {key} instead of the file {file_path}"),
                );
                key
            }
        };
        job.env.insert(key.clone(), var_ref(&variable));
        if !job.secret_env.contains(&key) {
            job.secret_env.push(key);
        }
    }
}

fn depends_on(job: &mut Job, fields: &mut Fields, file: &FileContext, reader: &mut Reader) {
    let Some(depends_on) = fields.take("depends_on") else {
        return;
    };
    let path = fields.at("depends_on");
    let entries: Vec<(String, Option<&Value>)> = match depends_on {
        Value::Array(items) => items
            .iter()
            .filter_map(scalar)
            .map(|name| (name, None))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(name, condition)| (name.clone(), Some(condition)))
            .collect(),
        _ => Vec::new(),
    };
    for (name, detail) in entries {
        let at = format!("{path}.{name}");
        if !reader.targets.contains_key(&name) {
            reader.report.left(
                &at,
                name,
                "not another service of this file (Compose refuses such a file)",
            );
            continue;
        }
        job.depends_on.push((file.dependency_names)(&name));
        let Some(detail) = detail else { continue };
        let condition = detail.get("condition").and_then(Value::as_str);
        match condition {
            Some("service_healthy") | None => {}
            Some("service_started") => reader.report.note(
                &at,
                "service_started: coding-job waits until the dependency is running and its check (if any) passes",
            ),
            Some("service_completed_successfully") => reader.report.note(
                &at,
                "service_completed_successfully: coding-job has no run-to-completion jobs; it waits until the dependency is running (a one-shot job exits, and is restarted unless on_failure: keep)",
            ),
            Some(other) => reader.report.left(&at, other, "an unknown condition"),
        }
        for key in ["restart", "required"] {
            if let Some(value) = detail.get(key) {
                reader.report.left(
                    format!("{at}.{key}"),
                    shown(value),
                    "coding-job always requires its dependencies and does not restart dependents",
                );
            }
        }
    }
}

fn restart(job: &mut Job, fields: &mut Fields, reader: &mut Reader) {
    let at = fields.at("restart");
    let Some(policy) = fields
        .take("restart")
        .and_then(|value| reader.plain(value, &at))
    else {
        return;
    };
    match policy.as_str() {
        "no" | "false" => {
            job.on_failure = Some("keep".into());
            reader.report.note(
                fields.at("restart"),
                "restart: no became on_failure: keep (a failed container is left for inspection)",
            );
        }
        "always" | "unless-stopped" => {}
        other if other.starts_with("on-failure") => {}
        other => reader
            .report
            .left(fields.at("restart"), other, "an unknown restart policy"),
    }
}

/// Settings with a Docker Engine API field of their own.
fn docker_fields(job: &mut Job, fields: &mut Fields, reader: &mut Reader) {
    let config = &mut job.docker_config;
    for (key, field) in [
        ("user", "User"),
        ("working_dir", "WorkingDir"),
        ("stop_signal", "StopSignal"),
    ] {
        if let Some(value) = fields.take(key)
            && let Some(text) = reader.template(value, &fields.at(key))
        {
            config.docker_config.insert(field.into(), json!(text));
        }
    }
    for (key, field) in [
        ("cap_add", "CapAdd"),
        ("cap_drop", "CapDrop"),
        ("dns", "Dns"),
        ("dns_search", "DnsSearch"),
        ("security_opt", "SecurityOpt"),
        ("group_add", "GroupAdd"),
    ] {
        if let Some(value) = fields.take(key) {
            let items = crate::text::scalars(value);
            config.docker_hostconfig.insert(field.into(), json!(items));
        }
    }
    for (key, field) in [
        ("privileged", "Privileged"),
        ("read_only", "ReadonlyRootfs"),
    ] {
        if let Some(flag) = fields.take(key).and_then(Value::as_bool) {
            config.docker_hostconfig.insert(field.into(), json!(flag));
        }
    }
    if let Some(init) = fields.take("init").and_then(Value::as_bool) {
        job.init = (!init).then_some(false);
    }
    if let Some(hosts) = fields.take("extra_hosts") {
        let entries: Vec<String> = match hosts {
            Value::Array(items) => items
                .iter()
                .filter_map(scalar)
                .map(|entry| entry.replacen('=', ":", 1))
                .collect(),
            Value::Object(map) => map
                .iter()
                .map(|(host, address)| format!("{host}:{}", scalar(address).unwrap_or_default()))
                .collect(),
            _ => Vec::new(),
        };
        job.docker_config
            .docker_hostconfig
            .insert("ExtraHosts".into(), json!(entries));
    }
    if let Some(size) = fields.take("shm_size") {
        let at = fields.at("shm_size");
        if let Some(bytes) = reader
            .plain(size, &at)
            .and_then(|text| cj_spec::parse_memory(&text))
        {
            job.docker_config
                .docker_hostconfig
                .insert("ShmSize".into(), json!(bytes));
        }
    }
    if let Some(grace) = fields.take("stop_grace_period").and_then(scalar)
        && let Some(ms) = cj_spec::parse_duration_ms(&grace)
    {
        job.docker_config
            .docker_config
            .insert("StopTimeout".into(), json!(ms.div_ceil(1000)));
    }
    if let Some(sysctls) = fields.take("sysctls") {
        let map: serde_json::Map<String, Value> = match sysctls {
            Value::Object(map) => map
                .iter()
                .map(|(key, value)| (key.clone(), json!(scalar(value).unwrap_or_default())))
                .collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(scalar)
                .filter_map(|line| {
                    let (key, value) = line.split_once('=')?;
                    Some((key.to_string(), json!(value)))
                })
                .collect(),
            _ => serde_json::Map::new(),
        };
        job.docker_config
            .docker_hostconfig
            .insert("Sysctls".into(), Value::Object(map));
    }
    if let Some(Value::Object(ulimits)) = fields.take("ulimits") {
        let list: Vec<Value> = ulimits
            .iter()
            .map(|(name, limit)| match limit {
                Value::Object(range) => {
                    json!({"Name": name, "Soft": range.get("soft"), "Hard": range.get("hard")})
                }
                single => json!({"Name": name, "Soft": single, "Hard": single}),
            })
            .collect();
        job.docker_config
            .docker_hostconfig
            .insert("Ulimits".into(), json!(list));
    }
}

/// Docker labels are not part of the config; a Traefik router rule says the service was
/// served by host name, which coding-job's router does by `route:`.
fn labels(job: &mut Job, fields: &mut Fields, reader: &mut Reader) {
    let Some(labels) = fields.take("labels") else {
        return;
    };
    let path = fields.at("labels");
    let texts: Vec<String> = match labels {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| format!("{key}={}", scalar(value).unwrap_or_default()))
            .collect(),
        _ => Vec::new(),
    };
    let routed = texts
        .iter()
        .find(|label| label.starts_with("traefik.http.routers.") && label.contains(".rule="));
    if let Some(rule) = routed {
        job.route = Some(job.name.clone());
        reader.report.note(
            &path,
            format!(
                "{rule}: now `route: {}`, served by coding-job's router at {}.ENV.DOMAIN",
                job.name, job.name
            ),
        );
    }
    reader.report.left(
        path,
        shown(labels),
        "coding-job sets its own container labels; Docker labels are not carried",
    );
}
