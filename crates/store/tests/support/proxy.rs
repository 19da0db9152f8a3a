//! A TCP proxy in front of etcd that a test can cut (every connection closed, new ones
//! refused) or stall (connections kept, nothing forwarded), to put one client out of reach of
//! an etcd that others still use.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Cut,
    Stalled,
}

pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    accepting: Option<JoinHandle<()>>,
}

struct Shared {
    mode: Mutex<Mode>,
    /// Both ends of every open connection, to close them when cut.
    connections: Mutex<Vec<TcpStream>>,
    stopping: AtomicBool,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close_all(&self) {
        for stream in self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    pub fn to(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Open),
            connections: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let accepting = {
            let shared = shared.clone();
            std::thread::spawn(move || accept(&listener, target, &shared))
        };
        Proxy {
            address,
            shared,
            accepting: Some(accepting),
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        vec![format!("http://{}", self.address)]
    }

    pub fn cut(&self) {
        self.set(Mode::Cut);
        self.shared.close_all();
    }

    pub fn stall(&self) {
        self.set(Mode::Stalled);
    }

    pub fn open(&self) {
        self.set(Mode::Open);
    }

    fn set(&self, mode: Mode) {
        *self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // Wakes the accepting thread, which then sees it is stopping.
        let _ = TcpStream::connect(self.address);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

fn accept(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.mode() == Mode::Cut {
            continue;
        }
        let Ok(upstream) = TcpStream::connect(target) else {
            continue;
        };
        let (Ok(client_copy), Ok(upstream_copy)) = (client.try_clone(), upstream.try_clone())
        else {
            continue;
        };
        {
            let mut connections = shared
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            connections.extend(client.try_clone());
            connections.extend(upstream.try_clone());
        }
        let (forward, backward) = (shared.clone(), shared.clone());
        std::thread::spawn(move || relay(client, upstream_copy, &forward));
        std::thread::spawn(move || relay(upstream, client_copy, &backward));
    }
}

/// Copies `from` to `to` while open; holds the bytes back while stalled; ends when either side
/// closes (or the proxy cuts them).
fn relay(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match shared.mode() {
            Mode::Stalled => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Mode::Cut => break,
            Mode::Open => {}
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
