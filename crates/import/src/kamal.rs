//! Kamal (1 and 2) `config/deploy.yml`, with its destination file merged over it as
//! `kamal -d DEST` does: the app's roles become jobs running one task on each of their hosts,
//! each accessory a job pinned to its host, and `env` secrets become secret variables.
//!
//! The file is first run through ERB as Kamal runs it ([`erb`]): environment reads become
//! variables, any other Ruby is reported with its line. What Kamal does on the deploying
//! machine or over SSH (building, hooks, aliases, registry logins, the proxy's own container)
//! has no place in a service file and is reported with what to do instead.

mod accessories;
mod docker;
mod env;
mod erb;
mod proxy;
mod roles;

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

use crate::fields::{Fields, join};
use crate::report::Report;
use crate::service_file::{Job, ServiceFile};
use crate::text::{name, shown, var_ref};
use crate::{ImportError, Options, Source, source};

use env::EnvSection;
use erb::Erb;
use proxy::{Healthcheck, Proxy};

pub fn import(
    source: &Source,
    options: &Options,
    report: &mut Report,
) -> Result<Vec<ServiceFile>, ImportError> {
    let mut reader = Reader::new(report);
    let text = reader.erb.expand(source.file, source.text, reader.report)?;
    let mut root = source::yaml(source.file, &text)?;
    if let Some(destination) = &options.destination {
        let text = reader
            .erb
            .expand(destination.file, destination.text, reader.report)?;
        let over = source::yaml(destination.file, &text)?;
        deep_merge(&mut root, over);
    }
    if !root.is_object() {
        return Err(ImportError::whole(
            source.file,
            "expected a Kamal deploy.yml: a mapping with service, image and servers",
        ));
    }
    let mut fields = Fields::new("", &root);
    for (key, _) in fields.rest() {
        // Extensions: blocks for YAML anchors, which Kamal ignores.
        if key.starts_with("x-") {
            fields.take(key);
        }
    }
    let service = service_name(&mut fields, options, source, &mut reader);
    let app = App::read(&mut fields, &mut reader);
    let mut jobs = Vec::new();
    let mut roles = Vec::new();
    if let Some(servers) = fields.take("servers") {
        (jobs, roles) = roles::read(servers, &app, &mut reader);
    } else {
        let why = "Kamal needs `servers`: without it there is no app to run";
        reader.report.left("servers", "(missing)", why);
    }
    if let Some(accessories) = fields.take("accessories") {
        jobs.extend(accessories::read(accessories, &roles, &mut reader));
    }
    reader.leave_rest(fields, top_level_reason);
    mark_secret_env(&mut jobs, reader.report);
    Ok(vec![ServiceFile { service, jobs }])
}

/// What the import has learnt so far, shared by the parts of the file.
pub struct Reader<'r> {
    pub erb: Erb,
    pub report: &'r mut Report,
    /// Constructs already reported as left out: the top level's settings apply to every role,
    /// and each is reported once.
    reported: HashSet<(String, String)>,
    /// The names of the jobs made so far.
    job_names: HashSet<String>,
}

impl<'r> Reader<'r> {
    pub fn new(report: &'r mut Report) -> Self {
        Reader {
            erb: Erb::default(),
            report,
            reported: HashSet::new(),
            job_names: HashSet::new(),
        }
    }

    /// Reports `value` at `path` as not carried, once, shown as written (with its ERB).
    pub fn left(&mut self, path: &str, value: &Value, why: impl Into<String>) {
        let places = self.erb.places(value);
        let written = self.erb.restore_value(value);
        self.left_written(path, &written, &places, why);
    }

    /// Reports `written` (as the file has it) at `path` as not carried, once, with the places
    /// of the ERB it holds.
    pub fn left_written(
        &mut self,
        path: &str,
        written: &Value,
        places: &[String],
        why: impl Into<String>,
    ) {
        let mut what = shown(written);
        if !places.is_empty() {
            what.push_str(&format!(" (ERB at {})", places.join(", ")));
        }
        if self.reported.insert((path.to_string(), what.clone())) {
            self.report.left(path, what, why);
        }
    }

    /// Reports every key of `fields` not taken, with the reason `why` gives for its name.
    pub fn leave_rest(&mut self, fields: Fields, why: impl Fn(&str) -> Option<&'static str>) {
        for (key, value) in fields.rest() {
            let path = join(fields.path(), &self.erb.restore(key));
            let reason = why(key).unwrap_or("not a Kamal setting coding-job carries over");
            self.left(&path, value, reason);
        }
    }

    /// Whether this is the first time `what` is asked about: for notes said once per file.
    pub fn first(&mut self, what: &str) -> bool {
        self.reported.insert((String::new(), what.to_string()))
    }

    /// A job name made from `raw`, unique in the file: a role and an accessory of the same
    /// name are told apart.
    pub fn job_name(&mut self, raw: &str) -> String {
        let base = name(raw);
        let mut candidate = base.clone();
        let mut number = 2;
        while !self.job_names.insert(candidate.clone()) {
            candidate = name(&format!("{base}-{number}"));
            number += 1;
        }
        candidate
    }

    /// A note, once.
    pub fn note(&mut self, path: &str, note: impl Into<String>) {
        self.report.note(path, note);
    }
}

/// The settings of the top level that every role of the app shares.
pub struct App<'a> {
    /// `IMAGE:{{ vars.version }}`, with the registry's server in front.
    pub image: Option<String>,
    pub env: EnvSection,
    pub labels: Option<&'a Value>,
    pub volumes: Option<&'a Value>,
    pub logging: Option<&'a Value>,
    /// Kamal 2's `proxy`, for the roles that run it.
    pub proxy: Option<Proxy>,
    /// Kamal 1's `healthcheck`, for the roles that run Traefik.
    pub healthcheck: Option<Healthcheck>,
    /// Whether the file is for Kamal 1 (Traefik, a `healthcheck` section) rather than Kamal 2.
    pub kamal1: bool,
    pub primary_role: String,
    pub timing: Timing,
}

/// When Kamal waits during a deploy, in milliseconds.
#[derive(Default)]
pub struct Timing {
    pub readiness_delay: Option<u64>,
    pub deploy_timeout: Option<u64>,
    pub drain_timeout: Option<u64>,
    pub stop_wait_time: Option<u64>,
    /// `boot.limit`: hosts at a time, or a percentage of a role's hosts.
    pub boot_limit: Option<BootLimit>,
    pub boot_wait: Option<u64>,
}

#[derive(Clone, Copy)]
pub enum BootLimit {
    Hosts(u32),
    Percent(u32),
}

impl<'a> App<'a> {
    fn read(fields: &mut Fields<'a>, reader: &mut Reader) -> Self {
        let image = image(fields, reader);
        let env = match fields.take("env") {
            Some(value) => EnvSection::read(value, "env", true, reader),
            None => EnvSection::default(),
        };
        let kamal1 = is_kamal1(fields);
        let proxy = fields
            .take("proxy")
            .and_then(|value| Proxy::read(value, "proxy", reader));
        let healthcheck = fields
            .take("healthcheck")
            .map(|value| Healthcheck::read(value, "healthcheck", reader));
        if let Some(traefik) = fields.take("traefik") {
            proxy::leave_traefik(traefik, reader);
        }
        let primary_role = fields
            .text("primary_role")
            .map(|role| name(&role))
            .unwrap_or_else(|| "web".into());
        let timing = Timing::read(fields, reader);
        App {
            image,
            env,
            labels: fields.take("labels"),
            volumes: fields.take("volumes"),
            logging: fields.take("logging"),
            proxy,
            healthcheck,
            kamal1,
            primary_role,
            timing,
        }
    }
}

impl Timing {
    fn read(fields: &mut Fields, reader: &mut Reader) -> Self {
        let mut seconds = |key: &str| {
            let value = fields.take(key)?;
            let ms = duration_ms(value);
            if ms.is_none() {
                let why = "expected a number of seconds";
                reader.left(&fields.at(key), value, why);
            }
            ms
        };
        let mut timing = Timing {
            readiness_delay: seconds("readiness_delay"),
            deploy_timeout: seconds("deploy_timeout"),
            drain_timeout: seconds("drain_timeout"),
            stop_wait_time: seconds("stop_wait_time"),
            ..Timing::default()
        };
        if let Some(boot) = fields.take("boot") {
            let mut boot_fields = Fields::new("boot", boot);
            if let Some(limit) = boot_fields.take("limit") {
                timing.boot_limit = boot_limit(limit);
                if timing.boot_limit.is_none() {
                    let why = "expected a number of hosts or a percentage such as 25%";
                    reader.left("boot.limit", limit, why);
                }
            }
            if let Some(wait) = boot_fields.take("wait") {
                timing.boot_wait = duration_ms(wait);
                if timing.boot_wait.is_none() {
                    reader.left("boot.wait", wait, "expected a number of seconds");
                }
            }
            reader.leave_rest(boot_fields, |_| None);
        }
        timing
    }
}

fn boot_limit(value: &Value) -> Option<BootLimit> {
    let text = crate::text::scalar(value)?;
    let text = text.trim();
    let limit = match text.strip_suffix('%') {
        Some(percent) => BootLimit::Percent(percent.trim().parse().ok()?),
        None => BootLimit::Hosts(text.parse().ok()?),
    };
    match limit {
        BootLimit::Hosts(0) | BootLimit::Percent(0) => None,
        BootLimit::Percent(percent) if percent > 100 => None,
        limit => Some(limit),
    }
}

/// Kamal 1 configures Traefik and a Docker health check; Kamal 2 has `proxy` instead.
fn is_kamal1(fields: &Fields) -> bool {
    let roles_use_traefik = fields.rest().iter().any(|(key, value)| {
        *key == "servers"
            && value.as_object().is_some_and(|roles| {
                roles
                    .values()
                    .any(|role| role.get("traefik").is_some() || role.get("healthcheck").is_some())
            })
    });
    let keys: BTreeSet<&str> = fields.rest().iter().map(|(key, _)| *key).collect();
    !keys.contains("proxy")
        && (keys.contains("traefik") || keys.contains("healthcheck") || roles_use_traefik)
}

/// The service's name: the caller's, else Kamal's `service`, else the file's.
fn service_name(
    fields: &mut Fields,
    options: &Options,
    source: &Source,
    reader: &mut Reader,
) -> String {
    let written = fields.take("service");
    if let Some(project) = options.project {
        return name(project);
    }
    let written = written.and_then(|value| {
        let text = crate::text::scalar(value)?;
        reader.plain(&text, "service", "service name")
    });
    match written {
        Some(service) => name(&service),
        None => {
            let stem = source.file.rsplit('/').next().unwrap_or(source.file);
            name(stem.split('.').next().unwrap_or(stem))
        }
    }
}

/// `image` with the registry's server in front (`server/image`, as Kamal pushes it) and the
/// version Kamal would tag it with as the variable `version`.
fn image(fields: &mut Fields, reader: &mut Reader) -> Option<String> {
    let server = fields.take("registry").and_then(|registry| {
        let mut registry_fields = Fields::new("registry", registry);
        let server = registry_fields
            .text("server")
            .and_then(|server| {
                reader.strict_template(&server, "registry.server", "registry")
            });
        reader.leave_rest(registry_fields, |_| {
            Some("registry credentials belong in the server config's `registries:` (host, username, password), not in service files")
        });
        server
    });
    let written = fields.text("image")?;
    let image = reader.strict_template(&written, "image", "image name")?;
    let image = match server {
        Some(server) => format!("{}/{image}", server.trim_end_matches('/')),
        None => image,
    };
    let last = image.rsplit('/').next().unwrap_or(&image);
    if last.contains(':') || last.contains('@') {
        reader.note(
            "image",
            "the image names its tag; Kamal adds the version it deploys after it, which is left out here",
        );
        return checked_image(image, "image", reader);
    }
    let image = checked_image(format!("{image}:{}", var_ref("version")), "image", reader)?;
    reader.report.variable("version", None, false, "image");
    reader.note(
        "image",
        "Kamal tags the image with the version it deploys (the git commit by default): here the tag is the variable `version`; set it for each release with `coding-job env vars ENV --set version=TAG`",
    );
    Some(image)
}

/// `image` if Docker accepts it as a reference (with a stand-in for its version), or `None`,
/// reported: push refuses an image it cannot read.
pub fn checked_image(image: String, path: &str, reader: &mut Reader) -> Option<String> {
    let probe = image.replace(&var_ref("version"), "latest");
    if cj_spec::is_template(&probe) {
        return Some(image);
    }
    match cj_spec::ImageRef::parse(&probe) {
        Ok(_) => Some(image),
        Err(error) => {
            let why = format!("not an image reference Docker accepts: {}", error.reason);
            reader.left(path, &Value::String(image), why);
            None
        }
    }
}

/// Why a top-level key of `deploy.yml` is not carried.
fn top_level_reason(key: &str) -> Option<&'static str> {
    Some(match key {
        "builder" => {
            "coding-job runs images and does not build them: build and push the image in CI, then set `version`"
        }
        "ssh" | "sshkit" => "coding-job's agents connect to the server; nothing is run over SSH",
        "aliases" => {
            "Kamal command aliases: use the coding-job CLI directly (`coding-job exec TASK -- CMD`, `coding-job logs TASK`)"
        }
        "asset_path" => {
            "asset bridging between versions is done by Kamal on the host: serve fingerprinted assets from a CDN or keep the old ones in the image"
        }
        "retain_containers" => "coding-job keeps the 3 most recent dead containers of each task",
        "minimum_version" => "a check of the Kamal version",
        "require_destination" => {
            "coding-job has environments (`--env`) instead of destinations: import with `--destination` for each one"
        }
        "allow_empty_roles" => "a role without hosts is a job the server places",
        "hooks_path" | "hooks_output" => {
            "Kamal hooks run on the deploying machine: run them around `coding-job push` and `up` in your own scripts"
        }
        "secrets_path" => {
            "secrets are variables of the environment here: `coding-job env vars ENV --secret NAME --set NAME=VALUE`"
        }
        "run_directory" => "where Kamal keeps its files on the hosts",
        "error_pages_path" => {
            "kamal-proxy's error pages: the router answers with its own 503 page when no task is healthy"
        }
        "output" => {
            "Kamal's deploy output loggers: coding-job records every change as an event (`coding-job events`)"
        }
        _ => return None,
    })
}

/// Kamal's deep merge of a destination file over the base: maps merge key by key, any other
/// value replaces the base's.
fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        deep_merge(existing, value);
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// A map merged over another, as Kamal merges a role's settings over the top level's.
pub fn merged(base: Option<&Value>, over: Option<&Value>) -> Option<Value> {
    match (base, over) {
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => Some(one.clone()),
        (Some(base), Some(over)) => {
            let mut merged = base.clone();
            deep_merge(&mut merged, over.clone());
            Some(merged)
        }
    }
}

/// An env key whose value uses a secret variable is secret too: masked wherever it is shown.
fn mark_secret_env(jobs: &mut [Job], report: &Report) {
    for job in jobs {
        for (key, value) in &job.env {
            let secret = variables_in(value).any(|variable| report.is_secret(variable));
            if secret && !job.secret_env.contains(key) {
                job.secret_env.push(key.clone());
            }
        }
    }
}

/// The names of the `{{ vars.NAME }}` a value uses.
fn variables_in(value: &str) -> impl Iterator<Item = &str> {
    value.split("{{ vars.").skip(1).filter_map(|rest| {
        let end = rest.find(" }}")?;
        Some(&rest[..end])
    })
}

/// Milliseconds in a Kamal duration: a number of seconds, or text such as `30s`.
pub fn duration_ms(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0 && *seconds < 1e9)
            .map(|seconds| (seconds * 1000.0).round() as u64),
        Value::String(text) => cj_spec::parse_duration_ms(text),
        _ => None,
    }
}

/// `value` as a mapping, for a section that must be one; anything else is reported.
pub fn mapping<'a>(
    value: &'a Value,
    path: &str,
    reader: &mut Reader,
) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        Value::Null => None,
        other => {
            reader.left(path, other, "expected a mapping");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_destination_merges_maps_and_replaces_everything_else() {
        let mut base = json!({
            "servers": {"web": ["a", "b"], "jobs": ["c"]},
            "env": {"clear": {"A": "1", "B": "2"}},
            "image": "app",
        });
        let over = json!({
            "servers": {"web": ["d"]},
            "env": {"clear": {"B": "3"}},
            "image": null,
        });
        deep_merge(&mut base, over);
        assert_eq!(
            base,
            json!({
                "servers": {"web": ["d"], "jobs": ["c"]},
                "env": {"clear": {"A": "1", "B": "3"}},
                "image": null,
            })
        );
    }

    #[test]
    fn boot_limits_are_hosts_or_percentages() {
        let check = |written: Value, expected: Option<&str>| {
            let read = boot_limit(&written).map(|limit| match limit {
                BootLimit::Hosts(hosts) => format!("{hosts} hosts"),
                BootLimit::Percent(percent) => format!("{percent}%"),
            });
            assert_eq!(read.as_deref(), expected, "{written}");
        };
        check(json!(2), Some("2 hosts"));
        check(json!("25%"), Some("25%"));
        check(json!("0"), None);
        check(json!("150%"), None);
        check(json!("some"), None);
    }

    #[test]
    fn secret_variables_make_their_env_keys_secret() {
        let mut report = Report::default();
        report.variable("TOKEN", None, true, "env.secret[0]");
        report.variable("HOST", None, false, "env.clear.HOST");
        let mut jobs = vec![Job {
            name: "web".into(),
            env: [
                ("A".to_string(), "x{{ vars.TOKEN }}y".to_string()),
                ("B".to_string(), "{{ vars.HOST }}".to_string()),
            ]
            .into(),
            ..Job::default()
        }];
        mark_secret_env(&mut jobs, &report);
        assert_eq!(jobs[0].secret_env, ["A"]);
    }
}
