//! `up TARGET` and `down TARGET`: follow the server's progress stream and end with a summary.
//! Deployments and `env up`/`env down` answer with the same stream, printed here too.

use std::io::Write;

use crate::args::OperationArgs;
use crate::client::{CliError, CliResult, Client, ResponseLines};
use crate::color::{Tone, paint};
use cj_api::{OperationEvent, OperationRequest, OperationSummary};

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
    follow_into(response, verb, json, &mut std::io::stdout()).await
}

/// As [`follow`], writing to `out`: `env run` keeps stdout for its command's own output.
pub async fn follow_into(
    response: reqwest::Response,
    verb: &str,
    json: bool,
    out: &mut (dyn Write + Send),
) -> CliResult<Followed> {
    let mut lines = ResponseLines::new(response);
    let mut followed = Followed {
        summary: None,
        deployment_status: None,
    };
    while let Some(line) = lines.next().await? {
        let event: OperationEvent = serde_json::from_slice(&line).map_err(|error| {
            CliError::failed(format!("unexpected progress line from the server: {error}"))
        })?;
        if json {
            let _ = writeln!(out, "{}", String::from_utf8_lossy(line.trim_ascii_end()));
        } else {
            print_event(out, verb, &event);
        }
        let _ = out.flush();
        match event {
            OperationEvent::Summary(done) => followed.summary = Some(done),
            OperationEvent::Deployment { status, .. } => followed.deployment_status = Some(status),
            _ => {}
        }
    }
    Ok(followed)
}

/// One event as a line of progress. Write errors are ignored: progress is for the reader, and
/// the operation goes on without one.
fn print_event(out: &mut dyn Write, verb: &str, event: &OperationEvent) {
    let _ = match event {
        OperationEvent::Plan { waves } => {
            let order: Vec<String> = waves.iter().map(|wave| wave.join(" + ")).collect();
            writeln!(out, "{verb} order: {}", order.join("  ->  "))
        }
        OperationEvent::WaveStarted { wave, jobs } => {
            writeln!(out, "wave {wave}: {}", jobs.join(", "))
        }
        OperationEvent::Task {
            task,
            phase,
            detail,
        } => match detail {
            Some(detail) => writeln!(out, "  {task:<40} {phase:<10} {detail}"),
            None => writeln!(out, "  {task:<40} {phase}"),
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
                Some(message) => writeln!(out, "deployment {id}: {status}: {message}"),
                None => writeln!(out, "deployment {id}: {status}"),
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
            writeln!(out, "{job}: {what} {batch}/{of}: {}", tasks.join(", "))
        }
        // Plain: `out` may be any writer, where colour codes would not be dropped.
        OperationEvent::Measurement { job, measurement } => {
            writeln!(out, "{job}: canary measurement {}", measurement.line())
        }
        OperationEvent::WaveDone { .. } | OperationEvent::Summary(_) => Ok(()),
    };
}

pub fn print_summary(verb: &str, target: &str, summary: &OperationSummary) {
    write_summary(&mut std::io::stdout(), verb, target, summary);
}

/// The summary line to `out`; what failed, and what was not attempted, to stderr.
pub fn write_summary(out: &mut dyn Write, verb: &str, target: &str, summary: &OperationSummary) {
    let changed_word = match verb {
        "up" => "started",
        "down" => "removed",
        _ => "moved",
    };
    let _ = writeln!(
        out,
        "{verb} {target}: {} {changed_word}, {} unchanged, {} failed in {:.1}s",
        summary.changed.len(),
        summary.unchanged.len(),
        summary.failed.len(),
        summary.seconds
    );
    for failure in &summary.failed {
        anstream::eprintln!(
            "{} {}: {}",
            paint(Tone::Bad, "failed:"),
            failure.task,
            failure.reason
        );
        if !failure.log_tail.is_empty() {
            eprintln!("  last lines of its log:");
            for line in &failure.log_tail {
                eprintln!("  | {line}");
            }
        }
    }
    for waiting in &summary.waiting_for_host {
        eprintln!(
            "waiting for {}: {} stops when its agent is back (nothing wants it any more)",
            waiting.host, waiting.task
        );
    }
    if !summary.skipped.is_empty() {
        eprintln!(
            "not attempted (an earlier wave failed): {}",
            summary.skipped.join(", ")
        );
    }
}
