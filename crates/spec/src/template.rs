//! Templates for the server: a file's templates checked against one environment (its
//! variables, the jobs `addr` names), and a task's templates rendered for one environment once
//! its port is known.
//!
//! What a template may say and where it may be written is checked by [`crate::parse_service`]
//! ([`crate::template_syntax`], [`crate::template_sites`]); what it says depends on the
//! environment, so that is checked here, at push and when an environment is created, and again
//! when the task is rendered (a variable may have been unset since).

use std::collections::BTreeMap;
use std::io;

use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::artifact::{artifact_is_template, normalized_sha256, sha256_problem};
use crate::error::{SpecErrors, shown};
use crate::limits::{
    MAX_COMMAND_BYTES, MAX_DOCKER_FIELDS_BYTES, MAX_ENV_BYTES, MAX_HTTP_TARGET_LEN,
    MAX_RENDERED_BYTES,
};
use crate::model::{JobSpec, Probe, TaskSpec};
use crate::parse::{Checker, parse_with_templates};
use crate::reference::ImageRef;
use crate::settings::{command_bytes, env_bytes, json_bytes, key_segment};
use crate::template_syntax::{Reference, is_template, read_template, syntax, syntax_message};
use crate::units::format_bytes;
use crate::volumes::{seed_is_template, seed_problem};

/// What [`check_templates`] checks a file's templates against: one environment.
pub struct TemplateScope<'a> {
    /// The environment's name.
    pub env: &'a str,
    /// The service the file is for.
    pub service: &'a str,
    /// The environment's variables (`vars.NAME`).
    pub vars: &'a BTreeMap<String, String>,
    /// Whether the environment has job `job` (second) of service `service` (first): asked only
    /// for services other than the file's, whose jobs are known from the file itself.
    pub job_exists: &'a dyn Fn(&str, &str) -> bool,
}

/// What [`render_task`] renders a task's templates with: one environment.
pub struct RenderContext<'a> {
    /// The environment's name (`env.name`).
    pub env: &'a str,
    /// The environment's variables (`vars.NAME`).
    pub vars: &'a BTreeMap<String, String>,
    /// The addresses (`HOST:PORT`) of job `job` (second) of service `service` (first) in the
    /// environment, for `addr(...)`. The service is always given: the task's own for an
    /// unqualified `addr("job")`.
    pub addr: &'a dyn Fn(&str, &str) -> Vec<String>,
}

/// Checks the templates of the service file `source` against an environment: every variable
/// they use is set, and every job `addr` names exists. The file must parse (its errors are
/// returned otherwise); every problem is located like a parse error.
pub fn check_templates(file: &str, source: &str, scope: &TemplateScope) -> Result<(), SpecErrors> {
    let (spec, uses) = parse_with_templates(file, source)?;
    let mut checker = Checker::new(file, source);
    for found in &uses {
        let message = match &found.reference {
            Reference::Var(name) if !scope.vars.contains_key(name) => {
                unset_variable(name, scope.env)
            }
            Reference::Addr { service, job } => {
                let own = service
                    .as_deref()
                    .is_none_or(|service| service == spec.service || service == scope.service);
                let written = Reference::addr_text(service.as_deref(), job);
                match service.as_deref() {
                    _ if own && spec.job(job).is_some() => continue,
                    Some(other) if !own && (scope.job_exists)(other, job) => continue,
                    Some(other) if !own => format!(
                        "{written}: no job `{}` in service {} in environment {}",
                        shown(job),
                        shown(other),
                        shown(scope.env)
                    ),
                    _ => format!(
                        "{written}: no job `{}` in service {}",
                        shown(job),
                        shown(&spec.service)
                    ),
                }
            }
            _ => continue,
        };
        checker.error_at(found.line, found.column, &found.path, message);
    }
    checker.finish(spec).map(|_| ())
}

fn unset_variable(name: &str, env: &str) -> String {
    let (name, env) = (shown(name), shown(env));
    format!(
        "variable `{name}` is not set in environment {env} (set it with `coding-job env vars {env} --set {name}=VALUE`)"
    )
}

/// `task` of `job` (of `service`) with every template rendered for one environment: `env.name`,
/// `vars.NAME`, `task.name`, `task.index` (its 1-based position in the job), `port` (the task's
/// `port`, which for `port: auto` the server sets to the allocated port before calling), and
/// `addr("job")` / `addr("service/job")` (the addresses, joined with `,`). With `port: auto`,
/// `PORT` is added to the environment unless it is set, and the check probes that port.
/// A task without templates or `port: auto` comes back as it is. Errors name the field.
pub fn render_task(
    service: &str,
    job: &JobSpec,
    task: &TaskSpec,
    ctx: &RenderContext,
) -> Result<TaskSpec, String> {
    if !task.needs_rendering() {
        return Ok(task.clone());
    }
    if task.auto_port && task.port == 0 {
        return Err(format!(
            "port: task \"{}\" asks for a port (port: auto), and none was allocated",
            shown(&task.name)
        ));
    }
    let index = job
        .tasks
        .iter()
        .position(|other| other.name == task.name)
        .ok_or_else(|| {
            format!(
                "task \"{}\" is not a task of job \"{}\"",
                shown(&task.name),
                shown(&job.name)
            )
        })?;
    let renderer = Renderer {
        service,
        ctx,
        context: context! {
            env => context! { name => ctx.env },
            vars => Value::from_object(ctx.vars.clone()),
            task => context! { name => task.name.as_str(), index => index + 1 },
            port => task.port,
        },
    };
    let mut rendered = task.clone();
    if let Some(image) = &mut rendered.image
        && is_template(image)
    {
        let text = renderer.render("image", image)?;
        let text = text.trim();
        ImageRef::parse(text).map_err(|error| format!("image: {error}"))?;
        *image = text.to_owned();
    }
    if let Some(command) = &mut rendered.command {
        renderer.render_command("command", command)?;
    }
    for (name, value) in &mut rendered.env {
        let path = format!("env{}", key_segment(name));
        *value = renderer.render(&path, value)?;
        no_nul(&path, value)?;
    }
    if task.auto_port && !rendered.env.contains_key("PORT") {
        rendered.env.insert("PORT".into(), task.port.to_string());
    }
    if env_bytes(&rendered.env) > MAX_ENV_BYTES {
        return Err(format!(
            "env: the environment is more than {} once rendered",
            format_bytes(MAX_ENV_BYTES as u64)
        ));
    }
    for (section, fields) in [
        (
            "docker_config.docker_hostconfig",
            &mut rendered.docker_hostconfig,
        ),
        ("docker_config.docker_config", &mut rendered.docker_config),
    ] {
        for (key, value) in fields.iter_mut() {
            renderer.render_json(&format!("{section}{}", key_segment(key)), value)?;
        }
        let bytes = json_bytes(&serde_json::Value::Object(fields.clone()));
        if bytes > MAX_DOCKER_FIELDS_BYTES {
            return Err(format!(
                "{section}: the Docker fields take more than {} once rendered",
                format_bytes(MAX_DOCKER_FIELDS_BYTES as u64)
            ));
        }
    }
    if let Some(check) = &mut rendered.check {
        match &mut check.probe {
            Probe::Http { url } if is_template(url) => {
                *url = renderer.render("check.http", url)?;
                url_problem(url).map_or(Ok(()), |problem| Err(format!("check.http: {problem}")))?;
            }
            Probe::Tcp { port } if *port == 0 && task.auto_port => *port = task.port,
            Probe::Exec { command } => renderer.render_command("check.exec", command)?,
            Probe::Http { .. } | Probe::Tcp { .. } => {}
        }
    }
    for (index, volume) in rendered.volumes.iter_mut().enumerate() {
        if let Some(seed) = &mut volume.seed {
            let path = format!("volumes[{index}].seed");
            *seed = renderer.render(&path, seed)?;
            seed_problem(seed).map_or(Ok(()), |problem| Err(format!("{path}: {problem}")))?;
        }
    }
    if let Some(artifact) = &mut rendered.artifact {
        artifact.url = renderer.render("artifact.url", &artifact.url)?;
        seed_problem(&artifact.url)
            .map_or(Ok(()), |problem| Err(format!("artifact.url: {problem}")))?;
        let sha256 = renderer.render("artifact.sha256", &artifact.sha256)?;
        sha256_problem(&sha256)
            .map_or(Ok(()), |problem| Err(format!("artifact.sha256: {problem}")))?;
        artifact.sha256 = normalized_sha256(&sha256);
    }
    Ok(rendered)
}

impl TaskSpec {
    /// Whether rendering can change this task: it has an allocated port, or a template in a
    /// rendered field. Cheap: nothing is serialised.
    pub fn needs_rendering(&self) -> bool {
        self.auto_port || has_templates(self)
    }
}

/// Whether any rendered field of `task` holds a template.
fn has_templates(task: &TaskSpec) -> bool {
    fn json(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => is_template(text),
            serde_json::Value::Array(items) => items.iter().any(json),
            serde_json::Value::Object(map) => map.values().any(json),
            _ => false,
        }
    }
    let any = |argv: &[String]| argv.iter().any(|arg| is_template(arg));
    task.image.as_deref().is_some_and(is_template)
        || task.command.as_deref().is_some_and(any)
        || task.env.values().any(|value| is_template(value))
        || task.docker_hostconfig.values().any(json)
        || task.docker_config.values().any(json)
        || task.check.as_ref().is_some_and(|check| match &check.probe {
            Probe::Http { url } => is_template(url),
            Probe::Exec { command } => any(command),
            Probe::Tcp { .. } => false,
        })
        || task.volumes.iter().any(seed_is_template)
        || task.artifact.as_ref().is_some_and(artifact_is_template)
}

/// Renders the templates of one task.
struct Renderer<'a> {
    service: &'a str,
    ctx: &'a RenderContext<'a>,
    context: Value,
}

impl Renderer<'_> {
    /// `text` (the value at `path`) rendered; as it is if it is no template.
    fn render(&self, path: &str, text: &str) -> Result<String, String> {
        if !is_template(text) {
            return Ok(text.to_owned());
        }
        let references =
            read_template(text).map_err(|problems| format!("{path}: {}", problems[0].item))?;
        // `addr` arguments are names in quotes, so every address is known before rendering.
        let mut addresses: BTreeMap<String, String> = BTreeMap::new();
        for found in references {
            match found.item {
                Reference::Var(name) if !self.ctx.vars.contains_key(&name) => {
                    return Err(format!("{path}: {}", unset_variable(&name, self.ctx.env)));
                }
                Reference::Addr { service, job } => {
                    let written = match &service {
                        Some(service) => format!("{service}/{job}"),
                        None => job.clone(),
                    };
                    let service = service.as_deref().unwrap_or(self.service);
                    let joined = (self.ctx.addr)(service, &job).join(",");
                    addresses.insert(written, joined);
                }
                _ => {}
            }
        }
        let mut environment = Environment::empty();
        environment.set_syntax(syntax());
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        environment.add_function("addr", move |target: &str| {
            addresses.get(target).cloned().ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("addr(\"{}\") was not looked up", shown(target)),
                )
            })
        });
        let template = environment
            .template_from_str(text)
            .map_err(|error| format!("{path}: {}", syntax_message(&error)))?;
        let mut output = Capped::default();
        let result = template.render_captured_to(self.context.clone(), &mut output);
        if output.overflowed {
            return Err(format!(
                "{path}: the value renders to more than {}",
                format_bytes(MAX_RENDERED_BYTES as u64)
            ));
        }
        result.map_err(|error| format!("{path}: {}", rendered_error(&error)))?;
        String::from_utf8(output.bytes).map_err(|_| format!("{path}: renders to invalid UTF-8"))
    }

    fn render_command(&self, path: &str, argv: &mut [String]) -> Result<(), String> {
        for (index, arg) in argv.iter_mut().enumerate() {
            let arg_path = format!("{path}[{index}]");
            *arg = self.render(&arg_path, arg)?;
            no_nul(&arg_path, arg)?;
        }
        if command_bytes(argv) > MAX_COMMAND_BYTES {
            return Err(format!(
                "{path}: the command is more than {} once rendered",
                format_bytes(MAX_COMMAND_BYTES as u64)
            ));
        }
        Ok(())
    }

    fn render_json(&self, path: &str, value: &mut serde_json::Value) -> Result<(), String> {
        use serde_json::Value;
        match value {
            Value::String(text) => {
                *text = self.render(path, text)?;
                no_nul(path, text)
            }
            Value::Array(items) => items
                .iter_mut()
                .enumerate()
                .try_for_each(|(index, item)| self.render_json(&format!("{path}[{index}]"), item)),
            Value::Object(map) => map.iter_mut().try_for_each(|(key, item)| {
                self.render_json(&format!("{path}{}", key_segment(key)), item)
            }),
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        }
    }
}

/// A minijinja render error in user terms.
fn rendered_error(error: &minijinja::Error) -> String {
    let detail = error.detail().unwrap_or_default();
    let text = format!(
        "{}{}{detail}",
        error.kind(),
        if detail.is_empty() { "" } else { ": " }
    );
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn no_nul(path: &str, value: &str) -> Result<(), String> {
    match value.contains('\0') {
        true => Err(format!(
            "{path}: renders to a value with a NUL character, which no process or Docker can be given"
        )),
        false => Ok(()),
    }
}

/// Why a rendered check URL cannot be probed, if it cannot.
fn url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let fits = url.len() <= MAX_HTTP_TARGET_LEN
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    match rest {
        Some(rest) if fits && !rest.is_empty() && !rest.starts_with('/') => None,
        _ => Some(format!(
            "expected a full http:// or https:// URL with a host once rendered, found \"{}\"",
            shown(url)
        )),
    }
}

/// A writer that refuses to hold more than [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("the rendered value is too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{RenderContext, TemplateScope, check_templates, render_task};
    use crate::model::{Probe, ServiceSpec, TaskSpec};
    use crate::parse_service;

    const FILE: &str = r#"service: core
jobs:
  - name: api
    image: "reg.example.com/api:{{ vars.tag }}"
    port: auto
    command: "api --db {{ addr('db') }} --name '{{ vars.display }}'"
    env:
      WHERE: "{{ env.name }}/{{ task.name }}/{{ task.index }}/{{ port }}"
      USERS: "{{ addr(\"auth/users\") }}"
      OWN: "{{ addr(\"core/db\") }}"
      SCRIPT: |
        {% if env.name == "production" %}strict{% else %}relaxed{% endif %}
    check: { http: /health }
    docker_config:
      docker_config:
        Labels: { env: "{{ env.name }}", plain: "x" }
    volumes: [{ name: data, mount: /data, seed: "https://seeds.example.com/{{ env.name }}.tgz" }]
    instances: 2
  - name: db
    image: postgres:16
    port: auto
    check: { tcp: true }
"#;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn check(source: &str, vars: &BTreeMap<String, String>) -> Result<(), String> {
        let job_exists = |service: &str, job: &str| (service, job) == ("auth", "users");
        let scope = TemplateScope {
            env: "staging",
            service: "core",
            vars,
            job_exists: &job_exists,
        };
        check_templates("core.yaml", source, &scope).map_err(|errors| errors.to_string())
    }

    fn addresses(service: &str, job: &str) -> Vec<String> {
        match (service, job) {
            ("core", "db") => vec!["10.0.0.1:5432".into(), "10.0.0.2:5432".into()],
            ("auth", "users") => vec!["10.0.0.3:80".into()],
            _ => Vec::new(),
        }
    }

    fn render(
        spec: &ServiceSpec,
        job: usize,
        task: usize,
        port: u16,
        vars: &BTreeMap<String, String>,
    ) -> Result<TaskSpec, String> {
        let job = &spec.jobs[job];
        let mut task = job.tasks[task].clone();
        task.port = port;
        let ctx = RenderContext {
            env: "staging",
            vars,
            addr: &addresses,
        };
        render_task("core", job, &task, &ctx)
    }

    #[test]
    fn a_file_whose_names_all_exist_passes() {
        assert_eq!(
            check(FILE, &vars(&[("tag", "1"), ("display", "d")])),
            Ok(())
        );
    }

    #[test]
    fn an_unset_variable_is_located_and_says_how_to_set_it() {
        assert_eq!(
            check(FILE, &vars(&[("tag", "1")])),
            Err("core.yaml:6:14: jobs[0].command: variable `display` is not set in environment staging (set it with `coding-job env vars staging --set display=VALUE`)".into())
        );
    }

    #[test]
    fn addr_must_name_a_job_of_this_service_or_of_the_environment() {
        let source = FILE
            .replace("addr('db')", "addr('cache')")
            .replace("auth/users", "auth/groups");
        assert_eq!(
            check(&source, &vars(&[("tag", "1"), ("display", "d")])),
            Err([
                "core.yaml:6:14: jobs[0].command: addr(\"cache\"): no job `cache` in service core",
                "core.yaml:9:14: jobs[0].env.USERS: addr(\"auth/groups\"): no job `groups` in service auth in environment staging",
            ]
            .join("\n"))
        );
    }

    #[test]
    fn a_file_that_does_not_parse_gets_its_parse_errors() {
        let errors = check("service: core\njobs: []\n", &vars(&[])).unwrap_err();
        assert_eq!(errors, "core.yaml:2:7: jobs: expected at least one job");
    }

    #[test]
    fn every_name_is_rendered() {
        let spec = parse_service("core.yaml", FILE).unwrap();
        let vars = vars(&[("tag", "1.2"), ("display", "my api")]);
        let task = render(&spec, 0, 1, 31002, &vars).unwrap();
        assert_eq!(task.image.as_deref(), Some("reg.example.com/api:1.2"));
        assert_eq!(
            task.command.as_deref().unwrap(),
            [
                "api",
                "--db",
                "10.0.0.1:5432,10.0.0.2:5432",
                "--name",
                "my api"
            ]
        );
        assert_eq!(task.env["WHERE"], "staging/api-2/2/31002");
        assert_eq!(task.env["USERS"], "10.0.0.3:80");
        assert_eq!(task.env["OWN"], "10.0.0.1:5432,10.0.0.2:5432");
        assert_eq!(
            task.env["SCRIPT"], "relaxed\n",
            "a block keeps its last newline"
        );
        assert_eq!(task.env["PORT"], "31002");
        assert_eq!(task.docker_config["Labels"]["env"], "staging");
        assert_eq!(task.docker_config["Labels"]["plain"], "x");
        assert_eq!(
            task.check.unwrap().probe,
            Probe::Http {
                url: "http://127.0.0.1:31002/health".into()
            }
        );
        assert_eq!(
            task.volumes[0].seed.as_deref(),
            Some("https://seeds.example.com/staging.tgz")
        );
    }

    #[test]
    fn an_allocated_port_is_given_to_the_environment_and_the_check() {
        let spec = parse_service("core.yaml", FILE).unwrap();
        let db = render(&spec, 1, 0, 31001, &vars(&[])).unwrap();
        assert_eq!(db.env["PORT"], "31001");
        assert_eq!(db.check.unwrap().probe, Probe::Tcp { port: 31001 });
        let own_port = FILE.replace("check: { tcp: true }", "env: { PORT: \"5432\" }");
        let spec = parse_service("core.yaml", &own_port).unwrap();
        let db = render(&spec, 1, 0, 31001, &vars(&[])).unwrap();
        assert_eq!(db.env["PORT"], "5432", "a PORT the file sets is kept");
        assert!(
            render(&spec, 1, 0, 0, &vars(&[]))
                .unwrap_err()
                .contains("none was allocated")
        );
    }

    #[test]
    fn a_task_without_templates_comes_back_unchanged() {
        let spec = parse_service(
            "core.yaml",
            "service: core\njobs:\n  - name: web\n    image: web:1\n    port: 8080\n    env: { A: \"{b}\" }\n",
        )
        .unwrap();
        let task = &spec.jobs[0].tasks[0];
        let rendered = render(&spec, 0, 0, 8080, &vars(&[])).unwrap();
        assert_eq!(&rendered, task);
        assert_eq!(rendered.config_hash(), task.config_hash());
    }

    #[test]
    fn what_cannot_be_rendered_is_named() {
        let spec = parse_service("core.yaml", FILE).unwrap();
        assert_eq!(
            render(&spec, 0, 0, 31002, &vars(&[("display", "d")])).unwrap_err(),
            "image: variable `tag` is not set in environment staging (set it with `coding-job env vars staging --set tag=VALUE`)"
        );
        let bad_image = render(
            &spec,
            0,
            0,
            31002,
            &vars(&[("tag", "NOT A TAG"), ("display", "d")]),
        );
        assert!(
            bad_image
                .unwrap_err()
                .starts_with("image: invalid image reference")
        );
        let huge = "x".repeat(200_000);
        let too_large = render(
            &spec,
            0,
            0,
            31002,
            &vars(&[("tag", "1"), ("display", &huge)]),
        );
        assert_eq!(
            too_large.unwrap_err(),
            "command[4]: the value renders to more than 128 KiB"
        );
    }

    const ARTIFACT_JOB: &str = "service: core\njobs:\n  - name: api\n    image: runtime:17\n    artifact:\n      url: \"http://artifacts.internal/api/{{ vars.v }}.tar.gz\"\n      sha256: \"{{ vars.sha }}\"\n      path: /app\n";

    #[test]
    fn an_artifact_renders_per_version_and_its_hash_follows() {
        let spec = parse_service("core.yaml", ARTIFACT_JOB).unwrap();
        let sha = |digit: &str| digit.repeat(64);
        let one = render(&spec, 0, 0, 0, &vars(&[("v", "1"), ("sha", &sha("A"))])).unwrap();
        let artifact = one.artifact.as_ref().unwrap();
        assert_eq!(artifact.url, "http://artifacts.internal/api/1.tar.gz");
        assert_eq!(artifact.sha256, sha("a"), "checksums compare in lowercase");
        let two = render(&spec, 0, 0, 0, &vars(&[("v", "2"), ("sha", &sha("b"))])).unwrap();
        assert_ne!(one.config_hash(), two.config_hash());
        let same = render(&spec, 0, 0, 0, &vars(&[("v", "1"), ("sha", &sha("a"))])).unwrap();
        assert_eq!(one.config_hash(), same.config_hash());
    }

    #[test]
    fn an_artifact_that_renders_wrong_is_named() {
        let spec = parse_service("core.yaml", ARTIFACT_JOB).unwrap();
        assert_eq!(
            render(&spec, 0, 0, 0, &vars(&[("v", "1"), ("sha", "abc")])).unwrap_err(),
            "artifact.sha256: expected a SHA-256 of 64 hex digits (as `sha256sum` prints it), found \"abc\""
        );
        let bad_url = render(
            &spec,
            0,
            0,
            0,
            &vars(&[("v", "1 2"), ("sha", &"a".repeat(64))]),
        );
        assert!(
            bad_url
                .unwrap_err()
                .starts_with("artifact.url: expected a tarball"),
        );
    }
}
