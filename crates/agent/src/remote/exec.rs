//! The agent's end of an exec (`AgentRequest::Exec`): the command runs in the engine with its
//! streams attached; its output goes to the server as data frames, at most
//! [`EXEC_WINDOW`] of them unacknowledged; stdin frames from the server are written to it in
//! order, each acknowledged once written; resizes reach its terminal; the end carries its exit
//! code. A cancelled exec (the caller went away) only stops relaying: the command is not
//! killed, as with `docker exec`.

use std::sync::Arc;
use std::time::Duration;

use cj_api::agent::link::{
    AgentMessage, DataFrame, EXEC_CHUNK, EXEC_WINDOW, Outcome, StreamKind, TerminalSize,
};
use cj_runtime::{AttachedExec, ContainerRuntime, ExecOptions, LogChunk};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{failed, text};

/// How long the engine may take, once the output closed, to say how the command ended.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(3);

/// What the link's reader hands to a running exec.
pub(super) struct ExecControl {
    /// Input frames in order; `None` closes the command's stdin.
    stdin: mpsc::Sender<Option<Vec<u8>>>,
    resize: watch::Sender<Option<TerminalSize>>,
    /// Output frames the server has room for.
    credits: Arc<Semaphore>,
}

/// Why the server's message could not be handed to the exec.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Overrun;

impl ExecControl {
    /// An input frame (`None`: the end of input). The server never has more than
    /// [`EXEC_WINDOW`] frames unacknowledged; one that does breaks the protocol.
    pub(super) fn stdin(&self, data: Option<Vec<u8>>) -> Result<(), Overrun> {
        self.stdin.try_send(data).map_err(|_| Overrun)
    }

    pub(super) fn resize(&self, size: TerminalSize) {
        self.resize.send_replace(Some(size));
    }

    /// The server wrote `frames` output frames to its caller: room for as many more.
    pub(super) fn acknowledged(&self, frames: u32) {
        let room = (EXEC_WINDOW as usize).saturating_sub(self.credits.available_permits());
        self.credits.add_permits((frames as usize).min(room));
    }
}

/// The controls of a new exec, and the task that runs it (to be spawned).
pub(super) fn start<R: ContainerRuntime>(
    runtime: Arc<R>,
    id: u64,
    container_id: String,
    options: ExecOptions,
    outgoing: mpsc::Sender<Message>,
) -> (ExecControl, impl Future<Output = ()> + Send + 'static) {
    let (control, channels) = control_and_channels(outgoing);
    (control, run(runtime, id, container_id, options, channels))
}

/// The two ends of an exec's input, resizes and output credits.
fn control_and_channels(outgoing: mpsc::Sender<Message>) -> (ExecControl, Channels) {
    // One more than the window: the end of input may follow a full window of data.
    let (stdin, stdin_frames) = mpsc::channel(EXEC_WINDOW as usize + 1);
    let (resize, resizes) = watch::channel(None);
    let credits = Arc::new(Semaphore::new(EXEC_WINDOW as usize));
    let control = ExecControl {
        stdin,
        resize,
        credits: credits.clone(),
    };
    let channels = Channels {
        stdin: stdin_frames,
        resizes,
        credits,
        outgoing,
    };
    (control, channels)
}

struct Channels {
    stdin: mpsc::Receiver<Option<Vec<u8>>>,
    resizes: watch::Receiver<Option<TerminalSize>>,
    credits: Arc<Semaphore>,
    outgoing: mpsc::Sender<Message>,
}

async fn run<R: ContainerRuntime>(
    runtime: Arc<R>,
    id: u64,
    container_id: String,
    options: ExecOptions,
    channels: Channels,
) {
    let Channels {
        stdin,
        mut resizes,
        credits,
        outgoing,
    } = channels;
    let exec = match runtime.exec_attached(&container_id, &options).await {
        Ok(exec) => exec,
        Err(error) => {
            let outcome = failed(error);
            let _ = outgoing
                .send(text(&AgentMessage::Response { id, outcome }))
                .await;
            return;
        }
    };
    let AttachedExec {
        id: exec_id,
        output,
        input,
    } = exec;
    tracing::debug!(
        request = id,
        exec = exec_id,
        container = container_id,
        "exec started"
    );
    let started = Outcome::Ok(serde_json::json!({ "exec_id": exec_id }));
    let answer = AgentMessage::Response {
        id,
        outcome: started,
    };
    if outgoing.send(text(&answer)).await.is_err() {
        return;
    }
    let resize = async {
        while resizes.changed().await.is_ok() {
            let size = *resizes.borrow_and_update();
            if let Some(TerminalSize { rows, cols }) = size
                && let Err(error) = runtime.resize_exec(&exec_id, rows, cols).await
            {
                tracing::debug!(%error, "could not resize an exec's terminal");
            }
        }
        std::future::pending::<()>().await
    };
    // The command ends when its output does; input and resizes only run alongside.
    let error = tokio::select! {
        error = relay_output(id, output, &credits, &outgoing) => error,
        () = relay_input(id, input, stdin, &outgoing) => None,
        () = resize => None,
    };
    let Some(error) = error else {
        let (exit_code, error) = exit_code(&*runtime, &exec_id).await;
        let end = AgentMessage::ExecEnd {
            id,
            exit_code,
            error,
        };
        let _ = outgoing.send(text(&end)).await;
        return;
    };
    let end = AgentMessage::ExecEnd {
        id,
        exit_code: None,
        error: Some(error),
    };
    let _ = outgoing.send(text(&end)).await;
}

/// Sends the command's output as data frames, within the window; `Some` error if the engine's
/// stream failed.
async fn relay_output(
    id: u64,
    mut output: futures_util::stream::BoxStream<
        'static,
        Result<LogChunk, cj_runtime::RuntimeError>,
    >,
    credits: &Semaphore,
    outgoing: &mpsc::Sender<Message>,
) -> Option<String> {
    while let Some(chunk) = output.next().await {
        let (kind, data) = match chunk {
            Ok(LogChunk::Stdout(data)) => (StreamKind::Stdout, data),
            Ok(LogChunk::Stderr(data)) => (StreamKind::Stderr, data),
            Err(error) => return Some(error.to_string()),
        };
        for piece in data.chunks(EXEC_CHUNK) {
            match credits.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return Some("the exec was closed".into()),
            }
            let frame = DataFrame {
                id,
                kind,
                data: piece.to_vec(),
            };
            if outgoing
                .send(Message::Binary(frame.encode().into()))
                .await
                .is_err()
            {
                // The link is gone: there is no one to tell.
                return Some("the link to the server closed".into());
            }
        }
    }
    None
}

/// Writes input frames to the command in order, acknowledging each; closes its stdin at the
/// end of input. Never returns (the exec ends with its output).
async fn relay_input(
    id: u64,
    mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    mut frames: mpsc::Receiver<Option<Vec<u8>>>,
    outgoing: &mpsc::Sender<Message>,
) {
    // A command that closed its stdin takes no more; what still comes is acknowledged and
    // dropped, so the caller is not held up.
    let mut open = true;
    while let Some(frame) = frames.recv().await {
        match frame {
            Some(data) if open => {
                open = input.write_all(&data).await.is_ok() && input.flush().await.is_ok();
            }
            Some(_) => {}
            None => {
                if open {
                    let _ = input.shutdown().await;
                }
                open = false;
                continue;
            }
        }
        let ack = AgentMessage::ExecAck { id, frames: 1 };
        if outgoing.send(text(&ack)).await.is_err() {
            break;
        }
    }
    // The input stays open (dropped with this future) until the output ends.
    std::future::pending::<()>().await
}

/// How the command ended: its exit code, or why it is not known. The output closes as the
/// command exits, and the engine may take a moment to record the code.
async fn exit_code<R: ContainerRuntime>(
    runtime: &R,
    exec_id: &str,
) -> (Option<i64>, Option<String>) {
    let deadline = tokio::time::Instant::now() + EXIT_CODE_WAIT;
    loop {
        match runtime.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return (Some(code), None),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(None) => {
                return (
                    None,
                    Some("the command closed its output but still runs".into()),
                );
            }
            Err(error) => return (None, Some(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> (ExecControl, Channels) {
        let (outgoing, _) = mpsc::channel(1);
        control_and_channels(outgoing)
    }

    #[test]
    fn input_beyond_the_window_is_refused_and_acks_never_widen_it() {
        let (control, channels) = control();
        for _ in 0..EXEC_WINDOW {
            control.stdin(Some(b"x".to_vec())).unwrap();
        }
        control.stdin(None).unwrap();
        assert_eq!(control.stdin(Some(b"y".to_vec())), Err(Overrun));

        control.acknowledged(1000);
        assert_eq!(channels.credits.available_permits(), EXEC_WINDOW as usize);
        channels.credits.try_acquire_many(3).unwrap().forget();
        control.acknowledged(2);
        assert_eq!(
            channels.credits.available_permits(),
            EXEC_WINDOW as usize - 1
        );
    }

    #[test]
    fn resizes_keep_only_the_latest_size() {
        let (control, mut channels) = control();
        control.resize(TerminalSize { rows: 1, cols: 2 });
        control.resize(TerminalSize {
            rows: 30,
            cols: 100,
        });
        assert!(channels.resizes.has_changed().unwrap());
        assert_eq!(
            *channels.resizes.borrow_and_update(),
            Some(TerminalSize {
                rows: 30,
                cols: 100
            })
        );
    }
}
