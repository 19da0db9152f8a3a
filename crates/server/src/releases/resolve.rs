//! Turning a TARGET (`SERVICE`, `SERVICE/JOB`, `SERVICE/JOB/TASK`, or a unique bare job name)
//! into the service version and jobs it names, against the latest pushed versions.

use std::sync::Arc;

use cj_spec::Target;

use crate::error::{Failure, shown};
use crate::releases::versions::VersionRecord;
use crate::state::ServerState;

#[derive(Debug, Clone)]
pub struct Resolved {
    pub env: String,
    pub service: String,
    /// The service's latest version.
    pub latest: Arc<VersionRecord>,
    /// The jobs named (every job for a whole service).
    pub jobs: Vec<String>,
    /// Set when the target named one task.
    pub task: Option<String>,
    pub whole_service: bool,
}

impl ServerState {
    pub fn resolve(&self, env: &str, target: &str) -> Result<Resolved, Failure> {
        crate::releases::versions::check_env_name(env)?;
        let parsed: Target = target.parse().map_err(|error: cj_spec::TargetError| {
            Failure::BadRequest(cj_spec::TargetError(shown(&error.0)).to_string())
        })?;
        match parsed {
            Target::Name(name) => {
                if let Some(latest) = self.latest_record(env, &name)? {
                    let jobs = latest
                        .spec
                        .jobs
                        .iter()
                        .map(|job| job.name.clone())
                        .collect();
                    return Ok(Resolved {
                        env: env.into(),
                        service: name,
                        latest,
                        jobs,
                        task: None,
                        whole_service: true,
                    });
                }
                let mut matches = Vec::new();
                for service in self.service_names(env)? {
                    if let Some(latest) = self.latest_record(env, &service)?
                        && latest.spec.job(&name).is_some()
                    {
                        matches.push((service, latest));
                    }
                }
                match matches.len() {
                    1 => {
                        let (service, latest) = matches.remove(0);
                        Ok(Resolved {
                            env: env.into(),
                            service,
                            latest,
                            jobs: vec![name],
                            task: None,
                            whole_service: false,
                        })
                    }
                    0 => Err(self.nothing_named(env, &name)?),
                    _ => {
                        let names: Vec<String> = matches
                            .iter()
                            .map(|(service, _)| format!("{service}/{name}"))
                            .collect();
                        Err(Failure::BadRequest(format!(
                            "\"{}\" names a job in several services; say which: {}",
                            shown(&name),
                            names.join(", ")
                        )))
                    }
                }
            }
            Target::Job { service, job } => {
                let latest = self.require_service(env, &service)?;
                require_job(&latest, &job)?;
                Ok(Resolved {
                    env: env.into(),
                    service,
                    latest,
                    jobs: vec![job],
                    task: None,
                    whole_service: false,
                })
            }
            Target::Task { service, job, task } => {
                let latest = self.require_service(env, &service)?;
                let job_spec = require_job(&latest, &job)?;
                if !job_spec.tasks.iter().any(|t| t.name == task) {
                    let names: Vec<&str> = job_spec.tasks.iter().map(|t| t.name.as_str()).collect();
                    return Err(Failure::NotFound(format!(
                        "job {service}/{job} has no task \"{}\" (tasks: {})",
                        shown(&task),
                        names.join(", ")
                    )));
                }
                Ok(Resolved {
                    env: env.into(),
                    service,
                    latest,
                    jobs: vec![job],
                    task: Some(task),
                    whole_service: false,
                })
            }
        }
    }

    fn latest_record(
        &self,
        env: &str,
        service: &str,
    ) -> Result<Option<Arc<VersionRecord>>, Failure> {
        match self.latest_version(env, service)? {
            Some(version) => Ok(Some(self.versions.get(env, service, version)?)),
            None => Ok(None),
        }
    }

    fn require_service(&self, env: &str, service: &str) -> Result<Arc<VersionRecord>, Failure> {
        match self.latest_record(env, service)? {
            Some(latest) => Ok(latest),
            None => Err(self.nothing_named(env, service)?),
        }
    }

    fn nothing_named(&self, env: &str, name: &str) -> Result<Failure, Failure> {
        let services = self.service_names(env)?;
        let known = if services.is_empty() {
            "nothing has been pushed there yet".to_owned()
        } else {
            format!("services: {}", services.join(", "))
        };
        Ok(Failure::NotFound(format!(
            "no service or job named \"{}\" in environment {} ({known})",
            shown(name),
            shown(env)
        )))
    }
}

fn require_job<'a>(latest: &'a VersionRecord, job: &str) -> Result<&'a cj_spec::JobSpec, Failure> {
    latest.spec.job(job).ok_or_else(|| {
        let names: Vec<&str> = latest.spec.jobs.iter().map(|j| j.name.as_str()).collect();
        Failure::NotFound(format!(
            "service {} has no job \"{}\" (jobs: {})",
            latest.service,
            shown(job),
            names.join(", ")
        ))
    })
}
