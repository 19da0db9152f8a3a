//! `servers:` the app's roles. Each role is a job running the app's image, with one task on each
//! of the role's hosts (`hosts:`), its env merged over the top level's, and the proxy (or
//! Traefik) in front of the roles that ran one.

use serde_json::Value;

use super::docker::{self, stop_timeout};
use super::env::{EnvSection, TaggedHost};
use super::proxy::{Healthcheck, Proxy, update};
use super::{App, BootLimit, Reader, merged};
use crate::fields::{Fields, item, join};
use crate::service_file::Job;
use crate::text::{argv, duration, name, scalar};

/// A role as accessories refer to it: its Kamal name and hosts.
pub struct Role {
    pub name: String,
    pub hosts: Vec<Host>,
}

pub struct Host {
    pub name: String,
    /// Kamal 2's host tags (`- vm2: [tag1, tag2]`), for `env.tags`.
    pub tags: Vec<String>,
}

/// The jobs of the app's roles, and the roles for the accessories to refer to.
pub fn read(servers: &Value, app: &App, reader: &mut Reader) -> (Vec<Job>, Vec<Role>) {
    let mut jobs = Vec::new();
    let mut roles = Vec::new();
    match servers {
        // A plain list of hosts: the one role, `web`.
        Value::Array(_) => {
            let hosts = hosts(servers, "servers", reader);
            jobs.push(role_job("web", &hosts, None, "servers", app, reader));
            roles.push(Role {
                name: "web".into(),
                hosts,
            });
        }
        Value::Object(map) => {
            for (role, settings) in map {
                let path = join("servers", &reader.erb.restore(role));
                let Some(role) = reader.plain(role, &path, "role name") else {
                    continue;
                };
                let (hosts, settings) = match settings {
                    Value::Array(_) => (hosts(settings, &path, reader), None),
                    Value::Object(map) => {
                        let written = map.get("hosts").unwrap_or(&Value::Null);
                        (
                            hosts(written, &join(&path, "hosts"), reader),
                            Some(settings),
                        )
                    }
                    Value::Null => (Vec::new(), None),
                    other => {
                        reader.left(&path, other, "expected a list of hosts or a mapping");
                        continue;
                    }
                };
                jobs.push(role_job(&role, &hosts, settings, &path, app, reader));
                roles.push(Role { name: role, hosts });
            }
        }
        other => reader.left(
            "servers",
            other,
            "expected a list of hosts or a mapping of roles",
        ),
    }
    (jobs, roles)
}

/// The hosts written at `path`: names, or `{name: tags}` mappings.
pub fn hosts(value: &Value, path: &str, reader: &mut Reader) -> Vec<Host> {
    let mut hosts: Vec<Host> = Vec::new();
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    for (index, written) in items.iter().enumerate() {
        let host_path = match value.is_array() {
            true => item(path, index),
            false => path.to_string(),
        };
        let (host, tags) = match written {
            Value::Object(map) if map.len() == 1 => {
                let (host, tags) = map.iter().next().expect("one entry");
                let tags = match tags {
                    Value::Array(tags) => tags.iter().filter_map(scalar).collect(),
                    other => scalar(other).into_iter().collect(),
                };
                (host.clone(), tags)
            }
            other => match scalar(other) {
                Some(host) => (host, Vec::new()),
                None => {
                    reader.left(&host_path, other, "expected a host name");
                    continue;
                }
            },
        };
        let Some(host) = reader.plain(&host, &host_path, "host") else {
            continue;
        };
        if !cj_spec::is_valid_name(&host) {
            let why = format!("not a host name coding-job accepts: {}", cj_spec::NAME_RULE);
            reader.left(&host_path, &Value::String(host), why);
            continue;
        }
        if reader.first("host names") {
            reader.note(
                path,
                "Kamal's hosts are SSH addresses; coding-job's are agent names: start each host's agent with `coding-job agent --name HOST` as written here, or rename them",
            );
        }
        if !hosts.iter().any(|known| known.name == host) {
            hosts.push(Host { name: host, tags });
        }
    }
    hosts
}

/// The job of one role.
fn role_job(
    role: &str,
    hosts: &[Host],
    settings: Option<&Value>,
    path: &str,
    app: &App,
    reader: &mut Reader,
) -> Job {
    let mut job = Job {
        name: reader.job_name(role),
        image: app.image.clone(),
        hosts: hosts.iter().map(|host| host.name.clone()).collect(),
        ..Job::default()
    };
    if hosts.is_empty() {
        reader.note(
            path,
            "no host is written for this role (or each came from ERB): the server places one task of the job on a host of its choosing",
        );
    }
    let empty = Value::Null;
    let mut fields = Fields::new(path, settings.unwrap_or(&empty));
    fields.take("hosts");
    if let Some(cmd) = fields.take("cmd") {
        job.command = command(cmd, &fields.at("cmd"), reader);
    }
    let role_env = match fields.take("env") {
        Some(env) => EnvSection::read(env, &fields.at("env"), false, reader),
        None => EnvSection::default(),
    };
    let tagged: Vec<TaggedHost> = hosts
        .iter()
        .map(|host| TaggedHost {
            name: &host.name,
            tags: &host.tags,
        })
        .collect();
    app.env.merged(&role_env).apply(&mut job, &tagged, reader);
    if let Some(labels) = app.labels {
        docker::labels(&mut job, labels, "labels", reader);
    }
    if let Some(labels) = fields.take("labels") {
        docker::labels(&mut job, labels, &fields.at("labels"), reader);
    }
    if let Some(options) = fields.take("options") {
        docker::options(&mut job, options, &fields.at("options"), reader);
    }
    if let Some(volumes) = app.volumes {
        docker::binds(&mut job, volumes, "volumes", reader);
    }
    let role_logging = fields.take("logging");
    if let Some(logging) = merged(app.logging, role_logging) {
        let at = match role_logging {
            Some(_) => fields.at("logging"),
            None => "logging".into(),
        };
        docker::logging(&mut job, &logging, &at, reader);
    }
    let primary = name(role) == app.primary_role;
    if app.kamal1 {
        let routed = match fields.take("traefik") {
            Some(Value::Bool(traefik)) => *traefik,
            Some(other) => {
                reader.left(&fields.at("traefik"), other, "expected true or false");
                primary
            }
            None => primary,
        };
        let role_check = fields
            .take("healthcheck")
            .map(|value| Healthcheck::read(value, &fields.at("healthcheck"), reader))
            .unwrap_or_default();
        let check = match (routed, &app.healthcheck) {
            (true, Some(top)) => top.under(&role_check),
            _ => role_check,
        };
        check.apply(&mut job, routed, path, reader);
    } else {
        let role_proxy = fields.take("proxy");
        let running = match role_proxy {
            Some(Value::Bool(running)) => *running,
            Some(Value::Object(_)) => true,
            _ => primary,
        };
        if running {
            let base = app.proxy.clone().unwrap_or_default();
            let own = role_proxy
                .filter(|value| value.is_object())
                .and_then(|value| Proxy::read(value, &fields.at("proxy"), reader));
            let mut proxy = match own {
                Some(own) => base.under(&own),
                None => base,
            };
            proxy.locate(path);
            proxy.apply(&mut job, reader);
        }
    }
    timing(&mut job, app, hosts.len(), reader);
    reader.leave_rest(fields, |key| match key {
        "asset_path" => Some(
            "asset bridging between versions is done by Kamal on the host: serve fingerprinted assets from a CDN or keep the old ones in the image",
        ),
        _ => None,
    });
    job
}

/// `cmd:` the command, split like the host's shell splits it.
pub fn command(value: &Value, path: &str, reader: &mut Reader) -> Option<Vec<String>> {
    let Some(arguments) = argv(value).filter(|arguments| !arguments.is_empty()) else {
        reader.left(
            path,
            value,
            "expected a command line or a list of arguments",
        );
        return None;
    };
    Some(
        arguments
            .iter()
            .map(|argument| reader.template(argument, path))
            .collect(),
    )
}

/// Kamal's deploy timing, as the job's rollout settings.
fn timing(job: &mut Job, app: &App, host_count: usize, reader: &mut Reader) {
    let timing = &app.timing;
    if let Some(ms) = timing.deploy_timeout {
        if (1000..=24 * 3600 * 1000).contains(&ms) {
            update(job).healthy_deadline = Some(duration(ms));
            reader.note(
                "deploy_timeout",
                "how long Kamal waits for a new container to be ready: here a rollout batch must be healthy within it (update.healthy_deadline)",
            );
        } else {
            let why = "expected 1 second to 24 hours for a rollout batch to become healthy";
            reader.left("deploy_timeout", &Value::from(ms / 1000), why);
        }
    }
    let mut min_healthy = None;
    if let Some(ms) = timing.readiness_delay.filter(|ms| *ms > 0)
        && job.check.is_none()
    {
        min_healthy = Some(ms);
        reader.note(
            "readiness_delay",
            "Kamal waits this long after starting a container that has no check; here a rollout batch of a job without a check stays up that long before the next one starts (update.min_healthy_time)",
        );
    }
    if let Some(ms) = timing.boot_wait.filter(|ms| *ms > 0) {
        min_healthy = Some(min_healthy.map_or(ms, |other: u64| other.max(ms)));
        reader.note(
            "boot.wait",
            "the pause between groups of hosts: here each rollout batch stays healthy that long before the next one starts (update.min_healthy_time)",
        );
    }
    if let Some(ms) = min_healthy {
        update(job).min_healthy_time = Some(duration(ms.min(3600 * 1000)));
    }
    if let Some(limit) = timing.boot_limit
        && host_count > 0
    {
        let size = match limit {
            BootLimit::Hosts(hosts) => hosts as usize,
            BootLimit::Percent(percent) => (host_count * percent as usize).div_ceil(100),
        };
        update(job).batch_size = Some(size.clamp(1, 1000) as u32);
        reader.note(
            "boot.limit",
            "how many hosts Kamal boots at a time: here the rollout's batch size (update.batch_size)",
        );
    }
    if let Some(ms) = timing.drain_timeout {
        if job.route.is_some() && ms <= 600_000 {
            job.drain_timeout = Some(duration(ms));
        } else if job.route.is_none() {
            // Kamal stops a container without a proxy with this timeout.
            stop_timeout(job, ms.div_ceil(1000));
        } else {
            let why =
                "expected at most 10 minutes: a routed task is held that long on every rollout";
            reader.left("drain_timeout", &Value::from(ms / 1000), why);
        }
    }
    if let Some(ms) = timing.stop_wait_time {
        stop_timeout(job, ms.div_ceil(1000));
    }
}
