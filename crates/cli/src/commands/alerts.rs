//! `alerts`: what the server's alert rules raised, active and recently resolved, newest first.

use cj_api::alerts::Alert;

use crate::args::JsonArgs;
use crate::client::{CliResult, Client};
use crate::output::{age, print_json, print_table, table};

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
            None => "FIRING".to_owned(),
            Some(at) => format!("resolved {} ago", age(Some(at))),
        };
        output.add_row(vec![
            state,
            alert.rule.clone(),
            alert.subject.clone(),
            format!("{} ago", age(Some(&alert.started))),
            alert.message.clone(),
        ]);
    }
    print_table(&output);
    Ok(0)
}
