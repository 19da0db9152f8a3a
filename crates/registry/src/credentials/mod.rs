//! A registry's credentials, from where its `registries:` entry says: the entry itself, an
//! environment variable, a file, or a Docker `config.json` (with its credential helpers). An
//! entry that names none, and a host without an entry, get what Docker's own config holds for
//! the host, as `docker pull` would; no credentials there means anonymous access.
//!
//! Credentials are read each time a registry is used, so a rotated secret is picked up without
//! a restart.

mod docker_config;
mod helper;

use std::path::{Path, PathBuf};

use crate::config::{CredentialSource, PasswordSource};
use crate::error::CredentialError;
use crate::{RegistryAuth, RegistryConfig};

use docker_config::{DockerConfig, Found};

/// The environment variables credentials are looked up in: the process's own, or fixed ones in
/// tests (which may not change the process environment).
pub(crate) trait Environment: Sync {
    fn var(&self, name: &str) -> Option<String>;
}

pub(crate) struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// The credentials for `host` (as users name it, "docker.io" for Docker Hub); `None` for
/// anonymous access. `entry` is the host's `registries:` entry, if it has one.
pub(crate) async fn resolve(
    entry: Option<&RegistryConfig>,
    host: &str,
    env: &dyn Environment,
) -> Result<Option<RegistryAuth>, CredentialError> {
    let source = match entry {
        Some(entry) => entry.credential_source()?,
        None => CredentialSource::DockerDefault,
    };
    let (path, docker_config) = match source {
        CredentialSource::Basic { username, password } => {
            let entry = entry.expect("an entry names these credentials");
            return Ok(Some(RegistryAuth {
                username: username.to_string(),
                password: read_password(entry, password, env)?,
            }));
        }
        CredentialSource::DockerConfig(path) => (path.to_path_buf(), DockerConfig::load(path)),
        CredentialSource::DockerDefault => match default_docker_config(env) {
            Some(path) if path.exists() => {
                let config = DockerConfig::load(&path);
                (path, config)
            }
            _ => return Ok(None),
        },
    };
    let docker_error = |reason: String| match entry {
        Some(entry) if entry.docker_config.is_some() => entry_error(
            entry,
            "docker_config",
            format!("{}: {reason}", path.display()),
        ),
        _ => CredentialError::DockerConfig {
            path: path.clone(),
            reason,
        },
    };
    match docker_config
        .and_then(|config| config.find(host))
        .map_err(docker_error)?
    {
        Found::Nothing => Ok(None),
        Found::Auth(auth) => Ok(Some(auth)),
        Found::Helper { name, fallback } => {
            let server_url = docker_config::server_url(host);
            Ok(helper::get(&name, server_url, host, env)
                .await?
                .or(fallback))
        }
    }
}

impl RegistryConfig {
    /// Checks the entry as the server config is loaded, so a mistake stops the server at start
    /// rather than the first listing: fields that do not fit together, an unset variable, an
    /// unreadable file. Credential helpers are not run here.
    pub fn validate(&self) -> Result<(), CredentialError> {
        check(self, &ProcessEnvironment)
    }
}

/// What [`RegistryConfig::validate`] checks: the fields, and that what they name can be read.
pub(crate) fn check(entry: &RegistryConfig, env: &dyn Environment) -> Result<(), CredentialError> {
    match entry.credential_source()? {
        CredentialSource::DockerDefault => Ok(()),
        CredentialSource::DockerConfig(path) => {
            DockerConfig::load(path).map(drop).map_err(|reason| {
                entry_error(
                    entry,
                    "docker_config",
                    format!("{}: {reason}", path.display()),
                )
            })
        }
        CredentialSource::Basic { password, .. } => read_password(entry, password, env).map(drop),
    }
}

fn read_password(
    entry: &RegistryConfig,
    source: PasswordSource,
    env: &dyn Environment,
) -> Result<String, CredentialError> {
    match source {
        PasswordSource::Inline(password) => Ok(password.to_string()),
        PasswordSource::Env(name) => match env.var(name) {
            Some(password) if !password.is_empty() => Ok(password),
            Some(_) => Err(entry_error(
                entry,
                "password_env",
                format!("environment variable {name} is empty"),
            )),
            None => Err(entry_error(
                entry,
                "password_env",
                format!("environment variable {name} is not set"),
            )),
        },
        PasswordSource::File(path) => {
            read_password_file(path).map_err(|reason| entry_error(entry, "password_file", reason))
        }
    }
}

/// The file's text without its trailing newline (as `echo secret > file` leaves one).
fn read_password_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(password.to_string())
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the Docker CLI reads.
fn default_docker_config(env: &dyn Environment) -> Option<PathBuf> {
    let dir = match env.var("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.var("HOME").filter(|home| !home.is_empty())?).join(".docker"),
    };
    Some(dir.join("config.json"))
}

fn entry_error(entry: &RegistryConfig, field: &str, reason: String) -> CredentialError {
    CredentialError::Entry {
        host: entry.host.clone(),
        field: field.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests;
