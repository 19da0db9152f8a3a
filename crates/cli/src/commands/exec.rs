//! `exec TASK [-i] [-t] -- CMD...`: a command in the task's running container, over the API's
//! WebSocket (`GET /v1/exec`, see `cj_api::exec`). Output is written as it comes (stdout and
//! stderr apart, or one stream with a tty); with `-i` stdin is sent, and its end closes the
//! command's; with `-t` the command gets a pseudo-terminal of this terminal's size, kept in step
//! on SIGWINCH, and with `-i` on a terminal this terminal is in raw mode until the end, restored
//! on every way out. The exit code is the command's; 1 or 2 when it did not run (as every
//! command), 128 + N after signal N.

use std::io::IsTerminal;
use std::time::Duration;

use cj_api::exec::{ExecClientMessage, ExecServerMessage, STDERR, STDIN, STDOUT, data_message};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::args::ExecArgs;
use crate::client::{CliError, CliResult, Client};

/// The longest the server may be silent (it pings every few seconds).
const SERVER_SILENCE: Duration = Duration::from_secs(30);
/// The most bytes of stdin sent in one message.
const STDIN_CHUNK: usize = 32 * 1024;
/// The largest message accepted from the server (its output frames are at most 64 KiB).
const MAX_SERVER_MESSAGE: usize = 1024 * 1024;

pub async fn run(client: &Client, args: ExecArgs) -> CliResult<i32> {
    let size = if args.tty { terminal_size() } else { None };
    let mut url = client.url("/v1/exec")?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("env", &client.env)
            .append_pair("target", &args.target)
            .append_pair("tty", &args.tty.to_string())
            .append_pair("stdin", &args.interactive.to_string());
        if let Some(container) = &args.container {
            query.append_pair("container", container);
        }
        if let Some((rows, cols)) = size {
            query
                .append_pair("rows", &rows.to_string())
                .append_pair("cols", &cols.to_string());
        }
        for argument in &args.command {
            query.append_pair("cmd", argument);
        }
    }
    let socket = client.websocket(&url, MAX_SERVER_MESSAGE).await?;
    // Raw mode only when this terminal's keys go to the command: without -i, ^C must still
    // interrupt this process.
    let _raw = if args.tty && args.interactive && std::io::stdin().is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    relay(socket, args.interactive, args.tty).await
}

/// This terminal's size as (rows, columns), if there is a terminal.
fn terminal_size() -> Option<(u16, u16)> {
    crossterm::terminal::size()
        .ok()
        .filter(|(cols, rows)| *cols > 0 && *rows > 0)
        .map(|(cols, rows)| (rows, cols))
}

/// Raw mode on this terminal until dropped (a return, an error or a panic alike).
struct RawMode;

impl RawMode {
    fn enable() -> CliResult<RawMode> {
        crossterm::terminal::enable_raw_mode().map_err(|error| {
            CliError::failed(format!("cannot put the terminal in raw mode: {error}"))
        })?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

async fn relay(socket: crate::websocket::Socket, interactive: bool, tty: bool) -> CliResult<i32> {
    let (mut sink, mut stream) = socket.split();
    let (to_server, mut queue) = mpsc::channel::<Message>(8);
    let stdin = async {
        if interactive {
            send_stdin(&to_server).await;
        }
        std::future::pending::<()>().await
    };
    let resizes = async {
        if tty && let Ok(mut changes) = signal(SignalKind::window_change()) {
            while changes.recv().await.is_some() {
                let Some((rows, cols)) = terminal_size() else {
                    continue;
                };
                let resize = ExecClientMessage::Resize { rows, cols };
                if to_server.send(control(&resize)).await.is_err() {
                    break;
                }
            }
        }
        std::future::pending::<()>().await
    };
    let writer = async {
        while let Some(message) = queue.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
        // The reader sees the connection end and says so.
        std::future::pending::<()>().await
    };
    tokio::select! {
        result = read_output(&mut stream) => {
            let _ = sink.close().await;
            result
        }
        signal = interrupted() => Ok(128 + signal),
        () = stdin => unreachable!("stdin never ends the relay"),
        () = resizes => unreachable!("resizes never end the relay"),
        () = writer => unreachable!("the writer never ends the relay"),
    }
}

/// Sends stdin as data messages until its end, then says so.
async fn send_stdin(to_server: &mpsc::Sender<Message>) {
    let mut stdin = tokio::io::stdin();
    let mut buffer = vec![0; STDIN_CHUNK];
    loop {
        let read = match stdin.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let data = data_message(STDIN, &buffer[..read]);
        if to_server.send(Message::Binary(data.into())).await.is_err() {
            return;
        }
    }
    let _ = to_server.send(control(&ExecClientMessage::StdinEnd)).await;
}

fn control(message: &ExecClientMessage) -> Message {
    Message::Text(
        serde_json::to_string(message)
            .expect("exec messages serialize")
            .into(),
    )
}

/// Writes the command's output until the server says how it ended; returns its exit code.
async fn read_output(
    stream: &mut futures_util::stream::SplitStream<crate::websocket::Socket>,
) -> CliResult<i32> {
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut exit = None;
    loop {
        let message = match tokio::time::timeout(SERVER_SILENCE, stream.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) if exit.is_none() => {
                return Err(CliError::failed(format!(
                    "lost the connection to the server: {error}"
                )));
            }
            Ok(None) | Ok(Some(Err(_))) if exit.is_none() => {
                return Err(CliError::failed(
                    "the server closed the connection before the command ended",
                ));
            }
            Ok(_) => break,
            Err(_) => {
                return Err(CliError::failed(format!(
                    "nothing from the server for {} s: the connection is lost",
                    SERVER_SILENCE.as_secs()
                )));
            }
        };
        match message {
            Message::Binary(data) => {
                let written = match data.split_first() {
                    Some((&STDOUT, bytes)) => write(&mut stdout, bytes).await,
                    Some((&STDERR, bytes)) => write(&mut stderr, bytes).await,
                    _ => Ok(()),
                };
                if written.is_err() {
                    // Our reader went away (e.g. `| head`): as a shell reports SIGPIPE.
                    return Ok(141);
                }
            }
            Message::Text(text) => match serde_json::from_str::<ExecServerMessage>(&text) {
                Ok(ExecServerMessage::Exit { exit_code, error }) => {
                    exit = Some((exit_code, error));
                }
                Err(_) => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    match exit {
        Some((Some(code), _)) => Ok(i32::try_from(code).unwrap_or(1)),
        Some((None, error)) => Err(CliError::failed(format!(
            "the command's end is not known: {}",
            error.unwrap_or_else(|| "no reason given".into())
        ))),
        None => Err(CliError::failed(
            "the server closed the connection before the command ended",
        )),
    }
}

async fn write(out: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes).await?;
    out.flush().await
}

/// The number of the first of SIGINT, SIGTERM, SIGHUP and SIGQUIT to arrive (none with
/// `-it`'s raw mode comes from the keyboard: ^C goes to the command).
async fn interrupted() -> i32 {
    let mut waits = Vec::new();
    for (kind, number) in [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
    ] {
        if let Ok(mut signals) = signal(kind) {
            waits.push(Box::pin(async move {
                signals.recv().await;
                number
            }));
        }
    }
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(waits).await.0
}
