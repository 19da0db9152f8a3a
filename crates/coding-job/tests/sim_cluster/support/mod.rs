//! A cluster in one process: the real server (`cj_server::startup`, on an embedded store in a
//! temporary directory) and one real agent (`cj_agent::run_remote_with`) per simulated host, each
//! on its own [`SimRuntime`], linked through an in-memory [`Network`]. Tests drive it through the
//! HTTP API ([`Api`]), break it through the network and the agents (cut a host off, stop an
//! agent, kill the server), and judge it by what the engines run.
//!
//! Everything runs on tokio's paused clock (`#[tokio::test(start_paused = true)]`): time moves
//! only when every task waits on it, so a test that waits out `--host-down-after` takes
//! milliseconds, and every wait here has a deadline on that clock.

#![allow(dead_code)]

pub mod api;
pub mod network;
pub mod sampler;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use cj_agent::{LinkError, RemoteOptions, run_remote_with};
use cj_runtime::{ContainerState, SimContainer, SimRuntime, labels};
use cj_server::startup::{ServerOptions, prepare};
use cj_server::{AuthMode, StateOptions};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::Api;
pub use network::Network;
pub use sampler::Sampler;

/// The image every simulated engine has.
pub const IMAGE: &str = "app:1";

/// How often a wait looks again, on the paused clock.
const POLL: Duration = Duration::from_millis(50);

pub struct SimCluster {
    pub network: Arc<Network>,
    pub api: Api,
    host_down_after: Duration,
    /// The live server's data directory is the last. A killed server's tasks may still run
    /// (nothing can reach them), so its directory stays until the test ends.
    data_dirs: Vec<TempDir>,
    hosts: BTreeMap<String, SimHost>,
    /// What agents are given as `--server`: only its host names matter (see
    /// [`Network::refuse`]); every connection goes through the network.
    agent_servers: String,
}

pub struct SimHost {
    pub engine: SimRuntime,
    /// Where its link appears to come from: the address `hosts` shows.
    address: SocketAddr,
    labels: BTreeMap<String, String>,
    agent: Option<RunningAgent>,
}

struct RunningAgent {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), LinkError>>,
}

impl SimCluster {
    /// A server with `--host-down-after host_down_after` and a linked agent on each of
    /// `hosts`, every host ready.
    pub async fn start(hosts: &[&str], host_down_after: Duration) -> SimCluster {
        SimCluster::start_with_servers(hosts, host_down_after, "http://127.0.0.1:7400", &[]).await
    }

    /// As [`SimCluster::start`], the agents given `agent_servers` as `--server` (a URL, or
    /// several separated by commas), with the server names in `refusing` refusing connections
    /// from the start.
    pub async fn start_with_servers(
        hosts: &[&str],
        host_down_after: Duration,
        agent_servers: &str,
        refusing: &[&str],
    ) -> SimCluster {
        init_logging();
        let network = Arc::new(Network::default());
        let mut cluster = SimCluster {
            api: Api {
                network: network.clone(),
            },
            network,
            host_down_after,
            data_dirs: vec![tempfile::tempdir().unwrap()],
            hosts: BTreeMap::new(),
            agent_servers: agent_servers.to_owned(),
        };
        for server in refusing {
            cluster.network.refuse(server);
        }
        cluster.serve().await;
        for (index, name) in hosts.iter().enumerate() {
            let engine = SimRuntime::new();
            engine.set_all_images_present(true);
            let address = format!("10.0.0.{}:7401", index + 1).parse().unwrap();
            let labels = BTreeMap::from([("slot".to_owned(), (*name).to_owned())]);
            cluster.hosts.insert(
                (*name).to_owned(),
                SimHost {
                    engine,
                    address,
                    labels,
                    agent: None,
                },
            );
            cluster.start_agent(name);
        }
        let names: Vec<&str> = hosts.to_vec();
        cluster.wait_for_hosts(&names, "ready").await;
        cluster
    }

    /// Prepares a server on the newest data directory and lets the network reach it.
    async fn serve(&mut self) {
        let data_dir = self.data_dirs.last().unwrap().path().to_owned();
        let options = ServerOptions {
            data_dir,
            listen: "127.0.0.1:0".parse().unwrap(),
            config: Default::default(),
            tls: None,
            auth: AuthMode::Open,
            public_read: false,
            reset_admin_token: false,
            scheduling: StateOptions {
                host_down_after: self.host_down_after,
                ..StateOptions::default()
            },
            cluster: Default::default(),
        };
        let prepared = prepare(options, None).await.expect("the server starts");
        self.network.serve(prepared.router());
    }

    /// The server is killed (`kill -9`) and started again on its store: every connection to it
    /// closes, and a new server opens the store as the killed one left it. The killed server's
    /// tasks cannot be ended from outside (it spawns them detached, each holding the store), so
    /// the new one opens a copy made at the moment of the kill, while the old one lives on with
    /// no connection to anything.
    pub async fn restart_server(&mut self) {
        self.network.kill_server();
        let copy = tempfile::tempdir().unwrap();
        let killed = self.data_dirs.last().unwrap().path();
        for file in ["store.redb", "audit.redb"] {
            copy_file(&killed.join(file), &copy.path().join(file));
        }
        self.data_dirs.push(copy);
        self.serve().await;
    }

    pub fn engine(&self, host: &str) -> &SimRuntime {
        &self.host(host).engine
    }

    pub fn host_names(&self) -> Vec<String> {
        self.hosts.keys().cloned().collect()
    }

    /// Every engine with its host's name, for a [`Sampler`].
    pub fn engines(&self) -> Vec<(String, SimRuntime)> {
        self.hosts
            .iter()
            .map(|(name, host)| (name.clone(), host.engine.clone()))
            .collect()
    }

    pub fn sampler(&self) -> Sampler {
        Sampler::start(self.engines())
    }

    fn host(&self, host: &str) -> &SimHost {
        self.hosts
            .get(host)
            .unwrap_or_else(|| panic!("no host {host}"))
    }

    /// Starts `host`'s agent on its engine (which keeps what it runs across agents).
    pub fn start_agent(&mut self, name: &str) {
        let network = self.network.clone();
        let host = self.hosts.get_mut(name).unwrap();
        assert!(host.agent.is_none(), "{name}'s agent already runs");
        let options = RemoteOptions {
            // Only their host names matter: every connection goes through the network.
            server: self.agent_servers.clone(),
            token: None,
            host: name.to_owned(),
            advertise: None,
            labels: host.labels.clone(),
            resync_interval: Duration::from_secs(10),
            stop_grace_seconds: 10,
            stats_interval: cj_agent::DEFAULT_STATS_INTERVAL,
            host_size: None,
            tls: None,
            artifact_cache: Default::default(),
        };
        let dialer = Arc::new(network::MemoryDialer {
            network,
            host: name.to_owned(),
            address: host.address,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let engine = Arc::new(host.engine.clone());
        let task = tokio::spawn(run_remote_with(engine, options, dialer, async {
            let _ = stopped.await;
        }));
        host.agent = Some(RunningAgent { stop, task });
    }

    /// Stops `host`'s agent as a killed process stops: its link ends, its containers keep
    /// running in the engine.
    pub async fn stop_agent(&mut self, name: &str) {
        let agent = self.hosts.get_mut(name).unwrap().agent.take();
        let agent = agent.unwrap_or_else(|| panic!("{name}'s agent does not run"));
        let _ = agent.stop.send(());
        let ended = tokio::time::timeout(Duration::from_secs(5), agent.task).await;
        let result = ended.expect("the agent stops").expect("the agent's task");
        result.expect("the agent ended without an error");
    }

    /// `host`'s link goes down (see [`Network::cut`]); its agent and engine run on.
    pub fn cut(&self, host: &str) {
        self.host(host);
        self.network.cut(host);
    }

    pub fn heal(&self, host: &str) {
        self.network.heal(host);
    }

    /// Waits until each of `hosts` shows `state` in `hosts` (`ready`, `down`, `draining`).
    pub async fn wait_for_hosts(&self, hosts: &[&str], state: &str) {
        let what = format!("{hosts:?} to be {state}");
        eventually(&what, Duration::from_secs(30), || async move {
            let known = self.api.hosts().await.ok()?;
            hosts
                .iter()
                .all(|name| known.iter().any(|h| h.name == *name && h.state == state))
                .then_some(())
        })
        .await
    }

    /// Looks at the cluster every [`POLL`] until `check` gives a value; fails the test after
    /// `within` on the paused clock.
    pub async fn until<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&SimCluster) -> Option<T>,
    ) -> T {
        eventually(what, within, || std::future::ready(check(self))).await
    }

    /// The containers of `job` that `host`'s engine runs now.
    pub fn running(&self, host: &str, job: &str) -> Vec<SimContainer> {
        self.engine(host)
            .containers()
            .into_iter()
            .filter(|c| c.state == ContainerState::Running && label(c, labels::JOB) == job)
            .collect()
    }

    /// How many containers of `job` each host's engine runs now, by host.
    pub fn running_counts(&self, job: &str) -> BTreeMap<String, usize> {
        self.hosts
            .keys()
            .map(|host| (host.clone(), self.running(host, job).len()))
            .collect()
    }

    /// Every running container of `job`, over every host: (host, container).
    pub fn running_everywhere(&self, job: &str) -> Vec<(String, SimContainer)> {
        self.hosts
            .keys()
            .flat_map(|host| {
                self.running(host, job)
                    .into_iter()
                    .map(move |c| (host.clone(), c))
            })
            .collect()
    }
}

/// A label of a container, or "" without it.
pub fn label<'a>(container: &'a SimContainer, name: &str) -> &'a str {
    container.labels.get(name).map_or("", String::as_str)
}

/// Polls `check` every [`POLL`] until it gives a value; fails the test after `within` on the
/// paused clock.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} after {within:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `HOST=counts` pairs, for comparing with [`SimCluster::running_counts`].
pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(h, n)| ((*h).to_owned(), *n)).collect()
}

fn copy_file(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|error| panic!("copy {} to {}: {error}", from.display(), to.display()));
}

/// Logs to the test's output, as `RUST_LOG` says (errors only by default).
fn init_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
