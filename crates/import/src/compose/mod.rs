//! Compose files (the Compose Specification, and the older `version: "2"`/`"3"` files): one
//! service file for the project, one job per Compose service. Services in a profile go into a
//! service file of their own (`PROJECT-PROFILE`), so `up PROJECT` starts what `docker compose
//! up` starts, and `up PROJECT-PROFILE` what `--profile PROFILE` adds.

mod addresses;
mod deploy;
mod extends;
mod health;
mod interpolate;
mod ports;
mod service;
mod storage;
mod values;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::fields::Fields;
use crate::report::Report;
use crate::service_file::ServiceFile;
use crate::source;
use crate::text::{name, scalar, shown};
use crate::{ImportError, Options, Source};

use values::{FileContext, Reader};

pub fn import(
    source: &Source,
    options: &Options,
    report: &mut Report,
) -> Result<Vec<ServiceFile>, ImportError> {
    let tree = source::yaml(source.file, source.text)?;
    if !tree.is_object() {
        return Err(ImportError::whole(
            source.file,
            "expected a mapping with `services:` at the top",
        ));
    }
    let mut top = Fields::new("", &tree);
    let mut services = match top.take("services") {
        Some(Value::Object(services)) => services.clone(),
        Some(_) => {
            return Err(ImportError::whole(
                source.file,
                "`services:` must be a mapping of service names to services",
            ));
        }
        None => legacy_services(&tree, &mut top).ok_or_else(|| {
            ImportError::whole(source.file, "no `services:` mapping: not a Compose file")
        })?,
    };
    let project = project_name(source, options, &mut top);
    extends::resolve(&mut services, report);

    // Which service file each Compose service goes into, and its job's name there.
    let placement: BTreeMap<String, (String, String)> = services
        .iter()
        .map(|(compose_name, definition)| {
            let file = match first_profile(definition) {
                Some(profile) => name(&format!("{project}-{profile}")),
                None => project.clone(),
            };
            (compose_name.clone(), (file, name(compose_name)))
        })
        .collect();
    let shared_volumes = shared_volumes(&services);
    let secrets = top.take("secrets");

    let mut files: BTreeMap<String, ServiceFile> = BTreeMap::new();
    let mut references = Vec::new();
    // serde_json keeps keys sorted; `worker-2` before `worker-10` reads as a person wrote it.
    let mut ordered: Vec<(&String, &Value)> = services.iter().collect();
    ordered.sort_by_key(|(compose_name, _)| natural_key(compose_name));
    for (compose_name, definition) in ordered {
        let (file_name, job_name) = &placement[compose_name];
        // What `addr(...)` and `depends_on` take for each other service, seen from this file.
        let targets: BTreeMap<String, String> = placement
            .iter()
            .filter(|(other, _)| *other != compose_name)
            .map(|(other, (other_file, other_job))| {
                let target = match other_file == file_name {
                    true => other_job.clone(),
                    false => format!("{other_file}/{other_job}"),
                };
                (other.clone(), target)
            })
            .collect();
        let dependency_names = |other: &str| match targets.get(other) {
            Some(target) => target.clone(),
            None => name(other),
        };
        let context = FileContext {
            dependency_names: &dependency_names,
            secrets,
            read_beside: options.read_beside,
            shared_volumes: &shared_volumes,
            base_dir: options.base_dir,
        };
        let mut reader = Reader {
            targets: &targets,
            references: Vec::new(),
            report,
        };
        let job = service::convert(compose_name, job_name, definition, &context, &mut reader);
        references.append(&mut reader.references);
        if let Some(profile) = first_profile(definition) {
            report.note(
                format!("services.{compose_name}.profiles"),
                format!("in profile {profile}: written to the service {file_name}, started by `up {file_name}`"),
            );
        }
        files
            .entry(file_name.clone())
            .or_insert_with(|| ServiceFile {
                service: file_name.clone(),
                jobs: Vec::new(),
            })
            .jobs
            .push(job);
    }
    ports_from_references(&mut files, &placement, &references, report);
    // Compose reads `.env` beside the file for the values of its variables.
    if let Some(text) = options.read_beside.and_then(|read| read(".env")) {
        for (name, value) in service::dotenv(&text) {
            report.set_default_from(&name, &value, ".env");
        }
    }
    port_clashes(&files, report);

    top.take("version");
    top.take("name");
    // Extension fields hold what anchors share; Compose itself ignores them.
    for (key, _) in top.rest() {
        if key.starts_with("x-") {
            top.take(key);
        }
    }
    if let Some(Value::Object(volumes)) = top.take("volumes") {
        for (volume, definition) in volumes {
            let settings = definition
                .as_object()
                .filter(|settings| !settings.is_empty());
            if let Some(settings) = settings {
                report.left(
                    format!("volumes.{volume}"),
                    shown(&Value::Object(settings.clone())),
                    "each job's volumes are local Docker volumes made per task; drivers, options and external volumes are not carried",
                );
            }
        }
    }
    top.leave_rest(report, |key| match key {
        "networks" => Some(
            "tasks run on their hosts' network and reach each other through {{ addr(\"job\") }}",
        ),
        "configs" => {
            Some("coding-job has no config files; bake the file into the image or seed a volume")
        }
        "include" => Some("other Compose files are not read: import each of them"),
        _ => None,
    });
    Ok(files.into_values().collect())
}

/// `worker-10` as (`worker-`, 10): numbers compared as numbers.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    key.push((text, digits.parse().unwrap_or(0)));
    key
}

/// A `version: "1"` file has its services at the top.
fn legacy_services(tree: &Value, top: &mut Fields) -> Option<serde_json::Map<String, Value>> {
    let map = tree.as_object()?;
    let services: serde_json::Map<String, Value> = map
        .iter()
        .filter(|(key, value)| {
            !key.starts_with("x-") && (value.get("image").is_some() || value.get("build").is_some())
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if services.is_empty() {
        return None;
    }
    for key in services.keys() {
        top.take(key);
    }
    Some(services)
}

/// `--project`, else the file's `name:`, else the file's name without its extension.
fn project_name(source: &Source, options: &Options, top: &mut Fields) -> String {
    if let Some(project) = options.project {
        return name(project);
    }
    if let Some(written) = top.take("name").and_then(scalar)
        && !written.contains('$')
    {
        return name(&written);
    }
    let stem = source.file.rsplit('/').next().unwrap_or(source.file);
    let stem = stem
        .trim_end_matches(".yml")
        .trim_end_matches(".yaml")
        .trim_end_matches(".json");
    name(&stem.to_ascii_lowercase())
}

fn first_profile(definition: &Value) -> Option<String> {
    definition
        .get("profiles")?
        .as_array()?
        .first()
        .and_then(scalar)
}

/// Named volumes that more than one service mounts.
fn shared_volumes(services: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut users: BTreeMap<String, usize> = BTreeMap::new();
    for definition in services.values() {
        let Some(Value::Array(volumes)) = definition.get("volumes") else {
            continue;
        };
        for volume in volumes {
            let source = match volume {
                Value::String(text) => text.split(':').next().unwrap_or("").to_string(),
                other => other.get("source").and_then(scalar).unwrap_or_default(),
            };
            if !source.is_empty() && !source.starts_with(['/', '.', '~', '$']) {
                *users.entry(source).or_default() += 1;
            }
        }
    }
    users
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(source, _)| source)
        .collect()
}

/// `addr("db")` needs db's port: one written with the reference (`db:5432`) gives it when the
/// service published none.
fn ports_from_references(
    files: &mut BTreeMap<String, ServiceFile>,
    placement: &BTreeMap<String, (String, String)>,
    references: &[(addresses::Reference, String)],
    report: &mut Report,
) {
    for (reference, path) in references {
        let (file, job_name) = &placement[&reference.service];
        let Some(job) = files
            .get_mut(file)
            .and_then(|file| file.jobs.iter_mut().find(|job| &job.name == job_name))
        else {
            continue;
        };
        match (job.port, reference.port) {
            (None, Some(port)) => {
                job.port = Some(port);
                report.note(
                    format!("services.{}", reference.service),
                    format!("port {port}: it publishes none, and {path} reaches it there"),
                );
            }
            (Some(own), Some(port)) if own != port => report.note(
                path.clone(),
                format!(
                    "reaches {} on port {port}, but its job's port is {own}: addr gives {own}",
                    reference.service
                ),
            ),
            (None, None) => report.note(
                path.clone(),
                format!(
                    "{} has no port: set its `port:` for addr(\"{}\") to give one",
                    reference.service, job_name
                ),
            ),
            _ => {}
        }
    }
}

/// Jobs with the same fixed port never share a host.
fn port_clashes(files: &BTreeMap<String, ServiceFile>, report: &mut Report) {
    let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for file in files.values() {
        for job in &file.jobs {
            if let Some(port) = job.port {
                by_port
                    .entry(port)
                    .or_default()
                    .push(format!("{}/{}", file.service, job.name));
            }
        }
    }
    for (port, jobs) in by_port {
        if jobs.len() > 1 {
            report.note(
                format!("port {port}"),
                format!(
                    "{} all listen on {port} on their hosts' network: no two of them share a host, so they need {} hosts (on one host, only one runs)",
                    jobs.join(", "),
                    jobs.len()
                ),
            );
        }
    }
}
