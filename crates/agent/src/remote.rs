//! The agent process's link to its server: it dials the server's `/v1/agent/connect`
//! WebSocket (`wss://` for an `https` server, trusting the web roots and `--ca-cert`: see
//! [`cj_net`]), says who it is, receives its assignments as they change, sends its reports, and
//! answers the server's requests about this host's containers (inspect, logs, exec: see
//! [`exec`]; removing an environment's leftovers: see [`remove_env`]).
//!
//! The link can drop at any moment. While it is down the reconcile loop keeps the last
//! assignments, so every container keeps running; reports wait in a bounded outbox (only the
//! newest snapshot is kept) and go out when the link is back. A new connection gets the
//! current assignments at once, so an agent catches up without restarting anything.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_api::agent::link::{
    AgentHello, AgentMessage, AgentRequest, DataFrame, LinkTiming, Outcome, PROTOCOL_VERSION,
    ServerMessage, StreamKind,
};
use cj_api::agent::{AgentReport, Assignment};
use cj_net::TlsClient;
use cj_runtime::{ContainerRuntime, ExecOptions, LogChunk, RuntimeError};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::prewarm;
use crate::reconcile::{Agent, AgentConfig};

mod exec;
mod fence;
mod remove_env;
mod servers;

use servers::{Endpoint, Rotation};

/// How an agent reaches its server.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The server's base URL, `http://HOST:PORT` (or `https://`), or several servers of the
    /// installation separated by commas: a link that drops or cannot be made moves on to the
    /// next.
    pub server: String,
    /// An `agent`-role token; `None` for a `dev` server on loopback.
    pub token: Option<String>,
    /// This host's name.
    pub host: String,
    /// The address others reach this host at, if not the one its link comes from.
    pub advertise: Option<String>,
    /// What the host is (zone, disk, ...), shown by `hosts`.
    pub labels: std::collections::BTreeMap<String, String>,
    pub resync_interval: Duration,
    pub stop_grace_seconds: u32,
    /// How often resource use is reported (10 s by default).
    pub stats_interval: Duration,
    /// A simulated host's size, reported instead of the machine's (`coding-job sim`); `None`
    /// reports what the machine has.
    pub host_size: Option<crate::HostSize>,
    /// What an `https` server's certificate is checked against: the web roots plus
    /// `--ca-cert`, read once at start. `None` trusts the web roots only.
    pub tls: Option<TlsClient>,
    /// Where tasks' artifacts are kept on this host (`--artifact-cache`), and how much.
    pub artifact_cache: crate::ArtifactCacheConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("invalid server URL {0:?}: expected http://HOST:PORT or https://HOST:PORT")]
    BadUrl(String),
    #[error(
        "server {server} belongs to cluster {now}, but this agent manages cluster {before}'s containers"
    )]
    OtherCluster {
        server: String,
        before: String,
        now: String,
    },
    #[error("the server refused this agent: {0}")]
    Refused(String),
}

/// Reports kept while the link is down, at most; the oldest go first (a snapshot is only ever
/// the newest one).
const OUTBOX_LIMIT: usize = 10_000;
/// The longest pause between two connection attempts: short, so a host whose network heals
/// hears the server (and stops what moved away while it was cut off) within a second or two.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// How long dialling may take. A cut link drops the SYN silently; the kernel would retry it for
/// minutes, backing off, so after the heal the next try could be seconds away. This gives up
/// after the first retransmission (1 s) has had its chance and dials afresh.
const DIAL_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the server may take to answer `Hello`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames waiting to go out, per connection.
const OUTGOING_FRAMES: usize = 256;

/// Opens the byte stream the link's WebSocket runs over, to the server's `host` and `port`
/// (`tls` is set for a `wss://` URL). [`NetworkDialer`] is the real one; tests of the control
/// plane give one that hands out in-memory streams, so a server and its agents run in one
/// process on a paused clock.
pub trait Dialer: Send + Sync + 'static {
    fn dial<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        tls: Option<&'a TlsClient>,
    ) -> BoxFuture<'a, Result<Box<dyn cj_net::Io>, cj_net::DialError>>;
}

/// TCP, then TLS for a `wss://` URL: [`cj_net::dial`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkDialer;

impl Dialer for NetworkDialer {
    fn dial<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        tls: Option<&'a TlsClient>,
    ) -> BoxFuture<'a, Result<Box<dyn cj_net::Io>, cj_net::DialError>> {
        Box::pin(cj_net::dial(host, port, tls))
    }
}

/// Runs the agent against its server until `shutdown` completes. Returns an error only for what
/// retrying cannot fix (a bad URL, another cluster's server).
pub async fn run_remote<R: ContainerRuntime>(
    runtime: Arc<R>,
    options: RemoteOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), LinkError> {
    run_remote_with(runtime, options, Arc::new(NetworkDialer), shutdown).await
}

/// [`run_remote`], reaching the server through `dialer`.
pub async fn run_remote_with<R: ContainerRuntime>(
    runtime: Arc<R>,
    options: RemoteOptions,
    dialer: Arc<dyn Dialer>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), LinkError> {
    let endpoints = servers::endpoints(&options.server, options.tls.as_ref())?;
    let (assignments, assignments_receiver) = watch::channel(None::<Arc<Vec<Assignment>>>);
    let (report_sender, reports) = mpsc::unbounded_channel();
    let outbox = Arc::new(Outbox::default());
    tokio::spawn(outbox.clone().collect(reports));
    // Pulls run in a task of their own, across connections: the link only hands over the set.
    let (prewarm, prewarm_receiver) = watch::channel(Vec::new());
    let warming = tokio::spawn(prewarm::keep_warm(runtime.clone(), prewarm_receiver));
    let fence = Arc::new(fence::Fence::default());
    let fencing = tokio::spawn(fence.clone().watch(assignments.clone()));
    let link = Link {
        fence,
        dialer,
        runtime,
        options,
        endpoints,
        linked_at: Mutex::new(None),
        assignments,
        assignments_receiver,
        report_sender,
        outbox,
        prewarm,
        cluster: Mutex::new(None),
        agent: std::sync::OnceLock::new(),
    };
    let result = tokio::select! {
        result = link.keep_connected() => result,
        () = shutdown => Ok(()),
    };
    warming.abort();
    fencing.abort();
    result
}

struct Link<R> {
    /// When the server was last heard, the link's timing, and the `on_host_lost: stop` fence.
    fence: Arc<fence::Fence>,
    dialer: Arc<dyn Dialer>,
    runtime: Arc<R>,
    options: RemoteOptions,
    /// The servers, in the order they are tried.
    endpoints: Vec<Endpoint>,
    /// When the current connection was welcomed by its server, if it was.
    linked_at: Mutex<Option<tokio::time::Instant>>,
    assignments: watch::Sender<Option<Arc<Vec<Assignment>>>>,
    assignments_receiver: watch::Receiver<Option<Arc<Vec<Assignment>>>>,
    report_sender: mpsc::UnboundedSender<AgentReport>,
    outbox: Arc<Outbox>,
    /// The images to pre-warm, as the server last sent them.
    prewarm: watch::Sender<Vec<String>>,
    /// Set by the first server's welcome; the reconcile loop starts then, once.
    cluster: Mutex<Option<String>>,
    /// The reconcile loop's agent, once started: requests that change containers go through
    /// it, so they share what it knows of the stops under way.
    agent: std::sync::OnceLock<Arc<Agent<R>>>,
}

impl<R: ContainerRuntime> Link<R> {
    /// Sends snapshots to `endpoint`'s server over HTTP, trusting what the link trusts.
    fn snapshot_server(&self, endpoint: &Endpoint) -> crate::snapshot::SnapshotServer {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120));
        if let Some(tls) = &endpoint.tls {
            builder = builder.use_preconfigured_tls(tls.rustls_config());
        }
        crate::snapshot::SnapshotServer {
            client: builder.build().unwrap_or_default(),
            server: endpoint.server.clone(),
            token: self.options.token.clone(),
        }
    }

    async fn keep_connected(&self) -> Result<(), LinkError> {
        let mut rotation = Rotation::new(self.endpoints.len(), MAX_RECONNECT_PAUSE);
        loop {
            let endpoint = &self.endpoints[rotation.current()];
            match self.session(endpoint).await {
                Ok(never) => match never {},
                Err(SessionError::Fatal(error)) => return Err(error),
                Err(SessionError::Lost(reason)) => {
                    let next = (self.endpoints.len() > 1)
                        .then(|| &self.endpoints[(rotation.current() + 1) % self.endpoints.len()]);
                    let next =
                        next.map_or(String::new(), |next| format!("; next: {}", next.server));
                    tracing::warn!(server = endpoint.server, %reason, "no link to the server; containers keep running, retrying{next}");
                }
            }
            let linked_at = self
                .linked_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let pause = rotation.ended(linked_at.map(|at| at.elapsed()));
            tokio::time::sleep(pause).await;
        }
    }

    /// One connection to `endpoint`, from dialling to its end, which is always an error: the
    /// link is kept until it fails.
    async fn session(&self, endpoint: &Endpoint) -> Result<std::convert::Infallible, SessionError> {
        let mut request = endpoint
            .url
            .as_str()
            .into_client_request()
            .map_err(|error| SessionError::Lost(error.to_string()))?;
        if let Some(token) = &self.options.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| SessionError::Fatal(LinkError::Refused("invalid token".into())))?;
            request.headers_mut().insert("authorization", value);
        }
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if endpoint.tls.is_some() { 443 } else { 80 });
        // tungstenite is built without TLS: `cj_net` dials the stream, as it does for the CLI, and
        // the WebSocket runs over it.
        let dialing = self.dialer.dial(&host, port, endpoint.tls.as_ref());
        let stream = tokio::time::timeout(DIAL_TIMEOUT, dialing)
            .await
            .map_err(|_| SessionError::Lost(format!("no answer from {host}:{port}")))?
            .map_err(lost)?;
        let (socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(refusal)?;
        let (mut sink, mut stream) = socket.split();
        let hello = AgentMessage::Hello(AgentHello {
            protocol: PROTOCOL_VERSION,
            host: self.options.host.clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            advertise: self.options.advertise.clone(),
            labels: self.options.labels.clone(),
        });
        sink.send(text(&hello)).await.map_err(lost)?;
        let cluster = match tokio::time::timeout(WELCOME_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text) {
                Ok(ServerMessage::Welcome {
                    cluster,
                    host_down_after_ms,
                }) => {
                    let timing = LinkTiming::new(Duration::from_millis(host_down_after_ms));
                    self.fence.set_timing(timing);
                    cluster
                }
                _ => return Err(SessionError::Lost("expected a welcome".into())),
            },
            Ok(Some(Ok(Message::Close(frame)))) => {
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Err(SessionError::Fatal(LinkError::Refused(reason)));
            }
            _ => return Err(SessionError::Lost("no welcome from the server".into())),
        };
        self.fence.heard();
        // Snapshots queued while the link was down describe the host before it heard this
        // server's assignments (it may still run a task that moved away meanwhile): the next
        // pass, made with what this link brings, reports afresh.
        self.outbox.forget_snapshots();
        self.start_reconciling(&endpoint.server, &cluster)?;
        *self.linked_at.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now());
        tracing::info!(
            server = endpoint.server,
            host = self.options.host,
            "linked to the server"
        );

        let (outgoing, mut frames) = mpsc::channel::<Message>(OUTGOING_FRAMES);
        // Snapshots go to (and restores come from) this connection's server over HTTP.
        let snapshot_server = self.snapshot_server(endpoint);
        if let Some(agent) = self.agent.get() {
            agent.set_snapshot_server(snapshot_server.clone());
        }
        let timing = self.fence.timing();
        let mut ping = tokio::time::interval(timing.ping_interval());
        let mut requests: HashMap<u64, tokio::task::AbortHandle> = HashMap::new();
        // The requests' tasks: when this connection ends, so do they (a stream or exec whose
        // server is gone must not hold the engine's streams open).
        let mut tasks = tokio::task::JoinSet::new();
        let mut execs: HashMap<u64, exec::ExecControl> = HashMap::new();
        loop {
            // Reports first: they are what the server waits on.
            while let Some(report) = self.outbox.pop() {
                let message = AgentMessage::Report(Box::new(report.clone()));
                if let Err(error) = sink.send(text(&message)).await {
                    self.outbox.push_front(report);
                    return Err(lost(error));
                }
            }
            tokio::select! {
                () = self.outbox.ready.notified() => {}
                _ = ping.tick() => {
                    // A cut link sends nothing, not even a close: silence is how it shows.
                    if self.fence.last_heard().elapsed() > timing.link_timeout() {
                        return Err(SessionError::Lost(format!(
                            "nothing from the server for {} ms", timing.link_timeout().as_millis()
                        )));
                    }
                    sink.send(Message::Ping(Default::default())).await.map_err(lost)?;
                }
                Some(frame) = frames.recv() => {
                    sink.send(frame).await.map_err(lost)?;
                }
                message = stream.next() => {
                    let message = match message {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => return Err(lost(error)),
                        None => return Err(SessionError::Lost("the server closed the link".into())),
                    };
                    self.fence.heard();
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Binary(frame) => {
                            if let Some(frame) = DataFrame::decode(&frame)
                                && frame.kind == StreamKind::Stdin
                            {
                                to_exec(&mut execs, &requests, &outgoing, frame.id, |exec| exec.stdin(Some(frame.data)));
                            }
                            continue;
                        }
                        Message::Close(_) => {
                            return Err(SessionError::Lost("the server closed the link".into()));
                        }
                        _ => continue,
                    };
                    match serde_json::from_str::<ServerMessage>(&text) {
                        Ok(ServerMessage::Assignments { assignments, generation, published_unix_micros, moved_away }) => {
                            let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64;
                            // The first of a link is the state as it is, published whenever: no latency.
                            if generation > 1 {
                                let latency_us = now.saturating_sub(published_unix_micros);
                                tracing::debug!(generation, latency_us, tasks = assignments.len(), "assignments received");
                                // Recorded where a recorder is installed (`--metrics-listen`).
                                metrics::histogram!("coding_job_agent_assignment_delivery_seconds")
                                    .record(latency_us.max(0) as f64 / 1e6);
                            }
                            self.fence.assignments(Arc::new(assignments), moved_away, &self.assignments);
                        }
                        Ok(ServerMessage::Request { id, request }) => {
                            while tasks.try_join_next().is_some() {}
                            requests.retain(|_, task| !task.is_finished());
                            execs.retain(|id, _| requests.contains_key(id));
                            let task = match request {
                                AgentRequest::Exec { container_id, command, tty, stdin, size } => {
                                    let size = size.map(|size| (size.rows, size.cols));
                                    let options = ExecOptions { command, tty, stdin, size };
                                    let (control, run) = exec::start(self.runtime.clone(), id, container_id, options, outgoing.clone());
                                    execs.insert(id, control);
                                    tasks.spawn(run)
                                }
                                AgentRequest::RemoveEnv { env, keep_volumes } => {
                                    let assignments = self.assignments_receiver.borrow().clone();
                                    let agent = self.agent.get().cloned();
                                    let run = remove_env::answer(agent, assignments, id, env, keep_volumes, outgoing.clone());
                                    tasks.spawn(run)
                                }
                                other => tasks.spawn(answer(self.runtime.clone(), snapshot_server.clone(), id, other, outgoing.clone())),
                            };
                            requests.insert(id, task);
                        }
                        Ok(ServerMessage::Cancel { id }) => {
                            execs.remove(&id);
                            if let Some(task) = requests.remove(&id) {
                                task.abort();
                            }
                        }
                        Ok(ServerMessage::ExecStdinEnd { id }) => {
                            to_exec(&mut execs, &requests, &outgoing, id, |exec| exec.stdin(None));
                        }
                        Ok(ServerMessage::ExecResize { id, rows, cols }) => {
                            if let Some(exec) = execs.get(&id) {
                                exec.resize(cj_api::agent::link::TerminalSize { rows, cols });
                            }
                        }
                        Ok(ServerMessage::ExecAck { id, frames }) => {
                            if let Some(exec) = execs.get(&id) {
                                exec.acknowledged(frames);
                            }
                        }
                        Ok(ServerMessage::Prewarm { images }) => {
                            self.prewarm.send_replace(images);
                        }
                        Ok(ServerMessage::Welcome { .. }) => {}
                        Err(error) => tracing::warn!(%error, "unreadable message from the server"),
                    }
                }
            }
        }
    }

    /// Starts the reconcile loop the first time a server welcomes this agent; refuses a server
    /// of another installation later. A server of the same installation (the same one again,
    /// or another of the list) changes nothing here: the loop goes on with its assignments.
    fn start_reconciling(&self, server: &str, cluster: &str) -> Result<(), SessionError> {
        let mut known = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        match known.as_deref() {
            Some(before) if before != cluster => {
                return Err(SessionError::Fatal(LinkError::OtherCluster {
                    server: server.to_owned(),
                    before: before.to_owned(),
                    now: cluster.to_owned(),
                }));
            }
            Some(_) => return Ok(()),
            None => {}
        }
        *known = Some(cluster.to_owned());
        let config = AgentConfig {
            host: self.options.host.clone(),
            cluster: cluster.to_owned(),
            resync_interval: self.options.resync_interval,
            stop_grace_seconds: self.options.stop_grace_seconds,
            stats_interval: self.options.stats_interval,
            host_size: self.options.host_size,
            artifact_cache: self.options.artifact_cache.clone(),
        };
        let agent = Arc::new(
            Agent::new(self.runtime.clone(), config, self.report_sender.clone())
                .with_stop_at_once(self.fence.stop_at_once.clone()),
        );
        let _ = self.agent.set(agent.clone());
        tokio::spawn(agent.run(self.assignments_receiver.clone()));
        Ok(())
    }
}

/// Hands input to exec `id`; an exec whose input overran its window is ended with an error
/// (the server broke the protocol).
fn to_exec(
    execs: &mut HashMap<u64, exec::ExecControl>,
    requests: &HashMap<u64, tokio::task::AbortHandle>,
    outgoing: &mpsc::Sender<Message>,
    id: u64,
    hand: impl FnOnce(&exec::ExecControl) -> Result<(), exec::Overrun>,
) {
    let Some(exec) = execs.get(&id) else {
        return;
    };
    if hand(exec).is_ok() {
        return;
    }
    tracing::warn!(
        request = id,
        "the server sent an exec more input than its window"
    );
    execs.remove(&id);
    if let Some(task) = requests.get(&id) {
        task.abort();
    }
    let end = AgentMessage::ExecEnd {
        id,
        exit_code: None,
        error: Some("input overran the exec's window".into()),
    };
    let _ = outgoing.try_send(text(&end));
}

/// Carries out one request of the server and sends the answer (or the stream) back.
async fn answer<R: ContainerRuntime>(
    runtime: Arc<R>,
    snapshot_server: crate::snapshot::SnapshotServer,
    id: u64,
    request: AgentRequest,
    outgoing: mpsc::Sender<Message>,
) {
    match request {
        AgentRequest::SnapshotVolume {
            container_id,
            mount,
            pause,
            upload,
        } => {
            let taken = crate::snapshot::snapshot(
                &*runtime,
                &snapshot_server,
                &container_id,
                &mount,
                pause,
                &upload,
            )
            .await;
            let outcome = outcome_of(taken);
            let _ = outgoing
                .send(text(&AgentMessage::Response { id, outcome }))
                .await;
        }
        AgentRequest::Inspect { container_id } => {
            let outcome = match runtime.inspect(&container_id).await {
                Ok((_, inspect)) => Outcome::Ok(inspect),
                Err(error) => failed(error),
            };
            let _ = outgoing
                .send(text(&AgentMessage::Response { id, outcome }))
                .await;
        }
        AgentRequest::Logs {
            container_id,
            options,
        } => {
            let mut chunks = runtime.logs(&container_id, options);
            let mut error = None;
            while let Some(chunk) = chunks.next().await {
                let (kind, data) = match chunk {
                    Ok(LogChunk::Stdout(data)) => (StreamKind::Stdout, data),
                    Ok(LogChunk::Stderr(data)) => (StreamKind::Stderr, data),
                    Err(failure) => {
                        error = Some(failure.to_string());
                        break;
                    }
                };
                let frame = DataFrame {
                    id,
                    kind,
                    data: data.to_vec(),
                };
                if outgoing
                    .send(Message::Binary(frame.encode().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = outgoing
                .send(text(&AgentMessage::StreamEnd { id, error }))
                .await;
        }
        AgentRequest::Pull { images } => {
            let pulls = prewarm::pull_all(&*runtime, &images).await;
            let outcome = outcome_of(Ok(pulls));
            let _ = outgoing
                .send(text(&AgentMessage::Response { id, outcome }))
                .await;
        }
        AgentRequest::CountLogLines {
            container_id,
            since_unix_seconds,
            pattern,
        } => {
            let counted = crate::log_count::count_log_lines(
                &*runtime,
                &container_id,
                since_unix_seconds,
                &pattern,
            )
            .await;
            let outcome = outcome_of(counted);
            let _ = outgoing
                .send(text(&AgentMessage::Response { id, outcome }))
                .await;
        }
        AgentRequest::Exec { .. } => unreachable!("execs run in `exec`"),
        AgentRequest::RemoveEnv { .. } => unreachable!("runs in `remove_env`"),
    }
}

/// The answer to a request whose work gave `result`: its value as JSON, or the reason it failed.
pub(super) fn outcome_of<T: serde::Serialize>(result: Result<T, String>) -> Outcome {
    match result.and_then(|value| serde_json::to_value(value).map_err(|error| error.to_string())) {
        Ok(value) => Outcome::Ok(value),
        Err(error) => Outcome::Failed {
            error,
            not_found: false,
            not_running: false,
        },
    }
}

fn failed(error: RuntimeError) -> Outcome {
    Outcome::Failed {
        not_found: matches!(error, RuntimeError::NoSuchContainer(_)),
        not_running: matches!(error, RuntimeError::NotRunning(_)),
        error: error.to_string(),
    }
}

/// Reports waiting to go out: bounded, and holding at most one snapshot (the newest), so a
/// long outage costs little memory and the server gets the current picture first thing.
#[derive(Default)]
struct Outbox {
    reports: Mutex<VecDeque<AgentReport>>,
    ready: Notify,
}

impl Outbox {
    async fn collect(self: Arc<Self>, mut reports: mpsc::UnboundedReceiver<AgentReport>) {
        while let Some(report) = reports.recv().await {
            self.push(report);
            self.ready.notify_one();
        }
    }

    fn push(&self, report: AgentReport) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(report, AgentReport::Snapshot { .. }) {
            reports.retain(|queued| !matches!(queued, AgentReport::Snapshot { .. }));
        }
        reports.push_back(report);
        while reports.len() > OUTBOX_LIMIT {
            reports.pop_front();
        }
    }

    fn forget_snapshots(&self) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        reports.retain(|queued| !matches!(queued, AgentReport::Snapshot { .. }));
    }

    fn push_front(&self, report: AgentReport) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        reports.push_front(report);
    }

    fn pop(&self) -> Option<AgentReport> {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

enum SessionError {
    /// The link dropped or could not be made: try again.
    Lost(String),
    /// Retrying cannot help.
    Fatal(LinkError),
}

fn lost(error: impl std::fmt::Display) -> SessionError {
    SessionError::Lost(error.to_string())
}

/// A refused upgrade (401, 403, 409) will not get better by itself; anything else might.
fn refusal(error: tokio_tungstenite::tungstenite::Error) -> SessionError {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Http(response) if response.status().is_client_error() => {
            let body = response
                .body()
                .as_ref()
                .map(|body| String::from_utf8_lossy(body).into_owned())
                .unwrap_or_default();
            SessionError::Fatal(LinkError::Refused(format!(
                "{}: {}",
                response.status(),
                body.trim()
            )))
        }
        other => lost(other),
    }
}

fn text(message: &impl serde::Serialize) -> Message {
    Message::Text(
        serde_json::to_string(message)
            .expect("protocol messages serialize")
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(host: &str) -> AgentReport {
        AgentReport::Snapshot {
            host: host.into(),
            containers: Vec::new(),
        }
    }

    #[test]
    fn the_outbox_keeps_only_the_newest_snapshot_and_stays_bounded() {
        let outbox = Outbox::default();
        outbox.push(snapshot("a"));
        outbox.push(snapshot("b"));
        assert_eq!(outbox.pop(), Some(snapshot("b")));
        assert_eq!(outbox.pop(), None);
        for _ in 0..OUTBOX_LIMIT + 5 {
            outbox.push(snapshot("x"));
        }
        assert_eq!(outbox.reports.lock().unwrap().len(), 1);
    }
}
