//! The agent: runs on each host and makes the host's containers match its assignments.
//!
//! It creates what is missing (with the task's volumes, seeded when new), replaces what differs,
//! removes what is no longer wanted (a routed job's containers leave the routers' pool first)
//! and leaves alone what is right (decided by the config-hash label, so an agent restarted from
//! nothing re-adopts what runs). It follows Docker's event stream: a container that dies on its
//! own is reported and restarted with backoff (or kept, with `on_failure: keep`). Everything it
//! sees and does goes back to the server as [`AgentReport`]s. [`tls`] is how this binary dials
//! a server over TLS, the agent's link and the CLI alike.

mod backoff;
mod health;
pub mod link;
mod naming;
mod observe;
mod plan;
mod prewarm;
mod reconcile;
mod remote;
mod seed;
mod stats;
mod time;
pub mod tls;
mod types;

pub use backoff::Backoff;
pub use plan::{Action, Drains, plan_task, plan_unwanted};
pub use reconcile::{Agent, AgentConfig};
pub use remote::{Dialer, LinkError, NetworkDialer, RemoteOptions, run_remote, run_remote_with};
pub use stats::{ContainerStats, DEFAULT_STATS_INTERVAL};
pub use time::{LONGEST_WAIT, later};
pub use types::{
    AgentReport, Assignment, ContainerEvent, ContainerEventKind, Health, ObservedContainer, Phase,
    TaskKey, effective_hash,
};
