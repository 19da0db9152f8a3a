//! Artifacts for tests: tarballs built here with the system's `tar`, served over HTTP by a
//! small server of the test's own that counts the GETs of each path, so a test can say how
//! often the hosts fetched a version.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::describe;

/// A `.tar.gz` of `files` (name, content) as `tar -czf` writes it; returns its bytes.
pub fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for (name, content) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let archive = dir.path().join("a.tar.gz");
    let output = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .output()
        .expect("failed to run tar");
    assert!(output.status.success(), "tar: {}", describe(&output));
    std::fs::read(archive).unwrap()
}

/// The SHA-256 of `content` in hex, as `sha256sum` prints it.
pub fn sha256(content: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("content");
    std::fs::write(&path, content).unwrap();
    let output = Command::new("sha256sum").arg(&path).output().unwrap();
    assert!(output.status.success(), "sha256sum: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `count` bytes that gzip cannot shrink much, the size of real compiled code.
pub fn incompressible(count: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// An HTTP server on `ip` serving files by path; stops when dropped.
pub struct ArtifactServer {
    /// `http://IP:PORT`.
    pub url: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    gets: Arc<Mutex<HashMap<String, usize>>>,
    stopping: Arc<AtomicBool>,
    address: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ArtifactServer {
    pub fn start(ip: &str) -> ArtifactServer {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let gets: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (files, gets, stopping) = (files.clone(), gets.clone(), stopping.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (files, gets) = (files.clone(), gets.clone());
                    std::thread::spawn(move || answer(stream, &files, &gets));
                }
            })
        };
        ArtifactServer {
            url: format!("http://{address}"),
            files,
            gets,
            stopping,
            address,
            thread: Some(thread),
        }
    }

    /// Serves `content` at `path` (`/api/1.tar.gz`) from now on.
    pub fn put(&self, path: &str, content: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_owned(), content);
    }

    /// What is served at `path`.
    pub fn content(&self, path: &str) -> Vec<u8> {
        self.files.lock().unwrap()[path].clone()
    }

    /// How many GETs `path` has had.
    pub fn gets(&self, path: &str) -> usize {
        self.gets.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for ArtifactServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees it is to stop.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request: the file at its path, or 404.
fn answer(
    stream: TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    gets: &Mutex<HashMap<String, usize>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the head, up to its empty line.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "GET" {
        *gets.lock().unwrap().entry(path.to_owned()).or_default() += 1;
    }
    let content = files.lock().unwrap().get(path).cloned();
    let mut stream = &stream;
    let _ = match content {
        Some(body) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
    };
}
