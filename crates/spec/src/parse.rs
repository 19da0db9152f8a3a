//! From YAML text to a checked, resolved [`ServiceSpec`]: syntax and shape first (serde, in
//! [`crate::yaml`]), then the checks that need the whole file (names, dependencies, Docker
//! fields, bounds), then job defaults merged into every task.

use std::collections::{HashMap, HashSet};

use serde_saphyr::{Location, Spanned};

use crate::error::{MAX_MESSAGE_CHARS, MAX_PATH_CHARS, SpecError, SpecErrors, capped, shown};
use crate::limits::{MAX_EXPANDED_BYTES, MAX_JOBS, MAX_REPORTED_ERRORS, MAX_TASKS};
use crate::locate::Locator;
use crate::model::{JobSpec, ServiceSpec};
use crate::names::NameSource;
use crate::raw::{Count, RawJob, RawService};
use crate::template_sites::TemplateUse;
use crate::units::format_bytes;
use crate::yaml::parse_raw;

/// Parses and checks one service file. `file` is only used to name the file in errors.
pub fn parse_service(file: &str, source: &str) -> Result<ServiceSpec, SpecErrors> {
    parse_with_templates(file, source).map(|(spec, _)| spec)
}

/// [`parse_service`], with every name the file's templates use and where.
pub(crate) fn parse_with_templates(
    file: &str,
    source: &str,
) -> Result<(ServiceSpec, Vec<TemplateUse>), SpecErrors> {
    let raw = parse_raw(file, source)?;
    let mut checker = Checker::new(file, source);
    let spec = checker.resolve(&raw);
    let uses = std::mem::take(&mut checker.template_uses);
    checker.finish(spec).map(|spec| (spec, uses))
}

/// Collects the problems of one file while resolving it, so all of them are reported at once.
pub(crate) struct Checker<'a> {
    file: &'a str,
    source: &'a str,
    /// Where each value of the file is, read only once a template needs it.
    locator: Option<Locator>,
    /// Every name a template uses, once per place (a job's check is checked for each task).
    pub(crate) template_uses: Vec<TemplateUse>,
    pub(crate) template_uses_seen: HashSet<TemplateUse>,
    errors: Vec<SpecError>,
    /// Problems already reported (location, path, message): a job's setting is merged into each
    /// of its tasks, and its problem is reported once.
    reported: HashSet<(u64, u64, String, String)>,
    /// Problems beyond [`MAX_REPORTED_ERRORS`], counted; the first is kept for its location.
    omitted: usize,
    first_omitted: Option<SpecError>,
    /// The job (by index) of every task name so far: task names are unique in the service.
    pub(crate) task_owners: HashMap<String, usize>,
    tasks: usize,
    expanded_bytes: usize,
    /// Set once the service has too many tasks, or too much in them: no more tasks are made.
    expansion_stopped: bool,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(file: &'a str, source: &'a str) -> Self {
        Checker {
            file,
            source,
            locator: None,
            template_uses: Vec::new(),
            template_uses_seen: HashSet::new(),
            errors: Vec::new(),
            reported: HashSet::new(),
            omitted: 0,
            first_omitted: None,
            task_owners: HashMap::new(),
            tasks: 0,
            expanded_bytes: 0,
            expansion_stopped: false,
        }
    }

    /// Reports a problem at `at` (line 1, column 1 if the value has no location).
    pub fn error(&mut self, at: &Location, path: impl Into<String>, message: impl Into<String>) {
        self.error_at(at.line(), at.column(), path, message);
    }

    /// Reports a problem at `line`, `column` (line 1, column 1 if the line is 0).
    pub fn error_at(
        &mut self,
        line: u64,
        column: u64,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = match line {
            0 => (1, 1),
            line => (line, column.max(1)),
        };
        let path = capped(&path.into(), MAX_PATH_CHARS);
        let message = capped(&message.into(), MAX_MESSAGE_CHARS);
        if !self
            .reported
            .insert((line, column, path.clone(), message.clone()))
        {
            return;
        }
        let error = SpecError {
            file: self.file.to_owned(),
            line,
            column,
            path,
            message,
        };
        if self.is_full() {
            self.omitted += 1;
            self.first_omitted.get_or_insert(error);
        } else {
            self.errors.push(error);
        }
    }

    /// Whether more problems would only be counted: callers skip costly messages (hints) then.
    pub fn is_full(&self) -> bool {
        self.errors.len() >= MAX_REPORTED_ERRORS
    }

    /// The file's source text and where each of its values is.
    pub(crate) fn locator(&mut self) -> (&'a str, &Locator) {
        let source = self.source;
        (
            source,
            self.locator.get_or_insert_with(|| Locator::new(source)),
        )
    }

    pub(crate) fn finish(mut self, spec: ServiceSpec) -> Result<ServiceSpec, SpecErrors> {
        if let Some(first) = self.first_omitted.take() {
            let message = match self.omitted {
                1 => "1 more problem from here on is not shown".to_owned(),
                n => format!("{n} more problems from here on are not shown"),
            };
            self.errors.push(SpecError { message, ..first });
        }
        if self.errors.is_empty() {
            Ok(spec)
        } else {
            Err(SpecErrors(self.errors))
        }
    }

    /// Reports a count outside `MIN..=MAX` at `path`.
    pub fn count<const MIN: u32, const MAX: u32>(
        &mut self,
        raw: &Spanned<Count<MIN, MAX>>,
        path: String,
    ) -> Option<u32> {
        if raw.value.0.is_none() {
            self.error(
                &raw.referenced,
                path,
                format!("expected a number from {MIN} to {MAX}"),
            );
        }
        raw.value.0
    }

    /// Counts a task about to be made (`bytes` of settings copied into it); reports at `at`, once,
    /// when the service gets too many tasks or too much in them, and returns whether to make it.
    fn admit_task(&mut self, at: &Location, path: &str, bytes: usize) -> bool {
        if self.expansion_stopped {
            return false;
        }
        self.tasks += 1;
        self.expanded_bytes += bytes;
        let message = if self.tasks > MAX_TASKS {
            format!("the service has more than {MAX_TASKS} tasks; at most {MAX_TASKS} are accepted")
        } else if self.expanded_bytes > MAX_EXPANDED_BYTES {
            format!(
                "the service's tasks hold more than {} of env, command and Docker fields once job settings are copied into each task; at most {} is accepted",
                format_bytes(MAX_EXPANDED_BYTES as u64),
                format_bytes(MAX_EXPANDED_BYTES as u64)
            )
        } else {
            return true;
        };
        self.error(at, path, message);
        self.expansion_stopped = true;
        false
    }

    fn resolve(&mut self, raw: &RawService) -> ServiceSpec {
        let service = raw.service.value.clone();
        self.check_name(&raw.service, "service", "service");
        let raw_jobs = &raw.jobs.value;
        if raw_jobs.is_empty() {
            self.error(&raw.jobs.referenced, "jobs", "expected at least one job");
        }
        if raw_jobs.len() > MAX_JOBS {
            let message = format!(
                "the service has {} jobs; at most {MAX_JOBS} are accepted",
                raw_jobs.len()
            );
            self.error(&raw.jobs.referenced, "jobs", message);
            return ServiceSpec {
                service,
                jobs: Vec::new(),
            };
        }
        let job_names: Vec<&str> = raw_jobs.iter().map(|j| j.name.value.as_str()).collect();
        // Whether each job's name is valid and its first use: only those make task names.
        let mut names_task = Vec::with_capacity(raw_jobs.len());
        let mut seen_jobs = HashSet::new();
        for (index, job) in raw_jobs.iter().enumerate() {
            let path = format!("jobs[{index}].name");
            let valid = self.check_name(&job.name, &path, "job");
            let first = seen_jobs.insert(job.name.value.as_str());
            if !first {
                let message = format!("duplicate job name \"{}\"", shown(&job.name.value));
                self.error(&job.name.referenced, path, message);
            }
            names_task.push(valid && first);
        }
        let known: HashSet<&str> = job_names.iter().copied().collect();
        let jobs: Vec<JobSpec> = raw_jobs
            .iter()
            .enumerate()
            .map(|(index, job)| {
                let depends_on = self.dependencies(&service, &job_names, &known, index, job);
                let mut spec = self.resolve_job(&job_names, index, job, names_task[index]);
                spec.depends_on = depends_on;
                spec
            })
            .collect();
        self.check_dependency_cycles(raw, &jobs);
        self.check_unique_routes(raw, &jobs);
        ServiceSpec { service, jobs }
    }

    fn resolve_job(
        &mut self,
        job_names: &[&str],
        index: usize,
        job: &RawJob,
        names_tasks: bool,
    ) -> JobSpec {
        let path = format!("jobs[{index}]");
        let job_settings = self.settings(&path, job.settings());
        let name = &job.name;
        let mut tasks = Vec::new();
        if job.tasks.is_some() && (job.instances.is_some() || job.hosts.is_some()) {
            self.error(
                &name.referenced,
                &path,
                "give `tasks`, or `instances` (with `hosts` to choose among), or `hosts` alone, to say which tasks the job runs",
            );
        } else if let Some(raw_tasks) = &job.tasks {
            if raw_tasks.value.is_empty() {
                let message = "expected at least one task";
                self.error(&raw_tasks.referenced, format!("{path}.tasks"), message);
            }
            let mut seen = HashSet::new();
            for (task_index, task) in raw_tasks.value.iter().enumerate() {
                let task_path = format!("{path}.tasks[{task_index}]");
                let name_path = format!("{task_path}.name");
                let mut valid = self.check_name(&task.name, &name_path, "task");
                if !seen.insert(task.name.value.as_str()) {
                    let message = format!(
                        "duplicate task name \"{}\" in job \"{}\"",
                        shown(&task.name.value),
                        shown(&name.value)
                    );
                    self.error(&task.name.referenced, &name_path, message);
                    valid = false;
                }
                let task_settings = self.settings(&task_path, task.settings());
                let bytes = job_settings.bytes + task_settings.bytes;
                if !self.admit_task(&task.name.referenced, &name_path, bytes) {
                    break;
                }
                if valid {
                    let (at, source) = (&task.name.referenced, NameSource::Written);
                    self.claim_task_name(
                        at,
                        &name_path,
                        &task.name.value,
                        index,
                        job_names,
                        source,
                    );
                }
                tasks.push(self.task(&task.name.value, &job_settings, Some(&task_settings)));
            }
        } else if let Some(instances) = &job.instances {
            let eligible = job
                .hosts
                .as_ref()
                .map(|hosts| self.eligible_hosts(&path, hosts, job.run_on_host.as_ref()))
                .unwrap_or_default();
            let count = self.count(instances, format!("{path}.instances"));
            let count = count.unwrap_or(0);
            let name_path = format!("{path}.name");
            let longest = format!("{}-{count}", name.value);
            let names_tasks = names_tasks
                && count > 0
                && self.check_generated_name(
                    &name.referenced,
                    &name_path,
                    &longest,
                    &format!("job \"{}\" and instance {count}", shown(&name.value)),
                );
            for number in 1..=count {
                if !self.admit_task(&name.referenced, &name_path, job_settings.bytes) {
                    break;
                }
                let task_name = format!("{}-{number}", name.value);
                if names_tasks {
                    let source = NameSource::Instance(number);
                    self.claim_task_name(
                        &name.referenced,
                        &name_path,
                        &task_name,
                        index,
                        job_names,
                        source,
                    );
                }
                let mut spec = self.task(&task_name, &job_settings, None);
                spec.placement.hosts.clone_from(&eligible);
                tasks.push(spec);
            }
        } else if let Some(hosts) = &job.hosts {
            if hosts.value.is_empty() {
                let message = "expected at least one host";
                self.error(&hosts.referenced, format!("{path}.hosts"), message);
            }
            let mut seen = HashSet::new();
            for (host_index, host) in hosts.value.iter().enumerate() {
                let host_path = format!("{path}.hosts[{host_index}]");
                let mut valid = self.check_name(host, &host_path, "host");
                if !seen.insert(host.value.as_str()) {
                    let message = format!(
                        "duplicate host \"{}\": the job runs one task on each host, named JOB-HOST",
                        shown(&host.value)
                    );
                    self.error(&host.referenced, &host_path, message);
                    valid = false;
                }
                let task_name = format!("{}-{}", name.value, host.value);
                if names_tasks && valid {
                    let parts = format!(
                        "job \"{}\" and host \"{}\"",
                        shown(&name.value),
                        shown(&host.value)
                    );
                    valid =
                        self.check_generated_name(&host.referenced, &host_path, &task_name, &parts);
                }
                if !self.admit_task(&host.referenced, &host_path, job_settings.bytes) {
                    break;
                }
                if names_tasks && valid {
                    let source = NameSource::Host(&host.value);
                    self.claim_task_name(
                        &host.referenced,
                        &host_path,
                        &task_name,
                        index,
                        job_names,
                        source,
                    );
                }
                let mut spec = self.task(&task_name, &job_settings, None);
                spec.run_on_host = Some(host.value.clone());
                tasks.push(spec);
            }
        } else {
            let name_path = format!("{path}.name");
            if self.admit_task(&name.referenced, &name_path, job_settings.bytes) {
                if names_tasks {
                    let source = NameSource::OnlyTask;
                    self.claim_task_name(
                        &name.referenced,
                        &name_path,
                        &name.value,
                        index,
                        job_names,
                        source,
                    );
                }
                tasks.push(self.task(&name.value, &job_settings, None));
            }
        }

        if let Some(constraints) = &job.constraints {
            self.apply_constraints(&path, constraints, &mut tasks);
        }
        let route = self.route(&path, job);
        let secret_env = self.secret_env(&path, job, &tasks);
        JobSpec {
            name: name.value.clone(),
            // Set by the caller, once dependencies are resolved.
            depends_on: Vec::new(),
            on_failure: job.on_failure.unwrap_or_default(),
            on_host_lost: job.on_host_lost.unwrap_or_default(),
            update: job
                .update
                .as_ref()
                .map(|update| self.update_policy(&path, update, route.name.is_some()))
                .unwrap_or_default(),
            route: route.name,
            route_options: route.options,
            drain_timeout_ms: route.drain_timeout_ms,
            secret_env,
            tasks,
        }
    }

    /// `secret_env:` every key must be set in the env of the job or of one of its tasks (a
    /// misspelt key would otherwise leave the real one shown).
    fn secret_env(&mut self, path: &str, job: &RawJob, tasks: &[crate::TaskSpec]) -> Vec<String> {
        let mut keys = Vec::new();
        for (index, key) in job.secret_env.iter().enumerate() {
            let set = tasks.iter().any(|task| task.env.contains_key(&key.value));
            if !set {
                let known: Vec<&str> = tasks
                    .iter()
                    .flat_map(|task| task.env.keys().map(String::as_str))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let hint = match crate::error::did_you_mean(&key.value, known) {
                    Some(close) => format!(" (did you mean {close}?)"),
                    None => String::new(),
                };
                let message = format!(
                    "{} is not a key of this job's env{hint}: secret_env names env keys whose values are secret",
                    shown(&key.value)
                );
                self.error(
                    &key.referenced,
                    format!("{path}.secret_env[{index}]"),
                    message,
                );
            } else if !keys.contains(&key.value) {
                keys.push(key.value.clone());
            }
        }
        keys
    }
}
