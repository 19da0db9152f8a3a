//! `healthChecks` and `readinessChecks` as the job's one `check:`. coding-job's check is both:
//! `up` and rollouts wait for it (as Marathon waited for readiness), and a task failing it
//! `retries` times in a row is restarted (as Marathon killed an unhealthy task). The first
//! health check that can be carried is; without one, the first readiness check is.

use serde_json::Value;

use super::ports::{PortAt, Ports};
use super::{Context, list};
use crate::fields::{Fields, item};
use crate::service_file::{Check, Job};
use crate::text::{self, literal};

use cj_spec::limits::{
    MAX_INTERVAL_MS, MAX_RETRIES, MAX_START_PERIOD_MS, MAX_TIMEOUT_MS, MIN_INTERVAL_MS,
    MIN_TIMEOUT_MS,
};

/// The config's bounds for a check's timing, in milliseconds.
const INTERVAL_MS: (u64, u64) = (MIN_INTERVAL_MS, MAX_INTERVAL_MS);
const TIMEOUT_MS: (u64, u64) = (MIN_TIMEOUT_MS, MAX_TIMEOUT_MS);

/// Marathon's defaults for a health check: grace period, interval, timeout (seconds), failures.
const HEALTH_DEFAULTS: (f64, f64, f64, u64) = (300.0, 60.0, 20.0, 3);
/// Marathon's defaults for a readiness check: interval and timeout (seconds).
const READINESS_DEFAULTS: (f64, f64) = (30.0, 10.0);

/// Whether a check of the app probes a port by index (the default for HTTP and TCP checks).
pub(super) fn use_task_port(app: &Value) -> bool {
    ["healthChecks", "readinessChecks"]
        .iter()
        .filter_map(|key| app.get(key)?.as_array())
        .flatten()
        .any(|check| {
            let protocol = check
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("HTTP");
            let port = check.get("port").and_then(Value::as_u64).unwrap_or(0);
            protocol != "COMMAND" && port == 0
        })
}

/// What a check probes, as far as coding-job can.
enum Probe {
    Http {
        https: bool,
        path: String,
        port: PortAt,
    },
    Tcp(PortAt),
    Command(String),
}

pub(super) fn carry(context: &mut Context, app: &mut Fields, ports: &Ports, job: &mut Job) {
    let health_path = app.at("healthChecks");
    let mut carried: Option<String> = None;
    for (index, check) in list(context, app, "healthChecks").iter().enumerate() {
        let path = item(&health_path, index);
        if !check.is_object() {
            context.left(path, text::shown(check), "expected a check (a JSON object)");
            continue;
        }
        if let Some(carried) = &carried {
            let why = format!("coding-job runs one check per job: {carried} was carried");
            context.left(path, summary(check), why);
            continue;
        }
        match probe(check, ports, false) {
            Ok(probe) => {
                job.check = Some(health(context, &path, check, probe, ports, job));
                carried = Some(path);
            }
            Err(why) => context.left(path, summary(check), why),
        }
    }
    let readiness_path = app.at("readinessChecks");
    for (index, check) in list(context, app, "readinessChecks").iter().enumerate() {
        let path = item(&readiness_path, index);
        if !check.is_object() {
            context.left(path, text::shown(check), "expected a check (a JSON object)");
            continue;
        }
        if let Some(carried) = &carried {
            let why = format!(
                "coding-job runs one check per job, and `up` and rollouts wait for it as for a readiness check: {carried} serves as both"
            );
            context.left(path, summary(check), why);
            continue;
        }
        match probe(check, ports, true) {
            Ok(probe) => {
                job.check = Some(readiness(context, &path, check, probe, ports, job));
                let note = "carried as the job's check: `up` and rollouts wait for it as Marathon waited for readiness; unlike a readiness check, a task failing it `retries` times in a row is restarted";
                context.note(&path, note);
                carried = Some(path);
            }
            Err(why) => context.left(path, summary(check), why),
        }
    }
}

/// What the check probes, or why coding-job cannot probe it. Nothing is reported here: only
/// the check carried is read key by key.
fn probe(check: &Value, ports: &Ports, readiness: bool) -> Result<Probe, String> {
    let protocol = check
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("HTTP");
    let port = || -> PortAt {
        if let Some(port) = check
            .get("port")
            .and_then(Value::as_u64)
            .filter(|port| *port != 0)
        {
            return u16::try_from(port).map_or(PortAt::Missing(0), |port| ports.number(port));
        }
        if readiness {
            let name = check
                .get("portName")
                .and_then(Value::as_str)
                .unwrap_or("http-api");
            return ports
                .index_of(name)
                .map_or(PortAt::Missing(0), |index| ports.at(index));
        }
        let index = check.get("portIndex").and_then(Value::as_u64).unwrap_or(0);
        ports.at(usize::try_from(index).unwrap_or(usize::MAX))
    };
    let reachable = |port: PortAt| match port {
        PortAt::Random(index) => Err(format!(
            "probes a random host port Marathon chose ($PORT{index}): coding-job allocates one port per job, and the check probes that one"
        )),
        PortAt::Missing(_) if readiness => {
            let name = check
                .get("portName")
                .and_then(Value::as_str)
                .unwrap_or("http-api");
            Err(format!(
                "probes the port named {name}, which the app does not declare"
            ))
        }
        PortAt::Missing(index) => Err(format!(
            "probes port index {index}, which the app does not declare"
        )),
        port => Ok(port),
    };
    match protocol {
        "HTTP" | "HTTPS" | "MESOS_HTTP" | "MESOS_HTTPS" => {
            let path = check.get("path").and_then(Value::as_str).unwrap_or("/");
            let path = match path.starts_with('/') {
                true => path.to_string(),
                false => format!("/{path}"),
            };
            if path.len() > 2000 || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(
                    "the path holds spaces or control characters, or is too long, for a URL".into(),
                );
            }
            if cj_spec::is_template(&path) {
                return Err(
                    "the path holds template syntax ({{, {%), which a check's URL cannot".into(),
                );
            }
            let https = protocol.ends_with('S');
            Ok(Probe::Http {
                https,
                path,
                port: reachable(port())?,
            })
        }
        "TCP" | "MESOS_TCP" if !readiness => Ok(Probe::Tcp(reachable(port())?)),
        "COMMAND" if !readiness => check
            .get("command")
            .and_then(|command| command.get("value"))
            .and_then(Value::as_str)
            .filter(|line| !line.trim().is_empty())
            .map(|line| Probe::Command(line.to_string()))
            .ok_or_else(|| "a COMMAND check without command.value runs nothing".to_string()),
        other => Err(format!("not a protocol coding-job can probe ({other})")),
    }
}

/// The probe as `check:` fields.
fn probe_fields(
    context: &mut Context,
    path: &str,
    probe: Probe,
    ports: &Ports,
    job: &mut Job,
) -> Check {
    let mut check = Check::default();
    match probe {
        Probe::Http {
            https,
            path: target,
            port,
        } => {
            let scheme = if https { "https" } else { "http" };
            check.http = Some(match (https, port) {
                (false, PortAt::Job) => literal(&target),
                (true, PortAt::Job) if ports.job_port == Some(0) => {
                    format!("https://127.0.0.1:{{{{ port }}}}{}", literal(&target))
                }
                (true, PortAt::Job) => {
                    let port = ports.job_port.unwrap_or_default();
                    literal(&format!("https://127.0.0.1:{port}{target}"))
                }
                (_, PortAt::Fixed(port)) => {
                    literal(&format!("{scheme}://127.0.0.1:{port}{target}"))
                }
                (_, PortAt::Random(_) | PortAt::Missing(_)) => unreachable!("refused by probe"),
            });
            context.note_once(
                "http-2xx",
                path,
                "Marathon counted HTTP answers 200 to 399 as healthy; coding-job counts 2xx only, so a check path that redirects fails",
            );
        }
        Probe::Tcp(port) => {
            check.tcp = Some(match port {
                PortAt::Fixed(port) => Value::from(port),
                _ => Value::Bool(true),
            });
        }
        Probe::Command(line) => {
            let command_path = format!("{path}.command.value");
            let line = ports.shell(context, &command_path, &line, &mut job.env);
            check.exec = Some(vec!["sh".into(), "-c".into(), literal(&line)]);
        }
    }
    check
}

/// A health check carried: its probe and Marathon's timing.
fn health(
    context: &mut Context,
    path: &str,
    value: &Value,
    probe: Probe,
    ports: &Ports,
    job: &mut Job,
) -> Check {
    let mut check = probe_fields(context, path, probe, ports, job);
    let mut fields = Fields::new(path.to_string(), value);
    for key in ["protocol", "path", "portIndex", "port", "command"] {
        fields.take(key);
    }
    let (grace, interval, timeout, failures) = HEALTH_DEFAULTS;
    let mut defaulted = Vec::new();
    let mut seconds = |fields: &mut Fields, key: &'static str, default: f64| {
        fields.take(key).and_then(Value::as_f64).unwrap_or_else(|| {
            defaulted.push(format!("{key} {default}"));
            default
        })
    };
    let grace = seconds(&mut fields, "gracePeriodSeconds", grace);
    let interval = seconds(&mut fields, "intervalSeconds", interval);
    let timeout = seconds(&mut fields, "timeoutSeconds", timeout);
    check.start_period = Some(bounded(
        context,
        &fields.at("gracePeriodSeconds"),
        grace,
        (0, MAX_START_PERIOD_MS),
    ));
    interval_and_timeout(context, &fields, &mut check, interval, timeout);
    let failures_path = fields.at("maxConsecutiveFailures");
    let failures = match fields
        .take("maxConsecutiveFailures")
        .and_then(Value::as_u64)
    {
        Some(0) => {
            let note = format!(
                "0: Marathon never killed a task failing this check; coding-job restarts a task after `retries` failures in a row, at most {MAX_RETRIES}: retries {MAX_RETRIES}"
            );
            context.note(failures_path, note);
            u64::from(MAX_RETRIES)
        }
        Some(failures) if failures > u64::from(MAX_RETRIES) => {
            let note = format!(
                "{failures} is more than the {MAX_RETRIES} retries the config accepts: retries {MAX_RETRIES}"
            );
            context.note(failures_path, note);
            u64::from(MAX_RETRIES)
        }
        Some(failures) => failures,
        None => {
            defaulted.push(format!("maxConsecutiveFailures {failures}"));
            failures
        }
    };
    check.retries = u32::try_from(failures).ok();
    if !defaulted.is_empty() {
        let note = format!(
            "not given, so Marathon's defaults are written out: {}",
            defaulted.join(", ")
        );
        context.note(path, note);
    }
    if fields.take("ignoreHttp1xx") == Some(&Value::Bool(true)) {
        let why = "coding-job counts 2xx answers only: a 1xx answer fails the check";
        context.left(fields.at("ignoreHttp1xx"), "true", why);
    }
    let delay_path = fields.at("delaySeconds");
    if let Some(delay) = fields
        .take("delaySeconds")
        .filter(|delay| delay.as_f64() != Some(15.0))
    {
        let why = "Mesos waited this long before the first probe; coding-job probes from the start and ignores failures during start_period";
        context.left(delay_path, text::shown(delay), why);
    }
    let ip_path = fields.at("ipProtocol");
    if fields.text("ipProtocol").as_deref() == Some("IPv6") {
        let note = "probed over IPv4, at 127.0.0.1 on the task's host (Marathon probed the task's IPv6 address): the app must listen on IPv4 too";
        context.note(ip_path, note);
    }
    fields.leave_rest(context.report, |_| None);
    check
}

/// A readiness check carried as the job's check.
fn readiness(
    context: &mut Context,
    path: &str,
    value: &Value,
    probe: Probe,
    ports: &Ports,
    job: &mut Job,
) -> Check {
    let mut check = probe_fields(context, path, probe, ports, job);
    let mut fields = Fields::new(path.to_string(), value);
    for key in [
        "name",
        "protocol",
        "path",
        "portName",
        "preserveLastResponse",
    ] {
        fields.take(key);
    }
    let (interval, timeout) = READINESS_DEFAULTS;
    let interval = fields
        .take("intervalSeconds")
        .and_then(Value::as_f64)
        .unwrap_or(interval);
    let timeout = fields
        .take("timeoutSeconds")
        .and_then(Value::as_f64)
        .unwrap_or(timeout);
    interval_and_timeout(context, &fields, &mut check, interval, timeout);
    let codes_path = fields.at("httpStatusCodesForReady");
    if let Some(Value::Array(codes)) = fields.take("httpStatusCodesForReady") {
        let outside: Vec<String> = codes
            .iter()
            .filter(|code| !code.as_u64().is_some_and(|code| (200..300).contains(&code)))
            .map(text::shown)
            .collect();
        if !outside.is_empty() {
            let why = format!(
                "coding-job counts 2xx answers as ready, not {}",
                outside.join(", ")
            );
            context.left(codes_path, outside.join(", "), why);
        }
    }
    fields.leave_rest(context.report, |_| None);
    check
}

/// `seconds` as a duration within `bounds` (milliseconds), noted at `path` when outside them.
/// The check's `interval` and `timeout` from Marathon's seconds, within the config's bounds.
fn interval_and_timeout(
    context: &mut Context,
    fields: &Fields,
    check: &mut Check,
    interval: f64,
    timeout: f64,
) {
    check.interval = Some(bounded(
        context,
        &fields.at("intervalSeconds"),
        interval,
        INTERVAL_MS,
    ));
    check.timeout = Some(bounded(
        context,
        &fields.at("timeoutSeconds"),
        timeout,
        TIMEOUT_MS,
    ));
}

fn bounded(context: &mut Context, path: &str, seconds: f64, bounds: (u64, u64)) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let clamped = ms.clamp(bounds.0, bounds.1);
    if clamped != ms {
        let note = format!(
            "{seconds} s is outside the {} to {} the config accepts: {}",
            text::duration(bounds.0),
            text::duration(bounds.1),
            text::duration(clamped)
        );
        context.note(path, note);
    }
    text::duration(clamped)
}

/// A check in a few words, for the report: `HTTP /health`, `COMMAND curl -f ...`.
fn summary(check: &Value) -> String {
    let protocol = check
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("HTTP");
    let detail = check
        .get("path")
        .or_else(|| {
            check
                .get("command")
                .and_then(|command| command.get("value"))
        })
        .or_else(|| check.get("port"))
        .map(text::shown);
    match detail {
        Some(detail) => format!("{protocol} {detail}"),
        None => protocol.to_string(),
    }
}
