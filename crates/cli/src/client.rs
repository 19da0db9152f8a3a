//! The HTTP client: JSON in and out, API errors turned into messages and exit codes.

use cj_api::{ApiError, USER_HEADER};
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
    base: String,
    pub env: String,
    user: String,
}

impl Client {
    pub fn new(server: &str, env: &str) -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Client {
            http: reqwest::Client::new(),
            base: server.trim_end_matches('/').to_owned(),
            env: env.to_owned(),
            user,
        }
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

    /// Sends the request; a non-2xx answer becomes an error with the server's message.
    pub async fn send(&self, request: RequestBuilder) -> CliResult<Response> {
        let response = request.send().await.map_err(|error| {
            if error.is_connect() {
                CliError::failed(format!(
                    "cannot reach the coding-job server at {}: is `coding-job dev` running? \
                     (choose another with --server or CODING_JOB_SERVER)",
                    self.base
                ))
            } else {
                CliError::failed(format!("request to {} failed: {error}", self.base))
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

async fn api_error(response: Response) -> CliError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let message = match serde_json::from_str::<ApiError>(&text) {
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
