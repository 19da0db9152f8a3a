//! Who may do what: the one layer every API request passes (inside the edge's limits, before
//! routing). It finds the request's token, decides from [`RULES`] whether the token's role
//! allows the method and path, puts the caller's [`Identity`] into the request for handlers
//! (`pushed_by`, a deployment's user, a token's `created_by`), and writes every write request
//! and every exec, allowed or refused, to the audit log.
//!
//! Two modes. [`AuthMode::Required`] (`coding-job server`, and `dev` on an address other than
//! loopback): a request without a valid token is answered 401. [`AuthMode::Open`] (`dev` on
//! loopback, where only this machine's users can connect): a request without a token may do
//! anything, and its identity is the `x-coding-job-user` header as before; a token that is
//! sent is still checked and then decides, so scripts behave the same in both modes.
//!
//! Browsers: the web UI's login puts the token in the [`SESSION_COOKIE`] (HttpOnly,
//! SameSite=Strict), which counts as the token for every request; a write made with it must
//! also carry the session's [`csrf_token`] (header `X-CSRF-Token` or form field `csrf`), so a
//! page of another site can never write with the user's session. A browser without
//! credentials that asks for a page is sent to the login page instead of a 401. Before any of
//! this, [`same_origin`] refuses a write or exec that another site's page made (its `Origin`),
//! and, on an open server, any request sent to a name other than a local one (DNS rebinding).
//!
//! `--public-read` ([`Auth::with_public_read`]): a request without credentials may do what the
//! `read` role may, as the caller `public`; writes still need a token.
//!
//! Refusals never echo the token, and nothing here logs it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cj_api::{AuditEntry, Role};
use cj_store::Store;
use subtle::ConstantTimeEq;

use crate::base::{lock, now_rfc3339};
use crate::edge::audit::{self, AuditLog};
use crate::edge::guard::MAX_BODY_BYTES;
use crate::edge::same_origin;
pub use crate::edge::session::{CSRF_HEADER, Session, csrf_token};
use crate::edge::session::{form_csrf, session_cookie};
use crate::edge::tokens::{self, Secret, TokenError, TokenRecord};
use crate::error::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No token needed (a token that is sent is still checked).
    Open,
    /// Every request needs a valid token.
    Required,
}

impl AuthMode {
    /// `dev` on a loopback address is open; anywhere else anyone on the network could reach
    /// it, so tokens are required.
    pub fn for_dev(listen: &SocketAddr) -> AuthMode {
        if listen.ip().is_loopback() {
            AuthMode::Open
        } else {
            AuthMode::Required
        }
    }
}

/// The account this process runs as: who an open server's requests without a name come from.
static LOCAL_USER: std::sync::LazyLock<String> = std::sync::LazyLock::new(cj_api::local_user);

/// Who makes a request: a token's name and role, or (open mode, no token) the name the
/// `x-coding-job-user` header claims, with no role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Option<Role>,
}

impl Identity {
    fn claimed(headers: &HeaderMap) -> Identity {
        Identity {
            name: user(headers),
            role: None,
        }
    }
}

/// Handlers take the caller as an argument. Outside the auth layer (unit tests of a handler)
/// it is the identity the header claims.
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Identity>()
            .cloned()
            .unwrap_or_else(|| Identity::claimed(&parts.headers)))
    }
}

/// The name of a caller without credentials on a `--public-read` server.
pub const PUBLIC_CALLER: &str = "public";

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: the login page and the UI's static files.
    Public,
    /// Any valid token, whatever its role.
    AnyToken,
    /// A token whose role includes this one.
    Role(Role),
}

#[derive(Debug, Clone, Copy)]
enum Methods {
    All,
    /// GET and HEAD.
    Reads,
    /// Every other method.
    Writes,
}

#[derive(Debug, Clone, Copy)]
enum Paths {
    /// This path and everything under it.
    Under(&'static str),
    Exact(&'static str),
    Any,
}

/// The route table: the first rule that matches the method and path decides. Paths are
/// compared as sent, as the router compares them, so a path cannot read as one thing here
/// and route as another.
const RULES: &[(Methods, Paths, Access)] = &[
    (Methods::All, Paths::Exact("/ui/login"), Access::Public),
    (Methods::All, Paths::Exact("/ui/logout"), Access::Public),
    (Methods::Reads, Paths::Under("/ui/static"), Access::Public),
    (
        Methods::All,
        Paths::Under("/v1/agent"),
        Access::Role(Role::Agent),
    ),
    (Methods::Reads, Paths::Exact("/v1/info"), Access::AnyToken),
    (
        Methods::All,
        Paths::Under("/v1/router"),
        Access::Role(Role::Router),
    ),
    (
        Methods::All,
        Paths::Under("/v1/tokens"),
        Access::Role(Role::Admin),
    ),
    (
        Methods::All,
        Paths::Under("/v1/audit"),
        Access::Role(Role::Admin),
    ),
    (
        Methods::All,
        Paths::Under("/v1/store"),
        Access::Role(Role::Admin),
    ),
    (
        Methods::Writes,
        Paths::Under("/v1/hosts"),
        Access::Role(Role::Admin),
    ),
    (
        Methods::All,
        Paths::Under("/v1/exec"),
        Access::Role(Role::Deploy),
    ),
    // A volume's copy may hold anything its task keeps: as much as `exec` could read.
    (
        Methods::All,
        Paths::Under("/v1/snapshot-data"),
        Access::Role(Role::Deploy),
    ),
    (Methods::Reads, Paths::Any, Access::Role(Role::Read)),
    (Methods::Writes, Paths::Any, Access::Role(Role::Deploy)),
];

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// What a request with this method and path needs.
pub fn access(method: &Method, path: &str) -> Access {
    let rule = RULES.iter().find(|(methods, paths, _)| {
        let method_matches = match methods {
            Methods::All => true,
            Methods::Reads => is_read(method),
            Methods::Writes => !is_read(method),
        };
        let path_matches = match paths {
            Paths::Under(prefix) => path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
            Paths::Exact(exact) => path == *exact,
            Paths::Any => true,
        };
        method_matches && path_matches
    });
    rule.map(|(_, _, access)| *access)
        .unwrap_or(Access::Role(Role::Admin))
}

/// Whether `role` gives `access`: admin includes deploy and router, which both include read;
/// agent is only itself, and no other role includes it.
pub fn allows(role: Role, access: Access) -> bool {
    let Access::Role(needed) = access else {
        return true;
    };
    match (role, needed) {
        (Role::Agent, needed) => needed == Role::Agent,
        (_, Role::Agent) => false,
        (Role::Admin, _) => true,
        (Role::Deploy, needed) => !matches!(needed, Role::Admin | Role::Router),
        (Role::Router, needed) => matches!(needed, Role::Router | Role::Read),
        (Role::Read, needed) => needed == Role::Read,
    }
}

/// The auth layer's state: the mode, the store holding the tokens, and the audit log.
pub struct Auth {
    pub mode: AuthMode,
    /// Requests without credentials may read, as [`PUBLIC_CALLER`] (`--public-read`).
    pub public_read: bool,
    tokens: Arc<dyn Store>,
    /// Tokens valid only while this process runs, never stored (`dev`'s own agent).
    process_tokens: Mutex<Vec<TokenRecord>>,
    pub audit: AuditLog,
}

/// A refused request: who it was as far as is known, and the answer.
struct Refusal {
    who: String,
    role: Option<Role>,
    failure: Failure,
    /// A browser asking for a page is sent here (the login page) instead of the failure.
    redirect: Option<String>,
}

impl Refusal {
    fn into_response(self) -> Response {
        match self.redirect {
            Some(location) => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                response
            }
            None => self.failure.into_response(),
        }
    }
}

/// Where a request's token came from.
#[derive(Debug, Clone, Copy)]
enum Credential<'a> {
    Bearer(&'a str),
    /// The [`SESSION_COOKIE`]: writes need the session's CSRF token as well.
    Cookie(&'a str),
}

/// The caller a request may go on as, and its browser session if it came with the cookie.
struct Decision {
    identity: Identity,
    session: Option<Session>,
}

impl Auth {
    pub fn new(mode: AuthMode, tokens: Arc<dyn Store>, audit: AuditLog) -> Auth {
        Auth {
            mode,
            public_read: false,
            tokens,
            process_tokens: Mutex::default(),
            audit,
        }
    }

    /// Lets requests without credentials read (`--public-read`).
    /// Whether `identity` may read the audit log, and so see its entries in the event stream.
    pub fn may_read_audit(&self, identity: &Identity) -> bool {
        match identity.role {
            Some(role) => allows(role, access(&Method::GET, "/v1/audit")),
            None => self.mode == AuthMode::Open,
        }
    }

    pub fn with_public_read(mut self, public_read: bool) -> Auth {
        self.public_read = public_read;
        self
    }

    /// The caller a token secret stands for, if it is valid (the UI's login checks it).
    pub fn identify(&self, secret: &str) -> Result<Option<Identity>, Failure> {
        Ok(self.token(secret)?.map(|record| Identity {
            name: record.name,
            role: Some(record.role),
        }))
    }

    /// A token for something inside this process that dials its own API (`dev`'s agent): it
    /// is never stored and stops working when the process ends.
    pub fn process_token(&self, name: &str, role: Role) -> Result<Secret, TokenError> {
        tokens::check_name(name)?;
        let secret = Secret::generate()?;
        lock(&self.process_tokens).push(TokenRecord {
            name: name.to_owned(),
            role,
            sha256: secret.sha256_hex(),
            created: now_rfc3339(),
            created_by: "process".into(),
        });
        Ok(secret)
    }

    /// The token whose secret this is: one of this process's, or a stored one.
    fn token(&self, secret: &str) -> Result<Option<TokenRecord>, TokenError> {
        let own = lock(&self.process_tokens).clone();
        Ok(tokens::matching(
            own.into_iter().chain(tokens::list(&*self.tokens)?),
            secret,
        ))
    }

    /// The caller, if the request may go on. `form_csrf` is the `csrf` field of a form body.
    fn decide(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        form_csrf: Option<&str>,
    ) -> Result<Decision, Refusal> {
        let refuse = |who: &str, role, failure| Refusal {
            who: who.to_owned(),
            role,
            failure,
            redirect: None,
        };
        if self.mode == AuthMode::Open
            && let Some(reason) = same_origin::names_a_foreign_host(headers)
        {
            return Err(refuse("anonymous", None, Failure::Forbidden(reason)));
        }
        if (!is_read(method) || audited_read(path))
            && let Some(reason) = same_origin::from_another_site(headers)
        {
            return Err(refuse("another site", None, Failure::Csrf(reason)));
        }
        let needed = access(method, path);
        let credential = match credential(headers) {
            Ok(credential) => credential,
            Err(failure) => return Err(refuse("invalid token", None, failure)),
        };
        // A session that is no longer valid (revoked, expired in another tab) counts as none:
        // the browser can still read what anyone may, and reach the login page.
        let known = match credential {
            None => None,
            Some(credential) => match self.token(credential.secret()) {
                Ok(Some(record)) => Some((credential, record)),
                Ok(None) if matches!(credential, Credential::Cookie(_)) => None,
                Ok(None) if needed == Access::Public => None,
                Ok(None) => {
                    let failure = Failure::Unauthorized(
                        "the token is not valid: it is unknown or was revoked".into(),
                    );
                    return Err(refuse("invalid token", None, failure));
                }
                Err(error) => return Err(refuse("unknown", None, error.into())),
            },
        };
        let Some((credential, record)) = known else {
            return self.without_credentials(headers, method, path, needed);
        };
        let identity = Identity {
            name: record.name,
            role: Some(record.role),
        };
        let session = match credential {
            Credential::Bearer(_) => None,
            Credential::Cookie(secret) => Some(Session {
                csrf: csrf_token(secret),
            }),
        };
        if let Some(session) = &session
            && !is_read(method)
            && needed != Access::Public
        {
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .or(form_csrf)
                .unwrap_or_default();
            if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
                let failure = Failure::Csrf(
                    "this write came with a browser session but without its CSRF token \
                     (header X-CSRF-Token or form field csrf); reload the page and try again"
                        .into(),
                );
                return Err(refuse(&identity.name, identity.role, failure));
            }
        }
        match identity.role {
            Some(role) if !allows(role, needed) => {
                let needs = match needed {
                    Access::Role(needed) => needed.as_str(),
                    Access::AnyToken | Access::Public => "any",
                };
                let failure = Failure::Forbidden(format!(
                    "this needs the {needs} role; token {} has {role}",
                    identity.name
                ));
                Err(refuse(&identity.name, Some(role), failure))
            }
            _ => Ok(Decision { identity, session }),
        }
    }

    /// A request with no (valid) credentials: allowed when the route is public, the server is
    /// open, or it is a read on a `--public-read` server; a browser asking for a page goes to
    /// the login page; anything else is a 401.
    fn without_credentials(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        needed: Access,
    ) -> Result<Decision, Refusal> {
        let allowed = |identity| {
            Ok(Decision {
                identity,
                session: None,
            })
        };
        if self.mode == AuthMode::Open {
            // An open server is someone's own machine: a request that names nobody (the web
            // UI's) is that person's, as the CLI's would be.
            let mut identity = Identity::claimed(headers);
            if headers.get(cj_api::USER_HEADER).is_none() {
                identity.name = crate::edge::sanitize::user(&LOCAL_USER);
            }
            return allowed(identity);
        }
        if needed == Access::Public {
            return allowed(Identity::claimed(headers));
        }
        if self.public_read && is_read(method) && allows(Role::Read, needed) {
            return allowed(Identity {
                name: PUBLIC_CALLER.into(),
                role: Some(Role::Read),
            });
        }
        let redirect = (is_read(method) && is_page(path)).then(|| login_location(path));
        Err(Refusal {
            who: "anonymous".into(),
            role: None,
            failure: Failure::Unauthorized(
                "this server needs a token: send `Authorization: Bearer TOKEN` \
                 (coding-job: --token or CODING_JOB_TOKEN)"
                    .into(),
            ),
            redirect,
        })
    }
}

impl Credential<'_> {
    fn secret(&self) -> &str {
        match self {
            Credential::Bearer(secret) | Credential::Cookie(secret) => secret,
        }
    }
}

/// A page of the web UI, as opposed to the API (`/v1/...`) and the metrics.
fn is_page(path: &str) -> bool {
    !path.starts_with("/v1/") && path != "/metrics"
}

/// The login page, asked to come back to `path` afterwards.
fn login_location(path: &str) -> String {
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    format!("/ui/login?next={next}")
}

/// The request's token: the `Authorization` header, else the session cookie.
fn credential(headers: &HeaderMap) -> Result<Option<Credential<'_>>, Failure> {
    if let Some(secret) = bearer(headers)? {
        return Ok(Some(Credential::Bearer(secret)));
    }
    Ok(session_cookie(headers).map(Credential::Cookie))
}

/// The token of an `Authorization: Bearer TOKEN` header, if there is one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Failure> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || {
        Failure::Unauthorized(
            "expected one `Authorization: Bearer TOKEN` header with a coding-job token".into(),
        )
    };
    if values.next().is_some() {
        return Err(malformed());
    }
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// Reads that are audited as writes are: running a command in a container (`exec`), and
/// taking a copy of the whole store (token hashes and secret values included).
fn audited_read(path: &str) -> bool {
    path == "/v1/exec" || path == "/v1/store/snapshot"
}

/// The middleware: authenticate, authorise, and audit writes (and execs).
pub async fn check(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let writes = !is_read(&method);
    let audited = writes || audited_read(&path);
    let (mut request, env, target, form_csrf) = if audited && !writes {
        let (env, target) = audit::query_subject(request.uri());
        (request, env, target, None)
    } else if writes {
        // The edge has read the body already; this takes it from memory.
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .unwrap_or_default();
        let (env, target) = audit::subject(&path, &bytes);
        let csrf = form_csrf(&parts.headers, &bytes);
        (
            Request::from_parts(parts, Body::from(bytes)),
            env,
            target,
            csrf,
        )
    } else {
        (request, None, None, None)
    };
    let decision = auth.decide(request.headers(), &method, &path, form_csrf.as_deref());
    let (who, role, response) = match decision {
        Ok(Decision { identity, session }) => {
            request.extensions_mut().insert(identity.clone());
            if let Some(session) = session {
                request.extensions_mut().insert(session);
            }
            (identity.name, identity.role, next.run(request).await)
        }
        Err(refusal) => {
            let status = refusal.failure.status();
            if status.as_u16() == 403 {
                tracing::info!(who = refusal.who, %method, path, "refused: {}", refusal.failure.code());
            } else {
                tracing::debug!(who = refusal.who, %method, path, %status, "refused");
            }
            let (who, role) = (refusal.who.clone(), refusal.role);
            (who, role, refusal.into_response())
        }
    };
    if audited {
        auth.audit.record(&AuditEntry {
            at: now_rfc3339(),
            who,
            role,
            method: method.to_string(),
            path: crate::edge::sanitize::bounded(&path, 256),
            env,
            target,
            status: response.status().as_u16(),
        });
    }
    response
}

/// Who a request without a token says it is (the `x-coding-job-user` header), as the audit
/// trail keeps it: without control characters, at most 64 characters, `unknown` when absent.
/// Only an open `dev` server believes it (see `auth`); handlers take the caller's [`Identity`].
pub fn user(headers: &HeaderMap) -> String {
    headers
        .get(cj_api::USER_HEADER)
        .map(|value| crate::edge::sanitize::user(&String::from_utf8_lossy(value.as_bytes())))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn every_route_needs_the_role_the_table_says() {
        let read = Access::Role(Role::Read);
        let deploy = Access::Role(Role::Deploy);
        let admin = Access::Role(Role::Admin);
        let agent = Access::Role(Role::Agent);
        let router = Access::Role(Role::Router);
        let cases = [
            ("GET", "/v1/info", Access::AnyToken),
            ("POST", "/v1/info", deploy),
            ("GET", "/v1/status", read),
            ("HEAD", "/v1/status", read),
            ("GET", "/v1/logs", read),
            ("GET", "/v1/deployments", read),
            ("POST", "/v1/push", deploy),
            ("POST", "/v1/up", deploy),
            ("POST", "/v1/down", deploy),
            ("POST", "/v1/diff", deploy),
            ("POST", "/v1/promote", deploy),
            ("POST", "/v1/update", deploy),
            ("PUT", "/v1/status", deploy),
            ("GET", "/v1/tokens", admin),
            ("POST", "/v1/tokens", admin),
            ("DELETE", "/v1/tokens/ci", admin),
            ("GET", "/v1/audit", admin),
            ("GET", "/v1/store/snapshot", admin),
            ("GET", "/v1/hosts", read),
            ("POST", "/v1/hosts/h1/drain", admin),
            ("POST", "/v1/hosts/h1/prewarm", admin),
            ("GET", "/v1/exec", deploy),
            ("GET", "/v1/agent/connect", agent),
            ("POST", "/v1/agent/report", agent),
            ("POST", "/v1/router/counts", router),
            ("GET", "/v1/router/certificates", router),
            ("GET", "/v1/routes", read),
            ("GET", "/v1/agentx", read),
            ("GET", "/v1/tokensx", read),
            ("GET", "/v1/agent/../status", agent),
            ("GET", "/v1/%61gent/connect", read),
            ("GET", "/nothing", read),
            ("BREW", "/v1/status", deploy),
        ];
        for (method, path, expected) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(access(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn admin_includes_deploy_and_router_which_include_read_and_agent_is_apart() {
        let needs = [
            Access::AnyToken,
            Access::Role(Role::Read),
            Access::Role(Role::Deploy),
            Access::Role(Role::Admin),
            Access::Role(Role::Agent),
            Access::Role(Role::Router),
        ];
        let expected = [
            (Role::Read, [true, true, false, false, false, false]),
            (Role::Deploy, [true, true, true, false, false, false]),
            (Role::Admin, [true, true, true, true, false, true]),
            (Role::Agent, [true, false, false, false, true, false]),
            (Role::Router, [true, true, false, false, false, true]),
        ];
        for (role, allowed) in expected {
            for (need, allowed) in needs.iter().zip(allowed) {
                assert_eq!(allows(role, *need), allowed, "{role} for {need:?}");
            }
        }
    }

    /// A router with a read and a write route behind the layer, and tokens of each role.
    fn app(mode: AuthMode) -> (tempfile::TempDir, Router, Vec<(Role, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(cj_store::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
        let audit: Arc<dyn Store> =
            Arc::new(cj_store::EmbeddedStore::open(&dir.path().join("audit.redb")).unwrap());
        let secrets = Role::ALL
            .into_iter()
            .map(|role| {
                let (_, secret) = tokens::create(&*store, role.as_str(), role, "test").unwrap();
                (role, secret.expose().to_owned())
            })
            .collect();
        let auth = Arc::new(Auth::new(mode, store, AuditLog::open(audit).unwrap()));
        let whoami = |identity: Identity| async move { identity.name };
        let router = Router::new()
            .route("/v1/status", get(whoami))
            .route("/v1/push", post(whoami))
            .layer(axum::middleware::from_fn_with_state(auth, check));
        (dir, router, secrets)
    }

    /// The status, the body, and the `WWW-Authenticate` header of the answer.
    async fn send(
        router: &Router,
        method: &str,
        path: &str,
        authorization: Option<&str>,
    ) -> (u16, String, Option<String>) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(cj_api::USER_HEADER, "carol");
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), challenge)
    }

    #[tokio::test]
    async fn required_mode_refuses_without_a_valid_token_and_checks_roles() {
        let (_dir, router, secrets) = app(AuthMode::Required);
        let secret = |role| {
            let (_, secret) = secrets.iter().find(|(r, _)| *r == role).unwrap();
            format!("Bearer {secret}")
        };
        let (status, body, challenge) = send(&router, "GET", "/v1/status", None).await;
        assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
        assert!(body.contains(r#""code":"unauthorized""#), "{body}");
        for bad in ["Bearer cj_nope", "Basic abc", "Bearer", "cj_x"] {
            let (status, body, _) = send(&router, "GET", "/v1/status", Some(bad)).await;
            assert_eq!(status, 401, "{bad}: {body}");
        }
        let (status, body, _) = send(&router, "GET", "/v1/status", Some(&secret(Role::Read))).await;
        assert_eq!((status, body.as_str()), (200, "read"));
        let (status, body, _) = send(&router, "POST", "/v1/push", Some(&secret(Role::Read))).await;
        assert_eq!(status, 403);
        assert!(body.contains(r#""code":"forbidden""#), "{body}");
        assert!(
            body.contains("this needs the deploy role; token read has read"),
            "{body}"
        );
        let (status, body, _) =
            send(&router, "POST", "/v1/push", Some(&secret(Role::Deploy))).await;
        assert_eq!((status, body.as_str()), (200, "deploy"));
        let (status, _, _) = send(&router, "GET", "/v1/status", Some(&secret(Role::Agent))).await;
        assert_eq!(status, 403);
        for (_, secret) in &secrets {
            assert!(!body.contains(secret.as_str()));
        }
    }

    #[tokio::test]
    async fn open_mode_takes_the_header_identity_but_still_checks_a_token_sent() {
        let (_dir, router, secrets) = app(AuthMode::Open);
        let (status, body, _) = send(&router, "POST", "/v1/push", None).await;
        assert_eq!((status, body.as_str()), (200, "carol"));
        // A request that names nobody (the web UI's) is the local account's.
        let anonymous = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/push")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(anonymous).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&body), cj_api::local_user());
        let (status, _, _) = send(&router, "POST", "/v1/push", Some("Bearer cj_nope")).await;
        assert_eq!(status, 401);
        let (_, read) = secrets.iter().find(|(r, _)| *r == Role::Read).unwrap();
        let (status, _, _) =
            send(&router, "POST", "/v1/push", Some(&format!("Bearer {read}"))).await;
        assert_eq!(status, 403);
    }
}
