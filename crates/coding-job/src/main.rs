//! `coding-job`: one binary for the server, the agent and the CLI. This file only parses the
//! arguments and wires the pieces together.

use std::io::Write;
use std::time::Duration;

use cj_cli::{Cli, Command, DevArgs};
use cj_server::config::ServerConfig;
use cj_server::dev::{DevOptions, DevStarted, run_dev};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("failed to start the async runtime");
    let code = match cli.command {
        Command::Dev(args) => {
            init_logging();
            match runtime.block_on(dev(args)) {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    1
                }
            }
        }
        _ => runtime.block_on(cj_cli::run(cli)),
    };
    std::process::exit(code);
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    let options = DevOptions {
        data_dir: args.data_dir,
        listen: args.listen,
        host_name: args.host_name.unwrap_or_else(system_host_name),
        resync_interval: Duration::from_secs(10),
        config,
    };
    run_dev(options, announce, shutdown_signal()).await
}

/// The first stdout line says where the API listens (scripts and tests read it).
fn announce(started: &DevStarted) {
    let url = format!("http://{}", started.api);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "coding-job dev: API listening on {url}");
    let _ = writeln!(out, "  data directory: {}", started.data_dir.display());
    let _ = writeln!(out, "  cluster id:     {}", started.cluster);
    let _ = writeln!(
        out,
        "  try:            CODING_JOB_SERVER={url} coding-job status"
    );
    let _ = out.flush();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("failed to watch SIGTERM");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down; containers keep running and are re-adopted on the next start");
}

fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
