//! `events`: every change of the cluster's state, from the store: the newest ones, those
//! after a revision (`--since`), or as they happen (`-f`).

use std::io::Write;

use cj_api::events::Event;

use crate::args::EventsArgs;
use crate::client::{CliError, CliResult, Client, ResponseLines};
use crate::output::{print_json, relative};

pub async fn run(client: &Client, args: EventsArgs) -> CliResult<i32> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(since) = args.since {
        query.push(("since", since.to_string()));
    }
    if let Some(env) = &args.env {
        query.push(("env", env.clone()));
    }
    if !args.follow {
        let events: Vec<Event> = client.json(client.get("/v1/events").query(&query)).await?;
        if args.json {
            return print_json(&events);
        }
        let mut out = std::io::stdout().lock();
        for event in &events {
            print_event(&mut out, event);
        }
        return Ok(0);
    }
    query.push(("follow", "true".into()));
    let response = client.send(client.get("/v1/events").query(&query)).await?;
    let mut lines = ResponseLines::new(response);
    let mut out = std::io::stdout().lock();
    while let Some(line) = lines.next().await? {
        let value: serde_json::Value = serde_json::from_slice(&line).map_err(|error| {
            CliError::failed(format!("unexpected event line from the server: {error}"))
        })?;
        if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
            return Err(CliError::failed(error.to_owned()));
        }
        let written = if args.json {
            writeln!(out, "{}", String::from_utf8_lossy(line.trim_ascii_end()))
        } else {
            let event: Event = serde_json::from_value(value).map_err(|error| {
                CliError::failed(format!("unexpected event from the server: {error}"))
            })?;
            print_event(&mut out, &event);
            Ok(())
        };
        if written.and_then(|_| out.flush()).is_err() {
            // The reader went away (e.g. `| head`): stop quietly.
            return Ok(0);
        }
    }
    Err(CliError::failed("the server closed the event stream"))
}

/// `REVISION  AGE  KIND  ENV  MESSAGE`, one line per event.
fn print_event(out: &mut impl Write, event: &Event) {
    let _ = writeln!(
        out,
        "{:>8}  {:>10}  {:<10}  {:<12}  {}",
        event.revision,
        relative(event.at.as_deref()),
        event.kind.as_str(),
        event.env.as_deref().unwrap_or("-"),
        event.message
    );
}
