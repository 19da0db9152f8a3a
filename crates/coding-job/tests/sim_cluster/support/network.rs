//! The network between the simulated hosts and the server, in memory: every connection is a
//! `tokio::io::duplex` pair whose server end is served by the real API router
//! (`cj_server::serve_connection`), and whose other end an agent's link or an API call runs over.
//! Nothing waits on real IO, so the paused clock moves only when every task waits on time.
//!
//! Faults are the network's: a host's link can be cut (its connections go silent, as a pulled
//! cable sends no FIN, and it cannot dial until healed), and the server can die (every connection
//! to it closes at once, as the kernel closes a killed process's sockets, and dialling is refused
//! until another server answers).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use cj_agent::Dialer;
use cj_net::{DialError, Io, TlsClient};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// Bytes a connection holds in each direction before its writer waits.
const BUFFER: usize = 256 * 1024;

/// The address API calls come from (agents come from their host's own).
pub const CLIENT_ADDRESS: &str = "10.0.0.254:40000";

#[derive(Default)]
pub struct Network {
    state: Mutex<NetworkState>,
}

#[derive(Default)]
struct NetworkState {
    /// The API of the server that answers now; `None` while it is dead.
    server: Option<axum::Router>,
    /// Hosts whose link is cut.
    cut: std::collections::BTreeSet<String>,
    /// Every connection made, with the host it comes from (`None` for API calls).
    connections: Vec<(Option<String>, Arc<Connection>)>,
    /// Server names (the host of a URL an agent is given) that refuse connections, as a
    /// stopped server's address does; every other name reaches the server that answers.
    refusing: std::collections::BTreeSet<String>,
    /// The server names agents dialled, in order, with the dialling host and whether a
    /// connection was made.
    dials: Vec<Dial>,
}

/// An agent's attempt to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub host: String,
    /// The host of the server URL dialled.
    pub server: String,
    pub connected: bool,
}

impl Network {
    /// From now on, connections are answered by `router`.
    pub fn serve(&self, router: axum::Router) {
        self.lock().server = Some(router);
    }

    /// The server dies: its connections close, and nothing answers until [`Network::serve`].
    pub fn kill_server(&self) {
        let mut state = self.lock();
        state.server = None;
        for (_, connection) in state.connections.drain(..) {
            connection.set(Mode::Closed);
        }
    }

    /// `host`'s link goes down: its connections fall silent, and it cannot dial.
    pub fn cut(&self, host: &str) {
        let mut state = self.lock();
        state.cut.insert(host.to_owned());
        for (from, connection) in &state.connections {
            if from.as_deref() == Some(host) {
                connection.set(Mode::Silent);
            }
        }
    }

    /// Connections to `server` (the host of a URL agents are given) are refused from now on.
    pub fn refuse(&self, server: &str) {
        self.lock().refusing.insert(server.to_owned());
    }

    /// Every dial agents made so far, in order.
    pub fn dials(&self) -> Vec<Dial> {
        self.lock().dials.clone()
    }

    /// `host`'s link is up again. Connections that fell silent stay so: both ends have given
    /// them up by then, as they give up a TCP connection that went quiet.
    pub fn heal(&self, host: &str) {
        self.lock().cut.remove(host);
    }

    /// A connection to the server, from `host` (an agent) or from a client (`None`), appearing
    /// to come from `peer`.
    pub fn connect(&self, host: Option<&str>, peer: SocketAddr) -> io::Result<Wire> {
        let mut state = self.lock();
        if host.is_some_and(|host| state.cut.contains(host)) {
            return Err(io::ErrorKind::NetworkUnreachable.into());
        }
        let Some(router) = state.server.clone() else {
            return Err(io::ErrorKind::ConnectionRefused.into());
        };
        let (near, far) = tokio::io::duplex(BUFFER);
        let connection = Arc::new(Connection::default());
        state.connections.retain(|(_, c)| !c.is(Mode::Closed));
        state
            .connections
            .push((host.map(str::to_owned), connection.clone()));
        let served = Wire::new(far, connection.clone(), 1);
        tokio::spawn(cj_server::serve_connection(served, peer, router));
        Ok(Wire::new(near, connection, 0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetworkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How an agent on `host` (at `address`) dials: through the network, whatever URL it was given.
pub struct MemoryDialer {
    pub network: Arc<Network>,
    pub host: String,
    pub address: SocketAddr,
}

impl Dialer for MemoryDialer {
    fn dial<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        _tls: Option<&'a TlsClient>,
    ) -> BoxFuture<'a, Result<Box<dyn Io>, DialError>> {
        let refused = self.network.lock().refusing.contains(host);
        let connected = if refused {
            Err(io::ErrorKind::ConnectionRefused.into())
        } else {
            self.network.connect(Some(&self.host), self.address)
        };
        self.network.lock().dials.push(Dial {
            host: self.host.clone(),
            server: host.to_owned(),
            connected: connected.is_ok(),
        });
        let connected = connected
            .map(|wire| Box::new(wire) as Box<dyn Io>)
            .map_err(|reason| DialError::Connect {
                address: format!("{host}:{port}"),
                reason,
            });
        Box::pin(std::future::ready(connected))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Open = 0,
    /// Nothing arrives and what is written is lost.
    Silent = 1,
    /// Both ends read the end of the stream; writes fail.
    Closed = 2,
}

/// What the two ends of one connection share: its mode, and the wakers of reads and writes
/// waiting on it, woken when the mode changes.
#[derive(Default)]
struct Connection {
    mode: AtomicU8,
    /// Per end: the waiting read, the waiting write.
    waiting: Mutex<[Option<Waker>; 4]>,
}

impl Connection {
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            0 => Mode::Open,
            1 => Mode::Silent,
            _ => Mode::Closed,
        }
    }

    fn is(&self, mode: Mode) -> bool {
        self.mode() == mode
    }

    fn set(&self, mode: Mode) {
        // Never back to open: a connection that failed stays failed.
        self.mode.fetch_max(mode as u8, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        for waker in waiting.into_iter().flatten() {
            waker.wake();
        }
    }

    fn wait(&self, slot: usize, waker: &Waker) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match &waiting[slot] {
            Some(known) if known.will_wake(waker) => {}
            _ => waiting[slot] = Some(waker.clone()),
        }
    }
}

/// One end of a connection.
pub struct Wire {
    io: DuplexStream,
    connection: Arc<Connection>,
    /// 0 for the caller's end, 1 for the server's.
    end: usize,
}

impl Wire {
    fn new(io: DuplexStream, connection: Arc<Connection>, end: usize) -> Wire {
        Wire {
            io,
            connection,
            end,
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.connection.wait(this.end * 2, cx.waker());
        match this.connection.mode() {
            Mode::Open => Pin::new(&mut this.io).poll_read(cx, buf),
            Mode::Silent => Poll::Pending,
            Mode::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.connection.wait(this.end * 2 + 1, cx.waker());
        match this.connection.mode() {
            Mode::Open => Pin::new(&mut this.io).poll_write(cx, buf),
            Mode::Silent => Poll::Ready(Ok(buf.len())),
            Mode::Closed => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.connection.mode() {
            Mode::Open => Pin::new(&mut self.io).poll_flush(cx),
            Mode::Silent | Mode::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.connection.mode() {
            Mode::Open => Pin::new(&mut self.io).poll_shutdown(cx),
            Mode::Silent | Mode::Closed => Poll::Ready(Ok(())),
        }
    }
}
