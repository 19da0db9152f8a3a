//! `route:` the name the router serves a job under (`NAME.ENV.DOMAIN`), with how it serves it
//! (`path`, `timeout`, `max_body`), and `drain_timeout:`, how long a routed task keeps serving
//! after it leaves the routers' pool. A route name and path are unique in a file; across
//! services the server checks them.

use std::collections::HashMap;

use serde_saphyr::{Location, Spanned};

use crate::error::shown;
use crate::limits::{
    MAX_DRAIN_TIMEOUT_MS, MAX_ROUTE_BODY_BYTES, MAX_ROUTE_PATH_LEN, MAX_ROUTE_TIMEOUT_MS,
};
use crate::model::{DEFAULT_DRAIN_TIMEOUT_MS, JobSpec, RouteOptions};
use crate::parse::Checker;
use crate::raw::{RawJob, RawRoute, RawRouteOptions, RawService, SizeText};
use crate::units::{format_bytes, parse_memory};

/// What a path prefix may be, for messages.
const PATH_RULE: &str = "expected a path prefix such as /v2: '/' then whole segments of letters, digits, '-', '.', '_' or '~' separated by '/', without a trailing '/', '.' or '..' segments, query or fragment";

/// A job's route as checked: its name (`None`: not routed), how it is served, and the drain
/// timeout.
pub(crate) struct CheckedRoute {
    pub name: Option<String>,
    pub options: RouteOptions,
    pub drain_timeout_ms: u64,
}

impl Checker<'_> {
    /// The job's route, checked.
    pub(crate) fn route(&mut self, path: &str, job: &RawJob) -> CheckedRoute {
        let mut options = RouteOptions::default();
        let (written, name) = match &job.route {
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
            Some(Spanned {
                value: RawRoute::Options(raw),
                ..
            }) => {
                let name = match &raw.host {
                    None => Some(job.name.value.clone()),
                    Some(host) => {
                        let valid = self.check_name(host, &format!("{path}.route.host"), "route");
                        valid.then(|| host.value.clone())
                    }
                };
                options = self.route_options(&format!("{path}.route"), raw);
                (true, name)
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
        CheckedRoute {
            name,
            options,
            drain_timeout_ms,
        }
    }

    /// `path`, `timeout` and `max_body` of a route mapping at `path`.
    fn route_options(&mut self, path: &str, raw: &RawRouteOptions) -> RouteOptions {
        let prefix = raw.path.as_ref().and_then(|prefix| {
            let at = format!("{path}.path");
            if self.refuse_template(&prefix.referenced, &at, &prefix.value) {
                return None;
            }
            if let Err(problem) = check_path_prefix(&prefix.value) {
                let message = format!("invalid route path \"{}\": {problem}", shown(&prefix.value));
                self.error(&prefix.referenced, at, message);
                return None;
            }
            Some(prefix.value.clone())
        });
        let timeout_ms = raw
            .timeout
            .as_ref()
            .map(|timeout| {
                self.duration(path, "timeout", Some(timeout), 0, 1..=MAX_ROUTE_TIMEOUT_MS)
            })
            .filter(|timeout_ms| *timeout_ms > 0);
        let max_body_bytes = raw.max_body.as_ref().and_then(|size| {
            self.body_size(&format!("{path}.max_body"), &size.referenced, &size.value)
        });
        RouteOptions {
            path: prefix,
            timeout_ms,
            max_body_bytes,
        }
    }

    fn body_size(&mut self, path: &str, at: &Location, size: &SizeText) -> Option<u64> {
        let bytes = match size {
            SizeText::Bytes(bytes) => Some(*bytes),
            SizeText::Text(text) => parse_memory(text),
        };
        let fits = bytes.filter(|bytes| *bytes <= MAX_ROUTE_BODY_BYTES);
        if fits.is_none() {
            let message = format!(
                "expected a size from 0 bytes to {}, such as 256k, 10m, 1g or a number of bytes",
                format_bytes(MAX_ROUTE_BODY_BYTES)
            );
            self.error(at, path, message);
        }
        fits
    }

    /// Two jobs of a file cannot share a route name and path: the router would not know which
    /// to serve.
    pub(crate) fn check_unique_routes(&mut self, raw: &RawService, jobs: &[JobSpec]) {
        let mut owners: HashMap<(&str, Option<&str>), &str> = HashMap::new();
        for (index, (job, raw_job)) in jobs.iter().zip(&raw.jobs.value).enumerate() {
            let (Some(route), Some(written)) = (&job.route, &raw_job.route) else {
                continue;
            };
            let path = job.route_options.path.as_deref();
            let path_written =
                matches!(&written.value, RawRoute::Options(raw) if raw.path.is_some());
            if path_written && path.is_none() {
                // Its path was refused already: any clash would be a consequence.
                continue;
            }
            let owner = *owners.entry((route, path)).or_insert(&job.name);
            if owner != job.name {
                let message = match path {
                    None => format!(
                        "route \"{}\" is also the route of job \"{}\"; each route serves one job",
                        shown(route),
                        shown(owner)
                    ),
                    Some(path) => format!(
                        "route \"{}\" with path {} is also the route of job \"{}\"; each route and path serves one job",
                        shown(route),
                        shown(path),
                        shown(owner)
                    ),
                };
                self.error(&written.referenced, format!("jobs[{index}].route"), message);
            }
        }
    }
}

/// Whether `path` is a path prefix the router can match by whole segments.
fn check_path_prefix(path: &str) -> Result<(), String> {
    if path.len() > MAX_ROUTE_PATH_LEN {
        return Err(format!(
            "{PATH_RULE}, of at most {MAX_ROUTE_PATH_LEN} characters"
        ));
    }
    if path == "/" {
        return Err("a path of / is every path: leave `path` out".to_owned());
    }
    let Some(segments) = path.strip_prefix('/') else {
        return Err(PATH_RULE.to_owned());
    };
    let fits = segments.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
    });
    if fits {
        Ok(())
    } else {
        Err(PATH_RULE.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{DEFAULT_DRAIN_TIMEOUT_MS, RouteOptions};
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
            "s.yaml:4:5: jobs[0].route: expected a route name, true for the job's name, or a mapping, found a list"
        );
    }

    #[test]
    fn a_route_mapping_names_the_route_and_how_it_is_served() {
        let spec = parse_service(
            "s.yaml",
            "service: core\njobs:\n  - name: api\n    route: { host: www, path: /v2, timeout: 30s, max_body: 10m }\n    drain_timeout: 5s\n  - name: web\n    route: { path: /v2/admin.x }\n  - name: root\n    route: {}\n  - name: small\n    route: { host: www, max_body: 512 }\n",
        )
        .unwrap();
        let routes: Vec<_> = spec
            .jobs
            .iter()
            .map(|job| (job.route.as_deref(), &job.route_options))
            .collect();
        let options = |path: Option<&str>, timeout_ms, max_body_bytes| RouteOptions {
            path: path.map(str::to_owned),
            timeout_ms,
            max_body_bytes,
        };
        assert_eq!(
            routes,
            [
                (
                    Some("www"),
                    &options(Some("/v2"), Some(30_000), Some(10 << 20))
                ),
                (Some("web"), &options(Some("/v2/admin.x"), None, None)),
                (Some("root"), &options(None, None, None)),
                (Some("www"), &options(None, None, Some(512))),
            ]
        );
        assert_eq!(spec.jobs[0].drain_timeout_ms, 5000);
    }

    #[test]
    fn route_mapping_values_are_checked_where_written() {
        let check = |route: &str, expected: &str| {
            assert_eq!(
                errors(&format!("  - name: api\n    route: {route}\n")),
                expected,
                "{route}"
            );
        };
        let rule = "expected a path prefix such as /v2: '/' then whole segments of letters, digits, '-', '.', '_' or '~' separated by '/', without a trailing '/', '.' or '..' segments, query or fragment";
        for bad in [
            "v2",
            "/v2/",
            "/v2//x",
            "/v2/../admin",
            "/v2?x=1",
            "/v 2",
            "/./v2",
        ] {
            check(
                &format!("{{ path: \"{bad}\" }}"),
                &format!("s.yaml:4:20: jobs[0].route.path: invalid route path \"{bad}\": {rule}"),
            );
        }
        check(
            "{ path: / }",
            "s.yaml:4:20: jobs[0].route.path: invalid route path \"/\": a path of / is every path: leave `path` out",
        );
        check(
            "{ host: \"a b\" }",
            "s.yaml:4:20: jobs[0].route.host: invalid route name \"a b\": expected 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit",
        );
        check(
            "{ timeout: 0s }",
            "s.yaml:4:23: jobs[0].route.timeout: expected a duration from 1ms to 1h, such as 500ms, 2s or 1m",
        );
        check(
            "{ timeout: soon }",
            "s.yaml:4:23: jobs[0].route.timeout: expected a duration from 1ms to 1h, such as 500ms, 2s or 1m",
        );
        check(
            "{ max_body: 2t }",
            "s.yaml:4:24: jobs[0].route.max_body: expected a size from 0 bytes to 1 TiB, such as 256k, 10m, 1g or a number of bytes",
        );
        check(
            "{ max_body: [1] }",
            "s.yaml:4:24: jobs[0].route.max_body: expected a size such as 256k, 10m, 1g or a number of bytes",
        );
        assert!(
            errors("  - name: api\n    route: { pth: /v2 }\n").starts_with(
                "s.yaml:4:14: jobs[0].route.pth: unknown field \"pth\", did you mean \"path\"?"
            ),
        );
        assert!(
            errors("  - name: api\n    route: { path: \"/{{ env.name }}\" }\n")
                .contains("jobs[0].route.path: templates are not allowed in path")
        );
    }

    #[test]
    fn jobs_share_a_route_name_only_with_different_paths() {
        let spec = parse_service(
            "s.yaml",
            "service: core\njobs:\n  - name: api\n    route: www\n  - name: v2\n    route: { host: www, path: /v2 }\n",
        );
        assert!(spec.is_ok(), "{spec:?}");
        assert_eq!(
            errors(
                "  - name: api\n    route: { host: www, path: /v2 }\n  - name: web\n    route: { host: www, path: /v2 }\n"
            ),
            "s.yaml:6:12: jobs[1].route: route \"www\" with path /v2 is also the route of job \"api\"; each route and path serves one job"
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
