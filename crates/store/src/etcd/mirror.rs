//! The mirror: a copy, in memory, of every key under the namespace, at one revision, kept
//! current by the informer (`informer.rs`) from one etcd watch. Reads are answered from it, so
//! they never wait on the network; every change it applies is also broadcast, in order, to the
//! watches of this process.
//!
//! The mirror knows whether it is linked to etcd. While it is not (the watch broke and has not
//! resumed, or it resumed but has not caught up with what happened meanwhile), every call
//! answers [`StoreError::Unavailable`] rather than serve a view that may be stale without
//! saying so.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::decode::watch_event;
use crate::types::{KeyValue, LeaseId, Page, StoreError, WatchEvent};

/// How many watch responses (each the changes of one or more transactions) a watch of this
/// process may fall behind before it is told it lagged.
const LIVE_CAPACITY: usize = 16_384;

pub(super) struct Mirror {
    state: Mutex<MirrorState>,
    /// Notified whenever the state or the link changes: for callers waiting to see their own
    /// write, and for `connect` waiting for the first listing.
    changed: Condvar,
    changes: broadcast::Sender<Change>,
}

/// What the watches of this process receive.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// The changes of one watch response, in order.
    Events(std::sync::Arc<[WatchEvent]>),
    /// Changes were lost: etcd compacted the history the mirror needed to catch up, so it
    /// listed everything again. A watch ends with `Lagged`.
    Lost,
}

/// A change etcd reported under the namespace (or a key of a listing, as a put).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Observed {
    Put(KeyValue),
    Delete {
        key: String,
        revision: u64,
    },
    /// A key that is not UTF-8 (so not ours), put or deleted at `revision`.
    Undecodable {
        key: Vec<u8>,
        revision: u64,
        deleted: bool,
    },
}

impl Observed {
    fn revision(&self) -> u64 {
        match self {
            Observed::Put(kv) => kv.mod_revision,
            Observed::Delete { revision, .. } | Observed::Undecodable { revision, .. } => *revision,
        }
    }
}

struct MirrorState {
    keys: BTreeMap<String, KeyValue>,
    /// Keys under the namespace that are not UTF-8, with their mod revisions: never shown,
    /// only counted, so the mirror can be compared with etcd's count (see [`Probe`]).
    undecodable: BTreeMap<Vec<u8>, u64>,
    /// The revision the keys are at: of the last change applied, or of the last listing.
    revision: u64,
    /// Whether `revision` is that of a change under the namespace, which a watch of the
    /// namespace will see (a listing's revision may be that of another program's write).
    revision_is_change: bool,
    /// Whether a listing was installed: the watch then resumes after `revision`.
    listed: bool,
    /// `None` while linked to etcd and current; otherwise why not.
    down: Option<String>,
}

/// The mirror's revision as a watch starts from it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Snapshot {
    pub(super) revision: u64,
    pub(super) revision_is_change: bool,
}

/// What etcd said about the namespace at `revision`, read after the watch resumed: how many
/// keys, and the newest mod revision among them. Once the mirror's keys agree on both (or the
/// mirror has gone past `revision`), it has every change up to then; see [`Mirror::caught_up`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Probe {
    pub(super) revision: u64,
    pub(super) count: u64,
    pub(super) max_mod_revision: u64,
}

/// Something a call that wrote waits to see in the mirror, so that its caller reads its own
/// write afterwards.
#[derive(Debug, Clone)]
pub(super) enum Sight {
    /// A change under the namespace committed at this revision.
    Revision(u64),
    /// What etcd answered about `key` at revision `at`: last changed at `mod_revision`, or
    /// absent (a failed comparison is then seen as the caller's next read will see it).
    Key {
        key: String,
        mod_revision: Option<u64>,
        at: u64,
    },
    /// The end of `lease` at revision `at`, when its keys were deleted.
    LeaseEnded { lease: LeaseId, at: u64 },
}

/// How a wait for a [`Sight`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Awaited {
    Seen,
    /// The mirror went down meanwhile: reads fail until it has caught up again, past the write.
    Down,
    TimedOut,
}

impl Mirror {
    pub(super) fn new() -> Mirror {
        let (changes, _) = broadcast::channel(LIVE_CAPACITY);
        Mirror {
            state: Mutex::new(MirrorState {
                keys: BTreeMap::new(),
                undecodable: BTreeMap::new(),
                revision: 0,
                revision_is_change: false,
                listed: false,
                down: Some("not yet connected to etcd".into()),
            }),
            changed: Condvar::new(),
            changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, MirrorState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, if the mirror is linked and current.
    fn up(&self) -> Result<MutexGuard<'_, MirrorState>, StoreError> {
        let state = self.lock();
        match &state.down {
            None => Ok(state),
            Some(reason) => Err(StoreError::Unavailable(reason.clone())),
        }
    }

    pub(super) fn check_up(&self) -> Result<(), StoreError> {
        self.up().map(drop)
    }

    pub(super) fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.up()?.keys.get(key).cloned())
    }

    pub(super) fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        let state = self.up()?;
        let under = state
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
        Ok(under
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect())
    }

    /// As the embedded backend reads a page (keys sort as strings in both).
    pub(super) fn range_page(
        &self,
        prefix: &str,
        page: &Page,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let state = self.up()?;
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let end = format!("{prefix}{}", char::MAX);
        let (lower, upper) = match (&page.beyond, page.newest_first) {
            (Some(beyond), false) => (
                Bound::Excluded(beyond.as_str()),
                Bound::Excluded(end.as_str()),
            ),
            (Some(beyond), true) => (Bound::Included(prefix), Bound::Excluded(beyond.as_str())),
            (None, _) => (Bound::Included(prefix), Bound::Excluded(end.as_str())),
        };
        let entries = state.keys.range::<str, _>((lower, upper));
        let under_prefix = |(key, _): &(&String, &KeyValue)| key.starts_with(prefix);
        let found: Vec<KeyValue> = match page.newest_first {
            true => entries
                .rev()
                .filter(under_prefix)
                .take(page.limit)
                .map(|(_, kv)| kv.clone())
                .collect(),
            false => entries
                .filter(under_prefix)
                .take(page.limit)
                .map(|(_, kv)| kv.clone())
                .collect(),
        };
        Ok(found)
    }

    pub(super) fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.up()?.revision)
    }

    pub(super) fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let state = self.up()?;
        Ok(Snapshot {
            revision: state.revision,
            revision_is_change: state.revision_is_change,
        })
    }

    /// A receiver of every change after the snapshot's revision (taken under the same lock,
    /// so no change falls between the two).
    pub(super) fn subscribe(&self) -> Result<(broadcast::Receiver<Change>, Snapshot), StoreError> {
        let state = self.up()?;
        let snapshot = Snapshot {
            revision: state.revision,
            revision_is_change: state.revision_is_change,
        };
        Ok((self.changes.subscribe(), snapshot))
    }

    /// The revision the watch resumes after, if a listing was ever installed.
    pub(super) fn resume_point(&self) -> Option<u64> {
        let state = self.lock();
        state.listed.then_some(state.revision)
    }

    /// Replaces everything with a listing made at `revision`. `lost`: changes between the old
    /// state and this one were never seen, so the watches of this process are told.
    pub(super) fn install(&self, listing: Vec<Observed>, revision: u64, lost: bool) {
        let mut state = self.lock();
        state.keys.clear();
        state.undecodable.clear();
        for observed in listing {
            apply_one(&mut state, observed);
        }
        state.revision = revision;
        state.revision_is_change = false;
        state.listed = true;
        if lost {
            // No receiver is fine: nobody is watching.
            let _ = self.changes.send(Change::Lost);
        }
        self.changed.notify_all();
    }

    /// Applies the changes of one watch response, in order, and broadcasts them. Changes at or
    /// below the mirror's revision were applied already and are skipped.
    pub(super) fn apply(&self, changes: Vec<Observed>) {
        let mut state = self.lock();
        let applied_up_to = state.revision;
        let mut events = Vec::new();
        for observed in changes {
            let revision = observed.revision();
            if revision <= applied_up_to {
                continue;
            }
            let event = watch_event(observed.clone());
            apply_one(&mut state, observed);
            state.revision = revision;
            state.revision_is_change = true;
            events.extend(event);
        }
        if !events.is_empty() {
            let _ = self.changes.send(Change::Events(events.into()));
        }
        self.changed.notify_all();
    }

    pub(super) fn set_up(&self) {
        self.lock().down = None;
        self.changed.notify_all();
    }

    pub(super) fn set_down(&self, reason: &str) {
        self.lock().down = Some(reason.to_owned());
        self.changed.notify_all();
    }

    /// Whether the mirror holds every change up to the probe's revision.
    pub(super) fn caught_up(&self, probe: &Probe) -> bool {
        let state = self.lock();
        if state.revision >= probe.revision {
            return true;
        }
        let count = (state.keys.len() + state.undecodable.len()) as u64;
        let newest = state.keys.values().map(|kv| kv.mod_revision);
        let max_mod_revision = newest.chain(state.undecodable.values().copied()).max();
        count == probe.count && max_mod_revision.unwrap_or(0) == probe.max_mod_revision
    }

    /// Waits, at most `wait`, until the mirror is up; otherwise says why it is not.
    pub(super) fn wait_until_up(&self, wait: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            let Some(reason) = &state.down else {
                return Ok(());
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable(reason.clone()));
            }
            state = self.wait(state, left);
        }
    }

    /// Waits, at most `wait`, until the mirror shows every one of `sights`.
    pub(super) fn await_sights(&self, sights: &[Sight], wait: Duration) -> Awaited {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            if sights.iter().all(|sight| seen(&state, sight)) {
                return Awaited::Seen;
            }
            if state.down.is_some() {
                return Awaited::Down;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Awaited::TimedOut;
            }
            state = self.wait(state, left);
        }
    }

    fn wait<'a>(
        &self,
        state: MutexGuard<'a, MirrorState>,
        left: Duration,
    ) -> MutexGuard<'a, MirrorState> {
        self.changed
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

fn apply_one(state: &mut MirrorState, observed: Observed) {
    match observed {
        Observed::Put(kv) => {
            state.keys.insert(kv.key.clone(), kv);
        }
        Observed::Delete { key, .. } => {
            state.keys.remove(&key);
        }
        Observed::Undecodable {
            key,
            revision,
            deleted,
        } => {
            if deleted {
                state.undecodable.remove(&key);
            } else {
                state.undecodable.insert(key, revision);
            }
        }
    }
}

fn seen(state: &MirrorState, sight: &Sight) -> bool {
    match sight {
        Sight::Revision(revision) => state.revision >= *revision,
        Sight::Key {
            mod_revision: Some(mod_revision),
            ..
        } => state.revision >= *mod_revision,
        // Absent at `at`: seen once the mirror has it absent, or changed after `at`.
        Sight::Key {
            key,
            mod_revision: None,
            at,
        } => state.revision >= *at || state.keys.get(key).is_none_or(|kv| kv.mod_revision > *at),
        // The lease's keys were deleted at `at`: seen once none is left (some may have been put
        // again without it meanwhile, so `at` itself may never come).
        Sight::LeaseEnded { lease, at } => {
            state.revision >= *at || !state.keys.values().any(|kv| kv.lease == Some(*lease))
        }
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
