//! `/v1/router/...`: what routers share through the server so that several of them, and a
//! restarted one, serve the same certificates. A certificate is kept per exact host name; an
//! HTTP-01 challenge's answer is kept under its token, so whichever router the ACME server
//! reaches can answer it; a short lease per name keeps two routers from ordering one name at
//! once.

use serde::{Deserialize, Serialize};

/// The longest host name a certificate is kept for (DNS allows 253 characters).
pub const MAX_NAME_LEN: usize = 253;
/// The longest challenge token (ACME's are 43 base64url characters).
pub const MAX_TOKEN_LEN: usize = 128;

/// A certificate with its private key: `PUT` and `GET /v1/router/certificates/{name}`. Only
/// routers (and admins) ever see `key_pem`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredCertificate {
    /// The certificate chain, leaf first, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PEM (PKCS#8).
    pub key_pem: String,
    /// When the leaf expires, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// The key never shows in logs or panics.
impl std::fmt::Debug for StoredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCertificate")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"<secret>")
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// One kept certificate in `GET /v1/router/certificates`: no key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateSummary {
    /// The host name it is for.
    pub name: String,
    /// When it expires, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// An HTTP-01 challenge's answer: `PUT` and `GET /v1/router/challenges/{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeAnswer {
    /// What `/.well-known/acme-challenge/{token}` answers: the key authorization.
    pub key_authorization: String,
}

/// `PUT /v1/router/leases/{name}`: take (or extend) the right to order a certificate for a
/// name; `ttl_seconds: 0` gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Who asks: one router process (a random name it chose at start).
    pub holder: String,
    /// How long the lease lasts unless given back; at most an hour.
    pub ttl_seconds: u64,
}

/// The answer to a [`LeaseRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseAnswer {
    /// The caller holds the lease now (or, for a release, no longer does).
    pub granted: bool,
    /// Who holds it now, if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// The longest lease a router may take.
pub const MAX_LEASE_SECONDS: u64 = 3600;

/// Whether `name` may name a kept certificate: a host name in lower case (letters, digits,
/// `-`, `.`), not starting or ending with a dot.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-.".contains(&byte))
}

/// Whether `token` may be an ACME challenge token (base64url characters).
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tokens_are_checked() {
        for good in ["www.cj.example.com", "a", "x-1.y"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "A.b",
            "a/b",
            "a b",
            &"a".repeat(254),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        for bad in ["", "a/b", "a.b", &"a".repeat(129)] {
            assert!(!valid_token(bad), "{bad}");
        }
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let certificate = StoredCertificate {
            chain_pem: "CHAIN".into(),
            key_pem: "VERY-SECRET".into(),
            not_after: 1,
        };
        assert!(!format!("{certificate:?}").contains("VERY-SECRET"));
    }
}
