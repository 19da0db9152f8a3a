//! Watches and history: the recorded changes come from etcd's own history, the live ones from
//! the mirror's broadcast.
//!
//! Why not one etcd watch per caller: the server holds many watches (every control loop, every
//! follower of `/v1/events`), and one etcd watch per process serves them all; the changes a
//! watch sees are then exactly those the mirror applied, in the same order, so a watch never
//! reports a change the process cannot read yet; and a reader too slow for the broadcast gets
//! `Lagged`, as the trait documents, rather than holding etcd's buffers. When the informer
//! resumes after a failure the broadcast carries on without a gap; only if etcd compacted what
//! it needed do the watches end with `Lagged`.
//!
//! Where the replay ends: etcd 3.4 cannot say when a watch has sent everything up to a revision
//! (its progress answers can overtake events: etcd-io/etcd#15220), so the replay reads until it
//! sees a change at the mirror's revision itself. That revision is usually one of a change in
//! the namespace, so a watch of the namespace reaches it. Just after a listing it may be that
//! of another program's write, and the replay then watches all of etcd's keys (keeping those of
//! the namespace), since every revision after the first is some write's.

use std::time::Duration;

use etcd_client::{Client, WatchOptions};
use tokio::time::timeout;

use super::decode::{observed, revision, watch_event};
use super::errors::store_error;
use super::keys::{KeyRange, Namespace};
use super::mirror::{Change, Snapshot};
use super::{EtcdStore, REQUEST_DEADLINE, watch_client};
use crate::types::{StoreError, WatchEvent};
use crate::watch::{WatchStream, replay_then_follow};

/// The longest a whole replay may take (each answer from etcd also within `REQUEST_DEADLINE`).
const REPLAY_DEADLINE: Duration = Duration::from_secs(30);

pub(super) fn history(
    store: &EtcdStore,
    prefix: &str,
    after: u64,
) -> Result<Vec<WatchEvent>, StoreError> {
    let snapshot = store.shared.mirror.snapshot()?;
    recorded(store, prefix, after, snapshot)
}

pub(super) fn watch(
    store: &EtcdStore,
    prefix: &str,
    after: u64,
) -> Result<WatchStream, StoreError> {
    // Subscribed first: every change after the snapshot's revision comes through `live`.
    let (live, snapshot) = store.shared.mirror.subscribe()?;
    let replay = recorded(store, prefix, after, snapshot)?;
    Ok(replay_then_follow(
        prefix.to_owned(),
        replay.into(),
        snapshot.revision,
        live,
        |change| match change {
            Change::Events(events) => Some(events.clone()),
            Change::Lost => None,
        },
    ))
}

/// The changes under `prefix` after `after`, up to the snapshot's revision.
fn recorded(
    store: &EtcdStore,
    prefix: &str,
    after: u64,
    snapshot: Snapshot,
) -> Result<Vec<WatchEvent>, StoreError> {
    // Revision 1 is etcd's empty beginning: nothing was ever written at it.
    if after >= snapshot.revision || snapshot.revision <= 1 {
        return Ok(Vec::new());
    }
    let namespace = store.shared.namespace.clone();
    let watched = match snapshot.revision_is_change {
        true => namespace.range(""),
        false => KeyRange::everything(),
    };
    let client = store.shared.client.clone();
    let read = Read {
        namespace,
        prefix: prefix.to_owned(),
        after,
        up_to: snapshot.revision,
    };
    store.bridge.call(
        "a history read",
        REPLAY_DEADLINE,
        read.changes(client, watched),
    )
}

/// One read of etcd's history.
struct Read {
    namespace: Namespace,
    prefix: String,
    after: u64,
    /// The revision the read ends at; a change at it is certain to be seen.
    up_to: u64,
}

impl Read {
    async fn changes(
        self,
        client: Client,
        watched: KeyRange,
    ) -> Result<Vec<WatchEvent>, StoreError> {
        let start = i64::try_from(self.after + 1).unwrap_or(i64::MAX);
        let options = WatchOptions::new()
            .with_range(watched.end)
            .with_start_revision(start);
        let opened = timeout(
            REQUEST_DEADLINE,
            watch_client(&client).watch(watched.start, Some(options)),
        )
        .await
        .map_err(|_| silent("open a watch"))?
        .map_err(store_error)?;
        // The sender is kept until the read ends: dropping it would end the watch.
        let (_requests, mut responses) = opened.split();
        let mut changes = Vec::new();
        loop {
            let response = timeout(REQUEST_DEADLINE, responses.message())
                .await
                .map_err(|_| silent("send the history"))?
                .map_err(store_error)?
                .ok_or_else(|| StoreError::Unavailable("etcd closed a history read".into()))?;
            if response.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    requested: self.after,
                    oldest: u64::try_from(response.compact_revision()).unwrap_or(0),
                });
            }
            if response.canceled() {
                return Err(StoreError::Backend(format!(
                    "etcd cancelled a history read: {}",
                    response.cancel_reason()
                )));
            }
            let mut reached = false;
            for event in response.events() {
                let at = revision(event);
                reached |= at >= self.up_to;
                if at > self.up_to {
                    continue;
                }
                let change = observed(&self.namespace, event).and_then(watch_event);
                changes.extend(change.filter(|change| change.key.starts_with(&self.prefix)));
            }
            if reached {
                return Ok(changes);
            }
        }
    }
}

fn silent(what: &str) -> StoreError {
    StoreError::Unavailable(format!("etcd did not {what} within {REQUEST_DEADLINE:?}"))
}
