//! A watch: first the recorded changes after a revision, then live ones.

use std::collections::VecDeque;

use tokio::sync::broadcast;

use crate::types::{StoreError, WatchEvent};

pub struct Watch {
    pub(crate) prefix: String,
    pub(crate) replay: VecDeque<WatchEvent>,
    /// Live events can overlap the replay; anything at or below this revision was replayed.
    pub(crate) replayed_up_to: u64,
    pub(crate) live: broadcast::Receiver<WatchEvent>,
}

impl Watch {
    /// The recorded changes after the watch's revision, up to when it was made: what `next`
    /// would return first, taken at once without waiting for live changes.
    pub fn drain_replay(&mut self) -> Vec<WatchEvent> {
        self.replay.drain(..).collect()
    }

    /// The next change under the prefix. `Err(Lagged)` means changes were lost because the
    /// reader was too slow: re-read and watch again from the current revision.
    pub async fn next(&mut self) -> Result<WatchEvent, StoreError> {
        if let Some(event) = self.replay.pop_front() {
            return Ok(event);
        }
        loop {
            match self.live.recv().await {
                Ok(event)
                    if event.revision > self.replayed_up_to
                        && event.key.starts_with(&self.prefix) =>
                {
                    return Ok(event);
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(StoreError::Lagged),
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(StoreError::Backend("the store was closed".into()));
                }
            }
        }
    }
}
