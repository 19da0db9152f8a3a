//! Registry client: the only code that talks to registries, through `oci-client`.
//!
//! [`RegistryClient::list_tags`] lists every tag of an image's repository with its image id (the
//! image config digest, which is what Docker shows as the image ID), its manifest digest and its
//! creation time, newest first. [`ImageRef`] parses image references by Docker's rules (the
//! grammar is the spec crate's, re-exported); [`RegistryConfig`] says how to reach one registry
//! host and where its credentials are: in the config, an environment variable, a file, or a
//! Docker `config.json` and its credential helpers.

mod client;
mod config;
mod credentials;
mod error;
mod listing;
mod reference;
mod tag_info;
mod tags;

pub use client::RegistryClient;
pub use config::{RegistryAuth, RegistryConfig};
pub use error::{CredentialError, RegistryError};
pub use reference::{ImageRef, ReferenceError};
pub use tag_info::TagInfo;
