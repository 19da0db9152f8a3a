//! `accessories:` the databases and caches Kamal runs beside the app, each a job pinned to the
//! host (or hosts) it names, directly or through roles and tags. Kamal keeps an accessory's
//! data in directories of its host; here they are coding-job volumes, one per task and
//! environment, or binds where the file names a host path.

use serde_json::Value;

use super::Reader;
use super::docker::{self, HOST_NETWORK};
use super::env::EnvSection;
use super::erb::Erb;
use super::proxy::Proxy;
use super::roles::{Role, command, hosts};
use crate::fields::{Fields, item, join};
use crate::service_file::{Job, Volume};
use crate::text::{scalar, volume_name};

/// The jobs of the accessories.
pub fn read(value: &Value, roles: &[Role], reader: &mut Reader) -> Vec<Job> {
    let Some(map) = super::mapping(value, "accessories", reader) else {
        return Vec::new();
    };
    let mut jobs = Vec::new();
    for (accessory, settings) in map {
        let path = join("accessories", &reader.erb.restore(accessory));
        let Some(accessory) = reader.plain(accessory, &path, "accessory name") else {
            continue;
        };
        if super::mapping(settings, &path, reader).is_none() {
            continue;
        }
        jobs.push(accessory_job(&accessory, settings, &path, roles, reader));
    }
    jobs
}

fn accessory_job(
    accessory: &str,
    settings: &Value,
    path: &str,
    roles: &[Role],
    reader: &mut Reader,
) -> Job {
    let mut job = Job {
        name: reader.job_name(accessory),
        ..Job::default()
    };
    let mut fields = Fields::new(path, settings);
    job.image = image(&mut fields, reader);
    place(&mut job, &mut fields, roles, reader);
    if let Some(cmd) = fields.take("cmd") {
        job.command = command(cmd, &fields.at("cmd"), reader);
    }
    if let Some(port) = fields.take("port") {
        job.port = published_port(port, &fields.at("port"), reader);
    }
    if let Some(env) = fields.take("env") {
        EnvSection::read(env, &fields.at("env"), false, reader).apply(&mut job, &[], reader);
    }
    if let Some(files) = fields.take("files") {
        let files_path = fields.at("files");
        for (index, file) in files.as_array().into_iter().flatten().enumerate() {
            let why = "a local file Kamal uploads to the host and mounts: bake it into the image, or pack it in a tarball and `seed` a volume with it";
            reader.left(&item(&files_path, index), file, why);
        }
    }
    if let Some(directories) = fields.take("directories") {
        let directories_path = fields.at("directories");
        for (index, directory) in directories.as_array().into_iter().flatten().enumerate() {
            mount_directory(&mut job, directory, &item(&directories_path, index), reader);
        }
    }
    if let Some(volumes) = fields.take("volumes") {
        docker::binds(&mut job, volumes, &fields.at("volumes"), reader);
    }
    if let Some(options) = fields.take("options") {
        docker::options(&mut job, options, &fields.at("options"), reader);
    }
    if let Some(labels) = fields.take("labels") {
        docker::labels(&mut job, labels, &fields.at("labels"), reader);
    }
    if let Some(proxy) = fields.take("proxy") {
        let proxy_path = fields.at("proxy");
        if let Some(proxy) = Proxy::read(proxy, &proxy_path, reader) {
            proxy.apply(&mut job, reader);
        }
    }
    reader.leave_rest(fields, |key| {
        Some(match key {
            "network" => HOST_NETWORK,
            "service" => {
                "the name Kamal gives the accessory's containers: here it is the job named after the accessory"
            }
            _ => return None,
        })
    });
    job
}

/// `image`, with the accessory's own registry server in front (the top level's is for the app).
fn image(fields: &mut Fields, reader: &mut Reader) -> Option<String> {
    let server = fields.take("registry").and_then(|registry| {
        let registry_path = fields.at("registry");
        let mut registry_fields = Fields::new(&registry_path, registry);
        let server = registry_fields.text("server");
        reader.leave_rest(registry_fields, |_| {
            Some("registry credentials belong in the server config's `registries:` (host, username, password), not in service files")
        });
        server
    });
    let written = fields.text("image")?;
    let written = match server {
        Some(server) => format!("{}/{written}", server.trim_end_matches('/')),
        None => written,
    };
    let path = fields.at("image");
    let image = reader.strict_template(&written, &path, "image name")?;
    super::checked_image(image, &path, reader)
}

/// Pins the job to the hosts the accessory names: `host`, `hosts`, or those of `role(s)` or
/// `tag(s)`.
fn place(job: &mut Job, fields: &mut Fields, roles: &[Role], reader: &mut Reader) {
    let mut placed: Vec<String> = Vec::new();
    let add = |host: &str, placed: &mut Vec<String>| {
        if !placed.iter().any(|known| known == host) {
            placed.push(host.to_string());
        }
    };
    let mut written = false;
    for key in ["host", "hosts"] {
        if let Some(value) = fields.take(key) {
            written = true;
            for host in hosts(value, &fields.at(key), reader) {
                add(&host.name, &mut placed);
            }
        }
    }
    for key in ["role", "roles"] {
        let Some(value) = fields.take(key) else {
            continue;
        };
        written = true;
        let wanted = crate::text::scalars(value);
        for role_name in wanted {
            match roles.iter().find(|role| role.name == role_name) {
                Some(role) => role
                    .hosts
                    .iter()
                    .for_each(|host| add(&host.name, &mut placed)),
                None => {
                    let why = "no role of this name in `servers`";
                    reader.left(&fields.at(key), &Value::String(role_name), why);
                }
            }
        }
    }
    for key in ["tag", "tags"] {
        let Some(value) = fields.take(key) else {
            continue;
        };
        written = true;
        let wanted = crate::text::scalars(value);
        for host in roles.iter().flat_map(|role| &role.hosts) {
            if host.tags.iter().any(|tag| wanted.contains(tag)) {
                add(&host.name, &mut placed);
            }
        }
    }
    match placed.len() {
        0 => {
            let why = match written {
                true => "none of its hosts could be carried",
                false => "it names no host",
            };
            reader.note(
                fields.path(),
                format!("{why}: the server places the job's one task on a host of its choosing"),
            );
        }
        1 => job.run_on_host = placed.pop(),
        _ => job.hosts = placed,
    }
}

/// The port of `port: "[BIND:][HOST:]CONTAINER[/PROTOCOL]"`: the container's. With host
/// networking the accessory listens on it on its host's own interfaces.
fn published_port(value: &Value, path: &str, reader: &mut Reader) -> Option<u16> {
    let text = scalar(value)?;
    let text = reader.plain(&text, path, "port")?;
    let (spec, protocol) = match text.split_once('/') {
        Some((spec, protocol)) => (spec, Some(protocol)),
        None => (text.as_str(), None),
    };
    let (bind, ports) = match spec.strip_prefix('[') {
        Some(ipv6) => match ipv6.split_once("]:") {
            Some((bind, ports)) => (Some(bind), ports),
            None => (None, spec),
        },
        None => match spec.matches(':').count() {
            2.. => {
                let (bind, ports) = spec.split_once(':').unwrap_or(("", spec));
                (Some(bind), ports)
            }
            _ => (None, spec),
        },
    };
    let (published, container) = match ports.rsplit_once(':') {
        Some((published, container)) => (Some(published), container),
        None => (None, ports),
    };
    let Some(port) = container
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
    else {
        let why = "expected a port, HOST:CONTAINER or BIND:HOST:CONTAINER";
        reader.left(path, value, why);
        return None;
    };
    if let Some(bind) = bind.filter(|bind| !["", "0.0.0.0", "::"].contains(bind)) {
        reader.note(
            path,
            format!(
                "Kamal published it on {bind} only; with host networking it listens on port {port} of every interface of its host unless the program is told to bind to {bind}: restrict access with a firewall or the program's own setting"
            ),
        );
    }
    if let Some(published) = published.filter(|published| published.trim() != port.to_string()) {
        reader.note(
            path,
            format!(
                "Kamal published the container's port {port} as port {published} of the host; with host networking it is reached at port {port}"
            ),
        );
    }
    if let Some(protocol) = protocol.filter(|protocol| *protocol != "tcp") {
        reader.note(
            path,
            format!("a {protocol} port: checks and the router speak TCP"),
        );
    }
    Some(port)
}

/// `directories:` a directory Kamal creates on the host and mounts. A name relative to the
/// accessory's directory becomes a coding-job volume, one per task and environment; an absolute
/// host path stays a bind of that path.
fn mount_directory(job: &mut Job, written: &Value, path: &str, reader: &mut Reader) {
    let (local, remote, options) = match written {
        Value::Object(_) => {
            let mut fields = Fields::new(path, written);
            let local = fields.text("local");
            let remote = fields.text("remote");
            let options = fields.text("options");
            reader.leave_rest(fields, |key| match key {
                "mode" | "owner" => Some(
                    "Kamal sets the directory's mode and owner on the host: set them in the image, or have the container set them when it starts",
                ),
                _ => None,
            });
            (local, remote, options)
        }
        other => {
            let text = scalar(other).unwrap_or_default();
            let mut parts = text.splitn(3, ':').map(str::to_string);
            (parts.next(), parts.next(), parts.next())
        }
    };
    let (Some(local), Some(remote)) = (local, remote) else {
        reader.left(path, written, "expected LOCAL:REMOTE or local and remote");
        return;
    };
    if Erb::has_tags(&local) || Erb::has_tags(&remote) {
        let why = "the directory comes from ERB: write its value";
        reader.left(path, written, why);
        return;
    }
    let bind = local.starts_with('/');
    let usable_mount = remote.starts_with('/')
        && !remote.trim_end_matches('/').is_empty()
        && !remote.contains([':', ','])
        && remote.len() <= 2048;
    if bind || !usable_mount {
        let mut text = format!("{local}:{remote}");
        if let Some(options) = &options {
            text.push_str(&format!(":{options}"));
        }
        let text = reader.template(&text, path);
        job.docker_config.push_host("Binds", Value::String(text));
        reader.note(
            path,
            "a directory of the host, kept as a Docker bind (`docker_config.docker_hostconfig.Binds`)",
        );
        return;
    }
    if job.volumes.iter().any(|known| known.mount == remote) {
        let why = "another directory of the accessory is mounted at this path already";
        reader.left(path, written, why);
        return;
    }
    let mut volume = volume_name(&local);
    let mut number = 2;
    while job.volumes.iter().any(|known| known.name == volume) {
        let suffix = format!("-{number}");
        volume = format!("{}{suffix}", &volume[..volume.len().min(40 - suffix.len())]);
        number += 1;
    }
    if let Some(options) = options.filter(|options| !options.trim().is_empty()) {
        let why = "mount options (ro, z) of a directory: a coding-job volume is mounted read-write";
        reader.left(&format!("{path}.options"), &Value::String(options), why);
    }
    reader.note(
        path,
        format!(
            "Kamal keeps it in the directory {local} of the accessory on its host; here it is the coding-job volume {volume}, one per task and environment: copy the existing data into it, or `seed` it from a tarball"
        ),
    );
    job.volumes.push(Volume {
        name: volume,
        mount: remote,
        seed: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    #[test]
    fn published_ports_are_the_containers_with_a_note_for_what_changes() {
        let check = |written: Value, port: Option<u16>, notes: usize| {
            let mut report = Report::default();
            let mut reader = Reader::new(&mut report);
            assert_eq!(
                published_port(&written, "port", &mut reader),
                port,
                "{written}"
            );
            let import = report.finish(Vec::new());
            assert_eq!(import.notes.len(), notes, "{written}: {:?}", import.notes);
        };
        check(Value::from(6379), Some(6379), 0);
        check(Value::from("3306:3306"), Some(3306), 0);
        check(Value::from("0.0.0.0:3306:3306"), Some(3306), 0);
        check(Value::from("127.0.0.1:3306:3306"), Some(3306), 1);
        check(Value::from("8080:80"), Some(80), 1);
        check(Value::from("[::1]:5432:5432"), Some(5432), 1);
        check(Value::from("127.0.0.1:5353:53/udp"), Some(53), 3);
        check(Value::from("web"), None, 0);
    }
}
