//! `coding-job dev`: the server, one agent and the embedded store in one process, for one
//! machine. Every host name a config declares maps to this machine. The server part is the
//! one `coding-job server` runs (`startup`); the agent is the one `coding-job agent` runs,
//! dialling this server's agent endpoint over loopback with a token valid for this process
//! only, so it gets in whether or not the server requires tokens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cj_agent::{RemoteOptions, run_remote};
use cj_api::Role;
use cj_runtime::DockerRuntime;

use crate::startup::{self, ServerOptions, Started};

#[derive(Debug)]
pub struct DevOptions {
    pub server: ServerOptions,
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
    let prepared = startup::prepare(options.server, Some(options.host_name.clone())).await?;
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
        // Plain HTTP on loopback.
        tls: None,
    };
    tokio::spawn(async move {
        if let Err(error) = run_remote(runtime, agent, std::future::pending()).await {
            tracing::error!(%error, "the local agent stopped");
        }
    });
    // Ready means ready to run things: the local agent has joined and tasks waiting for a host
    // have been placed on it, so an `up` right after start does not find "no host is ready".
    let state = prepared.state.clone();
    let started = prepared.started().clone();
    let serving = tokio::spawn(prepared.serve(|_| {}, shutdown));
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
    if let Err(error) = state.publish_assignments().await {
        tracing::error!(%error, "failed to place tasks");
    }
    on_ready(&started);
    serving.await.context("the server task failed")?
}

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
