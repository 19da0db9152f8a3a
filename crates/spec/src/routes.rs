//! `route:` the name the router serves a job under (`NAME.ENV.DOMAIN`), and `drain_timeout:`,
//! how long a routed task keeps serving after it leaves the routers' pool. Routes are unique in
//! a file; across services the server checks them.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use crate::error::shown;
use crate::limits::MAX_DRAIN_TIMEOUT_MS;
use crate::model::{DEFAULT_DRAIN_TIMEOUT_MS, JobSpec};
use crate::parse::Checker;
use crate::raw::{RawJob, RawRoute, RawService};

impl Checker<'_> {
    /// The job's route (`None`: not routed) and drain timeout, checked.
    pub(crate) fn route(&mut self, path: &str, job: &RawJob) -> (Option<String>, u64) {
        let (written, route) = match &job.route {
            None
            | Some(Spanned {
                value: RawRoute::JobName(false),
                ..
            }) => (false, None),
            Some(Spanned {
                value: RawRoute::JobName(true),
                ..
            }) => (true, Some(job.name.value.clone())),
            Some(
                raw @ Spanned {
                    value: RawRoute::Name(name),
                    ..
                },
            ) => {
                let name = Spanned {
                    value: name.clone(),
                    referenced: raw.referenced,
                    defined: raw.defined,
                };
                let valid = self.check_name(&name, &format!("{path}.route"), "route");
                (true, valid.then_some(name.value))
            }
        };
        let drain_timeout_ms = match &job.drain_timeout {
            None => DEFAULT_DRAIN_TIMEOUT_MS,
            Some(raw) if !written => {
                let message = "drain_timeout applies only to a job with a route: give `route` too, or leave drain_timeout out";
                self.error(&raw.referenced, format!("{path}.drain_timeout"), message);
                DEFAULT_DRAIN_TIMEOUT_MS
            }
            Some(raw) => self.duration(
                path,
                "drain_timeout",
                Some(raw),
                DEFAULT_DRAIN_TIMEOUT_MS,
                0..=MAX_DRAIN_TIMEOUT_MS,
            ),
        };
        (route, drain_timeout_ms)
    }

    /// Two jobs of a file cannot share a route: the router would not know which to serve.
    pub(crate) fn check_unique_routes(&mut self, raw: &RawService, jobs: &[JobSpec]) {
        let mut owners: HashMap<&str, &str> = HashMap::new();
        for (index, (job, raw_job)) in jobs.iter().zip(&raw.jobs.value).enumerate() {
            let (Some(route), Some(written)) = (&job.route, &raw_job.route) else {
                continue;
            };
            let owner = *owners.entry(route).or_insert(&job.name);
            if owner != job.name {
                let message = format!(
                    "route \"{}\" is also the route of job \"{}\"; each route serves one job",
                    shown(route),
                    shown(owner)
                );
                self.error(&written.referenced, format!("jobs[{index}].route"), message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::DEFAULT_DRAIN_TIMEOUT_MS;
    use crate::parse_service;

    fn errors(jobs: &str) -> String {
        parse_service("s.yaml", &format!("service: core\njobs:\n{jobs}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_route_is_a_name_or_the_jobs_own() {
        let spec = parse_service(
            "s.yaml",
            "service: core\njobs:\n  - name: api\n    route: true\n    drain_timeout: 5s\n  - name: web\n    route: www\n  - name: db\n    route: false\n  - name: worker\n",
        )
        .unwrap();
        let routes: Vec<_> = spec.jobs.iter().map(|job| job.route.as_deref()).collect();
        assert_eq!(routes, [Some("api"), Some("www"), None, None]);
        assert_eq!(spec.jobs[0].drain_timeout_ms, 5000);
        assert_eq!(spec.jobs[1].drain_timeout_ms, DEFAULT_DRAIN_TIMEOUT_MS);
    }

    #[test]
    fn route_names_follow_the_name_rule_and_are_unique() {
        assert_eq!(
            errors("  - name: api\n    route: \"a b\"\n"),
            "s.yaml:4:12: jobs[0].route: invalid route name \"a b\": expected 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        );
        assert_eq!(
            errors("  - name: api\n    route: true\n  - name: web\n    route: api\n"),
            "s.yaml:6:12: jobs[1].route: route \"api\" is also the route of job \"api\"; each route serves one job"
        );
        assert!(
            errors("  - name: api\n    route: \"{{ env.name }}\"\n")
                .contains("jobs[0].route: templates are not allowed in route")
        );
        assert_eq!(
            errors("  - name: api\n    route: [a]\n"),
            "s.yaml:4:12: jobs[0].route: expected a route name, or true for the job's own name"
        );
    }

    #[test]
    fn drain_timeout_needs_a_route_and_a_bound() {
        assert_eq!(
            errors("  - name: api\n    drain_timeout: 5s\n"),
            "s.yaml:4:20: jobs[0].drain_timeout: drain_timeout applies only to a job with a route: give `route` too, or leave drain_timeout out"
        );
        assert_eq!(
            errors("  - name: api\n    route: true\n    drain_timeout: 11m\n"),
            "s.yaml:5:20: jobs[0].drain_timeout: expected a duration from 0s to 10m, such as 500ms, 2s or 1m"
        );
    }
}
