//! A real etcd for a test: Debian's `etcd` binary on free loopback ports, with its data in a
//! temporary directory, killed when dropped (also when the test fails). Started with short
//! raft timings, so its smallest lease is 1 s rather than 2 s; one member, so it is its own
//! leader at once. Optionally it serves clients over TLS only, and asks them for a certificate
//! signed by the CA it was given. Shared by several test files, each using a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest etcd may take to answer its health check after it was started.
const START_DEADLINE: Duration = Duration::from_secs(20);

pub struct EtcdServer {
    client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    tls: Option<ServerTls>,
}

/// The PEM files etcd serves clients with, and the CA it checks their certificates against.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl EtcdServer {
    /// Starts an etcd with an empty data directory; panics (failing the test) if the binary is
    /// missing or etcd does not answer in time.
    pub fn start() -> EtcdServer {
        EtcdServer::start_with(None)
    }

    /// Starts an etcd that speaks TLS to its clients and requires their certificates.
    pub fn start_with_tls(tls: ServerTls) -> EtcdServer {
        EtcdServer::start_with(Some(tls))
    }

    fn start_with(tls: Option<ServerTls>) -> EtcdServer {
        let mut last_failure = String::new();
        // Another process may take a port between choosing it and etcd binding it: try again.
        for _ in 0..5 {
            let mut server = EtcdServer {
                client_port: free_port(),
                peer_port: free_port(),
                dir: tempfile::tempdir().expect("a temporary directory for etcd"),
                child: None,
                tls: tls.clone(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("etcd did not start: {last_failure}");
    }

    pub fn endpoints(&self) -> Vec<String> {
        vec![self.client_url()]
    }

    fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn client_address(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.client_port).into()
    }

    /// Kills etcd and waits until it is gone; its data stays for [`EtcdServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same data and ports.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn() {
            panic!("etcd did not start again: {failure}");
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let client_url = self.client_url();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|error| format!("cannot open etcd's log: {error}"))?;
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.cert.display()))
                .arg(format!("--key-file={}", tls.key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let spawned = command
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--heartbeat-interval=10")
            .arg("--election-timeout=100")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|error| error.to_string())?)
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "the etcd binary is not installed: these tests need a real etcd \
                 (Debian: apt-get install etcd-server; scripts/test.sh installs it)"
            ),
            Err(error) => panic!("cannot start etcd: {error}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("etcd exited ({status}): {}", self.log_tail()));
            }
            if self.healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(format!(
            "etcd did not answer within {START_DEADLINE:?}: {}",
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl EtcdServer {
    /// Whether etcd answers `/health` on its client port as healthy; over TLS, only whether it
    /// accepts connections (the store's `connect` then waits for it to answer).
    fn healthy(&self) -> bool {
        match &self.tls {
            Some(_) => TcpStream::connect(("127.0.0.1", self.client_port)).is_ok(),
            None => healthy(self.client_port),
        }
    }
}

/// Whether etcd answers `/health` on `port` (plain HTTP) as healthy.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
