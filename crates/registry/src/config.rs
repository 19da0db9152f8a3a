//! What the server config says about one registry: where it is, whether it speaks plain HTTP, and
//! where its credentials come from. Passwords never appear in `Debug` or `Display` output, so a
//! config can be logged as a whole.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::CredentialError;

/// Credentials for one registry. Debug/Display never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {}", self.username)
    }
}

/// How to reach one registry host, e.g. "127.0.0.1:5000" or "registry.example.com". At most one
/// of `password`, `password_env` and `password_file` is given, always with `username`; an entry
/// with none of them (nor `docker_config`) takes the host's credentials from Docker's own config.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub host: String,
    pub username: Option<String>,
    /// The password written in the server config itself.
    pub password: Option<String>,
    /// The environment variable holding the password, so the config file holds no secret.
    pub password_env: Option<String>,
    /// The file holding the password (a mounted secret); a trailing newline is not part of it.
    pub password_file: Option<PathBuf>,
    /// A Docker `config.json` to read this host's credentials from (`auths`, `credHelpers`,
    /// `credsStore`) instead of Docker's own (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// Speak plain HTTP to this host, as Docker does for its `insecure-registries`.
    #[serde(default)]
    pub insecure: bool,
}

/// Where an entry's password is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordSource<'a> {
    Inline(&'a str),
    Env(&'a str),
    File(&'a Path),
}

/// Where an entry's credentials are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialSource<'a> {
    /// Nothing in the entry: Docker's own config, as `docker pull` would read it.
    DockerDefault,
    /// The Docker config the entry names.
    DockerConfig(&'a Path),
    Basic {
        username: &'a str,
        password: PasswordSource<'a>,
    },
}

impl RegistryConfig {
    pub(crate) fn credential_source(&self) -> Result<CredentialSource<'_>, CredentialError> {
        let passwords: Vec<(&str, PasswordSource)> = [
            self.password
                .as_deref()
                .map(|password| ("password", PasswordSource::Inline(password))),
            self.password_env
                .as_deref()
                .map(|name| ("password_env", PasswordSource::Env(name))),
            self.password_file
                .as_deref()
                .map(|path| ("password_file", PasswordSource::File(path))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let field_error = |field: &str, reason: &str| CredentialError::Entry {
            host: self.host.clone(),
            field: field.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = &self.docker_config {
            if self.username.is_some() || !passwords.is_empty() {
                let reason = "give either docker_config or username with a password, not both";
                return Err(field_error("docker_config", reason));
            }
            return Ok(CredentialSource::DockerConfig(path));
        }
        match (self.username.as_deref(), passwords.as_slice()) {
            (None, []) => Ok(CredentialSource::DockerDefault),
            (Some(_), []) => Err(field_error(
                "username",
                "no password given: add password, password_env or password_file",
            )),
            (None, [(field, _), ..]) => Err(field_error(field, "no username given")),
            (Some(username), [(_, password)]) => Ok(CredentialSource::Basic {
                username,
                password: *password,
            }),
            (Some(_), several) => {
                let fields: Vec<&str> = several.iter().map(|(field, _)| *field).collect();
                Err(field_error(
                    &fields.join(", "),
                    "give only one of password, password_env and password_file",
                ))
            }
        }
    }
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("docker_config", &self.docker_config)
            .field("insecure", &self.insecure)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> RegistryConfig {
        serde_json::from_str(json).unwrap()
    }

    fn check(json: &str, expected: Result<CredentialSource, &str>) {
        let config = entry(json);
        let actual = config
            .credential_source()
            .map_err(|error| error.to_string());
        assert_eq!(actual, expected.map_err(str::to_string), "{json}");
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let auth = RegistryAuth {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        let config =
            entry(r#"{"host":"registry.example.com","username":"ci","password":"hunter2"}"#);
        for text in [
            format!("{auth:?}"),
            format!("{auth}"),
            format!("{auth:#?}"),
            format!("{config:?}"),
            format!("{:?}", Some(&auth)),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn each_entry_names_one_place_for_its_credentials() {
        check(r#"{"host":"r"}"#, Ok(CredentialSource::DockerDefault));
        check(
            r#"{"host":"r","docker_config":"/etc/cj/docker.json"}"#,
            Ok(CredentialSource::DockerConfig(Path::new(
                "/etc/cj/docker.json",
            ))),
        );
        check(
            r#"{"host":"r","username":"ci","password":"p"}"#,
            Ok(CredentialSource::Basic {
                username: "ci",
                password: PasswordSource::Inline("p"),
            }),
        );
        check(
            r#"{"host":"r","username":"ci","password_env":"REGISTRY_PASSWORD"}"#,
            Ok(CredentialSource::Basic {
                username: "ci",
                password: PasswordSource::Env("REGISTRY_PASSWORD"),
            }),
        );
        check(
            r#"{"host":"r","username":"ci","password_file":"/run/secrets/registry"}"#,
            Ok(CredentialSource::Basic {
                username: "ci",
                password: PasswordSource::File(Path::new("/run/secrets/registry")),
            }),
        );
    }

    #[test]
    fn fields_that_do_not_fit_together_are_named() {
        check(
            r#"{"host":"r","username":"ci","password":"p","password_env":"P"}"#,
            Err(
                "registry r: password, password_env: give only one of password, password_env and password_file",
            ),
        );
        check(
            r#"{"host":"r","username":"ci"}"#,
            Err(
                "registry r: username: no password given: add password, password_env or password_file",
            ),
        );
        check(
            r#"{"host":"r","password_file":"/p"}"#,
            Err("registry r: password_file: no username given"),
        );
        check(
            r#"{"host":"r","username":"ci","password":"p","docker_config":"/d.json"}"#,
            Err(
                "registry r: docker_config: give either docker_config or username with a password, not both",
            ),
        );
    }
}
