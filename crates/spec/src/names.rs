//! Names of services, jobs, tasks and hosts: one rule for all of them (and one each for host
//! labels and volumes), and task names unique in the whole service, including the names
//! `instances` (`JOB-N`) and `hosts` (`JOB-HOST`) make.
//!
//! The rule keeps every name safe where it ends up: in container names
//! (`TASK_SERVICE_ENV_UNIXTIME`, Docker allows `[a-zA-Z0-9][a-zA-Z0-9_.-]*`), in store keys
//! (no `/`), on command lines and in DNS (at most 63 characters, a label's limit).

use serde_saphyr::{Location, Spanned};

use crate::error::shown;
use crate::limits::{MAX_NAME_LEN, MAX_VOLUME_NAME_LEN};
use crate::parse::Checker;

/// What [`is_valid_name`] accepts, in the words of every error about a name.
pub const NAME_RULE: &str =
    "expected 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit";

/// 1 to 63 ASCII letters, digits, `-`, `_` or `.`, starting with a letter or digit.
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// What [`is_valid_volume_name`] accepts, in the words of every error about a volume name.
pub(crate) const VOLUME_NAME_RULE: &str =
    "expected 1 to 40 lowercase letters, digits or '-', starting with a letter";

/// 1 to [`MAX_VOLUME_NAME_LEN`] lowercase ASCII letters, digits or `-`, starting with a letter.
pub(crate) fn is_valid_volume_name(name: &str) -> bool {
    name.len() <= MAX_VOLUME_NAME_LEN
        && name.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// What [`label_problem`] accepts, for a host's labels (`agent --label`) and `constraints`.
pub const LABEL_RULE: &str = "a label key is 1 to 63 letters, digits, '-', '_', '.' or '/'; a value at most 255 printable characters";

/// Why a host label (or a constraint on one) is not valid, if it is not.
pub fn label_problem(key: &str, value: &str) -> Option<String> {
    let key_ok = (1..=MAX_NAME_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/'));
    if !key_ok {
        return Some(format!(
            "invalid label key \"{}\": expected 1 to 63 letters, digits, '-', '_', '.' or '/'",
            shown(key)
        ));
    }
    if value.len() > 255 || value.chars().any(char::is_control) {
        return Some(format!(
            "invalid value for label \"{key}\": expected at most 255 printable characters"
        ));
    }
    None
}

/// Where a task's name came from, to say so when two tasks share one.
pub(crate) enum NameSource<'a> {
    /// Written under `tasks:`.
    Written,
    /// `JOB-N` from `instances`.
    Instance(u32),
    /// `JOB-HOST` from `hosts`.
    Host(&'a str),
    /// A job without `tasks`, `instances` or `hosts` runs one task named like the job.
    OnlyTask,
}

impl Checker<'_> {
    /// Reports `name` unless it follows [`NAME_RULE`]; returns whether it does.
    pub(crate) fn check_name(&mut self, name: &Spanned<String>, path: &str, what: &str) -> bool {
        if self.refuse_template(&name.referenced, path, &name.value) {
            return false;
        }
        let valid = is_valid_name(&name.value);
        if !valid {
            self.error(
                &name.referenced,
                path,
                format!(
                    "invalid {what} name \"{}\": {NAME_RULE}",
                    shown(&name.value)
                ),
            );
        }
        valid
    }

    /// Reports a generated task name (`JOB-N`, `JOB-HOST`) that is too long; the parts are
    /// valid names already, so length is all that can be wrong.
    pub(crate) fn check_generated_name(
        &mut self,
        at: &Location,
        path: &str,
        name: &str,
        parts: &str,
    ) -> bool {
        let valid = name.len() <= MAX_NAME_LEN;
        if !valid {
            self.error(
                at,
                path,
                format!(
                    "the task name \"{}\" made from {parts} is {} characters long; task names are at most {MAX_NAME_LEN}: shorten the names",
                    shown(name),
                    name.len()
                ),
            );
        }
        valid
    }

    /// Records that job `job` (by index) has a task named `name`, and reports it if another job
    /// of the service has one of that name already (duplicates within one job are reported by
    /// the caller, with the job's own words).
    pub(crate) fn claim_task_name(
        &mut self,
        at: &Location,
        path: &str,
        name: &str,
        job: usize,
        job_names: &[&str],
        source: NameSource,
    ) {
        let owner = *self.task_owners.entry(name.to_owned()).or_insert(job);
        if owner == job {
            return;
        }
        let job_name = shown(job_names[job]);
        let origin = match source {
            NameSource::Written => format!("of job \"{job_name}\""),
            NameSource::Instance(number) => format!("(instance {number} of job \"{job_name}\")"),
            NameSource::Host(host) => {
                format!("(job \"{job_name}\" on host \"{}\")", shown(host))
            }
            NameSource::OnlyTask => format!("(the only task of job \"{job_name}\")"),
        };
        self.error(
            at,
            path,
            format!(
                "task name \"{}\" {origin} is also a task of job \"{}\"; task names must be unique in the service",
                shown(name),
                shown(job_names[owner])
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn volume_names_follow_their_rule() {
        use super::is_valid_volume_name;
        for valid in ["data", "a", "db-1", &format!("a{}", "b".repeat(39))] {
            assert!(is_valid_volume_name(valid), "{valid}");
        }
        let too_long = format!("a{}", "b".repeat(40));
        for invalid in ["", "1a", "-a", "Data", "a_b", "a.b", "a/b", &too_long] {
            assert!(!is_valid_volume_name(invalid), "{invalid:?}");
        }
    }

    #[test]
    fn names_follow_the_rule() {
        for valid in ["a", "A1", "core-nginx", "a_b.c", "1", &"a".repeat(63)] {
            assert!(is_valid_name(valid), "{valid}");
        }
        let too_long = "a".repeat(64);
        for invalid in [
            "",
            "-a",
            ".a",
            "_a",
            "a/b",
            "x y",
            "../../etc",
            "a\0",
            "é",
            "a:b",
            &too_long,
        ] {
            assert!(!is_valid_name(invalid), "{invalid:?}");
        }
    }
}
