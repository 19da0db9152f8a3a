//! `store snapshot FILE`: a copy of the running server's whole store (`GET
//! /v1/store/snapshot`), written to `FILE.tmp`, checked (whole, its checksum right: see
//! `cj_store::snapshot`), then renamed to FILE, so FILE is only ever a complete snapshot.
//! (`store restore` runs in the binary: it works on a data directory, not through a server.)

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::args::SnapshotArgs;
use crate::client::{CliError, CliResult, Client};
use crate::output::{bytes, print_json};

/// What `--json` prints.
#[derive(Serialize)]
struct Saved {
    file: PathBuf,
    revision: u64,
    keys: u64,
    bytes: u64,
}

pub async fn snapshot(client: &Client, args: SnapshotArgs) -> CliResult<i32> {
    let partial = partial_path(&args.file);
    let written = download(client, &partial).await.and_then(|()| {
        let file = std::fs::File::open(&partial).map_err(|error| {
            CliError::failed(format!("cannot read {} back: {error}", partial.display()))
        })?;
        cj_store::snapshot::check(file).map_err(|error| {
            CliError::failed(format!(
                "the snapshot from {} is not whole ({error}); nothing was kept",
                client.base()
            ))
        })
    });
    let summary = match written {
        Ok(summary) => summary,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    std::fs::rename(&partial, &args.file).map_err(|error| {
        CliError::failed(format!(
            "cannot rename {} to {}: {error}",
            partial.display(),
            args.file.display()
        ))
    })?;
    if args.json {
        return print_json(&Saved {
            file: args.file,
            revision: summary.revision,
            keys: summary.keys,
            bytes: summary.bytes,
        });
    }
    println!(
        "{}: the store of {} at revision {}: {} keys, {}",
        args.file.display(),
        client.base(),
        summary.revision,
        summary.keys,
        bytes(summary.bytes)
    );
    Ok(0)
}

/// `FILE` -> `FILE.tmp`.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Streams the server's answer into `path`, on disk when this returns.
async fn download(client: &Client, path: &Path) -> CliResult<()> {
    let cannot_write = |error: std::io::Error| {
        CliError::failed(format!("cannot write {}: {error}", path.display()))
    };
    let response = client.send(client.get("/v1/store/snapshot")).await?;
    let mut file = tokio::fs::File::create(path).await.map_err(cannot_write)?;
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|error| {
            CliError::failed(format!(
                "lost the connection to {} during the snapshot: {error}",
                client.base()
            ))
        })?;
        file.write_all(&chunk).await.map_err(cannot_write)?;
    }
    file.sync_all().await.map_err(cannot_write)
}
