//! The agent protocol: what an agent and its server say to each other over the one WebSocket the
//! agent opens (`GET /v1/agent/connect`). The agent dials out, so an agent behind NAT works; the
//! server never connects to a host.
//!
//! Control messages are JSON text frames. Data of streams the server asked for (container logs)
//! go as binary frames, `[request id: 8 bytes big-endian][kind: 1 byte][bytes]`, so log output
//! that is not UTF-8 passes unchanged and without JSON's overhead.

use serde::{Deserialize, Serialize};

use crate::types::{AgentReport, Assignment};

/// The protocol's version: a server refuses an agent that speaks another.
pub const PROTOCOL_VERSION: u32 = 1;

/// How often each end pings the other (WebSocket pings, answered by the WebSocket layer).
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// A link silent this long is dead (a cut cable sends nothing, not even a close): the server
/// forgets the agent's session, and the agent dials again.
pub const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to [`AgentMessage::Hello`]: the installation's id, which labels every container
    /// the agent manages (it touches no other).
    Welcome { cluster: String },
    /// Everything this host should run: sent when the agent connects and on every change.
    Assignments {
        /// Bumped on every change, so an agent can tell a repeat from news.
        generation: u64,
        /// When the server published them (Unix time in microseconds), for the agent's latency
        /// log.
        #[serde(default)]
        published_unix_micros: i64,
        assignments: Vec<Assignment>,
    },
    /// Do something with a container of this host and answer with the request's id.
    Request { id: u64, request: AgentRequest },
    /// The caller of a streaming request went away: stop it.
    Cancel { id: u64 },
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
        tail: Option<u32>,
        follow: bool,
    },
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
}

/// Who is connecting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    pub protocol: u32,
    /// The host's name, as configs name it in `run_on_host`.
    pub host: String,
    /// The agent's build, for `hosts` and for telling old agents apart.
    pub agent_version: String,
}

/// A request's result: a JSON value, or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(serde_json::Value),
    /// `not_found` tells "no such container" from other failures.
    Failed {
        error: String,
        not_found: bool,
    },
}

/// Which of a stream's outputs a data frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdout,
    Stderr,
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
        frame.push(match self.kind {
            StreamKind::Stdout => 1,
            StreamKind::Stderr => 2,
        });
        frame.extend_from_slice(&self.data);
        frame
    }

    pub fn decode(frame: &[u8]) -> Option<DataFrame> {
        let id = u64::from_be_bytes(frame.get(..8)?.try_into().ok()?);
        let kind = match frame.get(8)? {
            1 => StreamKind::Stdout,
            2 => StreamKind::Stderr,
            _ => return None,
        };
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
    }

    #[test]
    fn assignments_read_as_written() {
        // Internally tagged enums go through serde's buffered content, which has no 128-bit
        // integers: every field must be a type it can hold.
        let sent = ServerMessage::Assignments {
            generation: 3,
            published_unix_micros: 1_790_000_000_000_000,
            assignments: Vec::new(),
        };
        let text = serde_json::to_string(&sent).unwrap();
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), sent);
    }

    #[test]
    fn messages_read_as_written() {
        let text = serde_json::to_string(&AgentMessage::Response {
            id: 7,
            outcome: Outcome::Failed {
                error: "no such container".into(),
                not_found: true,
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
