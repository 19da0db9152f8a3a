//! The bounds the config puts on a whole service, which no single app's conversion can see: at
//! most 1000 tasks, holding at most 16 MiB of settings once each job's are copied into each of
//! its tasks. A group of Marathon apps may hold more; the largest jobs give up instances first,
//! and each cut is said. The bounds of one task (its environment, command and Docker fields)
//! are kept here too.

use serde_json::Value;

use super::Context;
use crate::fields::join;
use crate::service_file::{Job, ServiceFile};

use std::collections::BTreeMap;

use cj_spec::limits::{
    MAX_COMMAND_ARGS, MAX_COMMAND_BYTES, MAX_DOCKER_FIELDS_BYTES, MAX_ENV_BYTES, MAX_ENV_VARS,
    MAX_EXPANDED_BYTES, MAX_TASKS, MAX_TEMPLATE_BYTES,
};

/// Cuts the service's instances to what the config accepts. `paths` are the apps'
/// paths in the source, by job.
pub(super) fn fit(context: &mut Context, file: &mut ServiceFile, paths: &[&str]) {
    let weights: Vec<u64> = file.jobs.iter().map(task_bytes).collect();
    let before: Vec<u64> = file
        .jobs
        .iter()
        .map(|job| u64::from(job.instances.unwrap_or(1)))
        .collect();
    let capped = |cap: u64| -> Vec<u64> { before.iter().map(|count| (*count).min(cap)).collect() };
    let fits = |tasks: &[u64]| {
        let count: u64 = tasks.iter().sum();
        let bytes: u64 = tasks
            .iter()
            .zip(&weights)
            .map(|(count, weight)| count * weight)
            .sum();
        count <= MAX_TASKS as u64 && bytes <= MAX_EXPANDED_BYTES as u64
    };
    // The most instances any job keeps: the largest cap that fits, so the largest jobs give
    // up instances first.
    let most = before.iter().copied().max().unwrap_or(1);
    let (mut low, mut high) = (1, most);
    while low < high {
        let middle = (low + high).div_ceil(2);
        match fits(&capped(middle)) {
            true => low = middle,
            false => high = middle - 1,
        }
    }
    let tasks = capped(low);
    for (index, job) in file.jobs.iter_mut().enumerate() {
        if tasks[index] == before[index] {
            continue;
        }
        let note = format!(
            "{} instances would take the service past what the config accepts (1000 tasks, 16 MiB of settings copied into them): instances {}",
            before[index], tasks[index]
        );
        context.note(format!("{}.instances", paths[index]), note);
        job.instances = Some(u32::try_from(tasks[index]).unwrap_or(1));
    }
}

/// Leaves out what would take one task of `job` (the app at `path`) past the config's bounds:
/// its environment, command, exec check or Docker fields, each reported.
pub(super) fn fit_job(context: &mut Context, path: &str, job: &mut Job) {
    let oversized = |value: &str| cj_spec::is_template(value) && value.len() > MAX_TEMPLATE_BYTES;
    let env_bytes = |env: &BTreeMap<String, String>| -> usize {
        env.iter()
            .map(|(name, value)| name.len() + value.len() + 2)
            .sum()
    };
    loop {
        let too_many = job.env.len() > MAX_ENV_VARS || env_bytes(&job.env) > MAX_ENV_BYTES;
        let cut = job
            .env
            .iter()
            .find(|(_, value)| oversized(value))
            .or_else(|| {
                too_many
                    .then(|| job.env.iter().max_by_key(|(_, value)| value.len()))
                    .flatten()
            })
            .map(|(name, _)| name.clone());
        let Some(name) = cut else { break };
        job.env.remove(&name);
        job.secret_env.retain(|secret| *secret != name);
        let why = "the task's environment would pass the config's bounds (1000 variables, 128 KiB, a template of 32 KiB): put large values in a file and mount it";
        context.left(join(&join(path, "env"), &name), name.as_str(), why);
    }
    let argv_fits = |argv: &[String]| {
        argv.len() <= MAX_COMMAND_ARGS
            && argv.iter().map(|arg| arg.len() + 1).sum::<usize>() <= MAX_COMMAND_BYTES
            && !argv.iter().any(|arg| oversized(arg))
    };
    if let Some(command) = job.command.take_if(|command| !argv_fits(command)) {
        let key = if command.starts_with(&["sh".into(), "-c".into()]) {
            "cmd"
        } else {
            "args"
        };
        let why = "longer than the config accepts (1000 arguments, 128 KiB, a template of 32 KiB)";
        context.left(join(path, key), format!("{} arguments", command.len()), why);
    }
    if let Some(check) = job
        .check
        .take_if(|check| check.exec.as_deref().is_some_and(|argv| !argv_fits(argv)))
    {
        let why = "the check's command is longer than the config accepts (1000 arguments, 128 KiB)";
        context.left(
            join(path, "healthChecks"),
            check.exec.map(|argv| argv.join(" ")).unwrap_or_default(),
            why,
        );
    }
    for section in [
        &mut job.docker_config.docker_hostconfig,
        &mut job.docker_config.docker_config,
    ] {
        let bytes = |section: &BTreeMap<String, Value>| -> usize {
            section
                .iter()
                .map(|(key, value)| key.len() + cj_spec::json_bytes(value))
                .sum()
        };
        while bytes(section) > MAX_DOCKER_FIELDS_BYTES {
            let Some(largest) = section
                .iter()
                .max_by_key(|(_, value)| cj_spec::json_bytes(value))
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            section.remove(&largest);
            let why = "the Docker fields would pass the 64 KiB the config accepts";
            context.left(join(path, "container.docker"), largest, why);
        }
    }
}

/// About the bytes of settings one task of `job` holds, as the config counts them (an estimate
/// at least as large).
fn task_bytes(job: &Job) -> u64 {
    let env = cj_spec::env_bytes(&job.env);
    let command = job.command.as_deref().map_or(0, cj_spec::command_bytes);
    let volumes: usize = job
        .volumes
        .iter()
        .map(|volume| {
            volume.name.len() + volume.mount.len() + volume.seed.as_ref().map_or(0, String::len)
        })
        .sum();
    let docker: usize = [
        &job.docker_config.docker_hostconfig,
        &job.docker_config.docker_config,
    ]
    .iter()
    .flat_map(|section| section.iter())
    .map(|(key, value)| key.len() + cj_spec::json_bytes(value))
    .sum();
    (env + command + volumes + docker) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    fn job(name: &str, instances: u32) -> Job {
        Job {
            name: name.into(),
            instances: Some(instances),
            ..Job::default()
        }
    }

    #[test]
    fn a_service_keeps_to_the_configs_task_bounds() {
        let mut report = Report::default();
        let mut context = Context::new(&mut report);
        let mut file = ServiceFile {
            service: "s".into(),
            jobs: vec![job("a", 900), job("b", 300), job("c", 2)],
        };
        fit(&mut context, &mut file, &["apps[0]", "apps[1]", "apps[2]"]);
        let instances: Vec<u32> = file.jobs.iter().map(|job| job.instances.unwrap()).collect();
        assert!(instances.iter().sum::<u32>() <= 1000);
        assert_eq!(
            instances[..2],
            [698, 300],
            "the largest job gives up instances first"
        );
        assert_eq!(instances[2], 2, "the smallest job keeps its instances");

        let mut heavy = job("heavy", 1000);
        heavy.env.insert("BLOB".into(), "x".repeat(100 * 1024));
        let mut file = ServiceFile {
            service: "s".into(),
            jobs: vec![heavy],
        };
        fit(&mut context, &mut file, &["apps[0]"]);
        let kept = u64::from(file.jobs[0].instances.unwrap());
        assert!(kept * task_bytes(&file.jobs[0]) <= MAX_EXPANDED_BYTES as u64);
    }

    #[test]
    fn a_task_keeps_to_the_configs_bounds() {
        let mut report = Report::default();
        let mut context = Context::new(&mut report);
        let mut big = job("big", 1);
        for index in 0..1200 {
            big.env.insert(format!("VAR_{index}"), "x".into());
        }
        big.env.insert("HUGE".into(), "{{".repeat(20 * 1024));
        big.command = Some(vec!["sh".into(), "-c".into(), "y".repeat(200 * 1024)]);
        fit_job(&mut context, "apps[0]", &mut big);
        assert_eq!(big.env.len(), MAX_ENV_VARS);
        assert!(!big.env.contains_key("HUGE"));
        assert_eq!(big.command, None);
    }
}
