//! The agent protocol's data: what the server asks of an agent ([`Assignment`]s, and requests
//! over the [`link`]) and what an agent tells it ([`AgentReport`]s about the containers it
//! sees). Here rather than in the agent, so the server and the CLI speak the protocol without
//! linking the container runtime. The serde shape of every type is the wire format: a change
//! that an agent of another build would read differently needs a new
//! [`link::PROTOCOL_VERSION`].

pub mod link;
mod types;

pub use types::{
    AgentReport, Assignment, ContainerEvent, ContainerEventKind, ContainerState, ContainerStats,
    Health, ObservedContainer, Phase, TaskKey, VolumeSource, effective_hash,
};
