//! `push FILE...`: store a new version of each service.

use cj_api::{PushRequest, PushResponse};

use crate::args::PushArgs;
use crate::client::{CliError, CliResult, Client};
use crate::output::print_json;

pub async fn run(client: &Client, args: PushArgs) -> CliResult<i32> {
    // Read every file first: a missing one stops the push before anything is stored.
    let mut requests = Vec::new();
    for path in &args.files {
        let source = std::fs::read_to_string(path).map_err(|error| {
            CliError::bad_input(format!("cannot read {}: {error}", path.display()))
        })?;
        requests.push(PushRequest {
            env: client.env.clone(),
            file: path.display().to_string(),
            source,
            check_revision: args.check_rev,
        });
    }
    let mut pushed: Vec<PushResponse> = Vec::new();
    for request in &requests {
        let response: PushResponse = client.json(client.post("/v1/push", request)).await?;
        if !args.json {
            match (response.changed, response.previous) {
                (false, Some(previous)) => {
                    println!(
                        "{} -> version {} (same file as version {previous})",
                        response.service, response.version
                    )
                }
                _ => println!("{} -> version {}", response.service, response.version),
            }
        }
        pushed.push(response);
    }
    if args.json {
        return print_json(&pushed);
    }
    Ok(0)
}
