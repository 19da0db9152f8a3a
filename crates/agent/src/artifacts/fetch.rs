//! Fetching an artifact: its source (an http(s) URL or a file on the host) read as a stream
//! into a temporary file of the cache's directory, its SHA-256 computed on the way.

use std::error::Error;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::seed::{is_url, reason};

/// What was fetched: the file (removed when dropped unless persisted), its size and checksum.
pub(crate) struct Fetched {
    pub temporary: tempfile::NamedTempFile,
    pub bytes: u64,
    /// 64 lowercase hex digits.
    pub sha256: String,
}

/// Reads `url` into a new temporary file in `dir`.
pub(crate) async fn to_temporary_file(
    http: &reqwest::Client,
    url: &str,
    dir: &Path,
) -> Result<Fetched, String> {
    let mut source = open(http, url).await?;
    let temporary = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .map_err(|error| format!("cannot write to the artifact cache: {}", reason(&error)))?;
    let mut writer = tokio::fs::File::from_std(
        temporary
            .reopen()
            .map_err(|error| format!("cannot write to the artifact cache: {}", reason(&error)))?,
    );
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = source.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        writer
            .write_all(&chunk)
            .await
            .map_err(|error| format!("cannot write to the artifact cache: {}", reason(&error)))?;
    }
    writer
        .sync_all()
        .await
        .map_err(|error| format!("cannot write to the artifact cache: {}", reason(&error)))?;
    Ok(Fetched {
        temporary,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

type Chunks = futures_util::stream::BoxStream<'static, Result<bytes::Bytes, String>>;

/// The source's content as it arrives; the error says why it cannot be read.
async fn open(http: &reqwest::Client, url: &str) -> Result<Chunks, String> {
    if is_url(url) {
        let response = http.get(url).send().await.map_err(http_reason)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        Ok(response.bytes_stream().map_err(http_reason).boxed())
    } else {
        let file = tokio::fs::File::open(url)
            .await
            .map_err(|error| reason(&error))?;
        Ok(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)
            .map_err(|error| reason(&error))
            .boxed())
    }
}

/// An HTTP error in a few words, never with the URL (messages name it as `seed::shown` writes
/// it): a connection that cannot be made says why as the system does (`connection refused`),
/// not through the layers that wrap it.
fn http_reason(error: reqwest::Error) -> String {
    if error.is_connect() {
        let mut innermost: &(dyn Error + 'static) = &error;
        while let Some(source) = innermost.source() {
            innermost = source;
        }
        let words = reason(innermost);
        let mut chars = words.chars();
        return match chars.next() {
            Some(first) => first.to_lowercase().chain(chars).collect(),
            None => words,
        };
    }
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    reason(&error.without_url())
}
