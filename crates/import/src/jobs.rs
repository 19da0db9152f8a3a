//! The seed's job list, in protobuf text format: `jobs: < name: "..." image: "..."
//! run_on_host: "..." port: "..." envs: < key: "..." value: "..." > >`. It is parsed against a
//! descriptor of that message built here, so a misspelt field is refused at its line and
//! column like any other input that cannot be read.

use std::collections::BTreeMap;

use miette::Diagnostic;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value as Field};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::report::Report;
use crate::service_file::{Job, ServiceFile};
use crate::text::{literal, name};
use crate::{ImportError, Options, Source};

pub fn import(
    source: &Source,
    options: &Options,
    report: &mut Report,
) -> Result<Vec<ServiceFile>, ImportError> {
    let list = DynamicMessage::parse_text_format(job_list(), source.text)
        .map_err(|error| located(source, &error))?;
    let service = options
        .project
        .map(name)
        .unwrap_or_else(|| name(&file_stem(source.file)));
    let mut jobs = Vec::new();
    for (index, entry) in repeated(&list, "jobs").iter().enumerate() {
        let Some(entry) = entry.as_message() else {
            continue;
        };
        let path = format!("jobs[{index}]");
        jobs.push(job(entry, &path, report));
    }
    pinned_port_clashes(&jobs, report);
    Ok(vec![ServiceFile { service, jobs }])
}

fn job(entry: &DynamicMessage, path: &str, report: &mut Report) -> Job {
    let text = |field: &str| {
        entry
            .get_field_by_name(field)
            .and_then(|value| value.as_str().map(str::to_string))
            .filter(|value| !value.is_empty())
    };
    let written_name = text("name").unwrap_or_else(|| format!("job-{path}"));
    let job_name = name(&written_name);
    if job_name != written_name {
        report.note(
            format!("{path}.name"),
            format!(
                "{written_name:?} is now {job_name}: names are letters, digits, '-', '_' or '.'"
            ),
        );
    }
    let mut job = Job {
        name: job_name,
        image: text("image").map(|image| literal(&image)),
        run_on_host: text("run_on_host").map(|host| name(&host)),
        ..Job::default()
    };
    if let Some(port) = text("port") {
        match port.trim().parse::<u16>() {
            Ok(0) => report.note(
                format!("{path}.port"),
                "0: a port is allocated for each task (`port: auto` writes it as $PORT)",
            ),
            Ok(port) => job.port = Some(port),
            Err(_) => report.left(format!("{path}.port"), port, "not a port number"),
        }
    }
    for (index, env) in repeated(entry, "envs").iter().enumerate() {
        let Some(env) = env.as_message() else {
            continue;
        };
        let field = |name: &str| {
            env.get_field_by_name(name)
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let key = field("key");
        if key.is_empty() {
            report.left(format!("{path}.envs[{index}]"), "", "an env without a key");
            continue;
        }
        job.env.insert(key, literal(&field("value")));
    }
    if job.image.is_none() {
        report.left(
            path,
            "no image",
            "a job needs an image: add `image:` to the written file",
        );
    }
    job
}

/// Two jobs pinned to the same host with the same port cannot both run there.
fn pinned_port_clashes(jobs: &[Job], report: &mut Report) {
    let mut pinned: BTreeMap<(String, u16), Vec<&str>> = BTreeMap::new();
    for job in jobs {
        if let (Some(host), Some(port)) = (&job.run_on_host, job.port) {
            pinned
                .entry((host.clone(), port))
                .or_default()
                .push(&job.name);
        }
    }
    for ((host, port), names) in pinned {
        if names.len() > 1 {
            report.note(
                format!("host {host}, port {port}"),
                format!(
                    "{} are all pinned to {host} and listen on {port} on its network: only one of them can listen there at a time: move one to another host or port",
                    names.join(" and ")
                ),
            );
        }
    }
}

fn repeated(message: &DynamicMessage, field: &str) -> Vec<Field> {
    match message.get_field_by_name(field).as_deref() {
        Some(Field::List(items)) => items.clone(),
        _ => Vec::new(),
    }
}

fn file_stem(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.split('.').next().unwrap_or(base).to_ascii_lowercase()
}

fn located(source: &Source, error: &prost_reflect::text_format::ParseError) -> ImportError {
    let offset = error
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let (line, column) = match offset {
        Some(offset) => {
            let before = &source.text[..offset.min(source.text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    ImportError {
        file: source.file.to_string(),
        line,
        column,
        message: format!(
            "not a job list in protobuf text format: {error} (expected jobs: < name, image, run_on_host, port, envs: < key, value > >)"
        ),
    }
}

/// The job list's message, as the seed writes it.
fn job_list() -> MessageDescriptor {
    let string = |name: &str, number: i32| field(name, number, Type::String, None, false);
    let file = FileDescriptorProto {
        name: Some("coding_job_list.proto".into()),
        package: Some("coding".into()),
        syntax: Some("proto3".into()),
        message_type: vec![
            DescriptorProto {
                name: Some("JobList".into()),
                field: vec![field("jobs", 1, Type::Message, Some(".coding.Job"), true)],
                ..Default::default()
            },
            DescriptorProto {
                name: Some("Job".into()),
                field: vec![
                    string("name", 1),
                    string("image", 2),
                    string("run_on_host", 3),
                    string("port", 4),
                    field("envs", 5, Type::Message, Some(".coding.Env"), true),
                ],
                ..Default::default()
            },
            DescriptorProto {
                name: Some("Env".into()),
                field: vec![string("key", 1), string("value", 2)],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] })
        .unwrap_or_else(|error| unreachable!("the job list's descriptor is valid: {error}"));
    pool.get_message_by_name("coding.JobList")
        .unwrap_or_else(|| unreachable!("the job list's descriptor defines coding.JobList"))
}

fn field(
    name: &str,
    number: i32,
    kind: Type,
    type_name: Option<&str>,
    repeated: bool,
) -> FieldDescriptorProto {
    let label = if repeated {
        Label::Repeated
    } else {
        Label::Optional
    };
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(kind as i32),
        type_name: type_name.map(str::to_string),
        json_name: Some(name.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"jobs: <
  name: "coding-prober"
  image: "coding-prober:latest"
  run_on_host: "mon"
  port: "4444"
>
jobs: <
  name: "webhook-listener"
  image: "webhook-listener:a5af2f2"
  run_on_host: "git-app-1"
  port: "9999"
  envs: <
    key: "http_port"
    value: "8990"
  >
>
jobs: <
  name: "updatehook-listener"
  image: "updatehook-listener:latest"
  run_on_host: "git-app-1"
  port: "9999"
>
"#;

    fn run(text: &str) -> Result<(Vec<ServiceFile>, Report), ImportError> {
        let mut report = Report::default();
        let source = Source {
            file: "jobs.pb.txt",
            text,
        };
        let files = import(&source, &Options::default(), &mut report)?;
        Ok((files, report))
    }

    #[test]
    fn the_seeds_list_becomes_pinned_jobs_and_the_port_clash_is_said() {
        let (files, report) = run(SEED).unwrap();
        assert_eq!(files[0].service, "jobs");
        let webhook = &files[0].jobs[1];
        assert_eq!(webhook.run_on_host.as_deref(), Some("git-app-1"));
        assert_eq!(webhook.port, Some(9999));
        assert_eq!(webhook.env["http_port"], "8990");
        let notes = report.finish(Vec::new()).notes;
        assert!(
            notes[0]
                .note
                .contains("webhook-listener and updatehook-listener"),
            "{notes:?}"
        );
    }

    #[test]
    fn an_unknown_field_is_refused_where_it_is() {
        let error = run("jobs: <\n  name: \"a\"\n  imgae: \"x\"\n>\n").unwrap_err();
        assert_eq!((error.line, error.column), (Some(3), Some(3)), "{error}");
        assert!(error.message.contains("imgae"), "{error}");
    }
}
