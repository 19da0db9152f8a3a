//! The registry client against a real `docker-registry` with images pushed by the Docker CLI.

mod support;

use coding_job_registry::{ImageRef, RegistryClient, RegistryConfig, RegistryError};
use support::TestRegistry;

fn image(text: &str) -> ImageRef {
    ImageRef::parse(text).unwrap()
}

fn config(host: &str, credentials: Option<(&str, &str)>) -> RegistryConfig {
    RegistryConfig {
        host: host.to_string(),
        username: credentials.map(|(user, _)| user.to_string()),
        password: credentials.map(|(_, password)| password.to_string()),
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn lists_tags_newest_first_with_image_ids() {
    let registry = TestRegistry::start();
    // Pushed in an order that is neither alphabetical nor reverse alphabetical.
    let pushed: Vec<(&str, String)> = ["charlie", "alpha", "bravo"]
        .into_iter()
        .map(|tag| (tag, registry.push_image("team/blog", tag)))
        .collect();
    // A page size below the tag count, for registries that paginate (2.8 ignores it).
    let client = RegistryClient::new(vec![]).with_page_size(2);
    let reference = image(&format!("{}/team/blog:alpha", registry.host()));

    let tags = client.list_tags(&reference).await.unwrap();

    let names: Vec<&str> = tags.iter().map(|info| info.tag.as_str()).collect();
    assert_eq!(names, ["bravo", "alpha", "charlie"]);
    for info in &tags {
        let (_, image_id) = pushed.iter().find(|(tag, _)| *tag == info.tag).unwrap();
        assert_eq!(&info.image_id, image_id, "{}", info.tag);
        let repo_digest = registry.repo_digest("team/blog", &info.tag);
        assert_eq!(
            repo_digest,
            format!("{}/team/blog@{}", registry.host(), info.digest)
        );
        assert!(info.created.is_some(), "{} has no created time", info.tag);
    }
    assert_eq!(
        reference.with_tag(&tags[0].tag),
        format!("{}/team/blog:bravo", registry.host())
    );
}

#[tokio::test]
async fn basic_auth_registry_needs_and_accepts_credentials() {
    let password = "s3cret-Pa55word";
    let registry = TestRegistry::start_with_auth("ci", password);
    let image_id = registry.push_image("team/api", "v1");
    let host = registry.host();
    let reference = image(&format!("{host}/team/api:v1"));

    let error = RegistryClient::new(vec![])
        .list_tags(&reference)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsRequired { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "registry {host} requires credentials for team/api: add username/password for {host} to the server config"
        )
    );

    let wrong = "wrong-Pa55word";
    let client = RegistryClient::new(vec![config(&host, Some(("ci", wrong)))]);
    let error = client.list_tags(&reference).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsRejected { .. }),
        "{error:?}"
    );
    let text = format!("{error} {error:?}");
    assert!(text.contains(&host) && text.contains("team/api"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(password), "{text}");

    let client = RegistryClient::new(vec![config(&host, Some(("ci", password)))]);
    let tags = client.list_tags(&reference).await.unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!((tags[0].tag.as_str(), &tags[0].image_id), ("v1", &image_id));
    // The session now sends credentials up front; a second listing works the same.
    assert_eq!(client.list_tags(&reference).await.unwrap(), tags);
}

#[tokio::test]
async fn credentials_come_from_a_docker_login_or_a_password_file() {
    let password = "d0cker-Pa55word";
    let registry = TestRegistry::start_with_auth("ci", password);
    // Pushing logs in first, so the registry's Docker config holds what `docker login` stored.
    let image_id = registry.push_image("team/api", "v1");
    let host = registry.host();
    let reference = image(&format!("{host}/team/api:v1"));
    let from_docker = RegistryConfig {
        host: host.clone(),
        docker_config: Some(registry.docker_config().unwrap().join("config.json")),
        ..RegistryConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let from_file = RegistryConfig {
        host: host.clone(),
        username: Some("ci".into()),
        password_file: Some(password_file),
        ..RegistryConfig::default()
    };

    for entry in [from_docker, from_file] {
        entry.validate().unwrap();
        let tags = RegistryClient::new(vec![entry.clone()])
            .list_tags(&reference)
            .await
            .unwrap_or_else(|error| panic!("{entry:?}: {error}"));
        assert_eq!(tags.len(), 1);
        assert_eq!((tags[0].tag.as_str(), &tags[0].image_id), ("v1", &image_id));
    }
}

#[tokio::test]
async fn missing_repository_is_a_clear_error() {
    let registry = TestRegistry::start();
    let host = registry.host();
    let reference = image(&format!("{host}/team/missing:1"));

    let error = RegistryClient::new(vec![])
        .list_tags(&reference)
        .await
        .unwrap_err();

    assert!(
        matches!(error, RegistryError::RepositoryNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("repository team/missing not found on registry {host}")
    );
}

#[tokio::test]
async fn unreachable_registry_is_a_clear_error() {
    let host = format!("127.0.0.1:{}", support::free_port());
    let reference = image(&format!("{host}/team/blog"));

    let error = RegistryClient::new(vec![])
        .list_tags(&reference)
        .await
        .unwrap_err();

    let text = error.to_string();
    assert!(
        matches!(error, RegistryError::Transport { .. }),
        "{error:?}"
    );
    assert!(
        text.starts_with(&format!(
            "request to registry {host} for team/blog failed: "
        )),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
}

#[tokio::test]
async fn manifest_lists_resolve_to_their_linux_amd64_image() {
    let registry = TestRegistry::start();
    let amd64_image_id = registry.push_image("team/multi", "build-amd64");
    registry.push_image("team/multi", "build-arm64");
    // The arm64 entry first, so picking the first entry would be wrong.
    let entries = [("build-arm64", "arm64"), ("build-amd64", "amd64")];
    let list_digest = registry.push_manifest_list("team/multi", "release", &entries);
    let reference = image(&format!("{}/team/multi", registry.host()));

    let tags = RegistryClient::new(vec![])
        .list_tags(&reference)
        .await
        .unwrap();

    let release = tags.iter().find(|info| info.tag == "release").unwrap();
    assert_eq!(release.image_id, amd64_image_id);
    assert_eq!(release.digest, list_digest);
    assert!(release.created.is_some());

    registry.push_manifest_list("team/multi", "arm-only", &[("build-arm64", "arm64")]);
    let error = RegistryClient::new(vec![])
        .list_tags(&reference)
        .await
        .unwrap_err();
    let expected = format!(
        "team/multi:arm-only on registry {} has no linux/amd64 image",
        registry.host()
    );
    assert_eq!(error.to_string(), expected);
}
