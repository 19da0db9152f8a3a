//! `rolling-update`, `rollback`, `reload`, `update`, `promote` and `abort`: start or steer a
//! deployment and follow it until it ends or waits for promotion.

use cj_api::{DeployRequest, DeploymentStatus};
use serde::Serialize;

use crate::client::{CliResult, Client};
use crate::commands::operation::{follow, print_summary};

/// Posts the request with `follow` set and prints the deployment's progress.
pub async fn run(
    client: &Client,
    verb: &str,
    path: &str,
    request: &impl Serialize,
    target: &str,
    json: bool,
) -> CliResult<i32> {
    let response = client.send(client.post(path, request)).await?;
    let followed = follow(response, verb, json).await?;
    match (followed.summary, followed.deployment_status) {
        (Some(summary), _) => {
            if !json {
                print_summary(verb, target, &summary);
            }
            Ok(if summary.ok { 0 } else { 1 })
        }
        (None, Some(DeploymentStatus::AwaitingPromotion)) => {
            if !json {
                println!(
                    "waiting: `coding-job promote {target}` to go on, `coding-job abort {target}` to roll back"
                );
            }
            Ok(0)
        }
        (None, _) => Ok(0),
    }
}

pub fn request(client: &Client, target: &str) -> DeployRequest {
    DeployRequest {
        env: client.env.clone(),
        target: target.to_owned(),
        follow: true,
        ..DeployRequest::default()
    }
}

#[derive(Serialize)]
struct GateRequest<'a> {
    env: &'a str,
    target: &'a str,
    follow: bool,
}

/// `promote SERVICE` / `abort SERVICE`, then follow the deployment on.
pub async fn gate(client: &Client, verb: &str, args: &crate::args::TargetArgs) -> CliResult<i32> {
    let request = GateRequest {
        env: &client.env,
        target: &args.target,
        follow: true,
    };
    run(
        client,
        verb,
        &format!("/v1/{verb}"),
        &request,
        &args.target,
        args.json,
    )
    .await
}
