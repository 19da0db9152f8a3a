//! Docker Registry HTTP API v2 client: the only code that talks to registries.
//!
//! [`RegistryClient::list_tags`] lists every tag of an image's repository with its image id (the
//! image config digest, which is what Docker shows as the image ID), its manifest digest and its
//! creation time, newest first. [`ImageRef`] parses image references by Docker's rules (the
//! grammar is the spec crate's, re-exported); [`RegistryConfig`] says how to reach one registry
//! host and which credentials to use there.

mod challenge;
mod client;
mod config;
mod error;
mod manifest;
mod reference;
mod tag_info;
mod tags;
mod transport;

pub use client::RegistryClient;
pub use config::{RegistryAuth, RegistryConfig};
pub use error::RegistryError;
pub use reference::{ImageRef, ReferenceError};
pub use tag_info::TagInfo;
