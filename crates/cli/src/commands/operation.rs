//! `up TARGET` and `down TARGET`: follow the server's progress stream and end with a summary.

use std::io::Write;

use cj_api::{OperationEvent, OperationRequest, OperationSummary};
use futures_util::StreamExt;

use crate::args::OperationArgs;
use crate::client::{CliError, CliResult, Client};

pub async fn run(client: &Client, verb: &str, args: OperationArgs) -> CliResult<i32> {
    let request = OperationRequest {
        env: client.env.clone(),
        target: args.target.clone(),
        timeout_seconds: Some(args.timeout),
    };
    let response = client
        .send(client.post(&format!("/v1/{verb}"), &request))
        .await?;
    let followed = follow(response, verb, args.json).await?;
    let summary = followed
        .summary
        .ok_or_else(|| CliError::failed(format!("the server ended `{verb}` without a summary")))?;
    if !args.json {
        print_summary(verb, &args.target, &summary);
    }
    Ok(if summary.ok { 0 } else { 1 })
}

/// What a followed progress stream ended with.
pub struct Followed {
    pub summary: Option<OperationSummary>,
    /// The last deployment status seen, for streams of deployments.
    pub deployment_status: Option<cj_api::DeploymentStatus>,
}

/// Prints a newline-delimited JSON progress stream as it comes (or the raw lines with `json`).
pub async fn follow(response: reqwest::Response, verb: &str, json: bool) -> CliResult<Followed> {
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut followed = Followed {
        summary: None,
        deployment_status: None,
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            CliError::failed(format!("lost the connection to the server: {error}"))
        })?;
        buffer.extend_from_slice(&chunk);
        while let Some(newline) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=newline).collect();
            let event: OperationEvent = serde_json::from_slice(&line).map_err(|error| {
                CliError::failed(format!("unexpected progress line from the server: {error}"))
            })?;
            if json {
                println!("{}", String::from_utf8_lossy(line.trim_ascii_end()));
            } else {
                print_event(verb, &event);
            }
            let _ = std::io::stdout().flush();
            match event {
                OperationEvent::Summary(done) => followed.summary = Some(done),
                OperationEvent::Deployment { status, .. } => {
                    followed.deployment_status = Some(status)
                }
                _ => {}
            }
        }
    }
    Ok(followed)
}

fn print_event(verb: &str, event: &OperationEvent) {
    match event {
        OperationEvent::Plan { waves } => {
            let order: Vec<String> = waves.iter().map(|wave| wave.join(" + ")).collect();
            println!("{verb} order: {}", order.join("  ->  "));
        }
        OperationEvent::WaveStarted { wave, jobs } => println!("wave {wave}: {}", jobs.join(", ")),
        OperationEvent::Task {
            task,
            phase,
            detail,
        } => match detail {
            Some(detail) => println!("  {task:<40} {phase:<10} {detail}"),
            None => println!("  {task:<40} {phase}"),
        },
        OperationEvent::Deployment {
            id,
            status,
            message,
        } => {
            let status = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            match message {
                Some(message) => println!("deployment {id}: {status}: {message}"),
                None => println!("deployment {id}: {status}"),
            }
        }
        OperationEvent::Batch {
            job,
            batch,
            of,
            tasks,
            canary,
        } => {
            let what = if *canary { "canary" } else { "batch" };
            println!("{job}: {what} {batch}/{of}: {}", tasks.join(", "));
        }
        OperationEvent::WaveDone { .. } | OperationEvent::Summary(_) => {}
    }
}

pub fn print_summary(verb: &str, target: &str, summary: &OperationSummary) {
    let changed_word = match verb {
        "up" => "started",
        "down" => "removed",
        _ => "moved",
    };
    println!(
        "{verb} {target}: {} {changed_word}, {} unchanged, {} failed in {:.1}s",
        summary.changed.len(),
        summary.unchanged.len(),
        summary.failed.len(),
        summary.seconds
    );
    for failure in &summary.failed {
        eprintln!("failed: {}: {}", failure.task, failure.reason);
    }
    if !summary.skipped.is_empty() {
        eprintln!(
            "not attempted (an earlier wave failed): {}",
            summary.skipped.join(", ")
        );
    }
}
