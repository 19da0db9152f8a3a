//! `inspect TASK`: our view of the task, then Docker's own inspect document.

use cj_api::InspectResponse;

use crate::args::TargetArgs;
use crate::client::{CliError, CliResult, Client};
use crate::output::{dash, print_json, relative};

pub async fn run(client: &Client, args: TargetArgs) -> CliResult<i32> {
    let query = [
        ("env", client.env.as_str()),
        ("target", args.target.as_str()),
    ];
    let response: InspectResponse = client.json(client.get("/v1/inspect").query(&query)).await?;
    if args.json {
        return print_json(&response);
    }
    let task = &response.task;
    println!("task:         {}/{}/{}", task.service, task.job, task.task);
    println!("environment:  {}", task.env);
    println!(
        "state:        {}{}",
        task.state,
        task.detail
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    println!(
        "host:         {} (actual: {})",
        task.host,
        dash(task.actual_host.as_ref())
    );
    println!("image:        {}", dash(task.image.as_ref()));
    println!(
        "version:      {} (desired: {})",
        dash(task.version),
        dash(task.desired_version)
    );
    println!(
        "container:    {} {}",
        dash(task.container_id.as_ref()),
        dash(task.container_name.as_ref())
    );
    println!("config hash:  {}", dash(response.config_hash.as_ref()));
    match &task.started_at {
        Some(at) => println!("started:      {at} ({})", relative(Some(at))),
        None => println!("started:      -"),
    }
    println!("docker inspect:");
    let text = serde_json::to_string_pretty(&response.container)
        .map_err(|error| CliError::failed(error.to_string()))?;
    println!("{text}");
    Ok(0)
}
