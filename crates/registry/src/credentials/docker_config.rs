//! Docker's `config.json`: the credentials `docker login` stored (`auths`), and the credential
//! helpers it names (`credHelpers` per host, `credsStore` for every host). Keys are matched by
//! host, so "https://registry.example.com/v1/" serves "registry.example.com", and any of Docker
//! Hub's names serves Docker Hub.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::RegistryAuth;
use crate::reference::is_docker_hub;

/// The key, and the server URL given to credential helpers, that Docker uses for Docker Hub.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Never `Debug`: it holds passwords.
#[derive(Default, Deserialize)]
pub(super) struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    /// Base64 of "username:password", as `docker login` writes it.
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// An OAuth refresh token, which only Docker's own token exchange can use.
    identitytoken: Option<String>,
}

/// What the config holds for a host.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    Nothing,
    Auth(RegistryAuth),
    /// Ask `docker-credential-NAME`; if it has nothing for the host, use `fallback` (from `auths`).
    Helper {
        name: String,
        fallback: Option<RegistryAuth>,
    },
}

impl DockerConfig {
    /// The error says what is wrong without naming the file, which the caller adds.
    pub(super) fn load(path: &Path) -> Result<DockerConfig, String> {
        let text =
            std::fs::read_to_string(path).map_err(|error| format!("cannot read: {error}"))?;
        DockerConfig::parse(&text)
    }

    pub(super) fn parse(text: &str) -> Result<DockerConfig, String> {
        serde_json::from_str(text).map_err(|error| format!("not a Docker config: {error}"))
    }

    /// Helpers first (a host's own, then the store for all), as Docker does.
    pub(super) fn find(&self, host: &str) -> Result<Found, String> {
        let helper = lookup(&self.cred_helpers, host).or(self.creds_store.as_ref());
        let auth = lookup(&self.auths, host);
        match helper.filter(|name| !name.is_empty()) {
            Some(name) => Ok(Found::Helper {
                name: name.clone(),
                fallback: auth.and_then(|entry| entry.credentials(host).ok().flatten()),
            }),
            None => match auth {
                Some(entry) => Ok(entry.credentials(host)?.map_or(Found::Nothing, Found::Auth)),
                None => Ok(Found::Nothing),
            },
        }
    }
}

/// What Docker names a host by in its config and to credential helpers.
pub(super) fn server_url(host: &str) -> &str {
    if is_docker_hub(host) {
        DOCKER_HUB_SERVER
    } else {
        host
    }
}

impl AuthEntry {
    fn credentials(&self, host: &str) -> Result<Option<RegistryAuth>, String> {
        if let Some(encoded) = self.auth.as_deref().filter(|auth| !auth.is_empty()) {
            // The value is never shown: it is the password.
            let invalid = || format!("auths entry for {host}: auth is not base64 of user:password");
            let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
            let text = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (username, password) = text.split_once(':').ok_or_else(invalid)?;
            return Ok(Some(RegistryAuth {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            return Ok(Some(RegistryAuth {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        if self.identitytoken.is_some() {
            return Err(format!(
                "auths entry for {host}: identity tokens are not supported; log in with a username and password or token"
            ));
        }
        Ok(None)
    }
}

/// The value whose key names `host`: the key written as the host itself first, then any key
/// that is a URL of it.
fn lookup<'a, T>(map: &'a BTreeMap<String, T>, host: &str) -> Option<&'a T> {
    map.iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(host))
        .or_else(|| map.iter().find(|(key, _)| same_host(key, host)))
        .map(|(_, value)| value)
}

fn same_host(key: &str, host: &str) -> bool {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key_host = without_scheme.split('/').next().unwrap_or(without_scheme);
    key_host.eq_ignore_ascii_case(host) || (is_docker_hub(key_host) && is_docker_hub(host))
}
