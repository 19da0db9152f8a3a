//! `audit`: who did what, newest first: every write request, allowed or refused.

use cj_api::AuditEntry;

use crate::args::AuditArgs;
use crate::client::{CliResult, Client};
use crate::output::{print_json, print_table, relative, table};

pub async fn run(client: &Client, args: AuditArgs) -> CliResult<i32> {
    let entries: Vec<AuditEntry> = client
        .json(client.get("/v1/audit").query(&[("limit", args.limit)]))
        .await?;
    if args.json {
        return print_json(&entries);
    }
    let mut output = table(&["WHO", "WHAT", "TARGET", "WHEN", "STATUS"]);
    for entry in &entries {
        let who = match entry.role {
            Some(role) => format!("{} ({role})", entry.who),
            None => entry.who.clone(),
        };
        let target = match (&entry.env, &entry.target) {
            (Some(env), Some(target)) => format!("{env}/{target}"),
            (None, Some(target)) => target.clone(),
            _ => "-".into(),
        };
        let reason = reqwest::StatusCode::from_u16(entry.status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or_default();
        output.add_row(vec![
            who,
            format!("{} {}", entry.method, entry.path),
            target,
            relative(Some(&entry.at)),
            format!("{} {reason}", entry.status).trim_end().to_owned(),
        ]);
    }
    print_table(&output);
    Ok(0)
}
