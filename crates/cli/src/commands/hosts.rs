//! `hosts`: every host, its agent's state and last heartbeat, its engine and what it uses;
//! `hosts drain|undrain HOST`; `hosts prewarm HOST` is in `prewarm`.

use cj_api::{DrainResponse, HostInfo};

use crate::args::{HostArgs, HostsArgs, HostsCommand};
use crate::client::{CliResult, Client};
use crate::color::{Tone, cell};
use crate::output::{bytes, dash, print_json, print_table, relative, table};

pub async fn run(client: &Client, args: HostsArgs) -> CliResult<i32> {
    match args.command {
        Some(HostsCommand::Drain(host)) => return drain(client, host, "drain").await,
        Some(HostsCommand::Undrain(host)) => return drain(client, host, "undrain").await,
        Some(HostsCommand::Prewarm(host)) => return super::prewarm::run(client, host).await,
        None => {}
    }
    let query = [("history", args.history.to_string())];
    let hosts: Vec<HostInfo> = client.json(client.get("/v1/hosts").query(&query)).await?;
    if args.json {
        return print_json(&hosts);
    }
    if hosts.is_empty() {
        println!("no hosts yet: start `coding-job agent` on a host, or `coding-job dev`");
        return Ok(0);
    }
    let mut output = table(&[
        "HOST", "ADDRESS", "STATE", "LABELS", "TASKS", "CPU", "MEMORY", "DISK", "DOCKER", "HEARD",
    ]);
    for host in &hosts {
        let resources = host.resources.as_ref();
        let tone = match host.state.as_str() {
            "ready" => Tone::Good,
            "draining" => Tone::Busy,
            "down" => Tone::Bad,
            _ => Tone::Plain,
        };
        let row: Vec<comfy_table::Cell> = vec![
            host.name.clone().into(),
            dash(host.address.as_ref()).into(),
            cell(tone, &host.state),
            if host.labels.is_empty() {
                "-".into()
            } else {
                host.labels
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }
            .into(),
            host.tasks.to_string().into(),
            dash(resources.map(|r| format!("{:.0}% of {}", r.cpu_percent, r.cpus))).into(),
            dash(resources.map(|r| {
                format!(
                    "{} / {}",
                    bytes(r.memory_used_bytes),
                    bytes(r.memory_total_bytes)
                )
            }))
            .into(),
            dash(resources.map(|r| {
                format!(
                    "{} / {}",
                    bytes(r.disk_used_bytes),
                    bytes(r.disk_total_bytes)
                )
            }))
            .into(),
            dash(host.engine_version.as_ref()).into(),
            match &host.last_heartbeat {
                Some(at) => relative(Some(at)),
                None => "never".into(),
            }
            .into(),
        ];
        output.add_row(row);
    }
    print_table(&output);
    Ok(0)
}

/// `hosts drain HOST` or `hosts undrain HOST` (`action`).
async fn drain(client: &Client, args: HostArgs, action: &str) -> CliResult<i32> {
    let path = format!("/v1/hosts/{}/{action}", args.host);
    let response: DrainResponse = client
        .json(client.post(&path, &serde_json::json!({})))
        .await?;
    if args.json {
        print_json(&response)?;
    } else {
        match response.draining {
            true => println!("{}: draining, it takes no new tasks", response.host),
            false => println!("{}: takes new tasks again", response.host),
        }
        for moved in &response.moved {
            println!("  moved {} to {}", moved.task, moved.to);
        }
        for stuck in &response.unplaced {
            println!("  {} has nowhere to go: {}", stuck.task, stuck.reason);
        }
        if response.draining && !response.pinned.is_empty() {
            println!(
                "  {} pinned task(s) stay (their config names this host): {}",
                response.pinned.len(),
                response.pinned.join(", ")
            );
        }
        if !response.moved.is_empty() {
            println!("follow with `coding-job status`");
        }
    }
    Ok(if response.unplaced.is_empty() { 0 } else { 1 })
}
