//! The control loops: each reads what it acts on from the store and wakes on the store's watch
//! (with a periodic resync), so a write by any request, or any process on the same store,
//! reaches it. Requests only check and write; they wait for the loop when their answer depends
//! on it (`up` answers once its assignments are published).
//!
//! - [`publisher`]: desired state → placements → every host's assignments ([`published`]).

#[doc(hidden)]
pub mod bench;
mod computing;
pub mod copies;
pub mod handover;
pub mod placement;
pub mod published;
pub mod publisher;
pub mod render;
pub mod routes;

use crate::error::Failure;
use crate::state::ServerState;

impl ServerState {
    /// Completes once every write committed so far is in the published assignments: what a
    /// request that changed desired state waits for before it answers.
    pub async fn assignments_caught_up(&self) -> Result<(), Failure> {
        let revision = self.store.revision()?;
        self.scheduler.wait_published(revision).await
    }
}

#[cfg(test)]
mod tests;
