//! A real etcd cluster for a test: Debian's `etcd` (3.4), several members on loopback with free
//! ports and temporary data directories, killed when dropped (even when the test fails). A test
//! can stop every member and start them again on the same data (an outage), and can put a
//! [`Cuttable`] proxy between one server and etcd to cut that server off alone.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Etcd {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

struct Member {
    name: String,
    client_port: u16,
    command: Vec<String>,
    child: Option<Child>,
}

impl Etcd {
    /// Starts `size` members and waits until the cluster answers.
    pub fn start(size: usize) -> Etcd {
        assert!(
            which("etcd"),
            "etcd is not installed: scripts/test.sh installs Debian's etcd-server"
        );
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(n, (_, peer))| format!("m{n}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(n, (client, peer))| {
                let name = format!("m{n}");
                let data = dir.path().join(&name);
                let command = vec![
                    "etcd".to_owned(),
                    format!("--name={name}"),
                    format!("--data-dir={}", data.display()),
                    format!("--listen-client-urls=http://127.0.0.1:{client}"),
                    format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                    format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                    format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                    format!("--initial-cluster={initial}"),
                    "--initial-cluster-state=new".to_owned(),
                    "--initial-cluster-token=coding-job-test".to_owned(),
                    // Small and quick: a test's data, elections in a fraction of a second.
                    "--heartbeat-interval=50".to_owned(),
                    "--election-timeout=500".to_owned(),
                    "--quota-backend-bytes=1073741824".to_owned(),
                ];
                Member {
                    name,
                    client_port: *client,
                    command,
                    child: None,
                }
            })
            .collect();
        let mut etcd = Etcd { members, _dir: dir };
        etcd.start_all();
        etcd
    }

    /// `etcd://HOST:PORT,...` for `coding-job server --store`.
    pub fn store_url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Kills every member (as a crash would).
    pub fn stop_all(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts every stopped member on its data and waits (up to 30 s) until the cluster
    /// answers.
    pub fn start_all(&mut self) {
        for member in &mut self.members {
            if member.child.is_none() {
                let child = Command::new(&member.command[0])
                    .args(&member.command[1..])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("failed to start etcd member {}: {e}", member.name));
                member.child = Some(child);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let first = self.endpoints()[0].clone();
        loop {
            if healthy(&first) {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// `GET /health` answers `"health":"true"` (etcd 3.4's own endpoint, plain HTTP).
fn healthy(endpoint: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(endpoint) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: {endpoint}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A TCP proxy on loopback in front of one etcd endpoint, for one server: `cut` closes every
/// connection through it and refuses new ones (the server alone is cut off from etcd) until
/// `heal`.
pub struct Cuttable {
    pub address: String,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stopped: Arc<AtomicBool>,
}

impl Cuttable {
    pub fn start(target: &str) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (target, flags) = (
            target.to_owned(),
            (cut.clone(), open.clone(), stopped.clone()),
        );
        std::thread::spawn(move || {
            let (cut, open, stopped) = flags;
            for incoming in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = incoming else { continue };
                if cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut kept = open.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(upstream.try_clone().unwrap());
                drop(kept);
                pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                pipe(upstream, client);
            }
        });
        Cuttable {
            address,
            cut,
            open,
            stopped,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(&self.address);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
