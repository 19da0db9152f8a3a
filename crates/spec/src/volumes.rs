//! `volumes:` named Docker volumes, one per task and environment, mounted into the task's
//! container and optionally filled from a tarball (`seed`) before it first starts. A task's list
//! replaces its job's, like every other setting.

use std::collections::HashSet;

use serde_saphyr::Spanned;

use crate::error::shown;
use crate::limits::{MAX_VOLUME_PATH_LEN, MAX_VOLUMES};
use crate::model::VolumeSpec;
use crate::names::{VOLUME_NAME_RULE, is_valid_volume_name};
use crate::parse::Checker;
use crate::raw::RawVolume;
use crate::template_syntax::is_template;

impl Checker<'_> {
    /// The volumes written at `path` (a job or a task), checked.
    pub(crate) fn volumes(
        &mut self,
        path: &str,
        raw: &Spanned<Vec<RawVolume>>,
    ) -> Option<Vec<VolumeSpec>> {
        let path = format!("{path}.volumes");
        if raw.value.len() > MAX_VOLUMES {
            let message = format!(
                "the task has {} volumes; at most {MAX_VOLUMES} are accepted",
                raw.value.len()
            );
            self.error(&raw.referenced, path, message);
            return None;
        }
        let mut names = HashSet::new();
        let mut mounts = HashSet::new();
        let mut volumes = Vec::with_capacity(raw.value.len());
        for (index, volume) in raw.value.iter().enumerate() {
            let volume_path = format!("{path}[{index}]");
            let (name, mount) = (&volume.name, &volume.mount);
            let name_path = format!("{volume_path}.name");
            let name_problem = if !is_valid_volume_name(&name.value) {
                Some(format!(
                    "invalid volume name \"{}\": {VOLUME_NAME_RULE}",
                    shown(&name.value)
                ))
            } else if !names.insert(name.value.as_str()) {
                Some(format!(
                    "duplicate volume name \"{}\"; each volume of a task needs its own name",
                    shown(&name.value)
                ))
            } else {
                None
            };
            if !self.refuse_template(&name.referenced, &name_path, &name.value)
                && let Some(problem) = name_problem
            {
                self.error(&name.referenced, name_path, problem);
            }
            let mount_path = format!("{volume_path}.mount");
            let mount_problem = mount_problem(&mount.value).or_else(|| {
                (!mounts.insert(mount.value.trim_end_matches('/'))).then(|| {
                    format!(
                        "duplicate mount \"{}\"; two volumes cannot be mounted at one path",
                        shown(&mount.value)
                    )
                })
            });
            if !self.refuse_template(&mount.referenced, &mount_path, &mount.value)
                && let Some(problem) = mount_problem
            {
                self.error(&mount.referenced, mount_path, problem);
            }
            if let Some(seed) = &volume.seed {
                let seed_path = format!("{volume_path}.seed");
                // A template is checked once rendered; its length and characters are checked
                // now, as they bound the stored spec.
                let unfit = seed.value.len() > MAX_VOLUME_PATH_LEN
                    || seed.value.chars().any(char::is_control);
                let problem = match unfit {
                    true => seed_problem(&seed.value),
                    false if self.template_value(&seed.referenced, &seed_path, &seed.value) => None,
                    false => seed_problem(&seed.value),
                };
                if let Some(problem) = problem {
                    self.error(&seed.referenced, seed_path, problem);
                }
            }
            volumes.push(VolumeSpec {
                name: name.value.clone(),
                mount: mount.value.clone(),
                seed: volume.seed.as_ref().map(|seed| seed.value.clone()),
            });
        }
        Some(volumes)
    }
}

/// Why `mount` is not a path a volume can be mounted at, if it is not.
pub(crate) fn mount_problem(mount: &str) -> Option<String> {
    if mount.len() > MAX_VOLUME_PATH_LEN {
        return Some(format!(
            "the mount path is {} bytes; at most {MAX_VOLUME_PATH_LEN} are accepted",
            mount.len()
        ));
    }
    if !mount.starts_with('/') {
        return Some(format!(
            "expected an absolute path in the container, such as /data, found \"{}\"",
            shown(mount)
        ));
    }
    if mount.trim_end_matches('/').is_empty() {
        return Some("a volume cannot be mounted at / (the container's whole filesystem)".into());
    }
    // Docker's mount syntaxes separate their parts with ':' and ','.
    if mount
        .chars()
        .any(|c| c.is_control() || c == ':' || c == ',')
    {
        return Some(format!(
            "the mount path \"{}\" contains a control character, ':' or ',', which Docker's mounts cannot hold",
            shown(mount)
        ));
    }
    None
}

/// Why `seed` is neither a tarball on the host nor an http(s) URL, if it is neither.
pub(crate) fn seed_problem(seed: &str) -> Option<String> {
    let expected = "expected a tarball on the host (an absolute path ending in .tar, .tar.gz or .tgz) or an http:// or https:// URL";
    if seed.len() > MAX_VOLUME_PATH_LEN {
        return Some(format!(
            "{expected}, of at most {MAX_VOLUME_PATH_LEN} bytes"
        ));
    }
    if seed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "{expected}, without spaces or control characters, found \"{}\"",
            shown(seed)
        ));
    }
    let after_scheme = seed
        .strip_prefix("http://")
        .or_else(|| seed.strip_prefix("https://"));
    let valid = match after_scheme {
        Some(rest) => !rest.is_empty() && !rest.starts_with('/'),
        None => {
            seed.starts_with('/')
                && [".tar", ".tar.gz", ".tgz"]
                    .iter()
                    .any(|suffix| seed.len() > suffix.len() + 1 && seed.ends_with(suffix))
        }
    };
    (!valid).then(|| format!("{expected}, found \"{}\"", shown(seed)))
}

/// Whether a volume's seed is a template, rendered for each environment.
pub(crate) fn seed_is_template(volume: &VolumeSpec) -> bool {
    volume.seed.as_deref().is_some_and(is_template)
}

#[cfg(test)]
mod tests {
    use super::{mount_problem, seed_problem};
    use crate::parse_service;

    fn errors(settings: &str) -> String {
        parse_service(
            "s.yaml",
            &format!("service: core\njobs:\n  - name: db\n{settings}"),
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn volumes_are_given_to_tasks_and_a_tasks_list_replaces_the_jobs() {
        let spec = parse_service(
            "s.yaml",
            "service: core\njobs:\n  - name: db\n    volumes:\n      - { name: data, mount: /var/lib/db, seed: /srv/seed/db.tar.gz }\n      - { name: logs, mount: /logs }\n    tasks:\n      - name: db-1\n      - name: db-2\n        volumes: [{ name: other, mount: /other, seed: \"https://example.com/x.tgz\" }]\n",
        )
        .unwrap();
        let db = &spec.jobs[0];
        assert_eq!(db.tasks[0].volumes.len(), 2);
        assert_eq!(
            db.tasks[0].volumes[0].seed.as_deref(),
            Some("/srv/seed/db.tar.gz")
        );
        assert_eq!(db.tasks[0].volumes[1].seed, None);
        assert_eq!(db.tasks[1].volumes.len(), 1);
        assert_eq!(db.tasks[1].volumes[0].name, "other");
    }

    #[test]
    fn names_and_mounts_are_checked_and_unique() {
        let message = errors(
            "    volumes:\n      - { name: Data, mount: data }\n      - { name: logs, mount: / }\n      - { name: logs, mount: /a }\n      - { name: x, mount: /a/ }\n",
        );
        assert_eq!(
            message,
            [
                "s.yaml:5:17: jobs[0].volumes[0].name: invalid volume name \"Data\": expected 1 to 40 lowercase letters, digits or '-', starting with a letter",
                "s.yaml:5:30: jobs[0].volumes[0].mount: expected an absolute path in the container, such as /data, found \"data\"",
                "s.yaml:6:30: jobs[0].volumes[1].mount: a volume cannot be mounted at / (the container's whole filesystem)",
                "s.yaml:7:17: jobs[0].volumes[2].name: duplicate volume name \"logs\"; each volume of a task needs its own name",
                "s.yaml:8:27: jobs[0].volumes[3].mount: duplicate mount \"/a/\"; two volumes cannot be mounted at one path",
            ]
            .join("\n")
        );
    }

    #[test]
    fn unknown_keys_get_a_hint() {
        assert_eq!(
            errors("    volumes:\n      - { name: data, mount: /data, seeed: /x.tar }\n"),
            "s.yaml:5:37: jobs[0].volumes[0].seeed: unknown field \"seeed\", did you mean \"seed\"? (expected one of: name, mount, seed)"
        );
    }

    #[test]
    fn mounts_and_seeds_follow_their_rules() {
        assert_eq!(mount_problem("/data"), None);
        assert!(mount_problem("/a:b").is_some());
        assert!(mount_problem("//").is_some());
        for seed in [
            "/srv/a.tar",
            "/srv/a.tar.gz",
            "/a.tgz",
            "http://host/x",
            "https://host:8443/seed?x=1",
        ] {
            assert_eq!(seed_problem(seed), None, "{seed}");
        }
        for seed in [
            "a.tar",
            "/srv/a.zip",
            "/.tar",
            "http://",
            "https:///x",
            "/a b.tar",
            "ftp://h/x.tar",
        ] {
            assert!(seed_problem(seed).is_some(), "{seed}");
        }
    }

    #[test]
    fn a_seed_may_be_a_template_and_names_may_not() {
        let spec = parse_service(
            "s.yaml",
            "service: core\njobs:\n  - name: db\n    volumes: [{ name: data, mount: /data, seed: \"/srv/{{ env.name }}.tar\" }]\n",
        )
        .unwrap();
        assert_eq!(
            spec.jobs[0].tasks[0].volumes[0].seed.as_deref(),
            Some("/srv/{{ env.name }}.tar")
        );
        assert!(
            errors("    volumes: [{ name: \"{{ vars.x }}\", mount: /data }]\n")
                .contains("jobs[0].volumes[0].name: templates are not allowed in name")
        );
    }
}
