//! The server's own configuration file (`--config FILE`): where to send notifications and how
//! to reach private registries. Credentials in it never appear in output, logs or the API.
//!
//! ```yaml
//! notify:
//!   - http://127.0.0.1:9000/hooks/coding-job
//!   - url: https://hooks.slack.com/services/T0/B0/XXXX
//!     format: slack         # or dingtalk; our JSON by default
//! alerts:
//!   crash_loop: { restarts: 3, within: 5m }   # see `alert_rules` for every rule
//! registries:               # see docs/registries.md
//!   - host: registry.internal:5000
//!     username: deploy
//!     password_env: REGISTRY_PASSWORD   # or password: s3cret, or password_file: PATH
//!     insecure: true        # plain HTTP (always so for loopback registries)
//!   - host: ghcr.io         # no credentials here: Docker's own config.json gives them
//! snapshots:                # where volume snapshots are kept; see `snapshots::target`
//!   dir: /var/lib/coding-job/snapshots
//! ```

use std::path::Path;

use cj_registry::RegistryConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Webhooks that get a POST on pushes, rollouts, unhealthy tasks and alerts.
    #[serde(default)]
    pub notify: Vec<crate::observe::webhook_format::Webhook>,
    /// Which conditions raise alerts (sent to `notify`, kept under `alerts/`).
    #[serde(default)]
    pub alerts: crate::observe::alert_rules::AlertRules,
    #[serde(default)]
    pub registries: Vec<RegistryConfig>,
    /// Where volume snapshots are kept (see `snapshots::target`); `DATA_DIR/snapshots` when
    /// the file does not say.
    #[serde(default)]
    pub snapshots: Option<crate::snapshots::target::TargetConfig>,
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
            anyhow::anyhow!(
                "{}:{location}: {}",
                path.display(),
                without_position(first_line)
            )
        })?;
        for registry in &config.registries {
            registry
                .validate()
                .map_err(|error| anyhow::anyhow!("{}: registries: {error}", path.display()))?;
        }
        for webhook in &config.notify {
            let url = &webhook.url;
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

/// The message without the parser's own "line N column M: ", which the caller puts in front
/// as `FILE:N:M:` already.
fn without_position(message: &str) -> &str {
    let Some(rest) = message.strip_prefix("line ") else {
        return message;
    };
    match rest.split_once(": ") {
        Some((position, text)) if position.contains(" column ") => text,
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ServerConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.yaml");
        std::fs::write(&path, text).unwrap();
        ServerConfig::load(&path).map_err(|error| {
            error
                .to_string()
                .replace(&path.display().to_string(), "server.yaml")
        })
    }

    #[test]
    fn plain_and_formatted_webhooks_and_alerts_load() {
        let config = load(
            "notify:\n  - http://127.0.0.1:9000/hook\n  - url: https://hooks.example/T0\n    format: slack\nalerts:\n  host_down: { for: 1m }\n",
        )
        .unwrap();
        assert_eq!(config.notify.len(), 2);
        assert_eq!(
            config.notify[1].format,
            crate::observe::webhook_format::WebhookFormat::Slack
        );
        assert!(config.alerts.host_down.is_some());
        assert!(config.alerts.crash_loop.is_none());
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let error = load("alerts:\n  unhealthy: { for: soon }\n").unwrap_err();
        assert_eq!(
            error,
            "server.yaml:2:21: expected a duration from 1s to 7 days such as 30s, 5m or 1h, found \"soon\""
        );
        let error = load("notify:\n  - url: http://a/hook\n    format: teams\n").unwrap_err();
        assert!(error.starts_with("server.yaml:3:"), "{error}");
        assert!(error.contains("teams"), "{error}");
        let error = load("registries:\n  - host: r\n    username: ci\n").unwrap_err();
        assert_eq!(
            error,
            "server.yaml: registries: registry r: username: no password given: add password, password_env or password_file"
        );
        let error = load("notify:\n  - url: ftp://a/hook\n").unwrap_err();
        assert_eq!(
            error,
            "server.yaml: notify: expected http:// or https:// URLs, found \"ftp://a/hook\""
        );
    }
}
