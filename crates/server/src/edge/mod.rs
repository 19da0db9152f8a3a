//! The API edge: the router and its handlers, limits and refusals (`guard`), tokens, sessions,
//! roles and the audit log, the store's snapshot, OpenAPI, the listener and TLS.

pub mod admin_token;
pub mod answer;
pub mod api;
pub mod audit;
pub mod auth;
pub mod blocking;
pub mod connection;
pub mod extract;
pub mod guard;
pub mod metrics_listener;
pub mod openapi;
pub mod relay;
pub mod same_origin;
pub mod sanitize;
pub mod serve;
pub mod session;
pub mod snapshot;
pub mod tls;
pub mod tokens;
