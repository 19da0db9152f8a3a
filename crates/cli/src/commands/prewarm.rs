//! `hosts prewarm HOST`: the host's agent pulls every image the host runs or may run that its
//! engine lacks; one line per image, then a count. Exits 1 if any pull failed.

use cj_api::{PrewarmResponse, PullOutcome};

use crate::args::HostArgs;
use crate::client::{CliResult, Client};
use crate::output::print_json;

pub async fn run(client: &Client, args: HostArgs) -> CliResult<i32> {
    let path = format!("/v1/hosts/{}/prewarm", args.host);
    let response: PrewarmResponse = client
        .json(client.post(&path, &serde_json::json!({})))
        .await?;
    let failed = response
        .images
        .iter()
        .filter(|pull| !pull.outcome.is_ready())
        .count();
    let code = if failed == 0 { 0 } else { 1 };
    if args.json {
        print_json(&response)?;
        return Ok(code);
    }
    if response.images.is_empty() {
        println!(
            "{}: no task runs or may run there: nothing to pull",
            response.host
        );
        return Ok(0);
    }
    let (mut present, mut pulled) = (0, 0);
    for pull in &response.images {
        match &pull.outcome {
            PullOutcome::Present => {
                present += 1;
                println!("present  {}", pull.image);
            }
            PullOutcome::Pulled { seconds } => {
                pulled += 1;
                println!("pulled   {} ({seconds:.1} s)", pull.image);
            }
            PullOutcome::Failed { error } => println!("failed   {}: {error}", pull.image),
        }
    }
    println!(
        "{}: {present} already present, {pulled} pulled, {failed} failed",
        response.host
    );
    Ok(code)
}
