//! `coding-job dev`: the server, one agent and the embedded store in one process, for one
//! machine. Every host name a config declares maps to this machine. The server part is the
//! one `coding-job server` runs (`cj_server::startup`); the agent is the one `coding-job agent`
//! runs, dialling this server's agent endpoint over loopback with a token valid for this process
//! only, so it gets in whether or not the server requires tokens. Composed here, in the binary,
//! because only the binary links both the server and the agent (with its container runtime).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cj_agent::{RemoteOptions, run_remote};
use cj_api::Role;
use cj_runtime::DockerRuntime;
use cj_server::RouteUrls;
use cj_server::startup::{self, ServerOptions, Started};

#[derive(Debug)]
pub struct DevOptions {
    pub server: ServerOptions,
    /// Run the router in this process too (`--router-listen`, `--domain`).
    pub router: Option<cj_router::RouterConfig>,
    /// This machine's name in `status`.
    pub host_name: String,
    pub resync_interval: Duration,
}

/// Where a started `dev` process can be reached.
pub type DevStarted = Started;

/// The name the in-process agent's token goes by (in the audit log, for instance).
const LOCAL_AGENT: &str = "dev-agent";

/// Runs until `shutdown` completes. `on_ready` is called once the API is listening.
pub async fn run_dev(
    options: DevOptions,
    on_ready: impl FnOnce(&DevStarted),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Its agent dials it over plain HTTP.
    anyhow::ensure!(
        options.server.tls.is_none(),
        "dev serves plain HTTP; use `coding-job server` for TLS"
    );
    let runtime = Arc::new(
        DockerRuntime::connect()
            .await
            .context("failed to connect to Docker")?,
    );
    let mut server = options.server;
    // The in-process agent keeps artifacts with the rest of dev's data.
    let artifact_dir = server.data_dir.join("artifacts");
    // The router binds first, so the URLs the server shows carry its real port.
    let (table_sender, table) = tokio::sync::watch::channel(cj_api::routes::RouteTable::default());
    // HTTPS's certificates are kept in this server's store, reached in process.
    let certificates = Arc::new(crate::certificates::ServerCertificates::default());
    let router = match options.router {
        Some(config) => {
            let domain = config.domain.clone();
            let store: Arc<dyn cj_router::CertificateStore> = certificates.clone();
            let router = cj_router::Router::bind_with_store(config, table, Some(store)).await?;
            server.scheduling.route_urls = Some(RouteUrls {
                domain: domain.clone(),
                port: Some(router.local_addr().port()).filter(|port| *port != 80),
            });
            Some((router, domain))
        }
        None => None,
    };
    let prepared = startup::prepare(server, Some(options.host_name.clone())).await?;
    certificates.attach(prepared.state.clone());
    let token = prepared
        .auth
        .process_token(LOCAL_AGENT, Role::Agent)
        .context("failed to make the local agent's token")?;
    // The in-process agent takes the same path as a remote one: it dials this server's agent
    // endpoint, over loopback.
    let agent = RemoteOptions {
        server: format!("http://{}", loopback(prepared.api())),
        token: Some(token.expose().to_owned()),
        host: options.host_name.clone(),
        advertise: None,
        labels: Default::default(),
        resync_interval: options.resync_interval,
        stop_grace_seconds: 10,
        stats_interval: cj_agent::DEFAULT_STATS_INTERVAL,
        host_size: None,
        // Plain HTTP on loopback.
        tls: None,
        artifact_cache: cj_agent::ArtifactCacheConfig {
            dir: artifact_dir,
            ..Default::default()
        },
    };
    tokio::spawn(async move {
        if let Err(error) = run_remote(runtime, agent, std::future::pending()).await {
            tracing::error!(%error, "the local agent stopped");
        }
    });
    // Ready means ready to run things: the local agent has joined and tasks waiting for a host
    // have been placed on it, so an `up` right after start does not find "no host is ready".
    let state = prepared.state.clone();
    let mut started = prepared.started().clone();
    // One shutdown for the API and the router.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    if let Some((router, domain)) = router {
        started.router = Some((router.local_addr(), domain));
        started.router_tls = router.tls_addr();
        let mut routes = state.routes.subscribe();
        tokio::spawn(async move {
            loop {
                let table = routes.borrow_and_update().as_ref().clone();
                if table_sender.send(table).is_err() || routes.changed().await.is_err() {
                    return;
                }
            }
        });
        // The in-process router's counts go straight into the server's book, every 2 s, as a
        // standalone router's come through `POST /v1/router/counts`.
        let counts = router.counts_source();
        let book_state = state.clone();
        tokio::spawn(async move {
            let started = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let mut ticks = tokio::time::interval(cj_router::DEFAULT_REPORT_EVERY);
            loop {
                ticks.tick().await;
                let report = counts.counts(DEV_ROUTER, &started);
                if let Err(error) = book_state.router_counts.record(report) {
                    tracing::warn!(%error, "cannot keep the router's counts");
                }
            }
        });
        let router_stopped = until_stopped(stopped.clone());
        tokio::spawn(async move {
            if let Err(error) = router.serve(router_stopped).await {
                tracing::error!(%error, "the router stopped");
            }
        });
    }
    let serving = tokio::spawn(prepared.serve(|_| {}, until_stopped(stopped)));
    let mut joined = state.links.subscribe_joined();
    let joined_in_time = tokio::time::timeout(LOCAL_AGENT_DEADLINE, async {
        while !state.links.hosts().contains(&options.host_name) {
            if joined.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    if joined_in_time.is_err() {
        tracing::warn!(
            "the local agent has not joined after {} s; serving anyway",
            LOCAL_AGENT_DEADLINE.as_secs()
        );
    }
    if let Err(error) = state.scheduler.republish().await {
        tracing::error!(%error, "failed to place tasks");
    }
    on_ready(&started);
    serving.await.context("the server task failed")?
}

/// The name the in-process router's counts go by.
const DEV_ROUTER: &str = "dev-router";

/// How long `dev` waits for its own agent before saying it is ready anyway.
const LOCAL_AGENT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// The address to reach a listener on from this machine: a wildcard address means loopback.
fn loopback(listening: SocketAddr) -> SocketAddr {
    let ip = match listening.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, listening.port())
}
