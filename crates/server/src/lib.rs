//! The server: the HTTP API, desired state, and the operations that change it.
//!
//! Desired state lives in the store (`push` writes versions, `up`/`down` write which job runs at
//! which version); from it the server computes each host's assignments and hands them to the
//! agents; agents report back what they see and do, which becomes status and history.
//! `coding-job server` runs it alone ([`startup::run_server`]); in `dev` mode the binary runs
//! it ([`startup::prepare`]) with one agent and the embedded store in one process. The server
//! never links the agent or the container runtime: it speaks the agent protocol
//! (`cj_api::agent`) over the link. Every request passes `auth` (tokens, roles, the audit log).

mod admin_token;
mod agent_link;
mod alert_conditions;
pub mod alert_rules;
mod alerts;
mod api;
mod audit;
mod auth;
mod base;
mod blocking;
pub mod config;
#[doc(hidden)]
pub mod control;
mod copies;
mod debts;
mod deployments;
mod drain;
mod edge;
mod env_api;
mod env_create;
mod env_destroy;
mod envs;
mod error;
mod events;
mod exec;
mod extract;
mod handover;
mod history;
mod hosts;
mod keys;
mod metrics_listener;
pub mod notify;
mod observed;
mod openapi;
mod operations;
mod placement;
mod ports;
mod previews;
mod prewarm;
mod recorder;
mod releases;
mod render;
mod reports;
mod resolve;
mod rollout;
mod rollout_end;
mod routes;
mod same_origin;
mod sanitize;
mod scrape;
mod secrets;
mod serve;
mod session;
pub mod startup;
mod state;
mod status;
#[cfg(test)]
mod testing;
pub mod tls;
mod tokens;
mod ui;
mod version_cache;
mod versions;
mod waiting;
pub mod webhook_format;

pub use admin_token::AdminToken;
pub use api::ROUTES as API_ROUTES;
pub use auth::AuthMode;
pub use error::ApiFailure;
pub use metrics_listener::serve_metrics;
pub use serve::serve_connection;
pub use state::{RouteUrls, ServerState, StateOptions};
