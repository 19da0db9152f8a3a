//! What every page shares: the header (who is asking, what they may do), times shown relative
//! to now with the exact time on hover, byte and percent formatting, and the middleware that
//! turns the API's JSON refusals into pages a browser can show.

use std::fmt;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cj_api::{ApiError, Role};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::edge::auth::{Identity, Session};

/// The header of every page, and what the caller may do.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    pub who: String,
    /// The role in words (`open dev server: every role` without a token).
    pub role: String,
    pub can_deploy: bool,
    pub is_admin: bool,
    /// The session's CSRF value, for forms and for the script (`<meta name="csrf-token">`).
    pub csrf: Option<String>,
    /// Signed in with the session cookie: the header offers logout rather than login.
    pub signed_in: bool,
    /// The script re-reads the page when something changes.
    pub live: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, caller: &Identity, session: Option<&Session>) -> Chrome {
        let (role, can_deploy, is_admin) = match caller.role {
            None => ("open dev server: every role".to_owned(), true, true),
            Some(role) => (
                role.to_string(),
                matches!(role, Role::Deploy | Role::Admin),
                role == Role::Admin,
            ),
        };
        Chrome {
            title: title.into(),
            who: caller.name.clone(),
            role,
            can_deploy,
            is_admin,
            csrf: session.map(|session| session.csrf.clone()),
            signed_in: session.is_some(),
            live: true,
        }
    }

    /// The header of a page shown to nobody in particular (the login page, an error page):
    /// no caller, no actions, nothing live.
    pub fn anonymous(title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            who: String::new(),
            role: String::new(),
            can_deploy: false,
            is_admin: false,
            csrf: None,
            signed_in: false,
            live: false,
        }
    }

    /// A hidden `csrf` field for a form (empty without a session: bearer and open callers
    /// need none).
    pub fn csrf_field(&self) -> String {
        match &self.csrf {
            Some(csrf) => format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
                escape(csrf)
            ),
            None => String::new(),
        }
    }
}

/// A moment shown as `3 min ago` (or, for how long something has run, `3 min`) with the exact
/// time on hover; the script keeps the text fresh.
#[derive(Debug, Clone)]
pub struct Moment {
    iso: String,
    /// The time in UTC, for the tooltip.
    exact: String,
    text: String,
    style: &'static str,
}

impl Moment {
    /// `ago` for an RFC 3339 time; none for an absent or unreadable one.
    pub fn ago(at: Option<&str>, now: OffsetDateTime) -> Option<Moment> {
        Moment::parse(at?, now, "ago")
    }

    /// How long since `at`, without "ago" (an uptime).
    pub fn since(at: Option<&str>, now: OffsetDateTime) -> Option<Moment> {
        Moment::parse(at?, now, "for")
    }

    fn parse(at: &str, now: OffsetDateTime, style: &'static str) -> Option<Moment> {
        let when = OffsetDateTime::parse(at, &Rfc3339)
            .ok()?
            .to_offset(time::UtcOffset::UTC);
        let seconds = (now - when).whole_seconds();
        let exact = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            when.year(),
            u8::from(when.month()),
            when.day(),
            when.hour(),
            when.minute(),
            when.second()
        );
        Some(Moment {
            iso: at.to_owned(),
            exact,
            text: relative(seconds, style == "ago"),
            style,
        })
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<time datetime=\"{}\" title=\"{}\" data-relative=\"{}\">{}</time>",
            escape(&self.iso),
            escape(&self.exact),
            self.style,
            escape(&self.text)
        )
    }
}

/// `42 s ago`, `3 min ago`, `5 h ago`, `2 d ago` (`in ...` for the future); without `ago`
/// just the span.
pub fn relative(seconds: i64, ago: bool) -> String {
    let span = seconds.unsigned_abs();
    let words = match span {
        0..60 => format!("{span} s"),
        60..3600 => format!("{} min", span / 60),
        3600..86400 => format!("{} h", span / 3600),
        _ => format!("{} d", span / 86400),
    };
    match (ago, seconds < 0) {
        (false, _) => words,
        (true, false) if span < 5 => "just now".into(),
        (true, false) => format!("{words} ago"),
        (true, true) => format!("in {words}"),
    }
}

/// `512 B`, `3.2 MiB`, `1.5 GiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{count} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

pub fn percent(value: f64) -> String {
    format!("{value:.1}%")
}

/// HTML-escapes text that goes into markup built here rather than by a template (the same
/// escaping as the router's own pages).
pub use cj_api::html::escape;

/// A CSS class for a task's or host's state word.
pub fn state_class(state: &str) -> &'static str {
    match state {
        "running" | "ready" | "healthy" | "succeeded" | "up" => "ok",
        "failed" | "exited" | "unhealthy" | "down" | "rolled back" | "aborted" | "dead" => "bad",
        _ => "busy",
    }
}

/// What [`encode`] leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment or query value.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

#[derive(Template, WebTemplate)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: String,
}

/// Around the pages: a browser that is not signed in (401 on a page) goes to the login form;
/// any other refusal or failure, answered by the API's layers as JSON, becomes a page that
/// says what was wrong.
pub async fn browser_answers(request: Request, next: Next) -> Response {
    let is_get = request.method() == Method::GET || request.method() == Method::HEAD;
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED && is_get {
        return Redirect::to(&format!("/ui/login?next={}", encode(&path_and_query)))
            .into_response();
    }
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_html {
        return response;
    }
    // The API's JSON error, or the plain text of an extractor's rejection (a form field).
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let message = match serde_json::from_slice::<ApiError>(&body) {
        Ok(error) => error.error,
        Err(_) if !body.is_empty() => String::from_utf8_lossy(&body).into_owned(),
        Err(_) => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let page = ErrorPage {
        chrome: Chrome::anonymous(format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )),
        message,
    };
    let mut answer = page.into_response();
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_words() {
        let cases = [
            (0, true, "just now"),
            (42, true, "42 s ago"),
            (185, true, "3 min ago"),
            (7300, true, "2 h ago"),
            (200_000, true, "2 d ago"),
            (-120, true, "in 2 min"),
            (185, false, "3 min"),
        ];
        for (seconds, ago, expected) in cases {
            assert_eq!(relative(seconds, ago), expected, "{seconds} {ago}");
        }
    }

    #[test]
    fn moments_escape_and_keep_the_exact_time() {
        let now = OffsetDateTime::parse("2026-01-01T00:10:00Z", &Rfc3339).unwrap();
        let moment = Moment::ago(Some("2026-01-01T00:00:00Z"), now).unwrap();
        assert_eq!(
            moment.to_string(),
            "<time datetime=\"2026-01-01T00:00:00Z\" title=\"2026-01-01 00:00:00 UTC\" \
             data-relative=\"ago\">10 min ago</time>"
        );
        assert!(Moment::ago(Some("<script>"), now).is_none());
    }

    #[test]
    fn sizes_and_segments_are_formatted() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
