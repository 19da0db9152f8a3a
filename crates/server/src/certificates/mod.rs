//! What routers share through the server (`/v1/router/...`): the certificates they obtained
//! (one per host name, with its private key), the answers to ACME HTTP-01 challenges (kept
//! under a store lease, so one never answered is gone after [`CHALLENGE_TTL`]), and a short
//! lease per name, taken by compare-and-swap, so two routers do not order one name at once.
//!
//! Private keys are secrets, kept in the store as environments' secret variables are: never
//! logged, never in a listing (`GET /v1/router/certificates` has no keys), answered only to
//! the router role (and admins), whose token a router holds.

pub mod api;

use std::time::Duration;

use cj_api::certificates::{
    CertificateSummary, ChallengeAnswer, LeaseAnswer, LeaseRequest, MAX_LEASE_SECONDS,
    StoredCertificate, valid_name, valid_token,
};
use cj_store::{Op, StoreJson as _};
use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::keys;
use crate::state::ServerState;

/// How long a challenge's answer is kept: an order is decided long before.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(600);
/// The largest certificate chain or key kept (a chain is a few KiB).
const MAX_PEM_BYTES: usize = 64 * 1024;
/// The longest key authorization (a token, a dot and a 43-character thumbprint).
const MAX_KEY_AUTHORIZATION: usize = 256;

/// A name's ordering lease as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredLease {
    holder: String,
    /// Milliseconds since the Unix epoch after which the lease is free.
    until_ms: i64,
}

impl ServerState {
    pub fn router_certificate(&self, name: &str) -> Result<Option<StoredCertificate>, Failure> {
        check_name(name)?;
        Ok(self.store.get_json(&keys::certificate(name))?)
    }

    pub fn put_router_certificate(
        &self,
        name: &str,
        certificate: &StoredCertificate,
    ) -> Result<(), Failure> {
        check_name(name)?;
        if certificate.chain_pem.len() > MAX_PEM_BYTES || certificate.key_pem.len() > MAX_PEM_BYTES
        {
            return Err(Failure::BadRequest(format!(
                "a certificate chain or key is at most {MAX_PEM_BYTES} bytes"
            )));
        }
        if certificate.not_after <= now_ms() / 1000 {
            return Err(Failure::BadRequest(
                "not_after is in the past: an expired certificate is not kept".into(),
            ));
        }
        if !certificate
            .chain_pem
            .contains("-----BEGIN CERTIFICATE-----")
            || !certificate.key_pem.contains("PRIVATE KEY-----")
        {
            return Err(Failure::BadRequest(
                "chain_pem must hold PEM certificates and key_pem a PEM private key".into(),
            ));
        }
        self.store.put_json(&keys::certificate(name), certificate)?;
        tracing::info!(%name, not_after = certificate.not_after, "a router kept a certificate");
        Ok(())
    }

    /// Every kept certificate's name and expiry, without keys.
    pub fn router_certificates(&self) -> Result<Vec<CertificateSummary>, Failure> {
        let mut listed = Vec::new();
        for stored in self.store.range(keys::CERTIFICATES)? {
            let name = stored.key.trim_start_matches(keys::CERTIFICATES).to_owned();
            let certificate: StoredCertificate = stored.json()?;
            listed.push(CertificateSummary {
                name,
                not_after: certificate.not_after,
            });
        }
        Ok(listed)
    }

    pub fn router_challenge(&self, token: &str) -> Result<Option<ChallengeAnswer>, Failure> {
        check_token(token)?;
        Ok(self.store.get_json(&keys::challenge(token))?)
    }

    pub fn put_router_challenge(
        &self,
        token: &str,
        answer: &ChallengeAnswer,
    ) -> Result<(), Failure> {
        check_token(token)?;
        if answer.key_authorization.is_empty()
            || answer.key_authorization.len() > MAX_KEY_AUTHORIZATION
            || !answer.key_authorization.is_ascii()
        {
            return Err(Failure::BadRequest(format!(
                "key_authorization is 1 to {MAX_KEY_AUTHORIZATION} ASCII characters"
            )));
        }
        let value = serde_json::to_vec(answer).map_err(cj_store::StoreError::encode)?;
        let lease = self.store.grant_lease(CHALLENGE_TTL)?;
        self.store.txn(
            &[],
            &[Op::put_with_lease(keys::challenge(token), value, lease)],
        )?;
        Ok(())
    }

    pub fn remove_router_challenge(&self, token: &str) -> Result<(), Failure> {
        check_token(token)?;
        self.store.delete(&keys::challenge(token))?;
        Ok(())
    }

    /// Takes, extends or (with `ttl_seconds: 0`) gives back the lease to order `name`.
    pub fn router_lease(&self, name: &str, request: &LeaseRequest) -> Result<LeaseAnswer, Failure> {
        check_name(name)?;
        if request.holder.is_empty() || request.holder.len() > 100 {
            return Err(Failure::BadRequest("holder is 1 to 100 characters".into()));
        }
        if request.ttl_seconds > MAX_LEASE_SECONDS {
            return Err(Failure::BadRequest(format!(
                "ttl_seconds is at most {MAX_LEASE_SECONDS}"
            )));
        }
        let key = keys::certificate_lease(name);
        loop {
            let now = now_ms();
            let stored = self.store.get(&key)?;
            let current: Option<StoredLease> = match &stored {
                Some(stored) => Some(stored.json()?),
                None => None,
            };
            let held_by_another = current
                .as_ref()
                .filter(|lease| lease.until_ms > now && lease.holder != request.holder);
            if let Some(lease) = held_by_another {
                return Ok(LeaseAnswer {
                    granted: false,
                    holder: Some(lease.holder.clone()),
                });
            }
            let revision = stored.as_ref().map(|stored| stored.mod_revision);
            if request.ttl_seconds == 0 {
                let released = match revision {
                    None => true,
                    Some(revision) => matches!(
                        self.store.txn(
                            &[cj_store::Compare::mod_revision(&key, Some(revision))],
                            &[Op::delete(key.as_str())],
                        )?,
                        cj_store::TxnOutcome::Committed { .. }
                    ),
                };
                if released {
                    return Ok(LeaseAnswer {
                        granted: true,
                        holder: None,
                    });
                }
                continue;
            }
            let lease = StoredLease {
                holder: request.holder.clone(),
                until_ms: now + (request.ttl_seconds * 1000) as i64,
            };
            let value = serde_json::to_vec(&lease).map_err(cj_store::StoreError::encode)?;
            if self
                .store
                .compare_and_swap(&key, revision, value)?
                .is_some()
            {
                return Ok(LeaseAnswer {
                    granted: true,
                    holder: Some(lease.holder),
                });
            }
        }
    }
}

fn check_name(name: &str) -> Result<(), Failure> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Failure::BadRequest(
            "a certificate's name is a host name in lower case (letters, digits, '-', '.')".into(),
        ))
    }
}

fn check_token(token: &str) -> Result<(), Failure> {
    if valid_token(token) {
        Ok(())
    } else {
        Err(Failure::BadRequest(
            "a challenge token is 1 to 128 characters of A-Z, a-z, 0-9, '-' and '_'".into(),
        ))
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
