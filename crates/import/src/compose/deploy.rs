//! `deploy:` (Swarm's, kept by the Compose Specification) and the older `mem_limit`/`cpus`:
//! instances, resources, placement constraints and the update policy.

use serde_json::Value;

use super::values::Reader;
use crate::fields::{Fields, item};
use crate::service_file::{Job, Resources, Update};
use crate::text::{memory, scalar, shown};

/// `deploy:` (and the older `mem_limit`, `cpus`): instances, resources, placement, updates.
pub fn read(job: &mut Job, fields: &mut Fields, reader: &mut Reader) {
    let mut resources = Resources::default();
    if let Some(limit) = fields.take("mem_limit") {
        resources.memory = size(limit, &fields.at("mem_limit"), reader);
    }
    if let Some(cpus) = fields.take("cpus") {
        resources.cpu = cpu(cpus, &fields.at("cpus"), reader);
    }
    if let Some(deploy) = fields.take("deploy") {
        let mut deploy_fields = Fields::new(fields.at("deploy"), deploy);
        if let Some(replicas) = deploy_fields.take("replicas") {
            let at = deploy_fields.at("replicas");
            match reader.plain(replicas, &at).and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => reader.report.note(
                    at,
                    "replicas: 0 — imported with one instance; leave the job out of `up` to keep it stopped",
                ),
                Some(1) => {}
                Some(count) if count <= cj_spec::limits::MAX_INSTANCES => {
                    job.instances = Some(count)
                }
                Some(count) => reader.report.left(
                    at,
                    count.to_string(),
                    format!("more than {} instances", cj_spec::limits::MAX_INSTANCES),
                ),
                None => {}
            }
        }
        if let Some(mode) = deploy_fields.take("mode").and_then(scalar)
            && mode == "global"
        {
            reader.report.left(
                deploy_fields.at("mode"),
                mode,
                "one task on every host: list the hosts with `hosts: [...]`",
            );
        }
        if let Some(limits) = deploy_fields.take("resources") {
            let mut resource_fields = Fields::new(deploy_fields.at("resources"), limits);
            if let Some(limits) = resource_fields.take("limits") {
                let mut limit_fields = Fields::new(resource_fields.at("limits"), limits);
                if let Some(limit) = limit_fields.take("memory") {
                    resources.memory = size(limit, &limit_fields.at("memory"), reader);
                }
                if let Some(cpus) = limit_fields.take("cpus") {
                    resources.cpu = cpu(cpus, &limit_fields.at("cpus"), reader);
                }
                limit_fields.leave_rest(reader.report, |_| None);
            }
            if let Some(reservations) = resource_fields.take("reservations") {
                reader.report.left(
                    resource_fields.at("reservations"),
                    shown(reservations),
                    "coding-job reserves a task's limits when it places it: the limits are both",
                );
            }
            resource_fields.leave_rest(reader.report, |_| None);
        }
        if let Some(placement) = deploy_fields.take("placement") {
            self::placement(job, placement, &deploy_fields.at("placement"), reader);
        }
        if let Some(update) = deploy_fields.take("update_config") {
            update_config(job, update, &deploy_fields.at("update_config"), reader);
        }
        deploy_fields.leave_rest(reader.report, |key| match key {
            "restart_policy" => Some("tasks restart with backoff unless on_failure: keep"),
            "rollback_config" => Some("rollbacks use the job's update policy"),
            "endpoint_mode" | "labels" => {
                Some("Swarm service settings: not part of coding-job's model")
            }
            _ => None,
        });
    }
    if resources.memory.is_some() || resources.cpu.is_some() {
        job.resources = Some(resources);
    }
}

fn placement(job: &mut Job, placement: &Value, path: &str, reader: &mut Reader) {
    let mut fields = Fields::new(path, placement);
    if let Some(Value::Array(constraints)) = fields.take("constraints") {
        for (index, constraint) in constraints.iter().enumerate() {
            let at = item(&fields.at("constraints"), index);
            let text = scalar(constraint).unwrap_or_default();
            let label = text
                .split_once("==")
                .map(|(key, value)| (key.trim(), value.trim()))
                .and_then(|(key, value)| Some((key.strip_prefix("node.labels.")?, value)));
            match label {
                Some((key, value)) => {
                    job.constraints.insert(key.to_string(), value.to_string());
                }
                None => reader.report.left(
                    at,
                    text,
                    "only node.labels.KEY == VALUE is carried (as constraints: {KEY: VALUE})",
                ),
            }
        }
    }
    fields.leave_rest(reader.report, |key| match key {
        "preferences" | "max_replicas_per_node" => {
            Some("coding-job spreads instances over the eligible hosts itself")
        }
        _ => None,
    });
}

fn update_config(job: &mut Job, update: &Value, path: &str, reader: &mut Reader) {
    let mut fields = Fields::new(path, update);
    let mut policy = Update::default();
    if let Some(parallelism) = fields.take("parallelism").and_then(Value::as_u64) {
        policy.batch_size = u32::try_from(parallelism)
            .ok()
            .filter(|&n| (1..=100).contains(&n));
    }
    if let Some(action) = fields.take("failure_action").and_then(scalar) {
        policy.auto_rollback = Some(action == "rollback");
    }
    if let Some(monitor) = fields.take("monitor").and_then(scalar) {
        policy.min_healthy_time = cj_spec::parse_duration_ms(&monitor)
            .filter(|&ms| ms <= cj_spec::limits::MAX_START_PERIOD_MS)
            .map(crate::text::duration);
    }
    fields.leave_rest(reader.report, |key| match key {
        "delay" | "order" | "max_failure_ratio" => {
            Some("coding-job's rollouts start each batch when the last is healthy")
        }
        _ => None,
    });
    job.update = Some(policy);
}

fn size(value: &Value, path: &str, reader: &mut Reader) -> Option<String> {
    let text = reader.plain(value, path)?;
    match cj_spec::parse_memory(&text) {
        Some(bytes) if bytes >= cj_spec::limits::MIN_MEMORY_BYTES => Some(memory(bytes)),
        _ => {
            reader
                .report
                .left(path, text, "not a memory size of at least 6 MiB");
            None
        }
    }
}

fn cpu(value: &Value, path: &str, reader: &mut Reader) -> Option<f64> {
    let text = reader.plain(value, path)?;
    match text.parse::<f64>() {
        Ok(cpus) if (cj_spec::limits::MIN_CPUS..=cj_spec::limits::MAX_CPUS).contains(&cpus) => {
            Some(cpus)
        }
        _ => {
            reader
                .report
                .left(path, text, "not a number of CPUs from 0.01");
            None
        }
    }
}
