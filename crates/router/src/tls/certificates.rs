//! The certificates in force, by exact host name, and the answer to every TLS handshake: the
//! name's own certificate (from ACME), else the given one (`--tls-cert`) when it covers the
//! name, else the self-signed fallback, with the reason the name has none kept for its page.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::material::{self, Loaded};

/// Why a name has no certificate before its first attempt ends.
pub(crate) const BEING_OBTAINED: &str = "it is being obtained; try again in a minute";

pub(crate) struct Certificates {
    /// One per host name, each with its expiry (seconds since the Unix epoch).
    by_name: RwLock<HashMap<String, (Arc<CertifiedKey>, i64)>>,
    /// The certificate given on the command line and the names it covers.
    given: Option<Loaded>,
    /// Why each wanted name without a certificate has none (the last attempt's error).
    problems: RwLock<HashMap<String, String>>,
    /// Certificates are obtained through ACME for the names the given one does not cover.
    acme: bool,
    fallback: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").finish_non_exhaustive()
    }
}

impl Certificates {
    pub(crate) fn new(given: Option<Loaded>, acme: bool) -> Certificates {
        Certificates {
            by_name: RwLock::default(),
            given,
            problems: RwLock::default(),
            acme,
            fallback: material::fallback(),
        }
    }

    /// Whether the given certificate covers `name`, so nothing needs to be obtained for it.
    pub(crate) fn given_covers(&self, name: &str) -> bool {
        self.given
            .as_ref()
            .is_some_and(|given| material::covers(&given.names, name))
    }

    /// The expiry of the certificate in force for `name`, if it has its own.
    pub(crate) fn expiry(&self, name: &str) -> Option<i64> {
        read(&self.by_name)
            .get(name)
            .map(|(_, not_after)| *not_after)
    }

    /// Puts `loaded` in force for `name`; the name has no problem any more.
    pub(crate) fn install(&self, name: &str, loaded: Loaded) {
        write(&self.by_name).insert(name.to_owned(), (loaded.key, loaded.not_after));
        write(&self.problems).remove(name);
    }

    /// Records why `name` has no certificate (shown on its page until one is installed).
    pub(crate) fn set_problem(&self, name: &str, reason: &str) {
        write(&self.problems).insert(name.to_owned(), reason.to_owned());
    }

    /// The certificate to serve for `name`, if it has one that is not the fallback.
    fn lookup(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some((key, _)) = read(&self.by_name).get(name) {
            return Some(Arc::clone(key));
        }
        self.given
            .as_ref()
            .filter(|given| material::covers(&given.names, name))
            .map(|given| Arc::clone(&given.key))
    }

    /// Why a connection for `server_name` (SNI) got the fallback certificate; `None` when it
    /// got a real one.
    pub(crate) fn missing(&self, server_name: Option<&str>) -> Option<String> {
        let Some(name) = server_name else {
            return Some("the client sent no server name (SNI)".to_owned());
        };
        let name = name.to_ascii_lowercase();
        if self.lookup(&name).is_some() {
            return None;
        }
        if let Some(problem) = read(&self.problems).get(&name) {
            return Some(problem.clone());
        }
        Some(if self.acme {
            "it is not a name this router serves".to_owned()
        } else {
            "the certificate given (--tls-cert) does not cover it, and no ACME directory is \
             configured (--acme-directory)"
                .to_owned()
        })
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = hello
            .server_name()
            .and_then(|name| self.lookup(&name.to_ascii_lowercase()));
        Some(found.unwrap_or_else(|| Arc::clone(&self.fallback)))
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
