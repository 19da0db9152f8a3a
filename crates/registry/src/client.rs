//! [`RegistryClient`]: every tag of an image's repository with its image id, manifest digest and
//! creation time. It keeps one session per registry host, so the authentication learned and the
//! tokens got for one listing serve the next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::reference::is_docker_hub;
use crate::tag_info::{fetch_tag_info, sort_newest_first};
use crate::tags::list_tag_names;
use crate::transport::Registry;
use crate::{ImageRef, RegistryConfig, RegistryError, TagInfo};

/// Tags fetched at once: enough to hide latency, few enough not to hammer a small registry.
const CONCURRENT_TAGS: usize = 8;
const DEFAULT_PAGE_SIZE: usize = 100;
/// Where Docker Hub's API lives (users write "docker.io" or nothing).
const DOCKER_HUB_API: &str = "registry-1.docker.io";

pub struct RegistryClient {
    http: reqwest::Client,
    configs: Vec<RegistryConfig>,
    /// One session per registry name, made on first use.
    registries: Mutex<HashMap<String, Arc<Registry>>>,
    page_size: usize,
}

impl RegistryClient {
    pub fn new(registries: Vec<RegistryConfig>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("coding-job/", env!("CARGO_PKG_VERSION")))
            .build()
            // Fails only if the TLS backend cannot start, which no retry would fix.
            .expect("failed to build the HTTP client");
        RegistryClient {
            http,
            configs: registries,
            registries: Mutex::default(),
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
        let registry = self.registry(image)?;
        let repository = image.api_repository();
        let names = list_tag_names(&self.http, &registry, &repository, self.page_size).await?;
        let fetched: Vec<Option<TagInfo>> = stream::iter(names)
            .map(|tag| fetch_tag_info(&self.http, &registry, &repository, tag))
            .buffer_unordered(CONCURRENT_TAGS)
            .try_collect()
            .await?;
        let mut tags: Vec<TagInfo> = fetched.into_iter().flatten().collect();
        sort_newest_first(&mut tags);
        Ok(tags)
    }

    fn registry(&self, image: &ImageRef) -> Result<Arc<Registry>, RegistryError> {
        let name = image.registry_name();
        let mut registries = self.registries.lock().unwrap();
        if let Some(registry) = registries.get(name) {
            return Ok(registry.clone());
        }
        let hub = image.is_docker_hub();
        let config = self.configs.iter().find(|config| {
            config.host.eq_ignore_ascii_case(name) || (hub && is_docker_hub(&config.host))
        });
        let api_host = if hub { DOCKER_HUB_API } else { name };
        let insecure = config.is_some_and(|config| config.insecure);
        let auth = config.and_then(RegistryConfig::auth);
        let registry = Registry::new(name, api_host, insecure, auth).map_err(|reason| {
            RegistryError::InvalidReference {
                reference: image.to_string(),
                reason,
            }
        })?;
        let registry = Arc::new(registry);
        registries.insert(name.to_string(), registry.clone());
        Ok(registry)
    }
}
