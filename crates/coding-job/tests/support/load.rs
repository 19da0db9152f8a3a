//! Steady load through a router: clients each sending GET requests on new connections, counting
//! every answer that is not a 200, until stopped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::http_get_host;

pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    clients: Vec<JoinHandle<()>>,
}

/// What a load saw: how many requests were answered 200, and every other outcome.
pub struct LoadResult {
    pub ok: usize,
    pub failures: Vec<String>,
}

impl Load {
    /// `clients` threads requesting `/` of `host` (the Host header) at `router`, each pausing
    /// 5 ms between requests.
    pub fn start(router: &str, host: &str, clients: usize) -> Load {
        Load::start_path(router, host, "/", clients)
    }

    /// The same, requesting `path`.
    pub fn start_path(router: &str, host: &str, path: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|_| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                let (router, host, path) = (router.to_owned(), host.to_owned(), path.to_owned());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match http_get_host(&router, &host, &path) {
                            Ok((200, _)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => failures.lock().unwrap().push(format!("{other:?}")),
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            clients,
        }
    }

    /// Stops the clients and says what they saw.
    pub fn finish(mut self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients.drain(..) {
            client.join().unwrap();
        }
        LoadResult {
            ok: self.ok.load(Ordering::Relaxed),
            failures: std::mem::take(&mut *self.failures.lock().unwrap()),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
