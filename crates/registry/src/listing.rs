//! One listing's view of a registry: the repository, the client made for the credentials in use,
//! and how the client's failures read. Requests, authentication (Basic, or Bearer tokens from the
//! registry's token server, kept for their lifetime) and digest checks are oci-client's.

use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciManifest};
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference};

use crate::{RegistryAuth, RegistryError};

pub(crate) struct Listing {
    /// The host as users name it ("docker.io" for Docker Hub): for messages.
    pub(crate) host: String,
    pub(crate) repository: String,
    client: Client,
    auth: OciAuth,
    /// Who the credentials are for, so a refusal can say whose were rejected.
    username: Option<String>,
}

impl Listing {
    pub(crate) fn new(
        host: &str,
        repository: String,
        client: Client,
        auth: Option<RegistryAuth>,
    ) -> Listing {
        let username = auth.as_ref().map(|auth| auth.username.clone());
        let auth = match auth {
            Some(auth) => OciAuth::Basic(auth.username, auth.password),
            None => OciAuth::Anonymous,
        };
        Listing {
            host: host.to_string(),
            repository,
            client,
            auth,
            username,
        }
    }

    /// One page of tag names: at most `n`, those after `last`.
    pub(crate) async fn tags_page(
        &self,
        n: usize,
        last: Option<&str>,
    ) -> Result<Vec<String>, RegistryError> {
        // A reference names the repository; its tag plays no part in the tag list's URL.
        let reference = self.reference_to_tag("latest");
        match self
            .client
            .list_tags(&reference, &self.auth, Some(n), last)
            .await
        {
            Ok(page) => Ok(page.tags),
            Err(error) if is_not_found(&error) => Err(RegistryError::RepositoryNotFound {
                host: self.host.clone(),
                repository: self.repository.clone(),
            }),
            Err(error) => Err(self.error("GET tags/list", error)),
        }
    }

    /// The manifest a tag or digest names, with its digest; `None` if there is none.
    pub(crate) async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<(OciManifest, String)>, RegistryError> {
        match self.client.pull_manifest(reference, &self.auth).await {
            Ok(found) => Ok(Some(found)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => {
                let name = reference.digest().or(reference.tag()).unwrap_or_default();
                Err(self.error(&format!("GET manifests/{name}"), error))
            }
        }
    }

    /// A blob's bytes, checked against its digest.
    pub(crate) async fn blob(&self, descriptor: &OciDescriptor) -> Result<Vec<u8>, RegistryError> {
        let mut bytes = Vec::new();
        let reference = self.reference_to_digest(&descriptor.digest);
        self.client
            .pull_blob(&reference, descriptor, &mut bytes)
            .await
            .map_err(|error| self.error(&format!("GET blobs/{}", descriptor.digest), error))?;
        Ok(bytes)
    }

    pub(crate) fn reference_to_tag(&self, tag: &str) -> Reference {
        let (host, repository) = (self.host.clone(), self.repository.clone());
        Reference::with_tag(host, repository, tag.to_string())
    }

    pub(crate) fn reference_to_digest(&self, digest: &str) -> Reference {
        let (host, repository) = (self.host.clone(), self.repository.clone());
        Reference::with_digest(host, repository, digest.to_string())
    }

    pub(crate) fn invalid(&self, what: &str, reason: String) -> RegistryError {
        RegistryError::InvalidResponse {
            host: self.host.clone(),
            repository: self.repository.clone(),
            what: what.to_string(),
            reason,
        }
    }

    /// A failed `request` as a [`RegistryError`]. A token server's refusal reaches here as the
    /// registry's 401: oci-client then sends the request without a token.
    fn error(&self, request: &str, error: OciDistributionError) -> RegistryError {
        let (host, repository) = (self.host.clone(), self.repository.clone());
        let refused = |detail: String| RegistryError::Refused {
            host: host.clone(),
            repository: repository.clone(),
            request: request.to_string(),
            detail,
        };
        match error {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => self.denied(),
            OciDistributionError::RegistryError { envelope, .. } => {
                let denied = envelope.errors.iter().any(|error| {
                    matches!(
                        error.code,
                        OciErrorCode::Unauthorized | OciErrorCode::Denied
                    )
                });
                if denied {
                    return self.denied();
                }
                let entries = envelope.errors.iter().map(|error| {
                    let code = serde_json::to_value(&error.code)
                        .ok()
                        .and_then(|code| code.as_str().map(str::to_string))
                        .unwrap_or_default();
                    [code, error.message.clone()]
                        .into_iter()
                        .filter(|part| !part.is_empty())
                        .collect::<Vec<_>>()
                        .join(": ")
                });
                refused(entries.collect::<Vec<_>>().join("; "))
            }
            OciDistributionError::ServerError { code, message, .. } => {
                let said = message.lines().next().unwrap_or_default().trim();
                let said: String = said.chars().take(200).collect();
                refused(match said.is_empty() {
                    true => format!("status {code}"),
                    false => format!("status {code}: {said}"),
                })
            }
            OciDistributionError::RequestError(error) => RegistryError::Transport {
                host,
                repository,
                reason: cause_chain(&error),
            },
            other => self.invalid(&format!("answer to {request}"), other.to_string()),
        }
    }

    fn denied(&self) -> RegistryError {
        let (host, repository) = (self.host.clone(), self.repository.clone());
        match &self.username {
            None => RegistryError::CredentialsRequired { host, repository },
            Some(username) => RegistryError::CredentialsRejected {
                host,
                repository,
                username: username.clone(),
            },
        }
    }
}

fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ServerError { code: 404, .. } => true,
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().any(|error| {
                matches!(
                    error.code,
                    OciErrorCode::NameUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::NotFound
                )
            })
        }
        _ => false,
    }
}

/// The whole cause chain: reqwest's own message only says which request failed, its sources say
/// why (connection refused, certificate, timeout).
fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}
