//! `deployments [SERVICE]`: rollouts in progress and past, with their batches and outcome.

use cj_api::{BatchState, Deployment, DeploymentStatus, Verdict};
use comfy_table::Cell;

use crate::args::StatusArgs;
use crate::client::{CliResult, Client};
use crate::color::{Tone, cell, paint};
use crate::output::{print_json, print_table, relative, table};

pub async fn run(client: &Client, args: StatusArgs) -> CliResult<i32> {
    let mut query = vec![("env", client.env.clone())];
    if let Some(target) = &args.target {
        query.push(("target", target.clone()));
    }
    let deployments: Vec<Deployment> = client
        .json(client.get("/v1/deployments").query(&query))
        .await?;
    if args.json {
        return print_json(&deployments);
    }
    if deployments.is_empty() {
        println!("no deployments in environment {}", client.env);
        return Ok(0);
    }
    let mut output = table(&[
        "ID", "KIND", "STATUS", "JOBS", "BATCHES", "BY", "CREATED", "MESSAGE",
    ]);
    for deployment in &deployments {
        let jobs: Vec<String> = deployment
            .jobs
            .iter()
            .map(|job| format!("{} {}->{}", job.job, job.from_version, job.to_version))
            .collect();
        let (healthy, total) = deployment.jobs.iter().flat_map(|job| &job.batches).fold(
            (0, 0),
            |(healthy, total), batch| {
                (
                    healthy + usize::from(batch.state == BatchState::Healthy),
                    total + 1,
                )
            },
        );
        output.add_row(vec![
            Cell::new(&deployment.id),
            Cell::new(word(&deployment.kind)),
            cell(tone(deployment.status), word(&deployment.status)),
            Cell::new(jobs.join(", ")),
            Cell::new(format!("{healthy}/{total} healthy")),
            Cell::new(&deployment.user),
            Cell::new(relative(Some(&deployment.created))),
            Cell::new(deployment.message.as_deref().unwrap_or_default()),
        ]);
    }
    print_table(&output);
    // The canary measurements of one service's deployments, or of those still in progress.
    for deployment in &deployments {
        if args.target.is_some() || deployment.status.is_active() {
            print_measurements(deployment);
        }
    }
    Ok(0)
}

/// Each canary measurement of `deployment`, one line each, under its job.
fn print_measurements(deployment: &Deployment) {
    for job in deployment
        .jobs
        .iter()
        .filter(|job| !job.analysis.is_empty())
    {
        let Some(analysis) = &job.policy.analysis else {
            continue;
        };
        println!(
            "\n{} canary analysis of {} (every {}, {} passes promote, more than {} failures roll back):",
            deployment.id,
            job.job,
            cj_api::seconds_text(analysis.interval_ms),
            analysis.checks,
            analysis.failure_limit
        );
        for measurement in &job.analysis {
            let tone = match measurement.verdict {
                Verdict::Pass => Tone::Good,
                Verdict::Fail => Tone::Bad,
                Verdict::Inconclusive => Tone::Busy,
            };
            let line = measurement.line();
            let (verdict, rest) = line.split_once(':').unwrap_or((&line, ""));
            anstream::println!(
                "  {:<12} {}:{rest}",
                relative(Some(&measurement.at)),
                paint(tone, verdict)
            );
        }
    }
}

fn tone(status: DeploymentStatus) -> Tone {
    match status {
        DeploymentStatus::Succeeded => Tone::Good,
        DeploymentStatus::Running
        | DeploymentStatus::AwaitingPromotion
        | DeploymentStatus::Analysing => Tone::Busy,
        DeploymentStatus::Failed | DeploymentStatus::RolledBack => Tone::Bad,
        // Stopped on purpose: nothing failed.
        DeploymentStatus::Aborted => Tone::Plain,
    }
}

fn word(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
