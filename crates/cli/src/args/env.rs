//! `env ...`: the arguments of the environment commands, and the parsers of what they take
//! (`K=V`, `HOST=OTHER`, durations), so a malformed value is refused before any request.

use std::path::PathBuf;

use super::parse_timeout;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Every environment: where it came from, what is up, when it expires.
    List(EnvListArgs),
    /// Make an environment from the latest version of every service of another (nothing starts
    /// until `env up`).
    Create(EnvCreateArgs),
    /// Start every service of the environment, in dependency order.
    Up(EnvOperationArgs),
    /// Stop and remove everything the environment runs (its versions and variables stay).
    Down(EnvOperationArgs),
    /// Stop everything, release its ports, remove its volumes (unless --keep-volumes) and
    /// forget the environment.
    Destroy(EnvDestroyArgs),
    /// List the environment's variables (secret values are never shown), or change them.
    Vars(EnvVarsArgs),
    /// Create an environment, bring it up, run a command on this machine with its addresses,
    /// then destroy it, whatever happened; exits with the command's exit code.
    Run(EnvRunArgs),
}

#[derive(Debug, Args)]
pub struct EnvListArgs {
    /// Also destroyed environments.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

/// What a new environment is made of: shared by `env create` and `env run`.
#[derive(Debug, Args)]
pub struct NewEnvArgs {
    /// The environment whose services (their latest versions) and variables are copied.
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// A YAML file of variables (`NAME: value`) that override the source's.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
    /// A variable that overrides the source's and the file's: `--set db_name=shop_pr`.
    #[arg(long = "set", value_name = "K=V", value_parser = parse_assignment)]
    pub set: Vec<(String, String)>,
    /// A variable (from --vars or --set) whose value is secret: never shown or logged.
    #[arg(long = "secret", value_name = "K")]
    pub secret: Vec<String>,
    /// Destroy the environment automatically after this long: `8h`, `90m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<u64>,
    /// Run the tasks the source pins to a host on another one: `--map-hosts host-1=host-4`.
    #[arg(long = "map-hosts", value_name = "HOST=OTHER", value_parser = parse_host_mapping)]
    pub map_hosts: Vec<(String, String)>,
    /// Copy the volumes too, from fresh snapshots of the source's (each source task paused
    /// for its copy): of every job with volumes, or `--with-data=db,cache` of those jobs. The
    /// new tasks' volumes are filled from them before they first start; the copies are
    /// independent.
    #[arg(
        long = "with-data",
        value_name = "JOBS",
        num_args = 0..=1,
        require_equals = true,
        value_delimiter = ',',
        default_missing_value = ""
    )]
    pub with_data: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct EnvCreateArgs {
    /// The new environment's name: letters, digits, '-' or '_'.
    pub name: String,
    #[command(flatten)]
    pub new: NewEnvArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnvOperationArgs {
    pub name: String,
    /// Give up on a wave that is not ready after this long (at most a day; default: the
    /// server's).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<u64>,
    /// Print progress events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnvDestroyArgs {
    pub name: String,
    /// Leave the environment's volumes (their data) on their hosts.
    #[arg(long)]
    pub keep_volumes: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnvVarsArgs {
    pub name: String,
    /// Set a variable: `--set db_name=shop_pr`. Tasks that use it restart.
    #[arg(long = "set", value_name = "K=V", value_parser = parse_assignment)]
    pub set: Vec<(String, String)>,
    /// Remove a variable (the service's default, if any, applies again).
    #[arg(long = "unset", value_name = "K")]
    pub unset: Vec<String>,
    /// A variable among --set whose value is secret: never shown or logged.
    #[arg(long = "secret", value_name = "K")]
    pub secret: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnvRunArgs {
    #[command(flatten)]
    pub new: NewEnvArgs,
    /// The environment's name (default: `run-` and six random letters and digits).
    #[arg(long)]
    pub name: Option<String>,
    /// When the command (or the bring-up) fails, keep the environment to look into.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Give up on a wave of the bring-up that is not ready after this long (at most a day).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<u64>,
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

/// `K=V`: the name is everything before the first `=` (the value may hold more of them).
pub(crate) fn parse_assignment(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, found \"{}\"", cj_spec::shown(text)))?;
    if name.is_empty() {
        return Err(format!(
            "expected NAME=VALUE, found \"{}\": the name is empty",
            cj_spec::shown(text)
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "invalid variable name \"{}\": spaces and control characters are not allowed",
            cj_spec::shown(name)
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `HOST=OTHER`: both sides host names, neither empty.
fn parse_host_mapping(text: &str) -> Result<(String, String), String> {
    let usage = || {
        format!(
            "expected HOST=OTHER (a host the source pins tasks to, and the host to run them on \
             instead), found \"{}\"",
            cj_spec::shown(text)
        )
    };
    let (from, to) = text.split_once('=').ok_or_else(usage)?;
    let host = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '=')
    };
    if !host(from) || !host(to) {
        return Err(usage());
    }
    Ok((from.to_owned(), to.to_owned()))
}

/// A time to live in whole seconds (a fraction of one rounds up): at least a second.
fn parse_ttl(text: &str) -> Result<u64, String> {
    cj_spec::parse_duration_ms(text)
        .filter(|ms| *ms >= 1000)
        .map(|ms| ms.div_ceil(1000))
        .ok_or_else(|| {
            format!(
                "expected a duration of at least 1s, such as 8h, 90m or 3600s, found \"{}\"",
                cj_spec::shown(text)
            )
        })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{EnvCommand, parse_assignment};
    use crate::args::{Cli, Command};

    fn env(args: &[&str]) -> Result<EnvCommand, clap::Error> {
        let mut all = vec!["coding-job", "env"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all)?.command {
            Command::Env(command) => Ok(command),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn assignments_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_assignment("url=http://x/?a=b").unwrap(),
            ("url".into(), "http://x/?a=b".into())
        );
        assert_eq!(
            parse_assignment("empty=").unwrap(),
            ("empty".into(), String::new())
        );
        for refused in ["novalue", "=x", "", "a b=c", "a\tb=c"] {
            let error = parse_assignment(refused).unwrap_err();
            assert!(
                error.contains("NAME=VALUE") || error.contains("invalid variable name"),
                "{refused}: {error}"
            );
        }
    }

    #[test]
    fn create_takes_vars_secrets_ttl_and_host_mappings() {
        let EnvCommand::Create(args) = env(&[
            "create",
            "pr-123",
            "--from",
            "staging",
            "--vars",
            "vars.yaml",
            "--set",
            "a=1",
            "--set",
            "b=x=y",
            "--secret",
            "b",
            "--ttl",
            "8h",
            "--map-hosts",
            "host-1=host-4",
            "--json",
        ])
        .unwrap() else {
            panic!("not create");
        };
        assert_eq!(args.name, "pr-123");
        assert_eq!(args.new.from, "staging");
        assert_eq!(args.new.vars_file.unwrap().to_str(), Some("vars.yaml"));
        assert_eq!(
            args.new.set,
            [("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert_eq!(args.new.secret, ["b"]);
        assert_eq!(args.new.ttl, Some(8 * 3600));
        assert_eq!(args.new.map_hosts, [("host-1".into(), "host-4".into())]);
        assert!(args.json);
        assert!(env(&["create", "x"]).is_err(), "--from is required");
        for refused in ["host-1", "=b", "a=", "a b=c", "a=b=c"] {
            assert!(
                env(&["create", "x", "--from", "y", "--map-hosts", refused]).is_err(),
                "--map-hosts {refused}"
            );
        }
        for refused in ["0", "0.5", "soon", "-1h"] {
            assert!(
                env(&["create", "x", "--from", "y", "--ttl", refused]).is_err(),
                "--ttl {refused}"
            );
        }
        let EnvCommand::Create(args) =
            env(&["create", "x", "--from", "y", "--ttl", "1.5s"]).unwrap()
        else {
            panic!("not create");
        };
        assert_eq!(args.new.ttl, Some(2));
    }

    #[test]
    fn timeouts_are_durations_up_to_a_day() {
        let timeout = |value: &str| match env(&["up", "pr-1", "--timeout", value])? {
            EnvCommand::Up(args) => Ok::<_, clap::Error>(args.timeout),
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(timeout("300").unwrap(), Some(300));
        assert_eq!(timeout("10m").unwrap(), Some(600));
        assert_eq!(timeout("24h").unwrap(), Some(86_400));
        for refused in ["0", "500ms", "25h", "x"] {
            assert!(timeout(refused).is_err(), "--timeout {refused}");
        }
        let EnvCommand::Down(args) = env(&["down", "pr-1"]).unwrap() else {
            panic!("not down");
        };
        assert_eq!(args.timeout, None);
    }

    #[test]
    fn run_takes_everything_after_its_options_as_the_command() {
        let run = |args: &[&str]| {
            let mut all = vec!["run"];
            all.extend_from_slice(args);
            match env(&all)? {
                EnvCommand::Run(args) => Ok::<_, clap::Error>(args),
                other => panic!("parsed as {other:?}"),
            }
        };
        let args = run(&[
            "--from",
            "staging",
            "--name",
            "pr-123",
            "--keep-on-failure",
            "--timeout",
            "2m",
            "--",
            "make",
            "test",
            "--env",
            "x",
        ])
        .unwrap();
        assert_eq!(args.new.from, "staging");
        assert_eq!(args.name.as_deref(), Some("pr-123"));
        assert!(args.keep_on_failure);
        assert_eq!(args.timeout, Some(120));
        assert_eq!(args.command, ["make", "test", "--env", "x"]);
        let args = run(&["--from", "staging", "sh", "-c", "exit 3"]).unwrap();
        assert_eq!(args.name, None);
        assert_eq!(args.command, ["sh", "-c", "exit 3"]);
        assert!(run(&["--from", "staging"]).is_err());
        assert!(run(&["--from", "staging", "--"]).is_err());
        assert!(run(&["--", "true"]).is_err(), "--from is required");
    }

    #[test]
    fn vars_sets_and_unsets() {
        let EnvCommand::Vars(args) = env(&[
            "vars", "pr-1", "--set", "a=1", "--unset", "b", "--secret", "a",
        ])
        .unwrap() else {
            panic!("not vars");
        };
        assert_eq!(args.name, "pr-1");
        assert_eq!(args.set, [("a".into(), "1".into())]);
        assert_eq!(args.unset, ["b"]);
        assert_eq!(args.secret, ["a"]);
        assert!(env(&["vars", "pr-1", "--set", "a"]).is_err());
    }
}
