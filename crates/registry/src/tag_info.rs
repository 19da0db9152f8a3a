//! One tag's facts (image id, manifest digest, creation time) and the order tags are shown in.
//!
//! Per tag: the manifest by tag (a list is resolved to its linux/amd64 manifest by digest, the
//! platform the hosts run), then the image config blob, whose digest is the Docker image ID and
//! whose `created` is the build time.

use std::cmp::Reverse;

use oci_client::manifest::{OciImageManifest, OciManifest};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::RegistryError;
use crate::listing::Listing;

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
    listing: &Listing,
    tag: String,
) -> Result<Option<TagInfo>, RegistryError> {
    let Some((manifest, digest)) = listing.manifest(&listing.reference_to_tag(&tag)).await? else {
        tracing::debug!(
            registry = listing.host,
            repository = listing.repository,
            tag,
            "tag vanished while listing"
        );
        return Ok(None);
    };
    let Some(image) = linux_amd64_image(listing, &tag, manifest).await? else {
        return Ok(None);
    };
    let config = listing.blob(&image.config).await?;
    #[derive(Deserialize)]
    struct ImageConfig {
        created: Option<String>,
    }
    let config: ImageConfig = serde_json::from_slice(&config)
        .map_err(|error| listing.invalid("image config", format!("tag {tag}: {error}")))?;
    Ok(Some(TagInfo {
        tag,
        image_id: image.config.digest,
        digest,
        created: config.created,
    }))
}

/// The image itself, or a list's linux/amd64 entry; `None` if that entry vanished meanwhile.
async fn linux_amd64_image(
    listing: &Listing,
    tag: &str,
    manifest: OciManifest,
) -> Result<Option<OciImageManifest>, RegistryError> {
    let list = match manifest {
        OciManifest::Image(image) => return Ok(Some(image)),
        OciManifest::ImageIndex(list) => list,
    };
    let Some(child) = oci_client::client::linux_amd64_resolver(&list.manifests) else {
        return Err(RegistryError::NoLinuxAmd64Image {
            host: listing.host.clone(),
            repository: listing.repository.clone(),
            tag: tag.to_string(),
        });
    };
    match listing
        .manifest(&listing.reference_to_digest(&child))
        .await?
    {
        Some((OciManifest::Image(image), _)) => Ok(Some(image)),
        Some((OciManifest::ImageIndex(_), _)) => {
            let reason = format!("the linux/amd64 entry of tag {tag} is itself a list");
            Err(listing.invalid("manifest list", reason))
        }
        None => Ok(None),
    }
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
