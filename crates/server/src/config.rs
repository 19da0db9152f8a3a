//! The server's own configuration file (`--config FILE`): where to send notifications and how
//! to reach private registries. Credentials in it never appear in output, logs or the API.
//!
//! ```yaml
//! notify:
//!   - http://127.0.0.1:9000/hooks/coding-job
//! registries:
//!   - host: registry.internal:5000
//!     username: deploy
//!     password: s3cret
//!     insecure: true        # plain HTTP (always so for loopback registries)
//! ```

use std::path::Path;

use cj_registry::RegistryConfig;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Webhook URLs that get a JSON POST on pushes, rollouts and unhealthy tasks.
    #[serde(default)]
    pub notify: Vec<String>,
    #[serde(default)]
    pub registries: Vec<RegistryConfig>,
}

impl ServerConfig {
    pub fn load(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            anyhow::anyhow!("cannot read the server config {}: {error}", path.display())
        })?;
        let config: ServerConfig = serde_saphyr::from_str(&text).map_err(|error| {
            let location = error
                .location()
                .map(|at| format!("{}:{}", at.line(), at.column()))
                .unwrap_or_default();
            let message = error.to_string();
            let first_line = message
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            anyhow::anyhow!("{}:{location}: {first_line}", path.display())
        })?;
        for url in &config.notify {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!(
                    "{}: notify: expected http:// or https:// URLs, found \"{url}\"",
                    path.display()
                );
            }
        }
        Ok(config)
    }
}
