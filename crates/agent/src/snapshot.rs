//! Volume snapshots on the task's host: the volume's directory read from the engine as a tar,
//! compressed with zstd into a file on this host, then sent to the server.
//!
//! The container is paused only while the engine's tar is read and compressed to local disk,
//! never while the archive crosses the network, so the pause is as short as the disk allows. It
//! is unpaused whatever happens to the copy.

use std::time::Instant;

use async_compression::tokio::bufread::ZstdEncoder;
use bytes::Bytes;
use cj_api::agent::link::SnapshotTaken;
use cj_runtime::ContainerRuntime;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// How much is read from the encoder at a time.
const CHUNK: usize = 64 * 1024;
use cj_api::snapshots::SHA256_HEADER;

/// Where a snapshot goes: the server the link is to, with the agent's token.
#[derive(Clone)]
pub(crate) struct SnapshotServer {
    pub client: reqwest::Client,
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub server: String,
    pub token: Option<String>,
}

/// Copies the container's `mount` and uploads it to `upload` on the server.
pub(crate) async fn snapshot<R: ContainerRuntime>(
    runtime: &R,
    server: &SnapshotServer,
    container_id: &str,
    mount: &str,
    pause: bool,
    upload: &str,
) -> Result<SnapshotTaken, String> {
    let spool = tempfile::tempfile().map_err(|error| format!("no temporary file: {error}"))?;
    let mut spool = tokio::fs::File::from_std(spool);
    let paused_at = if pause {
        runtime
            .pause(container_id)
            .await
            .map_err(|error| format!("cannot pause the container: {error}"))?;
        Some(Instant::now())
    } else {
        None
    };
    let copied = compress(runtime, container_id, mount, &mut spool).await;
    let paused_ms = match paused_at {
        Some(at) => {
            let paused_ms = at.elapsed().as_millis() as u64;
            runtime
                .unpause(container_id)
                .await
                .map_err(|error| format!("cannot unpause the container: {error}"))?;
            tracing::info!(
                container_id,
                paused_ms,
                "snapshot copied; container unpaused"
            );
            Some(paused_ms)
        }
        None => None,
    };
    let (content_bytes, size_bytes, sha256) = copied?;
    spool
        .rewind()
        .await
        .map_err(|error| format!("cannot read the copy back: {error}"))?;
    send(server, upload, spool, size_bytes, &sha256).await?;
    Ok(SnapshotTaken {
        content_bytes,
        size_bytes,
        sha256,
        paused_ms,
    })
}

/// The engine's tar of `mount`, compressed into `out`: (tar bytes, compressed bytes, sha256 of
/// the compressed bytes).
async fn compress<R: ContainerRuntime>(
    runtime: &R,
    container_id: &str,
    mount: &str,
    out: &mut tokio::fs::File,
) -> Result<(u64, u64, String), String> {
    let content_bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = content_bytes.clone();
    let archive = runtime
        .download_archive(container_id, mount)
        .inspect_ok(move |chunk: &Bytes| {
            counted.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        });
    let reader = tokio_util::io::StreamReader::new(archive);
    let mut encoder = ZstdEncoder::new(tokio::io::BufReader::new(reader));
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = encoder
            .read(&mut buffer)
            .await
            .map_err(|error| format!("reading {mount} from the engine: {error}"))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
        out.write_all(&buffer[..read])
            .await
            .map_err(|error| format!("writing the copy to this host's disk: {error}"))?;
    }
    out.flush()
        .await
        .map_err(|error| format!("writing the copy to this host's disk: {error}"))?;
    Ok((
        content_bytes.load(std::sync::atomic::Ordering::Relaxed),
        size,
        hex_string(&hasher.finalize()),
    ))
}

async fn send(
    server: &SnapshotServer,
    upload: &str,
    file: tokio::fs::File,
    size: u64,
    sha256: &str,
) -> Result<(), String> {
    let url = format!("{}{upload}", server.server.trim_end_matches('/'));
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, CHUNK));
    let mut request = server
        .client
        .put(&url)
        .header(reqwest::header::CONTENT_LENGTH, size)
        .header(SHA256_HEADER, sha256)
        .body(body);
    if let Some(token) = &server.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|error| {
        format!(
            "sending the snapshot to the server: {}",
            error.without_url()
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| value["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(format!(
            "the server refused the snapshot: {status}: {reason}"
        ));
    }
    Ok(())
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cj_runtime::SimRuntime;

    #[tokio::test]
    async fn a_copy_of_a_missing_container_fails_and_leaves_it_unpaused() {
        let runtime = SimRuntime::new();
        let server = SnapshotServer {
            client: reqwest::Client::new(),
            server: "http://127.0.0.1:9".into(),
            token: None,
        };
        let error = snapshot(&runtime, &server, "nope", "/data", true, "/v1/x")
            .await
            .unwrap_err();
        assert!(error.contains("cannot pause"), "{error}");
    }
}
