//! The server's end of the agent protocol (`cj_api::agent::link`): every agent holds one WebSocket
//! (`GET /v1/agent/connect`) over which it gets its host's assignments the moment they change,
//! sends its reports, and answers requests about its containers (inspect, logs, exec: see
//! [`exec`]). The server never talks to Docker; whatever it needs from an engine it asks the
//! agent of that engine's host.
//!
//! Which assignments a host gets: those whose declared host is its name. A `dev` server also
//! has a local host (its in-process agent): declared hosts that no agent has joined as map to
//! it, so one machine runs any config while an agent that joins as `host-2` takes host-2's tasks.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use cj_api::agent::Assignment;
use cj_api::agent::link::{
    AgentHello, AgentMessage, AgentRequest, DataFrame, Outcome, PROTOCOL_VERSION, ServerMessage,
    StreamKind,
};
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::{SinkExt, Stream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::control::published::Published;
use crate::error::{ApiFailure, shown};
use crate::state::ServerState;
use crate::base::lock;

use cj_api::agent::link::LinkTiming;

mod exec;

pub use exec::{ExecInput, ExecItem, ExecOutput, ExecRequest};

/// How long an agent may take to say who it is, and to answer a request.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued for one agent; a full queue means the agent stopped reading.
const OUTGOING_FRAMES: usize = 1024;
/// Chunks of one stream waiting for its reader; a reader that falls further behind loses the
/// stream rather than holding up everything else the agent sends.
const STREAM_CHUNKS: usize = 256;

/// The connected agents, by host name.
pub struct AgentLinks {
    sessions: std::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// Bumped whenever an agent connects or goes, so assignment routing is recomputed.
    joined: watch::Sender<u64>,
    next_id: AtomicU64,
}

struct Session {
    host: String,
    /// Tells this session from a newer one of the same host.
    number: u64,
    outgoing: mpsc::Sender<Message>,
    pending: std::sync::Mutex<HashMap<u64, Pending>>,
}

enum Pending {
    Reply(oneshot::Sender<Outcome>),
    Stream(mpsc::Sender<StreamItem>),
    Exec(exec::PendingExec),
}

/// A piece of a stream an agent sends (container logs): output on stdout or stderr, then the
/// end (with why, if it ended early).
pub enum StreamItem {
    Data(StreamKind, Bytes),
    End(Option<String>),
}

impl Default for AgentLinks {
    fn default() -> Self {
        AgentLinks {
            sessions: std::sync::Mutex::default(),
            joined: watch::channel(0).0,
            next_id: AtomicU64::new(1),
        }
    }
}

impl AgentLinks {
    /// The hosts with an agent connected now.
    pub fn hosts(&self) -> BTreeSet<String> {
        lock(&self.sessions).keys().cloned().collect()
    }

    /// Told whenever an agent connects or goes.
    pub fn subscribe_joined(&self) -> watch::Receiver<u64> {
        self.joined.subscribe()
    }

    /// Counts `host` as linked without an agent behind it (nothing it is sent goes anywhere):
    /// for tests and benchmarks of what rests on which hosts are linked.
    #[doc(hidden)]
    pub fn link_without_agent(&self, host: &str) {
        let (outgoing, _) = mpsc::channel(1);
        let session = Arc::new(Session {
            host: host.to_owned(),
            number: self.request_id(),
            outgoing,
            pending: std::sync::Mutex::default(),
        });
        lock(&self.sessions).insert(host.to_owned(), session);
        self.joined.send_modify(|n| *n += 1);
    }

    /// Whether `host`'s agent is connected now.
    pub fn is_connected(&self, host: &str) -> bool {
        lock(&self.sessions).contains_key(host)
    }

    /// Whether `host`'s agent is connected: a `host_unavailable` failure if not.
    pub fn check_connected(&self, host: &str) -> Result<(), ApiFailure> {
        self.session(host).map(drop)
    }

    fn session(&self, host: &str) -> Result<Arc<Session>, ApiFailure> {
        lock(&self.sessions).get(host).cloned().ok_or_else(|| {
            ApiFailure::Unavailable(format!(
                "host {} has no agent connected: its containers cannot be reached now",
                shown(host)
            ))
        })
    }

    fn request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks `host`'s agent to do `request` and waits up to `timeout` for its answer. A caller
    /// that goes away (or gives up) cancels the request on the agent.
    pub async fn ask(
        &self,
        host: &str,
        request: AgentRequest,
        timeout: Duration,
    ) -> Result<Outcome, ApiFailure> {
        let session = self.session(host)?;
        let id = self.request_id();
        let (reply, answer) = oneshot::channel();
        lock(&session.pending).insert(id, Pending::Reply(reply));
        let _cancel = CancelOnDrop {
            session: session.clone(),
            id,
        };
        session
            .send(&ServerMessage::Request { id, request })
            .await?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(ApiFailure::Unavailable(format!(
                "the agent of {host} went away before answering"
            ))),
            Err(_) => Err(ApiFailure::BadGateway(format!(
                "the agent of {host} did not answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Docker's inspect of a container on `host`, through its agent.
    pub async fn inspect(
        &self,
        host: &str,
        container_id: &str,
    ) -> Result<serde_json::Value, ApiFailure> {
        let request = AgentRequest::Inspect {
            container_id: container_id.to_owned(),
        };
        match self.ask(host, request, REQUEST_TIMEOUT).await? {
            Outcome::Ok(value) => Ok(value),
            Outcome::Failed {
                error,
                not_found: true,
                ..
            } => Err(ApiFailure::NotFound(error)),
            Outcome::Failed { error, .. } => Err(ApiFailure::BadGateway(format!(
                "the agent of {host} could not inspect {container_id}: {error}"
            ))),
        }
    }

    /// A container's output on `host`, as its agent streams it. Dropping the stream tells the
    /// agent to stop.
    pub async fn logs(
        &self,
        host: &str,
        container_id: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> Result<impl Stream<Item = StreamItem> + Send + 'static, ApiFailure> {
        let session = self.session(host)?;
        let id = self.request_id();
        let (chunks, receiver) = mpsc::channel(STREAM_CHUNKS);
        lock(&session.pending).insert(id, Pending::Stream(chunks));
        let request = AgentRequest::Logs {
            container_id: container_id.to_owned(),
            tail,
            follow,
        };
        session
            .send(&ServerMessage::Request { id, request })
            .await?;
        let guard = CancelOnDrop {
            session: session.clone(),
            id,
        };
        Ok(futures_util::stream::unfold(
            (receiver, guard, false),
            |(mut receiver, guard, ended)| async move {
                if ended {
                    return None;
                }
                let item = receiver
                    .recv()
                    .await
                    .unwrap_or(StreamItem::End(Some("the agent went away".into())));
                let ended = matches!(item, StreamItem::End(_));
                Some((item, (receiver, guard, ended)))
            },
        ))
    }
}

/// Ends a stream's request on the agent when its reader goes away.
struct CancelOnDrop {
    session: Arc<Session>,
    id: u64,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if lock(&self.session.pending).remove(&self.id).is_some() {
            let _ = self
                .session
                .outgoing
                .try_send(text(&ServerMessage::Cancel { id: self.id }));
        }
    }
}

impl Session {
    async fn send(&self, message: &ServerMessage) -> Result<(), ApiFailure> {
        self.outgoing
            .send(text(message))
            .await
            .map_err(|_| ApiFailure::Unavailable(format!("the agent of {} went away", self.host)))
    }

    /// Hands an agent's answer to whoever waits for it.
    fn deliver(&self, message: AgentMessage) {
        match message {
            AgentMessage::Response { id, outcome } => {
                let mut pending = lock(&self.pending);
                match pending.remove(&id) {
                    Some(Pending::Reply(reply)) => {
                        let _ = reply.send(outcome);
                    }
                    // An exec's first answer: it runs (and stays pending), or it failed.
                    Some(Pending::Exec(mut exec)) => {
                        let runs = matches!(outcome, Outcome::Ok(_));
                        exec.started(outcome);
                        if runs {
                            pending.insert(id, Pending::Exec(exec));
                        }
                    }
                    Some(other) => {
                        pending.insert(id, other);
                    }
                    None => {}
                }
            }
            AgentMessage::ExecAck { id, frames } => {
                if let Some(Pending::Exec(exec)) = lock(&self.pending).get(&id) {
                    exec.acknowledged(frames);
                }
            }
            AgentMessage::ExecEnd {
                id,
                exit_code,
                error,
            } => {
                if let Some(Pending::Exec(exec)) = lock(&self.pending).remove(&id) {
                    exec.ended(exit_code, error);
                }
            }
            AgentMessage::StreamEnd { id, error } => {
                if let Some(Pending::Stream(chunks)) = lock(&self.pending).remove(&id) {
                    let _ = chunks.try_send(StreamItem::End(error));
                }
            }
            AgentMessage::Hello(_) | AgentMessage::Report(_) => {}
        }
    }

    fn deliver_data(&self, frame: DataFrame) {
        let mut pending = lock(&self.pending);
        if let Some(Pending::Exec(exec)) = pending.get(&frame.id) {
            if exec.output(frame.kind, frame.data).is_err() {
                // Beyond its window: the agent broke the protocol; the exec ends.
                tracing::warn!(host = self.host, "an agent overran an exec's window");
                pending.remove(&frame.id);
                let _ = self
                    .outgoing
                    .try_send(text(&ServerMessage::Cancel { id: frame.id }));
            }
            return;
        }
        let Some(Pending::Stream(chunks)) = pending.get(&frame.id) else {
            return;
        };
        if chunks
            .try_send(StreamItem::Data(frame.kind, frame.data.into()))
            .is_err()
        {
            // The reader fell behind (or left): end its stream instead of waiting for it.
            let stalled = StreamItem::End(Some("the reader fell behind".into()));
            if let Some(Pending::Stream(chunks)) = pending.remove(&frame.id) {
                let _ = chunks.try_send(stalled);
            }
            let _ = self
                .outgoing
                .try_send(text(&ServerMessage::Cancel { id: frame.id }));
        }
    }
}

/// `GET /v1/agent/connect`: an agent's link.
#[utoipa::path(
    get,
    path = "/v1/agent/connect",
    responses(
        (status = 101, description = "a WebSocket: the agent's link (needs an `agent` token)"),
        (status = 400, description = "the request has no WebSocket upgrade headers", body = cj_api::ApiError),
    )
)]
pub async fn connect(
    State(state): State<Arc<ServerState>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let peer =
        peer.map(|axum::Extension(axum::extract::ConnectInfo(address))| address.ip().to_string());
    upgrade.on_upgrade(move |socket| serve_agent(state, socket, peer))
}

async fn serve_agent(state: Arc<ServerState>, mut socket: WebSocket, peer: Option<String>) {
    let hello = match read_hello(&mut socket).await {
        Ok(hello) => hello,
        Err(reason) => {
            tracing::warn!(%reason, "refused an agent");
            let close = CloseFrame {
                code: axum::extract::ws::close_code::POLICY,
                reason: reason.into(),
            };
            let _ = socket.send(Message::Close(Some(close))).await;
            return;
        }
    };
    let timing = LinkTiming::new(state.scheduler.host_down_after());
    let welcome = ServerMessage::Welcome {
        cluster: state.cluster.clone(),
        host_down_after_ms: timing.host_down_after.as_millis() as u64,
    };
    if socket.send(text(&welcome)).await.is_err() {
        return;
    }
    let links = &state.links;
    let (outgoing, frames) = mpsc::channel(OUTGOING_FRAMES);
    let session = Arc::new(Session {
        host: hello.host.clone(),
        number: links.request_id(),
        outgoing,
        pending: std::sync::Mutex::default(),
    });
    // A reconnecting agent replaces its old session, which then ends.
    lock(&links.sessions).insert(hello.host.clone(), session.clone());
    state.host_joined(
        &hello.host,
        hello.advertise.clone().or(peer),
        hello.labels.clone(),
    );
    links.joined.send_modify(|n| *n += 1);
    tracing::info!(
        host = hello.host,
        version = hello.agent_version,
        "agent connected"
    );

    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_to_agent(
        state.clone(),
        session.clone(),
        timing,
        sink,
        frames,
    ));
    // After the writer's first message (the assignments), so the agent removes what is left of
    // an environment only once it knows what it must keep.
    tokio::spawn(crate::debts::pay_debts(state.clone(), session.host.clone()));
    let prewarm = tokio::spawn(crate::prewarm::keep_agent_warm(
        state.clone(),
        session.host.clone(),
        session.outgoing.clone(),
    ));
    // A link that goes silent (a cut cable sends no FIN) ends here: the server pings every
    // ping interval and the agent's pong, reports or stats arrive well within the link timeout,
    // both derived from --host-down-after so a cut is noticed before the host counts as lost.
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(timing.link_timeout(), stream.next()).await
    {
        state.hosts.heard_from(&session.host);
        match message {
            Message::Text(text) => match serde_json::from_str::<AgentMessage>(&text) {
                Ok(AgentMessage::Report(report)) => {
                    state.take_report((*report).from_host(&session.host));
                }
                Ok(other) => session.deliver(other),
                Err(error) => {
                    tracing::warn!(host = session.host, %error, "unreadable agent message")
                }
            },
            Message::Binary(frame) => {
                if let Some(frame) = DataFrame::decode(&frame) {
                    session.deliver_data(frame);
                }
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
        if writer.is_finished() {
            break;
        }
    }
    writer.abort();
    prewarm.abort();
    let mut sessions = lock(&links.sessions);
    let ended = sessions
        .get(&session.host)
        .is_some_and(|current| current.number == session.number);
    if ended {
        sessions.remove(&session.host);
        state.hosts.left(&session.host);
    }
    drop(sessions);
    // Outside the lock (a store write waits on the disk); a link that came back meanwhile
    // has recorded its own joining, which this must not follow.
    if ended && !links.hosts().contains(&session.host) {
        state.record_host_left(&session.host);
    }
    links.joined.send_modify(|n| *n += 1);
    // Whoever waits on this agent hears it went away (their senders drop here).
    lock(&session.pending).clear();
    tracing::info!(host = session.host, "agent disconnected");
}

async fn read_hello(socket: &mut WebSocket) -> Result<AgentHello, String> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, socket.recv())
        .await
        .map_err(|_| "no hello from the agent".to_owned())?;
    let Some(Ok(Message::Text(text))) = first else {
        return Err("expected a hello".into());
    };
    let Ok(AgentMessage::Hello(hello)) = serde_json::from_str(&text) else {
        return Err("expected a hello".into());
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err(format!(
            "agent protocol {} is not this server's ({PROTOCOL_VERSION}): run the same coding-job release on both",
            hello.protocol
        ));
    }
    if !valid_host_name(&hello.host) {
        return Err(format!(
            "invalid host name {}: expected 1 to 63 letters, digits, '-', '_' or '.'",
            shown(&hello.host)
        ));
    }
    Ok(hello)
}

fn valid_host_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Sends the host's assignments whenever they (or who is connected) change, and whatever else
/// is queued for the agent.
async fn write_to_agent(
    state: Arc<ServerState>,
    session: Arc<Session>,
    timing: LinkTiming,
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Message>,
) {
    let mut assignments = state.scheduler.subscribe();
    let mut joined = state.links.joined.subscribe();
    let mut generation = 0;
    let mut last_sent: Option<Vec<Assignment>> = None;
    let mut ping = tokio::time::interval(timing.ping_interval());
    loop {
        let all = assignments.borrow_and_update().clone();
        joined.borrow_and_update();
        // Until the server has loaded its desired state there is nothing to say: an agent must
        // not take "nothing yet" for "remove everything".
        if let Some(published) = all {
            let mine = assignments_for(
                &session.host,
                &published,
                &state.hosts.known(),
                state.local_host.as_deref(),
            );
            if last_sent.as_ref() != Some(&mine) {
                generation += 1;
                let message = ServerMessage::Assignments {
                    generation,
                    published_unix_micros: published.at_unix_micros,
                    assignments: mine.clone(),
                    // Only the link's first message: what moved while the host could not hear
                    // the server. A task leaving it later (a hand-over, a move) drains as usual.
                    moved_away: if generation == 1 {
                        state.moved_away_from(&session.host)
                    } else {
                        Vec::new()
                    },
                };
                if sink.send(text(&message)).await.is_err() {
                    return;
                }
                last_sent = Some(mine);
            }
        }
        tokio::select! {
            _ = ping.tick() => if sink.send(Message::Ping(Bytes::new())).await.is_err() { return },
            changed = assignments.changed() => if changed.is_err() { return },
            changed = joined.changed() => if changed.is_err() { return },
            frame = frames.recv() => match frame {
                Some(frame) => if sink.send(frame).await.is_err() { return },
                None => return,
            },
        }
    }
}

/// The assignments of `host`: those for it; on a server with a local host, that host also
/// takes the ones declared for hosts no agent has ever joined as. A host that joined once keeps
/// its tasks while it is away, so nothing runs twice when it comes back.
pub fn assignments_for(
    host: &str,
    published: &Published,
    known: &BTreeSet<String>,
    local_host: Option<&str>,
) -> Vec<Assignment> {
    let mut mine: Vec<Assignment> = published.on_host(host).cloned().collect();
    if local_host == Some(host) {
        let stood_in_for = published
            .hosts()
            .filter(|declared| *declared != host && !known.contains(*declared));
        for declared in stood_in_for {
            mine.extend(published.on_host(declared).cloned());
        }
        mine.sort_by(|a, b| (&a.key, &a.declared_host).cmp(&(&b.key, &b.declared_host)));
    }
    mine
}

fn text(message: &ServerMessage) -> Message {
    Message::Text(
        serde_json::to_string(message)
            .expect("protocol messages serialize")
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(task: &str, host: &str) -> Assignment {
        let spec: cj_spec::TaskSpec = serde_json::from_value(serde_json::json!({
            "name": task, "image": "i:1", "command": null, "env": {}, "port": 0,
            "run_on_host": host, "resources": {"memory_bytes": null, "nano_cpus": null},
            "init": true, "docker_hostconfig": {}, "docker_config": {}
        }))
        .unwrap();
        let key = cj_api::agent::TaskKey {
            env: "production".into(),
            service: "s".into(),
            job: "j".into(),
            task: task.into(),
        };
        Assignment::new(key, 1, spec, host.into(), cj_spec::OnFailure::Restart)
    }

    fn tasks(assignments: Vec<Assignment>) -> Vec<String> {
        assignments.into_iter().map(|a| a.key.task).collect()
    }

    #[test]
    fn each_host_gets_its_own_and_a_dev_server_runs_the_rest_locally() {
        let all = Published::new(
            vec![
                assignment("a", "host-1"),
                assignment("b", "host-2"),
                assignment("c", "laptop"),
            ],
            Default::default(),
        );
        let connected: BTreeSet<String> = ["laptop".to_string(), "host-2".to_string()].into();
        assert_eq!(
            tasks(assignments_for("host-2", &all, &connected, Some("laptop"))),
            ["b"]
        );
        assert_eq!(
            tasks(assignments_for("laptop", &all, &connected, Some("laptop"))),
            ["a", "c"]
        );
        // A server without a local host runs nothing for hosts that have not joined.
        assert_eq!(
            tasks(assignments_for("host-2", &all, &connected, None)),
            ["b"]
        );
        assert!(assignments_for("host-1", &all, &connected, None).len() == 1);
    }

    #[test]
    fn host_names_are_checked() {
        assert!(valid_host_name("host-1"));
        assert!(!valid_host_name(""));
        assert!(!valid_host_name("a/b"));
        assert!(!valid_host_name(&"x".repeat(64)));
    }
}
