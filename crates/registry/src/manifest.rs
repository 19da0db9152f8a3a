//! Manifests: the media types asked for, and what a manifest says about its image. A manifest
//! list (or OCI index) is resolved to its linux/amd64 entry, the platform the hosts run.

use serde::Deserialize;

pub(crate) const ACCEPTED_MANIFESTS: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
];

/// What a fetched manifest leads to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ManifestKind {
    /// One image: its config blob's digest, which is the Docker image ID.
    Image { config_digest: String },
    /// Several images by platform: the digest of the linux/amd64 one, if there is one.
    List { linux_amd64_digest: Option<String> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    media_type: Option<String>,
    config: Option<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    os: String,
    architecture: String,
}

/// Reads a manifest body. The kind comes from its shape (OCI manifests need not carry a
/// `mediaType`), so `content_type` only serves to name what was not understood.
pub(crate) fn parse_manifest(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<ManifestKind, String> {
    let manifest: Manifest = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    if let Some(entries) = manifest.manifests {
        let linux_amd64 = entries.into_iter().find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|platform| platform.os == "linux" && platform.architecture == "amd64")
        });
        return Ok(ManifestKind::List {
            linux_amd64_digest: linux_amd64.map(|entry| entry.digest),
        });
    }
    if let Some(config) = manifest.config {
        return Ok(ManifestKind::Image {
            config_digest: config.digest,
        });
    }
    let media_type = manifest
        .media_type
        .as_deref()
        .or(content_type)
        .unwrap_or("unknown");
    Err(format!("unsupported manifest type {media_type}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<ManifestKind, &str>) {
        let actual = parse_manifest(body.as_bytes(), Some("application/x-test"));
        assert_eq!(actual, expected.map_err(str::to_string), "{body}");
    }

    #[test]
    fn image_manifests_give_their_config_digest() {
        check(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
                "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:c"},
                "layers":[]}"#,
            Ok(ManifestKind::Image {
                config_digest: "sha256:c".into(),
            }),
        );
        check(
            r#"{"schemaVersion":2,"config":{"digest":"sha256:oci","size":1},"layers":[]}"#,
            Ok(ManifestKind::Image {
                config_digest: "sha256:oci".into(),
            }),
        );
    }

    #[test]
    fn lists_pick_linux_amd64() {
        check(
            r#"{"schemaVersion":2,"manifests":[
                {"digest":"sha256:arm","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
                {"digest":"sha256:attestation","platform":{"os":"unknown","architecture":"unknown"}},
                {"digest":"sha256:amd","platform":{"os":"linux","architecture":"amd64"}}]}"#,
            Ok(ManifestKind::List {
                linux_amd64_digest: Some("sha256:amd".into()),
            }),
        );
        check(
            r#"{"manifests":[{"digest":"sha256:win","platform":{"os":"windows","architecture":"amd64"}}]}"#,
            Ok(ManifestKind::List {
                linux_amd64_digest: None,
            }),
        );
    }

    #[test]
    fn other_manifests_are_named_in_the_error() {
        check(
            r#"{"schemaVersion":1,"name":"blog","tag":"1","fsLayers":[]}"#,
            Err("unsupported manifest type application/x-test"),
        );
        check(
            r#"{"mediaType":"application/vnd.x","layers":[]}"#,
            Err("unsupported manifest type application/vnd.x"),
        );
    }
}
