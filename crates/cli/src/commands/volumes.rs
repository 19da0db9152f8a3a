//! `volumes`, `volume snapshot` and `volume snapshots`: tasks' volumes and their copies.

use std::path::{Path, PathBuf};

use cj_api::snapshots::{SHA256_HEADER, SnapshotRecord, SnapshotRequest, VolumeRow};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::args::{StatusArgs, VolumeSnapshotArgs, VolumeSnapshotsArgs};
use crate::client::{CliError, CliResult, Client};
use crate::output::{bytes, print_json, print_table, relative, table};

pub async fn list(client: &Client, args: StatusArgs) -> CliResult<i32> {
    let mut query = vec![("env", client.env.clone())];
    if let Some(target) = &args.target {
        query.push(("target", target.clone()));
    }
    let rows: Vec<VolumeRow> = client.json(client.get("/v1/volumes").query(&query)).await?;
    if args.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("no volumes in {}", client.env);
        return Ok(0);
    }
    let mut output = table(&["TASK", "VOLUME", "MOUNT", "HOST", "SEED", "LAST SNAPSHOT"]);
    for row in &rows {
        let last = match &row.last_snapshot {
            Some(snapshot) => format!(
                "{} {} ({} kept)",
                snapshot.id,
                relative(Some(&snapshot.created_at)),
                row.snapshots
            ),
            None => "-".into(),
        };
        output.add_row(vec![
            format!("{}/{}/{}", row.service, row.job, row.task),
            row.volume.clone(),
            row.mount.clone(),
            row.host.clone().unwrap_or_else(|| "-".into()),
            row.seed.clone().unwrap_or_else(|| "-".into()),
            last,
        ]);
    }
    print_table(&output);
    Ok(0)
}

pub async fn snapshot(client: &Client, args: VolumeSnapshotArgs) -> CliResult<i32> {
    let request = SnapshotRequest {
        env: client.env.clone(),
        task: args.task.clone(),
        volume: args.volume.clone(),
        live: args.live,
    };
    if !args.json {
        eprintln!(
            "snapshotting volume {} of {} ({}) ...",
            args.volume,
            args.task,
            if args.live {
                "live: the task keeps running, the copy may be inconsistent"
            } else {
                "the task is paused for the copy"
            }
        );
    }
    let record: SnapshotRecord = client.json(client.post("/v1/snapshots", &request)).await?;
    if let Some(file) = &args.output {
        download(client, &record, file).await?;
    }
    if args.json {
        return print_json(&record);
    }
    let how = match (record.method.as_str(), record.paused_ms) {
        ("paused", Some(ms)) => format!("the task was paused {}", millis(ms)),
        ("live", _) => "copied live: it may be inconsistent".into(),
        (other, _) => other.to_owned(),
    };
    println!(
        "{}: volume {} of {}/{}/{} on {}, {} ({} of files), {how}",
        record.id,
        record.volume,
        record.service,
        record.job,
        record.task,
        record.host.as_deref().unwrap_or("-"),
        bytes(record.size_bytes),
        bytes(record.content_bytes),
    );
    if let Some(file) = &args.output {
        println!("written to {}", file.display());
    }
    Ok(0)
}

pub async fn snapshots(client: &Client, args: VolumeSnapshotsArgs) -> CliResult<i32> {
    let mut query = vec![("env", client.env.clone())];
    if let Some(task) = &args.task {
        // `SERVICE/JOB/TASK` or the task's name: records carry the name.
        let name = task.rsplit('/').next().unwrap_or(task);
        query.push(("task", name.to_owned()));
    }
    if let Some(volume) = &args.volume {
        query.push(("volume", volume.clone()));
    }
    let records: Vec<SnapshotRecord> = client
        .json(client.get("/v1/snapshots").query(&query))
        .await?;
    if args.json {
        return print_json(&records);
    }
    if records.is_empty() {
        println!("no snapshots in {}", client.env);
        return Ok(0);
    }
    let mut output = table(&["ID", "TASK", "VOLUME", "SIZE", "MADE", "BY", "HOW"]);
    for record in &records {
        let how = match record.paused_ms {
            Some(ms) => format!("{} (paused {})", record.method, millis(ms)),
            None => record.method.clone(),
        };
        output.add_row(vec![
            record.id.clone(),
            format!("{}/{}/{}", record.service, record.job, record.task),
            record.volume.clone(),
            bytes(record.size_bytes),
            relative(Some(&record.created_at)),
            record.created_by.clone(),
            how,
        ]);
    }
    print_table(&output);
    Ok(0)
}

fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Writes the snapshot's data to `file` through `FILE.tmp`, checked against its checksum.
async fn download(client: &Client, record: &SnapshotRecord, file: &Path) -> CliResult<()> {
    let mut partial = file.as_os_str().to_owned();
    partial.push(".tmp");
    let partial = PathBuf::from(partial);
    let written = write_checked(client, record, &partial).await;
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, file).map_err(|error| {
        CliError::failed(format!(
            "cannot rename {} to {}: {error}",
            partial.display(),
            file.display()
        ))
    })
}

async fn write_checked(client: &Client, record: &SnapshotRecord, path: &Path) -> CliResult<()> {
    let cannot_write = |error: std::io::Error| {
        CliError::failed(format!("cannot write {}: {error}", path.display()))
    };
    let response = client
        .send(client.get(&format!("/v1/snapshot-data/{}", record.id)))
        .await?;
    let sent = response
        .headers()
        .get(SHA256_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or(&record.sha256)
        .to_owned();
    let mut out = tokio::fs::File::create(path).await.map_err(cannot_write)?;
    let mut hasher = Sha256::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|error| {
            CliError::failed(format!(
                "lost the connection to {} during the download: {error}",
                client.base()
            ))
        })?;
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(cannot_write)?;
    }
    out.sync_all().await.map_err(cannot_write)?;
    let found: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if found != sent {
        return Err(CliError::failed(format!(
            "the downloaded snapshot {} does not match its checksum ({found}, expected {sent}); nothing was kept",
            record.id
        )));
    }
    Ok(())
}
