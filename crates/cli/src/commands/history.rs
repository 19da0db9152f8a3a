//! `history JOB`: the service's versions, every container the job ran, and what happened to them.

use cj_api::HistoryResponse;

use crate::args::HistoryArgs;
use crate::client::{CliResult, Client};
use crate::output::{dash, print_json, print_table, relative, short_id, table};

pub async fn run(client: &Client, args: HistoryArgs) -> CliResult<i32> {
    if let Some(range) = &args.diff {
        return diff_versions(client, &args.target, range, args.json).await;
    }
    let limit = args.limit.to_string();
    let query = [
        ("env", client.env.as_str()),
        ("target", args.target.as_str()),
        ("limit", limit.as_str()),
    ];
    let history: HistoryResponse = client.json(client.get("/v1/history").query(&query)).await?;
    if args.json {
        return print_json(&history);
    }
    println!("{}/{} in {}", history.service, history.job, history.env);
    println!("\nVERSIONS");
    let mut versions = table(&["VERSION", "PUSHED", "BY", "FILE"]);
    for version in history.versions.iter().rev() {
        versions.add_row(vec![
            version.version.to_string(),
            relative(Some(&version.pushed_at)),
            version.pushed_by.clone(),
            version.file.clone(),
        ]);
    }
    print_table(&versions);
    println!("\nCONTAINERS");
    let mut containers = table(&[
        "CONTAINER",
        "TASK",
        "VERSION",
        "IMAGE",
        "HOST",
        "CREATED",
        "FINISHED",
        "EXIT",
        "RESTARTS",
        "REMOVED",
    ]);
    for record in history.containers.iter().rev() {
        containers.add_row(vec![
            short_id(&record.id),
            record.task.clone(),
            record.version.to_string(),
            record.image.clone(),
            record.host.clone(),
            relative(Some(&record.created)),
            relative(record.finished.as_deref()),
            dash(record.exit_code),
            record.restarts.to_string(),
            if record.removed.is_some() {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    print_table(&containers);
    println!("\nEVENTS");
    let mut events = table(&["TIME", "EVENT", "TASK", "CONTAINER", "VERSION", "EXIT"]);
    for event in history.events.iter().rev().take(50) {
        events.add_row(vec![
            relative(Some(&event.at)),
            event.kind.clone(),
            event.task.clone(),
            short_id(&event.container_id),
            event.version.to_string(),
            dash(event.exit_code),
        ]);
    }
    print_table(&events);
    Ok(0)
}

/// `history JOB --diff 3..5`: the file as pushed in one version against another.
async fn diff_versions(client: &Client, target: &str, range: &str, json: bool) -> CliResult<i32> {
    let (from, to) = range
        .split_once("..")
        .and_then(|(from, to)| {
            Some((
                from.trim().parse::<u64>().ok()?,
                to.trim().parse::<u64>().ok()?,
            ))
        })
        .ok_or_else(|| {
            crate::client::CliError::bad_input(format!(
                "--diff expects FROM..TO, e.g. 3..5, found \"{range}\""
            ))
        })?;
    let query = [
        ("env", client.env.clone()),
        ("target", target.to_owned()),
        ("from", from.to_string()),
        ("to", to.to_string()),
    ];
    let diff: cj_api::VersionDiff = client
        .json(client.get("/v1/versions/diff").query(&query))
        .await?;
    if json {
        return print_json(&diff);
    }
    let name = |info: &cj_api::VersionInfo| {
        format!(
            "{} version {} ({}, by {})",
            diff.service, info.version, info.pushed_at, info.pushed_by
        )
    };
    crate::commands::diff::print_unified(
        &name(&diff.from),
        &name(&diff.to),
        &diff.from_source,
        &diff.to_source,
    );
    Ok(0)
}
