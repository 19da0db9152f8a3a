//! The HTTP client: JSON in and out, API errors turned into messages and exit codes. It sends
//! the token (`--token`) as `Authorization: Bearer`, trusts an extra CA (`--ca-cert`, through
//! the TLS configuration agents use too, `cj_net`), and never sends loopback traffic
//! through a proxy (`HTTP_PROXY` is for the network, and a proxy would see the token).
//! WebSockets (`exec`) are `websocket`'s, with the same settings.

use std::net::IpAddr;
use std::path::Path;

use cj_api::{ApiError, USER_HEADER};
use cj_net::{TlsClient, trust_hint};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failed command: what to print and the exit code (1 failed, 2 bad input).
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
}

impl CliError {
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            exit_code: 1,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            exit_code: 2,
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;

pub struct Client {
    http: reqwest::Client,
    pub(crate) base: String,
    pub env: String,
    pub(crate) user: String,
    /// The token, for connections reqwest does not make (WebSockets).
    pub(crate) token: Option<String>,
    /// The web roots plus `--ca-cert`: reqwest's TLS, and the WebSockets'.
    pub(crate) tls: TlsClient,
}

impl Client {
    /// A client of the server at `server`, acting on `env`, sending `token` if given and
    /// trusting the certificates in `ca_cert` besides the usual roots.
    pub fn new(
        server: &str,
        env: &str,
        token: Option<&str>,
        ca_cert: Option<&Path>,
    ) -> CliResult<Self> {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let url = reqwest::Url::parse(server).map_err(|error| {
            CliError::bad_input(format!(
                "invalid server URL \"{server}\" ({error}): expected http://HOST:PORT or https://HOST:PORT"
            ))
        })?;
        let mut builder = reqwest::Client::builder();
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| CliError::bad_input("the token holds characters a header cannot"))?;
            value.set_sensitive(true);
            builder = builder.default_headers(HeaderMap::from_iter([(AUTHORIZATION, value)]));
        }
        let tls =
            TlsClient::new(ca_cert).map_err(|error| CliError::bad_input(error.to_string()))?;
        // The same rustls as reqwest's (0.23); a mismatch would fail `build` below.
        builder = builder.use_preconfigured_tls(tls.config().clone());
        let http = builder.build().map_err(|error| {
            CliError::bad_input(format!("cannot set up the HTTP client: {}", chain(&error)))
        })?;
        Ok(Client {
            http,
            base: server.trim_end_matches('/').to_owned(),
            env: env.to_owned(),
            user,
            token: token.map(|token| token.trim().to_owned()),
            tls,
        })
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header(USER_HEADER, &self.user)
    }

    pub fn post(&self, path: &str, body: &impl Serialize) -> RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header(USER_HEADER, &self.user)
            .json(body)
    }

    pub fn put(&self, path: &str, body: &impl Serialize) -> RequestBuilder {
        self.http
            .put(format!("{}{path}", self.base))
            .header(USER_HEADER, &self.user)
            .json(body)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .header(USER_HEADER, &self.user)
    }

    /// Sends the request; a non-2xx answer becomes an error with the server's message.
    pub async fn send(&self, request: RequestBuilder) -> CliResult<Response> {
        let response = request.send().await.map_err(|error| {
            let cause = chain(&error);
            if is_certificate_problem(&cause) {
                let ca_file = self.tls.ca_file();
                let verdict = if ca_file.is_some() {
                    "is not accepted"
                } else {
                    "is not trusted"
                };
                CliError::failed(format!(
                    "the TLS certificate of {} {verdict} ({cause}): {}",
                    self.base,
                    trust_hint(ca_file)
                ))
            } else if error.is_connect() {
                CliError::failed(format!(
                    "cannot reach the coding-job server at {}: is `coding-job dev` (or \
                     `coding-job server`) running? (choose another with --server or \
                     CODING_JOB_SERVER)",
                    self.base
                ))
            } else {
                CliError::failed(format!("request to {} failed: {cause}", self.base))
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(response).await)
    }

    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> CliResult<T> {
        let response = self.send(request).await?;
        response.json().await.map_err(|error| {
            CliError::failed(format!("unexpected answer from the server: {error}"))
        })
    }
}

/// Whether the URL's host is this machine: `localhost`, or a loopback address.
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An error and its causes, as one line: reqwest's own message rarely says what went wrong.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn is_certificate_problem(cause: &str) -> bool {
    let lower = cause.to_ascii_lowercase();
    lower.contains("certificate") || lower.contains("unknownissuer")
}

async fn api_error(response: Response) -> CliError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    error_answer(status, &text)
}

/// The error of a non-2xx answer with body `text`: the server's message, exit 2 for a 4xx (but
/// 409, a conflict with the state of things), 1 otherwise.
pub(crate) fn error_answer(status: StatusCode, text: &str) -> CliError {
    let message = match serde_json::from_str::<ApiError>(text) {
        Ok(error) if !error.errors.is_empty() => {
            let mut lines: Vec<String> = error.errors.iter().map(ToString::to_string).collect();
            lines.push("error: the file was rejected; nothing was stored".into());
            lines.join("\n")
        }
        Ok(error) => error.error,
        Err(_) => format!("server answered {status}: {text}"),
    };
    if status.is_client_error() && status != StatusCode::CONFLICT {
        CliError::bad_input(message)
    } else {
        CliError::failed(message)
    }
}

/// A streamed answer read one line at a time (newline-delimited JSON: progress, events).
pub struct ResponseLines {
    chunks:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: Vec<u8>,
}

impl ResponseLines {
    pub fn new(response: Response) -> ResponseLines {
        ResponseLines {
            chunks: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
        }
    }

    /// The next whole line (with its newline), or `None` when the server ended the answer.
    pub async fn next(&mut self) -> CliResult<Option<Vec<u8>>> {
        use futures_util::StreamExt;
        loop {
            if let Some(newline) = self.buffer.iter().position(|byte| *byte == b'\n') {
                return Ok(Some(self.buffer.drain(..=newline).collect()));
            }
            match self.chunks.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk.map_err(|error| {
                    CliError::failed(format!("lost the connection to the server: {error}"))
                })?),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_recognised() {
        for (url, loopback) in [
            ("http://127.0.0.1:7400", true),
            ("http://127.1.2.3:7400", true),
            ("http://localhost:7400", true),
            ("https://[::1]:7400", true),
            ("http://10.0.0.1:7400", false),
            ("https://cj.example.com", false),
        ] {
            assert_eq!(
                is_loopback(&reqwest::Url::parse(url).unwrap()),
                loopback,
                "{url}"
            );
        }
    }

    #[test]
    fn reqwest_takes_the_shared_tls_configuration() {
        // Only a rustls of reqwest's own version is taken; another would fail `build`.
        if let Err(error) = Client::new("https://127.0.0.1:1", "production", None, None) {
            panic!("{}", error.message);
        }
    }

    #[test]
    fn a_bad_ca_file_is_refused_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = Client::new("https://127.0.0.1:1", "production", None, Some(&path))
            .err()
            .unwrap();
        assert_eq!(error.exit_code, 2);
        assert!(
            error.message.contains("holds no PEM certificate"),
            "{}",
            error.message
        );
        let missing = dir.path().join("missing.pem");
        let error = Client::new("https://127.0.0.1:1", "production", None, Some(&missing))
            .err()
            .unwrap();
        assert!(
            error.message.contains("cannot read the CA certificate"),
            "{}",
            error.message
        );
    }
}
