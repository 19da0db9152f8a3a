//! A stand-in server for one real agent: it accepts the agent's WebSocket, welcomes it into a
//! cluster of the test's own, sends assignments and requests, and keeps every report with the
//! moment it arrived, so tests measure what the server would see. The agent runs
//! (`run_remote`) against the real Docker engine; [`Cleanup`] removes every container and volume
//! of the test's cluster when dropped, also after a panic.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cj_runtime::{DockerRuntime, labels};
use coding_job_agent::link::{AgentMessage, AgentRequest, Outcome, ServerMessage};
use coding_job_agent::{AgentReport, Assignment, Phase, RemoteOptions, TaskKey, run_remote};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub const IMAGE: &str = "cj-example/busybox:1";
pub const HOST: &str = "test-host";

/// Builds the busybox test image if it is missing (no registry needed).
pub fn ensure_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-example-image.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(IMAGE)
        .status()
        .expect("run build-example-image.sh");
    assert!(status.success(), "building the test image failed");
}

pub fn unique_cluster() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:016x}",
        (nanos as u64) ^ (u64::from(std::process::id()) << 40)
    )
}

/// Removes every container and volume of `cluster` when dropped (through the CLI, which needs
/// no async runtime, so it works while a panic unwinds).
pub struct Cleanup {
    pub cluster: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={}={}", labels::CLUSTER, self.cluster);
        for (list, remove) in [
            (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f"]),
            (
                vec!["volume", "ls", "-q", "--filter", &filter],
                vec!["volume", "rm", "-f"],
            ),
        ] {
            let Ok(listed) = Command::new("docker").args(&list).output() else {
                continue;
            };
            let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !names.is_empty() {
                let _ = Command::new("docker").args(&remove).args(&names).output();
            }
        }
    }
}

/// A task of service `s` in env `env` running `command` in the busybox image.
pub fn task(env: &str, name: &str, command: &str) -> (TaskKey, cj_spec::TaskSpec) {
    let yaml = format!(
        "service: s\njobs:\n  - name: {name}\n    image: {IMAGE}\n    command: [sh, -c, {command:?}]\n"
    );
    let spec = cj_spec::parse_service("t.yaml", &yaml).unwrap();
    let key = TaskKey {
        env: env.into(),
        service: "s".into(),
        job: name.into(),
        task: name.into(),
    };
    (key, spec.jobs[0].tasks[0].clone())
}

pub fn assignment(key: TaskKey, spec: cj_spec::TaskSpec) -> Assignment {
    Assignment::new(key, 1, spec, HOST.into(), cj_spec::OnFailure::Restart)
}

/// The server's end of one agent's link.
pub struct FakeServer {
    pub cluster: String,
    socket: WebSocketStream<TcpStream>,
    generation: u64,
    next_request: u64,
    /// Every report so far, with when it arrived.
    pub reports: Vec<(Instant, AgentReport)>,
    /// Answers to requests not yet asked for.
    responses: Vec<(u64, Outcome)>,
    agent: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Starts an agent against the local engine and links it to this server.
    pub async fn start(cluster: &str) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let runtime = Arc::new(DockerRuntime::connect().await.unwrap());
        let options = RemoteOptions {
            server,
            token: None,
            host: HOST.into(),
            advertise: None,
            labels: Default::default(),
            resync_interval: Duration::from_secs(30),
            stop_grace_seconds: 2,
            stats_interval: Duration::from_secs(3600),
            host_size: None,
            tls: None,
            artifact_cache: Default::default(),
        };
        let agent = tokio::spawn(async move {
            run_remote(runtime, options, std::future::pending())
                .await
                .unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        let hello = socket.next().await.unwrap().unwrap();
        let hello: AgentMessage = serde_json::from_str(hello.to_text().unwrap()).unwrap();
        assert!(matches!(hello, AgentMessage::Hello(_)), "{hello:?}");
        let mut server = FakeServer {
            cluster: cluster.to_owned(),
            socket,
            generation: 0,
            next_request: 1,
            reports: Vec::new(),
            responses: Vec::new(),
            agent,
        };
        server
            .send(&ServerMessage::Welcome {
                cluster: cluster.to_owned(),
                host_down_after_ms: 30_000,
            })
            .await;
        server
    }

    pub async fn send(&mut self, message: &ServerMessage) {
        let text = serde_json::to_string(message).unwrap();
        self.socket.send(Message::Text(text.into())).await.unwrap();
    }

    /// Sends the host's assignments; returns when they were sent.
    pub async fn assign(&mut self, assignments: Vec<Assignment>) -> Instant {
        self.generation += 1;
        let message = ServerMessage::Assignments {
            generation: self.generation,
            published_unix_micros: 0,
            assignments,
            moved_away: Vec::new(),
        };
        self.send(&message).await;
        Instant::now()
    }

    /// Reads the link until `deadline`, keeping reports and answers; `false` at the deadline.
    async fn read_one(&mut self, deadline: Instant) -> bool {
        let message = match tokio::time::timeout_at(deadline, self.socket.next()).await {
            Err(_) => return false,
            Ok(message) => message.expect("the agent closed the link").unwrap(),
        };
        let Message::Text(text) = message else {
            return true;
        };
        match serde_json::from_str::<AgentMessage>(&text).unwrap() {
            AgentMessage::Report(report) => self.reports.push((Instant::now(), *report)),
            AgentMessage::Response { id, outcome } => self.responses.push((id, outcome)),
            _ => {}
        }
        true
    }

    /// Waits (up to `within`) for a report, from those not seen before index `from`, that
    /// `matches`; returns its index and when it arrived.
    pub async fn wait_for(
        &mut self,
        from: usize,
        within: Duration,
        what: &str,
        matches: impl Fn(&AgentReport) -> bool,
    ) -> (usize, Instant) {
        let deadline = Instant::now() + within;
        let mut checked = from;
        loop {
            while checked < self.reports.len() {
                if matches(&self.reports[checked].1) {
                    return (checked, self.reports[checked].0);
                }
                checked += 1;
            }
            if !self.read_one(deadline).await {
                let seen: Vec<_> = self.reports[from..].iter().map(|(_, r)| r).collect();
                panic!("no report {what} within {within:?}; since then: {seen:#?}");
            }
        }
    }

    /// Asks the agent `request` and waits (up to `within`) for its answer.
    pub async fn ask(&mut self, request: AgentRequest, within: Duration) -> Outcome {
        let id = self.next_request;
        self.next_request += 1;
        self.send(&ServerMessage::Request { id, request }).await;
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self
                .responses
                .iter()
                .position(|(answered, _)| *answered == id)
            {
                return self.responses.remove(at).1;
            }
            assert!(
                self.read_one(deadline).await,
                "no answer to request {id} within {within:?}"
            );
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.agent.abort();
    }
}

/// The container id of a `running` phase of `task` at config hash `hash`, if `report` is one.
pub fn running(report: &AgentReport, task: &TaskKey, hash: &str) -> Option<String> {
    match report {
        AgentReport::Phase {
            key,
            config_hash,
            phase: Phase::Running { container_id },
            ..
        } if key == task && config_hash == hash => Some(container_id.clone()),
        _ => None,
    }
}

/// Whether `report` is a snapshot whose containers pass `check`.
pub fn is_snapshot_with(
    report: &AgentReport,
    check: impl Fn(&[coding_job_agent::ObservedContainer]) -> bool,
) -> bool {
    matches!(report, AgentReport::Snapshot { containers, .. } if check(containers))
}
