//! One tag's facts (image id, manifest digest, creation time) and the order tags are shown in.
//!
//! Per tag: the manifest by tag (a list is resolved to its linux/amd64 manifest by digest), then
//! the image config blob, whose digest is the Docker image ID and whose `created` is the build
//! time.

use std::cmp::Reverse;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::RegistryError;
use crate::manifest::{ACCEPTED_MANIFESTS, ManifestKind, parse_manifest};
use crate::transport::Registry;

/// One tag of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagInfo {
    pub tag: String,
    /// The image config digest ("sha256:..."): equal to the Docker image ID.
    pub image_id: String,
    /// The digest of the tag's manifest (of the list, for a multi-platform tag): what
    /// `REPOSITORY@DIGEST` pins.
    pub digest: String,
    /// RFC 3339, from the image config's `created`.
    pub created: Option<String>,
}

/// Newest first; tags without a (readable) time last; ties by tag name.
pub(crate) fn sort_newest_first(tags: &mut [TagInfo]) {
    tags.sort_by_cached_key(|info| {
        let created = info
            .created
            .as_deref()
            .and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok());
        (Reverse(created), info.tag.clone())
    });
}

/// `None` if the tag vanished between listing and fetching it (deleted meanwhile).
pub(crate) async fn fetch_tag_info(
    http: &Client,
    registry: &Registry,
    repository: &str,
    tag: String,
) -> Result<Option<TagInfo>, RegistryError> {
    let Some((digest, kind)) = fetch_manifest(http, registry, repository, &tag).await? else {
        tracing::debug!(
            registry = registry.name,
            repository,
            tag,
            "tag vanished while listing"
        );
        return Ok(None);
    };
    let config_digest = match kind {
        ManifestKind::Image { config_digest } => config_digest,
        ManifestKind::List {
            linux_amd64_digest: None,
        } => {
            return Err(RegistryError::NoLinuxAmd64Image {
                host: registry.name.clone(),
                repository: repository.to_string(),
                tag,
            });
        }
        ManifestKind::List {
            linux_amd64_digest: Some(child),
        } => match fetch_manifest(http, registry, repository, &child).await? {
            Some((_, ManifestKind::Image { config_digest })) => config_digest,
            Some((_, ManifestKind::List { .. })) => {
                let reason = format!("the linux/amd64 entry of tag {tag} is itself a list");
                return Err(registry.invalid(repository, "manifest list", reason));
            }
            None => return Ok(None),
        },
    };
    let created = fetch_created(http, registry, repository, &config_digest).await?;
    Ok(Some(TagInfo {
        tag,
        image_id: config_digest,
        digest,
        created,
    }))
}

/// The manifest's digest and what it leads to; `None` if there is no such manifest.
async fn fetch_manifest(
    http: &Client,
    registry: &Registry,
    repository: &str,
    reference: &str,
) -> Result<Option<(String, ManifestKind)>, RegistryError> {
    let path = format!("/v2/{repository}/manifests/{reference}");
    let response = registry
        .get(http, repository, &path, &ACCEPTED_MANIFESTS)
        .await?;
    match response.status() {
        StatusCode::NOT_FOUND => return Ok(None),
        status if !status.is_success() => {
            let request = format!("GET manifests/{reference}");
            return Err(registry.status_error(repository, &request, response).await);
        }
        _ => {}
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let header_digest = header("docker-content-digest");
    let content_type = header(CONTENT_TYPE.as_str());
    let body = response.bytes().await.map_err(|error| {
        registry.invalid(repository, "manifest", format!("{reference}: {error}"))
    })?;
    // The digest is of the exact bytes sent, so it can be computed when the header is missing.
    let digest =
        header_digest.unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&body))));
    let kind = parse_manifest(&body, content_type.as_deref()).map_err(|reason| {
        registry.invalid(repository, "manifest", format!("{reference}: {reason}"))
    })?;
    Ok(Some((digest, kind)))
}

/// The `created` time of an image config blob.
async fn fetch_created(
    http: &Client,
    registry: &Registry,
    repository: &str,
    config_digest: &str,
) -> Result<Option<String>, RegistryError> {
    #[derive(Deserialize)]
    struct ImageConfig {
        created: Option<String>,
    }
    let path = format!("/v2/{repository}/blobs/{config_digest}");
    let response = registry.get(http, repository, &path, &[]).await?;
    if !response.status().is_success() {
        let request = format!("GET blobs/{config_digest}");
        return Err(registry.status_error(repository, &request, response).await);
    }
    let config: ImageConfig = registry
        .read_json(repository, "image config", response)
        .await?;
    Ok(config.created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, created: Option<&str>) -> TagInfo {
        TagInfo {
            tag: name.into(),
            image_id: format!("sha256:{name}"),
            digest: format!("sha256:m{name}"),
            created: created.map(Into::into),
        }
    }

    #[test]
    fn newest_first_then_untimed_by_name() {
        let mut tags = vec![
            tag("untimed-b", None),
            tag("old", Some("2024-01-01T10:00:00Z")),
            // Lexically before "10:00:00Z" but half a second later: compared as times.
            tag("half-second-later", Some("2024-01-01T10:00:00.5Z")),
            tag("unreadable", Some("yesterday")),
            tag("same-time-b", Some("2024-02-01T00:00:00+01:00")),
            tag("same-time-a", Some("2024-01-31T23:00:00Z")),
            tag("untimed-a", None),
        ];
        sort_newest_first(&mut tags);
        let names: Vec<&str> = tags.iter().map(|info| info.tag.as_str()).collect();
        assert_eq!(
            names,
            [
                "same-time-a",
                "same-time-b",
                "half-second-later",
                "old",
                "unreadable",
                "untimed-a",
                "untimed-b"
            ]
        );
    }
}
