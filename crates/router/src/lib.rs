//! The wildcard-domain HTTP router: `NAME.ENV.DOMAIN` (and `NAME.DOMAIN` for `production`)
//! reaches the backends the server's route table lists for that route, so an environment's
//! addresses never change while its tasks come and go.
//!
//! - [`Router`] binds, then serves until told to stop; [`run`] does both.
//! - The table comes in on a `watch` channel: [`follow_server`] fills one from the server's
//!   `GET /v1/routes?watch=true`; `dev` can fill one from its own state. Each table is built
//!   once into lookup maps and swapped in whole; requests in progress keep the one they
//!   started with, so a backend leaving the table never cuts a request short.
//! - The bare domain answers a status page of every route with its counters.
//! - [`report_counts`] sends the per-version counters to the server every few seconds.
//! - With [`TlsConfig`], HTTPS too: a certificate per routed name from ACME, kept in a
//!   [`CertificateStore`] the routers share, or one given (a wildcard); see `tls`.
//!
//! Modules: `host` (which route a Host names), `table` (the table in force, paths, balancing),
//! `canary` (weighted canaries: which side a request goes to), `proxy` (forwarding, retries,
//! timeouts, upgrades), `headers` (hop-by-hop and `X-Forwarded-*`), `body` (request bodies:
//! buffering for retries, the size limit), `pages` (the router's own answers), `stats`
//! (counters), `exposition` (`/metrics`), `report` (counts to the server), `serve` (listeners
//! and shutdown), `follow` (the server's table stream), `tls` (HTTPS and its certificates).

mod body;
mod canary;
mod exposition;
mod follow;
mod headers;
mod host;
mod pages;
mod proxy;
mod report;
mod serve;
mod stats;
mod table;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cj_api::routes::RouteTable;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cj_api::routes::{LATENCY_BUCKETS_MS, VersionCounts};
pub use follow::follow_server;
pub use report::{CountsSource, DEFAULT_REPORT_EVERY, report_counts};
pub use stats::{Counts, RouteStatus, StatusPage};

pub use tls::{
    AcmeConfig, ApiCertificateStore, CertificateFiles, CertificateStore, MemoryCertificateStore,
    TlsConfig,
};

use crate::proxy::Proxy;
use crate::tls::Tls;

/// How a router listens and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Where to listen (port 0: any free port; see [`Router::local_addr`]).
    pub listen: SocketAddr,
    /// The wildcard domain: routes are `NAME.ENV.DOMAIN` and `NAME.DOMAIN`.
    pub domain: String,
    /// One `info` line per request on target `coding_job::access`.
    pub access_log: bool,
    /// How long opening a connection to a backend may take before the next one is tried.
    pub connect_timeout: Duration,
    /// How long requests in progress may go on after shutdown began.
    pub shutdown_grace: Duration,
    /// HTTPS besides plain HTTP; `None`: plain HTTP only.
    pub tls: Option<TlsConfig>,
}

impl RouterConfig {
    /// A router for `domain` on `listen`, with the access log on, 2 s to connect to a backend
    /// and 5 s of shutdown grace.
    pub fn new(listen: SocketAddr, domain: impl Into<String>) -> RouterConfig {
        RouterConfig {
            listen,
            domain: domain.into(),
            access_log: true,
            connect_timeout: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// A bound router, not serving yet.
pub struct Router {
    listener: TcpListener,
    local_addr: SocketAddr,
    proxy: Arc<Proxy>,
    table: watch::Receiver<RouteTable>,
    shutdown_grace: Duration,
    tls: Option<(TcpListener, Tls)>,
}

impl Router {
    /// Binds `config.listen` and puts the table `table` holds now in force. Certificates from
    /// ACME need a store: see [`Router::bind_with_store`].
    pub async fn bind(
        config: RouterConfig,
        table: watch::Receiver<RouteTable>,
    ) -> anyhow::Result<Router> {
        Router::bind_with_store(config, table, None).await
    }

    /// [`Router::bind`], with HTTPS's certificates and challenges kept in `store`.
    pub async fn bind_with_store(
        config: RouterConfig,
        mut table: watch::Receiver<RouteTable>,
        store: Option<Arc<dyn CertificateStore>>,
    ) -> anyhow::Result<Router> {
        let domain = host::normalize_domain(&config.domain);
        anyhow::ensure!(
            !domain.is_empty(),
            "the router needs a domain (routes are NAME.ENV.DOMAIN)"
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let tls = match &config.tls {
            Some(tls_config) => {
                let tls = Tls::prepare(tls_config, &domain, store)?;
                let listener = TcpListener::bind(tls_config.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", tls_config.listen))?;
                Some((listener, tls))
            }
            None => None,
        };
        let proxy = Proxy::new(domain, config.access_log, config.connect_timeout);
        proxy.apply(&table.borrow_and_update());
        Ok(Router {
            listener,
            local_addr,
            proxy: Arc::new(proxy),
            table,
            shutdown_grace: config.shutdown_grace,
            tls,
        })
    }

    /// The address the router listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle on the router's counters that outlives [`Router::serve`]'s taking the router,
    /// for [`report_counts`].
    pub fn counts_source(&self) -> CountsSource {
        CountsSource {
            proxy: Arc::clone(&self.proxy),
        }
    }

    /// The address the router listens on for HTTPS, if it does.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// What the status page shows now.
    pub fn status(&self) -> StatusPage {
        let table = self.proxy.table();
        StatusPage {
            domain: self.proxy.domain().to_owned(),
            generation: table.generation,
            env: None,
            routes: table.status(self.proxy.domain(), None),
        }
    }

    /// Serves until `shutdown` completes; then stops accepting, and returns once the requests
    /// in progress have finished or the shutdown grace is over.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr, domain = %self.proxy.domain(), "router listening");
        let tls = self.tls.map(|(listener, mut tls)| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "router listening for HTTPS");
            }
            tls.start(self.table.clone());
            (listener, Arc::new(tls))
        });
        serve::serve(
            serve::Listeners {
                plain: self.listener,
                tls,
            },
            self.proxy,
            self.table,
            self.shutdown_grace,
            shutdown,
        )
        .await;
        Ok(())
    }
}

/// Binds and serves until `shutdown` completes (see [`Router::serve`]).
pub async fn run(
    config: RouterConfig,
    table: watch::Receiver<RouteTable>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    Router::bind(config, table).await?.serve(shutdown).await
}
