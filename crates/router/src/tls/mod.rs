//! HTTPS: the router's TLS listener (HTTP/1.1 and HTTP/2 by ALPN), with a certificate per
//! routed name obtained and renewed through ACME and kept in a store every router shares, or
//! a certificate and key it is given (a wildcard), or both (the given one for the names it
//! covers). A name without a usable certificate still completes its handshake, with a
//! self-signed certificate, and is answered a 503 page saying why.
//!
//! Modules: `store` (what routers share: [`CertificateStore`] and its implementations),
//! `material` (PEM to rustls, expiry, names, the fallback), `certificates` (the ones in force,
//! chosen by SNI), `acme` (ordering one name), `manager` (which names, when to order and
//! renew), `listener` (accepting TLS connections), `plain` (what the HTTP listener answers
//! itself: challenges and the redirect to HTTPS).

mod acme;
mod certificates;
pub(crate) mod listener;
mod manager;
mod material;
pub(crate) mod plain;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cj_api::routes::RouteTable;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

pub use acme::AcmeError;
pub use store::{ApiCertificateStore, CertificateStore, MemoryCertificateStore, StoreError};

pub(crate) use certificates::Certificates;

/// How the router serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Where to listen for TLS (`--tls-listen`).
    pub listen: SocketAddr,
    /// A certificate chain and its key (`--tls-cert`, `--tls-key`), served for every name it
    /// covers (a wildcard `*.DOMAIN` covers `NAME.DOMAIN`).
    pub files: Option<CertificateFiles>,
    /// Certificates from an ACME directory for the names the files do not cover.
    pub acme: Option<AcmeConfig>,
    /// The plain listener answers every request but ACME challenges with a redirect to HTTPS.
    pub redirect_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The directory URL (`https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// A CA to trust for the directory besides the web roots (a private one, such as pebble).
    pub ca_cert: Option<PathBuf>,
    /// Renew a certificate when less than this is left of it (30 days by default).
    pub renew_before: Duration,
    /// How often each name's certificate is looked at (for renewal, and for one another router
    /// renewed).
    pub check_interval: Duration,
    /// The first wait after a failed order; doubled after each failure up to an hour.
    pub first_retry: Duration,
}

impl AcmeConfig {
    /// A directory with the defaults: renew 30 days before expiry, look every 10 minutes,
    /// retry a failed name after 10 s, then less and less often.
    pub fn new(directory: impl Into<String>) -> AcmeConfig {
        AcmeConfig {
            directory: directory.into(),
            email: None,
            ca_cert: None,
            renew_before: Duration::from_secs(30 * 24 * 3600),
            check_interval: Duration::from_secs(600),
            first_retry: Duration::from_secs(10),
        }
    }
}

/// HTTPS ready to serve: the listener's TLS configuration, the certificates it serves from,
/// and the store challenges are answered from.
pub(crate) struct Tls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) certificates: Arc<Certificates>,
    pub(crate) store: Option<Arc<dyn CertificateStore>>,
    pub(crate) redirect_http: bool,
    manager: Option<manager::Manager>,
}

impl Tls {
    /// Reads the given certificate and prepares ACME; nothing is ordered before [`Tls::start`].
    pub(crate) fn prepare(
        config: &TlsConfig,
        domain: &str,
        store: Option<Arc<dyn CertificateStore>>,
    ) -> anyhow::Result<Tls> {
        let given = match &config.files {
            Some(files) => Some(read_files(files)?),
            None => None,
        };
        let certificates = Arc::new(Certificates::new(given, config.acme.is_some()));
        // ring, as everywhere in this program: when some other crate brings rustls' aws-lc-rs
        // feature too, rustls would not pick one by itself.
        let ring = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(ring)
            .with_safe_default_protocol_versions()
            .context("rustls refused its default protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certificates) as _);
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let manager = match &config.acme {
            Some(acme) => {
                let store = store.clone().context(
                    "certificates from ACME need a store to keep them in (the server's)",
                )?;
                let http = acme_client(acme.ca_cert.as_deref())?;
                Some(manager::Manager {
                    certificates: Arc::clone(&certificates),
                    store,
                    acme: Some(Arc::new(acme::Acme::new(
                        acme.directory.clone(),
                        acme.email.as_deref(),
                        http,
                    ))),
                    domain: domain.to_owned(),
                    timing: manager::Timing {
                        renew_before: acme.renew_before,
                        check_interval: acme.check_interval,
                        first_retry: acme.first_retry,
                    },
                    holder: holder_name(),
                })
            }
            None => None,
        };
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            certificates,
            store,
            redirect_http: config.redirect_http,
            manager,
        })
    }

    /// Starts keeping the certificates of the names `table` routes current.
    pub(crate) fn start(&mut self, table: watch::Receiver<RouteTable>) {
        if let Some(manager) = self.manager.take() {
            tokio::spawn(manager.run(table));
        }
    }
}

fn read_files(files: &CertificateFiles) -> anyhow::Result<material::Loaded> {
    let chain = std::fs::read_to_string(&files.cert)
        .with_context(|| format!("cannot read {}", files.cert.display()))?;
    let key = std::fs::read_to_string(&files.key)
        .with_context(|| format!("cannot read {}", files.key.display()))?;
    material::load(&chain, &key).with_context(|| {
        format!(
            "cannot use {} with {}",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// The ACME client's HTTP: the web roots, plus `ca_cert` for a private directory.
fn acme_client(ca_cert: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", path.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().context("failed to make the ACME client")
}

/// A random name for this router process in the store's leases.
fn holder_name() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    let random: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("router-{random}")
}
