//! One registry host: its base URL, its credentials, and the authentication it asked for.
//!
//! A request goes out with what is already known to work. On a 401 the `WWW-Authenticate`
//! challenge says what to do (Basic: send the credentials; Bearer: get a token from the realm)
//! and the request is retried once. Bearer tokens are kept per repository for their lifetime, so
//! the many manifest and blob requests of one listing share one token.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::{Client, Response, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::challenge::{Challenge, parse_challenge};
use crate::{RegistryAuth, RegistryError};

/// Tokens are dropped this long before they expire, so none expires on its way to the registry.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The token lifetime the distribution spec says to assume when a token server names none (or less).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are asked for again after a day at the latest, whatever the registry says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct Registry {
    /// The host as users name it ("docker.io" for Docker Hub): for messages.
    pub(crate) name: String,
    base: Url,
    auth: Option<RegistryAuth>,
    learned: Mutex<Learned>,
}

/// What earlier answers taught about this registry's authentication.
#[derive(Default)]
struct Learned {
    /// The registry asked for Basic once; from then on credentials go with the first request.
    basic: bool,
    /// Bearer tokens by repository, with the instant they stop being used.
    tokens: HashMap<String, (String, Instant)>,
}

enum Credential {
    Anonymous,
    Basic,
    Bearer(String),
}

impl Registry {
    /// `api_host` is where requests go (Docker Hub's API is not at "docker.io"). Plain HTTP for
    /// loopback hosts and hosts configured `insecure`, as Docker does; HTTPS otherwise.
    pub(crate) fn new(
        name: &str,
        api_host: &str,
        insecure: bool,
        auth: Option<RegistryAuth>,
    ) -> Result<Registry, String> {
        let scheme = if insecure || is_loopback(api_host) {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .ok()
            .filter(|url| url.path() == "/" && url.query().is_none())
            .ok_or_else(|| format!("{api_host:?} is not a registry host"))?;
        Ok(Registry {
            name: name.to_string(),
            base,
            auth,
            learned: Mutex::default(),
        })
    }

    /// GETs `path` (e.g. "/v2/team/blog/tags/list?n=100"), authenticating as the registry asks.
    /// Any answer but 401 is returned for the caller to judge.
    pub(crate) async fn get(
        &self,
        http: &Client,
        repository: &str,
        path: &str,
        accept: &[&str],
    ) -> Result<Response, RegistryError> {
        let url = self
            .base
            .join(path)
            .map_err(|error| self.invalid(repository, "link", format!("{path:?}: {error}")))?;
        let first = self.known_credential(repository);
        let response = self.send(http, repository, &url, accept, &first).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let retry = match parse_challenge(&header) {
            Some(Challenge::Basic) => {
                if self.auth.is_none() || matches!(first, Credential::Basic) {
                    return Err(self.denied(repository));
                }
                self.learned.lock().unwrap().basic = true;
                Credential::Basic
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{repository}:pull"));
                let token = self
                    .fetch_token(http, repository, &realm, service.as_deref(), &scope)
                    .await?;
                Credential::Bearer(token)
            }
            None => {
                return Err(RegistryError::UnsupportedAuthentication {
                    host: self.name.clone(),
                    repository: repository.to_string(),
                    challenge: if header.is_empty() {
                        "none given".into()
                    } else {
                        header
                    },
                });
            }
        };
        let response = self.send(http, repository, &url, accept, &retry).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.denied(repository));
        }
        Ok(response)
    }

    fn known_credential(&self, repository: &str) -> Credential {
        let learned = self.learned.lock().unwrap();
        match learned.tokens.get(repository) {
            Some((token, until)) if *until > Instant::now() => Credential::Bearer(token.clone()),
            _ if learned.basic => Credential::Basic,
            _ => Credential::Anonymous,
        }
    }

    async fn send(
        &self,
        http: &Client,
        repository: &str,
        url: &Url,
        accept: &[&str],
        credential: &Credential,
    ) -> Result<Response, RegistryError> {
        let mut request = http.get(url.clone());
        if !accept.is_empty() {
            request = request.header(ACCEPT, accept.join(", "));
        }
        request = match (credential, &self.auth) {
            (Credential::Basic, Some(auth)) => {
                request.basic_auth(&auth.username, Some(&auth.password))
            }
            (Credential::Bearer(token), _) => request.bearer_auth(token),
            _ => request,
        };
        request
            .send()
            .await
            .map_err(|error| self.transport(repository, &error))
    }

    /// Gets a token for `scope` from the challenge's realm, with the credentials if there are
    /// any (anonymous tokens are how public repositories are read), and keeps it.
    async fn fetch_token(
        &self,
        http: &Client,
        repository: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm).map_err(|error| {
            self.invalid(repository, "token realm", format!("{realm:?}: {error}"))
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = http.get(url);
        if let Some(auth) = &self.auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport(repository, &error))?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.denied(repository)),
            status if !status.is_success() => {
                return Err(self.status_error(repository, "GET token", response).await);
            }
            _ => {}
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = self.read_json(repository, "token", response).await?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| self.invalid(repository, "token", "no token in the answer".into()))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(0)).max(MIN_TOKEN_LIFETIME);
        // A registry's `expires_in` is not ours to trust: an absurd one must not overflow.
        let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
        let until = Instant::now() + lifetime - TOKEN_MARGIN;
        let mut learned = self.learned.lock().unwrap();
        learned
            .tokens
            .insert(repository.to_string(), (token.clone(), until));
        Ok(token)
    }

    /// Reads a JSON body, naming `what` it was if it does not parse.
    pub(crate) async fn read_json<T: DeserializeOwned>(
        &self,
        repository: &str,
        what: &str,
        response: Response,
    ) -> Result<T, RegistryError> {
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport(repository, &error))?;
        serde_json::from_slice(&body)
            .map_err(|error| self.invalid(repository, what, error.to_string()))
    }

    /// An error for an unexpected answer, with the registry's own error codes and messages.
    pub(crate) async fn status_error(
        &self,
        repository: &str,
        request: &str,
        response: Response,
    ) -> RegistryError {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<ErrorEntry>,
        }
        #[derive(Deserialize)]
        struct ErrorEntry {
            code: Option<String>,
            message: Option<String>,
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<Errors>(&body)
            .map(|errors| {
                let entries = errors.errors.into_iter().map(|entry| {
                    let parts = [entry.code, entry.message];
                    parts.into_iter().flatten().collect::<Vec<_>>().join(": ")
                });
                entries.collect::<Vec<_>>().join("; ")
            })
            .ok()
            .filter(|detail| !detail.is_empty())
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no details")
                    .to_lowercase()
            });
        RegistryError::Status {
            host: self.name.clone(),
            repository: repository.to_string(),
            request: request.to_string(),
            status: status.as_u16(),
            detail,
        }
    }

    pub(crate) fn invalid(&self, repository: &str, what: &str, reason: String) -> RegistryError {
        RegistryError::InvalidResponse {
            host: self.name.clone(),
            repository: repository.to_string(),
            what: what.to_string(),
            reason,
        }
    }

    fn denied(&self, repository: &str) -> RegistryError {
        let (host, repository) = (self.name.clone(), repository.to_string());
        match &self.auth {
            None => RegistryError::CredentialsRequired { host, repository },
            Some(auth) => RegistryError::CredentialsRejected {
                host,
                repository,
                username: auth.username.clone(),
            },
        }
    }

    /// The whole cause chain: reqwest's own message only says which request failed, its
    /// sources say why (connection refused, certificate, timeout).
    fn transport(&self, repository: &str, error: &reqwest::Error) -> RegistryError {
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        RegistryError::Transport {
            host: self.name.clone(),
            repository: repository.to_string(),
            reason,
        }
    }
}

/// 127.0.0.0/8, `localhost` and `[::1]`, with or without a port.
pub(crate) fn is_loopback(host: &str) -> bool {
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split_once(']')
            .and_then(|(address, _)| address.parse::<Ipv6Addr>().ok())
            .is_some_and(|address| address.is_loopback());
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    };
    without_port.eq_ignore_ascii_case("localhost")
        || without_port
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised_with_and_without_ports() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.8.9.10:1",
            "localhost",
            "LOCALHOST:5000",
            "[::1]",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "128.0.0.1:5000",
            "10.0.0.1",
            "registry.example.com",
            "localhost.example.com",
            "[::2]:5000",
            "docker.io",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_and_insecure_hosts() {
        let scheme = |host: &str, insecure: bool| {
            Registry::new(host, host, insecure, None)
                .unwrap()
                .base
                .scheme()
                .to_string()
        };
        assert_eq!(scheme("127.0.0.1:5000", false), "http");
        assert_eq!(scheme("[::1]:5000", false), "http");
        assert_eq!(scheme("registry.lan:5000", true), "http");
        assert_eq!(scheme("registry.example.com", false), "https");
        assert!(Registry::new("a/b", "a/b", false, None).is_err());
    }
}
