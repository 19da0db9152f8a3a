//! Certificates as rustls serves them: a PEM chain and key made into a [`CertifiedKey`], the
//! names a certificate covers (for a wildcard given on the command line), when it expires,
//! and the self-signed certificate a name without one is served, so its visitors get a page
//! that says why rather than a failed handshake.

use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring::sign::any_supported_type;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("no certificate in the PEM chain")]
    NoCertificate,
    #[error("the certificate chain is not PEM: {0}")]
    Chain(String),
    #[error("the private key is not a PEM key rustls can use: {0}")]
    Key(String),
    #[error("the certificate cannot be read: {0}")]
    Certificate(String),
}

/// A certificate ready to serve, with what the router needs to know about it.
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    /// When the leaf expires, in seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The DNS names the leaf is for (`*.example.com` for a wildcard).
    pub(crate) names: Vec<String>,
}

/// Makes a servable certificate of a PEM chain (leaf first) and its PEM private key.
pub(crate) fn load(chain_pem: &str, key_pem: &str) -> Result<Loaded, MaterialError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| MaterialError::Chain(error.to_string()))?;
    let leaf = chain.first().ok_or(MaterialError::NoCertificate)?;
    let (not_after, names) = describe(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|error| MaterialError::Key(error.to_string()))?;
    let signing_key =
        any_supported_type(&key).map_err(|error| MaterialError::Key(error.to_string()))?;
    let key = CertifiedKey::new(chain, signing_key);
    // A key of another certificate would fail every handshake; better refused here.
    key.keys_match()
        .map_err(|error| MaterialError::Key(error.to_string()))?;
    Ok(Loaded {
        key: Arc::new(key),
        not_after,
        names,
    })
}

/// The leaf's expiry (seconds since the Unix epoch) and DNS names (subject alternative names).
fn describe(leaf: &CertificateDer<'_>) -> Result<(i64, Vec<String>), MaterialError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|error| MaterialError::Certificate(error.to_string()))?;
    let not_after = certificate.validity().not_after.timestamp();
    let mut names = Vec::new();
    if let Ok(Some(alternatives)) = certificate.subject_alternative_name() {
        for name in &alternatives.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(name) = name {
                names.push(name.to_ascii_lowercase());
            }
        }
    }
    Ok((not_after, names))
}

/// The expiry of the first certificate of a PEM chain, in seconds since the Unix epoch.
pub(crate) fn not_after(chain_pem: &str) -> Result<i64, MaterialError> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or(MaterialError::NoCertificate)?
        .map_err(|error| MaterialError::Chain(error.to_string()))?;
    Ok(describe(&leaf)?.0)
}

/// Whether a certificate for `names` is valid for the host `name`: one of them equals it, or
/// is `*.REST` where `name` is one label followed by `.REST` (RFC 6125's wildcard).
pub(crate) fn covers(names: &[String], name: &str) -> bool {
    names
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(rest) => name
                .split_once('.')
                .is_some_and(|(label, after)| !label.is_empty() && after == rest),
            None => pattern == name,
        })
}

/// A self-signed certificate no browser trusts, for names without a certificate of their own:
/// the handshake completes and the page says what is missing.
pub(crate) fn fallback() -> Arc<CertifiedKey> {
    let key = rcgen::KeyPair::generate().expect("ring generates an ECDSA P-256 key");
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("no names to check");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "coding-job router: no certificate for this name",
    );
    let certificate = params
        .self_signed(&key)
        .expect("rcgen signs with its own key");
    let loaded = load(&certificate.pem(), &key.serialize_pem())
        .expect("a certificate rcgen made is one rustls can serve");
    loaded.key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec!["*.cj.example.com".to_owned(), "cj.example.com".to_owned()];
        for (name, covered) in [
            ("www.cj.example.com", true),
            ("cj.example.com", true),
            ("a.b.cj.example.com", false),
            (".cj.example.com", false),
            ("www.other.com", false),
        ] {
            assert_eq!(covers(&names, name), covered, "{name}");
        }
    }

    #[test]
    fn a_certificate_is_loaded_with_its_names_and_expiry_and_a_wrong_key_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["*.cj.example.com".to_owned()]).unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let loaded = load(&certificate.pem(), &key.serialize_pem()).unwrap();
        assert_eq!(loaded.names, ["*.cj.example.com"]);
        assert_eq!(loaded.not_after, not_after(&certificate.pem()).unwrap());
        assert!(loaded.not_after > 0);
        let other = rcgen::KeyPair::generate().unwrap();
        assert!(matches!(
            load(&certificate.pem(), &other.serialize_pem()),
            Err(MaterialError::Key(_))
        ));
        assert!(matches!(
            load("", &key.serialize_pem()),
            Err(MaterialError::NoCertificate)
        ));
    }
}
