//! Marathon app and group definitions (JSON, as `POST /v2/apps` and `PUT /v2/groups` take them
//! or as their GET answers give them) turned into service files: one service for an app alone,
//! or one per group that holds apps directly, with a job per app.
//!
//! Marathon ran tasks on Mesos agents, gave each a random host port unless told otherwise, and
//! was balanced by marathon-lb; coding-job runs containers on their host's network with one
//! port per job and serves routes by name. Each app is read key by key ([`app`]); what changes
//! on the way, and what has no counterpart, is in the report with the path of the key.
//!
//! Groups are read first, so that every app's service and job name is known before any app is
//! converted: a dependency on an app of another group becomes `SERVICE/JOB`.

mod app;
mod bounds;
mod checks;
mod container;
mod dependencies;
mod docker_params;
mod placement;
mod ports;
mod variables;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::fields::{Fields, item};
use crate::report::Report;
use crate::service_file::ServiceFile;
use crate::{ImportError, Options, Source, source, text};

use cj_spec::limits::{MAX_JOBS, MAX_NAME_LEN};

/// The longest job name that leaves room for the `-N` of its instances' task names (`web-1000`).
const MAX_JOB_NAME_LEN: usize = MAX_NAME_LEN - 5;

pub fn import(
    source: &Source,
    options: &Options,
    report: &mut Report,
) -> Result<Vec<ServiceFile>, ImportError> {
    let tree = source::json(source.file, source.text)?;
    let mut context = Context::new(report);
    let mut plan = Plan::default();
    match &tree {
        // A list of apps, as `PUT /v2/apps` takes it.
        Value::Array(apps) => {
            let root = plan.add_group("/".into(), None);
            for (index, app) in apps.iter().enumerate() {
                plan.add_app(item("", index), app, root, &mut context);
            }
        }
        // `GET /v2/apps/ID` answers with the app under `app`.
        Value::Object(map) if map.contains_key("app") && !map.contains_key("id") => {
            let root = plan.add_group("/".into(), None);
            plan.add_app("app".into(), &map["app"], root, &mut context);
            plan.left_beside("app", map, &mut context);
            plan.single_app = true;
        }
        Value::Object(map) if is_group(map) => {
            plan.walk_group(&tree, String::new(), "/", None, &mut context)
        }
        Value::Object(map) if is_app(map) => {
            let root = plan.add_group("/".into(), None);
            plan.add_app(String::new(), &tree, root, &mut context);
            plan.single_app = true;
        }
        _ => {
            return Err(ImportError::whole(
                source.file,
                "expected a Marathon app (a JSON object with `id`) or group (with `apps` or `groups`)",
            ));
        }
    }
    plan.name(options, &file_stem(source.file));
    Ok(plan.services(&mut context))
}

/// What converting a file needs besides the app at hand.
pub(super) struct Context<'r> {
    pub report: &'r mut Report,
    /// Notes about coding-job itself rather than about one app, said at their first occasion.
    said: BTreeSet<&'static str>,
    /// Routes given so far: two jobs of an environment cannot share one.
    routes: BTreeSet<String>,
}

impl<'r> Context<'r> {
    fn new(report: &'r mut Report) -> Self {
        Context {
            report,
            said: BTreeSet::new(),
            routes: BTreeSet::new(),
        }
    }

    pub fn note(&mut self, path: impl Into<String>, note: impl Into<String>) {
        self.report.note(path, note);
    }

    pub fn left(
        &mut self,
        path: impl Into<String>,
        what: impl Into<String>,
        why: impl Into<String>,
    ) {
        self.report.left(path, what, why);
    }

    /// A note said once per import, under `key`, at the first path it applies to.
    pub fn note_once(&mut self, key: &'static str, path: &str, note: impl Into<String>) {
        if self.said.insert(key) {
            self.report.note(path, note);
        }
    }

    /// `wanted` as a route no other job of the import has, or the service-qualified name.
    pub fn route(&mut self, service: &str, wanted: &str) -> String {
        let route = match self.routes.contains(wanted) {
            false => wanted.to_string(),
            true => fit(&format!("{service}-{wanted}"), MAX_NAME_LEN),
        };
        self.routes.insert(route.clone());
        route
    }
}

/// A group of the file (the file itself, for an app alone or a list of apps).
struct Group {
    /// Its absolute id (`/tools/docker`; `/` for the root).
    id: String,
    parent: Option<usize>,
    /// Its own `dependencies`, resolved to absolute ids, with their paths.
    dependencies: Vec<(String, String)>,
    /// Its apps (not those of its groups), by index in [`Plan::apps`].
    apps: Vec<usize>,
    /// The service its apps are written to, once named.
    service: String,
}

/// An app of the file, found while walking it.
struct AppSite<'a> {
    path: String,
    /// Its absolute id (`/tools/oauth-server`), or `None` when it has none.
    id: Option<String>,
    group: usize,
    value: &'a Value,
    /// Its job's name, once named.
    job: String,
}

/// Every group and app of the file, and what they are called in the service files.
#[derive(Default)]
struct Plan<'a> {
    groups: Vec<Group>,
    apps: Vec<AppSite<'a>>,
    /// The file is one app (not a group): its service is named after it.
    single_app: bool,
}

impl<'a> Plan<'a> {
    fn add_group(&mut self, id: String, parent: Option<usize>) -> usize {
        self.groups.push(Group {
            id,
            parent,
            dependencies: Vec::new(),
            apps: Vec::new(),
            service: String::new(),
        });
        self.groups.len() - 1
    }

    fn add_app(&mut self, path: String, value: &'a Value, group: usize, context: &mut Context) {
        if !value.is_object() {
            context.left(path, text::shown(value), "expected an app (a JSON object)");
            return;
        }
        if self.groups[group].apps.len() >= MAX_JOBS {
            let why = format!("a service holds at most {MAX_JOBS} jobs: split the group");
            context.left(path, text::shown(&value["id"]), why);
            return;
        }
        let base = self.groups[group].id.clone();
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .map(|id| absolute(&base, id));
        if id.is_none() {
            let note = "the app has no id: its job is named after the file (an app alone) or `app`";
            context.note(crate::fields::join(&path, "id"), note);
        }
        self.groups[group].apps.push(self.apps.len());
        self.apps.push(AppSite {
            path,
            id,
            group,
            value,
            job: String::new(),
        });
    }

    /// Keys beside the one that held the app (`GET /v2/apps/ID` gives none of note).
    fn left_beside(&self, taken: &str, map: &Map<String, Value>, context: &mut Context) {
        for (key, value) in map.iter().filter(|(key, _)| key.as_str() != taken) {
            let why = "not part of the app: only `app` is read from this answer";
            context.left(key.as_str(), text::shown(value), why);
        }
    }

    fn walk_group(
        &mut self,
        value: &'a Value,
        path: String,
        parent_id: &str,
        parent: Option<usize>,
        context: &mut Context,
    ) {
        if !value.is_object() {
            context.left(path, text::shown(value), "expected a group (a JSON object)");
            return;
        }
        let mut fields = Fields::new(path.clone(), value);
        let id = match fields.text("id") {
            Some(id) => absolute(parent_id, &id),
            None => parent_id.to_string(),
        };
        let index = self.add_group(id.clone(), parent);
        let dependencies_path = fields.at("dependencies");
        let base = parent_of(&id);
        for (at, dependency) in list(context, &mut fields, "dependencies")
            .iter()
            .enumerate()
        {
            let dependency_path = item(&dependencies_path, at);
            match dependency.as_str() {
                Some(dependency) => {
                    let dependency = absolute(&base, dependency);
                    self.groups[index]
                        .dependencies
                        .push((dependency_path, dependency));
                }
                None => context.left(
                    dependency_path,
                    text::shown(dependency),
                    "expected an app or group id",
                ),
            }
        }
        let apps_path = fields.at("apps");
        for (at, app) in list(context, &mut fields, "apps").iter().enumerate() {
            self.add_app(item(&apps_path, at), app, index, context);
        }
        let groups_path = fields.at("groups");
        for (at, group) in list(context, &mut fields, "groups").iter().enumerate() {
            self.walk_group(group, item(&groups_path, at), &id, Some(index), context);
        }
        let pods_path = fields.at("pods");
        for (at, pod) in list(context, &mut fields, "pods").iter().enumerate() {
            let what = pod.get("id").map_or_else(|| text::shown(pod), text::shown);
            let why = "Marathon pods (containers sharing a network and volumes) are not imported: write a job per container, each on the host's network";
            context.left(item(&pods_path, at), what, why);
        }
        // The time of the group's last change, in a GET answer: state, not configuration.
        fields.take("version");
        fields.leave_rest(context.report, |key| match key {
            "enforceRole" => Some("Mesos roles have no counterpart: choose hosts with labels (`agent --label`) and `constraints:`"),
            _ => None,
        });
    }

    /// Names every service and job: a service per group holding apps, a job per app.
    fn name(&mut self, options: &Options, stem: &str) {
        let mut services = BTreeSet::new();
        for index in 0..self.groups.len() {
            if self.groups[index].apps.is_empty() {
                continue;
            }
            let mut jobs = BTreeSet::new();
            for &app in &self.groups[index].apps {
                let site = &self.apps[app];
                let wanted = match &site.id {
                    Some(id) => last_segment(id).to_string(),
                    None if self.single_app => stem.to_string(),
                    None => "app".to_string(),
                };
                let job = unique(&valid_name(&wanted, "app"), &mut jobs, MAX_JOB_NAME_LEN);
                self.apps[app].job = job;
            }
            let group = &self.groups[index];
            let wanted = if self.single_app {
                let job = &self.apps[group.apps[0]].job;
                options.project.map_or_else(|| job.clone(), str::to_string)
            } else if group.parent.is_none() {
                match (options.project, group.id.as_str()) {
                    (Some(project), _) => project.to_string(),
                    (None, "/") => stem.to_string(),
                    (None, id) => id.trim_matches('/').replace('/', "-"),
                }
            } else {
                group.id.trim_matches('/').replace('/', "-")
            };
            let service = unique(
                &valid_name(&wanted, "marathon"),
                &mut services,
                MAX_NAME_LEN,
            );
            self.groups[index].service = service;
        }
    }

    /// Converts every app, in the order of the file, and resolves the dependencies.
    fn services(&self, context: &mut Context) -> Vec<ServiceFile> {
        let mut jobs = BTreeMap::new();
        let mut dependencies: Vec<Vec<usize>> = vec![Vec::new(); self.apps.len()];
        for (index, site) in self.apps.iter().enumerate() {
            let group = &self.groups[site.group];
            let converted = app::job(context, site, &group.id, &group.service);
            for (path, id) in &converted.dependencies {
                self.depend(context, index, path, id, &mut dependencies[index]);
            }
            jobs.insert(index, converted.job);
        }
        self.group_dependencies(context, &mut dependencies);
        self.break_cycles(context, &mut dependencies);
        let mut services = Vec::new();
        for group in self.groups.iter().filter(|group| !group.apps.is_empty()) {
            let mut file = ServiceFile {
                service: group.service.clone(),
                jobs: Vec::new(),
            };
            let paths: Vec<&str> = group
                .apps
                .iter()
                .map(|app| self.apps[*app].path.as_str())
                .collect();
            for &index in &group.apps {
                let mut job = jobs.remove(&index).expect("every app was converted");
                for &target in &dependencies[index] {
                    let name = self.reference(target, &group.service);
                    if !job.depends_on.contains(&name) {
                        job.depends_on.push(name);
                    }
                }
                file.jobs.push(job);
            }
            bounds::fit(context, &mut file, &paths);
            services.push(file);
        }
        services
    }
}

fn is_group(map: &Map<String, Value>) -> bool {
    ["apps", "groups", "pods"]
        .iter()
        .any(|key| map.contains_key(*key))
}

fn is_app(map: &Map<String, Value>) -> bool {
    ["id", "cmd", "args", "container"]
        .iter()
        .any(|key| map.contains_key(*key))
}

/// The list at `key`; a value that is not a list is reported (unless null) and read as empty.
pub(super) fn list<'a>(context: &mut Context, fields: &mut Fields<'a>, key: &str) -> &'a [Value] {
    match fields.take(key) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => &[],
        Some(other) => {
            context.left(fields.at(key), text::shown(other), "expected a list");
            &[]
        }
    }
}

/// A whole number, written as an integer or as a float without a fraction (`2.0`).
pub(super) fn whole(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|number| number.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(number))
            .map(|number| number as u64)
    })
}

/// `id` made absolute against the group `base` (`/a`): Marathon's relative ids (`b`, `../c`)
/// are relative to the group that holds them.
fn absolute(base: &str, id: &str) -> String {
    let mut segments: Vec<&str> = match id.starts_with('/') {
        true => Vec::new(),
        false => base
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect(),
    };
    for segment in id.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

/// The group an id is in: `/a/b` is in `/a`, `/a` in `/`.
fn parent_of(id: &str) -> String {
    match id.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((parent, _)) => parent.to_string(),
    }
}

fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// The file's name without its directories and extension: `apps/web.json` is `web`.
fn file_stem(file: &str) -> String {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    stem.to_string()
}

/// A name the config accepts: [`text::name`], starting with a letter or digit.
fn valid_name(raw: &str, fallback: &str) -> String {
    let name = text::name(raw);
    let name = name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    match name.is_empty() {
        true => fallback.to_string(),
        false => name.to_string(),
    }
}

/// `name` cut to `len` bytes (names are ASCII).
fn fit(name: &str, len: usize) -> String {
    name.chars().take(len).collect()
}

/// `name` (cut to `len`), or `name-2`, `name-3` ... if taken; recorded as taken.
fn unique(name: &str, taken: &mut BTreeSet<String>, len: usize) -> String {
    let mut candidate = fit(name, len);
    let mut number = 2;
    while taken.contains(&candidate) {
        let suffix = format!("-{number}");
        candidate = format!("{}{suffix}", fit(name, len - suffix.len()));
        number += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_made_absolute_against_their_group() {
        assert_eq!(absolute("/", "web"), "/web");
        assert_eq!(absolute("/a", "b"), "/a/b");
        assert_eq!(absolute("/a/b", "../c"), "/a/c");
        assert_eq!(absolute("/a", "/x/y/"), "/x/y");
        assert_eq!(absolute("/a", "./b"), "/a/b");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(last_segment("/a/b"), "b");
    }

    #[test]
    fn names_are_valid_and_unique() {
        assert_eq!(file_stem("dir/my-app.json"), "my-app");
        assert_eq!(valid_name("_x", "app"), "x");
        assert_eq!(valid_name("--", "app"), "app");
        let mut taken = BTreeSet::new();
        assert_eq!(unique("web", &mut taken, 63), "web");
        assert_eq!(unique("web", &mut taken, 63), "web-2");
        assert_eq!(unique(&"a".repeat(70), &mut taken, 58).len(), 58);
    }
}
