//! Networks and ports. Marathon gave a task host ports (random ones, seen as `$PORT0` ...,
//! unless `requirePorts`) or ran its container on a bridge or virtual network with port
//! mappings. coding-job runs every container on its host's network with one port per job,
//! fixed or allocated per task (`auto`, seen as `$PORT`): a container listens on its host at
//! the port it listens on inside, so a mapping's `containerPort` is the job's port.

use serde_json::Value;

use super::Context;
use super::container::Container;
use crate::fields::{Fields, item};
use crate::service_file::Job;
use crate::text;

/// Whether the app uses the port Marathon gives an app that declares none.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Wants {
    /// Its `cmd` reads `$PORT0` (or `$PORT`, `$PORTS`).
    pub command: bool,
    /// A health or readiness check probes a port by index.
    pub checks: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Network {
    Host,
    Bridge,
    /// A virtual network (Marathon's `USER`, or `container` mode), by name if it has one.
    Virtual,
    None,
}

/// A port a check names, as coding-job can reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PortAt {
    /// The job's own port (fixed or allocated).
    Job,
    Fixed(u16),
    /// Port index N, a random host port Marathon chose (`$PORTN`).
    Random(usize),
    /// Port index N, which the app does not declare.
    Missing(usize),
}

/// The app's ports as coding-job sees them.
#[derive(Debug, Default)]
pub(super) struct Ports {
    /// The job's `port:` (`Some(0)`: allocated per task, `auto`).
    pub job_port: Option<u16>,
    /// By Marathon's port index: the port the task listens on, when fixed.
    listening: Vec<Option<u16>>,
    names: Vec<Option<String>>,
}

impl Ports {
    /// Port index `index` (`portIndex` of a check).
    pub fn at(&self, index: usize) -> PortAt {
        match self.listening.get(index) {
            _ if index == 0 && self.job_port.is_some() => PortAt::Job,
            None => PortAt::Missing(index),
            Some(None) => PortAt::Random(index),
            Some(Some(port)) => self.number(*port),
        }
    }

    /// Port number `port` (the `port` of a check).
    pub fn number(&self, port: u16) -> PortAt {
        match self.job_port == Some(port) {
            true => PortAt::Job,
            false => PortAt::Fixed(port),
        }
    }

    /// The index of the port named `name` (`portName` of a readiness check).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|known| known.as_deref() == Some(name))
    }

    /// Whether `$NAME` is Marathon's variable for the job's port: `PORT0`, `PORT`, `PORTS` (one
    /// port), `PORT_HTTP` (the first port's name).
    pub(super) fn is_job_port_variable(&self, name: &str) -> bool {
        let first_name = self.names.first().cloned().flatten();
        name == "PORT0"
            || name == "PORT"
            || (name == "PORTS" && self.listening.len() <= 1)
            || first_name
                .is_some_and(|first| name == format!("PORT_{}", first.to_ascii_uppercase()))
    }
}

/// Reads the app's network and ports: `networks`, `portDefinitions` (or `ports`) and
/// `requirePorts` from the app, and what `container` said.
pub(super) fn read(
    context: &mut Context,
    app: &mut Fields,
    container: &Container,
    wants: Wants,
    job: &mut Job,
) -> Ports {
    let networks_path = app.at("networks");
    let networks = app.take("networks");
    let network = network(context, &networks_path, networks, container);
    let definitions = app
        .take("portDefinitions")
        .map(|value| (app.at("portDefinitions"), value));
    let legacy = app.take("ports").map(|value| (app.at("ports"), value));
    let require = app.take("requirePorts").and_then(Value::as_bool) == Some(true);
    match network {
        Network::Host => {
            if let Some((path, mappings)) = &container.mappings
                && !text::is_unset(mappings)
            {
                let why = "port mappings apply to bridged containers; this app runs on the host's network, with its portDefinitions";
                context.left(path, text::shown(mappings), why);
            }
            host_ports(context, app.path(), definitions, legacy, require, wants)
        }
        Network::Bridge | Network::Virtual => {
            for (path, value) in [definitions, legacy].into_iter().flatten() {
                if !text::is_unset(value) {
                    let why = "service ports of a bridged app (marathon-lb's): its own ports are its portMappings";
                    context.left(path, text::shown(value), why);
                }
            }
            mapped_ports(context, container.mappings.as_ref(), wants)
        }
        Network::None => {
            let none = Value::String("none".into());
            job.docker_config
                .docker_hostconfig
                .insert("NetworkMode".into(), none);
            Ports::default()
        }
    }
}

/// Which network the app's containers were on: Marathon 1.5's `networks`, or Docker's
/// `network` before it.
fn network(
    context: &mut Context,
    path: &str,
    networks: Option<&Value>,
    container: &Container,
) -> Network {
    if let Some(Value::Array(list)) = networks
        && let Some(first) = list.first()
    {
        let first_path = item(path, 0);
        let mut fields = Fields::new(first_path.clone(), first);
        let name = fields.text("name");
        let network = match fields.text("mode").as_deref() {
            Some("host") | None => Network::Host,
            Some("container/bridge") => Network::Bridge,
            Some("container") => Network::Virtual,
            Some(other) => {
                let why = "not a network mode Marathon knows (host, container/bridge, container): read as host";
                context.left(fields.at("mode"), other, why);
                Network::Host
            }
        };
        if network == Network::Virtual {
            virtual_network(context, &first_path, name.as_deref());
        } else if let Some(name) = name {
            let why = "a network name applies to virtual networks only";
            context.left(fields.at("name"), name, why);
        }
        fields.leave_rest(context.report, |key| match key {
            "labels" => Some("network labels (CNI settings) have no counterpart: tasks run on the host's network"),
            _ => None,
        });
        for (index, other) in list.iter().enumerate().skip(1) {
            let why = "coding-job runs a task on one network, its host's";
            context.left(item(path, index), text::shown(other), why);
        }
        if let Some((docker_path, docker_network)) = &container.network {
            let why = "Marathon 1.5 and later read `networks`, which was read";
            context.left(docker_path, docker_network.as_str(), why);
        }
        if network == Network::Bridge {
            bridge_note(context, path);
        }
        return network;
    }
    let Some((docker_path, docker_network)) = &container.network else {
        return match container.mappings {
            Some((ref path, mappings)) if !text::is_unset(mappings) => {
                bridge_note(context, path);
                Network::Bridge
            }
            _ => Network::Host,
        };
    };
    match docker_network.as_str() {
        "HOST" => Network::Host,
        "BRIDGE" => {
            bridge_note(context, docker_path);
            Network::Bridge
        }
        "USER" => {
            virtual_network(context, docker_path, None);
            Network::Virtual
        }
        "NONE" => Network::None,
        other => {
            let why =
                "not a Docker network Marathon knows (HOST, BRIDGE, USER, NONE): read as HOST";
            context.left(docker_path, other, why);
            Network::Host
        }
    }
}

fn bridge_note(context: &mut Context, path: &str) {
    context.note_once(
        "bridge",
        path,
        "bridged containers run on their host's network in coding-job: each listens on its host at its containerPort, which is the job's port",
    );
}

fn virtual_network(context: &mut Context, path: &str, name: Option<&str>) {
    let what = name.unwrap_or("USER");
    let why = "an IP address per task on a virtual network has no counterpart: coding-job runs tasks on their host's network, where each listens at its containerPort";
    context.left(path, what, why);
}

/// One of `portDefinitions` (or `ports`).
struct Definition {
    path: String,
    port: u16,
    protocol: String,
    name: Option<String>,
}

/// Host networking: the first declared port is the job's; Marathon chose it at random unless
/// `requirePorts` (or the app declared 0).
fn host_ports(
    context: &mut Context,
    app_path: &str,
    definitions: Option<(String, &Value)>,
    legacy: Option<(String, &Value)>,
    require: bool,
    wants: Wants,
) -> Ports {
    let declared = match (definitions, legacy) {
        (Some((path, definitions)), legacy) => {
            if let Some((legacy_path, legacy)) = legacy.filter(|(_, value)| !text::is_unset(value))
            {
                let why = "the older spelling of portDefinitions, which was read";
                context.left(legacy_path, text::shown(legacy), why);
            }
            Some(read_definitions(context, &path, definitions))
        }
        (None, Some((path, legacy))) => Some(read_definitions(context, &path, legacy)),
        (None, None) => None,
    };
    let mut ports = Ports::default();
    let Some(declared) = declared else {
        if wants.command || wants.checks {
            let note = "the app declares no ports, so Marathon gave each task one at random ($PORT0), which its command or check uses: `port: auto`";
            context.note(app_path, note);
            ports.job_port = Some(0);
        }
        return ports;
    };
    let Some(first) = declared.first() else {
        return ports;
    };
    let port = first.port;
    ports.job_port = Some(if port == 0 {
        auto_note(context, &first.path);
        0
    } else if require {
        port
    } else if wants.command || wants.checks {
        let uses = match wants.command {
            true => "the command reads",
            false => "a check probes",
        };
        let note = format!(
            "requirePorts is false, so {port} was only marathon-lb's service port and each task listened on a random host port ($PORT0), which {uses}: `port: auto`"
        );
        context.note(&first.path, note);
        0
    } else {
        let note = format!(
            "requirePorts is false: Marathon gave each task a random host port ($PORT0) and {port} was marathon-lb's service port; the command does not read $PORT0, so the app is taken to listen on {port}: `port: {port}` (if it reads its port from $PORT0, write `port: auto` and have it read $PORT)"
        );
        context.note(&first.path, note);
        port
    });
    for (index, definition) in declared.iter().enumerate() {
        let fixed = (index == 0 || require) && definition.port != 0;
        ports.listening.push(fixed.then_some(definition.port));
        ports.names.push(definition.name.clone());
        if index > 0 {
            other_port(
                context,
                &definition.path,
                definition.port,
                &definition.protocol,
                fixed,
                index,
            );
        }
    }
    ports
}

fn read_definitions(context: &mut Context, path: &str, value: &Value) -> Vec<Definition> {
    let Value::Array(items) = value else {
        if !text::is_unset(value) {
            context.left(path, text::shown(value), "expected a list of ports");
        }
        return Vec::new();
    };
    let mut declared = Vec::new();
    for (index, entry) in items.iter().enumerate() {
        let entry_path = item(path, index);
        if let Some(port) = entry.as_u64() {
            match u16::try_from(port) {
                Ok(port) => declared.push(Definition {
                    path: entry_path,
                    port,
                    protocol: "tcp".into(),
                    name: None,
                }),
                Err(_) => context.left(entry_path, port.to_string(), "not a port number"),
            }
            continue;
        }
        let mut fields = Fields::new(entry_path.clone(), entry);
        let port = fields.take("port").and_then(Value::as_u64).unwrap_or(0);
        let name = fields.text("name");
        let protocol = fields.text("protocol").unwrap_or_else(|| "tcp".into());
        if let Some(labels) = fields
            .take("labels")
            .filter(|labels| !text::is_unset(labels))
        {
            context.left(fields.at("labels"), text::shown(labels), PORT_LABELS);
        }
        fields.leave_rest(context.report, |_| None);
        match u16::try_from(port) {
            Ok(port) => declared.push(Definition {
                path: entry_path,
                port,
                protocol,
                name,
            }),
            Err(_) => context.left(entry_path, port.to_string(), "not a port number"),
        }
    }
    declared
}

const PORT_LABELS: &str = "port labels (VIP names, marathon-lb settings) have no counterpart: coding-job's router serves a job by name (`route:`)";

fn auto_note(context: &mut Context, path: &str) {
    context.note_once(
        "auto",
        path,
        "a port Marathon chose at random for each task ($PORT0) is `port: auto`: coding-job allocates one per task, keeps it across rollouts and sets $PORT",
    );
}

/// A port after the first: coding-job keeps one per job.
fn other_port(
    context: &mut Context,
    path: &str,
    port: u16,
    protocol: &str,
    fixed: bool,
    index: usize,
) {
    let what = format!("{port}/{protocol}");
    if fixed {
        let why = format!(
            "coding-job keeps one port per job: the task still listens on {port} on its host's network, but nothing reserves {port} for it"
        );
        context.left(path, what.as_str(), why);
    } else {
        let why = format!(
            "a second random port ($PORT{index}) has no counterpart: coding-job allocates one port per task (`port: auto`, $PORT)"
        );
        context.left(path, what.as_str(), why);
    }
}

/// Bridged or virtual networking: the container listens on each mapping's `containerPort`,
/// now on its host; the first is the job's port.
fn mapped_ports(context: &mut Context, mappings: Option<&(String, &Value)>, wants: Wants) -> Ports {
    let mut ports = Ports::default();
    let items = match mappings {
        Some((_, Value::Array(items))) => items.as_slice(),
        Some((path, other)) => {
            if !text::is_unset(other) {
                context.left(path, text::shown(other), "expected a list of port mappings");
            }
            &[]
        }
        None => &[],
    };
    let path = mappings.map(|(path, _)| path.as_str()).unwrap_or_default();
    for (index, mapping) in items.iter().enumerate() {
        let mapping_path = item(path, index);
        let mut fields = Fields::new(mapping_path.clone(), mapping);
        let container_port = fields.take("containerPort").and_then(Value::as_u64);
        let container_port = container_port
            .and_then(|port| u16::try_from(port).ok())
            .unwrap_or(0);
        let host_port = fields.take("hostPort").and_then(Value::as_u64);
        let protocol = fields.text("protocol").unwrap_or_else(|| "tcp".into());
        let name = fields.text("name");
        let service_port = fields.take("servicePort");
        if let Some(service_port) =
            service_port.filter(|port| port.as_u64().is_some_and(|port| port != 0))
        {
            let why = "marathon-lb's (or a DC/OS VIP's) port for the app: coding-job's router serves routes by name (`route:`), not by port";
            context.left(fields.at("servicePort"), text::shown(service_port), why);
        }
        if let Some(labels) = fields
            .take("labels")
            .filter(|labels| !text::is_unset(labels))
        {
            context.left(fields.at("labels"), text::shown(labels), PORT_LABELS);
        }
        fields.take("networkNames");
        let host_port_path = fields.at("hostPort");
        fields.leave_rest(context.report, |_| None);
        ports
            .listening
            .push((container_port != 0).then_some(container_port));
        ports.names.push(name);
        if index > 0 {
            let fixed = container_port != 0;
            other_port(
                context,
                &mapping_path,
                container_port,
                &protocol,
                fixed,
                index,
            );
            continue;
        }
        if container_port == 0 {
            auto_note(context, &mapping_path);
            ports.job_port = Some(0);
            continue;
        }
        ports.job_port = Some(container_port);
        match host_port {
            Some(0) => context.note(
                host_port_path,
                format!(
                    "hostPort 0 (a random host port) is not carried: the container listens on its host's network at {container_port}/{protocol}, the job's port"
                ),
            ),
            Some(host_port) if host_port != u64::from(container_port) => context.note(
                host_port_path,
                format!(
                    "hostPort {host_port} is not carried: the app is reached on {container_port}, the port it listens on (a route, `route:`, serves it by name)"
                ),
            ),
            _ => {}
        }
    }
    if items.is_empty() && wants.command {
        ports.job_port = Some(0);
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_index_is_the_jobs_port_a_fixed_one_or_unknown() {
        let ports = Ports {
            job_port: Some(8080),
            listening: vec![Some(8080), Some(9090), None],
            names: vec![Some("http".into()), None, None],
        };
        assert_eq!(ports.at(0), PortAt::Job);
        assert_eq!(ports.at(1), PortAt::Fixed(9090));
        assert_eq!(ports.at(2), PortAt::Random(2));
        assert_eq!(ports.at(3), PortAt::Missing(3));
        assert_eq!(ports.number(8080), PortAt::Job);
        assert_eq!(ports.index_of("http"), Some(0));
        assert!(ports.is_job_port_variable("PORT_HTTP"));
        assert!(!ports.is_job_port_variable("PORTS"));
    }
}
