//! An exec through the agent of the container's host (`AgentRequest::Exec`): the request, the
//! agent's answer that the command runs, then its output one way and stdin, resizes and the end
//! of input the other. Each direction keeps to [`EXEC_WINDOW`] unacknowledged frames: the
//! server acknowledges output once written to the caller, and sends stdin only while the agent
//! has room, so neither end's queue grows with a slow reader. Dropping both halves before the
//! exec ended tells the agent to stop relaying (the command is not killed).

use std::sync::Arc;

use bytes::Bytes;
use cj_api::agent::link::{
    AgentRequest, DataFrame, EXEC_CHUNK, EXEC_WINDOW, Outcome, ServerMessage, StreamKind,
    TerminalSize,
};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::links::{AgentLinks, CancelOnDrop, Pending, REQUEST_TIMEOUT, Session, text};
use crate::base::lock;
use crate::error::{Failure, shown};

/// A piece of an exec's output, or its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecItem {
    Data(StreamKind, Bytes),
    End {
        exit_code: Option<i64>,
        error: Option<String>,
    },
}

/// An exec waiting for its agent, as the session keeps it.
pub(crate) struct PendingExec {
    started: Option<oneshot::Sender<Outcome>>,
    output: mpsc::Sender<ExecItem>,
    /// Stdin frames the agent has room for.
    stdin_credits: Arc<Semaphore>,
}

/// The agent sent more output than the window allows.
pub(super) struct Overrun;

impl PendingExec {
    pub(super) fn started(&mut self, outcome: Outcome) {
        if let Some(started) = self.started.take() {
            let _ = started.send(outcome);
        }
    }

    pub(super) fn acknowledged(&self, frames: u32) {
        let room = (EXEC_WINDOW as usize).saturating_sub(self.stdin_credits.available_permits());
        self.stdin_credits.add_permits((frames as usize).min(room));
    }

    /// Output for the caller; it never waits, as the window bounds what is queued.
    pub(super) fn output(&self, kind: StreamKind, data: Vec<u8>) -> Result<(), Overrun> {
        if kind == StreamKind::Stdin {
            return Ok(());
        }
        // The last place is the end's.
        if self.output.capacity() <= 1 {
            return Err(Overrun);
        }
        self.output
            .try_send(ExecItem::Data(kind, data.into()))
            .map_err(|_| Overrun)
    }

    pub(super) fn ended(self, exit_code: Option<i64>, error: Option<String>) {
        let _ = self.output.try_send(ExecItem::End { exit_code, error });
    }
}

/// The caller's side of an exec: its input.
pub struct ExecInput {
    session: Arc<Session>,
    id: u64,
    credits: Arc<Semaphore>,
    _cancel: Arc<CancelOnDrop>,
}

/// The caller's side of an exec: its output.
pub struct ExecOutput {
    session: Arc<Session>,
    id: u64,
    items: mpsc::Receiver<ExecItem>,
    _cancel: Arc<CancelOnDrop>,
}

/// What to run, and how.
pub struct ExecRequest {
    pub container_id: String,
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub size: Option<TerminalSize>,
}

impl AgentLinks {
    /// Starts a command in a container on `host`, through its agent; returns once it runs.
    pub async fn exec(
        &self,
        host: &str,
        request: ExecRequest,
    ) -> Result<(ExecInput, ExecOutput), Failure> {
        let session = self.session(host)?;
        let id = self.request_id();
        // The window's frames and the end.
        let (output, items) = mpsc::channel(EXEC_WINDOW as usize + 1);
        let (started, answer) = oneshot::channel();
        let credits = Arc::new(Semaphore::new(EXEC_WINDOW as usize));
        let pending = PendingExec {
            started: Some(started),
            output,
            stdin_credits: credits.clone(),
        };
        lock(&session.pending).insert(id, Pending::Exec(pending));
        let cancel = Arc::new(CancelOnDrop {
            session: session.clone(),
            id,
        });
        let container_id = request.container_id.clone();
        let request = AgentRequest::Exec {
            container_id: request.container_id,
            command: request.command,
            tty: request.tty,
            stdin: request.stdin,
            size: request.size,
        };
        session
            .send(&ServerMessage::Request { id, request })
            .await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(Outcome::Ok(_))) => {}
            Ok(Ok(Outcome::Failed {
                error,
                not_found: true,
                ..
            })) => return Err(Failure::NotFound(error)),
            Ok(Ok(Outcome::Failed {
                error,
                not_running: true,
                ..
            })) => return Err(Failure::Conflict(error)),
            Ok(Ok(Outcome::Failed { error, .. })) => {
                return Err(Failure::BadGateway(format!(
                    "the agent of {host} could not run the command in {}: {error}",
                    shown(&container_id)
                )));
            }
            Ok(Err(_)) => {
                return Err(Failure::Unavailable(format!(
                    "the agent of {host} went away before the command started"
                )));
            }
            Err(_) => {
                return Err(Failure::BadGateway(format!(
                    "the agent of {host} did not start the command within {} s",
                    REQUEST_TIMEOUT.as_secs()
                )));
            }
        }
        let input = ExecInput {
            session: session.clone(),
            id,
            credits,
            _cancel: cancel.clone(),
        };
        let output = ExecOutput {
            session,
            id,
            items,
            _cancel: cancel,
        };
        Ok((input, output))
    }
}

/// The agent's link went away.
#[derive(Debug)]
pub struct Gone;

impl ExecInput {
    /// Sends input to the command, in pieces, each once the agent has room for it.
    pub async fn stdin(&self, data: &[u8]) -> Result<(), Gone> {
        for piece in data.chunks(EXEC_CHUNK) {
            self.credits.acquire().await.map_err(|_| Gone)?.forget();
            let frame = DataFrame {
                id: self.id,
                kind: StreamKind::Stdin,
                data: piece.to_vec(),
            };
            self.session
                .outgoing
                .send(axum::extract::ws::Message::Binary(frame.encode().into()))
                .await
                .map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// The end of input: the command's stdin is closed.
    pub async fn close_stdin(&self) -> Result<(), Gone> {
        self.send(ServerMessage::ExecStdinEnd { id: self.id }).await
    }

    pub async fn resize(&self, size: TerminalSize) -> Result<(), Gone> {
        let TerminalSize { rows, cols } = size;
        self.send(ServerMessage::ExecResize {
            id: self.id,
            rows,
            cols,
        })
        .await
    }

    async fn send(&self, message: ServerMessage) -> Result<(), Gone> {
        self.session
            .outgoing
            .send(text(&message))
            .await
            .map_err(|_| Gone)
    }
}

impl ExecOutput {
    /// The next piece of output, or the end (also when the agent went away).
    pub async fn next(&mut self) -> ExecItem {
        self.items.recv().await.unwrap_or(ExecItem::End {
            exit_code: None,
            error: Some(format!(
                "the link to the agent of {} was lost",
                self.session.host
            )),
        })
    }

    /// The caller has been given one piece of output: room for one more.
    pub async fn written(&self) -> Result<(), Gone> {
        let ack = ServerMessage::ExecAck {
            id: self.id,
            frames: 1,
        };
        self.session
            .outgoing
            .send(text(&ack))
            .await
            .map_err(|_| Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> (PendingExec, mpsc::Receiver<ExecItem>) {
        let (output, items) = mpsc::channel(EXEC_WINDOW as usize + 1);
        let exec = PendingExec {
            started: None,
            output,
            stdin_credits: Arc::new(Semaphore::new(0)),
        };
        (exec, items)
    }

    #[test]
    fn output_beyond_the_window_is_an_overrun_and_the_end_always_fits() {
        let (exec, mut items) = pending();
        for _ in 0..EXEC_WINDOW {
            assert!(exec.output(StreamKind::Stdout, b"x".to_vec()).is_ok());
        }
        assert!(exec.output(StreamKind::Stderr, b"y".to_vec()).is_err());
        exec.ended(Some(3), None);
        let mut received = Vec::new();
        while let Ok(item) = items.try_recv() {
            received.push(item);
        }
        assert_eq!(received.len(), EXEC_WINDOW as usize + 1);
        assert_eq!(
            received.last(),
            Some(&ExecItem::End {
                exit_code: Some(3),
                error: None
            })
        );
    }

    #[test]
    fn acknowledgements_give_stdin_room_up_to_the_window() {
        let (exec, _items) = pending();
        exec.acknowledged(3);
        assert_eq!(exec.stdin_credits.available_permits(), 3);
        exec.acknowledged(u32::MAX);
        assert_eq!(exec.stdin_credits.available_permits(), EXEC_WINDOW as usize);
    }
}
