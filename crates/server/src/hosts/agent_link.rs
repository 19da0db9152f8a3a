//! The server's end of the agent protocol (`cj_api::agent::link`): every agent holds one WebSocket
//! (`GET /v1/agent/connect`) over which it gets its host's assignments the moment they change,
//! sends its reports, and answers requests about its containers (inspect, logs, exec: see
//! [`exec`]). The server never talks to Docker; whatever it needs from an engine it asks the
//! agent of that engine's host.
//!
//! Which assignments a host gets: those whose declared host is its name. A `dev` server also
//! has a local host (its in-process agent): declared hosts that no agent has joined as map to
//! it, so one machine runs any config while an agent that joins as `host-2` takes host-2's tasks.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use cj_api::agent::Assignment;
use cj_api::agent::link::{AgentHello, AgentMessage, DataFrame, PROTOCOL_VERSION, ServerMessage};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use tokio::sync::mpsc;

use crate::base::lock;
use crate::control::published::Published;
use crate::error::shown;
use crate::state::ServerState;

use cj_api::agent::link::LinkTiming;

mod exec;

pub use exec::{ExecInput, ExecItem, ExecOutput, ExecRequest};

pub mod links;
#[allow(unused_imports)]
pub(crate) use links::*;

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
    headers: axum::http::HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A link another server of the cluster forwarded comes from where that server says.
    let forwarded = crate::cluster::forwarding::relay_secret(&*state.store)
        .ok()
        .and_then(|secret| crate::cluster::forwarding::forwarded_for(&headers, &secret));
    let peer = forwarded.or_else(|| {
        peer.map(|axum::Extension(axum::extract::ConnectInfo(address))| address.ip().to_string())
    });
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
    tokio::spawn(crate::envs::debts::pay_debts(
        state.clone(),
        session.host.clone(),
    ));
    let prewarm = tokio::spawn(crate::hosts::prewarm::keep_agent_warm(
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
