//! What the server config says about one registry: where it is, whether it speaks plain HTTP, and
//! the credentials to use there. Passwords never appear in `Debug` or `Display` output, so a
//! config can be logged as a whole.

use std::fmt;

use serde::Deserialize;

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

/// How to reach one registry host, e.g. "127.0.0.1:5000" or "registry.example.com".
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub host: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Speak plain HTTP to this host, as Docker does for its `insecure-registries`.
    #[serde(default)]
    pub insecure: bool,
}

impl RegistryConfig {
    /// The credentials, if both a username and a password are configured.
    pub fn auth(&self) -> Option<RegistryAuth> {
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => Some(RegistryAuth {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_password() {
        let auth = RegistryAuth {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        let config = RegistryConfig {
            host: "registry.example.com".into(),
            username: Some("ci".into()),
            password: Some("hunter2".into()),
            insecure: false,
        };
        for text in [
            format!("{auth:?}"),
            format!("{auth}"),
            format!("{auth:#?}"),
            format!("{config:?}"),
            format!("{:?}", config.auth()),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert_eq!(config.auth(), Some(auth));
    }
}
