//! `push FILE...`: store a new version of each service.

use cj_api::{PushRequest, PushResponse};

use crate::args::PushArgs;
use crate::client::{CliError, CliResult, Client};
use crate::output::print_json;

pub async fn run(client: &Client, args: PushArgs) -> CliResult<i32> {
    // Read every file first: a missing one stops the push before anything is stored.
    let mut requests = Vec::new();
    for path in &args.files {
        let source = read_config(path)?;
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
            if response.stored {
                println!("{} -> version {}", response.service, response.version);
            } else {
                println!(
                    "{}: unchanged: still version {}",
                    response.service, response.version
                );
            }
        }
        pushed.push(response);
    }
    if args.json {
        return print_json(&pushed);
    }
    Ok(0)
}

/// A config file's text, refused before anything is sent if it is larger than the server
/// accepts.
fn read_config(path: &std::path::Path) -> CliResult<String> {
    let cannot_read = |error: std::io::Error| {
        CliError::bad_input(format!("cannot read {}: {error}", path.display()))
    };
    let size = std::fs::metadata(path).map_err(cannot_read)?.len();
    if size > cj_spec::MAX_SOURCE_BYTES as u64 {
        return Err(CliError::bad_input(format!(
            "{}: the file is {} bytes; a service file may be at most {} bytes (1 MiB): \
             split the service, or move large data out of the config",
            path.display(),
            size,
            cj_spec::MAX_SOURCE_BYTES
        )));
    }
    std::fs::read_to_string(path).map_err(cannot_read)
}
