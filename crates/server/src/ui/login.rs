//! `/ui/login` and `/ui/logout`: a browser signs in with a token, which the session cookie
//! then carries (`HttpOnly`, `SameSite=Strict`, `Secure` over https). The token itself is
//! never shown back, not even after a failed attempt.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::Form;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::view::Chrome;
use crate::edge::auth::{Auth, csrf_token};
use crate::edge::session::{SESSION_COOKIE, session_cookie};
use crate::error::Failure;

#[derive(Template, WebTemplate)]
#[template(path = "ui/login.html")]
pub struct LoginPage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
}

fn login_page(next: String, error: Option<String>) -> LoginPage {
    LoginPage {
        chrome: Chrome::anonymous("Log in"),
        next,
        error,
    }
}

/// Where to go after signing in: a path on this server only, never another site.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".into(),
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn form(Query(query): Query<NextQuery>) -> LoginPage {
    login_page(local_path(query.next.as_deref()), None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn submit(
    Extension(auth): Extension<Arc<Auth>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, Failure> {
    let next = local_path(form.next.as_deref());
    let token = form.token.trim();
    let valid = !token.is_empty() && token.is_ascii() && auth.identify(token)?.is_some();
    if !valid {
        let page = login_page(
            next,
            Some("That token is not valid: it is unknown or was revoked.".into()),
        );
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    // Over https (as the browser's Origin says) the cookie is never sent in the clear.
    let secure = headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes().starts_with(b"https://"));
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    );
    let mut answer = Redirect::to(&next).into_response();
    answer.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| {
            Failure::BadRequest("the token has characters a cookie cannot hold".into())
        })?,
    );
    Ok(answer)
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Forgets the session: the cookie is cleared (with the session's CSRF value, so another
/// site cannot sign a browser out).
pub async fn logout(headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
    if let Some(secret) = session_cookie(&headers)
        && csrf_token(secret) != form.csrf
    {
        return Failure::Csrf("logging out needs the session's csrf field".into()).into_response();
    }
    let mut answer = Redirect::to("/ui/login").into_response();
    answer.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cj_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        let cases = [
            (Some("/ui/hosts"), "/ui/hosts"),
            (Some("/?env=staging"), "/?env=staging"),
            (Some("//evil.example/"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (None, "/"),
        ];
        for (next, expected) in cases {
            assert_eq!(local_path(next), expected, "{next:?}");
        }
    }
}
