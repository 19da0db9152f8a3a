//! Test support: a real `coding-job dev` process on a free loopback port with its own data
//! directory, the CLI binary pointed at it, and Docker inspected directly. Every container a test
//! makes carries the dev process's cluster label and is removed when the [`Dev`] is dropped,
//! even if the test failed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
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

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Dev {
    pub data_dir: tempfile::TempDir,
    pub url: String,
    pub cluster: String,
    child: Option<Child>,
    listen: String,
    config: Option<PathBuf>,
}

impl Dev {
    pub fn start() -> Dev {
        Dev::start_with_config(None)
    }

    /// Starts with a server config file (`notify:`, `registries:`) written from `config`.
    pub fn start_with_config(config: Option<&str>) -> Dev {
        ensure_image();
        let data_dir = tempfile::tempdir().unwrap();
        let config = config.map(|text| {
            let path = data_dir.path().join("server.yaml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let listen = format!("127.0.0.1:{}", free_port());
        let mut dev = Dev {
            data_dir,
            url: String::new(),
            cluster: String::new(),
            child: None,
            listen,
            config,
        };
        dev.spawn();
        dev
    }

    fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coding-job"));
        command.arg("dev");
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .args([
                "--host-name",
                "test-host",
                "--listen",
                &self.listen,
                "--data-dir",
            ])
            .arg(self.data_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("failed to start coding-job dev");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("dev printed nothing").unwrap();
        self.url = first.rsplit(' ').next().unwrap().to_owned();
        assert!(
            self.url.starts_with("http://"),
            "unexpected first line: {first}"
        );
        for line in lines.by_ref().take(2) {
            if let Some(id) = line.unwrap().strip_prefix("  cluster id:") {
                self.cluster = id.trim().to_owned();
            }
        }
        assert!(!self.cluster.is_empty(), "dev did not print its cluster id");
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Runs the CLI against this server, from `dir` (default: the repository root).
    pub fn cli_in(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_coding-job"))
            .args(args)
            .current_dir(dir)
            .env("CODING_JOB_SERVER", &self.url)
            .env_remove("CODING_JOB_ENV")
            .output()
            .expect("failed to run the CLI")
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

    /// A plain HTTP GET of an API path; returns the body.
    pub fn http_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        body.to_owned()
    }

    /// A plain HTTP POST of a JSON body to an API path; returns the status and the body (of
    /// a non-streamed answer).
    pub fn http_post(&self, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        (status, body.to_owned())
    }

    /// The store's revision: unchanged when a refused request wrote nothing.
    pub fn store_revision(&self) -> u64 {
        let info: serde_json::Value =
            serde_json::from_str(&self.http_get("/v1/info")).expect("GET /v1/info");
        info["revision"].as_u64().unwrap()
    }

    /// Containers of this installation, as Docker lists them (all states).
    pub fn docker_containers(&self) -> Vec<String> {
        let output = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label=coding-job.cluster={}", self.cluster),
            ])
            .output()
            .unwrap();
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.kill9();
        if !self.cluster.is_empty() {
            let ids = self.docker_containers();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f", "-v"])
                    .args(&ids)
                    .output();
            }
        }
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
