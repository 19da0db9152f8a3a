//! `GET /v1/exec`: a command in a task's running container, over a WebSocket.
//!
//! The request names everything in its query: `env`, `target` (one task), `container` (an id
//! or prefix of one of the task's containers, default its current one), `tty` and `stdin`
//! (`true`/`false`), `rows` and `cols` (the terminal's size, with `tty`), and the command as
//! repeated `cmd` parameters, program first (`cmd=sh&cmd=-c&cmd=echo%20hi`): at most
//! [`MAX_COMMAND_ARGS`] arguments and [`MAX_COMMAND_BYTES`] bytes altogether. Everything is
//! checked before the upgrade, so a refusal is an ordinary JSON error; once the server answers
//! 101 the command runs.
//!
//! Then, both ways: binary messages `[kind: 1 byte][bytes]` carry data ([`STDIN`] from the
//! client, [`STDOUT`] and [`STDERR`] from the server; with a tty all output is stdout); text
//! messages are JSON control: [`ExecClientMessage`] from the client, [`ExecServerMessage`] from
//! the server. The server's last message is [`ExecServerMessage::Exit`], then it closes. A
//! client that closes (or goes away) stops the relay; the command is not killed.

use serde::{Deserialize, Serialize};

/// The most arguments of a command, the program included.
pub const MAX_COMMAND_ARGS: usize = 256;
/// The most bytes of a command's arguments together (the URI is capped at 8 KiB anyway).
pub const MAX_COMMAND_BYTES: usize = 4096;
/// The largest message a client may send (stdin goes in pieces of any size up to this).
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 1024 * 1024;

/// Binary message kinds (as Docker numbers its streams).
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// What the client says, as text messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum ExecClientMessage {
    /// The client's terminal changed size (with `tty`).
    Resize { rows: u16, cols: u16 },
    /// The client's stdin ended: the command's stdin is closed.
    StdinEnd,
}

/// What the server says, as text messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum ExecServerMessage {
    /// The command ended with `exit_code`; `None` (with `error`) when that is not known, e.g.
    /// the host's agent went away.
    Exit {
        exit_code: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// A binary message: `kind` then the bytes.
pub fn data_message(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(1 + bytes.len());
    message.push(kind);
    message.extend_from_slice(bytes);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_read_as_written() {
        let resize = ExecClientMessage::Resize { rows: 24, cols: 80 };
        let text = serde_json::to_string(&resize).unwrap();
        assert_eq!(text, r#"{"message":"resize","rows":24,"cols":80}"#);
        assert_eq!(
            serde_json::from_str::<ExecClientMessage>(&text).unwrap(),
            resize
        );
        assert_eq!(
            serde_json::from_str::<ExecClientMessage>(r#"{"message":"stdin_end"}"#).unwrap(),
            ExecClientMessage::StdinEnd
        );
        let exit = ExecServerMessage::Exit {
            exit_code: Some(3),
            error: None,
        };
        let text = serde_json::to_string(&exit).unwrap();
        assert_eq!(text, r#"{"message":"exit","exit_code":3}"#);
        assert_eq!(
            serde_json::from_str::<ExecServerMessage>(&text).unwrap(),
            exit
        );
        assert_eq!(data_message(STDERR, b"e"), vec![2, b'e']);
    }
}
