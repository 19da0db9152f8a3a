//! A server's session with the store: one lease, kept alive while the server runs, that its
//! registration (`servers/NAME`) and, while it leads, the leader key are put with. When the
//! server stops answering (killed, cut off from the store), the lease expires and both keys go
//! with it, so the others see it leave without being told.
//!
//! The session says it is lost as soon as it cannot prove the lease alive: a keep-alive refused
//! (the lease expired), or none accepted for [`RENEW_DEADLINE`]. That deadline is shorter than
//! the lease's TTL, so a leader stops acting before its lease can have expired, that is before
//! any other server can lead (Kubernetes' leader election: a renew deadline under the lease
//! duration).

use std::sync::Arc;
use std::time::Duration;

use cj_store::{LeaseId, Store, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a session's lease lives without a keep-alive: a killed leader is replaced after
/// about this long (etcd grants whole seconds).
pub const SESSION_TTL: Duration = Duration::from_secs(3);
/// How often the lease is kept alive.
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(500);
/// Without a keep-alive accepted for this long the session counts as lost, a second before
/// the lease could expire.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(2);
/// The longest one store call of the session may take before it counts as failed.
const CALL_DEADLINE: Duration = Duration::from_millis(1500);

/// A live lease and the task keeping it alive; dropping it stops the keep-alives (the lease
/// then expires), [`Session::end`] revokes it at once.
pub struct Session {
    store: Arc<dyn Store>,
    lease: LeaseId,
    lost: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Grants the lease and starts keeping it alive.
    pub async fn start(store: Arc<dyn Store>) -> Result<Session, StoreError> {
        let lease = call(&store, |store| store.grant_lease(SESSION_TTL)).await?;
        let (lost_sender, lost) = watch::channel(false);
        let keeper = tokio::spawn(keep_alive(store.clone(), lease, lost_sender));
        Ok(Session {
            store,
            lease,
            lost,
            keeper,
        })
    }

    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Completes once the session is lost.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Revokes the lease, so its keys go now rather than when it would have expired: how a
    /// leader resigns.
    pub async fn end(self) {
        self.keeper.abort();
        let lease = self.lease;
        if let Err(error) = call(&self.store, move |store| store.revoke_lease(lease)).await {
            tracing::warn!(%error, "could not end the server's session; it expires by itself");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

async fn keep_alive(store: Arc<dyn Store>, lease: LeaseId, lost: watch::Sender<bool>) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(KEEP_ALIVE_EVERY).await;
        match call(&store, move |store| store.keep_alive(lease)).await {
            Ok(_) => renewed = Instant::now(),
            Err(StoreError::LeaseNotFound(_)) => {
                tracing::warn!(%lease, "the server's lease expired");
                let _ = lost.send(true);
                return;
            }
            Err(error) if renewed.elapsed() >= RENEW_DEADLINE => {
                tracing::warn!(%error, "the server's lease could not be renewed in time");
                let _ = lost.send(true);
                return;
            }
            Err(error) => tracing::debug!(%error, "a keep-alive failed; trying again"),
        }
    }
}

/// Runs a store call on a blocking thread with [`CALL_DEADLINE`]: a store that hangs fails the
/// call rather than the session's timing.
pub(crate) async fn call<T: Send + 'static>(
    store: &Arc<dyn Store>,
    work: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    let blocking = tokio::task::spawn_blocking(move || work(&*store));
    match tokio::time::timeout(CALL_DEADLINE, blocking).await {
        Ok(Ok(result)) => result,
        Ok(Err(panicked)) => Err(StoreError::Backend(format!(
            "a store call failed: {panicked}"
        ))),
        Err(_) => Err(StoreError::Backend(format!(
            "the store did not answer within {} ms",
            CALL_DEADLINE.as_millis()
        ))),
    }
}
