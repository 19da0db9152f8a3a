//! The client side of TLS, for every connection this binary dials to its server: the agent's
//! link, and the CLI's requests and WebSockets, so both trust exactly the same certificates.
//! A crate of its own so that the CLI dials as the agent does without linking the agent (and
//! its container runtime).
//! A [`TlsClient`] trusts the usual web roots plus those of a CA file (`--ca-cert`: PEM, one
//! certificate or several), with ring as the only cryptography provider: a second provider in
//! the process would make rustls refuse to choose one (see the root `Cargo.toml`).
//!
//! The CA file is read once, when the client is made, so a missing or malformed file is refused
//! at start rather than on every connection. [`dial`] opens the byte stream a WebSocket runs
//! over: TCP, then TLS when a client is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, CertificateError, RootCertStore};

pub use tokio_rustls::rustls::ClientConfig;

/// A byte stream to the server, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A CA file that cannot be used; each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read the CA certificate {}: {reason}", path.display())]
    Unreadable {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("the CA certificate file {} is not valid PEM: {reason}", path.display())]
    BadPem {
        path: PathBuf,
        reason: rustls::pki_types::pem::Error,
    },
    #[error("certificate {number} in {} cannot be trusted: {}", path.display(), anchor_problem(reason))]
    Unusable {
        path: PathBuf,
        /// Its place in the file, from 1.
        number: usize,
        reason: rustls::Error,
    },
}

/// Why a connection to the server could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        address: String,
        reason: std::io::Error,
    },
    #[error("{host} is not a host name or address a TLS certificate can be checked against")]
    ServerName { host: String },
    /// No trusted root vouches for the certificate: `--ca-cert` is missing or another CA's.
    #[error("the server's TLS certificate is not trusted ({reason}): {}", trust_hint(ca_file.as_deref()))]
    Untrusted {
        reason: rustls::Error,
        ca_file: Option<PathBuf>,
    },
    /// Trusted, but not for this connection (expired, or for another name).
    #[error(
        "the server's TLS certificate is refused ({reason}): it must be valid now and name the host of the server's URL"
    )]
    Refused { reason: rustls::Error },
    #[error("the TLS handshake failed: {reason}")]
    Handshake { reason: std::io::Error },
}

/// Why a certificate of the CA file is no trust anchor, in the file's terms (rustls's own words
/// speak of a peer's certificate).
fn anchor_problem(reason: &rustls::Error) -> String {
    match reason {
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
            "it is not a well-formed X.509 certificate".to_owned()
        }
        rustls::Error::InvalidCertificate(problem) => problem.to_string(),
        other => other.to_string(),
    }
}

/// What to do about a server certificate that is not trusted, in the same words wherever it is
/// said.
pub fn trust_hint(ca_file: Option<&Path>) -> String {
    match ca_file {
        None => "pass the server's CA certificate with --ca-cert FILE (or CODING_JOB_CA_CERT)"
            .to_owned(),
        Some(path) => format!(
            "is {} (--ca-cert) the certificate that signed it? (a self-signed one must not say \
             CA:TRUE)",
            path.display()
        ),
    }
}

/// The trust for dialling a server over TLS: the web roots plus the certificates of a CA file.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    /// Named in the hint when the server's certificate is not trusted.
    ca_file: Option<PathBuf>,
}

impl Default for TlsClient {
    /// The web roots only.
    fn default() -> Self {
        TlsClient {
            config: config(web_roots()),
            ca_file: None,
        }
    }
}

impl TlsClient {
    /// The rustls configuration, for an HTTP client that must trust what the link trusts.
    pub fn rustls_config(&self) -> ClientConfig {
        (*self.config).clone()
    }

    /// Trusts the web roots and, if given, every certificate in the PEM file `ca_file`.
    pub fn new(ca_file: Option<&Path>) -> Result<TlsClient, CaFileError> {
        let Some(path) = ca_file else {
            return Ok(TlsClient::default());
        };
        let mut roots = web_roots();
        for (index, certificate) in read_ca_file(path)?.into_iter().enumerate() {
            roots
                .add(certificate)
                .map_err(|reason| CaFileError::Unusable {
                    path: path.to_owned(),
                    number: index + 1,
                    reason,
                })?;
        }
        Ok(TlsClient {
            config: config(roots),
            ca_file: Some(path.to_owned()),
        })
    }

    /// The rustls configuration, for clients that make their own connections (reqwest).
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The CA file given, if any.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// TLS over `tcp` to `host` (a name or an address, IPv6 with or without brackets), whose
    /// certificate must be trusted and name it.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DialError> {
        let host = unbracketed(host);
        let name = ServerName::try_from(host.to_owned()).map_err(|_| DialError::ServerName {
            host: host.to_owned(),
        })?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|error| self.handshake_error(error))
    }

    fn handshake_error(&self, error: std::io::Error) -> DialError {
        let rustls_error = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned();
        match rustls_error {
            Some(
                reason @ rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                    | CertificateError::BadSignature
                    // webpki's other complaints about the chain, e.g. a CA certificate served
                    // as the server's own.
                    | CertificateError::Other(_),
                ),
            ) => DialError::Untrusted {
                reason,
                ca_file: self.ca_file.clone(),
            },
            Some(reason @ rustls::Error::InvalidCertificate(_)) => DialError::Refused { reason },
            _ => DialError::Handshake { reason: error },
        }
    }
}

/// Opens a byte stream to `host:port`: TCP (without Nagle's delay, as the link's frames are
/// small and interactive), then TLS with `tls` if given.
pub async fn dial(
    host: &str,
    port: u16,
    tls: Option<&TlsClient>,
) -> Result<Box<dyn Io>, DialError> {
    let address = unbracketed(host);
    let tcp = TcpStream::connect((address, port))
        .await
        .map_err(|reason| DialError::Connect {
            address: format!("{host}:{port}"),
            reason,
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(match tls {
        Some(tls) => Box::new(tls.connect(address, tcp).await?),
        None => Box::new(tcp),
    })
}

/// The certificates of a PEM file: at least one, every one well formed.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let pem = std::fs::read(path).map_err(|reason| CaFileError::Unreadable {
        path: path.to_owned(),
        reason,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| CaFileError::BadPem {
            path: path.to_owned(),
            reason,
        })?;
    if certificates.is_empty() {
        return Err(CaFileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

fn web_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// `[::1]` -> `::1`: URLs bracket IPv6 addresses, sockets and certificates do not.
fn unbracketed(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(contents: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        if let Some(contents) = contents {
            std::fs::write(&path, contents).unwrap();
        }
        let error = TlsClient::new(Some(&path)).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        error
    }

    #[test]
    fn a_ca_file_that_cannot_be_used_is_refused_naming_the_file_and_the_problem() {
        assert!(refused(None).starts_with("cannot read the CA certificate"));
        assert!(refused(Some("not a certificate")).contains("holds no PEM certificate"));
        let key_only = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(refused(Some(key_only)).contains("holds no PEM certificate"));
        let truncated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(refused(Some(truncated)).contains("is not valid PEM"));
        let not_der = "-----BEGIN CERTIFICATE-----\nbm90IERFUg==\n-----END CERTIFICATE-----\n";
        assert!(refused(Some(not_der)).contains("certificate 1 in"));
    }

    /// A TLS server on loopback with a self-signed certificate for 127.0.0.1 (accepting one
    /// connection), and that certificate as PEM.
    async fn server() -> (u16, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key =
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key.into())
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        (port, certified.cert.pem())
    }

    #[tokio::test]
    async fn a_server_is_trusted_through_any_certificate_of_the_ca_file_and_not_without() {
        let (port, certificate) = server().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let unrelated = rcgen::generate_simple_self_signed(vec!["other.example".to_owned()])
            .unwrap()
            .cert
            .pem();
        std::fs::write(&path, format!("{unrelated}{certificate}")).unwrap();

        let trusting = TlsClient::new(Some(&path)).unwrap();
        dial("127.0.0.1", port, Some(&trusting)).await.unwrap();

        let error = dial("127.0.0.1", port, Some(&TlsClient::default()))
            .await
            .err()
            .unwrap();
        assert!(matches!(error, DialError::Untrusted { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("not trusted"), "{message}");
        assert!(message.contains("--ca-cert FILE"), "{message}");

        std::fs::write(&path, unrelated).unwrap();
        let other = TlsClient::new(Some(&path)).unwrap();
        let message = dial("127.0.0.1", port, Some(&other))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}
