//! Everything that can go wrong talking to a registry or finding its credentials. Each message
//! names the registry host and the repository, or the config field, file or program at fault.
//! None contains a password or a token: they are never put into one, and transport errors only
//! carry URLs, which hold neither.

use std::path::PathBuf;

/// Why listing an image's tags failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error(transparent)]
    Credentials(#[from] CredentialError),

    #[error(
        "registry {host} requires credentials for {repository}: add username/password for {host} to the server config"
    )]
    CredentialsRequired { host: String, repository: String },

    #[error("registry {host} rejected the credentials of user {username} for {repository}")]
    CredentialsRejected {
        host: String,
        repository: String,
        username: String,
    },

    #[error("repository {repository} not found on registry {host}")]
    RepositoryNotFound { host: String, repository: String },

    #[error("{repository}:{tag} on registry {host} has no linux/amd64 image")]
    NoLinuxAmd64Image {
        host: String,
        repository: String,
        tag: String,
    },

    /// An answer we did not expect: its status code, or the registry's own error codes and
    /// messages.
    #[error("registry {host} refused {request} for {repository}: {detail}")]
    Refused {
        host: String,
        repository: String,
        request: String,
        detail: String,
    },

    #[error("registry {host} sent an invalid {what} for {repository}: {reason}")]
    InvalidResponse {
        host: String,
        repository: String,
        what: String,
        reason: String,
    },

    /// The request did not get an answer (connection refused, TLS, timeout). `reason` is the whole
    /// cause chain, so the message alone says what happened.
    #[error("request to registry {host} for {repository} failed: {reason}")]
    Transport {
        host: String,
        repository: String,
        reason: String,
    },
}

/// Why a registry's credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A `registries:` entry whose credential fields do not fit together or cannot be read.
    #[error("registry {host}: {field}: {reason}")]
    Entry {
        host: String,
        field: String,
        reason: String,
    },

    /// Docker's own `config.json`, read because no entry names credentials for the host.
    #[error("docker config {}: {reason}", path.display())]
    DockerConfig { path: PathBuf, reason: String },

    /// A `docker-credential-NAME` program named by `credHelpers` or `credsStore`.
    #[error("credential helper docker-credential-{helper} for {host}: {reason}")]
    Helper {
        helper: String,
        host: String,
        reason: String,
    },
}
