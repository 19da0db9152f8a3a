//! `update JOB [--tag T] [--yes]`: the running container and the registry's tags (as in the
//! seed's own tool), then a rollout to the chosen tag.

use std::io::{BufRead, IsTerminal, Write};

use cj_api::UpdateCandidates;

use crate::args::UpdateArgs;
use crate::client::{CliError, CliResult, Client};
use crate::commands::deploy;
use crate::output::{print_json, relative, short_id};

pub async fn run(client: &Client, args: UpdateArgs) -> CliResult<i32> {
    let query = [
        ("env", client.env.as_str()),
        ("target", args.target.as_str()),
    ];
    let candidates: UpdateCandidates = client
        .json(client.get("/v1/update/tags").query(&query))
        .await?;
    if args.json && args.tag.is_none() {
        return print_json(&candidates);
    }
    if !args.json {
        print_candidates(&candidates);
    }
    let tag = match &args.tag {
        Some(tag) => tag.clone(),
        None if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => {
            match pick(&candidates)? {
                Some(tag) => tag,
                None => return Ok(0),
            }
        }
        None => {
            println!(
                "\nrun `coding-job update {} --tag TAG` to roll to one",
                args.target
            );
            return Ok(0);
        }
    };
    if !candidates.tags.iter().any(|t| t.tag == tag) {
        return Err(CliError::bad_input(format!(
            "the registry has no tag {tag} for {}",
            candidates.image
        )));
    }
    if !args.yes
        && !confirm(&format!(
            "roll {}/{} to {tag}?",
            candidates.service, candidates.job
        ))?
    {
        return Ok(0);
    }
    let mut request = deploy::request(client, &args.target);
    request.tag = Some(tag);
    deploy::run(
        client,
        "update",
        "/v1/update",
        &request,
        &args.target,
        args.json,
    )
    .await
}

fn print_candidates(candidates: &UpdateCandidates) {
    if candidates.running.is_empty() {
        println!(
            "{}/{} runs no container",
            candidates.service, candidates.job
        );
    }
    for running in &candidates.running {
        println!(
            "Running container: [{}] ({})",
            running.container_name, running.task
        );
        println!("  Version:     {}", running.version);
        println!("  Image:       {}", running.image);
        println!(
            "  Created:     {} ({})",
            running.created,
            relative(Some(&running.created))
        );
        println!("  ImageID:     {}", running.image_id);
        println!("  ContainerID: {}", running.container_id);
    }
    println!("The tags in the registry for {}:", candidates.image);
    for (number, tag) in candidates.tags.iter().enumerate() {
        println!(
            "  {:>3}. Version: {:<20} IMAGE ID: {}  CREATED: {}",
            number + 1,
            tag.tag,
            short_id(tag.image_id.trim_start_matches("sha256:")),
            relative(tag.created.as_deref())
        );
    }
}

fn pick(candidates: &UpdateCandidates) -> CliResult<Option<String>> {
    let answer = ask("pick a tag (number or name, empty to cancel): ")?;
    if answer.is_empty() {
        return Ok(None);
    }
    if let Ok(number) = answer.parse::<usize>()
        && let Some(tag) = candidates.tags.get(number.wrapping_sub(1))
    {
        return Ok(Some(tag.tag.clone()));
    }
    Ok(Some(answer))
}

fn confirm(question: &str) -> CliResult<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::bad_input(format!(
            "{question} needs an answer: pass --yes to confirm without a terminal"
        )));
    }
    Ok(matches!(
        ask(&format!("{question} [y/N] "))?.as_str(),
        "y" | "Y" | "yes"
    ))
}

fn ask(prompt: &str) -> CliResult<String> {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| CliError::failed(error.to_string()))?;
    Ok(line.trim().to_owned())
}
