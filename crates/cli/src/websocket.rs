//! WebSocket connections to the API (`exec`), with the HTTP client's settings: the server's
//! URL (`http` becomes `ws`, `https` `wss`), the token as `Authorization: Bearer`, the user
//! header, and for TLS the usual web roots plus `--ca-cert` (rustls with ring, as reqwest
//! uses). No proxy is used. A refused upgrade is the server's JSON error, as for any request.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::{CliError, CliResult, Client, error_answer, no_certificate, read_pem};

/// A byte stream, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Socket = WebSocketStream<Box<dyn Io>>;

impl Client {
    /// The API URL of `path`, to add a query to.
    pub fn url(&self, path: &str) -> CliResult<reqwest::Url> {
        reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|error| CliError::bad_input(format!("invalid server URL: {error}")))
    }

    /// Opens a WebSocket to `url` (an API URL, `http` or `https`); messages from the server
    /// are at most `max_message` bytes.
    pub async fn websocket(&self, url: &reqwest::Url, max_message: usize) -> CliResult<Socket> {
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
        let address = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((address, port)).await.map_err(|error| {
            CliError::failed(format!(
                "cannot reach the coding-job server at {} ({error}): is `coding-job dev` (or \
                 `coding-job server`) running? (choose another with --server or \
                 CODING_JOB_SERVER)",
                self.base
            ))
        })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if secure {
            Box::new(self.tls(tcp, address).await?)
        } else {
            Box::new(tcp)
        };
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
                "the WebSocket to {} failed: {error}",
                self.base
            ))),
        }
    }

    /// TLS to the server, verified against the web roots and `--ca-cert`.
    async fn tls(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> CliResult<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &self.ca_cert {
            let pem = read_pem(path)?;
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate.map_err(|_| no_certificate(path))?;
                roots
                    .add(certificate)
                    .map_err(|error| CliError::bad_input(format!("{}: {error}", path.display())))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| CliError::failed(format!("TLS: {error}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| CliError::bad_input(format!("invalid server name {host}")))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|error| {
                let hint = if self.ca_cert.is_some() {
                    "is --ca-cert the certificate that signed it?"
                } else {
                    "pass the server's CA certificate with --ca-cert FILE or CODING_JOB_CA_CERT"
                };
                CliError::failed(format!(
                    "the TLS connection to {} failed ({error}): {hint}",
                    self.base
                ))
            })
    }
}
