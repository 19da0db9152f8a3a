//! The server: the HTTP API, desired state, and the operations that change it.
//!
//! Desired state lives in the store (`push` writes versions, `up`/`down` write which job runs at
//! which version); from it the server computes each host's assignments and hands them to the
//! agents; agents report back what they see and do, which becomes status and history. In `dev`
//! mode the server, one agent and the embedded store share one process ([`dev::run_dev`]).

mod api;
pub mod config;
mod deployments;
pub mod dev;
mod edge;
mod error;
mod extract;
mod history;
mod keys;
pub mod notify;
mod operations;
mod releases;
mod reports;
mod resolve;
mod rollout;
mod sanitize;
mod serve;
mod state;
mod status;
#[cfg(test)]
mod testing;
mod version_cache;
mod versions;
mod waiting;

pub use api::ROUTES as API_ROUTES;
pub use error::ApiFailure;
pub use state::ServerState;
