//! The settings a job gives its tasks and a task may override (image, command, env, port, host,
//! resources, init, Docker fields, check, volumes, artifact): each written value checked once,
//! where it is written (templates included), then merged into every task.

use std::collections::BTreeMap;

use serde_saphyr::{Location, Spanned};

use crate::docker_fields::{CONTAINER_CONFIG_FIELDS, DockerFields, HOST_CONFIG_FIELDS, Kind};
use crate::error::{did_you_mean, shown};
use crate::limits::{
    MAX_COMMAND_ARGS, MAX_COMMAND_BYTES, MAX_CPUS, MAX_DOCKER_FIELDS_BYTES, MAX_ENV_BYTES,
    MAX_ENV_NAME_BYTES, MAX_ENV_VARS, MAX_IMAGE_TEMPLATE_LEN, MAX_MEMORY_BYTES, MIN_CPUS,
    MIN_MEMORY_BYTES,
};
use crate::model::{ArtifactSpec, Resources, TaskSpec, VolumeSpec};
use crate::parse::Checker;
use crate::raw::{
    EnvValue, MemoryText, RawCheck, RawCommand, RawEnv, RawPort, RawResources, RawSettingsRef,
};
use crate::reference::ImageRef;
use crate::template_syntax::{is_template, read_template, split_command_line};
use crate::units::{format_bytes, parse_memory};

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// A job's or a task's own settings, checked, ready to be merged into tasks.
pub(crate) struct Settings<'a> {
    /// Where they are written (`jobs[0]` or `jobs[0].tasks[1]`), for problems found when merging.
    pub path: String,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub env: Option<Env>,
    pub port: Option<RawPort>,
    pub run_on_host: Option<String>,
    pub resources: Option<Resources>,
    pub init: Option<bool>,
    pub docker_hostconfig: Option<JsonMap>,
    pub docker_config: Option<JsonMap>,
    pub check: Option<&'a Spanned<RawCheck>>,
    pub volumes: Option<Vec<VolumeSpec>>,
    pub artifact: Option<ArtifactSpec>,
    /// About how many bytes env, command and Docker fields take, to bound what copying them into
    /// every task costs.
    pub bytes: usize,
}

/// Environment variables as written in one place, with that place.
pub(crate) struct Env {
    pub vars: BTreeMap<String, String>,
    pub at: Location,
}

impl Checker<'_> {
    /// Checks the settings written at `path`.
    pub(crate) fn settings<'a>(&mut self, path: &str, raw: RawSettingsRef<'a>) -> Settings<'a> {
        let image = raw.image.and_then(|image| self.image(path, image));
        let command = raw
            .command
            .and_then(|command| self.command(&format!("{path}.command"), command));
        let env = raw.env.map(|env| self.env(path, env));
        let run_on_host = raw.run_on_host.map(|host| {
            self.check_name(host, &format!("{path}.run_on_host"), "host");
            host.value.clone()
        });
        let resources = raw
            .resources
            .map(|resources| self.resources(path, resources));
        let mut docker_hostconfig = None;
        let mut docker_config = None;
        let mut bytes = 0;
        if let Some(docker) = raw.docker_config {
            if let Some(fields) = &docker.docker_hostconfig {
                let section = format!("{path}.docker_config.docker_hostconfig");
                bytes += self.docker_fields(&section, fields, HOST_CONFIG_FIELDS, "HostConfig");
                self.docker_templates(&section, fields);
                docker_hostconfig = Some(fields.to_json_map());
            }
            if let Some(fields) = &docker.docker_config {
                let section = format!("{path}.docker_config.docker_config");
                let what = "container Config";
                bytes += self.docker_fields(&section, fields, CONTAINER_CONFIG_FIELDS, what);
                self.docker_templates(&section, fields);
                docker_config = Some(fields.to_json_map());
            }
        }
        let volumes = raw.volumes.and_then(|volumes| self.volumes(path, volumes));
        let artifact = raw
            .artifact
            .and_then(|artifact| self.artifact(path, artifact));
        bytes += env.as_ref().map_or(0, |env| env_bytes(&env.vars));
        bytes += command.as_ref().map_or(0, |argv| command_bytes(argv));
        bytes += volumes.as_ref().map_or(0, |volumes| volume_bytes(volumes));
        bytes += artifact.as_ref().map_or(0, |artifact| {
            artifact.url.len() + artifact.sha256.len() + artifact.path.len()
        });
        Settings {
            path: path.to_owned(),
            image,
            command,
            env,
            port: raw.port.map(|port| port.value),
            run_on_host,
            resources,
            init: raw.init,
            docker_hostconfig,
            docker_config,
            check: raw.check,
            volumes,
            artifact,
            bytes,
        }
    }

    /// A task named `name` with `job`'s settings, overridden by the task's own: scalars replace,
    /// maps (env, Docker fields) merge key by key.
    pub(crate) fn task(&mut self, name: &str, job: &Settings, task: Option<&Settings>) -> TaskSpec {
        let pick = |field: fn(&Settings) -> bool| match task {
            Some(task) if field(task) => task,
            _ => job,
        };
        let mut env = job
            .env
            .as_ref()
            .map(|env| env.vars.clone())
            .unwrap_or_default();
        if let Some(task) = task
            && let Some(task_env) = &task.env
        {
            env.extend(task_env.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            if job.env.is_some() {
                // Each part is checked where it is written; only the merge can be too large.
                self.check_env_size(&task_env.at, &task.path, &env);
            }
        }
        let merged_map = |job_fields: &Option<JsonMap>, task_fields: Option<&JsonMap>| {
            let mut map = job_fields.clone().unwrap_or_default();
            if let Some(fields) = task_fields {
                map.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            map
        };
        let (port, auto_port) = match pick(|s| s.port.is_some()).port {
            Some(RawPort::Fixed(port)) => (port, false),
            Some(RawPort::Auto) => (0, true),
            None => (0, false),
        };
        let with_check = pick(|s| s.check.is_some());
        let check = with_check
            .check
            .and_then(|check| self.check(&with_check.path, check, port, auto_port));
        TaskSpec {
            name: name.to_owned(),
            image: pick(|s| s.image.is_some()).image.clone(),
            command: pick(|s| s.command.is_some()).command.clone(),
            env,
            port,
            auto_port,
            run_on_host: pick(|s| s.run_on_host.is_some()).run_on_host.clone(),
            resources: pick(|s| s.resources.is_some())
                .resources
                .unwrap_or_default(),
            init: pick(|s| s.init.is_some()).init.unwrap_or(true),
            docker_hostconfig: merged_map(
                &job.docker_hostconfig,
                task.and_then(|task| task.docker_hostconfig.as_ref()),
            ),
            docker_config: merged_map(
                &job.docker_config,
                task.and_then(|task| task.docker_config.as_ref()),
            ),
            check,
            placement: Default::default(),
            volumes: pick(|s| s.volumes.is_some())
                .volumes
                .clone()
                .unwrap_or_default(),
            artifact: pick(|s| s.artifact.is_some()).artifact.clone(),
        }
    }

    fn image(&mut self, path: &str, image: &Spanned<String>) -> Option<String> {
        let text = image.value.trim();
        let path = format!("{path}.image");
        if text.is_empty() {
            let message = "expected an image reference, found an empty string";
            self.error(&image.referenced, path, message);
            return None;
        }
        // A templated image is known only once rendered; the server checks it then.
        if is_template(text) && text.len() > MAX_IMAGE_TEMPLATE_LEN {
            let message = format!(
                "the image template is {} bytes; at most {MAX_IMAGE_TEMPLATE_LEN} are accepted",
                text.len()
            );
            self.error(&image.referenced, path, message);
            return None;
        }
        if self.template_value(&image.referenced, &path, text) {
            return Some(text.to_owned());
        }
        match ImageRef::parse(text) {
            Ok(_) => Some(text.to_owned()),
            Err(error) => {
                self.error(&image.referenced, path, error.to_string());
                None
            }
        }
    }

    /// A command (or an `exec` check) as arguments; `path` names the field.
    pub(crate) fn command(
        &mut self,
        path: &str,
        command: &Spanned<RawCommand>,
    ) -> Option<Vec<String>> {
        let at = &command.referenced;
        let argv = match &command.value {
            RawCommand::Argv(argv) => {
                for (index, arg) in argv.iter().enumerate() {
                    self.template_value(at, &format!("{path}[{index}]"), arg);
                }
                argv.clone()
            }
            RawCommand::Line(line) => {
                // The line's templates are read whole, so problems are found at their line.
                let templated = self.template_value(at, path, line);
                let argv = match split_command_line(line) {
                    Ok(argv) => argv,
                    Err(error) => {
                        self.error(at, path, format!("cannot split command: {error}"));
                        return None;
                    }
                };
                let split_a_template = templated
                    && argv
                        .iter()
                        .any(|arg| is_template(arg) && read_template(arg).is_err());
                if split_a_template && read_template(line).is_ok() {
                    let message = "a template here spans several arguments of the command ({% if %} ... {% endif %} with spaces inside); write the command as a list, one argument each";
                    self.error(at, path, message);
                    return None;
                }
                argv
            }
        };
        if argv.is_empty() {
            self.error(at, path, "expected a command, found an empty one");
            return None;
        }
        if argv.len() > MAX_COMMAND_ARGS {
            let message = format!(
                "the command has {} arguments; at most {MAX_COMMAND_ARGS} are accepted",
                argv.len()
            );
            self.error(at, path, message);
            return None;
        }
        let bytes = command_bytes(&argv);
        if bytes > MAX_COMMAND_BYTES {
            let message = format!(
                "the command is {}; at most {} is accepted",
                format_bytes(bytes as u64),
                format_bytes(MAX_COMMAND_BYTES as u64)
            );
            self.error(at, path, message);
            return None;
        }
        if let Some(index) = argv.iter().position(|arg| arg.contains('\0')) {
            let message = format!(
                "argument {} of the command contains a NUL character, which no process can be given",
                index + 1
            );
            self.error(at, path, message);
            return None;
        }
        Some(argv)
    }

    fn env(&mut self, path: &str, raw: &Spanned<RawEnv>) -> Env {
        let at = &raw.referenced;
        let mut vars = BTreeMap::new();
        let entries: Vec<(String, Option<String>, String)> = match &raw.value {
            RawEnv::Map(map) => map
                .iter()
                .map(|(name, value)| {
                    let value = EnvValue::into_string(value.clone());
                    (
                        name.clone(),
                        Some(value),
                        format!("{path}.env{}", key_segment(name)),
                    )
                })
                .collect(),
            RawEnv::List(entries) => entries
                .iter()
                .enumerate()
                .map(|(index, entry)| {
                    let (name, value) = match entry.split_once('=') {
                        Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                        None => (entry.clone(), None),
                    };
                    (name, value, format!("{path}.env[{index}]"))
                })
                .collect(),
        };
        for (name, value, entry_path) in entries {
            if self.refuse_template_in(at, &entry_path, &name, "env names") {
                continue;
            }
            let Some(value) = value else {
                let message = format!("expected NAME=value, found \"{}\"", shown(&name));
                self.error(at, entry_path, message);
                continue;
            };
            if !is_valid_env_name(&name) {
                let message = format!(
                    "invalid environment variable name \"{}\": expected 1 to {MAX_ENV_NAME_BYTES} bytes without '=', spaces or control characters",
                    shown(&name)
                );
                self.error(at, entry_path, message);
            } else if value.contains('\0') {
                let message = format!(
                    "the value of environment variable \"{}\" contains a NUL character, which no process can be given",
                    shown(&name)
                );
                self.error(at, entry_path, message);
            } else {
                self.template_value(at, &entry_path, &value);
                vars.insert(name, value);
            }
        }
        self.check_env_size(at, path, &vars);
        Env {
            vars,
            at: at.to_owned(),
        }
    }

    fn check_env_size(&mut self, at: &Location, path: &str, env: &BTreeMap<String, String>) {
        let path = format!("{path}.env");
        if env.len() > MAX_ENV_VARS {
            let message = format!(
                "the environment has {} variables; at most {MAX_ENV_VARS} are accepted",
                env.len()
            );
            self.error(at, path, message);
        } else if env_bytes(env) > MAX_ENV_BYTES {
            let message = format!(
                "the environment is {}; at most {} is accepted (put larger data in a file and mount it)",
                format_bytes(env_bytes(env) as u64),
                format_bytes(MAX_ENV_BYTES as u64)
            );
            self.error(at, path, message);
        }
    }

    fn resources(&mut self, path: &str, raw: &RawResources) -> Resources {
        let memory_bytes = raw.memory.as_ref().and_then(|memory| {
            let bytes = match &memory.value {
                MemoryText::Bytes(bytes) => Some(*bytes),
                MemoryText::Text(text) => parse_memory(text),
            };
            let in_range = bytes.filter(|b| (MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(b));
            if in_range.is_none() {
                let message = format!(
                    "expected a memory size from {} to {}, such as 256m, 1g or a number of bytes",
                    format_bytes(MIN_MEMORY_BYTES),
                    format_bytes(MAX_MEMORY_BYTES)
                );
                self.error(
                    &memory.referenced,
                    format!("{path}.resources.memory"),
                    message,
                );
            }
            in_range
        });
        let nano_cpus = raw.cpu.as_ref().and_then(|cpu| {
            if (MIN_CPUS..=MAX_CPUS).contains(&cpu.value) {
                // Bounded above, so the product is far inside u64.
                Some((cpu.value * 1e9).round() as u64)
            } else {
                let message =
                    format!("expected a number of CPUs from {MIN_CPUS} to {MAX_CPUS}, e.g. 0.5");
                self.error(&cpu.referenced, format!("{path}.resources.cpu"), message);
                None
            }
        });
        Resources {
            memory_bytes,
            nano_cpus,
        }
    }

    /// Checks one Docker section by Docker's names and kinds; returns about how many bytes it
    /// takes as JSON.
    fn docker_fields(
        &mut self,
        path: &str,
        fields: &DockerFields,
        known: &[(&str, Kind)],
        what: &str,
    ) -> usize {
        let mut bytes = 0;
        for (key, value) in &fields.0 {
            bytes += key.value.len() + json_bytes(value);
            let field_path = format!("{path}{}", key_segment(&key.value));
            let key_text = shown(&key.value);
            match known.iter().find(|(name, _)| *name == key.value) {
                Some((_, kind)) if !kind.matches(value) => self.error(
                    &key.referenced,
                    field_path,
                    format!(
                        "expected {} for Docker's {what} field {key_text}",
                        kind.describe()
                    ),
                ),
                Some(_) if json_has_nul(value) => self.error(
                    &key.referenced,
                    field_path,
                    format!(
                        "the Docker {what} field {key_text} contains a NUL character, which Docker refuses"
                    ),
                ),
                Some(_) => {}
                None => {
                    let mut message = format!("unknown Docker {what} field \"{key_text}\"");
                    let names = known.iter().map(|(name, _)| *name);
                    // Past the reported problems this one is only counted: spare the hint.
                    let hint = (!self.is_full()).then(|| did_you_mean(&key.value, names));
                    if let Some(hint) = hint.flatten() {
                        message.push_str(&format!(", did you mean \"{hint}\"?"));
                    }
                    message.push_str(
                        " (fields use the Docker Engine API's names, e.g. Binds, NetworkMode)",
                    );
                    self.error(&key.referenced, field_path, message);
                }
            }
        }
        if bytes > MAX_DOCKER_FIELDS_BYTES
            && let Some((first, _)) = fields.0.first()
        {
            let message = format!(
                "these Docker fields take about {}; at most {} is accepted",
                format_bytes(bytes as u64),
                format_bytes(MAX_DOCKER_FIELDS_BYTES as u64)
            );
            self.error(&first.referenced, path, message);
        }
        bytes
    }
}

/// 1 to [`MAX_ENV_NAME_BYTES`] bytes, without `=` (it ends the name), whitespace or control
/// characters (Docker and shells cannot pass them).
pub fn is_valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ENV_NAME_BYTES
        && !name
            .chars()
            .any(|c| c == '=' || c.is_whitespace() || c.is_control())
}

/// A map key as a path segment: `.NAME`, or `["NAME"]` for a key that would not read as one.
pub(crate) fn key_segment(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if plain {
        format!(".{key}")
    } else {
        format!("[\"{}\"]", shown(key))
    }
}

/// Bytes of the environment as a process gets it: `NAME=value\0` for each variable.
pub fn env_bytes(env: &BTreeMap<String, String>) -> usize {
    env.iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum()
}

/// Bytes of volumes as stored, about.
fn volume_bytes(volumes: &[VolumeSpec]) -> usize {
    volumes
        .iter()
        .map(|volume| {
            volume.name.len() + volume.mount.len() + volume.seed.as_ref().map_or(0, String::len)
        })
        .sum()
}

/// Bytes of a command as a process gets it: each argument and its terminating NUL.
pub fn command_bytes(argv: &[String]) -> usize {
    argv.iter().map(|arg| arg.len() + 1).sum()
}

/// About how many bytes `value` takes as JSON.
pub fn json_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => items.iter().map(|item| json_bytes(item) + 1).sum::<usize>() + 2,
        Value::Object(map) => {
            let entries: usize = map
                .iter()
                .map(|(key, item)| key.len() + 4 + json_bytes(item))
                .sum();
            entries + 2
        }
    }
}

/// Whether any string (or key) in `value` contains NUL.
fn json_has_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || json_has_nul(item)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}
