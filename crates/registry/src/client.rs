//! [`RegistryClient`]: every tag of an image's repository with its image id, manifest digest and
//! creation time. It keeps one oci-client client per registry and credentials, so the tokens got
//! for one listing serve the next; credentials that changed (a rotated secret) get a new client.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};

use crate::credentials::{self, ProcessEnvironment};
use crate::listing::Listing;
use crate::reference::is_docker_hub;
use crate::tag_info::{fetch_tag_info, sort_newest_first};
use crate::tags::list_tag_names;
use crate::{ImageRef, RegistryAuth, RegistryConfig, RegistryError, TagInfo};

/// Tags fetched at once: enough to hide latency, few enough not to hammer a small registry.
const CONCURRENT_TAGS: usize = 8;
const DEFAULT_PAGE_SIZE: usize = 100;
const USER_AGENT: &str = concat!("coding-job/", env!("CARGO_PKG_VERSION"));

pub struct RegistryClient {
    configs: Vec<RegistryConfig>,
    /// By registry name: the client and the credentials it was made for (its token cache
    /// belongs to them).
    clients: Mutex<HashMap<String, (Option<RegistryAuth>, oci_client::Client)>>,
    page_size: usize,
}

impl RegistryClient {
    pub fn new(registries: Vec<RegistryConfig>) -> Self {
        RegistryClient {
            configs: registries,
            clients: Mutex::default(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Tags asked for per page of the tag list (default 100).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Every tag of the image's repository, newest first (by created; tags without a time last,
    /// then by tag name). The image's own tag or digest plays no part.
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Vec<TagInfo>, RegistryError> {
        let listing = self.listing(image).await?;
        let names = list_tag_names(&listing, self.page_size).await?;
        let fetched: Vec<Option<TagInfo>> = stream::iter(names)
            .map(|tag| fetch_tag_info(&listing, tag))
            .buffer_unordered(CONCURRENT_TAGS)
            .try_collect()
            .await?;
        let mut tags: Vec<TagInfo> = fetched.into_iter().flatten().collect();
        sort_newest_first(&mut tags);
        Ok(tags)
    }

    async fn listing(&self, image: &ImageRef) -> Result<Listing, RegistryError> {
        let host = image.registry_name();
        let hub = image.is_docker_hub();
        let entry = self.configs.iter().find(|config| {
            config.host.eq_ignore_ascii_case(host) || (hub && is_docker_hub(&config.host))
        });
        let auth = credentials::resolve(entry, host, &ProcessEnvironment).await?;
        let client = {
            let mut clients = self.clients.lock().unwrap();
            match clients.get(host) {
                Some((known, client)) if *known == auth => client.clone(),
                _ => {
                    let plain_http = entry.is_some_and(|entry| entry.insecure) || is_loopback(host);
                    let client = new_client(host, plain_http).map_err(|reason| {
                        RegistryError::Transport {
                            host: host.to_string(),
                            repository: image.api_repository(),
                            reason,
                        }
                    })?;
                    clients.insert(host.to_string(), (auth.clone(), client.clone()));
                    client
                }
            }
        };
        Ok(Listing::new(host, image.api_repository(), client, auth))
    }
}

/// A client for one registry: plain HTTP if asked for, HTTPS otherwise.
fn new_client(registry: &str, plain_http: bool) -> Result<oci_client::Client, String> {
    // oci-client's reqwest is built without a crypto provider of its own, so only ring is in the
    // binary; it uses the process default, which the server installs at start (as here, for
    // tests and other users of this crate). Installing twice changes nothing.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(protocol_exceptions(registry, plain_http)),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    oci_client::Client::try_from(config)
        .map_err(|error| format!("cannot start the HTTP client: {error}"))
}

/// The registries spoken to in plain HTTP: this one, if configured `insecure` or on loopback.
fn protocol_exceptions(registry: &str, plain_http: bool) -> Vec<String> {
    match plain_http {
        true => vec![registry.to_string()],
        false => vec![],
    }
}

/// 127.0.0.0/8, `localhost` and `[::1]`, with or without a port: Docker speaks plain HTTP to
/// them without being told.
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
    fn plain_http_only_for_the_registry_asked_for() {
        assert_eq!(
            protocol_exceptions("registry.lan:5000", true),
            ["registry.lan:5000"]
        );
        assert!(protocol_exceptions("registry.example.com", false).is_empty());
    }
}
