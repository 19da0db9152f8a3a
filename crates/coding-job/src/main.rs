//! `coding-job`: one binary for the server, the agent and the CLI. This file only parses the
//! arguments and wires the pieces together; [`dev`] wires `dev` mode's.

mod certificates;
mod dev;
mod memory;
mod restore;
mod sim;

use std::io::Write;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use cj_agent::{RemoteOptions, run_remote};
use cj_cli::{
    AgentArgs, Command, DevArgs, HttpsArgs, RouterArgs, ServerArgs, SimArgs, StoreArg, StoreCommand,
};
use cj_net::TlsClient;
use cj_router::RouterConfig;
use cj_runtime::{ContainerRuntime, DockerRuntime, SimRuntime};
use cj_server::cluster::run_server;
use cj_server::config::ServerConfig;
use cj_server::startup::{ClusterOptions, ServerOptions, Started, StoreChoice};
use cj_server::tls::TlsFiles;
use cj_server::{AdminToken, AuthMode, RouteUrls, StateOptions};
use cj_store::{EtcdOptions, EtcdStore, EtcdTls};

use crate::dev::{DevOptions, run_dev};

fn main() {
    let cli = cj_cli::parse();
    // Offline, on a data directory: no runtime, no server.
    if let Command::Store(StoreCommand::Restore(args)) = cli.command {
        std::process::exit(restore::run(args));
    }
    // Text made from the command line's own definitions: nothing to connect to.
    match &cli.command {
        Command::Completion(args) => {
            cj_cli::manual::completion(args.shell, &mut std::io::stdout().lock());
            std::process::exit(0);
        }
        Command::Man => {
            let written = cj_cli::manual::man(&mut std::io::stdout().lock());
            std::process::exit(if written.is_ok() { 0 } else { 1 });
        }
        _ => {}
    }
    let long_lived = matches!(
        cli.command,
        Command::Dev(_)
            | Command::Server(_)
            | Command::Agent(_)
            | Command::Router(_)
            | Command::Sim(_)
    );
    if long_lived {
        memory::limit_arenas();
    }
    // One rustls provider for the whole process (the server's TLS and every HTTPS client).
    cj_server::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // The store's transactions and the engine's blocking calls run on these; a burst needs
        // a few, and every extra thread keeps its stack and allocator cache.
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .expect("failed to start the async runtime");
    let code = match cli.command {
        Command::Dev(args) => run_process(&runtime, dev(args)),
        Command::Server(args) => with_tls(cli.ca_cert.as_deref(), |tls| {
            run_process(&runtime, server(args, tls))
        }),
        Command::Agent(args) => with_tls(cli.ca_cert.as_deref(), |tls| {
            run_process(&runtime, agent(cli.server.clone(), tls, args))
        }),
        Command::Router(args) => with_tls(cli.ca_cert.as_deref(), |tls| {
            run_process(&runtime, router(cli.server.clone(), tls, args))
        }),
        Command::Sim(args) => with_tls(cli.ca_cert.as_deref(), |tls| {
            run_process(&runtime, simulate(cli.server.clone(), tls, args))
        }),
        _ => runtime.block_on(cj_cli::run(cli)),
    };
    std::process::exit(code);
}

/// Runs `process` with the TLS client for `--ca-cert`; a CA file that cannot be used is bad
/// input (exit 2), refused before anything starts.
fn with_tls(ca_cert: Option<&std::path::Path>, process: impl FnOnce(TlsClient) -> i32) -> i32 {
    match TlsClient::new(ca_cert) {
        Ok(tls) => process(tls),
        Err(error) => {
            eprintln!("error: {error}");
            2
        }
    }
}

/// Runs one of the long-lived processes (`dev`, `server`, `agent`) with logging; its exit code.
fn run_process(
    runtime: &tokio::runtime::Runtime,
    process: impl std::future::Future<Output = anyhow::Result<()>>,
) -> i32 {
    init_logging();
    memory::trim_periodically();
    match runtime.block_on(process) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal (as `--color` and NO_COLOR allow): a log file should read (and
    // grep) as plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(cj_cli::color::stderr_has_color())
        .with_writer(std::io::stderr)
        .init();
}

fn server_config(path: Option<&std::path::Path>) -> anyhow::Result<ServerConfig> {
    match path {
        Some(path) => ServerConfig::load(path),
        None => Ok(ServerConfig::default()),
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.router_listen.is_some() || args.https.tls_listen.is_none(),
        "--tls-listen is the router's: it needs --router-listen"
    );
    let options = DevOptions {
        server: ServerOptions {
            config: server_config(args.config.as_deref())?,
            auth: AuthMode::for_dev(&args.listen),
            public_read: args.public_read,
            data_dir: args.data_dir,
            listen: args.listen,
            tls: None,
            reset_admin_token: false,
            scheduling: scheduling(&args.placement),
            cluster: Default::default(),
        },
        router: args.router_listen.map(|listen| {
            let mut config =
                RouterConfig::new(listen, args.placement.domain.clone().unwrap_or_default());
            config.tls = tls_config(&args.https);
            config
        }),
        host_name: args.host_name.unwrap_or_else(system_host_name),
        resync_interval: Duration::from_secs(10),
    };
    run_dev(
        options,
        |started| announce("dev", started),
        shutdown_signal(),
    )
    .await
}

fn scheduling(args: &cj_cli::PlacementArgs) -> StateOptions {
    StateOptions {
        host_down_after: args.host_down_after,
        port_range: args.port_range.clone(),
        route_urls: args
            .domain
            .clone()
            .map(|domain| RouteUrls { domain, port: None }),
    }
}

/// The token in a `--token-file`, without surrounding whitespace.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the token file {}", path.display()))?
        .trim()
        .to_owned())
}

/// `coding-job router`: follows the server's route table and serves it until Ctrl-C, reporting
/// what it counts to the server.
async fn router(server: String, tls: TlsClient, args: RouterArgs) -> anyhow::Result<()> {
    let token = args
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    // The CLI's trust: web roots plus `--ca-cert`. No overall timeout: the table is a stream.
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls.config().clone())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("failed to make an HTTP client")?;
    let (tables, table) = tokio::sync::watch::channel(cj_api::routes::RouteTable::default());
    let mut config = RouterConfig::new(args.listen, args.domain.clone());
    config.access_log = !args.no_access_log;
    config.tls = tls_config(&args.https);
    // Certificates and challenges are kept through the server, shared by every router.
    let store: Arc<dyn cj_router::CertificateStore> = Arc::new(
        cj_router::ApiCertificateStore::new(&server, token.clone(), http.clone()),
    );
    let router = cj_router::Router::bind_with_store(config, table, Some(store)).await?;
    println!(
        "coding-job router: listening on http://{}, routes NAME.ENV.{} from {server}",
        router.local_addr(),
        args.domain
    );
    if let Some(address) = router.tls_addr() {
        println!("coding-job router: listening on https://{address}");
    }
    serve_metrics(args.metrics_listen).await?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}:{}", system_host_name(), router.local_addr().port()));
    let counts = router.counts_source();
    let (report_server, report_token, report_http) = (server.clone(), token.clone(), http.clone());
    tokio::spawn(async move {
        let every = cj_router::DEFAULT_REPORT_EVERY;
        cj_router::report_counts(
            &report_server,
            report_token,
            report_http,
            counts,
            name,
            every,
        )
        .await
    });
    tokio::spawn(async move { cj_router::follow_server(&server, token, http, tables).await });
    router.serve(shutdown_signal()).await
}

/// The router's HTTPS as `--tls-listen` and the rest say; `None` without `--tls-listen`.
fn tls_config(args: &HttpsArgs) -> Option<cj_router::TlsConfig> {
    let listen = args.tls_listen?;
    let files = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(cj_router::CertificateFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let acme = args.acme_directory.as_ref().map(|directory| {
        let mut acme = cj_router::AcmeConfig::new(directory.clone());
        acme.email = args.acme_email.clone();
        acme.ca_cert = args.acme_ca_cert.clone();
        acme.renew_before = args.acme_renew_before;
        acme
    });
    Some(cj_router::TlsConfig {
        listen,
        files,
        acme,
        redirect_http: args.redirect_http,
    })
}

/// `coding-job server`; `tls` is the trust for the other servers' certificates (`--ca-cert`),
/// which a server that does not lead forwards to.
async fn server(args: ServerArgs, tls: TlsClient) -> anyhow::Result<()> {
    let peer_tls = tls;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let options = ServerOptions {
        config: server_config(args.config.as_deref())?,
        data_dir: args.data_dir,
        listen: args.listen,
        tls,
        auth: AuthMode::Required,
        public_read: args.public_read,
        reset_admin_token: args.reset_admin_token,
        scheduling: scheduling(&args.placement),
        cluster: ClusterOptions {
            name: args.name,
            advertise: args.advertise,
            peer_tls: Some(peer_tls),
            store: match args.store {
                StoreArg::Embedded => StoreChoice::Embedded,
                StoreArg::Etcd { endpoints, tls } => {
                    let etcd_tls = etcd_tls(tls, args.etcd_ca_cert, args.etcd_cert, args.etcd_key)?;
                    match connect_etcd(&endpoints, tls, etcd_tls).await {
                        Some(store) => StoreChoice::Shared(store),
                        None => return Ok(()),
                    }
                }
            },
        },
    };
    run_server(
        options,
        |started| announce("server", started),
        shutdown_signal(),
    )
    .await
}

/// `--etcd-ca-cert`, `--etcd-cert`, `--etcd-key`: TLS to etcd (`etcds://`, or a CA given).
fn etcd_tls(
    etcds: bool,
    ca: Option<std::path::PathBuf>,
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> anyhow::Result<Option<EtcdTls>> {
    match ca {
        Some(ca) => Ok(Some(EtcdTls { ca, cert, key })),
        None if etcds || cert.is_some() => {
            anyhow::bail!(
                "TLS to etcd needs --etcd-ca-cert (the CA that signed etcd's certificate)"
            )
        }
        None => Ok(None),
    }
}

/// Connects to etcd, waiting (and saying so) while it does not answer; `None` if the process
/// is asked to stop meanwhile.
async fn connect_etcd(
    endpoints: &[String],
    etcds: bool,
    tls: Option<EtcdTls>,
) -> Option<Arc<dyn cj_store::Store>> {
    let scheme = if etcds || tls.is_some() {
        "https"
    } else {
        "http"
    };
    let urls: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{scheme}://{e}"))
        .collect();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut said = false;
    loop {
        let (attempt_urls, attempt_tls) = (urls.clone(), tls.clone());
        let connecting = tokio::task::spawn_blocking(move || {
            EtcdStore::connect(&attempt_urls, attempt_tls, EtcdOptions::default())
        });
        match connecting.await {
            Ok(Ok(store)) => {
                if said {
                    tracing::info!("etcd answers");
                }
                return Some(Arc::new(cj_store::OffWorker::new(store)));
            }
            Ok(Err(error)) if !said => {
                eprintln!("waiting for etcd at {}: {error}", urls.join(","));
                said = true;
            }
            Ok(Err(error)) => tracing::debug!(%error, "etcd does not answer yet"),
            Err(panicked) => tracing::error!("connecting to etcd failed: {panicked}"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = &mut shutdown => return None,
        }
    }
}

async fn agent(server: String, tls: TlsClient, args: AgentArgs) -> anyhow::Result<()> {
    let token = args
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    let host = args.name.unwrap_or_else(system_host_name);
    let options = RemoteOptions {
        server: server.clone(),
        token,
        host: host.clone(),
        advertise: args.advertise.map(|address| address.to_string()),
        labels: args.labels.into_iter().collect(),
        resync_interval: Duration::from_secs(10),
        stop_grace_seconds: 10,
        stats_interval: cj_agent::DEFAULT_STATS_INTERVAL,
        host_size: None,
        tls: Some(tls),
        artifact_cache: cj_agent::ArtifactCacheConfig {
            dir: args.artifact_cache,
            max_bytes: args.artifact_cache_size,
        },
    };
    if args.simulate {
        let runtime = SimRuntime::new();
        // Nothing is pulled: a simulated host has every image.
        runtime.set_all_images_present(true);
        println!("coding-job agent {host}: linking to {server}");
        println!("  engine: simulated (no Docker; its containers vanish with this process)");
        return run_agent(runtime, options, args.metrics_listen).await;
    }
    let runtime = DockerRuntime::connect_to(args.docker_host.as_deref())
        .await
        .context("failed to connect to Docker")?;
    println!("coding-job agent {host}: linking to {server}");
    run_agent(runtime, options, args.metrics_listen).await
}

/// `coding-job sim`: many simulated hosts linked to `server`, until Ctrl-C.
async fn simulate(server: String, tls: TlsClient, args: SimArgs) -> anyhow::Result<()> {
    let token = args
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    serve_metrics(args.metrics_listen).await?;
    let options = sim::SimOptions {
        server,
        token,
        tls,
        hosts: args.hosts,
        size: cj_agent::HostSize {
            cpus: args.cpu,
            memory_bytes: args.memory,
        },
        prefix: args.prefix,
        zones: args.zones,
        labels: args.labels,
    };
    sim::run_sim(options, shutdown_signal()).await
}

/// Serves the agent's own metrics if asked, then runs it on `runtime` until Ctrl-C.
async fn run_agent<R: ContainerRuntime>(
    runtime: R,
    options: RemoteOptions,
    metrics_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    serve_metrics(metrics_listen).await?;
    run_remote(Arc::new(runtime), options, shutdown_signal()).await?;
    Ok(())
}

/// `--metrics-listen`: the process's own series at `/metrics`, said where.
async fn serve_metrics(listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        let bound = cj_server::serve_metrics(listen).await?;
        println!("  metrics: http://{bound}/metrics");
    }
    Ok(())
}

/// The first stdout line says where the API listens (scripts and tests read it); the last
/// starts with `  try:`. Where the admin token is (when tokens are required) is said, never
/// the token itself.
fn announce(command: &str, started: &Started) {
    let url = &started.url;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "coding-job {command}: API listening on {url}");
    let _ = writeln!(out, "  data directory: {}", started.data_dir.display());
    let _ = writeln!(out, "  cluster id:     {}", started.cluster);
    let readers = if started.public_read {
        " (public read: no token needed to look)"
    } else {
        ""
    };
    let _ = writeln!(out, "  web UI:         {url}/{readers}");
    if let Some((address, domain)) = &started.router {
        let _ = writeln!(
            out,
            "  router:         http://{address} (routes: NAME.ENV.{domain}, NAME.{domain})"
        );
    }
    if let Some(address) = &started.router_tls {
        let _ = writeln!(out, "  router https:   https://{address}");
    }
    let token = match &started.admin_token {
        None => String::new(),
        Some(AdminToken::Cluster) => {
            let _ = writeln!(
                out,
                "  admin token:    the cluster's (its first server wrote admin.token in its data directory)"
            );
            " CODING_JOB_TOKEN=...".to_owned()
        }
        Some(admin_token) => {
            let (path, note) = match admin_token {
                AdminToken::Written(path) => (path, "(new; keep it secret)"),
                AdminToken::Kept { path, valid: true } => (path, ""),
                AdminToken::Kept { path, valid: false } => (
                    path,
                    "(no longer an admin token's: restart with --reset-admin-token for a new one)",
                ),
                AdminToken::Missing(path) => (
                    path,
                    "(missing: the admin tokens in the store still work; restart with \
                     --reset-admin-token to write a new one, which replaces the `admin` token's secret)",
                ),
                AdminToken::Cluster => unreachable!("answered above"),
            };
            let line = format!("  admin token:    {} {note}", path.display());
            let _ = writeln!(out, "{}", line.trim_end());
            format!(" CODING_JOB_TOKEN=$(cat {})", path.display())
        }
    };
    let _ = writeln!(
        out,
        "  try:            CODING_JOB_SERVER={url}{token} coding-job status"
    );
    let _ = out.flush();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("failed to watch SIGTERM");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down; containers keep running and are re-adopted on the next start");
}

fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
