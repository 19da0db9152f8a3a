//! Command-line arguments (those of `env ...` are in `env`).

mod env;
mod https;
mod import;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use env::{
    EnvCommand, EnvCreateArgs, EnvDestroyArgs, EnvListArgs, EnvOperationArgs, EnvRunArgs,
    EnvVarsArgs, NewEnvArgs,
};
pub use https::HttpsArgs;
pub use import::{ImportCommand, ImportOutputArgs};

/// Where `dev` listens unless told otherwise, and so where the CLI looks by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

#[derive(Debug, Parser)]
#[command(
    name = "coding-job",
    version,
    about = "Container orchestration on real Docker engines"
)]
pub struct Cli {
    /// The server's URL, or several of the installation's servers separated by commas
    /// (`https://a:7400,https://b:7400`): one that cannot be connected to is passed over for
    /// the next.
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
    /// The API token to send (`Authorization: Bearer`); a `dev` server on loopback needs none.
    #[arg(long, global = true, env = "CODING_JOB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM certificate to trust for the server's TLS, besides the usual roots (for a server
    /// with a self-signed or private CA's certificate).
    #[arg(long, global = true, value_name = "FILE", env = "CODING_JOB_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// When to colour the output: on a terminal (`auto`, unless NO_COLOR is set), `always` or
    /// `never`.
    #[arg(
        long,
        global = true,
        value_name = "WHEN",
        env = "CODING_JOB_COLOR",
        default_value = "auto"
    )]
    pub color: crate::color::ColorMode,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server, an agent and the embedded store in one process, for one machine.
    Dev(DevArgs),
    /// Run the server with the embedded store and no agent of its own; agents join it. Every
    /// request needs a token (the first admin token is written to DATA_DIR/admin.token).
    Server(ServerArgs),
    /// Run this host's agent: it links to the server (`--server`) and runs the host's tasks.
    Agent(AgentArgs),
    /// Simulate many hosts in this process: one real agent per host, each on an engine in
    /// memory, all linked to the server (`--server`). For measuring the control plane at scale;
    /// it shows nothing about Docker itself.
    Sim(SimArgs),
    /// Run a router: `NAME.ENV.DOMAIN` reaches the healthy tasks of routed jobs, following the
    /// server's route table as it changes. Run one or several, in front of the hosts.
    Router(RouterArgs),
    /// Store a new version of each service file (does not deploy).
    Push(PushArgs),
    /// Start what is not running, in dependency order.
    Up(OperationArgs),
    /// Stop and remove, in reverse dependency order.
    Down(OperationArgs),
    /// What runs where.
    #[command(alias = "list")]
    Status(StatusCommandArgs),
    /// Every host: its agent's state, its engine, and what it uses.
    Hosts(HostsArgs),
    /// The servers sharing the cluster's store: which one leads, since when, their versions.
    Servers(JsonArgs),
    /// A task's container: our view plus Docker's own inspect.
    Inspect(TargetArgs),
    /// A task's container output, also of stopped and replaced containers.
    Logs(LogsArgs),
    /// Run a command in a task's running container, on whatever host it runs (as `docker
    /// exec`); exits with the command's exit code.
    Exec(ExecArgs),
    /// Every version of a job's service and every container the job ran.
    History(HistoryArgs),
    /// What pushing FILE and rolling it out would change, task by task.
    Diff(DiffArgs),
    /// Roll the target's running jobs to the latest pushed version, in batches with health gates.
    RollingUpdate(TargetArgs),
    /// Roll a job back to an earlier version (default: the one before the current).
    Rollback(RollbackArgs),
    /// Replace the target's tasks with fresh containers of the same configuration, in batches.
    Reload(TargetArgs),
    /// List the running container and the registry's tags for a job's image; roll to one.
    Update(UpdateArgs),
    /// Let a deployment waiting at its manual gate go on.
    Promote(TargetArgs),
    /// Stop a deployment and roll back what it moved.
    Abort(TargetArgs),
    /// Rollouts in progress and past: batches, health, outcome.
    Deployments(StatusArgs),
    /// Environments: isolated copies of the whole system (list, create, up, down, destroy,
    /// vars), and `run`: a command against a fresh one that is destroyed afterwards.
    #[command(subcommand)]
    Env(EnvCommand),
    /// API tokens: create (the secret is shown once), list, revoke. Needs the admin role.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Who did what: every write request, allowed or refused, newest first. Needs the admin
    /// role.
    Audit(AuditArgs),
    /// Every change of state (pushes, desired state, containers, health, deployments, hosts,
    /// environments), from the store: the newest, those after `--since`, or live with `-f`.
    Events(EventsArgs),
    /// Alerts the server's `alerts:` rules raised: firing and recently resolved, newest first.
    Alerts(JsonArgs),
    /// Every volume of the tasks named (all without TARGET): its task, host, engine name,
    /// seed and newest snapshot.
    Volumes(StatusArgs),
    /// Volume snapshots: `snapshot` copies a task's volume (the task paused for the copy) to
    /// the server's snapshot target, `snapshots` lists them.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Backups of the server's store: `snapshot` copies it from the running server (admin
    /// role); `restore` builds a data directory from a copy, with the server stopped.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Turn a Compose file, a Marathon app or group, a Kamal deploy.yml or the seed's job list
    /// into service files, with a report of what was carried, changed and left out. Reads
    /// files only: nothing is pushed.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell): `source <(coding-job
    /// completion bash)`, or save it where the shell looks.
    Completion(CompletionArgs),
    /// Print the manual page (roff): `coding-job man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Copy volume VOLUME of task TASK as a zstd-compressed tar, made on the task's host and
    /// kept on the server's snapshot target. The task is paused for the copy (the pause is
    /// reported) unless --live. With -o, the snapshot is also written to FILE.
    Snapshot(VolumeSnapshotArgs),
    /// Snapshots kept, newest first: of one task's volume, or all of them.
    Snapshots(VolumeSnapshotsArgs),
    /// Replace volume VOLUME of task TASK with a snapshot's content (of any task's volume),
    /// as a one-task reload: the old container stops, the volume is refilled on its host, and
    /// the new container starts on it and must pass its check. A snapshot whose data does not
    /// match its checksum is refused and nothing changes.
    Restore(VolumeRestoreArgs),
}

#[derive(Debug, Args)]
pub struct VolumeRestoreArgs {
    /// SERVICE/JOB/TASK, or a task name that is unique in the environment.
    pub task: String,
    /// The volume's name in the config.
    pub volume: String,
    /// The snapshot's id (`volume snapshots` lists them).
    pub snapshot: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VolumeSnapshotArgs {
    /// SERVICE/JOB/TASK, or a task name that is unique in the environment.
    pub task: String,
    /// The volume's name in the config (`volumes[].name`).
    pub volume: String,
    /// Also write the snapshot to FILE (through FILE.tmp, checked against its checksum).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Copy without pausing the task: its files may change during the copy, so the copy may
    /// be inconsistent.
    #[arg(long)]
    pub live: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VolumeSnapshotsArgs {
    /// Only this task's (its name, as `status` shows it).
    pub task: Option<String>,
    /// Only this volume's.
    pub volume: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the whole store from the running server into FILE: one consistent revision,
    /// checked before FILE is written (through FILE.tmp). Needs the admin role.
    Snapshot(SnapshotArgs),
    /// Build DATA_DIR's store from a snapshot FILE, offline: the server on DATA_DIR must be
    /// stopped. The audit log and admin.token are not part of a snapshot.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Where to write the snapshot (replaced if it exists).
    pub file: PathBuf,
    /// Print `{"file", "revision", "keys", "bytes"}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A snapshot made by `coding-job store snapshot`.
    pub file: PathBuf,
    /// The data directory to restore into (the server's `--data-dir`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Replace the store DATA_DIR already has.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the embedded store, the audit log and admin.token live.
    #[arg(long, default_value = "./cj-data")]
    pub data_dir: PathBuf,
    /// Where the cluster's state is kept: `embedded` (a file in the data directory; one
    /// server), or `etcd://HOST:PORT[,HOST:PORT...]`, shared by every server of the cluster
    /// (use `etcds://` for etcd's TLS).
    #[arg(long, value_name = "STORE", default_value = "embedded", value_parser = parse_store)]
    pub store: StoreArg,
    /// The CA certificate etcd's certificates are checked against (PEM).
    #[arg(long, value_name = "FILE")]
    pub etcd_ca_cert: Option<PathBuf>,
    /// A client certificate for etcd (PEM), with `--etcd-key`.
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// Address of the API (and of the agents' endpoint).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Server configuration (YAML): `notify:` webhook URLs, `registries:` with credentials.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve HTTPS with this certificate (chain), PEM.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Give the token named `admin` a new secret and write it to DATA_DIR/admin.token (the old
    /// secret stops working): for when the file was lost.
    #[arg(long)]
    pub reset_admin_token: bool,
    /// Anyone may read (the web UI and every GET the `read` role may) without a token; secret
    /// values never appear. Writes still need a token.
    #[arg(long)]
    pub public_read: bool,
    /// This server's name among the servers sharing its store (default: the address it
    /// listens on).
    #[arg(long)]
    pub name: Option<String>,
    /// The URL the other servers (and `coding-job servers`) reach this server's API at, when it
    /// is not the address it listens on: `https://10.0.0.1:7400`.
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// `--store`: the embedded store, or etcd's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreArg {
    Embedded,
    Etcd { endpoints: Vec<String>, tls: bool },
}

fn parse_store(text: &str) -> Result<StoreArg, String> {
    if text == "embedded" {
        return Ok(StoreArg::Embedded);
    }
    let (rest, tls) = if let Some(rest) = text.strip_prefix("etcd://") {
        (rest, false)
    } else if let Some(rest) = text.strip_prefix("etcds://") {
        (rest, true)
    } else {
        return Err(format!(
            "expected `embedded` or `etcd://HOST:PORT[,HOST:PORT...]`, found \"{text}\""
        ));
    };
    let endpoints: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|endpoint| !endpoint.is_empty())
        .map(str::to_owned)
        .collect();
    if endpoints.is_empty() {
        return Err("expected at least one etcd endpoint after etcd://, as HOST:PORT".into());
    }
    for endpoint in &endpoints {
        let port = endpoint.rsplit_once(':').map(|(_, port)| port);
        if port.and_then(|port| port.parse::<u16>().ok()).is_none() {
            return Err(format!(
                "etcd endpoint \"{endpoint}\": expected HOST:PORT (etcd's client port is \
                 usually 2379)"
            ));
        }
    }
    Ok(StoreArg::Etcd { endpoints, tls })
}

#[derive(Debug, Args)]
pub struct PlacementArgs {
    /// How long a host's agent may be gone before the host's unpinned tasks are placed on other
    /// hosts (pinned tasks wait for their host): `30s`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_host_down_after)]
    pub host_down_after: std::time::Duration,
    /// Where `port: auto` ports come from: FIRST-LAST, unique across every host.
    #[arg(long, value_name = "FIRST-LAST", default_value = "30000-32767", value_parser = cj_api::envs::parse_port_range)]
    pub port_range: std::ops::RangeInclusive<u16>,
    /// The routers' wildcard domain (routes are NAME.ENV.DOMAIN), for the URLs `env run` and
    /// `env` addresses show. `dev --router-listen` sets it itself.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
}

/// 1 s to 1 day: shorter would move tasks on a missed ping, longer is not "down" but gone.
fn parse_host_down_after(text: &str) -> Result<std::time::Duration, String> {
    cj_spec::parse_duration_ms(text)
        .filter(|ms| (1000..=86_400_000).contains(ms))
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| {
            format!("expected a duration from 1s to 24h, such as 30s or 2m, found \"{text}\"")
        })
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once and cannot be shown again.
    Create(TokenCreateArgs),
    /// Every token, with its role, when and by whom it was made (never secrets).
    List(JsonArgs),
    /// Revoke a token: it stops working at once.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// 1 to 63 letters, digits, `_`, `.` or `-`.
    pub name: String,
    /// read (GET only), deploy (read + push, up, down, rollouts...), admin (deploy + tokens and
    /// hosts), agent (agents only), router (read + a standalone router's counts and
    /// certificates).
    #[arg(long, value_parser = ["read", "deploy", "admin", "agent", "router"])]
    pub role: String,
    /// Print `{"name", "role", "secret"}` as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep following: print each change as it happens, until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Only changes after this store revision (the first column; or an answer's
    /// X-Coding-Job-Index).
    #[arg(long, value_name = "REV")]
    pub since: Option<u64>,
    /// Without -f: the newest N.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Only this environment's events (and those of no environment: hosts, tokens). Unlike
    /// other commands, events of every environment are shown by default.
    #[arg(long = "only-env", value_name = "ENV")]
    pub env: Option<String>,
    /// One JSON object per event (an array without -f).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The newest N entries.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub command: Option<HostsCommand>,
    /// Also each host's readings over the last hour (with --json).
    #[arg(long)]
    pub history: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Take no new tasks on HOST and move its unpinned tasks to other hosts (pinned tasks stay).
    Drain(HostArgs),
    /// Let HOST take new tasks again (nothing moves back).
    Undrain(HostArgs),
    /// Pull every image HOST runs or may run that its engine lacks, and say how each went
    /// (agents also do this by themselves, in the background, as configs change).
    Prewarm(HostArgs),
}

#[derive(Debug, Args)]
pub struct HostArgs {
    /// The host's name, as `coding-job hosts` shows it.
    pub host: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// This host's name, as configs name it in `run_on_host` (default: the system's host name).
    #[arg(long)]
    pub name: Option<String>,
    /// A file holding this agent's token (role `agent`).
    #[arg(long, value_name = "FILE", env = "CODING_JOB_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The Docker engine to drive, as Docker's `-H` (default: DOCKER_HOST, then the local
    /// socket).
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,
    /// Drive a simulated engine in this process instead of Docker: every image is present,
    /// containers run (as nothing) until stopped, and vanish with the agent. For trying the
    /// server and for many hosts on one machine; it shows nothing about Docker itself.
    #[arg(long, conflicts_with = "docker_host")]
    pub simulate: bool,
    /// The address others reach this host at, shown by `hosts` (default: the address the
    /// server sees the link come from).
    #[arg(long, value_name = "ADDRESS")]
    pub advertise: Option<std::net::IpAddr>,
    /// What the host is, shown by `hosts`: `--label zone=a --label disk=ssd`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Serve this agent's own metrics (its reconcile passes) at `/metrics` on this address,
    /// e.g. `0.0.0.0:7401`; the server's `/metrics` has the hosts' and tasks' state.
    #[arg(long, value_name = "ADDRESS")]
    pub metrics_listen: Option<SocketAddr>,
    /// Where tasks' artifacts (`artifact:` in a job) are kept, one file per checksum, so each
    /// version is fetched once per host.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/coding-job/artifacts"
    )]
    pub artifact_cache: PathBuf,
    /// The most the artifact cache keeps; past it, the least recently used artifacts are
    /// removed (never one a task is about to unpack).
    #[arg(long, value_name = "SIZE", default_value = "5GiB", value_parser = parse_size)]
    pub artifact_cache_size: u64,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// A file holding an `agent`-role token, which every simulated host uses (none for a `dev`
    /// server on loopback).
    #[arg(long, value_name = "FILE", env = "CODING_JOB_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// How many hosts to simulate.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub hosts: u32,
    /// The CPUs each host reports.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpu: u32,
    /// The memory each host reports: `64GiB`, `512m`, ...
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_size)]
    pub memory: u64,
    /// The hosts are named PREFIX0001, PREFIX0002, ... (as many digits as the count needs).
    #[arg(long, default_value = "sim-")]
    pub prefix: String,
    /// Spread the hosts over N zones, round robin: label `zone=zone-1` ... `zone=zone-N`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub zones: u32,
    /// A label every simulated host has: `--label disk=ssd`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Serve this process's metrics at `/metrics` on this address: among them
    /// `coding_job_agent_assignment_delivery_seconds`, how long assignments take to arrive, and
    /// `coding_job_sim_containers_running`, what the simulated engines run.
    #[arg(long, value_name = "ADDRESS")]
    pub metrics_listen: Option<SocketAddr>,
}

/// A memory size as service files write it.
fn parse_size(text: &str) -> Result<u64, String> {
    cj_spec::parse_memory(text)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("expected a size such as 64GiB or 512m, found \"{text}\""))
}

/// A wait in whole seconds, 1 s to a day (a bare number is seconds; a fraction rounds up).
fn parse_timeout(text: &str) -> Result<u64, String> {
    cj_spec::parse_duration_ms(text)
        .filter(|ms| (1000..=cj_api::MAX_TIMEOUT_SECONDS * 1000).contains(ms))
        .map(|ms| ms.div_ceil(1000))
        .ok_or_else(|| {
            format!(
                "expected a duration from 1s to 24h, such as 300, 90s, 10m or 1m30s, found \"{}\"",
                cj_spec::shown(text)
            )
        })
}

/// `KEY=VALUE`, by the rule `constraints` are checked with.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, found \"{text}\""))?;
    match cj_spec::label_problem(key, value) {
        Some(problem) => Err(problem),
        None => Ok((key.to_owned(), value.to_owned())),
    }
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// SERVICE/JOB or a unique job name.
    pub target: String,
    /// Show the file diff between two versions, e.g. `--diff 3..5`.
    #[arg(long, value_name = "FROM..TO")]
    pub diff: Option<String>,
    /// Show the newest N versions, containers and events (each).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// A service file (YAML).
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// Exit with 1 when pushing the file would change anything (the file, or any task), 0
    /// when not, as `git diff --exit-code`: for scripts and CI checks.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// SERVICE/JOB or a unique job name.
    pub target: String,
    /// The version to go back to.
    #[arg(long = "to", value_name = "VERSION")]
    pub to_version: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// SERVICE/JOB or a unique job name.
    pub target: String,
    /// The image tag to roll to (without it: list, and ask if there is a terminal).
    #[arg(long)]
    pub tag: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
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
    /// Server configuration (YAML): `notify:` webhook URLs, `registries:` with credentials.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Also run the router here: `NAME.ENV.DOMAIN` (with `--domain`) reaches routed jobs.
    #[arg(long, value_name = "ADDRESS", requires = "domain")]
    pub router_listen: Option<SocketAddr>,
    /// Off loopback, where tokens are required: anyone may read without one (as `server`).
    #[arg(long)]
    pub public_read: bool,
    /// The router's HTTPS (with `--router-listen`).
    #[command(flatten)]
    pub https: HttpsArgs,
}

#[derive(Debug, Args)]
pub struct RouterArgs {
    /// Where to listen for HTTP.
    #[arg(long, default_value = "0.0.0.0:80")]
    pub listen: SocketAddr,
    /// The wildcard domain: `NAME.ENV.DOMAIN`, and `NAME.DOMAIN` for production.
    #[arg(long)]
    pub domain: String,
    /// A file holding a token for the server: the `router` role reads the route table, reports
    /// the router's counts and shares certificates through the server (with `read`, it routes
    /// without ACME, but its counts are refused).
    #[arg(long, value_name = "FILE", env = "CODING_JOB_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// No access log lines.
    #[arg(long)]
    pub no_access_log: bool,
    /// Serve the router's own metrics (its proxied requests) at `/metrics` on this address.
    #[arg(long, value_name = "ADDRESS")]
    pub metrics_listen: Option<SocketAddr>,
    /// The router's name in the counts it reports to the server, unique among the routers
    /// [default: HOSTNAME:PORT].
    #[arg(long)]
    pub name: Option<String>,

    #[command(flatten)]
    pub https: HttpsArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Service files (YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Refuse if anything about the service changed after this revision (as printed by `diff`).
    #[arg(long = "check-rev", value_name = "REVISION")]
    pub check_rev: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OperationArgs {
    /// SERVICE, SERVICE/JOB, SERVICE/JOB/TASK or a unique job name.
    pub target: String,
    /// Give up on a wave that is not ready after this long: `300` (seconds), `90s`, `10m`,
    /// `1m30s`; at most a day.
    #[arg(long, value_name = "DURATION", default_value = "300", value_parser = parse_timeout)]
    pub timeout: u64,
    /// Print progress events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusCommandArgs {
    #[command(flatten)]
    pub status: StatusArgs,
    /// Keep watching: the list again whenever something changes (on the event stream, not by
    /// polling), until Ctrl-C; with `--json`, a line of JSON per change.
    #[arg(long, short = 'w')]
    pub watch: bool,
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
    /// Only the container's stdout or only its stderr (default: both, as the engine interleaves them).
    #[arg(long, value_name = "STREAM", value_parser = ["stdout", "stderr"])]
    pub stream: Option<String>,
    /// Only output written since then, to the second: a duration before now (`10m`, `1h30m`,
    /// `90s`) or an RFC 3339 time (`2024-05-01T12:00:00Z`), as `docker logs --since`.
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<time::OffsetDateTime>,
    /// Begin each line with the time it was written (RFC 3339, UTC, with nanoseconds).
    #[arg(short, long)]
    pub timestamps: bool,
}

/// `logs --since`: an RFC 3339 time, or a duration before now by this machine's clock (as
/// `docker logs` reads it). A duration needs its unit: a bare number could be meant as seconds
/// or as a Unix time.
pub(crate) fn parse_since(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let has_unit = text.ends_with(|c: char| c.is_ascii_alphabetic());
    let before_now = cj_spec::parse_duration_ms(text)
        .filter(|_| has_unit)
        .ok_or_else(|| {
            format!(
                "expected a duration such as 10m or 1h30m, or an RFC 3339 time such as \
                 2024-05-01T12:00:00Z, found \"{}\"",
                cj_spec::shown(text)
            )
        })?;
    // Further back than the calendar goes: everything there is.
    Ok(i64::try_from(before_now)
        .ok()
        .and_then(|ms| {
            time::OffsetDateTime::now_utc().checked_sub(time::Duration::milliseconds(ms))
        })
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH))
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// SERVICE/JOB/TASK, SERVICE/JOB, or a unique job name.
    pub target: String,
    /// Send this terminal's (or pipe's) stdin to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// A pseudo-terminal for the command (with -i on a terminal: raw mode here while it runs).
    #[arg(short, long)]
    pub tty: bool,
    /// A specific running container of the task (id or prefix).
    #[arg(long)]
    pub container: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    fn timeout(value: &str) -> Result<u64, clap::Error> {
        let cli = Cli::try_parse_from(["coding-job", "up", "core", "--timeout", value])?;
        match cli.command {
            Command::Up(args) => Ok(args.timeout),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn store_is_embedded_or_a_list_of_etcd_endpoints() {
        use super::{StoreArg, parse_store};
        assert_eq!(parse_store("embedded"), Ok(StoreArg::Embedded));
        assert_eq!(
            parse_store("etcd://10.0.0.1:2379, 10.0.0.2:2379"),
            Ok(StoreArg::Etcd {
                endpoints: vec!["10.0.0.1:2379".into(), "10.0.0.2:2379".into()],
                tls: false
            })
        );
        assert!(matches!(
            parse_store("etcds://etcd.internal:2379"),
            Ok(StoreArg::Etcd { tls: true, .. })
        ));
        let refused = parse_store("etcd://10.0.0.1").unwrap_err();
        assert!(
            refused.contains("\"10.0.0.1\": expected HOST:PORT"),
            "{refused}"
        );
        let refused = parse_store("redis://x:1").unwrap_err();
        assert!(
            refused.contains("expected `embedded` or `etcd://"),
            "{refused}"
        );
        assert!(parse_store("etcd://").is_err());
    }

    #[test]
    fn exec_takes_everything_after_the_target_or_the_dashes_as_the_command() {
        let exec = |args: &[&str]| {
            let mut all = vec!["coding-job", "exec"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all)?.command {
                Command::Exec(args) => Ok::<_, clap::Error>(args),
                other => panic!("parsed as {other:?}"),
            }
        };
        let args = exec(&["-it", "shop/db", "--", "sh", "-c", "echo -n x"]).unwrap();
        assert!(args.interactive && args.tty);
        assert_eq!(args.target, "shop/db");
        assert_eq!(args.command, ["sh", "-c", "echo -n x"]);
        let args = exec(&[
            "shop/db",
            "--container",
            "ab12",
            "-i",
            "--",
            "ls",
            "--",
            "-l",
        ])
        .unwrap();
        assert_eq!(args.container.as_deref(), Some("ab12"));
        assert!(args.interactive && !args.tty);
        assert_eq!(args.command, ["ls", "--", "-l"]);
        let args = exec(&["shop/db", "ls", "-t", "--env", "x"]).unwrap();
        assert!(!args.tty);
        assert_eq!(args.command, ["ls", "-t", "--env", "x"]);
        assert!(exec(&["shop/db"]).is_err());
        assert!(exec(&["shop/db", "--"]).is_err());
    }

    #[test]
    fn agent_labels_are_key_value_pairs() {
        let parse = |args: &[&str]| {
            let mut all = vec!["coding-job", "agent"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all)?.command {
                Command::Agent(args) => Ok::<_, clap::Error>(args.labels),
                other => panic!("parsed as {other:?}"),
            }
        };
        assert_eq!(
            parse(&["--label", "zone=a", "--label", "disk=ssd"]).unwrap(),
            [("zone".into(), "a".into()), ("disk".into(), "ssd".into())]
        );
        assert_eq!(
            parse(&["--label", "empty="]).unwrap(),
            [("empty".into(), String::new())]
        );
        for refused in ["zone", "=a", "a b=c", "x\u{7}=y"] {
            assert!(parse(&["--label", refused]).is_err(), "--label {refused}");
        }
    }

    #[test]
    fn sim_takes_a_host_count_and_a_size() {
        let parse = |args: &[&str]| {
            let mut all = vec!["coding-job", "sim"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all)?.command {
                Command::Sim(args) => Ok::<_, clap::Error>(args),
                other => panic!("parsed as {other:?}"),
            }
        };
        let defaults = parse(&[]).unwrap();
        assert_eq!(
            (defaults.hosts, defaults.cpu, defaults.memory),
            (100, 16, 64 << 30)
        );
        assert_eq!(defaults.prefix, "sim-");
        let args = parse(&["--hosts", "1000", "--cpu", "8", "--memory", "512m"]).unwrap();
        assert_eq!((args.hosts, args.cpu, args.memory), (1000, 8, 512 << 20));
        for refused in [
            &["--hosts", "0"][..],
            &["--memory", "lots"],
            &["--memory", "0"],
            &["--cpu", "0"],
        ] {
            let error = parse(refused).unwrap_err().to_string();
            assert!(error.contains(refused[0]), "{refused:?}: {error}");
        }
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let parse = |args: &[&str]| {
            let mut all = vec!["coding-job", "server"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
        };
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        assert!(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_ok());
    }

    #[test]
    fn timeout_is_bounded_to_a_day() {
        assert_eq!(timeout("1").unwrap(), 1);
        assert_eq!(timeout("86400").unwrap(), 86400);
        assert_eq!(timeout("90s").unwrap(), 90);
        assert_eq!(timeout("1m30s").unwrap(), 90);
        assert_eq!(timeout("24h").unwrap(), 86400);
        for refused in [
            "0",
            "86401",
            "18446744073709551615",
            "99999999999999999999",
            "-1",
        ] {
            assert!(
                timeout(refused).is_err(),
                "--timeout {refused} was accepted"
            );
        }
    }
}
