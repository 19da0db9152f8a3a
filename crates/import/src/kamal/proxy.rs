//! How a role is reached and checked: Kamal 2's `proxy` (kamal-proxy) and Kamal 1's Traefik
//! with its `healthcheck`, as the job's `route`, `port` and `check`.
//!
//! kamal-proxy and Traefik run on each host and serve the app under the host names the file
//! gives; coding-job's router serves a routed job at `JOB.ENV.DOMAIN` over its healthy tasks on
//! any host. With host networking the app listens on its own port on its host, so the port the
//! proxy forwarded to becomes the job's `port`.

use serde_json::Value;

use super::{Reader, duration_ms};
use crate::fields::Fields;
use crate::service_file::{Check, Job, Update};
use crate::text::{duration, scalar};

/// The port kamal-proxy forwards to unless `app_port` says otherwise.
const KAMAL2_APP_PORT: u16 = 80;
/// The port Kamal 1 checks unless `healthcheck.port` says otherwise.
const KAMAL1_APP_PORT: u16 = 3000;
/// The path both check unless told otherwise.
const DEFAULT_CHECK_PATH: &str = "/up";

/// A `proxy` section (Kamal 2): the top level's, a role's, or one merged over the other.
#[derive(Debug, Clone, Default)]
pub struct Proxy {
    /// Where it is written, for notes.
    path: String,
    /// Whether a section is written at all: without one the file may be for Kamal 1 too.
    written: bool,
    /// `host` or `hosts`, as written.
    hosts: Vec<String>,
    app_port: Option<u16>,
    ssl: Option<bool>,
    check_path: Option<String>,
    interval: Option<u64>,
    timeout: Option<u64>,
}

impl Proxy {
    /// Reads a `proxy` mapping at `path`.
    pub fn read(value: &Value, path: &str, reader: &mut Reader) -> Option<Proxy> {
        super::mapping(value, path, reader)?;
        let mut fields = Fields::new(path, value);
        let mut proxy = Proxy {
            path: path.to_string(),
            written: true,
            ..Proxy::default()
        };
        if let Some(host) = fields.text("host") {
            proxy.hosts.push(reader.erb.restore(&host));
        }
        if let Some(hosts) = fields.take("hosts") {
            let written = hosts.as_array().into_iter().flatten().filter_map(scalar);
            proxy
                .hosts
                .extend(written.map(|host| reader.erb.restore(&host)));
        }
        if let Some(port) = fields.take("app_port") {
            proxy.app_port = port_number(port, &fields.at("app_port"), reader);
        }
        proxy.ssl = fields.take("ssl").and_then(Value::as_bool);
        if let Some(healthcheck) = fields.take("healthcheck") {
            let mut check = Fields::new(fields.at("healthcheck"), healthcheck);
            if let Some(path) = check.text("path") {
                proxy.check_path = reader
                    .strict_template(&path, &check.at("path"), "check path")
                    .filter(|path| checked_path(path, &check.at("path"), reader));
            }
            proxy.interval = timing(&mut check, "interval", reader);
            proxy.timeout = timing(&mut check, "timeout", reader);
            reader.leave_rest(check, |_| None);
        }
        reader.leave_rest(fields, proxy_reason);
        Some(proxy)
    }

    /// `role`'s settings over these.
    pub fn under(&self, role: &Proxy) -> Proxy {
        Proxy {
            path: role.path.clone(),
            written: self.written || role.written,
            hosts: match role.hosts.is_empty() {
                true => self.hosts.clone(),
                false => role.hosts.clone(),
            },
            app_port: role.app_port.or(self.app_port),
            ssl: role.ssl.or(self.ssl),
            check_path: role.check_path.clone().or_else(|| self.check_path.clone()),
            interval: role.interval.or(self.interval),
            timeout: role.timeout.or(self.timeout),
        }
    }

    /// Places the notes of a proxy no section configures (Kamal 2 runs one for the primary role
    /// all the same) at the role.
    pub fn locate(&mut self, role_path: &str) {
        if self.path.is_empty() {
            self.path = role_path.to_string();
        }
    }

    /// Routes `job` as kamal-proxy served it: the route, the port and the check.
    pub fn apply(&self, job: &mut Job, reader: &mut Reader) {
        let at = self.path.as_str();
        job.route = Some(job.name.clone());
        let served = match (self.written, self.hosts.is_empty()) {
            (false, _) => format!(
                "Kamal's proxy (kamal-proxy; Traefik in Kamal 1) served this role on port 80 of its hosts; the router serves job {0} at {0}.ENV.DOMAIN (and {0}.DOMAIN in production)",
                job.name
            ),
            (true, true) => format!(
                "job {0} is routed: the router serves it at {0}.ENV.DOMAIN (and {0}.DOMAIN in production), where kamal-proxy took every request to its hosts",
                job.name
            ),
            (true, false) => format!(
                "job {0} is routed: the router serves it at {0}.ENV.DOMAIN (and {0}.DOMAIN in production), not at {1}: point {1} at the router",
                job.name,
                self.hosts.join(", ")
            ),
        };
        reader.note(at, served);
        job.port = Some(self.app_port.unwrap_or_else(|| {
            let other = match self.written {
                true => "",
                false => " (Kamal 1 checked port 3000)",
            };
            reader.note(
                at,
                format!(
                    "Kamal 2's proxy forwards to port {KAMAL2_APP_PORT} unless `app_port` says otherwise{other}; tasks use host networking, so the app is expected on port {KAMAL2_APP_PORT} of its host: change `port` if it listens elsewhere"
                ),
            );
            KAMAL2_APP_PORT
        }));
        if self.ssl == Some(true) {
            reader.note(
                at,
                "ssl: the router serves plain HTTP, so the certificate (Let's Encrypt) and the redirect to HTTPS are not carried; terminate TLS in front of the routers",
            );
        }
        let path = self.check_path.clone().unwrap_or_else(|| {
            reader.note(
                at,
                format!(
                    "Kamal checks GET {DEFAULT_CHECK_PATH} before it sends traffic to a new container; the job's check probes it too"
                ),
            );
            DEFAULT_CHECK_PATH.to_string()
        });
        job.check = Some(Check {
            http: Some(path),
            interval: self.interval.map(duration),
            timeout: self.timeout.map(duration),
            ..Check::default()
        });
    }
}

/// Why a key of `proxy` is not carried.
fn proxy_reason(key: &str) -> Option<&'static str> {
    Some(match key {
        "ssl_redirect" | "certificate_pem" | "private_key_pem" => {
            "the router serves plain HTTP: terminate TLS in front of the routers"
        }
        "run" => "how Kamal boots kamal-proxy itself: run `coding-job router` instead",
        "logging" => "the router logs every request itself (target coding_job::access)",
        "path_prefix" | "strip_path_prefix" => {
            "the router serves a job at its own host name, not under a path"
        }
        "response_timeout" | "buffering" | "forward_headers" => {
            "a kamal-proxy setting the router has no equivalent for"
        }
        _ => return None,
    })
}

/// A `healthcheck` section (Kamal 1): the top level's, a role's, or one merged over the other.
#[derive(Debug, Clone, Default)]
pub struct Healthcheck {
    path: String,
    /// A shell command (Docker's `--health-cmd`).
    cmd: Option<String>,
    http_path: Option<String>,
    port: Option<u16>,
    interval: Option<u64>,
    max_attempts: Option<u32>,
}

impl Healthcheck {
    pub fn read(value: &Value, path: &str, reader: &mut Reader) -> Healthcheck {
        let mut fields = Fields::new(path, value);
        let mut check = Healthcheck {
            path: path.to_string(),
            ..Healthcheck::default()
        };
        check.cmd = fields.text("cmd");
        if let Some(http_path) = fields.text("path") {
            check.http_path = reader
                .strict_template(&http_path, &fields.at("path"), "check path")
                .filter(|path| checked_path(path, &fields.at("path"), reader));
        }
        if let Some(port) = fields.take("port") {
            check.port = port_number(port, &fields.at("port"), reader);
        }
        check.interval = timing(&mut fields, "interval", reader);
        if let Some(attempts) = fields.take("max_attempts") {
            check.max_attempts = attempts
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=1000).contains(n));
            if check.max_attempts.is_none() {
                reader.left(
                    &fields.at("max_attempts"),
                    attempts,
                    "expected a number of attempts",
                );
            }
        }
        reader.leave_rest(fields, |key| match key {
            "cord" => Some(
                "the cord file let Traefik stop routing to an old container; the router takes a task out of its pool before it stops it (drain_timeout)",
            ),
            "log_lines" => Some("`coding-job logs TASK` shows a task's logs, also of stopped containers"),
            _ => None,
        });
        check
    }

    pub fn under(&self, role: &Healthcheck) -> Healthcheck {
        Healthcheck {
            path: match role.path.is_empty() {
                true => self.path.clone(),
                false => role.path.clone(),
            },
            cmd: role.cmd.clone().or_else(|| self.cmd.clone()),
            http_path: role.http_path.clone().or_else(|| self.http_path.clone()),
            port: role.port.or(self.port),
            interval: role.interval.or(self.interval),
            max_attempts: role.max_attempts.or(self.max_attempts),
        }
    }

    fn given(&self) -> bool {
        self.cmd.is_some() || self.http_path.is_some() || self.port.is_some()
    }

    /// Routes `job` as Traefik served it (when `routed`) and checks it as Kamal 1 did: with
    /// the command, or GET the path on the port.
    pub fn apply(&self, job: &mut Job, routed: bool, at: &str, reader: &mut Reader) {
        if routed {
            job.route = Some(job.name.clone());
            reader.note(
                at,
                format!(
                    "Traefik served this role on port 80 of its hosts; the router serves job {0} at {0}.ENV.DOMAIN (and {0}.DOMAIN in production)",
                    job.name
                ),
            );
        } else if !self.given() {
            return;
        }
        let at = match self.path.is_empty() {
            true => at,
            false => self.path.as_str(),
        };
        let check = self.check(job, at, reader);
        job.check = Some(check);
        if let Some(attempts) = self.max_attempts {
            // Kamal waits 1s, 2s, ... between attempts.
            let seconds = u64::from(attempts) * (u64::from(attempts) + 1) / 2;
            let deadline = seconds.clamp(1, 24 * 3600) * 1000;
            update(job).healthy_deadline = Some(duration(deadline));
            reader.note(
                &format!("{at}.max_attempts"),
                format!(
                    "Kamal polled the new container {attempts} times, waiting longer each time ({} in all); here a rollout batch must be healthy within that time (update.healthy_deadline)",
                    duration(deadline)
                ),
            );
        }
    }

    fn check(&self, job: &mut Job, at: &str, reader: &mut Reader) -> Check {
        let interval = self.interval.map(duration);
        if let Some(cmd) = &self.cmd {
            let path = format!("{at}.cmd");
            let command = reader.template(cmd, &path);
            reader.note(
                &path,
                "Docker ran the health command with a shell; here it is `sh -c COMMAND`",
            );
            return Check {
                exec: Some(vec!["sh".into(), "-c".into(), command]),
                interval,
                ..Check::default()
            };
        }
        job.port = Some(self.port.unwrap_or_else(|| {
            reader.note(
                at,
                format!(
                    "Kamal 1 checks the app on port {KAMAL1_APP_PORT} unless `healthcheck.port` says otherwise; tasks use host networking, so the app listens on port {KAMAL1_APP_PORT} of its host"
                ),
            );
            KAMAL1_APP_PORT
        }));
        let path = self.http_path.clone().unwrap_or_else(|| {
            reader.note(
                at,
                format!("Kamal 1 checks GET {DEFAULT_CHECK_PATH} unless `healthcheck.path` says otherwise; so does the job's check"),
            );
            DEFAULT_CHECK_PATH.to_string()
        });
        Check {
            http: Some(path),
            interval,
            ..Check::default()
        }
    }
}

pub fn update(job: &mut Job) -> &mut Update {
    job.update.get_or_insert_with(Update::default)
}

/// Kamal 1's `traefik` section: the proxy container's own settings, which the router replaces.
pub fn leave_traefik(value: &Value, reader: &mut Reader) {
    let why = "Traefik (Kamal 1's proxy) is replaced by the router: run `coding-job router` on port 80 of the hosts that take traffic";
    match value.as_object() {
        Some(_) => {
            let fields = Fields::new("traefik", value);
            reader.leave_rest(fields, |_| Some(why));
        }
        None => reader.left("traefik", value, why),
    }
}

/// A port number as written, or `None` (reported).
pub fn port_number(value: &Value, path: &str, reader: &mut Reader) -> Option<u16> {
    let text = scalar(value)?;
    let text = reader.plain(&text, path, "port")?;
    let port = text.trim().parse::<u16>().ok().filter(|port| *port > 0);
    if port.is_none() {
        reader.left(path, value, "expected a port number from 1 to 65535");
    }
    port
}

/// A check's interval (100ms to 1h) or timeout (100ms to 10m), or `None` (reported).
fn timing(fields: &mut Fields, key: &str, reader: &mut Reader) -> Option<u64> {
    let value = fields.take(key)?;
    let (most, most_text) = match key {
        "interval" => (3_600_000, "1h"),
        _ => (600_000, "10m"),
    };
    let ms = duration_ms(value).filter(|ms| (100..=most).contains(ms));
    if ms.is_none() {
        let why = format!("expected a duration from 100ms to {most_text}, such as 5s");
        reader.left(&fields.at(key), value, why);
    }
    ms
}

/// Whether `path` is a path an http check takes; reported as not carried when it is not.
fn checked_path(path: &str, at: &str, reader: &mut Reader) -> bool {
    let usable = crate::text::is_check_path(path);
    if !usable {
        reader.left(
            at,
            &serde_json::Value::String(path.to_string()),
            "not a path an http check takes (/health): the default path is checked",
        );
    }
    usable
}
