//! `status [TARGET]`: one line per task, what runs where.

use cj_api::TaskStatus;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures_util::FutureExt;

use crate::args::{StatusArgs, StatusCommandArgs};
use crate::client::{CliError, CliResult, Client, ResponseLines};
use crate::color::{cell, task_tone};
use crate::output::{bytes, dash, elapsed, print_json, short_id, table, table_text};

pub async fn run(client: &Client, args: StatusCommandArgs) -> CliResult<i32> {
    if args.watch {
        return watch(client, &args.status).await;
    }
    let rows = fetch(client, &args.status).await?;
    if args.status.json {
        return print_json(&rows);
    }
    print!("{}", render(client, &rows));
    Ok(0)
}

async fn fetch(client: &Client, args: &StatusArgs) -> CliResult<Vec<TaskStatus>> {
    let mut query = vec![("env", client.env.clone())];
    if let Some(target) = &args.target {
        query.push(("target", target.clone()));
    }
    client.json(client.get("/v1/status").query(&query)).await
}

/// How long `--watch` lets a burst of changes settle before it reads again.
const SETTLE: Duration = Duration::from_millis(200);
/// How often `--watch` reads again without news (uptimes move on).
const REFRESH: Duration = Duration::from_secs(5);

/// `status --watch`: the list again after every change the event stream announces (and every
/// few seconds), redrawn in place on a terminal, printed again when it changed otherwise.
async fn watch(client: &Client, args: &StatusArgs) -> CliResult<i32> {
    let terminal = std::io::stdout().is_terminal();
    let mut events: Option<ResponseLines> = None;
    let mut shown = String::new();
    loop {
        let rows = fetch(client, args).await?;
        let text = match args.json {
            true => serde_json::to_string(&rows).map_err(|e| CliError::failed(e.to_string()))?,
            false => render(client, &rows),
        };
        if terminal && !args.json {
            let now = time::OffsetDateTime::now_utc();
            print!(
                "\x1b[H\x1b[2J{} at {:02}:{:02}:{:02} UTC (Ctrl-C to stop)\n\n{text}",
                client.env,
                now.hour(),
                now.minute(),
                now.second()
            );
        } else if text != shown {
            if !shown.is_empty() && !args.json {
                println!();
            }
            print!("{text}");
            if args.json {
                println!();
            }
        }
        if std::io::stdout().flush().is_err() {
            return Ok(0);
        }
        shown = text;
        if events.is_none() {
            let query = [("env", client.env.clone()), ("follow", "true".into())];
            events = client
                .send(client.get("/v1/events").query(&query))
                .await
                .ok()
                .map(ResponseLines::new);
        }
        let refresh = tokio::time::sleep(REFRESH);
        match events.as_mut() {
            Some(lines) => tokio::select! {
                line = lines.next() => match line {
                    Ok(Some(_)) => {
                        tokio::time::sleep(SETTLE).await;
                        // Whatever else came meanwhile is in this read too.
                        while let Some(Ok(Some(_))) = lines.next().now_or_never() {}
                    }
                    // The stream ended (the server restarted): follow it again next time.
                    _ => events = None,
                },
                () = refresh => {}
            },
            None => refresh.await,
        }
    }
}

fn render(client: &Client, rows: &[TaskStatus]) -> String {
    if rows.is_empty() {
        return format!("nothing pushed to environment {} yet\n", client.env);
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
    for row in rows {
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
            elapsed(row.started_at.as_deref())
        } else {
            "-".into()
        };
        output.add_row(vec![
            format!("{}/{}/{}", row.service, row.job, row.task).into(),
            row.host.clone().into(),
            dash(row.actual_host.as_ref()).into(),
            cell(task_tone(&row.state, row.health.as_deref()), state),
            dash(row.image.as_ref()).into(),
            version.into(),
            dash(row.container_id.as_deref().map(short_id)).into(),
            up.into(),
            dash(row.cpu_percent.map(|cpu| format!("{cpu:.1}%"))).into(),
            dash(row.memory_bytes.map(bytes)).into(),
        ]);
    }
    table_text(&output)
}
