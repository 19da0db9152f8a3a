//! What a command acts on: `SERVICE`, `SERVICE/JOB`, `SERVICE/JOB/TASK`, or a bare job name.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One word: a service, or a job whose name is unique (resolved against the store).
    Name(String),
    Job {
        service: String,
        job: String,
    },
    Task {
        service: String,
        job: String,
        task: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target \"{0}\": expected SERVICE, SERVICE/JOB, SERVICE/JOB/TASK or a job name")]
pub struct TargetError(pub String);

impl std::str::FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return Err(TargetError(text.to_owned()));
        }
        match parts.as_slice() {
            [name] => Ok(Target::Name(name.to_string())),
            [service, job] => Ok(Target::Job {
                service: service.to_string(),
                job: job.to_string(),
            }),
            [service, job, task] => Ok(Target::Task {
                service: service.to_string(),
                job: job.to_string(),
                task: task.to_string(),
            }),
            _ => Err(TargetError(text.to_owned())),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(name) => write!(f, "{name}"),
            Target::Job { service, job } => write!(f, "{service}/{job}"),
            Target::Task { service, job, task } => write!(f, "{service}/{job}/{task}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn parses_every_form() {
        assert_eq!("core".parse(), Ok(Target::Name("core".into())));
        assert_eq!(
            "core/nginx".parse(),
            Ok(Target::Job {
                service: "core".into(),
                job: "nginx".into()
            })
        );
        assert_eq!(
            "core/nginx/nginx-1".parse(),
            Ok(Target::Task {
                service: "core".into(),
                job: "nginx".into(),
                task: "nginx-1".into()
            })
        );
        assert!("core//x".parse::<Target>().is_err());
        assert!("a/b/c/d".parse::<Target>().is_err());
        assert!("".parse::<Target>().is_err());
    }
}
