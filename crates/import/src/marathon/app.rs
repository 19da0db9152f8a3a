//! One Marathon app as one job: what runs (container, command, environment), on which port,
//! with what resources, where, how it is checked and rolled out; every other key is reported.

use cj_spec::limits::{MAX_CPUS, MAX_MEMORY_BYTES, MIN_CPUS, MIN_MEMORY_BYTES};
use serde_json::{Map, Value};

use super::{
    AppSite, Context, absolute, bounds, checks, container, list, placement, ports, variables,
};
use crate::fields::{Fields, item, join};
use crate::service_file::{Job, Resources};
use crate::text::{self, literal};

/// An app as a job, with the ids its `dependencies` name (absolute), to resolve once every app
/// of the file is known.
pub(super) struct Converted {
    pub job: Job,
    pub dependencies: Vec<(String, String)>,
}

pub(super) fn job(
    context: &mut Context,
    site: &AppSite,
    group_id: &str,
    service: &str,
) -> Converted {
    let mut fields = Fields::new(site.path.clone(), site.value);
    fields.take("id");
    let mut job = Job {
        name: site.job.clone(),
        ..Job::default()
    };
    let container = container::read(context, &mut fields, &mut job);
    let shell = match fields.take("cmd") {
        Some(Value::String(line)) => Some(line.as_str()),
        None | Some(Value::Null) => None,
        Some(other) => {
            let why = "expected a command line (a string), run with sh -c";
            context.left(fields.at("cmd"), text::shown(other), why);
            None
        }
    };
    let wants = ports::Wants {
        command: shell.is_some_and(variables::mentions_port),
        checks: checks::use_task_port(site.value),
    };
    let ports = ports::read(context, &mut fields, &container, wants, &mut job);
    job.port = ports.job_port;
    env(context, &mut fields, &mut job);
    let args = fields.take("args");
    command(
        context,
        &fields,
        shell,
        args,
        &ports,
        &mut job,
        container.image,
    );
    if job.port == Some(0) && !wants.command && !job.env.contains_key("PORT0") {
        // Marathon set $PORT0 and $PORT; coding-job sets $PORT for an allocated port.
        job.env.insert("PORT0".into(), "{{ port }}".into());
        let note = "Marathon gave the task its port as $PORT0 (and $PORT); coding-job sets $PORT, and env PORT0 is set to {{ port }} for an app that reads $PORT0";
        context.note(fields.at("env"), note);
    }
    if !container.image && site.value.pointer("/container/docker/image").is_none() {
        let at = match site.value.get("container") {
            Some(_) => fields.at("container"),
            None if shell.is_some() => fields.at("cmd"),
            None => fields.at("id"),
        };
        let note = "the app names no Docker image: Marathon ran it on the Mesos agent itself, coding-job runs every job in a container: set the job's `image:` to one that holds what the command needs";
        context.note(at, note);
    }
    checks::carry(context, &mut fields, &ports, &mut job);
    resources(context, &mut fields, &mut job);
    placement::place(context, &mut fields, &mut job);
    placement::update(context, &mut fields, &mut job);
    labels(context, &mut fields, &mut job, service);
    if let Some(user) = fields.text("user") {
        let user = Value::String(literal(&user));
        job.docker_config.docker_config.insert("User".into(), user);
    }
    if fields.take("tty") == Some(&Value::Bool(true)) {
        let tty = Value::Bool(true);
        job.docker_config.docker_config.insert("Tty".into(), tty);
    }
    let dependencies = dependencies(context, &mut fields, group_id);
    drop_defaults(&mut fields);
    fields.leave_rest(context.report, why_not_carried);
    bounds::fit_job(context, &site.path, &mut job);
    Converted { job, dependencies }
}

/// `env`: strings as written, `{"secret": NAME}` as a secret variable of the environment.
fn env(context: &mut Context, fields: &mut Fields, job: &mut Job) {
    let secrets = fields.take("secrets").and_then(Value::as_object);
    let secrets_path = fields.at("secrets");
    let mut used_references = Vec::new();
    let env_path = fields.at("env");
    match fields.take("env") {
        Some(Value::Object(env)) => {
            for (key, value) in env {
                let path = join(&env_path, key);
                if let Some(reference) = secret_reference(value) {
                    let variable = secret_variable(reference, secrets);
                    context.report.variable(&variable, None, true, &path);
                    job.env.insert(key.clone(), text::var_ref(&variable));
                    job.secret_env.push(key.clone());
                    used_references.push(reference.to_string());
                    continue;
                }
                let Some(value) = text::scalar(value) else {
                    let why = "expected a string, or {\"secret\": NAME} for a secret";
                    context.left(path, text::shown(value), why);
                    continue;
                };
                if !cj_spec::is_valid_env_name(key) {
                    let why = "not a name a process environment can hold (no '=', spaces or control characters)";
                    context.left(path, value, why);
                    continue;
                }
                if text::looks_secret(key) && !value.is_empty() {
                    job.secret_env.push(key.clone());
                    let note = "the value looks secret: it is kept in the file, masked with secret_env; better, move it to a secret variable (`coding-job env vars ENV --secret NAME`) and write {{ vars.NAME }}";
                    context.note(&path, note);
                }
                job.env.insert(key.clone(), literal(&value));
            }
        }
        None | Some(Value::Null) => {}
        Some(other) => context.left(
            env_path,
            text::shown(other),
            "expected a mapping of names to values",
        ),
    }
    for (name, secret) in secrets.into_iter().flatten() {
        let source = secret.get("source").and_then(Value::as_str);
        let used = |reference: &String| reference == name || Some(reference.as_str()) == source;
        if !used_references.iter().any(used) {
            let what = secret
                .get("source")
                .map_or_else(|| text::shown(secret), text::shown);
            let why = "no env variable of the app uses it: coding-job passes secrets as environment variables (secret variables of the environment), not as files";
            context.left(join(&secrets_path, name), what, why);
        }
    }
}

fn secret_reference(value: &Value) -> Option<&str> {
    let map = value.as_object()?;
    (map.len() == 1)
        .then(|| map.get("secret")?.as_str())
        .flatten()
}

/// The variable a secret is set in: named after its source in Marathon's secret store
/// (`/db/password` is `db_password`), so apps that share a secret share the variable.
fn secret_variable(reference: &str, secrets: Option<&Map<String, Value>>) -> String {
    let source = secrets
        .and_then(|secrets| secrets.get(reference))
        .and_then(|secret| secret.get("source"))
        .and_then(Value::as_str)
        .unwrap_or(reference);
    text::var_name(source.trim_matches('/'))
}

/// `cmd` (a shell line) or `args` (an argv for the image's entrypoint).
fn command(
    context: &mut Context,
    fields: &Fields,
    shell: Option<&str>,
    args: Option<&Value>,
    ports: &ports::Ports,
    job: &mut Job,
    has_image: bool,
) {
    let args_path = fields.at("args");
    let args = args.filter(|args| !text::is_unset(args));
    match shell.filter(|line| !line.trim().is_empty()) {
        Some(line) => {
            if let Some(args) = args {
                let why = "Marathon runs cmd or args, never both: cmd was carried";
                context.left(args_path, text::shown(args), why);
            }
            let cmd_path = fields.at("cmd");
            let line = ports.shell(context, &cmd_path, line, &mut job.env);
            job.command = Some(vec!["sh".into(), "-c".into(), literal(&line)]);
            if has_image {
                // Mesos ran `cmd` with /bin/sh as the container's entrypoint (MESOS-1770):
                // `[""]` leaves the image's own entrypoint out, as it was.
                let reset = Value::Array(vec![Value::String(String::new())]);
                job.docker_config
                    .docker_config
                    .insert("Entrypoint".into(), reset);
                context.note_once(
                    "entrypoint",
                    &cmd_path,
                    "cmd runs as `sh -c CMD` in place of the image's entrypoint, as Mesos ran it; Entrypoint [\"\"] (docker_config) keeps the image's entrypoint out",
                );
            }
        }
        None => match args.map(|args| (args, text::argv(args))) {
            Some((Value::Array(_), Some(argv))) if !argv.is_empty() => {
                job.command = Some(argv.iter().map(|arg| literal(arg)).collect());
            }
            Some((args, _)) => {
                context.left(args_path, text::shown(args), "expected a list of strings");
            }
            None => {}
        },
    }
}

/// `cpus` and `mem` (MiB) as `resources`; `disk` and `gpus` have no counterpart.
fn resources(context: &mut Context, fields: &mut Fields, job: &mut Job) {
    let mut resources = Resources::default();
    let cpus_path = fields.at("cpus");
    if let Some(cpus) = fields.take("cpus").and_then(Value::as_f64) {
        if cpus < MIN_CPUS {
            let why = "below the 0.01 CPU coding-job's cpu limit starts at: the task runs without a CPU limit";
            context.left(&cpus_path, cpus.to_string(), why);
        } else {
            if cpus > MAX_CPUS {
                context.note(
                    &cpus_path,
                    format!("{cpus} CPUs is more than the 1024 the config accepts: cpu 1024"),
                );
            }
            resources.cpu = Some(cpus.min(MAX_CPUS));
            context.note_once(
                "cpus",
                &cpus_path,
                "Marathon's cpus were a share of the host (Docker CPU shares); coding-job's cpu is a limit the task cannot exceed (Docker NanoCpus), and is reserved on the host it is placed on",
            );
        }
    }
    let mem_path = fields.at("mem");
    if let Some(mem) = fields.take("mem").and_then(Value::as_f64) {
        const MIB: f64 = 1024.0 * 1024.0;
        let (least, most) = (MIN_MEMORY_BYTES as f64 / MIB, MAX_MEMORY_BYTES as f64 / MIB);
        if mem <= 0.0 {
            context.left(
                &mem_path,
                mem.to_string(),
                "no memory: the task runs without a memory limit",
            );
        } else {
            let clamped = mem.clamp(least, most);
            if clamped != mem {
                let bound = text::memory((clamped * MIB) as u64);
                let note = format!(
                    "{mem} MiB is outside the 6 MiB to 16 TiB the config accepts: memory {bound}"
                );
                context.note(&mem_path, note);
            }
            resources.memory = Some(text::memory((clamped * MIB).round() as u64));
        }
    }
    for (key, why) in [
        (
            "disk",
            "coding-job neither reserves nor limits the disk space of a task",
        ),
        (
            "gpus",
            "coding-job does not place tasks by GPU: pass devices with docker_config.docker_hostconfig.DeviceRequests",
        ),
    ] {
        let path = fields.at(key);
        match fields.take(key) {
            Some(value) if value.as_f64().is_some_and(|amount| amount > 0.0) => {
                context.left(path, text::shown(value), why);
            }
            Some(value) if value.as_f64().is_none() => {
                context.left(path, text::shown(value), why);
            }
            _ => {}
        }
    }
    if resources.cpu.is_some() || resources.memory.is_some() {
        job.resources = Some(resources);
    }
}

/// `labels`: Marathon's metadata for its tools. marathon-lb's `HAPROXY_0_VHOST` becomes a route.
fn labels(context: &mut Context, fields: &mut Fields, job: &mut Job, service: &str) {
    let labels_path = fields.at("labels");
    let labels = match fields.take("labels") {
        Some(Value::Object(labels)) => labels,
        None | Some(Value::Null) => return,
        Some(other) => {
            context.left(
                labels_path,
                text::shown(other),
                "expected a mapping of label names to values",
            );
            return;
        }
    };
    for (key, value) in labels {
        let path = join(&labels_path, key);
        let shown = text::shown(value);
        if key == "HAPROXY_0_VHOST" && job.port.is_some() {
            let route = context.route(service, &job.name);
            let note = format!(
                "marathon-lb served the app as {shown}; coding-job's router serves it as {route}.ENV.DOMAIN (`route: {route}`): point {shown} at the router (a DNS CNAME) if it must keep answering"
            );
            job.route = Some(route);
            context.note(path, note);
        } else if key == "HAPROXY_0_VHOST" {
            let why = "the app declares no port for the router to reach: give the job a `port` and `route`";
            context.left(path, shown, why);
        } else if key.starts_with("HAPROXY_") {
            let why = "a marathon-lb setting: coding-job's router serves a job by name under the environment's wildcard domain (`route:`), with no per-app HAProxy settings";
            context.left(path, shown, why);
        } else {
            let why = "Marathon app labels are metadata for Marathon's tools; a job has no labels (Docker labels for its containers go under docker_config.docker_config.Labels)";
            context.left(path, shown, why);
        }
    }
}

/// `dependencies`, made absolute against the app's group.
fn dependencies(
    context: &mut Context,
    fields: &mut Fields,
    group_id: &str,
) -> Vec<(String, String)> {
    let path = fields.at("dependencies");
    let mut found = Vec::new();
    for (index, dependency) in list(context, fields, "dependencies").iter().enumerate() {
        let dependency_path = item(&path, index);
        match dependency.as_str() {
            Some(id) => found.push((dependency_path, absolute(group_id, id))),
            None => context.left(
                dependency_path,
                text::shown(dependency),
                "expected an app or group id",
            ),
        }
    }
    found
}

/// Takes, without a word, the keys that say nothing the user chose: Marathon's defaults and
/// empty values, as a GET answer writes them, and the app's version stamps.
fn drop_defaults(fields: &mut Fields) {
    for (key, value) in fields.rest() {
        if is_default(key, value) || text::is_unset(value) {
            fields.take(key);
        }
    }
}

/// Whether `value` is Marathon's default for `key` (or a version stamp, which is state).
fn is_default(key: &str, value: &Value) -> bool {
    let number = value.as_f64();
    match key {
        "version" | "versionInfo" => true,
        "backoffSeconds" => number == Some(1.0),
        "backoffFactor" => number == Some(1.15),
        "maxLaunchDelaySeconds" => number == Some(3600.0) || number == Some(300.0),
        "killSelection" => value == "YOUNGEST_FIRST",
        "acceptedResourceRoles" => value == &Value::from(vec!["*"]),
        "unreachableStrategy" => [(0, 0), (300, 600)].iter().any(|(inactive, expunge)| {
            value.get("inactiveAfterSeconds") == Some(&Value::from(*inactive))
                && value.get("expungeAfterSeconds") == Some(&Value::from(*expunge))
        }),
        _ => false,
    }
}

fn why_not_carried(key: &str) -> Option<&'static str> {
    Some(match key {
        "executor" => {
            "a custom Mesos executor has no counterpart: coding-job's agent runs the containers itself"
        }
        "uris" | "fetch" | "storeUrls" => {
            "coding-job downloads nothing into a task: put the files in the image, or unpack a tarball URL into a volume (`volumes: [{seed: URL}]`)"
        }
        "acceptedResourceRoles" | "role" => {
            "Mesos roles have no counterpart: give the hosts labels (`agent --label public=true`) and the job `constraints:`"
        }
        "backoffSeconds" | "backoffFactor" | "maxLaunchDelaySeconds" => {
            "coding-job restarts a failed container at once, then with a pause doubling up to 30 s"
        }
        "ipAddress" => {
            "an IP address per task has no counterpart: coding-job runs tasks on their host's network"
        }
        "residency" => {
            "coding-job's volumes stay on the host of their task; a task placed on another host starts with an empty one (pin it with `hosts:` to keep its data)"
        }
        "taskKillGracePeriodSeconds" => {
            "coding-job's agents give every container 10 s between SIGTERM and SIGKILL"
        }
        "unreachableStrategy" => {
            "coding-job moves a lost host's unpinned tasks after the server's --host-down-after"
        }
        "killSelection" => "coding-job chooses which tasks a scale-down stops",
        "check" => {
            "Mesos checks only report a status; `check:` is the job's health check (from healthChecks)"
        }
        "secrets" => "expected a mapping of secret names to {\"source\": ...}",
        "tasksStaged"
        | "tasksRunning"
        | "tasksHealthy"
        | "tasksUnhealthy"
        | "deployments"
        | "tasks"
        | "lastTaskFailure"
        | "readinessCheckResults"
        | "taskStats"
        | "overdue" => "state of the running app in Marathon's answer, not configuration",
        _ => return None,
    })
}
