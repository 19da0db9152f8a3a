//! `coding-job dev`: the server, one agent and the embedded store in one process, for one
//! machine. Every host name a config declares maps to this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cj_agent::{Agent, AgentConfig};
use cj_runtime::DockerRuntime;
use cj_store::{EmbeddedStore, Store, StoreJson};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::keys;
use crate::reports::consume_reports;
use crate::state::ServerState;

#[derive(Debug)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// This machine's name in `status`.
    pub host_name: String,
    pub resync_interval: Duration,
    pub config: crate::config::ServerConfig,
}

/// Where a started `dev` process can be reached.
#[derive(Debug, Clone)]
pub struct DevStarted {
    pub api: SocketAddr,
    pub cluster: String,
    pub data_dir: PathBuf,
}

/// Runs until `shutdown` completes. `on_ready` is called once the API is listening.
pub async fn run_dev(
    options: DevOptions,
    on_ready: impl FnOnce(&DevStarted),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir).with_context(|| {
        format!(
            "failed to create the data directory {}",
            options.data_dir.display()
        )
    })?;
    let store_path = options.data_dir.join("store.redb");
    let store = EmbeddedStore::open(&store_path).with_context(|| {
        format!(
            "failed to open the store {} (is another coding-job using this data directory?)",
            store_path.display()
        )
    })?;
    let store: Arc<dyn Store> = Arc::new(store);
    let cluster = cluster_id(&*store, &options)?;
    let runtime = Arc::new(
        DockerRuntime::connect()
            .await
            .context("failed to connect to Docker")?,
    );

    let state = ServerState::new(
        store,
        cluster.clone(),
        options.host_name.clone(),
        runtime.clone(),
        options.config,
    );
    state
        .write_missing_version_infos()
        .map_err(|error| anyhow::anyhow!("failed to summarise stored versions: {error}"))?;
    // Assignments are published before the agent starts: it must never see "nothing assigned"
    // merely because the server had not loaded yet.
    state
        .publish_assignments()
        .await
        .map_err(|error| anyhow::anyhow!("failed to load desired state: {error}"))?;

    let (report_sender, reports) = mpsc::unbounded_channel();
    let agent_config = AgentConfig {
        host: options.host_name.clone(),
        cluster: cluster.clone(),
        resync_interval: options.resync_interval,
        stop_grace_seconds: 10,
    };
    let agent = Agent::new(runtime, agent_config, report_sender);
    tokio::spawn(agent.run(state.assignments.subscribe()));
    tokio::spawn(consume_reports(state.clone(), reports));
    // Deployments that were under way when the server stopped go on from where they were.
    for deployment in state
        .active_deployments()
        .map_err(|error| anyhow::anyhow!("failed to read deployments: {error}"))?
    {
        tracing::info!(id = deployment.id, "resuming deployment");
        tokio::spawn(state.clone().run_deployment(deployment));
    }

    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("failed to listen on {}", options.listen))?;
    let api = listener.local_addr()?;
    on_ready(&DevStarted {
        api,
        cluster,
        data_dir: options.data_dir.clone(),
    });
    crate::serve::serve(listener, crate::api::router(state), shutdown).await?;
    Ok(())
}

/// This installation's id: made once, from the data directory and the time, then kept.
fn cluster_id(store: &dyn Store, options: &DevOptions) -> anyhow::Result<String> {
    if let Some(id) = store.get_json::<String>(keys::CLUSTER_ID)? {
        return Ok(id);
    }
    let seed = format!(
        "{}:{:?}:{}",
        options.data_dir.display(),
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
