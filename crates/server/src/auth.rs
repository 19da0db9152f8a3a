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
//! Refusals never echo the token, and nothing here logs it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cj_api::{AuditEntry, Role};
use cj_store::Store;

use crate::audit::{self, AuditLog};
use crate::edge::MAX_BODY_BYTES;
use crate::error::ApiFailure;
use crate::state::{lock, now_rfc3339};
use crate::tokens::{self, Secret, TokenError, TokenRecord};

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
            name: crate::api::user(headers),
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

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
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
    (
        Methods::All,
        Paths::Under("/v1/agent"),
        Access::Role(Role::Agent),
    ),
    (Methods::Reads, Paths::Exact("/v1/info"), Access::AnyToken),
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
        Methods::Writes,
        Paths::Under("/v1/hosts"),
        Access::Role(Role::Admin),
    ),
    (
        Methods::All,
        Paths::Under("/v1/exec"),
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

/// Whether `role` gives `access`: admin includes deploy, which includes read; agent is only
/// itself, and no other role includes it.
pub fn allows(role: Role, access: Access) -> bool {
    let Access::Role(needed) = access else {
        return true;
    };
    match (role, needed) {
        (Role::Agent, needed) => needed == Role::Agent,
        (_, Role::Agent) => false,
        (Role::Admin, _) => true,
        (Role::Deploy, needed) => needed != Role::Admin,
        (Role::Read, needed) => needed == Role::Read,
    }
}

/// The auth layer's state: the mode, the store holding the tokens, and the audit log.
pub struct Auth {
    pub mode: AuthMode,
    tokens: Arc<dyn Store>,
    /// Tokens valid only while this process runs, never stored (`dev`'s own agent).
    process_tokens: Mutex<Vec<TokenRecord>>,
    pub audit: AuditLog,
}

/// A refused request: who it was as far as is known, and the answer.
struct Refusal {
    who: String,
    role: Option<Role>,
    failure: ApiFailure,
}

impl Auth {
    pub fn new(mode: AuthMode, tokens: Arc<dyn Store>, audit: AuditLog) -> Auth {
        Auth {
            mode,
            tokens,
            process_tokens: Mutex::default(),
            audit,
        }
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

    /// The caller, if the request may go on.
    fn decide(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
    ) -> Result<Identity, Refusal> {
        let refuse = |who: &str, role, failure| Refusal {
            who: who.to_owned(),
            role,
            failure,
        };
        let identity = match bearer(headers) {
            Err(failure) => return Err(refuse("invalid token", None, failure)),
            Ok(None) if self.mode == AuthMode::Open => return Ok(Identity::claimed(headers)),
            Ok(None) => {
                let failure = ApiFailure::Unauthorized(
                    "this server needs a token: send `Authorization: Bearer TOKEN` \
                     (coding-job: --token or CODING_JOB_TOKEN)"
                        .into(),
                );
                return Err(refuse("anonymous", None, failure));
            }
            Ok(Some(secret)) => match self.token(secret) {
                Ok(Some(record)) => Identity {
                    name: record.name,
                    role: Some(record.role),
                },
                Ok(None) => {
                    let failure = ApiFailure::Unauthorized(
                        "the token is not valid: it is unknown or was revoked".into(),
                    );
                    return Err(refuse("invalid token", None, failure));
                }
                Err(error) => return Err(refuse("unknown", None, error.into())),
            },
        };
        let needed = access(method, path);
        match identity.role {
            Some(role) if !allows(role, needed) => {
                let needs = match needed {
                    Access::Role(needed) => needed.as_str(),
                    Access::AnyToken => "any",
                };
                let failure = ApiFailure::Forbidden(format!(
                    "this needs the {needs} role; token {} has {role}",
                    identity.name
                ));
                Err(refuse(&identity.name, Some(role), failure))
            }
            _ => Ok(identity),
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, if there is one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiFailure> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || {
        ApiFailure::Unauthorized(
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

/// Reads that are audited as writes are: running a command in a container (`exec`).
fn audited_read(path: &str) -> bool {
    path == "/v1/exec"
}

/// The middleware: authenticate, authorise, and audit writes (and execs).
pub async fn check(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let writes = !is_read(&method);
    let audited = writes || audited_read(&path);
    let (mut request, env, target) = if audited && !writes {
        let (env, target) = audit::query_subject(request.uri());
        (request, env, target)
    } else if writes {
        // The edge has read the body already; this takes it from memory.
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .unwrap_or_default();
        let (env, target) = audit::subject(&path, &bytes);
        (Request::from_parts(parts, Body::from(bytes)), env, target)
    } else {
        (request, None, None)
    };
    let (who, role, response) = match auth.decide(request.headers(), &method, &path) {
        Ok(identity) => {
            request.extensions_mut().insert(identity.clone());
            (identity.name, identity.role, next.run(request).await)
        }
        Err(refusal) => {
            let status = refusal.failure.status();
            if status.as_u16() == 403 {
                tracing::info!(who = refusal.who, %method, path, "refused: role");
            } else {
                tracing::debug!(who = refusal.who, %method, path, %status, "refused");
            }
            (refusal.who, refusal.role, refusal.failure.into_response())
        }
    };
    if audited {
        auth.audit.record(&AuditEntry {
            at: now_rfc3339(),
            who,
            role,
            method: method.to_string(),
            path: crate::sanitize::bounded(&path, 256),
            env,
            target,
            status: response.status().as_u16(),
        });
    }
    response
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
            ("GET", "/v1/hosts", read),
            ("POST", "/v1/hosts/h1/drain", admin),
            ("POST", "/v1/hosts/h1/prewarm", admin),
            ("GET", "/v1/exec", deploy),
            ("GET", "/v1/agent/connect", agent),
            ("POST", "/v1/agent/report", agent),
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
    fn admin_includes_deploy_includes_read_and_agent_is_apart() {
        let needs = [
            Access::AnyToken,
            Access::Role(Role::Read),
            Access::Role(Role::Deploy),
            Access::Role(Role::Admin),
            Access::Role(Role::Agent),
        ];
        let expected = [
            (Role::Read, [true, true, false, false, false]),
            (Role::Deploy, [true, true, true, false, false]),
            (Role::Admin, [true, true, true, true, false]),
            (Role::Agent, [true, false, false, false, true]),
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
        let (status, _, _) = send(&router, "POST", "/v1/push", Some("Bearer cj_nope")).await;
        assert_eq!(status, 401);
        let (_, read) = secrets.iter().find(|(r, _)| *r == Role::Read).unwrap();
        let (status, _, _) =
            send(&router, "POST", "/v1/push", Some(&format!("Bearer {read}"))).await;
        assert_eq!(status, 403);
    }
}
