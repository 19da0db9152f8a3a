//! The agent protocol: what an agent and its server say to each other over the one WebSocket the
//! agent opens (`GET /v1/agent/connect`). The agent dials out, so an agent behind NAT works; the
//! server never connects to a host.
//!
//! Control messages are JSON text frames. Data of streams (container logs, a command's output,
//! its input) go as binary frames, `[request id: 8 bytes big-endian][kind: 1 byte][bytes]`
//! ([`DataFrame`]), so output that is not UTF-8 passes unchanged and without JSON's overhead.
//!
//! An exec ([`AgentRequest::Exec`]) is a stream both ways. The agent answers
//! [`AgentMessage::Response`] once the command runs (or why it could not start), then sends its
//! output as stdout/stderr frames and ends with [`AgentMessage::ExecEnd`] (the exit code). The
//! server sends stdin frames, [`ServerMessage::ExecStdinEnd`] and [`ServerMessage::ExecResize`].
//! Each direction has a window of [`EXEC_WINDOW`] data frames of at most [`EXEC_CHUNK`] bytes:
//! a sender stops at that many frames the other end has not acknowledged
//! ([`ServerMessage::ExecAck`] for output written to the caller, [`AgentMessage::ExecAck`] for
//! input written to the command), so a slow reader slows the command down rather than filling
//! the link's queues.

use serde::{Deserialize, Serialize};

use super::{AgentReport, Assignment, TaskKey};

/// The protocol's version: a server refuses an agent that speaks another. 2: exec. 3: pre-warm
/// ([`ServerMessage::Prewarm`], [`AgentRequest::Pull`]), which an older agent would leave
/// unanswered. 4: [`AgentRequest::RemoveEnv`], volumes, and containers reported leaving before
/// they stop (`Assignment::drain_ms`, `ObservedContainer::leaving`), which an older agent would
/// ignore: the routers would lose requests in flight. 5: the link's timing from the server's
/// `--host-down-after` ([`ServerMessage::Welcome`]) and `Assignment::stop_when_cut`, without which
/// an older agent would keep running tasks the server moves. 6: [`AgentRequest::CountLogLines`]
/// (canary analysis by log errors), which an older agent would leave unanswered. 7:
/// [`AgentRequest::SnapshotVolume`] (volume snapshots) and `Assignment::volume_sources`, and a
/// task's `artifact` (its code, unpacked before it starts), which an older agent would ignore,
/// starting the image without the code; and the artifact phases it reports.
pub const PROTOCOL_VERSION: u32 = 7;

/// How quickly each end of a link notices that the other has gone silent, derived from the
/// cluster's `--host-down-after` (D) so that a cut link is noticed on both sides well within D:
/// each end pings every D/5 (between 200 ms and 5 s) and gives the link up after three pings'
/// worth of silence (at most 3/5 of D). With the default D of 30 s that is a ping every 5 s and a
/// 15 s timeout; with D = 5 s, every second and 3 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTiming {
    pub host_down_after: std::time::Duration,
}

impl LinkTiming {
    /// What an agent assumes until its server's welcome says otherwise.
    pub const DEFAULT: LinkTiming = LinkTiming {
        host_down_after: std::time::Duration::from_secs(30),
    };

    pub fn new(host_down_after: std::time::Duration) -> Self {
        LinkTiming { host_down_after }
    }

    /// How often each end pings the other (WebSocket pings, answered by the WebSocket layer).
    pub fn ping_interval(&self) -> std::time::Duration {
        (self.host_down_after / 5).clamp(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(5),
        )
    }

    /// A link silent this long is dead (a cut cable sends nothing, not even a close): the server
    /// forgets the agent's session, and the agent dials again.
    pub fn link_timeout(&self) -> std::time::Duration {
        self.ping_interval() * 3
    }

    /// How long an agent that hears nothing from its server waits before it stops the tasks
    /// that say `on_host_lost: stop`: two pings short of `--host-down-after`, so they are
    /// stopped before the server (which counts from the last message it heard, at most a ping
    /// after the agent's) places them on another host.
    pub fn stop_when_cut_after(&self) -> std::time::Duration {
        self.host_down_after
            .saturating_sub(self.ping_interval() * 2)
    }
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to [`AgentMessage::Hello`]: the installation's id, which labels every container
    /// the agent manages (it touches no other).
    Welcome {
        cluster: String,
        /// The cluster's `--host-down-after` in milliseconds: the link's timing
        /// ([`LinkTiming`]) and when `on_host_lost: stop` tasks stop on a cut host.
        host_down_after_ms: u64,
    },
    /// Everything this host should run: sent when the agent connects and on every change.
    Assignments {
        /// Bumped on every change, so an agent can tell a repeat from news.
        generation: u64,
        /// When the server published them (Unix time in microseconds), for the agent's latency
        /// log.
        #[serde(default)]
        published_unix_micros: i64,
        assignments: Vec<Assignment>,
        /// On a link's first message: tasks this host still has containers of that are assigned
        /// to other hosts now (they moved while it could not hear the server). Their copies here
        /// stop at once, without a drain, since no router sends to them any more.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        moved_away: Vec<TaskKey>,
    },
    /// Do something with a container of this host and answer with the request's id.
    Request { id: u64, request: AgentRequest },
    /// The caller of a streaming request went away: stop it. An exec's command is not killed:
    /// only its relay stops, as when `docker exec`'s client goes away.
    Cancel { id: u64 },
    /// The exec's input ended (the caller's stdin reached its end): close the command's stdin.
    ExecStdinEnd { id: u64 },
    /// The caller's terminal changed size (an exec with a tty).
    ExecResize { id: u64, rows: u16, cols: u16 },
    /// The server wrote this many of the exec's output frames to its caller.
    ExecAck { id: u64, frames: u32 },
    /// Every image this host runs or may run: pull the missing ones in the background, so a
    /// task started here later needs no pull. Sent when the agent connects and whenever the set
    /// changes; a new set replaces what is left of the previous one.
    Prewarm { images: Vec<String> },
}

/// Data frames of an exec one side may have sent and the other not yet acknowledged.
pub const EXEC_WINDOW: u32 = 16;
/// The most bytes of one exec data frame.
pub const EXEC_CHUNK: usize = 64 * 1024;

/// Which of a container's output [`AgentRequest::Logs`] asks for, as the engine selects it.
/// `since` and `timestamps` came later than the rest: they are left out of the message when
/// unused, and an agent of an earlier build ignores them (it sends all the output, without
/// times).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsOptions {
    /// Only the last this many lines (all when absent).
    #[serde(default)]
    pub tail: Option<u32>,
    /// Keep sending new output until the container stops.
    #[serde(default)]
    pub follow: bool,
    /// Only output written at or after this time, in whole seconds since the Unix epoch (the
    /// engine's resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_unix_seconds: Option<i64>,
    /// Begin each line with the time the engine received it (RFC 3339, with nanoseconds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timestamps: bool,
}

/// What the server asks of an agent on behalf of an API call (the server never talks to Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentRequest {
    /// Docker's inspect of a container; answered with [`AgentMessage::Response`].
    Inspect { container_id: String },
    /// A container's output: binary [`DataFrame`]s, then [`AgentMessage::StreamEnd`].
    Logs {
        container_id: String,
        #[serde(flatten)]
        options: LogsOptions,
    },
    /// Runs `command` in the running container, attached: [`AgentMessage::Response`] once it
    /// runs, output frames, then [`AgentMessage::ExecEnd`] (see the module's description).
    Exec {
        container_id: String,
        command: Vec<String>,
        /// A pseudo-terminal (output is one stream, as stdout).
        tty: bool,
        /// Attach the command's stdin to stdin frames.
        stdin: bool,
        /// The terminal's size at the start, with `tty`.
        #[serde(default)]
        size: Option<TerminalSize>,
    },
    /// Pulls each missing image, one at a time (`hosts prewarm`); answered with
    /// [`AgentMessage::Response`] holding a `Vec<cj_api::ImagePull>` once all are done.
    Pull { images: Vec<String> },
    /// Removes what environment `env` left on this host: every container of it that no current
    /// assignment wants (a running one is reported leaving and stopped after its drain, as the
    /// loop would), then, unless `keep_volumes`, every volume of it whose task is not assigned
    /// here. Answered with [`AgentMessage::Response`] holding a [`RemoveEnvOutcome`] once done,
    /// or failed with what could not be removed (asking again is safe). Send it after the
    /// assignments without the environment: requests are carried out after the assignments sent
    /// before them are taken in.
    RemoveEnv { env: String, keep_volumes: bool },
    /// Counts the lines of a container's output (stdout and stderr) written at or after
    /// `since_unix_seconds` that match the regular expression `pattern`, on the host, so the
    /// log never crosses the network. Answered with [`AgentMessage::Response`] holding a
    /// [`LogLineCount`].
    CountLogLines {
        container_id: String,
        since_unix_seconds: i64,
        pattern: String,
    },
    /// Copies the directory `mount` of the container (a volume's mount) as a zstd-compressed
    /// tar to the agent's disk, the container paused meanwhile if `pause`, then sends it with
    /// `PUT upload` (a path on the server the link is to, e.g. `/v1/agent/snapshots/ID`).
    /// Answered with [`AgentMessage::Response`] holding a [`SnapshotTaken`] once the server
    /// has it all.
    SnapshotVolume {
        container_id: String,
        mount: String,
        pause: bool,
        upload: String,
    },
}

/// What [`AgentRequest::SnapshotVolume`] made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTaken {
    /// Bytes of the tar.
    pub content_bytes: u64,
    /// Bytes of the compressed archive sent.
    pub size_bytes: u64,
    /// SHA-256 of the compressed archive, hex.
    pub sha256: String,
    /// How long the container was paused, in milliseconds (with `pause`).
    pub paused_ms: Option<u64>,
}

/// What [`AgentRequest::CountLogLines`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineCount {
    /// Lines read.
    pub lines: u64,
    /// Of those, lines matching the pattern.
    pub matching: u64,
}

/// What [`AgentRequest::RemoveEnv`] did, by the engine's names, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveEnvOutcome {
    pub containers_removed: Vec<String>,
    pub volumes_removed: Vec<String>,
    /// Left in place: all of them with `keep_volumes`, else those of tasks still assigned here.
    pub volumes_kept: Vec<String>,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

/// What an agent sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The first message on every connection.
    Hello(AgentHello),
    Report(Box<AgentReport>),
    /// The answer to a request that is not a stream.
    Response {
        id: u64,
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// A stream ended (the container's output closed, or an error).
    StreamEnd {
        id: u64,
        error: Option<String>,
    },
    /// The agent wrote this many of the exec's stdin frames to the command.
    ExecAck {
        id: u64,
        frames: u32,
    },
    /// An exec ended: its output closed, and the command's exit code (`None` if the engine
    /// could not tell, with `error` saying why).
    ExecEnd {
        id: u64,
        exit_code: Option<i64>,
        error: Option<String>,
    },
}

/// Who is connecting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    pub protocol: u32,
    /// The host's name, as configs name it in `run_on_host`.
    pub host: String,
    /// The agent's build, for `hosts` and for telling old agents apart.
    pub agent_version: String,
    /// The address others reach this host at (`--advertise`); the server otherwise shows the
    /// address the link comes from.
    #[serde(default)]
    pub advertise: Option<String>,
    /// `--label KEY=VALUE`: what the host is (zone, disk, ...).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A request's result: a JSON value, or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(serde_json::Value),
    /// `not_found` tells "no such container" from other failures; `not_running`, a container
    /// that is there but not running (an exec into it).
    Failed {
        error: String,
        not_found: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        not_running: bool,
    },
}

/// Which of a stream's data a frame carries (numbered as Docker numbers them: 0 stdin, 1
/// stdout, 2 stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Input of an exec, from the server to the agent.
    Stdin,
    Stdout,
    Stderr,
}

impl StreamKind {
    pub fn byte(self) -> u8 {
        match self {
            StreamKind::Stdin => 0,
            StreamKind::Stdout => 1,
            StreamKind::Stderr => 2,
        }
    }

    pub fn from_byte(byte: u8) -> Option<StreamKind> {
        match byte {
            0 => Some(StreamKind::Stdin),
            1 => Some(StreamKind::Stdout),
            2 => Some(StreamKind::Stderr),
            _ => None,
        }
    }
}

/// A piece of a stream's data, as a binary frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame {
    pub id: u64,
    pub kind: StreamKind,
    pub data: Vec<u8>,
}

impl DataFrame {
    pub fn encode(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(9 + self.data.len());
        frame.extend_from_slice(&self.id.to_be_bytes());
        frame.push(self.kind.byte());
        frame.extend_from_slice(&self.data);
        frame
    }

    pub fn decode(frame: &[u8]) -> Option<DataFrame> {
        let id = u64::from_be_bytes(frame.get(..8)?.try_into().ok()?);
        let kind = StreamKind::from_byte(*frame.get(8)?)?;
        Some(DataFrame {
            id,
            kind,
            data: frame[9..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_round_trip_and_refuse_garbage() {
        let frame = DataFrame {
            id: 0x0102_0304_0506_0708,
            kind: StreamKind::Stderr,
            data: vec![0xff, 0, b'\n'],
        };
        assert_eq!(DataFrame::decode(&frame.encode()), Some(frame));
        assert_eq!(DataFrame::decode(&[1, 2, 3]), None);
        assert_eq!(DataFrame::decode(&[0, 0, 0, 0, 0, 0, 0, 1, 9]), None);
        let stdin = DataFrame {
            id: 9,
            kind: StreamKind::Stdin,
            data: b"in".to_vec(),
        };
        assert_eq!(stdin.encode()[8], 0);
        assert_eq!(DataFrame::decode(&stdin.encode()), Some(stdin));
    }

    #[test]
    fn exec_messages_read_as_written() {
        let request = ServerMessage::Request {
            id: 4,
            request: AgentRequest::Exec {
                container_id: "c".into(),
                command: vec!["sh".into(), "-c".into(), "exit 3".into()],
                tty: true,
                stdin: false,
                size: Some(TerminalSize { rows: 24, cols: 80 }),
            },
        };
        for message in [
            request,
            ServerMessage::ExecStdinEnd { id: 4 },
            ServerMessage::ExecResize {
                id: 4,
                rows: 50,
                cols: 132,
            },
            ServerMessage::ExecAck { id: 4, frames: 2 },
        ] {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(
                serde_json::from_str::<ServerMessage>(&text).unwrap(),
                message
            );
        }
        let end = AgentMessage::ExecEnd {
            id: 4,
            exit_code: Some(3),
            error: None,
        };
        let text = serde_json::to_string(&end).unwrap();
        assert_eq!(
            text,
            r#"{"message":"exec_end","id":4,"exit_code":3,"error":null}"#
        );
        assert_eq!(serde_json::from_str::<AgentMessage>(&text).unwrap(), end);
    }

    #[test]
    fn assignments_read_as_written() {
        // Internally tagged enums go through serde's buffered content, which has no 128-bit
        // integers: every field must be a type it can hold.
        let sent = ServerMessage::Assignments {
            generation: 3,
            published_unix_micros: 1_790_000_000_000_000,
            assignments: Vec::new(),
            moved_away: Vec::new(),
        };
        let text = serde_json::to_string(&sent).unwrap();
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), sent);
    }

    #[test]
    fn prewarm_messages_read_as_written() {
        let images = vec!["registry:5000/app:2".to_owned(), "db:16".to_owned()];
        let prewarm = ServerMessage::Prewarm {
            images: images.clone(),
        };
        let text = serde_json::to_string(&prewarm).unwrap();
        assert_eq!(
            text,
            r#"{"message":"prewarm","images":["registry:5000/app:2","db:16"]}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            prewarm
        );
        let pull = ServerMessage::Request {
            id: 9,
            request: AgentRequest::Pull { images },
        };
        let text = serde_json::to_string(&pull).unwrap();
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), pull);
    }

    #[test]
    fn remove_env_reads_as_written() {
        let request = ServerMessage::Request {
            id: 5,
            request: AgentRequest::RemoveEnv {
                env: "pr-42".into(),
                keep_volumes: false,
            },
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            text,
            r#"{"message":"request","id":5,"request":{"kind":"remove_env","env":"pr-42","keep_volumes":false}}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            request
        );
        let outcome = RemoveEnvOutcome {
            containers_removed: vec!["web_blog_pr-42_1700000000".into()],
            volumes_removed: vec!["data_web_blog_pr-42_0123abcd".into()],
            volumes_kept: Vec::new(),
        };
        let value = serde_json::to_value(&outcome).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "containers_removed": ["web_blog_pr-42_1700000000"],
                "volumes_removed": ["data_web_blog_pr-42_0123abcd"],
                "volumes_kept": []
            })
        );
        assert_eq!(
            serde_json::from_value::<RemoveEnvOutcome>(value).unwrap(),
            outcome
        );
    }

    #[test]
    fn logs_requests_read_as_written_and_as_earlier_builds_wrote_them() {
        let plain = ServerMessage::Request {
            id: 3,
            request: AgentRequest::Logs {
                container_id: "c".into(),
                options: LogsOptions {
                    tail: Some(10),
                    follow: true,
                    ..LogsOptions::default()
                },
            },
        };
        // Without `since` and `timestamps`, the message an earlier build sent and reads.
        let text = serde_json::to_string(&plain).unwrap();
        assert_eq!(
            text,
            r#"{"message":"request","id":3,"request":{"kind":"logs","container_id":"c","tail":10,"follow":true}}"#
        );
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), plain);
        let dated = ServerMessage::Request {
            id: 4,
            request: AgentRequest::Logs {
                container_id: "c".into(),
                options: LogsOptions {
                    tail: None,
                    follow: false,
                    since_unix_seconds: Some(1_790_000_000),
                    timestamps: true,
                },
            },
        };
        let text = serde_json::to_string(&dated).unwrap();
        assert_eq!(
            text,
            r#"{"message":"request","id":4,"request":{"kind":"logs","container_id":"c","tail":null,"follow":false,"since_unix_seconds":1790000000,"timestamps":true}}"#
        );
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), dated);
    }

    #[test]
    fn messages_read_as_written() {
        let text = serde_json::to_string(&AgentMessage::Response {
            id: 7,
            outcome: Outcome::Failed {
                error: "no such container".into(),
                not_found: true,
                not_running: false,
            },
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"message":"response","id":7,"failed":{"error":"no such container","not_found":true}}"#
        );
        let back: AgentMessage = serde_json::from_str(&text).unwrap();
        assert!(matches!(back, AgentMessage::Response { id: 7, .. }));
    }
}
