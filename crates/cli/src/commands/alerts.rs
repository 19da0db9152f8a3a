//! `alerts`: what the server's alert rules raised, active and recently resolved, newest first.

use cj_api::alerts::Alert;

use crate::args::JsonArgs;
use crate::client::{CliResult, Client};
use crate::color::{Tone, cell};
use crate::output::{print_json, print_table, relative, table};

pub async fn run(client: &Client, args: JsonArgs) -> CliResult<i32> {
    let alerts: Vec<Alert> = client.json(client.get("/v1/alerts")).await?;
    if args.json {
        return print_json(&alerts);
    }
    if alerts.is_empty() {
        println!("no alerts");
        return Ok(0);
    }
    let mut output = table(&["STATE", "RULE", "SUBJECT", "STARTED", "MESSAGE"]);
    for alert in &alerts {
        let state = match &alert.resolved {
            None => cell(Tone::Bad, "FIRING"),
            Some(at) => cell(Tone::Plain, format!("resolved {}", relative(Some(at)))),
        };
        output.add_row(vec![
            state,
            alert.rule.clone().into(),
            alert.subject.clone().into(),
            relative(Some(&alert.started)).into(),
            alert.message.clone().into(),
        ]);
    }
    print_table(&output);
    Ok(0)
}
