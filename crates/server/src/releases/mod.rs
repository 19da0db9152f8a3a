//! Releases: versions, `up`/`down` wave by wave, deployments (rolling updates, rollbacks, reloads,
//! updates), previews of a change, and waiting for tasks to get where they should; canaries
//! judged by the routers' counts of their traffic (`analysis`, `traffic`, `verdict`).

pub mod analysis;
pub mod deployments;
pub mod operations;
pub mod previews;
pub mod requests;
pub mod resolve;
pub mod rollout;
pub mod rollout_end;
pub mod traffic;
pub mod verdict;
pub mod version_cache;
pub mod versions;
pub mod waiting;
