//! A watch as every backend gives it: a stream of the changes under a prefix, first those
//! recorded after a revision, then live ones. A stream (not a type of our own) so a backend on
//! etcd can hand over its watch as it receives it.

use std::collections::VecDeque;
use std::pin::Pin;

use futures_util::{Stream, StreamExt, stream};
use tokio::sync::broadcast;

use crate::types::{StoreError, WatchEvent};

/// The changes a watch sees, in revision order. An `Err(Lagged)` item means changes were lost
/// because the reader was too slow (read again and watch from the current revision); the
/// stream ends after any error.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// What a backend broadcasts to its watches: the changes of one transaction (or one etcd watch
/// response) together, so a burst of many-key transactions costs a slow reader few slots of
/// the channel rather than one per key.
pub(crate) type LiveChanges = std::sync::Arc<[WatchEvent]>;

/// The stream of a backend that keeps its history and broadcasts its live changes in process:
/// `replay` first, then what `live` brings under `prefix`. Live changes can overlap the replay
/// (the receiver was subscribed before the history was read, so nothing falls between the
/// two); those at or below `replayed_up_to` were replayed and are skipped. `changes_of` reads
/// a backend's broadcast message: its changes, or `None` when changes were lost (the watch
/// then ends with `Lagged`, as when it falls behind).
pub(crate) fn replay_then_follow<M: Clone + Send + 'static>(
    prefix: String,
    replay: VecDeque<WatchEvent>,
    replayed_up_to: u64,
    live: broadcast::Receiver<M>,
    changes_of: fn(&M) -> Option<LiveChanges>,
) -> WatchStream {
    let follow = stream::unfold(
        Some((live, prefix, VecDeque::<WatchEvent>::new())),
        move |state| async move {
            let (mut live, prefix, mut ready) = state?;
            loop {
                if let Some(event) = ready.pop_front() {
                    return Some((Ok(event), Some((live, prefix, ready))));
                }
                let received = live.recv().await.map(|message| changes_of(&message));
                match received {
                    Ok(Some(changes)) => ready.extend(
                        changes
                            .iter()
                            .filter(|event| {
                                event.revision > replayed_up_to && event.key.starts_with(&prefix)
                            })
                            .cloned(),
                    ),
                    Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some((Err(StoreError::Lagged), None));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let closed = StoreError::Backend("the store was closed".into());
                        return Some((Err(closed), None));
                    }
                }
            }
        },
    );
    Box::pin(stream::iter(replay.into_iter().map(Ok)).chain(follow))
}
