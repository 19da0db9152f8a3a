//! Leases of the embedded backend. A lease's TTL is stored with it; its deadline lives only in
//! memory, so a reopened store gives every lease a full TTL again (as etcd does when a new
//! leader takes over). A thread of the store's own ends each lease at its deadline, without
//! anyone calling the store, and deletes its keys in one transaction, as a revoke does. It is
//! a plain thread rather than a task because the store is opened from sync code and tests
//! without a runtime; it sleeps until the next deadline and stops when the store is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableMultimapTable, ReadableTable};

use super::Shared;
use super::format::{KV, LAST_LEASE, LEASE_KEYS, LEASES, META, backend, meta_value};
use super::write::read_entry;
use crate::types::{LeaseId, Op, StoreError};

/// How long the expiry thread waits before trying again to end a lease whose transaction
/// failed (a full disk, say), so a lasting failure does not make it spin.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The deadlines of the live leases, and the signal that wakes the expiry thread.
pub(super) struct Leases {
    clock: Mutex<LeaseClock>,
    /// Notified when a lease is granted (its deadline may be the nearest) and on stop.
    changed: Condvar,
}

struct LeaseClock {
    live: HashMap<LeaseId, LiveLease>,
    /// Set when the store is dropped: the expiry thread returns.
    stopping: bool,
}

struct LiveLease {
    ttl: Duration,
    deadline: Instant,
}

impl Leases {
    /// The stored leases, each given its full TTL from now.
    pub(super) fn restore(db: &Database) -> Result<Leases, StoreError> {
        let read = db.begin_read().map_err(backend)?;
        let stored = read.open_table(LEASES).map_err(backend)?;
        let now = Instant::now();
        let mut live = HashMap::new();
        for entry in stored.iter().map_err(backend)? {
            let (lease, ttl_ms) = entry.map_err(backend)?;
            let ttl = Duration::from_millis(ttl_ms.value());
            let deadline = now + ttl;
            live.insert(LeaseId(lease.value()), LiveLease { ttl, deadline });
        }
        Ok(Leases {
            clock: Mutex::new(LeaseClock {
                live,
                stopping: false,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LeaseClock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether keys may still be put with `lease`: granted, not revoked, deadline not passed
    /// (a lease past its deadline is expired even before the thread has deleted its keys).
    pub(super) fn is_live(&self, lease: LeaseId, now: Instant) -> bool {
        self.lock()
            .live
            .get(&lease)
            .is_some_and(|live| live.deadline > now)
    }

    pub(super) fn keep_alive(&self, lease: LeaseId, now: Instant) -> Result<Duration, StoreError> {
        match self.lock().live.get_mut(&lease) {
            Some(live) if live.deadline > now => {
                live.deadline = now + live.ttl;
                Ok(live.ttl)
            }
            _ => Err(StoreError::LeaseNotFound(lease)),
        }
    }

    /// Tells the expiry thread to return.
    pub(super) fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
    }
}

impl Shared {
    pub(super) fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        // Whole milliseconds, at least one, as stored.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _writer = self.lock_writer();
        let write = self.db.begin_write().map_err(backend)?;
        let lease = {
            let mut meta = write.open_table(META).map_err(backend)?;
            let number = meta_value(&meta, LAST_LEASE)? + 1;
            meta.insert(LAST_LEASE, number).map_err(backend)?;
            let lease = LeaseId(i64::try_from(number).map_err(backend)?);
            let mut leases = write.open_table(LEASES).map_err(backend)?;
            leases.insert(lease.0, ttl_ms).map_err(backend)?;
            lease
        };
        write.commit().map_err(backend)?;
        let ttl = Duration::from_millis(ttl_ms);
        let deadline = Instant::now() + ttl;
        self.leases
            .lock()
            .live
            .insert(lease, LiveLease { ttl, deadline });
        self.leases.changed.notify_all();
        Ok(lease)
    }

    /// Ends `lease` (revoked, or expired): deletes its keys at one new revision (none when it
    /// has no keys, as in etcd) and forgets it.
    pub(super) fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        // Under the writer lock, no put can attach a key to the lease while it ends.
        let _writer = self.lock_writer();
        if !self.leases.lock().live.contains_key(&lease) {
            return Err(StoreError::LeaseNotFound(lease));
        }
        let write = self.db.begin_write().map_err(backend)?;
        let deletes = {
            let lease_keys = write.open_multimap_table(LEASE_KEYS).map_err(backend)?;
            let kv = write.open_table(KV).map_err(backend)?;
            let mut deletes = Vec::new();
            for key in lease_keys.get(lease.0).map_err(backend)? {
                let key = key.map_err(backend)?;
                // Only keys that still have this lease (see `apply` on damaged entries).
                if read_entry(&kv, key.value())?.is_some_and(|kv| kv.lease == Some(lease)) {
                    deletes.push(Op::delete(key.value()));
                }
            }
            deletes
        };
        let events = match deletes.is_empty() {
            true => Vec::new(),
            false => self.apply(&write, &deletes)?.1,
        };
        {
            let mut lease_keys = write.open_multimap_table(LEASE_KEYS).map_err(backend)?;
            lease_keys.remove_all(lease.0).map_err(backend)?;
            let mut leases = write.open_table(LEASES).map_err(backend)?;
            leases.remove(lease.0).map_err(backend)?;
        }
        write.commit().map_err(backend)?;
        self.leases.lock().live.remove(&lease);
        self.publish(events);
        Ok(())
    }
}

/// Starts the thread that ends leases at their deadlines. It holds the store's shared part,
/// so the database stays open until it has returned; [`Leases::stop`] makes it return.
pub(super) fn spawn_expiry(shared: Arc<Shared>) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("store-leases".into())
        .spawn(move || expire_at_deadlines(&shared))
        .map_err(backend)
}

fn expire_at_deadlines(shared: &Shared) {
    let mut retry_at: Option<Instant> = None;
    let mut clock = shared.leases.lock();
    loop {
        if clock.stopping {
            return;
        }
        let now = Instant::now();
        let due: Vec<LeaseId> = clock
            .live
            .iter()
            .filter(|(_, live)| live.deadline <= now)
            .map(|(lease, _)| *lease)
            .collect();
        if !due.is_empty() && retry_at.is_none_or(|at| at <= now) {
            drop(clock);
            retry_at = None;
            for lease in due {
                match shared.revoke_lease(lease) {
                    // Revoked by someone else meanwhile: what was wanted.
                    Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
                    Err(error) => {
                        tracing::warn!(%lease, %error, "failed to end an expired lease; retrying");
                        retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
                    }
                }
            }
            clock = shared.leases.lock();
            continue;
        }
        let next_deadline = clock
            .live
            .values()
            .map(|live| live.deadline)
            .filter(|deadline| *deadline > now)
            .min();
        if due.is_empty() {
            retry_at = None;
        }
        let wake = next_deadline.into_iter().chain(retry_at).min();
        clock = match wake {
            None => shared
                .leases
                .changed
                .wait(clock)
                .unwrap_or_else(PoisonError::into_inner),
            Some(at) => {
                shared
                    .leases
                    .changed
                    .wait_timeout(clock, at.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}
