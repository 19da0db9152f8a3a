//! `env run --from SRC [--name NAME] ... -- CMD...`: a command against a fresh environment that
//! is destroyed afterwards, whatever happens. Create, bring up, read the addresses, run CMD on
//! this machine with `CJ_ENV`, `CJ_ADDR_<SERVICE>_<JOB>` and `CJ_URL_<ROUTE>` set, destroy.
//! Everything this command says goes to stderr: stdout is the command's.
//!
//! SIGINT and SIGTERM are caught from before the environment exists to after it is gone: during
//! the bring-up they cancel it, while the command runs they are passed on to it (it may get ^C
//! from the terminal too) and the command is waited for; the environment is destroyed either
//! way. A request that must not be cut short (create, destroy) is waited for after a first
//! signal; a second one stops waiting, with a word on what may be left behind.
//!
//! The exit code is the command's (128 + N if signal N ended it), 1 after a failed bring-up,
//! 128 + N after signal N during the bring-up.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;

use cj_api::OperationSummary;
use cj_api::envs::{CreateEnvResponse, EnvAddresses};
use futures_util::FutureExt;
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use super::{checked_name, count, create_request, destroyed_line, request_destroy, start};
use crate::args::EnvRunArgs;
use crate::client::{CliError, CliResult, Client};
use crate::commands::operation::{follow_into, write_summary};

/// The characters of a generated name.
const NAME_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Random bytes at or above this are skipped: 252 is the largest multiple of 36 a byte holds, so
/// every character is equally likely.
const NAME_BYTE_LIMIT: u8 = 252;
const NAME_CHARS: usize = 6;

pub async fn run(client: &Client, args: EnvRunArgs) -> CliResult<i32> {
    let name = match &args.name {
        Some(name) => checked_name(name)?.to_owned(),
        None => generated_name()?,
    };
    let request = create_request(&name, args.new)?;
    let mut signals = Signals::listen()?;

    let note = format!("waiting for environment {name} to be created, to destroy it");
    let created = match wait_out(
        client.json(client.post("/v1/envs", &request)),
        &mut signals,
        &note,
    )
    .await
    {
        Waited::Done(created, interrupted) => {
            // Nothing was created if this failed, and a name that was taken is not ours to
            // destroy.
            let created: CreateEnvResponse = created?;
            if let Some(caught) = interrupted {
                return Ok(finish(client, &name, &mut signals, caught.exit_code(), false).await);
            }
            created
        }
        Waited::Abandoned(caught) => {
            eprintln!(
                "stopped waiting: environment {name} may have been created; see `coding-job env \
                 list`, destroy it with: coding-job env destroy {name}"
            );
            return Ok(caught.exit_code());
        }
    };
    eprintln!(
        "created environment {name} from {}: {}",
        request.from,
        count(created.copied.len(), "service")
    );

    let brought_up = tokio::select! {
        brought_up = bring_up(client, &name, args.timeout) => brought_up,
        caught = signals.next() => {
            eprintln!("{}: cancelling the bring-up of environment {name}", caught.name());
            return Ok(finish(client, &name, &mut signals, caught.exit_code(), false).await);
        }
    };
    let addresses = match brought_up {
        Ok(addresses) => addresses,
        Err(message) => {
            eprintln!("error: {message}");
            let keep = args.keep_on_failure;
            return Ok(finish(client, &name, &mut signals, 1, keep).await);
        }
    };

    let variables = command_env(&name, &addresses);
    let names: Vec<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
    eprintln!(
        "running {} against environment {name} ({})",
        args.command.join(" "),
        names.join(", ")
    );
    let code = match Command::new(&args.command[0])
        .args(&args.command[1..])
        .envs(variables)
        .spawn()
    {
        Ok(child) => wait_for(child, &mut signals).await,
        Err(error) => {
            eprintln!("error: cannot run {}: {error}", args.command[0]);
            // As a shell says it: 127 for a command not found, 126 for one that cannot run.
            if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    };
    let keep = code != 0 && args.keep_on_failure;
    Ok(finish(client, &name, &mut signals, code, keep).await)
}

/// Starts the environment (its progress on stderr) and reads its addresses; `Err` says why it
/// did not come up.
async fn bring_up(
    client: &Client,
    name: &str,
    timeout: Option<u64>,
) -> Result<EnvAddresses, String> {
    let response = start(client, name, "up", timeout)
        .await
        .map_err(|error| error.message)?;
    let mut stderr = std::io::stderr();
    let followed = follow_into(response, "up", false, &mut stderr)
        .await
        .map_err(|error| error.message)?;
    let summary = followed
        .summary
        .ok_or("the server ended the bring-up without a summary")?;
    write_summary(&mut stderr, "up", &format!("environment {name}"), &summary);
    if !summary.ok {
        return Err(not_up(name, &summary));
    }
    client
        .json(client.get(&format!("/v1/envs/{name}/addresses")))
        .await
        .map_err(|error| {
            format!(
                "cannot read the addresses of environment {name}: {}",
                error.message
            )
        })
}

/// Why a bring-up failed, naming what failed first (every failure is listed above it).
fn not_up(name: &str, summary: &OperationSummary) -> String {
    match summary.failed.split_first() {
        Some((first, [])) => format!("environment {name} did not come up: {} failed", first.task),
        Some((first, rest)) => format!(
            "environment {name} did not come up: {} failed (and {} more)",
            first.task,
            rest.len()
        ),
        None => format!("environment {name} did not come up"),
    }
}

/// Waits for the command, passing each signal on to it; its exit code, 128 + N if signal N
/// ended it.
async fn wait_for(mut child: Child, signals: &mut Signals) -> i32 {
    let mut told = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            caught = signals.next() => {
                if !told {
                    // A command may take long to stop, or never: say what is waited for.
                    eprintln!(
                        "{}: passed on to the command; the environment is destroyed once it ends",
                        caught.name()
                    );
                    told = true;
                }
                // Only a child not yet reaped has an id, so it cannot be another process's.
                if let Some(pid) = child.id().and_then(|id| Pid::from_raw(id.try_into().ok()?)) {
                    let _ = kill_process(pid, caught.signal());
                }
            }
        }
    };
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 1,
        },
        Err(error) => {
            eprintln!("error: lost track of the command: {error}");
            1
        }
    }
}

/// Destroys the environment, or keeps it (`keep`, after a failure) and says how to destroy it;
/// returns the exit code: `code`, or 1 instead of 0 when it could not be destroyed.
async fn finish(client: &Client, name: &str, signals: &mut Signals, code: i32, keep: bool) -> i32 {
    let destroy_it = format!("destroy it with: coding-job env destroy {name}");
    if keep {
        eprintln!("kept environment {name}; {destroy_it}");
        return code;
    }
    // Signals already dealt with (passed on, or what ended the bring-up) must not cut this short.
    signals.forget();
    let note = format!("destroying environment {name}");
    let failed = if code == 0 { 1 } else { code };
    match wait_out(request_destroy(client, name, false), signals, &note).await {
        Waited::Done(Ok(destroyed), _) => {
            eprintln!("{}", destroyed_line(&destroyed));
            code
        }
        Waited::Done(Err(error), _) => {
            eprintln!(
                "error: could not destroy environment {name}: {}; {destroy_it}",
                error.message
            );
            failed
        }
        Waited::Abandoned(_) => {
            eprintln!("stopped waiting: environment {name} may remain; {destroy_it}");
            failed
        }
    }
}

enum Waited<T> {
    /// The work's result, and the signal that came meanwhile, if one did.
    Done(T, Option<Caught>),
    /// A second signal came first.
    Abandoned(Caught),
}

/// Waits for `work`, which a signal must not cut short: the first signal only says what is
/// being waited for (`note`); a second one stops waiting.
async fn wait_out<T>(
    work: impl Future<Output = T>,
    signals: &mut Signals,
    note: &str,
) -> Waited<T> {
    tokio::pin!(work);
    let mut first = None;
    loop {
        tokio::select! {
            done = &mut work => return Waited::Done(done, first),
            caught = signals.next() => {
                if first.is_some() {
                    return Waited::Abandoned(caught);
                }
                eprintln!("{}: {note}; interrupt again to stop waiting", caught.name());
                first = Some(caught);
            }
        }
    }
}

/// A signal this command handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caught {
    Interrupt,
    Terminate,
}

impl Caught {
    fn name(self) -> &'static str {
        match self {
            Caught::Interrupt => "interrupted",
            Caught::Terminate => "terminated",
        }
    }

    fn signal(self) -> Signal {
        match self {
            Caught::Interrupt => Signal::INT,
            Caught::Terminate => Signal::TERM,
        }
    }

    /// 128 + the signal's number, as a shell reports a process the signal ended.
    fn exit_code(self) -> i32 {
        128 + self.signal().as_raw()
    }
}

/// SIGINT and SIGTERM, caught (so they no longer end this process) while this lives.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> CliResult<Signals> {
        let listen = |kind| {
            signal(kind)
                .map_err(|error| CliError::failed(format!("cannot listen for signals: {error}")))
        };
        Ok(Signals {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    /// The next signal to arrive.
    async fn next(&mut self) -> Caught {
        tokio::select! {
            _ = self.interrupt.recv() => Caught::Interrupt,
            _ = self.terminate.recv() => Caught::Terminate,
        }
    }

    /// Drops signals that arrived and were not looked at yet.
    fn forget(&mut self) {
        while self.next().now_or_never().is_some() {}
    }
}

/// The variables the command gets besides this process's own: `CJ_ENV=<name>`,
/// `CJ_ADDR_<SERVICE>_<JOB>=<HOST:PORT,...>` for every job with addresses and
/// `CJ_URL_<ROUTE>=<url>` for every job with a URL.
fn command_env(name: &str, addresses: &EnvAddresses) -> Vec<(String, String)> {
    let mut variables = vec![("CJ_ENV".to_owned(), name.to_owned())];
    for job in &addresses.jobs {
        if !job.addresses.is_empty() {
            variables.push((
                format!("CJ_ADDR_{}_{}", env_word(&job.service), env_word(&job.job)),
                job.addresses.join(","),
            ));
        }
        if let Some(url) = &job.url {
            let route = job.route.as_deref().unwrap_or(&job.job);
            variables.push((format!("CJ_URL_{}", env_word(route)), url.clone()));
        }
    }
    variables
}

/// A name as part of an environment variable's name: upper case, with `-`, `.` (and anything
/// else a shell would not take in a name) as `_`.
fn env_word(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => c.to_ascii_uppercase(),
            _ => '_',
        })
        .collect()
}

/// `run-` and six random lowercase letters and digits.
fn generated_name() -> CliResult<String> {
    let mut random = [0u8; 32];
    loop {
        getrandom::fill(&mut random).map_err(|error| {
            CliError::failed(format!(
                "cannot pick a name for the environment ({error}): give one with --name"
            ))
        })?;
        if let Some(name) = name_from(&random) {
            return Ok(name);
        }
    }
}

/// The name `random`'s bytes make, if they hold enough usable ones.
fn name_from(random: &[u8]) -> Option<String> {
    let chars: String = random
        .iter()
        .filter(|byte| **byte < NAME_BYTE_LIMIT)
        .take(NAME_CHARS)
        .map(|byte| char::from(NAME_ALPHABET[usize::from(byte % 36)]))
        .collect();
    (chars.len() == NAME_CHARS).then(|| format!("run-{chars}"))
}

#[cfg(test)]
mod tests {
    use cj_api::TaskFailure;
    use cj_api::envs::JobAddress;

    use super::*;

    fn job(service: &str, name: &str, addresses: &[&str], route: Option<&str>) -> JobAddress {
        JobAddress {
            service: service.into(),
            job: name.into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            route: route.map(str::to_owned),
            url: route.map(|route| format!("http://{route}.pr-1.example.test")),
        }
    }

    #[test]
    fn the_command_gets_the_environment_and_its_addresses() {
        let addresses = EnvAddresses {
            env: "pr-1".into(),
            jobs: vec![
                job("shop", "db", &["10.0.0.1:5432"], None),
                job(
                    "shop-api",
                    "web.v2",
                    &["10.0.0.1:8080", "10.0.0.2:8080"],
                    Some("shop-web"),
                ),
                job("shop", "batch", &[], None),
            ],
        };
        let variables = command_env("pr-1", &addresses);
        let variables: Vec<(&str, &str)> = variables
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            variables,
            [
                ("CJ_ENV", "pr-1"),
                ("CJ_ADDR_SHOP_DB", "10.0.0.1:5432"),
                ("CJ_ADDR_SHOP_API_WEB_V2", "10.0.0.1:8080,10.0.0.2:8080"),
                ("CJ_URL_SHOP_WEB", "http://shop-web.pr-1.example.test"),
            ]
        );
    }

    #[test]
    fn names_become_variable_name_words() {
        assert_eq!(env_word("shop-api"), "SHOP_API");
        assert_eq!(env_word("web.v2"), "WEB_V2");
        assert_eq!(env_word("db_1"), "DB_1");
        assert_eq!(env_word("a b/é"), "A_B__");
    }

    #[test]
    fn generated_names_are_run_and_six_letters_or_digits() {
        assert_eq!(name_from(&[0, 25, 26, 35, 36, 251]).unwrap(), "run-az09a9");
        // Bytes that would make some characters likelier are skipped.
        assert_eq!(
            name_from(&[252, 255, 1, 2, 3, 4, 5, 6]).unwrap(),
            "run-bcdefg"
        );
        assert_eq!(name_from(&[1, 2, 3, 4, 5, 255]), None);
        let name = generated_name().unwrap();
        let chars = name.strip_prefix("run-").unwrap();
        assert_eq!(chars.len(), 6, "{name}");
        assert!(
            chars
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{name}"
        );
        assert!(checked_name(&name).is_ok());
        assert_ne!(generated_name().unwrap(), generated_name().unwrap());
    }

    #[test]
    fn a_failed_bring_up_names_what_failed() {
        let failure = |task: &str| TaskFailure::new(task, "exited with code 1");
        let mut summary = OperationSummary::default();
        assert_eq!(not_up("pr-1", &summary), "environment pr-1 did not come up");
        summary.failed = vec![failure("shop/db/0")];
        assert_eq!(
            not_up("pr-1", &summary),
            "environment pr-1 did not come up: shop/db/0 failed"
        );
        summary.failed.push(failure("shop/web/0"));
        summary.failed.push(failure("shop/web/1"));
        assert_eq!(
            not_up("pr-1", &summary),
            "environment pr-1 did not come up: shop/db/0 failed (and 2 more)"
        );
    }

    #[test]
    fn signals_exit_as_a_shell_reports_them() {
        assert_eq!(Caught::Interrupt.exit_code(), 130);
        assert_eq!(Caught::Terminate.exit_code(), 143);
    }
}
