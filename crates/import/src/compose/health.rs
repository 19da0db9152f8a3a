//! `healthcheck:` as the job's check. A probe of a local URL with curl or wget becomes an http
//! check (which wants a 2xx answer); any other command runs in the container as an exec check.

use serde_json::Value;

use super::values::Reader;
use crate::fields::Fields;
use crate::service_file::{Check, Job};
use crate::text::{duration, scalar, shown};
use cj_spec::limits::{
    MAX_INTERVAL_MS, MAX_RETRIES, MAX_START_PERIOD_MS, MAX_TIMEOUT_MS, MIN_INTERVAL_MS,
    MIN_RETRIES, MIN_TIMEOUT_MS,
};

pub fn read(job: &mut Job, fields: &mut Fields, reader: &mut Reader) {
    let Some(healthcheck) = fields.take("healthcheck") else {
        return;
    };
    let mut health = Fields::new(fields.at("healthcheck"), healthcheck);
    let disabled = health.take("disable").and_then(Value::as_bool) == Some(true);
    let test = health.take("test");
    let mut check = Check::default();
    let test_path = health.at("test");
    let command: Option<Vec<String>> = match test {
        _ if disabled => None,
        Some(Value::String(line)) => Some(vec!["sh".into(), "-c".into(), line.clone()]),
        Some(Value::Array(items)) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            match words.split_first() {
                Some((kind, rest)) if kind == "CMD" => Some(rest.to_vec()),
                Some((kind, rest)) if kind == "CMD-SHELL" => {
                    Some(vec!["sh".into(), "-c".into(), rest.join(" ")])
                }
                Some((kind, _)) if kind == "NONE" => None,
                _ => {
                    reader.report.left(
                        &test_path,
                        shown(test.unwrap_or(&Value::Null)),
                        "expected CMD, CMD-SHELL or NONE first",
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let Some(command) = command else {
        health.leave_rest(reader.report, |_| Some("the check is disabled"));
        return;
    };
    match local_probe(&command) {
        Some((port, path)) => {
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            check.http = Some(match (port, job.port) {
                (Some(port), Some(job_port)) if port != job_port => {
                    format!("http://127.0.0.1:{port}{path}")
                }
                (Some(port), None) => {
                    job.port = Some(port);
                    path
                }
                // `http://localhost/` is port 80.
                (None, None) => {
                    job.port = Some(80);
                    path
                }
                _ => path,
            });
            reader.report.note(
                &test_path,
                format!(
                    "a probe of a local URL: now an http check of {} (healthy on 2xx)",
                    check.http.as_deref().unwrap_or("")
                ),
            );
        }
        None => {
            let argv: Vec<String> = command
                .iter()
                .map(|arg| {
                    reader
                        .template(&Value::String(arg.clone()), &test_path)
                        .unwrap_or_default()
                })
                .collect();
            check.exec = Some(argv);
        }
    }
    check.interval = timing(
        &mut health,
        "interval",
        MIN_INTERVAL_MS,
        MAX_INTERVAL_MS,
        reader,
    );
    check.timeout = timing(
        &mut health,
        "timeout",
        MIN_TIMEOUT_MS,
        MAX_TIMEOUT_MS,
        reader,
    );
    check.start_period = timing(&mut health, "start_period", 0, MAX_START_PERIOD_MS, reader);
    if let Some(retries) = health.take("retries") {
        let at = health.at("retries");
        if let Some(count) = reader
            .plain(retries, &at)
            .and_then(|n| n.parse::<u32>().ok())
        {
            let clamped = count.clamp(MIN_RETRIES, MAX_RETRIES);
            if clamped != count {
                reader
                    .report
                    .note(at, format!("retries {count} became {clamped}"));
            }
            check.retries = Some(clamped);
        }
    }
    health.leave_rest(reader.report, |key| match key {
        "start_interval" => Some("checks run every interval, also while starting"),
        _ => None,
    });
    job.check = Some(check);
}

/// `curl -f http://localhost:8080/health` or `wget -q --spider http://127.0.0.1/`: the port
/// (if written) and the path.
fn local_probe(command: &[String]) -> Option<(Option<u16>, String)> {
    let words: Vec<String> = match command {
        [shell, flag, line] if shell == "sh" && flag == "-c" => shell_words::split(line).ok()?,
        other => other.to_vec(),
    };
    let (program, rest) = words.split_first()?;
    if !matches!(program.as_str(), "curl" | "wget") {
        return None;
    }
    let mut url = None;
    let mut tail = rest.iter();
    while let Some(word) = tail.next() {
        if word == "||" {
            // `|| exit 1` only.
            let after: Vec<&String> = tail.by_ref().collect();
            if after.first().map(|word| word.as_str()) != Some("exit") {
                return None;
            }
            break;
        }
        if word.starts_with('-') {
            continue;
        }
        if url.is_some() {
            return None;
        }
        url = Some(word.as_str());
    }
    let url = url?.strip_prefix("http://")?;
    let (authority, path) = match url.find('/') {
        Some(at) => (&url[..at], url[at..].to_string()),
        None => (url, String::new()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (authority, None),
    };
    matches!(host, "localhost" | "127.0.0.1" | "0.0.0.0").then_some((port, path))
}

fn timing(
    fields: &mut Fields,
    key: &str,
    min: u64,
    max: u64,
    reader: &mut Reader,
) -> Option<String> {
    let value = fields.take(key)?;
    let at = fields.at(key);
    let text = reader.plain(value, &at)?;
    let Some(ms) = cj_spec::parse_duration_ms(&text) else {
        reader.report.left(at, text, "not a duration");
        return None;
    };
    let clamped = ms.clamp(min, max);
    if clamped != ms {
        reader.report.note(
            at,
            format!("{text} became {} (the config's bounds)", duration(clamped)),
        );
    }
    Some(duration(clamped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(line: &str) -> Option<(Option<u16>, String)> {
        local_probe(&["sh".into(), "-c".into(), line.into()])
    }

    #[test]
    fn local_url_probes_are_recognised() {
        assert_eq!(
            probe("curl -f http://localhost:8080/health || exit 1"),
            Some((Some(8080), "/health".into()))
        );
        assert_eq!(
            probe("wget -q --spider http://127.0.0.1/"),
            Some((None, "/".into()))
        );
        assert_eq!(probe("curl -f http://api:8080/health"), None);
        assert_eq!(probe("pg_isready -U postgres"), None);
        assert_eq!(probe("curl -f http://localhost/ | grep ok"), None);
    }
}
