//! `container`: the Docker image and its settings, and the volumes. Host paths become Docker
//! binds; Marathon's persistent and external volumes become the job's named volumes, which
//! coding-job creates per task and environment on the task's host.

use std::collections::BTreeSet;

use serde_json::Value;

use cj_spec::limits::MAX_VOLUMES;

use super::{Context, docker_params};
use crate::fields::{Fields, item};
use crate::service_file::{Job, Volume};
use crate::text::{self, literal};

/// Where Mesos mounted a task's sandbox in its container: relative container paths are in it.
const SANDBOX: &str = "/mnt/mesos/sandbox";

/// What the container says about networking, read with the app's own keys in [`super::ports`].
#[derive(Debug, Default)]
pub(super) struct Container<'a> {
    /// `container.docker.network` (Marathon before 1.5), with its path.
    pub network: Option<(String, String)>,
    /// `container.portMappings` (1.5 and later) or `container.docker.portMappings`.
    pub mappings: Option<(String, &'a Value)>,
    /// Whether it names a Docker image the job carries.
    pub image: bool,
}

pub(super) fn read<'a>(
    context: &mut Context,
    app: &mut Fields<'a>,
    job: &mut Job,
) -> Container<'a> {
    let mut found = Container::default();
    let Some(value) = app.take("container") else {
        return found;
    };
    let mut fields = Fields::new(app.at("container"), value);
    match fields.text("type").as_deref() {
        None | Some("DOCKER") | Some("MESOS") => {}
        Some(other) => {
            let why = "not a container type Marathon knows (DOCKER, MESOS): the image is read as a Docker image";
            context.left(fields.at("type"), other, why);
        }
    }
    if let Some(docker) = fields.take("docker") {
        read_docker(
            context,
            Fields::new(fields.at("docker"), docker),
            job,
            &mut found,
        );
    }
    if let Some(mappings) = fields.take("portMappings") {
        if let Some((older, older_mappings)) = found.mappings.take()
            && !text::is_unset(older_mappings)
        {
            let why =
                "the place of portMappings before Marathon 1.5; container.portMappings was read";
            context.left(older, text::shown(older_mappings), why);
        }
        found.mappings = Some((fields.at("portMappings"), mappings));
    }
    if let Some(force) = fields.take("forcePullImage") {
        force_pull(context, &fields.at("forcePullImage"), force);
    }
    if let Some(volumes) = fields.take("volumes") {
        read_volumes(context, &fields.at("volumes"), volumes, job);
    }
    fields.leave_rest(context.report, |key| match key {
        "appc" => Some("App Container images are not imported: coding-job runs Docker images"),
        "linuxInfo" => Some("Mesos Linux settings have no counterpart: set Docker's (SecurityOpt, IpcMode, ShmSize) under docker_config.docker_hostconfig"),
        _ => None,
    });
    found
}

fn read_docker<'a>(
    context: &mut Context,
    mut fields: Fields<'a>,
    job: &mut Job,
    found: &mut Container<'a>,
) {
    let image_path = fields.at("image");
    if let Some(image) = fields.text("image") {
        let image = image.trim();
        match cj_spec::ImageRef::parse(image) {
            Ok(_) => {
                job.image = Some(literal(image));
                found.image = true;
            }
            Err(error) => {
                let why = format!(
                    "not an image reference Docker accepts ({error}): set the job's image by hand"
                );
                context.left(image_path, image, why);
            }
        }
    }
    if let Some(network) = fields.text("network") {
        found.network = Some((fields.at("network"), network));
    }
    if let Some(mappings) = fields.take("portMappings") {
        found.mappings = Some((fields.at("portMappings"), mappings));
    }
    if fields.take("privileged") == Some(&Value::Bool(true)) {
        let privileged = Value::Bool(true);
        job.docker_config
            .docker_hostconfig
            .insert("Privileged".into(), privileged);
    }
    if let Some(force) = fields.take("forcePullImage") {
        force_pull(context, &fields.at("forcePullImage"), force);
    }
    let parameters_path = fields.at("parameters");
    match fields.take("parameters") {
        Some(Value::Array(parameters)) => {
            docker_params::apply(context, &parameters_path, parameters, job)
        }
        None | Some(Value::Null) => {}
        Some(other) => context.left(
            parameters_path,
            text::shown(other),
            "expected a list of {key, value}",
        ),
    }
    fields.leave_rest(context.report, |key| match key {
        "credential" | "pullConfig" => Some("registry credentials are not carried: coding-job's agents pull images without credentials, so the image must be pullable without them (or present on each host)"),
        _ => None,
    });
}

fn force_pull(context: &mut Context, path: &str, force: &Value) {
    if force == &Value::Bool(true) {
        let why = "coding-job pulls an image only when the host lacks it: give each build a new tag (`coding-job update JOB --tag TAG`) rather than reusing one";
        context.left(path, "true", why);
    }
}

fn read_volumes(context: &mut Context, path: &str, value: &Value, job: &mut Job) {
    let Value::Array(volumes) = value else {
        if !text::is_unset(value) {
            context.left(path, text::shown(value), "expected a list of volumes");
        }
        return;
    };
    let mut names = BTreeSet::new();
    for (index, volume) in volumes.iter().enumerate() {
        let volume_path = item(path, index);
        let mut fields = Fields::new(volume_path.clone(), volume);
        let container_path = fields.text("containerPath");
        let host_path = fields.text("hostPath");
        let mode = fields.text("mode").unwrap_or_else(|| "RW".into());
        let persistent = fields.take("persistent");
        let external = fields.take("external");
        let secret = fields.take("secret");
        let what = container_path
            .clone()
            .unwrap_or_else(|| text::shown(volume));
        let Some(container_path) = container_path.filter(|path| !path.is_empty()) else {
            context.left(
                &volume_path,
                what,
                "a volume without containerPath mounts nowhere",
            );
            continue;
        };
        let container_path_at = fields.at("containerPath");
        if let Some(secret) = secret {
            let why = format!(
                "a secret as a file (secret {}) has no counterpart: coding-job passes secrets as environment variables (secret_env)",
                text::shown(secret)
            );
            context.left(&volume_path, what, why);
        } else if let Some(host_path) = host_path {
            let mount = in_container(context, &container_path_at, &container_path);
            bind(context, &volume_path, &host_path, &mount, &mode, job);
        } else if persistent.is_some() || external.is_some() {
            if job.volumes.len() >= MAX_VOLUMES {
                let why = format!("a task has at most {MAX_VOLUMES} volumes");
                context.left(&volume_path, what, why);
                continue;
            }
            let mount = in_container(context, &container_path_at, &container_path);
            let taken = job
                .volumes
                .iter()
                .any(|volume| volume.mount.trim_end_matches('/') == mount.trim_end_matches('/'));
            let problem = mount_problem(&mount)
                .or_else(|| {
                    cj_spec::is_template(&mount).then(|| {
                        "template syntax ({{, {%) is not allowed in a volume's mount".to_string()
                    })
                })
                .or_else(|| {
                    taken.then(|| "another volume of the app is mounted there already".to_string())
                });
            if let Some(problem) = problem {
                context.left(&volume_path, what, problem);
                continue;
            }
            if mode.eq_ignore_ascii_case("RO") {
                let why = "coding-job mounts its volumes read-write";
                context.left(fields.at("mode"), mode.as_str(), why);
            }
            let wanted = match external
                .and_then(|external| external.get("name"))
                .and_then(Value::as_str)
            {
                Some(name) => name,
                None => container_path
                    .rsplit('/')
                    .find(|part| !part.is_empty())
                    .unwrap_or("data"),
            };
            let name = volume_name(wanted, &mut names);
            if let Some(persistent) = persistent {
                let persistent_path = fields.at("persistent");
                Fields::new(persistent_path, persistent).leave_rest(context.report, |key| match key {
                    "size" | "maxSize" => Some("Docker volumes have no size: coding-job neither reserves nor limits it"),
                    _ => Some("Mesos disk settings have no counterpart: the volume is a Docker volume on the task's host"),
                });
            }
            if let Some(external) = external {
                let mut external_fields = Fields::new(fields.at("external"), external);
                external_fields.take("name");
                external_fields.leave_rest(context.report, |_| {
                    Some("coding-job creates a local Docker volume per task and environment: the external volume, its driver and its data are not attached (copy the data in, or seed the volume: `seed:`)")
                });
            }
            context.note_once(
                "volumes",
                &volume_path,
                "volumes are Docker volumes on the task's host, one per task and environment: a task placed on another host starts with an empty one (pin tasks with `hosts:` to keep their data)",
            );
            job.volumes.push(Volume {
                name,
                mount,
                seed: None,
            });
        } else {
            let why = "expected hostPath, persistent or external";
            context.left(&volume_path, what, why);
        }
        fields.leave_rest(context.report, |_| None);
    }
}

/// A container path as coding-job mounts it: relative ones are in the Mesos sandbox.
fn in_container(context: &mut Context, path: &str, container_path: &str) -> String {
    if container_path.starts_with('/') {
        return container_path.to_string();
    }
    let mount = format!("{SANDBOX}/{}", container_path.trim_start_matches("./"));
    let note = format!(
        "a relative containerPath is in the task's Mesos sandbox, which Mesos mounted at {SANDBOX}: mounted at {mount}"
    );
    context.note(path, note);
    mount
}

/// `hostPath` bound into the container: `HOST:CONTAINER:ro|rw`, as Docker's `Binds` write it.
fn bind(
    context: &mut Context,
    path: &str,
    host_path: &str,
    mount: &str,
    mode: &str,
    job: &mut Job,
) {
    let what = format!("{host_path}:{mount}");
    let named_volume = !host_path.starts_with('/')
        && host_path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !host_path.starts_with('/') && !named_volume {
        let why = "a hostPath relative to the Mesos sandbox has no counterpart: bind an absolute host path";
        context.left(path, what, why);
        return;
    }
    if let Some(problem) = mount_problem(mount).or_else(|| part_problem(host_path)) {
        context.left(path, what, problem);
        return;
    }
    let mode = match mode.to_ascii_lowercase().as_str() {
        "ro" => "ro",
        "rw" => "rw",
        other => {
            let why = format!("not a volume mode Marathon knows (RO, RW): {other}");
            context.left(path, what, why);
            return;
        }
    };
    if named_volume {
        let note = format!(
            "hostPath {host_path} is a Docker volume name: a volume of that name on each host, shared by every task there"
        );
        context.note(path, note);
    }
    job.docker_config
        .push_host("Binds", literal(&format!("{host_path}:{mount}:{mode}")));
}

/// Why `mount` cannot be mounted at, if it cannot (the config's rule for `mount`).
fn mount_problem(mount: &str) -> Option<String> {
    if mount.trim_end_matches('/').is_empty() {
        return Some("a volume cannot be mounted at / (the container's whole filesystem)".into());
    }
    if mount.len() > 2048 {
        return Some("the container path is longer than the 2048 bytes the config accepts".into());
    }
    part_problem(mount)
}

/// Docker's mount syntaxes separate their parts with ':' and ','.
fn part_problem(part: &str) -> Option<String> {
    part.chars()
        .any(|c| c.is_control() || c == ':' || c == ',')
        .then(|| {
            "the path holds ':', ',' or a control character, which Docker's mounts cannot hold"
                .to_string()
        })
}

/// A volume name the config accepts ([`text::volume_name`]), unique among `taken`.
fn volume_name(raw: &str, taken: &mut BTreeSet<String>) -> String {
    let base: String = text::volume_name(raw).chars().take(36).collect();
    let base = base.trim_end_matches('-').to_string();
    let mut name = base.clone();
    let mut number = 2;
    while taken.contains(&name) {
        name = format!("{base}-{number}");
        number += 1;
    }
    taken.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_follow_the_configs_rule() {
        let mut taken = BTreeSet::new();
        assert_eq!(volume_name("pgdata", &mut taken), "pgdata");
        assert_eq!(volume_name("pgdata", &mut taken), "pgdata-2");
        assert_eq!(volume_name("My_Vol.1", &mut taken), "my-vol-1");
        assert_eq!(volume_name("9x", &mut taken), "x");
        assert_eq!(volume_name("db_data", &mut taken), "db-data");
        assert_eq!(volume_name("__", &mut taken), "data");
        assert!(volume_name(&"a".repeat(60), &mut taken).len() <= 40);
    }

    #[test]
    fn mounts_docker_cannot_hold_are_found() {
        assert_eq!(mount_problem("/data"), None);
        assert!(mount_problem("/").is_some());
        assert!(mount_problem("/a:b").is_some());
        assert!(part_problem("/a,b").is_some());
    }
}
