//! What changes between two configurations, task by task, and why: the plan `diff` shows and a
//! rollout carries out.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::TaskSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new task: a container will be created.
    Create,
    /// The task's configuration differs: its container will be replaced.
    Replace,
    /// Same configuration: the running container stays.
    Unchanged,
    /// The task is gone from the new configuration: its container will be removed.
    Remove,
}

/// One task's change, with the reasons for a replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskChange {
    pub job: String,
    pub task: String,
    pub change: ChangeKind,
    pub reasons: Vec<String>,
}

/// The change from `old` to `new` for one task (either may be absent).
pub fn task_change(
    job: &str,
    task: &str,
    old: Option<&TaskSpec>,
    new: Option<&TaskSpec>,
) -> TaskChange {
    let (change, reasons) = match (old, new) {
        (None, None) | (None, Some(_)) => (ChangeKind::Create, Vec::new()),
        (Some(_), None) => (ChangeKind::Remove, Vec::new()),
        (Some(old), Some(new)) => {
            let reasons = differences(old, new);
            if reasons.is_empty() && old.config_hash() == new.config_hash() {
                (ChangeKind::Unchanged, reasons)
            } else {
                (ChangeKind::Replace, reasons)
            }
        }
    };
    TaskChange {
        job: job.to_owned(),
        task: task.to_owned(),
        change,
        reasons,
    }
}

/// Why two configurations of a task differ, in words.
pub fn differences(old: &TaskSpec, new: &TaskSpec) -> Vec<String> {
    let mut reasons = Vec::new();
    let show = |image: &Option<String>| image.clone().unwrap_or_else(|| "none".into());
    if old.image != new.image {
        reasons.push(format!(
            "image {} -> {}",
            show(&old.image),
            show(&new.image)
        ));
    }
    if old.command != new.command {
        reasons.push("command changed".into());
    }
    if old.env != new.env {
        let names: BTreeSet<&String> = old
            .env
            .iter()
            .chain(new.env.iter())
            .filter(|(name, _)| old.env.get(*name) != new.env.get(*name))
            .map(|(name, _)| name)
            .collect();
        let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
        reasons.push(format!("env changed ({})", names.join(", ")));
    }
    if old.port != new.port {
        reasons.push(format!("port {} -> {}", old.port, new.port));
    }
    if old.run_on_host != new.run_on_host {
        reasons.push(format!(
            "host {} -> {}",
            show(&old.run_on_host),
            show(&new.run_on_host)
        ));
    }
    if old.resources != new.resources {
        reasons.push("resources changed".into());
    }
    if old.init != new.init {
        reasons.push(format!("init {} -> {}", old.init, new.init));
    }
    for (section, old_fields, new_fields) in [
        (
            "docker_hostconfig",
            &old.docker_hostconfig,
            &new.docker_hostconfig,
        ),
        ("docker_config", &old.docker_config, &new.docker_config),
    ] {
        let changed: BTreeSet<&String> = old_fields
            .keys()
            .chain(new_fields.keys())
            .filter(|key| old_fields.get(*key) != new_fields.get(*key))
            .collect();
        if !changed.is_empty() {
            let keys: Vec<&str> = changed.into_iter().map(String::as_str).collect();
            reasons.push(format!("{section} changed ({})", keys.join(", ")));
        }
    }
    if old.check != new.check {
        reasons.push("check changed".into());
    }
    match (&old.artifact, &new.artifact) {
        (Some(old), Some(new)) if old.url != new.url => {
            reasons.push(format!("artifact {} -> {}", old.url, new.url));
        }
        (old_artifact, new_artifact) if old_artifact != new_artifact => {
            reasons.push("artifact changed".into());
        }
        _ => {}
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(yaml_job: &str) -> TaskSpec {
        crate::parse_service(
            "t.yaml",
            &format!("service: s\njobs:\n  - name: j\n{yaml_job}"),
        )
        .unwrap()
        .jobs[0]
            .tasks[0]
            .clone()
    }

    #[test]
    fn reasons_name_what_changed() {
        let old = task("    image: a:1\n    env: {A: 1, B: 2}\n    port: 80\n");
        let new = task(
            "    image: a:2\n    env: {A: 1, B: 3, C: 4}\n    port: 81\n    docker_config:\n      docker_hostconfig: {Memory: 5}\n",
        );
        let change = task_change("j", "j", Some(&old), Some(&new));
        assert_eq!(change.change, ChangeKind::Replace);
        assert_eq!(
            change.reasons,
            [
                "image a:1 -> a:2",
                "env changed (B, C)",
                "port 80 -> 81",
                "docker_hostconfig changed (Memory)"
            ]
        );
    }

    #[test]
    fn an_artifact_of_another_version_replaces_the_task_and_none_changes_no_hash() {
        let sha = "a".repeat(64);
        let plain = task("    image: a:1\n");
        let with = |url: &str| {
            task(&format!(
                "    image: a:1\n    artifact: {{ url: {url}, sha256: {sha}, path: /app }}\n"
            ))
        };
        let one = with("/srv/api-1.tar.gz");
        let two = with("/srv/api-2.tar.gz");
        assert_eq!(
            task_change("j", "j", Some(&one), Some(&two)).reasons,
            ["artifact /srv/api-1.tar.gz -> /srv/api-2.tar.gz"]
        );
        assert_eq!(
            task_change("j", "j", Some(&plain), Some(&one)).reasons,
            ["artifact changed"]
        );
        // A task without an artifact hashes as before artifacts existed: an upgrade of the
        // server restarts nothing.
        let encoded = serde_json::to_string(&plain).unwrap();
        assert!(!encoded.contains("artifact"), "{encoded}");
    }

    #[test]
    fn same_configuration_is_unchanged() {
        let old = task("    image: a:1\n");
        assert_eq!(
            task_change("j", "j", Some(&old), Some(&old.clone())).change,
            ChangeKind::Unchanged
        );
        assert_eq!(
            task_change("j", "j", None, Some(&old)).change,
            ChangeKind::Create
        );
        assert_eq!(
            task_change("j", "j", Some(&old), None).change,
            ChangeKind::Remove
        );
    }
}
