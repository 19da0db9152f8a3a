//! `status [TARGET]`: one line per task, what runs where.

use cj_api::TaskStatus;

use crate::args::StatusArgs;
use crate::client::{CliResult, Client};
use crate::output::{age, bytes, dash, print_json, print_table, short_id, table};

pub async fn run(client: &Client, args: StatusArgs) -> CliResult<i32> {
    let mut query = vec![("env", client.env.clone())];
    if let Some(target) = &args.target {
        query.push(("target", target.clone()));
    }
    let rows: Vec<TaskStatus> = client.json(client.get("/v1/status").query(&query)).await?;
    if args.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("nothing pushed to environment {} yet", client.env);
        return Ok(0);
    }
    let mut output = table(&[
        "TASK",
        "HOST",
        "ACTUAL HOST",
        "STATE",
        "IMAGE",
        "VERSION",
        "CONTAINER",
        "UP",
        "CPU",
        "MEMORY",
    ]);
    for row in &rows {
        let state = match (&row.health, &row.detail) {
            (Some(health), Some(detail)) => format!("{}, {health} ({detail})", row.state),
            (Some(health), None) => format!("{}, {health}", row.state),
            (None, Some(detail)) => format!("{} ({detail})", row.state),
            (None, None) => row.state.clone(),
        };
        let version = match (row.version, row.desired_version) {
            (Some(running), Some(desired)) if running != desired => {
                format!("{running} (want {desired})")
            }
            (Some(running), _) => running.to_string(),
            (None, desired) => dash(desired),
        };
        let up = if row.state == "running" {
            age(row.started_at.as_deref())
        } else {
            "-".into()
        };
        output.add_row(vec![
            format!("{}/{}/{}", row.service, row.job, row.task),
            row.host.clone(),
            dash(row.actual_host.as_ref()),
            state,
            dash(row.image.as_ref()),
            version,
            dash(row.container_id.as_deref().map(short_id)),
            up,
            dash(row.cpu_percent.map(|cpu| format!("{cpu:.1}%"))),
            dash(row.memory_bytes.map(bytes)),
        ]);
    }
    print_table(&output);
    Ok(0)
}
