//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where `dev` listens unless told otherwise, and so where the CLI looks by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

#[derive(Debug, Parser)]
#[command(
    name = "coding-job",
    version,
    about = "Container orchestration on real Docker engines"
)]
pub struct Cli {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "CODING_JOB_SERVER",
        default_value = "http://127.0.0.1:7400"
    )]
    pub server: String,
    /// The environment to act on.
    #[arg(long, global = true, env = "CODING_JOB_ENV", default_value = cj_api::DEFAULT_ENV)]
    pub env: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server, an agent and the embedded store in one process, for one machine.
    Dev(DevArgs),
    /// Store a new version of each service file (does not deploy).
    Push(PushArgs),
    /// Start what is not running, in dependency order.
    Up(OperationArgs),
    /// Stop and remove, in reverse dependency order.
    Down(OperationArgs),
    /// What runs where.
    #[command(alias = "list")]
    Status(StatusArgs),
    /// A task's container: our view plus Docker's own inspect.
    Inspect(TargetArgs),
    /// A task's container output, also of stopped and replaced containers.
    Logs(LogsArgs),
    /// Every version of a job's service and every container the job ran.
    History(TargetArgs),
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the embedded store and state live.
    #[arg(long, default_value = "./cj-data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API (loopback by default).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// This machine's host name in `status` (default: the system's).
    #[arg(long)]
    pub host_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Service files (YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OperationArgs {
    /// SERVICE, SERVICE/JOB, SERVICE/JOB/TASK or a unique job name.
    pub target: String,
    /// Give up on a wave that is not ready after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Print progress events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Limit to a service, job or task.
    pub target: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// SERVICE/JOB/TASK, SERVICE/JOB, or a unique job name.
    pub target: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// SERVICE/JOB/TASK, SERVICE/JOB, or a unique job name.
    pub target: String,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u32>,
    /// Keep following new output.
    #[arg(short, long)]
    pub follow: bool,
    /// A specific container of the task (id or prefix), e.g. one that was replaced.
    #[arg(long)]
    pub container: Option<String>,
}
