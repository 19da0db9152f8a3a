//! The server: the HTTP API, desired state, and the operations that change it.
//!
//! Desired state lives in the store (`push` writes versions, `up`/`down` write which job runs at
//! which version); from it the server computes each host's assignments and hands them to the
//! agents; agents report back what they see and do, which becomes status and history.
//! `coding-job server` runs it alone ([`cluster::run_server`]); in `dev` mode the binary runs
//! it ([`startup::prepare`]) with one agent and the embedded store in one process. The server
//! never links the agent or the container runtime: it speaks the agent protocol
//! (`cj_api::agent`) over the link. Every request passes `auth` (tokens, roles, the audit log).

mod base;
mod certificates;
pub mod cluster;
pub mod config;
/// The control loops (public for the benchmarks only).
#[doc(hidden)]
pub mod control;
mod edge;
mod envs;
mod error;
mod hosts;
mod keys;
mod observe;
mod releases;
mod snapshots;
pub mod startup;
mod state;
#[cfg(test)]
mod testing;
mod ui;

pub use edge::admin_token::AdminToken;
pub use edge::api::ROUTES as API_ROUTES;
pub use edge::auth::AuthMode;
pub use edge::metrics_listener::serve_metrics;
pub use edge::serve::serve_connection;
pub use edge::tls;
pub use error::Failure;
pub use observe::{alert_rules, notify, webhook_format};
pub use state::{RouteUrls, ServerState, StateOptions};
