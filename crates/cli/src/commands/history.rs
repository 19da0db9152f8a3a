//! `history JOB`: the service's versions, every container the job ran, and what happened to them.

use cj_api::HistoryResponse;

use crate::args::TargetArgs;
use crate::client::{CliResult, Client};
use crate::output::{dash, print_json, print_table, short_id, table};

pub async fn run(client: &Client, args: TargetArgs) -> CliResult<i32> {
    let query = [
        ("env", client.env.as_str()),
        ("target", args.target.as_str()),
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
            version.pushed_at.clone(),
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
            record.created.clone(),
            dash(record.finished.as_ref()),
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
            event.at.clone(),
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
