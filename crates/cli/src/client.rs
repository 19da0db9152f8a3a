//! The HTTP client: JSON in and out, API errors turned into messages and exit codes. It sends
//! the token (`--token`) as `Authorization: Bearer`, trusts an extra CA (`--ca-cert`, through
//! the TLS configuration agents use too, `cj_net`), and never sends loopback traffic
//! through a proxy (`HTTP_PROXY` is for the network, and a proxy would see the token).
//! With several servers, a request that cannot connect moves on to the next (`servers`).
//! WebSockets (`exec`) are `websocket`'s, with the same settings.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use cj_api::{ApiError, USER_HEADER};
use cj_net::{TlsClient, trust_hint};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::servers::Servers;

/// How long making a connection (TCP and TLS) may take before the server counts as
/// unreachable, and the next one, if any, is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// `--server`: one or several, and which answered last.
    pub(crate) servers: Servers,
    pub env: String,
    pub(crate) user: String,
    /// The token, for connections reqwest does not make (WebSockets).
    pub(crate) token: Option<String>,
    /// The web roots plus `--ca-cert`: reqwest's TLS, and the WebSockets'.
    pub(crate) tls: TlsClient,
}

impl Client {
    /// A client of the server at `server` (or of the servers, separated by commas), acting on
    /// `env`, sending `token` if given and trusting the certificates in `ca_cert` besides the
    /// usual roots.
    pub fn new(
        server: &str,
        env: &str,
        token: Option<&str>,
        ca_cert: Option<&Path>,
    ) -> CliResult<Self> {
        let user = cj_api::local_user();
        let servers = Servers::parse(server).map_err(CliError::bad_input)?;
        let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        // One setting for the whole client: with a loopback server in the list, no proxy at
        // all, so the token never goes through one.
        let loopback = servers
            .all()
            .iter()
            .any(|url| reqwest::Url::parse(url).is_ok_and(|url| is_loopback(&url)));
        if loopback {
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
            servers,
            env: env.to_owned(),
            user,
            token: token.map(|token| token.trim().to_owned()),
            tls,
        })
    }

    /// The server requests go to now: the first given, or the one that answered last.
    pub(crate) fn base(&self) -> &str {
        self.servers.current()
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base()))
            .header(USER_HEADER, &self.user)
    }

    pub fn post(&self, path: &str, body: &impl Serialize) -> RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base()))
            .header(USER_HEADER, &self.user)
            .json(body)
    }

    pub fn put(&self, path: &str, body: &impl Serialize) -> RequestBuilder {
        self.http
            .put(format!("{}{path}", self.base()))
            .header(USER_HEADER, &self.user)
            .json(body)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base()))
            .header(USER_HEADER, &self.user)
    }

    /// Sends the request; a non-2xx answer becomes an error with the server's message. A
    /// server that cannot be connected to is passed over for the next (see `servers`).
    pub async fn send(&self, request: RequestBuilder) -> CliResult<Response> {
        let request = request.build().map_err(|error| {
            CliError::bad_input(format!("cannot make the request: {}", chain(&error)))
        })?;
        let mut unreachable: Vec<(String, reqwest::Error)> = Vec::new();
        for (index, server) in self.servers.in_turn() {
            // Only a request with a streamed body cannot be copied: it is sent once.
            let Some(mut attempt) = request.try_clone() else {
                let response = self.http.execute(request).await;
                return self.answer(server, response).await;
            };
            if let Some(url) = self.servers.moved(attempt.url().as_str(), server) {
                *attempt.url_mut() = reqwest::Url::parse(&url).map_err(|error| {
                    CliError::bad_input(format!("invalid server URL {url}: {error}"))
                })?;
            }
            match self.http.execute(attempt).await {
                // Nothing was sent: the next server may take it.
                Err(error) if error.is_connect() => unreachable.push((server.to_owned(), error)),
                response => {
                    if response.is_ok() {
                        self.servers.answered(index);
                    }
                    return self.answer(server, response).await;
                }
            }
        }
        Err(self.none_answered(unreachable))
    }

    /// A server's answer (or the failure of a request that was made): the response if it
    /// succeeded, else an error with the server's message.
    async fn answer(
        &self,
        server: &str,
        response: reqwest::Result<Response>,
    ) -> CliResult<Response> {
        let response = response.map_err(|error| self.failed_at(server, &error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(response).await)
    }

    /// Why a request to `server` failed, with what to do about it.
    fn failed_at(&self, server: &str, error: &reqwest::Error) -> CliError {
        let cause = chain(error);
        if is_certificate_problem(&cause) {
            CliError::failed(format!(
                "the TLS certificate of {server} {} ({cause}): {}",
                self.untrusted_verdict(),
                trust_hint(self.tls.ca_file())
            ))
        } else if error.is_connect() {
            CliError::failed(format!(
                "cannot reach the coding-job server at {server}: is `coding-job dev` (or \
                 `coding-job server`) running? (choose another with --server or \
                 CODING_JOB_SERVER)"
            ))
        } else {
            CliError::failed(format!("request to {server} failed: {cause}"))
        }
    }

    fn untrusted_verdict(&self) -> &'static str {
        if self.tls.ca_file().is_some() {
            "is not accepted"
        } else {
            "is not trusted"
        }
    }

    /// The error when no server could be connected to: one server's own, or every server
    /// with its reason.
    fn none_answered(&self, mut unreachable: Vec<(String, reqwest::Error)>) -> CliError {
        if unreachable.len() == 1 {
            let (server, error) = unreachable.remove(0);
            return self.failed_at(&server, &error);
        }
        let reasons: Vec<String> = unreachable
            .iter()
            .map(|(server, error)| {
                let cause = chain(error);
                let reason = if is_certificate_problem(&cause) {
                    format!(
                        "its TLS certificate {} ({}): {}",
                        self.untrusted_verdict(),
                        root_cause(error),
                        trust_hint(self.tls.ca_file())
                    )
                } else if error.is_timeout() {
                    format!("no connection within {}s", CONNECT_TIMEOUT.as_secs())
                } else {
                    root_cause(error)
                };
                format!("{server} ({reason})")
            })
            .collect();
        CliError::failed(format!(
            "cannot reach any of the coding-job servers: {}; are they running? (choose others \
             with --server or CODING_JOB_SERVER)",
            reasons.join(", ")
        ))
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

/// The innermost cause of an error, which says what went wrong in the fewest words
/// (`Connection refused (os error 111)`).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
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

    /// A server on loopback that answers every request with `status` and counts them.
    async fn answering(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                counted.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"error":"answered","code":"internal"}"#;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (url, requests)
    }

    /// A loopback address nothing listens on: connections to it are refused.
    fn refusing() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    #[tokio::test]
    async fn a_server_that_refuses_is_passed_over_and_the_one_that_answers_kept() {
        use std::sync::atomic::Ordering;
        let (live, requests) = answering(200).await;
        let refused = refusing();
        let client = Client::new(&format!("{refused},{live}"), "production", None, None).unwrap();
        client.send(client.get("/v1/info")).await.unwrap();
        assert_eq!(client.base(), live);
        // Later requests go straight to it.
        client.send(client.post("/v1/push", &"x")).await.unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_is_final_whatever_its_status() {
        use std::sync::atomic::Ordering;
        let (failing, failed) = answering(503).await;
        let (live, untouched) = answering(200).await;
        let client = Client::new(&format!("{failing},{live}"), "production", None, None).unwrap();
        let error = client.send(client.post("/v1/up", &"x")).await.unwrap_err();
        assert_eq!((error.message.as_str(), error.exit_code), ("answered", 1));
        assert_eq!(failed.load(Ordering::SeqCst), 1);
        assert_eq!(untouched.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn when_no_server_answers_every_one_is_named() {
        let (first, second) = (refusing(), refusing());
        let client = Client::new(&format!("{first},{second}"), "production", None, None).unwrap();
        let error = client.send(client.get("/v1/info")).await.unwrap_err();
        assert_eq!(error.exit_code, 1);
        assert!(
            error
                .message
                .starts_with("cannot reach any of the coding-job servers:"),
            "{}",
            error.message
        );
        for url in [&first, &second] {
            assert!(error.message.contains(url.as_str()), "{}", error.message);
        }
        // One server: its own message, as always.
        let client = Client::new(&first, "production", None, None).unwrap();
        let error = client.send(client.get("/v1/info")).await.unwrap_err();
        assert!(
            error
                .message
                .starts_with(&format!("cannot reach the coding-job server at {first}")),
            "{}",
            error.message
        );
    }

    #[tokio::test]
    async fn a_websocket_passes_over_a_server_that_refuses() {
        let (live, _) = answering(409).await;
        let (first, second) = (refusing(), refusing());
        let client = Client::new(&format!("{first},{live}"), "production", None, None).unwrap();
        let url = client.url("/v1/exec?cmd=true").unwrap();
        // The second server answered the upgrade (with a refusal): that answer is final.
        let error = client.websocket(&url, 1024).await.err().unwrap();
        assert_eq!(error.message, "answered");
        assert_eq!(client.base(), live);
        let client = Client::new(&format!("{first},{second}"), "production", None, None).unwrap();
        let url = client.url("/v1/exec?cmd=true").unwrap();
        let error = client.websocket(&url, 1024).await.err().unwrap();
        for url in [&first, &second] {
            assert!(error.message.contains(url.as_str()), "{}", error.message);
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
