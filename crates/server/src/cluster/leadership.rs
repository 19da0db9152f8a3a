//! Leader election through the store: one server of a cluster holds `cluster/leader`, put with
//! its session's lease, and only that server runs the controllers. Every server campaigns; a
//! campaign is a transaction that creates the key if nobody holds it, so two servers can never
//! both win. The others wait on the key's watch and try again the moment it goes (its holder
//! resigned, or its lease expired).
//!
//! A term ends when the session is lost, or when the key no longer names this server's term
//! (deleted by hand, say): the holder must stop acting then, before anybody else can lead.

use std::sync::Arc;
use std::time::Duration;

use cj_store::{Compare, Op, Store, StoreError, StoreJson, TxnOutcome, WatchKind};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::session::{Session, call};

pub const LEADER: &str = "cluster/leader";

/// How long a campaign that lost waits before it looks again even without a change on the
/// key's watch (a watch that broke, a store that was away).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The value of `cluster/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub name: String,
    /// Where the leader's API is reached (what followers forward to).
    pub address: String,
    /// When it began to lead (RFC 3339).
    pub since: String,
}

/// This server leads: the revision that made it leader names the term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub revision: u64,
    pub record: LeaderRecord,
}

/// Who leads now, if anybody.
pub fn current_leader(store: &dyn Store) -> Result<Option<LeaderRecord>, StoreError> {
    store.get_json(LEADER)
}

/// Campaigns until this server leads, or its session is lost (`None`).
pub async fn campaign(
    store: &Arc<dyn Store>,
    session: &Session,
    name: &str,
    address: &str,
) -> Option<Term> {
    loop {
        if session.is_lost() {
            return None;
        }
        let record = LeaderRecord {
            name: name.to_owned(),
            address: address.to_owned(),
            since: crate::base::now_rfc3339(),
        };
        let value = serde_json::to_vec(&record).expect("a leader record is JSON");
        let lease = session.lease();
        let own_name = name.to_owned();
        let attempt = call(store, move |store| {
            // The key is free, or held by this server's previous run (killed, its lease not yet
            // expired): names are unique in a cluster, so that holder is gone for good.
            let condition = match store.get(LEADER)? {
                Some(held)
                    if held.lease != Some(lease)
                        && held
                            .json::<LeaderRecord>()
                            .is_ok_and(|l| l.name == own_name) =>
                {
                    Compare::mod_revision(LEADER, Some(held.mod_revision))
                }
                _ => Compare::absent(LEADER),
            };
            store.txn(&[condition], &[Op::put_with_lease(LEADER, value, lease)])
        })
        .await;
        let seen_at = match attempt {
            Ok(TxnOutcome::Committed { revision }) => return Some(Term { revision, record }),
            Ok(TxnOutcome::Failed) => call(store, |store| store.revision()).await.ok(),
            Err(StoreError::LeaseNotFound(_)) => return None,
            Err(error) => {
                tracing::debug!(%error, "a campaign could not reach the store");
                None
            }
        };
        // Somebody leads: wait until the key goes (or a while, whatever happens).
        let waited = async {
            if let Some(revision) = seen_at {
                wait_for_change(store, revision).await;
            }
        };
        tokio::select! {
            () = waited => {}
            () = tokio::time::sleep(LOOK_AGAIN) => {}
            () = session.lost() => return None,
        }
    }
}

/// Completes when the leader key changes after `revision` (or its watch ends).
async fn wait_for_change(store: &Arc<dyn Store>, revision: u64) {
    let Ok(mut changes) = store.watch(LEADER, revision) else {
        return;
    };
    while let Some(change) = changes.next().await {
        match change {
            Ok(event) if event.key == LEADER => return,
            Ok(_) => continue,
            Err(_) => return,
        }
    }
}

impl Term {
    /// Completes when this term is over: the session lost, or the leader key no longer the one
    /// this term put.
    pub async fn ended(&self, store: &Arc<dyn Store>, session: &Session) {
        tokio::select! {
            () = session.lost() => {}
            () = self.key_replaced(store) => {}
        }
    }

    async fn key_replaced(&self, store: &Arc<dyn Store>) {
        loop {
            let watched = store.watch(LEADER, self.revision);
            if let Ok(mut changes) = watched {
                while let Some(change) = changes.next().await {
                    match change {
                        Ok(event) if event.key != LEADER => continue,
                        Ok(event) if event.kind == WatchKind::Delete => return,
                        Ok(event) if event.revision != self.revision => return,
                        Ok(_) => continue,
                        Err(_) => break,
                    }
                }
            }
            // The watch broke (a store that went away, a compaction): look at the key itself.
            tokio::time::sleep(LOOK_AGAIN).await;
            let revision = self.revision;
            let held = call(store, move |store| {
                Ok(store.get(LEADER)?.map(|kv| kv.create_revision) == Some(revision))
            })
            .await;
            if let Ok(false) = held {
                return;
            }
        }
    }
}
