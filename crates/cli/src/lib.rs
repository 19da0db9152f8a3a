//! The command line: argument definitions, an HTTP client for the API, and terminal output.
//! Every command talks to the server over HTTP (the same API the web UI uses); none reaches
//! Docker or the store directly. `dev`, `server`, `agent` and `store restore` (offline, on a
//! data directory) are defined here but run by the binary, which owns the server and the
//! agent.

mod args;
mod client;
pub mod color;
mod commands;
pub mod manual;
mod output;
mod servers;
mod websocket;

pub use args::{
    AgentArgs, Cli, Command, DEFAULT_LISTEN, DevArgs, HttpsArgs, PlacementArgs, RestoreArgs,
    RouterArgs, ServerArgs, SimArgs, StoreArg, StoreCommand, VolumeCommand,
};
pub use client::{CliError, Client};

use clap::Parser;

/// Parses the command line (exiting with clap's message, and 2, when it is wrong) and makes its
/// `--color` the process's choice. The choice is read from the raw arguments first, so clap's
/// own help and errors obey it too.
pub fn parse() -> Cli {
    color::apply(color::mode_in_args(
        std::env::args_os(),
        std::env::var_os("CODING_JOB_COLOR").as_deref(),
    ));
    let cli = Cli::parse();
    color::apply(cli.color);
    cli
}

/// Runs a client command; returns the process exit code (0 done, 1 failed, 2 bad input; `exec`
/// and `env run`: the command's own).
pub async fn run(cli: Cli) -> i32 {
    color::apply(cli.color);
    // Reads local files only: no server, so no client to make.
    if matches!(cli.command, Command::Import(_)) {
        let Command::Import(command) = cli.command else {
            unreachable!()
        };
        return commands::import::run(command, &cli.env);
    }
    let token = cli.token.as_deref();
    let client = match Client::new(&cli.server, &cli.env, token, cli.ca_cert.as_deref()) {
        Ok(client) => client,
        Err(error) => return report(error),
    };

    let result = match cli.command {
        Command::Dev(_)
        | Command::Agent(_)
        | Command::Server(_)
        | Command::Router(_)
        | Command::Sim(_)
        | Command::Completion(_)
        | Command::Man
        | Command::Import(_)
        | Command::Store(StoreCommand::Restore(_)) => {
            unreachable!(
                "the binary runs `dev`, `server`, `agent`, `router`, `sim`, `completion`, `man` and `store restore` itself"
            )
        }
        Command::Push(args) => commands::push::run(&client, args).await,
        Command::Up(args) => commands::operation::run(&client, "up", args).await,
        Command::Down(args) => commands::operation::run(&client, "down", args).await,
        Command::Status(args) => commands::status::run(&client, args).await,
        Command::Hosts(args) => commands::hosts::run(&client, args).await,
        Command::Servers(args) => commands::servers::run(&client, args).await,
        Command::Inspect(args) => commands::inspect::run(&client, args).await,
        Command::Logs(args) => commands::logs::run(&client, args).await,
        Command::Exec(args) => commands::exec::run(&client, args).await,
        Command::History(args) => commands::history::run(&client, args).await,
        Command::Diff(args) => commands::diff::run(&client, args).await,
        Command::RollingUpdate(args) => {
            let request = commands::deploy::request(&client, &args.target);
            commands::deploy::run(
                &client,
                "rolling-update",
                "/v1/rolling-update",
                &request,
                &args.target,
                args.json,
            )
            .await
        }
        Command::Rollback(args) => {
            let mut request = commands::deploy::request(&client, &args.target);
            request.to_version = args.to_version;
            commands::deploy::run(
                &client,
                "rollback",
                "/v1/rollback",
                &request,
                &args.target,
                args.json,
            )
            .await
        }
        Command::Reload(args) => {
            let request = commands::deploy::request(&client, &args.target);
            commands::deploy::run(
                &client,
                "reload",
                "/v1/reload",
                &request,
                &args.target,
                args.json,
            )
            .await
        }
        Command::Update(args) => commands::update::run(&client, args).await,
        Command::Promote(args) => commands::deploy::gate(&client, "promote", &args).await,
        Command::Abort(args) => commands::deploy::gate(&client, "abort", &args).await,
        Command::Deployments(args) => commands::deployments::run(&client, args).await,
        Command::Env(command) => commands::env::run(&client, command).await,
        Command::Token(command) => commands::token::run(&client, command).await,
        Command::Audit(args) => commands::audit::run(&client, args).await,
        Command::Events(args) => commands::events::run(&client, args).await,
        Command::Alerts(args) => commands::alerts::run(&client, args).await,
        Command::Volumes(args) => commands::volumes::list(&client, args).await,
        Command::Volume(VolumeCommand::Snapshot(args)) => {
            commands::volumes::snapshot(&client, args).await
        }
        Command::Volume(VolumeCommand::Snapshots(args)) => {
            commands::volumes::snapshots(&client, args).await
        }
        Command::Volume(VolumeCommand::Restore(args)) => {
            let request = cj_api::snapshots::RestoreRequest {
                env: client.env.clone(),
                task: args.task.clone(),
                volume: args.volume.clone(),
                snapshot: args.snapshot.clone(),
                follow: true,
            };
            commands::deploy::run(
                &client,
                "restore",
                "/v1/snapshots/restore",
                &request,
                &args.task,
                args.json,
            )
            .await
        }
        Command::Store(StoreCommand::Snapshot(args)) => {
            commands::store::snapshot(&client, args).await
        }
    };
    result.unwrap_or_else(report)
}

/// Prints a failed command's message; returns its exit code.
fn report(error: CliError) -> i32 {
    // A rejected config is already a list of located errors, one per line.
    if error.message.contains('\n') {
        eprintln!("{}", error.message);
    } else {
        anstream::eprintln!("{} {}", color::error_label(), error.message);
    }
    error.exit_code
}
