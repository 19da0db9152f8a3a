//! Browser sessions of the web UI: the cookie that carries a token, and the CSRF token that
//! every write made with it must carry too. The cookie is HttpOnly and SameSite=Strict, so a
//! script cannot read it and another site's page does not send it; the CSRF token (derived
//! from the secret, so only a page the server rendered for this session knows it) closes what
//! is left: a write is refused unless it says the token in a header or a form field.

use axum::http::HeaderMap;
use axum::http::header::{CONTENT_TYPE, COOKIE};
use sha2::{Digest, Sha256};

/// The cookie that holds a browser session's token secret (set by the UI's login).
pub const SESSION_COOKIE: &str = "cj_token";

/// The header a browser session's script sends its CSRF token in (forms send field `csrf`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token of the session whose token secret this is: derived from the secret, so only
/// someone who holds the secret (the page the server rendered for it) can know it.
pub fn csrf_token(secret: &str) -> String {
    let digest = Sha256::digest(format!("coding-job csrf\n{secret}").as_bytes());
    hex::encode(&digest[..16])
}

/// A request authenticated by the [`SESSION_COOKIE`]: what the pages embed in their forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
}

/// The value of the [`SESSION_COOKIE`], if the request has a non-empty one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// The `csrf` field of a form-encoded body.
pub(crate) fn form_csrf(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return None;
    }
    form_urlencoded::parse(body)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use cj_api::Role;
    use cj_store::Store;
    use tower::ServiceExt;

    use super::*;
    use crate::edge::audit::AuditLog;
    use crate::edge::auth::{self, Auth, AuthMode, Identity};
    use crate::edge::tokens;

    struct App {
        _dir: tempfile::TempDir,
        router: Router,
        read: String,
        deploy: String,
    }

    fn app(public_read: bool) -> App {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| -> Arc<dyn Store> {
            Arc::new(cj_store::EmbeddedStore::open(&dir.path().join(name)).unwrap())
        };
        let store = open("store.redb");
        let (_, read) = tokens::create(&*store, "reader", Role::Read, "test").unwrap();
        let (_, deploy) = tokens::create(&*store, "deployer", Role::Deploy, "test").unwrap();
        let auth = Auth::new(
            AuthMode::Required,
            store,
            AuditLog::open(open("audit.redb")).unwrap(),
        )
        .with_public_read(public_read);
        let whoami = |identity: Identity, session: Option<axum::Extension<Session>>| async move {
            format!("{} {}", identity.name, session.is_some())
        };
        let router = Router::new()
            .route("/", get(whoami))
            .route("/v1/status", get(whoami))
            .route("/v1/push", post(whoami))
            .route("/ui/login", get(whoami).post(whoami))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(auth),
                auth::check,
            ));
        App {
            _dir: dir,
            router,
            read: read.expose().to_owned(),
            deploy: deploy.expose().to_owned(),
        }
    }

    /// Status, `Location` and body of the answer to a request with these extra headers.
    async fn send(
        app: &App,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> (u16, Option<String>, String) {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, location, String::from_utf8(body.to_vec()).unwrap())
    }

    fn cookie(secret: &str) -> (&'static str, String) {
        ("cookie", format!("theme=dark; {SESSION_COOKIE}={secret}"))
    }

    #[tokio::test]
    async fn a_session_cookie_reads_but_writes_only_with_its_csrf_token() {
        let app = app(false);
        let session = cookie(&app.deploy);
        let (status, _, body) = send(
            &app,
            "GET",
            "/v1/status",
            std::slice::from_ref(&session),
            "",
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "deployer true"));

        let (status, _, body) = send(
            &app,
            "POST",
            "/v1/push",
            std::slice::from_ref(&session),
            "{}",
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains(r#""code":"csrf""#), "{body}");
        let wrong = ("x-csrf-token", csrf_token(&app.read));
        let (status, _, _) = send(&app, "POST", "/v1/push", &[session.clone(), wrong], "").await;
        assert_eq!(status, 403);

        let header = ("x-csrf-token", csrf_token(&app.deploy));
        let (status, _, body) =
            send(&app, "POST", "/v1/push", &[session.clone(), header], "{}").await;
        assert_eq!((status, body.as_str()), (200, "deployer true"));
        let form = (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        );
        let field = format!("target=a&csrf={}", csrf_token(&app.deploy));
        let (status, _, body) = send(&app, "POST", "/v1/push", &[session, form], &field).await;
        assert_eq!((status, body.as_str()), (200, "deployer true"));

        // A bearer token is not a browser's: no CSRF token needed, and no session.
        let bearer = ("authorization", format!("Bearer {}", app.deploy));
        let (status, _, body) = send(&app, "POST", "/v1/push", &[bearer], "").await;
        assert_eq!((status, body.as_str()), (200, "deployer false"));
    }

    #[tokio::test]
    async fn a_browser_without_credentials_is_sent_to_the_login_page() {
        let app = app(false);
        let (status, location, _) = send(&app, "GET", "/", &[], "").await;
        assert_eq!(
            (status, location.as_deref()),
            (303, Some("/ui/login?next=%2F"))
        );
        let (status, _, body) = send(&app, "GET", "/v1/status", &[], "").await;
        assert_eq!(status, 401, "{body}");
        let (status, _, body) = send(&app, "GET", "/ui/login", &[], "").await;
        assert_eq!(status, 200, "{body}");
        // A revoked or made-up session cookie still reaches the login page, and is no token.
        let stale = cookie("cj_0000");
        let (status, _, _) =
            send(&app, "POST", "/ui/login", std::slice::from_ref(&stale), "").await;
        assert_eq!(status, 200);
        let (status, location, _) = send(&app, "GET", "/", &[stale], "").await;
        assert_eq!((status, location.is_some()), (303, true));
    }

    #[tokio::test]
    async fn public_read_lets_anyone_read_and_nobody_write_without_a_token() {
        let app = app(true);
        let (status, _, body) = send(&app, "GET", "/v1/status", &[], "").await;
        assert_eq!((status, body.as_str()), (200, "public false"));
        let (status, _, body) = send(&app, "GET", "/", &[], "").await;
        assert_eq!((status, body.as_str()), (200, "public false"));
        let (status, _, body) = send(&app, "POST", "/v1/push", &[], "{}").await;
        assert_eq!(status, 401, "{body}");
        let session = cookie(&app.read);
        let (status, _, body) = send(&app, "GET", "/", &[session], "").await;
        assert_eq!((status, body.as_str()), (200, "reader true"));
    }
}
