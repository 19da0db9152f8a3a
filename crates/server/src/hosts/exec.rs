//! `GET /v1/exec`: a command in a task's running container, on whatever host it runs, relayed
//! between the caller's WebSocket and the host's agent (the protocol is described in
//! `cj_api::exec`). Everything that can refuse (the query, the command, the task and its
//! container, the host's agent, the upgrade headers, the agent starting the command) is checked
//! before the upgrade, so a refusal is an ordinary JSON error and a 101 means the command runs.
//! The caller going away ends the relay; the command is not killed, as with `docker exec`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use cj_api::agent::ContainerState;
use cj_api::agent::TaskKey;
use cj_api::agent::link::{LinkTiming, StreamKind, TerminalSize};
use cj_api::exec::{
    ExecClientMessage, ExecServerMessage, MAX_CLIENT_MESSAGE_BYTES, MAX_COMMAND_ARGS,
    MAX_COMMAND_BYTES, STDIN, data_message,
};
use cj_api::{DEFAULT_ENV, TaskStatus};
use futures_util::{SinkExt, StreamExt};

use crate::edge::api::handlers::one_task;
use crate::error::{Failure, shown};
use crate::hosts::agent_link::{ExecInput, ExecItem, ExecOutput, ExecRequest};
use crate::observe::status::current_container;
use crate::state::ServerState;

/// How long a caller may take to answer the server's close.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The query of `GET /v1/exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecQuery {
    pub env: Option<String>,
    pub target: String,
    pub container: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    pub size: Option<TerminalSize>,
    pub command: Vec<String>,
}

const FIELDS: &str = "env, target, container, tty, stdin, rows, cols, cmd";

impl ExecQuery {
    /// Reads the query's pairs: each field at most once, except `cmd`, one per argument.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<ExecQuery, Failure> {
        let bad = |message: String| Failure::BadRequest(format!("invalid query string: {message}"));
        let mut seen = BTreeSet::new();
        let (mut env, mut target, mut container) = (None, None, None);
        let (mut tty, mut stdin, mut rows, mut cols) = (false, false, None, None);
        let mut command = Vec::new();
        for (key, value) in pairs {
            if key == "cmd" {
                command.push(value);
                continue;
            }
            if !FIELDS.split(", ").any(|field| field == key) {
                return Err(bad(format!(
                    "unknown field `{}`, expected one of {FIELDS}",
                    shown(&key)
                )));
            }
            if !seen.insert(key.clone()) {
                return Err(bad(format!("duplicate field `{key}`")));
            }
            let flag = |value: &str| match value {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(bad(format!(
                    "{key}: expected true or false, not \"{}\"",
                    shown(other)
                ))),
            };
            let size = |value: &str| match value.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(format!(
                    "{key}: expected 1 to {}, not \"{}\"",
                    u16::MAX,
                    shown(value)
                ))),
            };
            match key.as_str() {
                "env" => env = Some(value),
                "target" => target = Some(value),
                "container" => container = Some(value),
                "tty" => tty = flag(&value)?,
                "stdin" => stdin = flag(&value)?,
                "rows" => rows = Some(size(&value)?),
                _ => cols = Some(size(&value)?),
            }
        }
        let target = target.ok_or_else(|| Failure::BadRequest("a target is required".into()))?;
        let size = match (rows, cols) {
            (Some(rows), Some(cols)) if tty => Some(TerminalSize { rows, cols }),
            (None, None) => None,
            _ if !tty => return Err(bad("rows and cols are for a tty (tty=true)".into())),
            _ => return Err(bad("rows and cols go together".into())),
        };
        if container.as_deref() == Some("") {
            return Err(bad("container: expected a container id or prefix".into()));
        }
        check_command(&command)?;
        Ok(ExecQuery {
            env,
            target,
            container,
            tty,
            stdin,
            size,
            command,
        })
    }
}

/// A command to run: at least a program, within the bounds, no NUL bytes.
fn check_command(command: &[String]) -> Result<(), Failure> {
    let Some(program) = command.first() else {
        return Err(Failure::BadRequest(
            "a command is required: cmd=PROGRAM, then cmd=ARGUMENT for each argument".into(),
        ));
    };
    if program.is_empty() {
        return Err(Failure::BadRequest(
            "the command's program (the first cmd) is empty".into(),
        ));
    }
    if command.len() > MAX_COMMAND_ARGS {
        return Err(Failure::BadRequest(format!(
            "the command has {} arguments; at most {MAX_COMMAND_ARGS} are accepted",
            command.len()
        )));
    }
    let bytes: usize = command.iter().map(String::len).sum();
    if bytes > MAX_COMMAND_BYTES {
        return Err(Failure::BadRequest(format!(
            "the command is {bytes} bytes long; at most {MAX_COMMAND_BYTES} are accepted"
        )));
    }
    if command.iter().any(|argument| argument.contains('\0')) {
        return Err(Failure::BadRequest(
            "the command holds a NUL character".into(),
        ));
    }
    Ok(())
}

/// The query as an extractor (refusals are JSON errors, like `ApiQuery`'s).
pub struct ExecQueryString(pub ExecQuery);

impl<S: Send + Sync> FromRequestParts<S> for ExecQueryString {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Failure> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|error| Failure::BadRequest(format!("invalid query string: {error}")))?;
        ExecQuery::parse(pairs).map(ExecQueryString)
    }
}

/// `GET /v1/exec` (see the module's description).
#[utoipa::path(
    get,
    path = "/v1/exec",
    params(
        ("env" = Option<String>, Query, description = "the environment; `production` when absent"),
        ("target" = String, Query, description = "one task"),
        ("container" = Option<String>, Query, description = "one of the task's containers, by id or id prefix; its current one when absent"),
        ("tty" = Option<bool>, Query, description = "run the command with a terminal"),
        ("stdin" = Option<bool>, Query, description = "relay the caller's input to the command"),
        ("rows" = Option<u16>, Query, minimum = 1, description = "the terminal's height (with `tty`)"),
        ("cols" = Option<u16>, Query, minimum = 1, description = "the terminal's width (with `tty`)"),
        ("cmd" = Vec<String>, Query, explode, style = Form, description = "the command, program first: one `cmd` per argument"),
    ),
    responses(
        (status = 101, description = "a WebSocket: the command runs; messages as `cj_api::exec` describes"),
        (status = 404, description = "no such task, or no such container of it", body = cj_api::ApiError),
        (status = 409, description = "the container is not running", body = cj_api::ApiError),
        (status = 426, description = "the request has no WebSocket upgrade headers", body = cj_api::ApiError),
        (status = 502, description = "the host's agent did not answer in time, or failed", body = cj_api::ApiError),
        (status = 503, description = "the agent of the task's host is not connected", body = cj_api::ApiError),
    )
)]
pub async fn exec(
    State(state): State<Arc<ServerState>>,
    ExecQueryString(query): ExecQueryString,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Failure> {
    let env = query.env.as_deref().unwrap_or(DEFAULT_ENV);
    let (key, task, hash) = one_task(&state, env, &query.target)?;
    let (host, container_id) = running_container(&state, &key, &task, hash, query.container)?;
    state.links.check_connected(&host)?;
    let upgrade = upgrade.map_err(|_| Failure::Refused {
        status: StatusCode::UPGRADE_REQUIRED.as_u16(),
        message: "GET /v1/exec is a WebSocket: send the upgrade headers (`coding-job exec` does)"
            .into(),
    })?;
    let request = ExecRequest {
        container_id: container_id.clone(),
        command: query.command,
        tty: query.tty,
        stdin: query.stdin,
        size: query.size,
    };
    let (input, output) = state.links.exec(&host, request).await?;
    tracing::info!(task = %key, host, container = container_id, "exec");
    let stdin = query.stdin;
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| relay(socket, input, output, stdin)))
}

/// The container an exec runs in: the one named (by id or prefix), or the task's current one;
/// either must be running. Returns its host and id.
pub(crate) fn running_container(
    state: &ServerState,
    key: &TaskKey,
    task: &TaskStatus,
    hash: Option<String>,
    wanted: Option<String>,
) -> Result<(String, String), Failure> {
    let containers = state.copies_of(key);
    let (host, container) = match &wanted {
        Some(wanted) => containers
            .iter()
            .find(|(_, c)| c.id.starts_with(wanted.as_str()))
            .ok_or_else(|| {
                Failure::NotFound(format!("task {key} has no container {}", shown(wanted)))
            })?,
        None => current_container(&containers, hash.as_deref()).ok_or_else(|| {
            Failure::Conflict(format!(
                "task {key} has no running container (state: {})",
                task.state
            ))
        })?,
    };
    if container.state != ContainerState::Running {
        let state = serde_json::to_value(container.state)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(Failure::Conflict(match wanted {
            Some(_) => format!(
                "container {} of task {key} is not running (state: {state})",
                shown(&container.id[..container.id.len().min(12)])
            ),
            None => format!(
                "task {key} has no running container (state: {})",
                task.state
            ),
        }));
    }
    Ok((host.clone(), container.id.clone()))
}

/// Relays until the command ends (its exit code is the last message) or the caller goes away.
async fn relay(socket: WebSocket, input: ExecInput, mut output: ExecOutput, stdin: bool) {
    let (mut sink, mut stream) = socket.split();
    // From the caller: stdin, resizes, the end of input. A silent caller is not taken for
    // gone: one whose stdout is blocked (a paused pager) reads nothing, pongs included, for
    // as long as it likes. A dead one is found by TCP, as the pings below stay unacknowledged.
    let inbound = async {
        while let Some(Ok(message)) = stream.next().await {
            let sent = match message {
                Message::Binary(data) => match data.split_first() {
                    Some((&STDIN, bytes)) if stdin => input.stdin(bytes).await,
                    _ => Ok(()),
                },
                Message::Text(text) => match serde_json::from_str::<ExecClientMessage>(&text) {
                    Ok(ExecClientMessage::Resize { rows, cols }) if rows > 0 && cols > 0 => {
                        input.resize(TerminalSize { rows, cols }).await
                    }
                    Ok(ExecClientMessage::StdinEnd) if stdin => input.close_stdin().await,
                    _ => Ok(()),
                },
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    };
    // To the caller: output, pings, and at last the exit code.
    let outbound = async {
        // A caller's WebSocket is kept alive like an agent's link with the default timing.
        let mut ping = tokio::time::interval(LinkTiming::DEFAULT.ping_interval());
        loop {
            let item = tokio::select! {
                item = output.next() => item,
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            match item {
                ExecItem::Data(kind, bytes) => {
                    let kind = match kind {
                        StreamKind::Stderr => cj_api::exec::STDERR,
                        _ => cj_api::exec::STDOUT,
                    };
                    let message = Message::Binary(data_message(kind, &bytes).into());
                    if sink.send(message).await.is_err() || output.written().await.is_err() {
                        return;
                    }
                }
                ExecItem::End { exit_code, error } => {
                    let exit = ExecServerMessage::Exit { exit_code, error };
                    let text = serde_json::to_string(&exit).expect("exec messages serialize");
                    let _ = sink.send(Message::Text(text.into())).await;
                    let close = CloseFrame {
                        code: close_code::NORMAL,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = inbound => return,
        () = outbound => {}
    }
    // The closing handshake: the caller answers the close after reading everything before it
    // (closing the connection first could make its system discard the unread exit code).
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ExecQuery, String> {
        let pairs: Vec<(String, String)> = Query::try_from_uri(
            &format!("/v1/exec?{query}")
                .parse::<axum::http::Uri>()
                .unwrap(),
        )
        .map(|Query(pairs)| pairs)
        .unwrap();
        ExecQuery::parse(pairs).map_err(|failure| failure.to_string())
    }

    #[test]
    fn the_command_is_the_repeated_cmd_in_order() {
        let query = parse(
            "target=shop/db&cmd=sh&tty=true&cmd=-c&rows=24&cmd=echo%20a%26b&cols=80&stdin=true",
        )
        .unwrap();
        assert_eq!(query.command, ["sh", "-c", "echo a&b"]);
        assert_eq!(query.size, Some(TerminalSize { rows: 24, cols: 80 }));
        assert!(query.tty && query.stdin);
        assert_eq!(query.env, None);
    }

    #[test]
    fn bad_queries_are_refused_with_reasons() {
        let long = format!("target=t&cmd={}", "x".repeat(MAX_COMMAND_BYTES + 1));
        let many = format!("target=t{}", "&cmd=x".repeat(MAX_COMMAND_ARGS + 1));
        let cases = [
            ("target=t", "a command is required"),
            ("target=t&cmd=", "program (the first cmd) is empty"),
            ("cmd=ls", "a target is required"),
            ("target=t&cmd=ls&bogus=1", "unknown field `bogus`"),
            ("target=t&target=u&cmd=ls", "duplicate field `target`"),
            ("target=t&cmd=ls&tty=yes", "tty: expected true or false"),
            (
                "target=t&cmd=ls&tty=true&rows=0&cols=1",
                "rows: expected 1 to",
            ),
            ("target=t&cmd=ls&tty=true&rows=1", "go together"),
            ("target=t&cmd=ls&rows=1&cols=1", "for a tty"),
            ("target=t&cmd=ls&container=", "container: expected"),
            ("target=t&cmd=a%00b", "NUL"),
            (long.as_str(), "bytes long"),
            (many.as_str(), "arguments"),
        ];
        for (query, expected) in cases {
            let error = parse(query).expect_err(query);
            assert!(error.contains(expected), "{query}: {error}");
        }
    }
}
