//! `depends_on:` between the jobs of a file, and on jobs of other services (`SERVICE/JOB`).
//!
//! A dependency on a job of this file is checked here: it must name another job, and the jobs
//! must not depend on each other in a circle. One on a job of another service names a job this
//! file cannot see; the server checks it against the environment. `SERVICE/JOB` naming this
//! file's own service is a dependency on a job of this file, and is stored as `JOB`, so
//! [`crate::dependency_waves`] orders it, and only dependencies on other services (which
//! contain a `/`, never a job name) are left for the server.

use std::collections::HashSet;

use crate::error::{did_you_mean, shown, shown_list};
use crate::model::JobSpec;
use crate::names::{NAME_RULE, is_valid_name};
use crate::order::dependency_waves;
use crate::parse::Checker;
use crate::raw::{RawJob, RawService};

impl Checker<'_> {
    /// Checks the dependencies of job `index` (named in `job_names`) of `service`, and returns
    /// them as stored: `JOB` for a job of this service, `SERVICE/JOB` for one of another.
    pub(crate) fn dependencies(
        &mut self,
        service: &str,
        job_names: &[&str],
        known: &HashSet<&str>,
        index: usize,
        job: &RawJob,
    ) -> Vec<String> {
        let mut resolved = Vec::with_capacity(job.depends_on.len());
        for (dep_index, dependency) in job.depends_on.iter().enumerate() {
            let dep_path = format!("jobs[{index}].depends_on[{dep_index}]");
            let at = &dependency.referenced;
            if self.refuse_template(at, &dep_path, &dependency.value) {
                continue;
            }
            let written = dependency.value.as_str();
            let name = match written.split_once('/') {
                Some((other, name)) if !is_valid_name(other) || !is_valid_name(name) => {
                    let message = format!(
                        "invalid dependency \"{}\": expected JOB, or SERVICE/JOB for a job of another service, each name {}",
                        shown(written),
                        NAME_RULE.trim_start_matches("expected ")
                    );
                    self.error(at, dep_path, message);
                    continue;
                }
                Some((other, _)) if other != service => {
                    resolved.push(written.to_owned());
                    continue;
                }
                Some((_, name)) => name,
                None => written,
            };
            if name == job.name.value {
                let message = format!("job \"{}\" depends on itself", shown(&job.name.value));
                self.error(at, dep_path, message);
            } else if !known.contains(name) {
                let mut message = format!("unknown job \"{}\"", shown(name));
                // Past the reported problems this one is only counted: spare the hint.
                if !self.is_full() {
                    let hint = did_you_mean(name, job_names.iter().copied());
                    if let Some(hint) = hint {
                        message.push_str(&format!(", did you mean \"{}\"?", shown(hint)));
                    }
                    let names = shown_list(job_names.iter().copied());
                    message.push_str(&format!(" (jobs in this service: {names}; a job of another service is written SERVICE/JOB)"));
                }
                self.error(at, dep_path, message);
            }
            resolved.push(name.to_owned());
        }
        resolved
    }

    pub(crate) fn check_dependency_cycles(&mut self, raw: &RawService, jobs: &[JobSpec]) {
        // A job naming itself is reported on its own; leave it out so it is not reported twice.
        // Dependencies on other services (`SERVICE/JOB`) name no job here and are not followed.
        let edges: Vec<(&str, Vec<String>)> = jobs
            .iter()
            .map(|job| {
                (
                    job.name.as_str(),
                    job.depends_on
                        .iter()
                        .filter(|d| **d != job.name)
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        if let Err(cycle) =
            dependency_waves(edges.iter().map(|(name, deps)| (*name, deps.as_slice())))
        {
            let first = cycle.0.first().cloned().unwrap_or_default();
            let Some((index, job)) = raw
                .jobs
                .value
                .iter()
                .enumerate()
                .find(|(_, job)| job.name.value == first)
            else {
                return;
            };
            let mut names: Vec<&str> = cycle.0.iter().map(String::as_str).collect();
            names.push(&first);
            let message = format!(
                "dependency cycle: {}",
                names
                    .iter()
                    .map(|name| shown(name))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            );
            self.error(
                &job.name.referenced,
                format!("jobs[{index}].depends_on"),
                message,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_service;

    fn errors(jobs: &str) -> String {
        parse_service("s.yaml", &format!("service: core\njobs:\n{jobs}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn dependencies_on_other_services_are_kept_and_on_this_one_are_normalised() {
        let spec = parse_service(
            "s.yaml",
            "service: core\njobs:\n  - name: db\n  - name: api\n    depends_on: [core/db, auth/users, db]\n",
        )
        .unwrap();
        assert_eq!(spec.jobs[1].depends_on, ["db", "auth/users", "db"]);
        let waves = crate::dependency_waves(
            spec.jobs
                .iter()
                .map(|job| (job.name.as_str(), job.depends_on.as_slice())),
        );
        assert_eq!(waves.unwrap(), [vec!["db"], vec!["api"]]);
    }

    #[test]
    fn a_dependency_on_this_service_must_name_one_of_its_jobs() {
        assert_eq!(
            errors("  - name: db\n  - name: api\n    depends_on: [core/dbb]\n"),
            "s.yaml:5:18: jobs[1].depends_on[0]: unknown job \"dbb\", did you mean \"db\"? (jobs in this service: db, api; a job of another service is written SERVICE/JOB)"
        );
        assert_eq!(
            errors("  - name: api\n    depends_on: [core/api]\n"),
            "s.yaml:4:18: jobs[0].depends_on[0]: job \"api\" depends on itself"
        );
    }

    #[test]
    fn a_cycle_through_the_own_service_name_is_found() {
        assert_eq!(
            errors("  - name: a\n    depends_on: [core/b]\n  - name: b\n    depends_on: [a]\n"),
            "s.yaml:3:11: jobs[0].depends_on: dependency cycle: a -> b -> a"
        );
    }

    #[test]
    fn both_parts_of_a_qualified_dependency_are_names() {
        let message = errors("  - name: a\n    depends_on: [\"auth/\", \"a/b/c\", \"x y/z\"]\n");
        assert_eq!(message.lines().count(), 3, "{message}");
        assert!(message.lines().all(|line| line.contains(
            "expected JOB, or SERVICE/JOB for a job of another service, each name 1 to 63 letters"
        )));
    }

    #[test]
    fn templates_are_refused_in_dependencies() {
        assert!(
            errors("  - name: a\n    depends_on: [\"{{ vars.x }}\"]\n")
                .contains("jobs[0].depends_on[0]: templates are not allowed in depends_on")
        );
    }
}
