//! From YAML text to a checked, resolved [`ServiceSpec`]: syntax and shape first (serde), then the
//! checks that need the whole file (names, dependencies, Docker fields), then job defaults merged
//! into every task.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::{Location, Spanned};

use crate::docker_fields::{CONTAINER_CONFIG_FIELDS, DockerFields, HOST_CONFIG_FIELDS, Kind};
use crate::error::{SpecError, SpecErrors, did_you_mean};
use crate::model::{JobSpec, Resources, ServiceSpec, TaskSpec};
use crate::order::dependency_waves;
use crate::raw::{EnvValue, MemoryText, RawCommand, RawEnv, RawJob, RawService, RawSettingsRef};
use crate::units::parse_memory;

/// Parses and checks one service file. `file` is only used to name the file in errors.
pub fn parse_service(file: &str, source: &str) -> Result<ServiceSpec, SpecErrors> {
    let raw = parse_raw(file, source)?;
    let mut checker = Checker {
        file,
        errors: Vec::new(),
    };
    let spec = checker.resolve(&raw);
    if checker.errors.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors(checker.errors))
    }
}

pub(crate) fn parse_raw(file: &str, source: &str) -> Result<RawService, SpecErrors> {
    if source.trim().is_empty() {
        return Err(SpecErrors(vec![SpecError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            path: ".".into(),
            message: "the file is empty: expected a mapping with `service` and `jobs`".into(),
        }]));
    }
    let mut path = String::from(".");
    let parsed = serde_saphyr::with_deserializer_from_str(source, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            path = without_span_segments(&error.path().to_string());
            error.into_inner()
        })
    });
    parsed.map_err(|error| {
        let (line, column) = error
            .location()
            .map(|at| (at.line(), at.column()))
            .unwrap_or((0, 0));
        let message = explain(&strip_location(&error.to_string()));
        SpecErrors(vec![SpecError {
            file: file.to_owned(),
            line,
            column,
            path,
            message,
        }])
    })
}

/// The field path as a user wrote it: `Spanned` wrappers add a `.value` segment that is ours.
fn without_span_segments(path: &str) -> String {
    let cleaned = path.replace(".value[", "[").replace(".value.", ".");
    let cleaned = cleaned.strip_suffix(".value").unwrap_or(&cleaned);
    // serde_path_to_error writes `?` for a key it could not read (a syntax error inside it).
    let cleaned = cleaned.strip_suffix(".?").unwrap_or(cleaned);
    cleaned.to_owned()
}

/// serde-saphyr's bare message, without the location and source snippet it renders itself.
fn strip_location(rendered: &str) -> String {
    let first_line = rendered.lines().next().unwrap_or_default();
    let without_prefix = first_line.strip_prefix("error: ").unwrap_or(first_line);
    // "line 4 column 5: message" or "message at line 4, column 5"
    let without_prefix = match without_prefix.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest,
        _ => without_prefix,
    };
    match without_prefix.rfind(" at line ") {
        Some(at) => without_prefix[..at].to_owned(),
        None => without_prefix.to_owned(),
    }
}

/// Rewrites serde's terse messages into what a person needs: the allowed keys and a likely fix.
fn explain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = rest
            .trim_start_matches([',', ' '])
            .trim_start_matches("expected one of ")
            .trim_start_matches("expected ")
            .split(", ")
            .map(|name| name.trim_matches('`'))
            .filter(|name| !name.is_empty())
            .collect();
        let mut text = format!("unknown field \"{field}\"");
        if let Some(hint) = did_you_mean(field, expected.iter().copied()) {
            text.push_str(&format!(", did you mean \"{hint}\"?"));
        }
        text.push_str(&format!(" (expected one of: {})", expected.join(", ")));
        return text;
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return format!("missing required field \"{field}\"");
    }
    message.replace('`', "\"")
}

pub(crate) struct Checker<'a> {
    pub file: &'a str,
    pub errors: Vec<SpecError>,
}

impl Checker<'_> {
    pub fn error(&mut self, at: &Location, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError {
            file: self.file.to_owned(),
            line: at.line(),
            column: at.column(),
            path: path.into(),
            message: message.into(),
        });
    }

    fn check_name(&mut self, name: &Spanned<String>, path: &str, what: &str) {
        let valid = name.value.len() <= 63
            && name
                .value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            self.error(
                &name.referenced,
                path,
                format!(
                    "invalid {what} name \"{}\": expected 1 to 63 letters, digits, '-', '_' or '.', \
                     starting with a letter or digit",
                    name.value
                ),
            );
        }
    }

    fn resolve(&mut self, raw: &RawService) -> ServiceSpec {
        self.check_name(&raw.service, "service", "service");
        if raw.jobs.value.is_empty() {
            self.error(&raw.jobs.referenced, "jobs", "expected at least one job");
        }
        let mut seen_jobs = BTreeSet::new();
        for (index, job) in raw.jobs.value.iter().enumerate() {
            let path = format!("jobs[{index}].name");
            self.check_name(&job.name, &path, "job");
            if !seen_jobs.insert(job.name.value.as_str()) {
                self.error(
                    &job.name.referenced,
                    path,
                    format!("duplicate job name \"{}\"", job.name.value),
                );
            }
        }
        let jobs: Vec<JobSpec> = raw
            .jobs
            .value
            .iter()
            .enumerate()
            .map(|(index, job)| self.resolve_job(raw, index, job))
            .collect();
        self.check_dependency_cycles(raw, &jobs);
        ServiceSpec {
            service: raw.service.value.clone(),
            jobs,
        }
    }

    fn resolve_job(&mut self, raw: &RawService, index: usize, job: &RawJob) -> JobSpec {
        let path = format!("jobs[{index}]");
        let job_names: Vec<&str> = raw
            .jobs
            .value
            .iter()
            .map(|j| j.name.value.as_str())
            .collect();
        for (dep_index, dependency) in job.depends_on.iter().enumerate() {
            let dep_path = format!("{path}.depends_on[{dep_index}]");
            if dependency.value == job.name.value {
                self.error(
                    &dependency.referenced,
                    dep_path,
                    format!("job \"{}\" depends on itself", job.name.value),
                );
            } else if !job_names.contains(&dependency.value.as_str()) {
                let mut message = format!("unknown job \"{}\"", dependency.value);
                if let Some(hint) = did_you_mean(&dependency.value, job_names.iter().copied()) {
                    message.push_str(&format!(", did you mean \"{hint}\"?"));
                }
                message.push_str(&format!(
                    " (jobs in this service: {})",
                    job_names.join(", ")
                ));
                self.error(&dependency.referenced, dep_path, message);
            }
        }

        let job_settings = job.settings();
        let mut tasks = Vec::new();
        let layouts = [
            job.tasks.is_some(),
            job.instances.is_some(),
            job.hosts.is_some(),
        ];
        if layouts.iter().filter(|given| **given).count() > 1 {
            self.error(
                &job.name.referenced,
                &path,
                "give only one of `tasks`, `instances` or `hosts` to say which tasks the job runs",
            );
        } else if let Some(raw_tasks) = &job.tasks {
            if raw_tasks.value.is_empty() {
                self.error(
                    &raw_tasks.referenced,
                    format!("{path}.tasks"),
                    "expected at least one task",
                );
            }
            let mut seen = BTreeSet::new();
            for (task_index, task) in raw_tasks.value.iter().enumerate() {
                let task_path = format!("{path}.tasks[{task_index}]");
                self.check_name(&task.name, &format!("{task_path}.name"), "task");
                if !seen.insert(task.name.value.as_str()) {
                    self.error(
                        &task.name.referenced,
                        format!("{task_path}.name"),
                        format!(
                            "duplicate task name \"{}\" in job \"{}\"",
                            task.name.value, job.name.value
                        ),
                    );
                }
                let spec = self.merge(&task_path, &task.name.value, job_settings, task.settings());
                tasks.push(spec);
            }
        } else if let Some(instances) = &job.instances {
            if instances.value == 0 || instances.value > 1000 {
                self.error(
                    &instances.referenced,
                    format!("{path}.instances"),
                    "expected a number from 1 to 1000",
                );
            }
            for number in 1..=instances.value.min(1000) {
                let name = format!("{}-{number}", job.name.value);
                tasks.push(self.merge(&path, &name, job_settings, RawSettingsRef::EMPTY));
            }
        } else if let Some(hosts) = &job.hosts {
            if hosts.value.is_empty() {
                self.error(
                    &hosts.referenced,
                    format!("{path}.hosts"),
                    "expected at least one host",
                );
            }
            for host in &hosts.value {
                let name = format!("{}-{}", job.name.value, host.value);
                let mut spec = self.merge(&path, &name, job_settings, RawSettingsRef::EMPTY);
                spec.run_on_host = Some(host.value.clone());
                tasks.push(spec);
            }
        } else {
            tasks.push(self.merge(&path, &job.name.value, job_settings, RawSettingsRef::EMPTY));
        }

        JobSpec {
            name: job.name.value.clone(),
            depends_on: job.depends_on.iter().map(|d| d.value.clone()).collect(),
            on_failure: job.on_failure.unwrap_or_default(),
            update: job
                .update
                .as_ref()
                .map(|update| self.update_policy(&path, update))
                .unwrap_or_default(),
            tasks,
        }
    }

    /// A task's settings over its job's: scalars replace, maps (env, Docker fields) merge key by key.
    fn merge(
        &mut self,
        path: &str,
        name: &str,
        job: RawSettingsRef,
        task: RawSettingsRef,
    ) -> TaskSpec {
        let image = task.image.or(job.image);
        if let Some(image) = image
            && image.value.trim().is_empty()
        {
            self.error(
                &image.referenced,
                format!("{path}.image"),
                "expected an image reference, found an empty string",
            );
        }
        let command = task
            .command
            .or(job.command)
            .and_then(|command| self.command(path, command));
        let mut env = BTreeMap::new();
        for settings in [job, task] {
            if let Some(raw_env) = settings.env {
                self.extend_env(path, raw_env, &mut env);
            }
        }
        let mut docker_hostconfig = serde_json::Map::new();
        let mut docker_config = serde_json::Map::new();
        for settings in [job, task] {
            if let Some(docker) = settings.docker_config {
                if let Some(fields) = &docker.docker_hostconfig {
                    let field_path = format!("{path}.docker_config.docker_hostconfig");
                    self.check_docker_fields(&field_path, fields, HOST_CONFIG_FIELDS, "HostConfig");
                    docker_hostconfig.extend(fields.to_json_map());
                }
                if let Some(fields) = &docker.docker_config {
                    let field_path = format!("{path}.docker_config.docker_config");
                    self.check_docker_fields(
                        &field_path,
                        fields,
                        CONTAINER_CONFIG_FIELDS,
                        "container Config",
                    );
                    docker_config.extend(fields.to_json_map());
                }
            }
        }
        let resources = self.resources(path, task.resources.or(job.resources));
        let port = task.port.or(job.port).map(|port| port.value.0).unwrap_or(0);
        let check = task
            .check
            .or(job.check)
            .and_then(|check| self.check(path, check, port));
        TaskSpec {
            name: name.to_owned(),
            image: image.map(|image| image.value.trim().to_owned()),
            command,
            env,
            port,
            run_on_host: task
                .run_on_host
                .or(job.run_on_host)
                .map(|host| host.value.clone()),
            resources,
            init: task.init.or(job.init).unwrap_or(true),
            docker_hostconfig,
            docker_config,
            check,
        }
    }

    pub fn command(&mut self, path: &str, command: &Spanned<RawCommand>) -> Option<Vec<String>> {
        let at = &command.referenced;
        let argv = match &command.value {
            RawCommand::Argv(argv) => argv.clone(),
            RawCommand::Line(line) => match shell_words::split(line) {
                Ok(argv) => argv,
                Err(error) => {
                    self.error(
                        at,
                        format!("{path}.command"),
                        format!("cannot split command: {error}"),
                    );
                    return None;
                }
            },
        };
        if argv.is_empty() {
            self.error(
                at,
                format!("{path}.command"),
                "expected a command, found an empty one",
            );
            return None;
        }
        Some(argv)
    }

    fn extend_env(
        &mut self,
        path: &str,
        raw_env: &Spanned<RawEnv>,
        env: &mut BTreeMap<String, String>,
    ) {
        match &raw_env.value {
            RawEnv::Map(map) => {
                for (name, value) in map {
                    env.insert(name.clone(), EnvValue::into_string(value.clone()));
                }
            }
            RawEnv::List(entries) => {
                for (index, entry) in entries.iter().enumerate() {
                    match entry.split_once('=') {
                        Some((name, value)) if !name.is_empty() => {
                            env.insert(name.to_owned(), value.to_owned());
                        }
                        _ => self.error(
                            &raw_env.referenced,
                            format!("{path}.env[{index}]"),
                            format!("expected NAME=value, found \"{entry}\""),
                        ),
                    }
                }
            }
        }
    }

    fn resources(&mut self, path: &str, raw: Option<&crate::raw::RawResources>) -> Resources {
        let Some(raw) = raw else {
            return Resources::default();
        };
        let memory_bytes = raw.memory.as_ref().and_then(|memory| {
            let bytes = match &memory.value {
                MemoryText::Bytes(bytes) => Some(*bytes).filter(|bytes| *bytes > 0),
                MemoryText::Text(text) => parse_memory(text),
            };
            if bytes.is_none() {
                self.error(
                    &memory.referenced,
                    format!("{path}.resources.memory"),
                    "expected a memory size such as 256m, 1g or a number of bytes",
                );
            }
            bytes
        });
        let nano_cpus = raw.cpu.as_ref().and_then(|cpu| {
            if cpu.value > 0.0 && cpu.value <= 1024.0 {
                Some((cpu.value * 1e9) as u64)
            } else {
                self.error(
                    &cpu.referenced,
                    format!("{path}.resources.cpu"),
                    "expected a number of CPUs greater than 0, e.g. 0.5",
                );
                None
            }
        });
        Resources {
            memory_bytes,
            nano_cpus,
        }
    }

    fn check_docker_fields(
        &mut self,
        path: &str,
        fields: &DockerFields,
        known: &[(&str, Kind)],
        what: &str,
    ) {
        for (key, value) in &fields.0 {
            let field_path = format!("{path}.{}", key.value);
            match known.iter().find(|(name, _)| *name == key.value) {
                Some((_, kind)) if !kind.matches(value) => self.error(
                    &key.referenced,
                    field_path,
                    format!(
                        "expected {} for Docker's {what} field {}",
                        kind.describe(),
                        key.value
                    ),
                ),
                Some(_) => {}
                None => {
                    let mut message = format!("unknown Docker {what} field \"{}\"", key.value);
                    if let Some(hint) =
                        did_you_mean(&key.value, known.iter().map(|(name, _)| *name))
                    {
                        message.push_str(&format!(", did you mean \"{hint}\"?"));
                    }
                    message.push_str(
                        " (fields use the Docker Engine API's names, e.g. Binds, NetworkMode)",
                    );
                    self.error(&key.referenced, field_path, message);
                }
            }
        }
    }

    fn check_dependency_cycles(&mut self, raw: &RawService, jobs: &[JobSpec]) {
        // A job naming itself is reported on its own; leave it out so it is not reported twice.
        let edges: Vec<(&str, Vec<String>)> = jobs
            .iter()
            .map(|job| {
                (
                    job.name.as_str(),
                    job.depends_on
                        .iter()
                        .filter(|d| **d != job.name)
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        if let Err(cycle) =
            dependency_waves(edges.iter().map(|(name, deps)| (*name, deps.as_slice())))
        {
            let first = cycle.0.first().cloned().unwrap_or_default();
            let (index, job) = raw
                .jobs
                .value
                .iter()
                .enumerate()
                .find(|(_, job)| job.name.value == first)
                .expect("a cycle names jobs of this file");
            self.error(
                &job.name.referenced,
                format!("jobs[{index}].depends_on"),
                cycle.to_string(),
            );
        }
    }
}

impl RawSettingsRef<'_> {
    pub(crate) const EMPTY: RawSettingsRef<'static> = RawSettingsRef {
        check: None,
        image: None,
        command: None,
        env: None,
        port: None,
        run_on_host: None,
        resources: None,
        init: None,
        docker_config: None,
    };
}
