//! Test support: a real `coding-job dev` process on a free loopback port with its own data
//! directory, the CLI binary pointed at it, and Docker inspected directly. Every container a test
//! makes carries the dev process's cluster label and is removed when the [`Dev`] is dropped,
//! even if the test failed. [`Server`] is the same for `coding-job server` (tokens required,
//! optionally TLS): one process type, started with other arguments.

#![allow(dead_code)]

pub mod artifact_server;
pub mod cluster;
pub mod etcd;
pub mod leftovers;
pub mod load;
pub mod pebble;
pub mod sampler;
pub mod servers;
pub mod testbed;
pub mod webhook;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "cj-example/busybox:1";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds the busybox test image once per test process, if it is missing.
pub fn ensure_image() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/build-example-image.sh"))
            .arg(IMAGE)
            .status()
            .expect("failed to run build-example-image.sh");
        assert!(status.success(), "building the test image failed");
    });
}

/// A block of ports for one installation's `port: auto`, claimed across test processes by
/// creating a file (`/tmp/cj-test-ports/N`, holding the owner's pid) and freed on drop. A block
/// whose owner died is taken over.
pub struct PortBlock {
    index: u32,
    claim: PathBuf,
}

impl PortBlock {
    const FIRST: u32 = 20000;
    const SIZE: u32 = 50;
    const COUNT: u32 = 200;

    pub fn claim() -> PortBlock {
        let dir = Path::new("/tmp/cj-test-ports");
        std::fs::create_dir_all(dir).unwrap();
        for _ in 0..2 {
            for index in 0..Self::COUNT {
                let claim = dir.join(index.to_string());
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&claim);
                match created {
                    Ok(mut file) => {
                        use std::io::Write;
                        write!(file, "{}", std::process::id()).unwrap();
                        return PortBlock { index, claim };
                    }
                    Err(_) => {
                        let owner = std::fs::read_to_string(&claim).unwrap_or_default();
                        let alive = owner
                            .trim()
                            .parse::<u32>()
                            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                        if !alive {
                            let _ = std::fs::remove_file(&claim);
                        }
                    }
                }
            }
        }
        panic!("no free port block under {}", dir.display());
    }

    /// `FIRST-LAST`, for `--port-range`.
    pub fn range(&self) -> String {
        let first = Self::FIRST + self.index * Self::SIZE;
        format!("{first}-{}", first + Self::SIZE - 1)
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.claim);
    }
}

/// One HTTP/1.1 GET of `path` at `address` with this `Host` header: status and body.
pub fn http_get_host(address: &str, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `coding-job dev` (or, through [`Server`], `coding-job server`) process.
/// How long a started process may take to say where it listens.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// How long one CLI command may take: under the test runner's own limit, so a command that
/// hangs is named.
const CLI_DEADLINE: Duration = Duration::from_secs(150);

pub struct Dev {
    pub data_dir: tempfile::TempDir,
    pub url: String,
    pub cluster: String,
    /// What it printed before serving, after the first line (`  admin token: ...` and such).
    pub announced: Vec<String>,
    /// The token the CLI sends (`CODING_JOB_TOKEN`); none by default.
    pub token: Option<String>,
    /// The certificate the CLI trusts (`CODING_JOB_CA_CERT`); none by default.
    pub ca_cert: Option<PathBuf>,
    child: Option<Child>,
    listen: String,
    config: Option<PathBuf>,
    /// The subcommand and its own arguments (`dev --host-name test-host`, `server ...`).
    args: Vec<OsString>,
    /// `RUST_LOG` of the process.
    log_filter: &'static str,
    /// Where its stderr goes (appended to, across restarts); inherited if `None`.
    stderr_file: Option<PathBuf>,
    /// Its own `port: auto` range: test processes run side by side on one engine, and two
    /// installations handing out the same port would answer each other's checks.
    ports: PortBlock,
}

impl Dev {
    pub fn start() -> Dev {
        Dev::start_with_config(None)
    }

    /// Starts `dev` with more arguments (`--router-listen ...`).
    pub fn start_with_args(extra: &[&str]) -> Dev {
        ensure_image();
        let mut args: Vec<OsString> = ["dev", "--host-name", "test-host"]
            .map(OsString::from)
            .to_vec();
        args.extend(extra.iter().map(OsString::from));
        Dev::launch(args, None, "warn", false, "127.0.0.1")
    }

    /// As [`Dev::start_with_args`], with its log (the router's at info) kept for
    /// [`Dev::stderr`].
    pub fn start_with_args_logged(extra: &[&str]) -> Dev {
        ensure_image();
        let mut args: Vec<OsString> = ["dev", "--host-name", "test-host"]
            .map(OsString::from)
            .to_vec();
        args.extend(extra.iter().map(OsString::from));
        Dev::launch(args, None, "warn,cj_router=info", true, "127.0.0.1")
    }

    /// Everything the process wrote to stderr so far (when started to keep it).
    pub fn stderr(&self) -> String {
        self.stderr_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// Where `dev`'s router listens, from what it announced (`  router: http://ADDRESS ...`).
    pub fn router_address(&self) -> String {
        self.announced
            .iter()
            .find_map(|line| line.trim_start().strip_prefix("router:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|url| url.strip_prefix("http://"))
            .expect("dev did not announce a router")
            .to_owned()
    }

    /// Starts with a server config file (`notify:`, `registries:`) written from `config`.
    pub fn start_with_config(config: Option<&str>) -> Dev {
        ensure_image();
        let args = ["dev", "--host-name", "test-host"].map(OsString::from);
        Dev::launch(args.to_vec(), config, "warn", false, "127.0.0.1")
    }

    /// Starts `coding-job ARGS... --listen ADDRESS --data-dir DIR` on a fresh data directory.
    fn launch(
        args: Vec<OsString>,
        config: Option<&str>,
        log_filter: &'static str,
        capture_stderr: bool,
        listen_ip: &str,
    ) -> Dev {
        leftovers::sweep();
        let data_dir = tempfile::tempdir().unwrap();
        let config = config.map(|text| {
            let path = data_dir.path().join("server.yaml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let stderr_file = capture_stderr.then(|| data_dir.path().join("stderr.log"));
        let listen = format!("{listen_ip}:{}", free_port());
        let mut dev = Dev {
            data_dir,
            url: String::new(),
            cluster: String::new(),
            announced: Vec::new(),
            token: None,
            ca_cert: None,
            child: None,
            listen,
            config,
            args,
            log_filter,
            stderr_file,
            ports: PortBlock::claim(),
        };
        dev.spawn();
        dev
    }

    fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coding-job"));
        command.args(&self.args);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let stderr = match &self.stderr_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::inherit(),
        };
        let mut child = command
            .args(["--port-range", &self.ports.range()])
            .args(["--listen", &self.listen, "--data-dir"])
            .arg(self.data_dir.path())
            .env("RUST_LOG", self.log_filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("failed to start coding-job");
        // Read on a thread, which keeps draining stdout so the process never blocks on a full
        // pipe; the lines before serving must come within STARTUP_DEADLINE.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        self.child = Some(child);
        let next_line = || {
            lines.recv_timeout(STARTUP_DEADLINE).unwrap_or_else(|_| {
                panic!(
                    "coding-job {:?} did not announce itself within {STARTUP_DEADLINE:?}",
                    self.args
                )
            })
        };
        let first = next_line();
        let url = first.rsplit(' ').next().unwrap().to_owned();
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "unexpected first line: {first}"
        );
        // The lines up to the last one, `  try: ...`.
        let mut announced = Vec::new();
        loop {
            let line = next_line();
            let last = line.starts_with("  try:");
            announced.push(line);
            if last {
                break;
            }
        }
        self.url = url;
        self.cluster = announced
            .iter()
            .find_map(|line| line.strip_prefix("  cluster id:"))
            .map(|id| id.trim().to_owned())
            .expect("coding-job did not print its cluster id");
        leftovers::own(&self.cluster);
        self.announced = announced;
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, as a service manager stops it; waits (up to 20 s) for it to exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "coding-job did not exit within 20 s of SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Stops (SIGKILL) and starts again on the same port with another data directory (one
    /// restored from a snapshot, say).
    pub fn restart_on(&mut self, data_dir: tempfile::TempDir) {
        self.kill9();
        self.data_dir = data_dir;
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Runs the CLI against this server, from `dir` (default: the repository root), with
    /// this process's [`Dev::token`] and [`Dev::ca_cert`].
    pub fn cli_in(&self, dir: &Path, args: &[&str]) -> Output {
        output_within(
            self.cli_command(dir, self.token.as_deref(), args),
            CLI_DEADLINE,
        )
    }

    /// Runs the CLI with `token` (or none) instead of [`Dev::token`].
    pub fn cli_as(&self, token: Option<&str>, args: &[&str]) -> Output {
        output_within(self.cli_command(&repo_root(), token, args), CLI_DEADLINE)
    }

    /// Runs the CLI with `input` as its stdin.
    pub fn cli_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let command = self.cli_command(&repo_root(), self.token.as_deref(), args);
        output_with_stdin(command, input.to_vec(), CLI_DEADLINE)
    }

    /// The CLI as a command to run or spawn (a long-running one such as `events -f`).
    pub fn cli_command(&self, dir: &Path, token: Option<&str>, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coding-job"));
        command
            .args(args)
            .current_dir(dir)
            .env("CODING_JOB_SERVER", &self.url)
            .env_remove("CODING_JOB_ENV")
            .env_remove("CODING_JOB_TOKEN")
            .env_remove("CODING_JOB_CA_CERT");
        if let Some(token) = token {
            command.env("CODING_JOB_TOKEN", token);
        }
        if let Some(ca_cert) = &self.ca_cert {
            command.env("CODING_JOB_CA_CERT", ca_cert);
        }
        command
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_in(&repo_root(), args)
    }

    /// Runs the CLI and insists it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "coding-job {args:?} failed: {}",
            describe(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Writes a service file into the data directory and pushes it.
    pub fn push_yaml(&self, name: &str, yaml: &str) -> String {
        let path = self.data_dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        self.ok(&["push", path.to_str().unwrap()])
    }

    pub fn status(&self, target: &str) -> Vec<cj_api::TaskStatus> {
        serde_json::from_str(&self.ok(&["status", target, "--json"])).unwrap()
    }

    pub fn history(&self, job: &str) -> cj_api::HistoryResponse {
        serde_json::from_str(&self.ok(&["history", job, "--json", "--limit", "1000"])).unwrap()
    }

    /// A plain HTTP GET of an API path (with [`Dev::token`]); returns the body.
    pub fn http_get(&self, path: &str) -> String {
        let answer = self.http("GET", path, self.token.as_deref(), None);
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.head);
        answer.body
    }

    /// A plain HTTP POST of a JSON body to an API path (with [`Dev::token`]); returns the
    /// status and the body (of a non-streamed answer).
    pub fn http_post(&self, path: &str, body: &str) -> (u16, String) {
        let answer = self.http("POST", path, self.token.as_deref(), Some(body));
        (answer.status, answer.body)
    }

    /// One plain HTTP request (JSON body, if any) with `token`, if any, on its own connection;
    /// the whole answer of a non-streamed response, read within 30 seconds.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> HttpAnswer {
        let address = self.url.trim_start_matches("http://");
        self.http_with(method, path, &[("Host", address)], token, body)
    }

    /// As [`Dev::http`], with these headers (`Host` among them) instead of the usual `Host`.
    pub fn http_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        token: Option<&str>,
        body: Option<&str>,
    ) -> HttpAnswer {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        write!(stream, "{head}\r\n{}", body.unwrap_or_default()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        HttpAnswer {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// The store's revision: unchanged when a refused request wrote nothing.
    pub fn store_revision(&self) -> u64 {
        let info: serde_json::Value =
            serde_json::from_str(&self.http_get("/v1/info")).expect("GET /v1/info");
        info["revision"].as_u64().unwrap()
    }

    /// Containers of this installation, as Docker lists them (all states).
    pub fn docker_containers(&self) -> Vec<String> {
        leftovers::containers(&self.cluster)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.kill9();
        if !self.cluster.is_empty() {
            leftovers::release(&self.cluster);
        }
    }
}

/// A plain HTTP answer: the status, the status line and headers as sent, the body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// A running `coding-job server`: tokens are required, and the first admin token is in the
/// data directory. Everything a [`Dev`] offers works on it (the CLI sends [`Dev::token`]). Its
/// stderr (logged at debug level) is kept for [`Server::stderr`].
pub struct Server {
    process: Dev,
}

/// `server --tls-cert --tls-key`: the files to serve HTTPS with.
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(None)
    }

    pub fn start_with(tls: Option<&Tls>) -> Server {
        Server::start_on("127.0.0.1", tls)
    }

    /// Listening on `ip` (e.g. a test bed's gateway, where agents in its hosts reach it).
    pub fn start_on(ip: &str, tls: Option<&Tls>) -> Server {
        Server::start_on_with(ip, tls, &[])
    }

    /// As [`Server::start_on`], with more arguments for `coding-job server`.
    pub fn start_on_with(ip: &str, tls: Option<&Tls>, extra: &[&str]) -> Server {
        let mut args = vec![OsString::from("server")];
        args.extend(extra.iter().map(OsString::from));
        if let Some(tls) = tls {
            args.extend([
                "--tls-cert".into(),
                tls.cert.clone().into(),
                "--tls-key".into(),
                tls.key.clone().into(),
            ]);
        }
        let filter = "info,coding_job_server=debug,coding_job=debug";
        Server {
            process: Dev::launch(args, None, filter, true, ip),
        }
    }

    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir.path().join("admin.token")
    }

    /// The first admin token's secret, as the server wrote it.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.admin_token_file())
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Deref for Server {
    type Target = Dev;

    fn deref(&self) -> &Dev {
        &self.process
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Dev {
        &mut self.process
    }
}

/// Runs `command` to its end, with its output captured; kills it and panics past `deadline`.
pub fn output_within(command: Command, deadline: Duration) -> Output {
    run_within(command, None, deadline)
}

/// As [`output_within`], with `input` written to the command's stdin (then closed).
pub fn output_with_stdin(command: Command, input: Vec<u8>, deadline: Duration) -> Output {
    run_within(command, Some(input), deadline)
}

fn run_within(mut command: Command, input: Option<Vec<u8>>, deadline: Duration) -> Output {
    use std::io::{Read, Write};
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to run the CLI");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A command that stops reading must not hold the test up: write on a thread.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `docker inspect` of one container.
pub fn docker_inspect(id: &str) -> serde_json::Value {
    let output = Command::new("docker")
        .args(["inspect", id])
        .output()
        .unwrap();
    assert!(output.status.success(), "docker inspect {id} failed");
    let mut all: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    all.remove(0)
}

pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        describe(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An RFC 3339 time (as Docker and the API write them) as Unix nanoseconds.
pub fn nanos(rfc3339: &str) -> i128 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|error| panic!("bad time {rfc3339}: {error}"))
        .unix_timestamp_nanos()
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
