//! What `coding-job server` and `coding-job dev` share at start: the embedded store in the data
//! directory, the cluster id, the server state with its desired state loaded, deployments
//! resumed, tokens (the first admin token when they are required), the audit log, TLS, the
//! listener, and serving the API until shutdown. `server` is exactly this ([`run_server`]);
//! `dev` is this plus its in-process agent (`dev`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cj_store::{EmbeddedStore, OffWorker, Store, StoreJson};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::edge::admin_token::{self, AdminToken};
use crate::edge::audit::AuditLog;
use crate::edge::auth::{Auth, AuthMode};
use crate::edge::tls::{self, TlsFiles};
use crate::keys;
use crate::state::ServerState;

#[derive(Debug)]
pub struct ServerOptions {
    /// The embedded store (`store.redb`), the audit log (`audit.redb`), `admin.token`.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub config: ServerConfig,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    pub auth: AuthMode,
    /// Requests without a token may read everything the `read` role may (`--public-read`).
    pub public_read: bool,
    /// Give the token named `admin` a new secret, written to `admin.token`.
    pub reset_admin_token: bool,
    /// Host loss, `port: auto` ports, the routers' domain.
    pub scheduling: crate::state::StateOptions,
    /// Which store, and how this server is known to the others on it.
    pub cluster: ClusterOptions,
}

/// How a server shares its store with others.
#[derive(Default)]
pub struct ClusterOptions {
    /// Its name among the servers (`--name`; default: the address it listens on).
    pub name: Option<String>,
    /// Where the others (and `coding-job servers`) reach its API (`--advertise`; default: the
    /// address it listens on).
    pub advertise: Option<String>,
    /// The trust for the other servers' certificates, when it forwards to the leader.
    pub peer_tls: Option<cj_net::TlsClient>,
    pub store: StoreChoice,
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterOptions")
            .field("name", &self.name)
            .field("advertise", &self.advertise)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Where the server keeps its state.
#[derive(Default)]
pub enum StoreChoice {
    /// `store.redb` and `audit.redb` in the data directory: one server.
    #[default]
    Embedded,
    /// A store shared with other servers (the audit log stays in the data directory).
    Shared(Arc<dyn Store>),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Embedded => formatter.write_str("Embedded"),
            StoreChoice::Shared(_) => formatter.write_str("Shared"),
        }
    }
}

/// Where a started server can be reached, for the lines it prints.
#[derive(Debug, Clone)]
pub struct Started {
    pub api: SocketAddr,
    /// `http://ADDRESS` or `https://ADDRESS`.
    pub url: String,
    pub cluster: String,
    pub data_dir: PathBuf,
    /// When tokens are required: what became of the admin token file.
    pub admin_token: Option<AdminToken>,
    /// `dev`'s router, when it runs one: where it listens and its domain.
    pub router: Option<(SocketAddr, String)>,
    /// Where that router listens for HTTPS, when it does.
    pub router_tls: Option<SocketAddr>,
    /// Anyone may read without a token.
    pub public_read: bool,
}

/// A server ready to serve: everything loaded, the port bound, nothing answered yet.
pub struct Prepared {
    pub state: Arc<ServerState>,
    pub auth: Arc<Auth>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    started: Started,
}

/// Opens the data directory and loads everything; binds the listener. `local_host` is the
/// host of the process's own agent, if it has one.
pub async fn prepare(
    options: ServerOptions,
    local_host: Option<String>,
) -> anyhow::Result<Prepared> {
    let opened = open(&options)?;
    let listener = bind(options.listen).await?;
    let (state, auth) = lead(&opened, &options, local_host).await?;
    let started = opened.started(&options, &listener)?;
    Ok(Prepared {
        state,
        auth,
        listener,
        tls: opened.tls,
        started,
    })
}

/// What a server opens before it serves or leads: the data directory, its store, the
/// cluster's id, the audit log's store and the admin token.
pub(crate) struct Opened {
    pub store: Arc<dyn Store>,
    pub audit_store: Arc<dyn Store>,
    pub cluster: String,
    pub admin_token: Option<AdminToken>,
    pub tls: Option<TlsAcceptor>,
}

pub(crate) fn open(options: &ServerOptions) -> anyhow::Result<Opened> {
    let data_dir = &options.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("failed to create the data directory {}", data_dir.display()))?;
    // Before anything else: a bad certificate should stop the start, not the first client.
    let tls = options.tls.as_ref().map(tls::acceptor).transpose()?;
    let (store, audit_store) = match &options.cluster.store {
        StoreChoice::Embedded => (
            open_store(&data_dir.join(STORE_FILE))?,
            open_store(&data_dir.join("audit.redb"))?,
        ),
        // The audit log stays each server's own, as on one server: refused floods must move
        // neither the cluster's revision nor its watches.
        StoreChoice::Shared(store) => (store.clone(), open_store(&data_dir.join("audit.redb"))?),
    };
    opened(store, audit_store, options, tls)
}

/// The rest of [`open`], on a store already open (several servers share one).
pub(crate) fn opened(
    store: Arc<dyn Store>,
    audit_store: Arc<dyn Store>,
    options: &ServerOptions,
    tls: Option<TlsAcceptor>,
) -> anyhow::Result<Opened> {
    let cluster = cluster_id(&*store, &options.data_dir)?;
    let admin_token = match options.auth {
        AuthMode::Required => Some(
            match admin_token::ensure(&*store, &options.data_dir, options.reset_admin_token)
                .context("failed to set up the admin token")?
            {
                AdminToken::Missing(_)
                    if matches!(options.cluster.store, StoreChoice::Shared(_)) =>
                {
                    AdminToken::Cluster
                }
                other => other,
            },
        ),
        AuthMode::Open => None,
    };
    Ok(Opened {
        store,
        audit_store,
        cluster,
        admin_token,
        tls,
    })
}

impl Opened {
    pub(crate) fn started(
        &self,
        options: &ServerOptions,
        listener: &TcpListener,
    ) -> anyhow::Result<Started> {
        let api = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(Started {
            api,
            url: format!("{scheme}://{api}"),
            cluster: self.cluster.clone(),
            data_dir: options.data_dir.clone(),
            admin_token: self.admin_token.clone(),
            router: None,
            router_tls: None,
            public_read: options.public_read,
        })
    }
}

pub(crate) async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen}"))
}

/// Everything the leader runs: the server state with its desired state loaded, the control
/// loops, deployments resumed. Every task it starts runs on the calling runtime, so a term that
/// ends with its runtime takes them all with it.
pub(crate) async fn lead(
    opened: &Opened,
    options: &ServerOptions,
    local_host: Option<String>,
) -> anyhow::Result<(Arc<ServerState>, Arc<Auth>)> {
    let audit =
        AuditLog::open(opened.audit_store.clone()).context("failed to read the audit log")?;
    let auth = Arc::new(
        Auth::new(options.auth, opened.store.clone(), audit).with_public_read(options.public_read),
    );
    let mut config = options.config.clone();
    if config.snapshots.is_none() {
        config.snapshots = Some(crate::snapshots::target::TargetConfig::Dir(
            options.data_dir.join("snapshots"),
        ));
    }
    let state = ServerState::new(
        opened.store.clone(),
        opened.cluster.clone(),
        local_host,
        config,
        options.scheduling.clone(),
    );
    state
        .hosts
        .load(&*state.store)
        .map_err(|error| anyhow::anyhow!("failed to read the known hosts: {error}"))?;
    state
        .write_missing_version_infos()
        .map_err(|error| anyhow::anyhow!("failed to summarise stored versions: {error}"))?;
    // Assignments are published before any agent connects: an agent must never see "nothing
    // assigned" merely because the server had not loaded yet.
    let (publisher, published_at) = crate::control::publisher::Publisher::start(state.clone())
        .map_err(|error| anyhow::anyhow!("failed to load desired state: {error}"))?;
    tokio::spawn(publisher.run(published_at));
    tokio::spawn(crate::control::handover::run_handover_loop(state.clone()));
    tokio::spawn(crate::hosts::prewarm::keep_catalog(state.clone()));
    tokio::spawn(crate::control::routes::keep_route_table(state.clone()));
    tokio::spawn(crate::observe::alerts::run(state.clone()));
    tokio::spawn(crate::envs::env_destroy::run_expiry_loop(state.clone()));
    // Deployments that were under way when the last leader stopped go on from where they were.
    for deployment in state
        .active_deployments()
        .map_err(|error| anyhow::anyhow!("failed to read deployments: {error}"))?
    {
        tracing::info!(id = deployment.id, "resuming deployment");
        tokio::spawn(state.clone().run_deployment(deployment));
    }
    Ok((state, auth))
}

impl Prepared {
    pub fn started(&self) -> &Started {
        &self.started
    }

    /// The address the API listens on.
    pub fn api(&self) -> SocketAddr {
        self.started.api
    }

    /// The API as a router, for serving connections made some other way than by the listener
    /// ([`crate::serve_connection`]).
    pub fn router(&self) -> axum::Router {
        crate::edge::api::router(self.state.clone(), self.auth.clone())
    }

    /// Calls `on_ready`, then serves the API until `shutdown` completes.
    pub async fn serve(
        self,
        on_ready: impl FnOnce(&Started),
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        on_ready(&self.started);
        let router = crate::edge::api::router(self.state, self.auth);
        crate::edge::serve::serve(self.listener, router, self.tls, shutdown).await?;
        Ok(())
    }
}

/// The store's file in the data directory.
pub const STORE_FILE: &str = "store.redb";

/// What `coding-job store restore` put in a data directory.
#[derive(Debug)]
pub struct Restored {
    pub store_file: PathBuf,
    pub snapshot: cj_store::SnapshotSummary,
    /// The installation's id (its containers' label), if the store had one.
    pub cluster: Option<String>,
    pub versions: usize,
    pub deployments: usize,
    pub tokens: usize,
    pub environments: usize,
    pub hosts: usize,
}

/// Builds `DATA_DIR/store.redb` from a snapshot (`GET /v1/store/snapshot`), for a server that
/// is not running: an existing store is replaced only with `replace`, and never while a
/// process has it open. The audit log and `admin.token` are not part of a snapshot and are
/// left as they are.
pub fn restore_store(
    snapshot: &std::path::Path,
    data_dir: &std::path::Path,
    replace: bool,
) -> anyhow::Result<Restored> {
    let file = std::fs::File::open(snapshot)
        .with_context(|| format!("failed to open the snapshot {}", snapshot.display()))?;
    let made_dir = !data_dir.exists();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("failed to create the data directory {}", data_dir.display()))?;
    let store_file = data_dir.join(STORE_FILE);
    let summary = EmbeddedStore::restore(file, &store_file, replace).map_err(|error| {
        // A directory made for a store that could not be restored is not left behind.
        if made_dir {
            let _ = std::fs::remove_dir(data_dir);
        }
        match error {
            cj_store::SnapshotError::Exists { .. } => anyhow::anyhow!(
                "{} already has a store ({}); pass --force to replace it",
                data_dir.display(),
                store_file.display()
            ),
            error => anyhow::Error::new(error)
                .context(format!("failed to restore {}", snapshot.display())),
        }
    })?;
    let store = EmbeddedStore::open(&store_file)
        .with_context(|| format!("failed to open the restored store {}", store_file.display()))?;
    let count = |prefix: &str, counts: fn(&str) -> bool| -> anyhow::Result<usize> {
        let mut page = cj_store::Page {
            limit: 500,
            newest_first: false,
            beyond: None,
        };
        let mut counted = 0;
        loop {
            let keys = store.range_page(prefix, &page)?;
            counted += keys.iter().filter(|kv| counts(&kv.key)).count();
            match keys.last() {
                Some(last) if keys.len() == page.limit => page.beyond = Some(last.key.clone()),
                _ => return Ok(counted),
            }
        }
    };
    let every = |_: &str| true;
    Ok(Restored {
        cluster: store.get_json::<String>(keys::CLUSTER_ID)?,
        versions: count(keys::SERVICES_ALL, |key| key.contains("/versions/"))?,
        deployments: count(keys::DEPLOYMENTS_ALL, every)?,
        tokens: count(keys::TOKENS, every)?,
        environments: count(keys::ENVS, every)?,
        hosts: count(keys::HOSTS, every)?,
        store_file,
        snapshot: summary,
    })
}

pub(crate) fn open_store(path: &std::path::Path) -> anyhow::Result<Arc<dyn Store>> {
    let store = EmbeddedStore::open(path).with_context(|| {
        format!(
            "failed to open the store {} (is another coding-job using this data directory?)",
            path.display()
        )
    })?;
    // Writes wait for the disk: off the async workers, so they hold up nobody else.
    Ok(Arc::new(OffWorker::new(store)))
}

/// This installation's id: made once, from the data directory and the time, then kept.
fn cluster_id(store: &dyn Store, data_dir: &std::path::Path) -> anyhow::Result<String> {
    if let Some(id) = store.get_json::<String>(keys::CLUSTER_ID)? {
        return Ok(id);
    }
    let seed = format!(
        "{}:{:?}:{}",
        data_dir.display(),
        std::time::SystemTime::now(),
        std::process::id()
    );
    let id = hex::encode(&Sha256::digest(seed.as_bytes())[..8]);
    if store
        .compare_and_swap(keys::CLUSTER_ID, None, serde_json::to_vec(&id)?)?
        .is_none()
    {
        return Ok(store.get_json::<String>(keys::CLUSTER_ID)?.unwrap_or(id));
    }
    Ok(id)
}
