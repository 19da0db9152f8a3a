//! `ports:` and `expose:`. Compose publishes a container port on a host port through its own
//! network; coding-job's tasks listen on their host's network directly, so the job's `port` is
//! the port the container listens on, and what publishing did is said in the report.

use serde_json::Value;

use super::values::Reader;
use crate::fields::{Fields, item};
use crate::service_file::Job;
use crate::text::shown;

/// One port the service listens on.
struct Listening {
    container: u16,
    published: Option<String>,
    host_ip: Option<String>,
    udp: bool,
    path: String,
}

pub fn read(job: &mut Job, fields: &mut Fields, reader: &mut Reader) {
    let mut listening = Vec::new();
    for key in ["ports", "expose"] {
        let Some(Value::Array(entries)) = fields.take(key) else {
            continue;
        };
        let path = fields.at(key);
        for (index, entry) in entries.iter().enumerate() {
            let at = item(&path, index);
            let port = match entry {
                Value::Object(_) => long_syntax(entry, &at, reader),
                other => short_syntax(other, &at, reader),
            };
            listening.extend(port);
        }
    }
    let Some(first) = listening.iter().position(|port| !port.udp) else {
        for port in &listening {
            reader.report.left(
                &port.path,
                format!("{}/udp", port.container),
                "a UDP port: the task listens on it on its host, but checks and routes are TCP",
            );
        }
        return;
    };
    job.port = Some(listening[first].container);
    for (index, port) in listening.iter().enumerate() {
        if let Some(published) = &port.published
            && published != &port.container.to_string()
        {
            reader.report.note(
                &port.path,
                format!(
                    "published on host port {published} in Compose: on its host's network the task listens on {} itself",
                    port.container
                ),
            );
        }
        if let Some(address) = &port.host_ip {
            reader.report.note(
                &port.path,
                format!("bound to {address} in Compose: on its host's network the task listens where the program binds"),
            );
        }
        if index != first && !port.udp {
            reader.report.note(
                &port.path,
                format!(
                    "also listens on {}: the job's port (for checks, routes and addr) is {}",
                    port.container, listening[first].container
                ),
            );
        }
        if port.udp {
            reader.report.note(
                &port.path,
                format!("{}/udp: the task listens on it on its host", port.container),
            );
        }
    }
}

/// `[IP:][HOST:]CONTAINER[/PROTOCOL]`; a range takes its first port.
fn short_syntax(entry: &Value, path: &str, reader: &mut Reader) -> Option<Listening> {
    let text = reader.plain(entry, path)?;
    let (spec, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
    let (rest, container) = spec.rsplit_once(':').unwrap_or(("", spec));
    let (host_ip, published) = match rest.rsplit_once(':') {
        Some((ip, host)) => (Some(ip.trim_matches(['[', ']']).to_string()), host),
        None => (None, rest),
    };
    let container = first_port(container, path, reader)?;
    Some(Listening {
        container,
        published: (!published.is_empty()).then(|| published.to_string()),
        host_ip: host_ip.filter(|ip| !ip.is_empty() && ip != "0.0.0.0"),
        udp: protocol == "udp",
        path: path.to_string(),
    })
}

fn long_syntax(entry: &Value, path: &str, reader: &mut Reader) -> Option<Listening> {
    let mut fields = Fields::new(path, entry);
    let target = fields.take("target")?;
    let container = reader
        .plain(target, &fields.at("target"))
        .and_then(|text| first_port(&text, path, reader))?;
    let published = fields
        .take("published")
        .and_then(|published| reader.plain(published, &format!("{path}.published")));
    let host_ip = fields.text("host_ip").filter(|ip| ip != "0.0.0.0");
    let udp = fields
        .text("protocol")
        .is_some_and(|protocol| protocol == "udp");
    fields.take("mode");
    fields.take("name");
    fields.take("app_protocol");
    fields.leave_rest(reader.report, |_| None);
    Some(Listening {
        container,
        published,
        host_ip,
        udp,
        path: path.to_string(),
    })
}

fn first_port(text: &str, path: &str, reader: &mut Reader) -> Option<u16> {
    let (first, range) = match text.split_once('-') {
        Some((first, _)) => (first, true),
        None => (text, false),
    };
    match first.trim().parse::<u16>() {
        Ok(port) if port > 0 => {
            if range {
                reader.report.note(
                    path,
                    format!("the range {text}: the job's port is its first, {port}"),
                );
            }
            Some(port)
        }
        _ => {
            reader.report.left(
                path,
                shown(&Value::String(text.to_string())),
                "not a port number",
            );
            None
        }
    }
}

/// The container port of a `ports`/`expose` entry, for tests.
#[cfg(test)]
pub(crate) fn container_port(entry: &str) -> Option<u16> {
    let mut report = crate::report::Report::default();
    let targets = Default::default();
    let mut reader = Reader {
        targets: &targets,
        references: Vec::new(),
        report: &mut report,
    };
    short_syntax(&Value::String(entry.into()), "p", &mut reader).map(|port| port.container)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_syntax_takes_the_container_port() {
        assert_eq!(container_port("80"), Some(80));
        assert_eq!(container_port("8080:80"), Some(80));
        assert_eq!(container_port("127.0.0.1:8080:80/tcp"), Some(80));
        assert_eq!(container_port("[::1]:53:53/udp"), Some(53));
        assert_eq!(container_port("3000-3005"), Some(3000));
        assert_eq!(container_port("${PORT:-9000}:9000"), Some(9000));
    }
}
