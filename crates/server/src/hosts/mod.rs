//! Hosts and their agents: the links, what agents report, host listings, drains, pre-warming
//! images and `exec`.

pub mod agent_link;
pub mod drain;
pub mod exec;
pub mod history_writer;
pub mod listing;
pub mod observed;
pub mod prewarm;
pub mod reports;
