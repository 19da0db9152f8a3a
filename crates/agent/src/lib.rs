//! The agent: runs on each host and makes the host's containers match its assignments.
//!
//! It creates what is missing (with the task's volumes, seeded when new, and its artifact, from
//! the host's cache), replaces what differs, removes what is no longer wanted (a routed job's
//! containers leave the routers' pool first) and leaves alone what is right (decided by the config-hash label, so an agent restarted from
//! nothing re-adopts what runs). It follows Docker's event stream: a container that dies on its
//! own is reported and restarted with backoff (or kept, with `on_failure: keep`). Everything it
//! sees and does goes back to the server as [`AgentReport`]s, over a link dialled with
//! `cj_net`, as the CLI dials.
//!
//! The protocol's types ([`link`], [`Assignment`], [`AgentReport`], ...) are `cj_api::agent`'s,
//! re-exported here for the agent's own tests.

mod artifacts;
mod backoff;
mod health;
mod log_count;
mod naming;
mod observe;
mod plan;
mod prewarm;
mod reconcile;
mod remote;
mod seed;
mod snapshot;
mod stats;

pub use artifacts::{
    ArtifactCacheConfig, DEFAULT_ARTIFACT_CACHE_BYTES, DEFAULT_ARTIFACT_CACHE_DIR,
};
pub use backoff::Backoff;
pub use cj_api::agent::{
    AgentReport, Assignment, ContainerEvent, ContainerEventKind, ContainerStats, Health,
    ObservedContainer, Phase, TaskKey, effective_hash, link,
};
pub use plan::{Action, Drains, plan_task, plan_unwanted};
pub use reconcile::{Agent, AgentConfig};
pub use remote::{Dialer, LinkError, NetworkDialer, RemoteOptions, run_remote, run_remote_with};
pub use stats::{DEFAULT_STATS_INTERVAL, HostSize};
