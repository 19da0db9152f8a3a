//! Everything that can go wrong talking to a registry. Each message names the registry host and
//! the repository. None contains a password or a token: they are never put into one, and
//! transport errors only carry URLs, which hold neither.

/// Why listing an image's tags failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

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

    #[error(
        "registry {host} asked for an unsupported kind of authentication for {repository}: {challenge}"
    )]
    UnsupportedAuthentication {
        host: String,
        repository: String,
        challenge: String,
    },

    #[error("repository {repository} not found on registry {host}")]
    RepositoryNotFound { host: String, repository: String },

    #[error("{repository}:{tag} on registry {host} has no linux/amd64 image")]
    NoLinuxAmd64Image {
        host: String,
        repository: String,
        tag: String,
    },

    /// An answer we did not expect, with the registry's own error codes and messages if it sent any.
    #[error("registry {host} answered {status} to {request} for {repository}: {detail}")]
    Status {
        host: String,
        repository: String,
        request: String,
        status: u16,
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
