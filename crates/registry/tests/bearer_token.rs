//! Bearer token authentication and tag-list pagination, against a small fake registry: Debian's
//! `docker-registry` does neither without a token server of its own (and 2.8 ignores `n`), yet
//! Docker Hub, GHCR and GitLab all work this way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use coding_job_registry::{ImageRef, RegistryClient, RegistryConfig, RegistryError};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "token-Pa55";
/// `Basic` + base64 of "ci:token-Pa55".
const BASIC: &str = "Basic Y2k6dG9rZW4tUGE1NQ==";
const TOKEN: &str = "tok-1";

struct Fake {
    port: u16,
    token_requests: AtomicUsize,
}

/// Each tag's image config: the blob its manifest points to. Tag c has no creation time.
fn image_config(tag: &str) -> &'static str {
    match tag {
        "a" => r#"{"created":"2024-01-01T00:00:00Z"}"#,
        "b" => r#"{"created":"2024-06-01T00:00:00.5Z"}"#,
        _ => r#"{"architecture":"amd64"}"#,
    }
}

/// Content addresses, as a registry gives them: the client checks what it gets against them.
fn digest(body: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

fn manifest(tag: &str) -> String {
    let config = image_config(tag);
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
        digest(config),
        config.len()
    )
}

async fn serve(State(fake): State<Arc<Fake>>, headers: HeaderMap, uri: Uri) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let query = uri.query().unwrap_or_default();
    if uri.path() == "/token" {
        fake.token_requests.fetch_add(1, Ordering::SeqCst);
        if authorization != Some(BASIC) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        assert!(
            query.contains("service=fake")
                && query.contains("scope=repository%3Ateam%2Fapp%3Apull"),
            "{query}"
        );
        return format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#).into_response();
    }
    if authorization != Some(&format!("Bearer {TOKEN}")) {
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{}/token",service="fake",scope="repository:team/app:pull""#,
            fake.port
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response();
    }
    let path = uri.path();
    if path == "/v2/team/app/tags/list" {
        assert!(query.contains("n=2"), "{query}");
        if query.contains("last=b") {
            return r#"{"name":"team/app","tags":["c"]}"#.into_response();
        }
        let next = r#"</v2/team/app/tags/list?n=2&last=b>; rel="next""#;
        return (
            [(header::LINK, next)],
            r#"{"name":"team/app","tags":["b","a"]}"#,
        )
            .into_response();
    }
    if let Some(tag) = path.strip_prefix("/v2/team/app/manifests/") {
        // Tag c comes without Docker-Content-Digest: its digest is computed from the body.
        if tag == "c" {
            return manifest(tag).into_response();
        }
        let header = digest(&manifest(tag));
        return ([("docker-content-digest", header)], manifest(tag)).into_response();
    }
    let blob = path.strip_prefix("/v2/team/app/blobs/");
    match ["a", "b", "c"]
        .into_iter()
        .find(|tag| blob == Some(digest(image_config(tag)).as_str()))
    {
        Some(tag) => image_config(tag).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_fake() -> (Arc<Fake>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = Arc::new(Fake {
        port,
        token_requests: AtomicUsize::new(0),
    });
    let app = Router::new().fallback(serve).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, format!("127.0.0.1:{port}"))
}

fn client(host: &str, password: Option<&str>) -> RegistryClient {
    let config = RegistryConfig {
        host: host.to_string(),
        username: password.map(|_| "ci".to_string()),
        password: password.map(str::to_string),
        ..RegistryConfig::default()
    };
    RegistryClient::new(vec![config]).with_page_size(2)
}

#[tokio::test]
async fn bearer_token_is_fetched_once_and_pages_are_followed() {
    let (fake, host) = start_fake().await;
    let image = ImageRef::parse(&format!("{host}/team/app:a")).unwrap();
    let client = client(&host, Some(PASSWORD));

    let tags = client.list_tags(&image).await.unwrap();

    let summary: Vec<(&str, &str, &str, Option<&str>)> = tags
        .iter()
        .map(|info| {
            (
                info.tag.as_str(),
                info.image_id.as_str(),
                info.digest.as_str(),
                info.created.as_deref(),
            )
        })
        .collect();
    // Tag c's manifest comes without Docker-Content-Digest: its digest is computed from the body.
    let digests = |tag| (digest(image_config(tag)), digest(&manifest(tag)));
    let [
        (config_a, manifest_a),
        (config_b, manifest_b),
        (config_c, manifest_c),
    ] = ["a", "b", "c"].map(digests);
    assert_eq!(
        summary,
        [
            (
                "b",
                config_b.as_str(),
                manifest_b.as_str(),
                Some("2024-06-01T00:00:00.5Z")
            ),
            (
                "a",
                config_a.as_str(),
                manifest_a.as_str(),
                Some("2024-01-01T00:00:00Z")
            ),
            ("c", config_c.as_str(), manifest_c.as_str(), None),
        ]
    );
    // One token for the whole listing, and still the same one for the next listing.
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
    client.list_tags(&image).await.unwrap();
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn token_server_refusals_are_clear_and_never_show_the_password() {
    let (_fake, host) = start_fake().await;
    let image = ImageRef::parse(&format!("{host}/team/app")).unwrap();

    let error = client(&host, None).list_tags(&image).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsRequired { .. }),
        "{error:?}"
    );

    let wrong = "wrong-Pa55";
    let error = client(&host, Some(wrong))
        .list_tags(&image)
        .await
        .unwrap_err();
    let text = format!("{error} {error:?}");
    assert_eq!(
        error.to_string(),
        format!("registry {host} rejected the credentials of user ci for team/app")
    );
    assert!(!text.contains(wrong), "{text}");
}
