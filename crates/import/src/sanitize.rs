//! The last pass over every imported job, whatever the importer: a value the config's checks
//! would refuse (an env name with a space, a mount path with a comma, a check path that is not
//! one) is taken out and reported, so a written file is always one `push` accepts.

use crate::report::Report;
use crate::service_file::{Job, ServiceFile};
use crate::text::is_check_path;

pub fn sanitize(services: &mut [ServiceFile], report: &mut Report) {
    for service in services {
        for job in &mut service.jobs {
            let at = format!("{}/{}", service.service, job.name);
            env_names(job, &at, report);
            volumes(job, &at, report);
            check(job, &at, report);
        }
    }
}

fn env_names(job: &mut Job, at: &str, report: &mut Report) {
    let refused: Vec<String> = job
        .env
        .keys()
        .filter(|name| !cj_spec::is_valid_env_name(name))
        .cloned()
        .collect();
    for name in refused {
        job.env.remove(&name);
        report.left(
            format!("{at}: env"),
            name,
            "not an environment variable name (no '=', spaces or control characters)",
        );
    }
    job.secret_env.retain(|key| job.env.contains_key(key));
}

/// An absolute path Docker's mounts can hold: no control characters, ':' or ','.
fn is_mount_path(path: &str) -> bool {
    path.starts_with('/') && !path.chars().any(|c| c.is_control() || c == ':' || c == ',')
}

fn volumes(job: &mut Job, at: &str, report: &mut Report) {
    let mut kept = Vec::new();
    for volume in std::mem::take(&mut job.volumes) {
        let duplicate = kept.iter().any(|other: &crate::service_file::Volume| {
            other.name == volume.name || other.mount == volume.mount
        });
        if !is_mount_path(&volume.mount) || duplicate {
            report.left(
                format!("{at}: volumes"),
                format!("{}:{}", volume.name, volume.mount),
                if duplicate {
                    "the same volume or path is mounted earlier in the list"
                } else {
                    "not an absolute path Docker can mount (no ':', ',' or control characters)"
                },
            );
            continue;
        }
        kept.push(volume);
    }
    job.volumes = kept;
}

fn check(job: &mut Job, at: &str, report: &mut Report) {
    let Some(path) = job.check.as_ref().and_then(|check| check.http.clone()) else {
        return;
    };
    if !cj_spec::is_template(&path) && !is_check_path(&path) {
        report.left(
            format!("{at}: check.http"),
            path,
            "not a path (/health) or http:// URL an http check takes: the job has no check",
        );
        job.check = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_file::{Check, Volume};

    #[test]
    fn what_push_would_refuse_is_taken_out_and_reported() {
        let mut services = vec![ServiceFile {
            service: "s".into(),
            jobs: vec![Job {
                name: "j".into(),
                env: [
                    ("A B".to_string(), "1".to_string()),
                    ("OK".into(), "2".into()),
                ]
                .into(),
                secret_env: vec!["A B".into()],
                volumes: vec![
                    Volume {
                        name: "data".into(),
                        mount: "/data ],".into(),
                        seed: None,
                    },
                    Volume {
                        name: "logs".into(),
                        mount: "/logs".into(),
                        seed: None,
                    },
                ],
                check: Some(Check {
                    http: Some("health check".into()),
                    ..Check::default()
                }),
                ..Job::default()
            }],
        }];
        let mut report = Report::default();
        sanitize(&mut services, &mut report);
        let job = &services[0].jobs[0];
        assert_eq!(job.env.keys().collect::<Vec<_>>(), ["OK"]);
        assert!(job.secret_env.is_empty());
        assert_eq!(job.volumes.len(), 1);
        assert!(job.check.is_none());
        assert_eq!(report.finish(Vec::new()).not_carried.len(), 3);
    }
}
