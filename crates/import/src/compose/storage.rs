//! `volumes:` and `tmpfs:`. A named volume becomes one of the job's volumes (one Docker volume
//! per task and environment); a bind mount stays a bind (`docker_hostconfig.Binds`) of a path
//! that must exist on every host the task may run on.

use serde_json::{Value, json};

use super::values::{FileContext, Reader};
use crate::fields::{Fields, item};
use crate::service_file::{Job, Volume};
use crate::text::{scalar, shown, var_ref, volume_name};

/// One mount as Compose describes it.
struct Mount {
    kind: Kind,
    source: String,
    target: String,
    read_only: bool,
    flags: Option<String>,
}

#[derive(PartialEq)]
enum Kind {
    Volume,
    Bind,
    Tmpfs,
}

pub fn volumes(job: &mut Job, fields: &mut Fields, file: &FileContext, reader: &mut Reader) {
    let Some(Value::Array(entries)) = fields.take("volumes") else {
        return;
    };
    let path = fields.at("volumes");
    for (index, entry) in entries.iter().enumerate() {
        let at = item(&path, index);
        let mount = match entry {
            Value::Object(_) => long_syntax(entry, &at, reader),
            other => short_syntax(other, &at, reader),
        };
        let Some(mount) = mount else { continue };
        if !mount.target.starts_with('/') {
            reader.report.left(
                at,
                shown(entry),
                "the path in the container must be absolute",
            );
            continue;
        }
        match mount.kind {
            Kind::Volume => named(job, mount, &at, file, reader),
            Kind::Bind => bind(job, mount, &at, file, reader),
            Kind::Tmpfs => {
                job.docker_config
                    .docker_hostconfig
                    .entry("Tmpfs".to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|tmpfs| tmpfs.insert(mount.target.clone(), json!("")));
            }
        }
    }
}

pub fn tmpfs(job: &mut Job, fields: &mut Fields, _reader: &mut Reader) {
    let Some(value) = fields.take("tmpfs") else {
        return;
    };
    let targets = crate::text::scalars(value);
    let tmpfs = job
        .docker_config
        .docker_hostconfig
        .entry("Tmpfs".to_string())
        .or_insert_with(|| json!({}));
    for target in targets {
        let (target, options) = target.split_once(':').unwrap_or((&target, ""));
        if let Some(map) = tmpfs.as_object_mut() {
            map.insert(target.to_string(), json!(options));
        }
    }
}

fn short_syntax(entry: &Value, path: &str, reader: &mut Reader) -> Option<Mount> {
    let text = scalar(entry)?;
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => (*source, *target, ""),
        [source, target, mode] => (*source, *target, *mode),
        _ => {
            reader
                .report
                .left(path, text.clone(), "not SOURCE:TARGET[:MODE]");
            return None;
        }
    };
    let flags: Vec<&str> = mode.split(',').filter(|flag| !flag.is_empty()).collect();
    let kind = if source.is_empty() || !is_path(source) {
        Kind::Volume
    } else {
        Kind::Bind
    };
    Some(Mount {
        kind,
        source: source.to_string(),
        target: target.to_string(),
        read_only: flags.contains(&"ro"),
        flags: (!mode.is_empty()).then(|| mode.to_string()),
    })
}

fn long_syntax(entry: &Value, path: &str, reader: &mut Reader) -> Option<Mount> {
    let mut fields = Fields::new(path, entry);
    let kind = match fields.text("type").as_deref() {
        Some("bind") => Kind::Bind,
        Some("tmpfs") => Kind::Tmpfs,
        Some("volume") | None => Kind::Volume,
        Some(other) => {
            reader.report.left(
                fields.at("type"),
                other,
                "only volume, bind and tmpfs mounts are carried",
            );
            return None;
        }
    };
    let source = fields.text("source").unwrap_or_default();
    let target = fields.text("target")?;
    let read_only = fields.take("read_only").and_then(Value::as_bool) == Some(true);
    fields.leave_rest(reader.report, |key| match key {
        "bind" | "volume" | "tmpfs" | "consistency" => {
            Some("mount options are not carried; Docker's defaults apply")
        }
        _ => None,
    });
    Some(Mount {
        kind,
        source,
        target,
        read_only,
        flags: read_only.then(|| "ro".to_string()),
    })
}

fn is_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~', '$'])
}

fn named(job: &mut Job, mount: Mount, path: &str, file: &FileContext, reader: &mut Reader) {
    let volume_name = if mount.source.is_empty() {
        let made = volume_name(&mount.target);
        reader.report.note(
            path,
            format!(
                "an anonymous volume at {}: now the volume {made}",
                mount.target
            ),
        );
        made
    } else {
        volume_name(&mount.source)
    };
    if file.shared_volumes.contains(&mount.source) {
        reader.report.note(
            path,
            format!(
                "the volume {} is shared by several services in Compose; coding-job gives each task a volume of its own",
                mount.source
            ),
        );
    }
    if mount.read_only {
        reader.report.note(
            path,
            "mounted read-only in Compose; coding-job mounts the job's volumes read-write",
        );
    }
    if job
        .volumes
        .iter()
        .any(|volume| volume.name == volume_name || volume.mount == mount.target)
    {
        reader.report.left(
            path,
            format!("{volume_name}:{}", mount.target),
            "the same volume or path is mounted earlier in the list",
        );
        return;
    }
    job.volumes.push(Volume {
        name: volume_name,
        mount: mount.target,
        seed: None,
    });
}

fn bind(job: &mut Job, mount: Mount, path: &str, file: &FileContext, reader: &mut Reader) {
    let source = if let Some(relative) = mount.source.strip_prefix("~/") {
        reader.report.variable("home_dir", None, false, path);
        format!("{}/{relative}", var_ref("home_dir"))
    } else if mount.source.starts_with('.') {
        let relative = mount
            .source
            .trim_start_matches("./")
            .trim_start_matches('.');
        match file.base_dir {
            Some(base) => format!("{}/{relative}", base.trim_end_matches('/'))
                .trim_end_matches('/')
                .to_string(),
            None => {
                reader.report.variable("compose_dir", None, false, path);
                format!("{}/{relative}", var_ref("compose_dir"))
                    .trim_end_matches('/')
                    .to_string()
            }
        }
    } else {
        match reader.template(&Value::String(mount.source.clone()), path) {
            Some(source) => source,
            None => return,
        }
    };
    reader.report.note(
        path,
        format!(
            "bind mount of {}: the path must exist on every host the task may run on",
            shown(&Value::String(mount.source.clone()))
        ),
    );
    let mut bind = format!("{source}:{}", mount.target);
    if let Some(flags) = &mount.flags {
        bind.push(':');
        bind.push_str(flags);
    }
    job.docker_config.push_host("Binds", bind);
}
