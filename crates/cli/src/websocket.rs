//! WebSocket connections to the API (`exec`), with the HTTP client's settings: the server's
//! URL (`http` becomes `ws`, `https` `wss`), the token as `Authorization: Bearer`, the user
//! header, and for TLS the usual web roots plus `--ca-cert` (the client's `TlsClient`, which
//! reqwest uses too; the stream is dialled as agents dial theirs, `cj_net::dial`). No
//! proxy is used. A refused upgrade is the server's JSON error, as for any request. With
//! several servers, one that cannot be connected to is passed over for the next, as requests
//! are (`servers`).

use cj_net::{DialError, Io, dial};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request as WebSocketRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::{CONNECT_TIMEOUT, CliError, CliResult, Client, error_answer};

pub type Socket = WebSocketStream<Box<dyn Io>>;

impl Client {
    /// The API URL of `path`, to add a query to.
    pub fn url(&self, path: &str) -> CliResult<reqwest::Url> {
        reqwest::Url::parse(&format!("{}{path}", self.base()))
            .map_err(|error| CliError::bad_input(format!("invalid server URL: {error}")))
    }

    /// Opens a WebSocket to `url` (an API URL, `http` or `https`, made with [`Client::url`]);
    /// messages from the server are at most `max_message` bytes.
    pub async fn websocket(&self, url: &reqwest::Url, max_message: usize) -> CliResult<Socket> {
        let mut unreachable = Vec::new();
        for (index, server) in self.servers.in_turn() {
            let url = match self.servers.moved(url.as_str(), server) {
                Some(moved) => reqwest::Url::parse(&moved)
                    .map_err(|error| CliError::bad_input(format!("invalid server URL: {error}")))?,
                None => url.clone(),
            };
            match self.dial_websocket(&url).await? {
                Ok((request, stream)) => {
                    self.servers.answered(index);
                    return self.upgrade(server, request, stream, max_message).await;
                }
                Err(reason) => unreachable.push(format!("{server} ({reason})")),
            }
        }
        let message = match unreachable.as_slice() {
            [only] => format!(
                "cannot reach the coding-job server at {only}: is `coding-job dev` (or \
                 `coding-job server`) running? (choose another with --server or \
                 CODING_JOB_SERVER)"
            ),
            all => format!(
                "cannot reach any of the coding-job servers: {}; are they running? (choose \
                 others with --server or CODING_JOB_SERVER)",
                all.join(", ")
            ),
        };
        Err(CliError::failed(message))
    }

    /// The WebSocket request for `url` and a stream to its server, or (inner `Err`) why no
    /// stream could be opened: the next server may be tried, as nothing was sent.
    async fn dial_websocket(
        &self,
        url: &reqwest::Url,
    ) -> CliResult<Result<(WebSocketRequest, Box<dyn Io>), String>> {
        let secure = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(CliError::bad_input(format!(
                    "invalid server URL: scheme {other}, expected http or https"
                )));
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| CliError::bad_input("invalid server URL: no host"))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let mut ws_url = url.clone();
        let _ = ws_url.set_scheme(if secure { "wss" } else { "ws" });
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|error| CliError::bad_input(format!("invalid server URL: {error}")))?;
        let headers = request.headers_mut();
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| CliError::bad_input("the token holds characters a header cannot"))?;
            value.set_sensitive(true);
            headers.insert("authorization", value);
        }
        if let Ok(user) = HeaderValue::from_str(&self.user) {
            headers.insert(cj_api::USER_HEADER, user);
        }
        let dialing = dial(&host, port, secure.then_some(&self.tls));
        match tokio::time::timeout(CONNECT_TIMEOUT, dialing).await {
            Err(_) => Ok(Err(format!(
                "no connection within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))),
            Ok(Ok(stream)) => Ok(Ok((request, stream))),
            Ok(Err(error @ DialError::ServerName { .. })) => {
                Err(CliError::bad_input(format!("invalid server URL: {error}")))
            }
            Ok(Err(DialError::Connect { reason, .. })) => Ok(Err(reason.to_string())),
            Ok(Err(error)) => Ok(Err(error.to_string())),
        }
    }

    /// The WebSocket handshake over `stream`: the server's answer, which is final.
    async fn upgrade(
        &self,
        server: &str,
        request: WebSocketRequest,
        stream: Box<dyn Io>,
        max_message: usize,
    ) -> CliResult<Socket> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = reqwest::StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
                let body = response
                    .body()
                    .as_ref()
                    .map(|body| String::from_utf8_lossy(body).into_owned())
                    .unwrap_or_default();
                Err(error_answer(status, &body))
            }
            Err(error) => Err(CliError::failed(format!(
                "the WebSocket to {server} failed: {error}"
            ))),
        }
    }
}
