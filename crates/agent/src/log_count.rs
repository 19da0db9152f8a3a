//! Counting the lines of a container's output that match a pattern, on the container's host:
//! a canary judged by its log errors costs the network a number, not its logs.

use cj_api::agent::link::{LogLineCount, LogsOptions};
use cj_runtime::{ContainerRuntime, LogChunk};
use futures_util::StreamExt;

/// The longest line looked at whole: longer lines are matched on their first this many bytes,
/// so a container writing one endless line cannot make the agent hold it.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Counts the lines `container_id` wrote (stdout and stderr) since `since_unix_seconds`, and
/// those matching `pattern`.
pub(crate) async fn count_log_lines<R: ContainerRuntime>(
    runtime: &R,
    container_id: &str,
    since_unix_seconds: i64,
    pattern: &str,
) -> Result<LogLineCount, String> {
    let pattern =
        regex::bytes::Regex::new(pattern).map_err(|error| format!("invalid pattern: {error}"))?;
    let options = LogsOptions {
        tail: None,
        follow: false,
        since_unix_seconds: Some(since_unix_seconds),
        timestamps: false,
    };
    let mut chunks = runtime.logs(container_id, options);
    let mut counter = LineCounter::new(pattern);
    while let Some(chunk) = chunks.next().await {
        match chunk.map_err(|error| error.to_string())? {
            LogChunk::Stdout(data) => counter.feed(0, &data),
            LogChunk::Stderr(data) => counter.feed(1, &data),
        }
    }
    Ok(counter.finish())
}

/// Lines split across chunks are joined again, per stream.
struct LineCounter {
    pattern: regex::bytes::Regex,
    /// The unfinished line of stdout and of stderr.
    partial: [Vec<u8>; 2],
    count: LogLineCount,
}

impl LineCounter {
    fn new(pattern: regex::bytes::Regex) -> LineCounter {
        LineCounter {
            pattern,
            partial: [Vec::new(), Vec::new()],
            count: LogLineCount::default(),
        }
    }

    fn feed(&mut self, stream: usize, mut data: &[u8]) {
        while let Some(end) = data.iter().position(|byte| *byte == b'\n') {
            let (line, rest) = data.split_at(end);
            self.extend(stream, line);
            let line = std::mem::take(&mut self.partial[stream]);
            self.line(&line);
            data = &rest[1..];
        }
        self.extend(stream, data);
    }

    fn extend(&mut self, stream: usize, bytes: &[u8]) {
        let partial = &mut self.partial[stream];
        let room = MAX_LINE_BYTES.saturating_sub(partial.len());
        partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn line(&mut self, line: &[u8]) {
        self.count.lines += 1;
        if self.pattern.is_match(line) {
            self.count.matching += 1;
        }
    }

    fn finish(mut self) -> LogLineCount {
        for stream in 0..2 {
            let line = std::mem::take(&mut self.partial[stream]);
            if !line.is_empty() {
                self.line(&line);
            }
        }
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_count_once_per_stream() {
        let mut counter = LineCounter::new(regex::bytes::Regex::new("ERROR|Exception").unwrap());
        counter.feed(0, b"ok\nERR");
        counter.feed(1, b"java.lang.Exception: boom\n");
        counter.feed(0, b"OR: disk full\nfine\n");
        counter.feed(1, b"trailing ERROR without newline");
        let count = counter.finish();
        assert_eq!((count.lines, count.matching), (5, 3));
    }
}
