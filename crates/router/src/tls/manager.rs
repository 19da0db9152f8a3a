//! Keeps every routed name's certificate current: for each name the table routes (and the
//! given certificate does not cover), load the one the store keeps, and when there is none or
//! it expires within `renew_before`, take the name's lease and order one, then keep it in the
//! store for every router. Each name is worked on in a task of its own, so a challenge that
//! hangs or fails holds up no other name; a failure is logged once per attempt, shown on the
//! name's page, and tried again with backoff.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cj_api::routes::RouteTable;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::acme::Acme;
use super::certificates::{BEING_OBTAINED, Certificates};
use super::material;
use super::store::CertificateStore;
use crate::host::DEFAULT_ENV;

/// How long a router may hold a name's lease while it orders (given back when done).
const LEASE_TIME: Duration = Duration::from_secs(300);
/// How soon to look again when another router holds the lease, or the store did not answer.
const SOON: Duration = Duration::from_secs(3);
/// The longest wait between two attempts for a failing name.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// When and how to renew, and how often to look.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    pub(crate) renew_before: Duration,
    pub(crate) check_interval: Duration,
    pub(crate) first_retry: Duration,
}

pub(crate) struct Manager {
    pub(crate) certificates: Arc<Certificates>,
    pub(crate) store: Arc<dyn CertificateStore>,
    pub(crate) acme: Option<Arc<Acme>>,
    pub(crate) domain: String,
    pub(crate) timing: Timing,
    /// This router's name for leases: random per process.
    pub(crate) holder: String,
}

/// Where one name stands.
struct NameState {
    next_check: Instant,
    /// The wait after the next failure.
    backoff: Duration,
}

/// What one check of a name came to: when to look again, or `None` when its order failed (the
/// name's backoff says when, and grows).
struct Checked {
    name: String,
    again_in: Option<Duration>,
}

impl Manager {
    /// Runs until every sender of `table` is gone.
    pub(crate) async fn run(self, mut table: watch::Receiver<RouteTable>) {
        let manager = Arc::new(self);
        let mut names: HashMap<String, NameState> = HashMap::new();
        let mut checks: JoinSet<Checked> = JoinSet::new();
        let mut in_progress: BTreeSet<String> = BTreeSet::new();
        let mut table_open = true;
        loop {
            let wanted = manager.wanted(&table.borrow_and_update());
            names.retain(|name, _| wanted.contains(name));
            let now = Instant::now();
            for name in wanted {
                let state = names.entry(name.clone()).or_insert_with(|| {
                    manager.certificates.set_problem(&name, BEING_OBTAINED);
                    NameState {
                        next_check: now,
                        backoff: manager.timing.first_retry,
                    }
                });
                if state.next_check <= now && in_progress.insert(name.clone()) {
                    let manager = Arc::clone(&manager);
                    checks.spawn(async move { manager.check(name).await });
                }
            }
            let next = names
                .iter()
                .filter(|(name, _)| !in_progress.contains(*name))
                .map(|(_, state)| state.next_check)
                .min()
                .unwrap_or(now + manager.timing.check_interval);
            tokio::select! {
                changed = table.changed(), if table_open => {
                    if changed.is_err() {
                        table_open = false;
                    }
                }
                Some(done) = checks.join_next(), if !checks.is_empty() => {
                    let Ok(checked) = done else { continue };
                    in_progress.remove(&checked.name);
                    if let Some(state) = names.get_mut(&checked.name) {
                        match checked.again_in {
                            Some(again_in) => {
                                state.next_check = Instant::now() + again_in;
                                state.backoff = manager.timing.first_retry;
                            }
                            None => {
                                state.next_check = Instant::now() + state.backoff;
                                state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(next) => {}
            }
            if !table_open && checks.is_empty() && names.is_empty() {
                return;
            }
        }
    }

    /// The names the table routes that need a certificate of their own: `NAME.DOMAIN` for
    /// production's routes, `NAME.ENV.DOMAIN` for the others'.
    fn wanted(&self, table: &RouteTable) -> BTreeSet<String> {
        table
            .routes
            .iter()
            .map(|route| {
                if route.env == DEFAULT_ENV {
                    format!("{}.{}", route.name, self.domain)
                } else {
                    format!("{}.{}.{}", route.name, route.env, self.domain)
                }
            })
            .map(|name| name.to_ascii_lowercase())
            .filter(|name| cj_api::certificates::valid_name(name))
            .filter(|name| !self.certificates.given_covers(name))
            .collect()
    }

    /// One look at `name`: take what the store keeps, and order when that is not enough.
    async fn check(&self, name: String) -> Checked {
        let checked = |again_in| Checked {
            name: name.clone(),
            again_in,
        };
        match self.store.certificate(&name).await {
            Ok(Some(stored)) => {
                let newer = self
                    .certificates
                    .expiry(&name)
                    .is_none_or(|in_force| stored.not_after > in_force);
                if newer {
                    match material::load(&stored.chain_pem, &stored.key_pem) {
                        Ok(loaded) => self.certificates.install(&name, loaded),
                        Err(error) => {
                            tracing::warn!(%name, %error, "the stored certificate cannot be used")
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%name, %error, "cannot read the stored certificate");
                return checked(Some(SOON));
            }
        }
        let renew_after = self
            .certificates
            .expiry(&name)
            .map(|not_after| not_after - self.timing.renew_before.as_secs() as i64);
        if renew_after.is_some_and(|renew_after| renew_after > unix_now()) {
            return checked(Some(self.timing.check_interval));
        }
        let Some(acme) = &self.acme else {
            self.certificates
                .set_problem(&name, "no ACME directory is configured (--acme-directory)");
            return checked(Some(self.timing.check_interval));
        };
        match self.store.lease(&name, &self.holder, LEASE_TIME).await {
            Ok(true) => {}
            // Another router orders it; its certificate will be in the store.
            Ok(false) => return checked(Some(SOON)),
            Err(error) => {
                tracing::warn!(%name, %error, "cannot take the lease to order a certificate");
                return checked(Some(SOON));
            }
        }
        let renewing = self.certificates.expiry(&name).is_some();
        tracing::info!(%name, renewing, "ordering a certificate");
        let outcome = match acme.obtain(&name, self.store.as_ref()).await {
            Ok(stored) => self.keep(&name, &stored).await,
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = self.store.lease(&name, &self.holder, Duration::ZERO).await {
            tracing::debug!(%name, %error, "failed to give the lease back");
        }
        match outcome {
            Ok(()) => {
                tracing::info!(%name, "certificate obtained");
                checked(Some(self.timing.check_interval))
            }
            Err(reason) => {
                tracing::warn!(%name, %reason, "no certificate could be obtained");
                // A renewal that failed leaves the certificate in force; its page stays good.
                self.certificates.set_problem(&name, &reason);
                checked(None)
            }
        }
    }

    /// Keeps `stored` for every router, then serves it here.
    async fn keep(
        &self,
        name: &str,
        stored: &cj_api::certificates::StoredCertificate,
    ) -> Result<(), String> {
        let loaded = material::load(&stored.chain_pem, &stored.key_pem)
            .map_err(|error| error.to_string())?;
        self.store
            .put_certificate(name, stored)
            .await
            .map_err(|error| error.to_string())?;
        self.certificates.install(name, loaded);
        Ok(())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
