//! The store's own async runtime, on a thread of its own, and the bridge from the synchronous
//! [`Store`](crate::Store) calls to it.
//!
//! etcd-client is async, the trait is not, and its callers are everywhere: plain threads, tests
//! without a runtime, and async workers of the server's runtime (under `block_in_place`, or
//! directly). `Handle::block_on` panics inside a runtime, and so does a tokio oneshot's
//! `blocking_recv`; so each request is spawned on this runtime and its answer comes back on a
//! `std::sync::mpsc` channel, which blocks the calling thread the same way wherever it runs.
//! The runtime is single-threaded: it only moves bytes to and from etcd and keeps the mirror.

use std::future::Future;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::types::StoreError;

pub(super) struct Bridge {
    handle: Handle,
    /// Dropped (or sent) to stop the runtime; its tasks are then dropped with it.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    pub(super) fn start() -> Result<Bridge, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                StoreError::Backend(format!("cannot start the etcd runtime: {error}"))
            })?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-etcd".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|error| {
                StoreError::Backend(format!("cannot start the etcd thread: {error}"))
            })?;
        Ok(Bridge {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// Runs `request` on the store's runtime and waits for its answer: at most `deadline`, after
    /// which the request is dropped and the call answers `Unavailable` (naming `what`).
    pub(super) fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        deadline: Duration,
        request: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let outcome = match tokio::time::timeout(deadline, request).await {
                Ok(outcome) => outcome,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "etcd did not answer {what} within {deadline:?}"
                ))),
            };
            // The caller stopped waiting only if its thread is gone; nothing to tell.
            let _ = answer.send(outcome);
        });
        // The runtime keeps the deadline; the margin only covers its thread having died.
        match answered.recv_timeout(deadline + Duration::from_secs(1)) {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Unavailable(format!(
                "the store's etcd thread did not answer {what}"
            ))),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic there has been reported already; the store is going away regardless.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(bridge: &Bridge) -> Result<u32, StoreError> {
        bridge.call("a test", Duration::from_secs(1), async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(7)
        })
    }

    /// A multi-threaded runtime's worker (without `block_in_place`), a current-thread runtime
    /// and a plain thread all wait for the answer the same way, without a panic.
    #[test]
    fn calls_work_from_any_runtime_and_without_one() {
        let bridge = std::sync::Arc::new(Bridge::start().unwrap());
        assert_eq!(answer(&bridge).unwrap(), 7);
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(current.block_on(async { answer(&bridge) }).unwrap(), 7);
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let on_worker = bridge.clone();
        let from_worker =
            multi.block_on(async { tokio::spawn(async move { answer(&on_worker) }).await });
        assert_eq!(from_worker.unwrap().unwrap(), 7);
    }

    #[test]
    fn a_request_past_its_deadline_is_unavailable() {
        let bridge = Bridge::start().unwrap();
        let slow = bridge.call("a slow request", Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(())
        });
        assert!(
            matches!(&slow, Err(StoreError::Unavailable(reason)) if reason.contains("a slow request")),
            "{slow:?}"
        );
    }
}
