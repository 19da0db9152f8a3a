use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Message;
use bytes::Bytes;
use cj_api::agent::link::{
    AgentMessage, AgentRequest, DataFrame, LogsOptions, Outcome, ServerMessage, StreamKind,
};
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::base::lock;
use crate::error::{Failure, shown};

/// How long an agent may take to say who it is, and to answer a request.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued for one agent; a full queue means the agent stopped reading.
pub(crate) const OUTGOING_FRAMES: usize = 1024;
/// Chunks of one stream waiting for its reader; a reader that falls further behind loses the
/// stream rather than holding up everything else the agent sends.
pub(crate) const STREAM_CHUNKS: usize = 256;

/// The connected agents, by host name.
pub struct AgentLinks {
    pub(crate) sessions: std::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// Bumped whenever an agent connects or goes, so assignment routing is recomputed.
    pub(crate) joined: watch::Sender<u64>,
    pub(crate) next_id: AtomicU64,
}

pub(crate) struct Session {
    pub(crate) host: String,
    /// Tells this session from a newer one of the same host.
    pub(crate) number: u64,
    pub(crate) outgoing: mpsc::Sender<Message>,
    pub(crate) pending: std::sync::Mutex<HashMap<u64, Pending>>,
}

pub(crate) enum Pending {
    Reply(oneshot::Sender<Outcome>),
    Stream(mpsc::Sender<StreamItem>),
    Exec(super::exec::PendingExec),
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
    pub fn check_connected(&self, host: &str) -> Result<(), Failure> {
        self.session(host).map(drop)
    }

    pub(crate) fn session(&self, host: &str) -> Result<Arc<Session>, Failure> {
        lock(&self.sessions).get(host).cloned().ok_or_else(|| {
            Failure::Unavailable(format!(
                "host {} has no agent connected: its containers cannot be reached now",
                shown(host)
            ))
        })
    }

    pub(crate) fn request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks `host`'s agent to do `request` and waits up to `timeout` for its answer. A caller
    /// that goes away (or gives up) cancels the request on the agent.
    pub async fn ask(
        &self,
        host: &str,
        request: AgentRequest,
        timeout: Duration,
    ) -> Result<Outcome, Failure> {
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
            Ok(Err(_)) => Err(Failure::Unavailable(format!(
                "the agent of {host} went away before answering"
            ))),
            Err(_) => Err(Failure::BadGateway(format!(
                "the agent of {host} did not answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// How many lines `container_id` on `host` wrote since `since_unix_seconds`, and how many
    /// of them match `pattern`: counted by its agent, on the host.
    pub async fn count_log_lines(
        &self,
        host: &str,
        container_id: &str,
        since_unix_seconds: i64,
        pattern: &str,
    ) -> Result<cj_api::agent::link::LogLineCount, Failure> {
        let request = AgentRequest::CountLogLines {
            container_id: container_id.to_owned(),
            since_unix_seconds,
            pattern: pattern.to_owned(),
        };
        match self.ask(host, request, REQUEST_TIMEOUT).await? {
            Outcome::Ok(value) => serde_json::from_value(value).map_err(|error| {
                Failure::BadGateway(format!(
                    "the agent of {host} answered an odd count: {error}"
                ))
            }),
            Outcome::Failed { error, .. } => Err(Failure::BadGateway(format!(
                "the agent of {host} could not read the logs of {container_id}: {error}"
            ))),
        }
    }

    /// Docker's inspect of a container on `host`, through its agent.
    pub async fn inspect(
        &self,
        host: &str,
        container_id: &str,
    ) -> Result<serde_json::Value, Failure> {
        let request = AgentRequest::Inspect {
            container_id: container_id.to_owned(),
        };
        match self.ask(host, request, REQUEST_TIMEOUT).await? {
            Outcome::Ok(value) => Ok(value),
            Outcome::Failed {
                error,
                not_found: true,
                ..
            } => Err(Failure::NotFound(error)),
            Outcome::Failed { error, .. } => Err(Failure::BadGateway(format!(
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
        options: LogsOptions,
    ) -> Result<impl Stream<Item = StreamItem> + Send + 'static, Failure> {
        let session = self.session(host)?;
        let id = self.request_id();
        let (chunks, receiver) = mpsc::channel(STREAM_CHUNKS);
        lock(&session.pending).insert(id, Pending::Stream(chunks));
        let request = AgentRequest::Logs {
            container_id: container_id.to_owned(),
            options,
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
pub(crate) struct CancelOnDrop {
    pub(crate) session: Arc<Session>,
    pub(crate) id: u64,
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
    pub(crate) async fn send(&self, message: &ServerMessage) -> Result<(), Failure> {
        self.outgoing
            .send(text(message))
            .await
            .map_err(|_| Failure::Unavailable(format!("the agent of {} went away", self.host)))
    }

    /// Hands an agent's answer to whoever waits for it.
    pub(crate) fn deliver(&self, message: AgentMessage) {
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

    pub(crate) fn deliver_data(&self, frame: DataFrame) {
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

pub(crate) fn text(message: &ServerMessage) -> Message {
    Message::Text(
        serde_json::to_string(message)
            .expect("protocol messages serialize")
            .into(),
    )
}
