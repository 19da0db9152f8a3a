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

fn manifest(tag: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"config":{{"digest":"sha256:config-{tag}","size":1}},"layers":[]}}"#
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
        let digest = format!("sha256:manifest-{tag}");
        return ([("docker-content-digest", digest)], manifest(tag)).into_response();
    }
    match path.strip_prefix("/v2/team/app/blobs/sha256:config-") {
        Some("a") => r#"{"created":"2024-01-01T00:00:00Z"}"#.into_response(),
        Some("b") => r#"{"created":"2024-06-01T00:00:00.5Z"}"#.into_response(),
        Some("c") => r#"{"architecture":"amd64"}"#.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
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
        insecure: false,
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
    let c_digest = format!("sha256:{}", hex::encode(Sha256::digest(manifest("c"))));
    assert_eq!(
        summary,
        [
            (
                "b",
                "sha256:config-b",
                "sha256:manifest-b",
                Some("2024-06-01T00:00:00.5Z")
            ),
            (
                "a",
                "sha256:config-a",
                "sha256:manifest-a",
                Some("2024-01-01T00:00:00Z")
            ),
            ("c", "sha256:config-c", c_digest.as_str(), None),
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
