//! The etcd backend: the store on an etcd cluster (3.4 or later), so several coding-job
//! servers can share one store, and it survives the loss of a machine.
//!
//! Reads (`get`, `range`, `range_page`, `revision`) are answered from the mirror, a copy of the
//! namespace in memory that one etcd watch keeps current (`mirror.rs`, `informer.rs`), so a read
//! never waits on the network. Writes go to etcd, and return once the mirror shows them (at
//! most [`OWN_WRITE_WAIT`]), so a process reads its own writes. Watches replay etcd's history,
//! then follow the mirror (`replay.rs`). Leases are etcd's (`leases.rs`).
//!
//! Every request to etcd has a deadline ([`REQUEST_DEADLINE`]); while the mirror is not known
//! to be current (etcd unreachable, the watch broken or catching up) every call answers
//! [`StoreError::Unavailable`] at once. Nothing waits without a bound.
//!
//! Keys live under a namespace prefix in etcd (`/coding-job/` by default), so one etcd can
//! serve other programs too; callers never see it. The revision is etcd's, shared by every
//! program writing to that etcd: [`Store::revision`] is the revision of the last change in the
//! namespace (or of the listing, just after connecting), not necessarily etcd's latest.
//!
//! etcd refuses a request larger than its `--max-request-bytes` (1.5 MiB by default), so a
//! transaction writing more than that answers `Backend`: size etcd for the largest value.

mod bridge;
mod decode;
mod errors;
mod informer;
mod keys;
mod leases;
mod mirror;
mod replay;
mod txn;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, ConnectOptions, Identity, KvClient, TlsOptions, WatchClient,
};
use tokio::sync::Notify;

use self::bridge::Bridge;
use self::errors::{is_compacted, is_future_revision, store_error};
use self::keys::Namespace;
use self::mirror::{Awaited, Mirror, Sight};
use crate::Store;
use crate::compare::Compare;
use crate::types::{KeyValue, LeaseId, Op, Page, StoreError, TxnOutcome, WatchEvent};
use crate::watch::WatchStream;

/// The longest any one request to etcd may take (a transaction, a lease call, a compaction, a
/// page of a listing, opening a watch, each answer of a history read); past it the call
/// answers `Unavailable`. Generous for one round trip to a healthy cluster, short enough that
/// a caller is told within seconds.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// The longest `connect` waits for etcd to answer and the first listing to arrive.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// The longest opening a TCP (and TLS) connection to an etcd endpoint may take.
const DIAL_DEADLINE: Duration = Duration::from_secs(3);
/// The largest answer taken from etcd. A page of a listing, or a watch catching up after an
/// outage, carries many values at once; tonic's default limit (4 MiB) would refuse them, and
/// etcd sends up to 2 GiB. etcd is trusted: the limit only stops an absurd answer.
const MAX_ANSWER_BYTES: usize = 256 << 20;
/// The longest a write waits for the mirror to show it. Past it the write is still committed
/// (and answered so), but the watch is evidently not keeping up: the mirror goes down and the
/// informer watches again, so reads fail rather than miss the write.
const OWN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// The store on etcd. Dropping it stops its thread and closes its connection; watches it
/// returned then end.
pub struct EtcdStore {
    shared: Arc<Shared>,
    bridge: Bridge,
}

/// TLS for the connection to etcd: the CA that signed etcd's certificate and, if etcd checks
/// clients' certificates (`--client-cert-auth`), this client's certificate and key. All PEM
/// files. The endpoints are then `https://` URLs.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// The prefix of every key in etcd; ends with `/` by convention.
    pub namespace: String,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            namespace: "/coding-job/".into(),
        }
    }
}

/// What the store's callers and its informer share.
struct Shared {
    client: Client,
    namespace: Namespace,
    mirror: Mirror,
    /// Tells the informer to drop its watch and watch again (a write was not seen in time).
    restart: Notify,
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://host:2379`, or `https://` with `tls`), lists the
    /// namespace and starts following it. Fails if that has not happened within 10 s.
    pub fn connect(
        endpoints: &[String],
        tls: Option<EtcdTls>,
        options: EtcdOptions,
    ) -> Result<EtcdStore, StoreError> {
        let mut connect_options = ConnectOptions::new().with_connect_timeout(DIAL_DEADLINE);
        if let Some(tls) = &tls {
            connect_options = connect_options.with_tls(tls_options(tls)?);
        }
        let deadline = Instant::now() + CONNECT_DEADLINE;
        let bridge = Bridge::start()?;
        let endpoints = endpoints.to_vec();
        let client = bridge.call("a connection", CONNECT_DEADLINE, async move {
            Client::connect(endpoints, Some(connect_options))
                .await
                .map_err(store_error)
        })?;
        let shared = Arc::new(Shared {
            client,
            namespace: Namespace::new(&options.namespace),
            mirror: Mirror::new(),
            restart: Notify::new(),
        });
        bridge.spawn(informer::follow(shared.clone()));
        shared
            .mirror
            .wait_until_up(deadline.saturating_duration_since(Instant::now()))?;
        Ok(EtcdStore { shared, bridge })
    }

    /// Runs a request on the store's runtime with a clone of the client, within `deadline`.
    fn call<T, F>(
        &self,
        what: &'static str,
        deadline: Duration,
        request: impl FnOnce(Client) -> F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.bridge
            .call(what, deadline, request(self.shared.client.clone()))
    }

    /// Waits until the mirror shows what a write of this process did (see [`OWN_WRITE_WAIT`]).
    fn await_own(&self, sights: &[Sight]) {
        match self.shared.mirror.await_sights(sights, OWN_WRITE_WAIT) {
            Awaited::Seen | Awaited::Down => {}
            Awaited::TimedOut => {
                tracing::warn!(
                    ?sights,
                    "the etcd watch did not show a write in time; watching again"
                );
                self.shared
                    .mirror
                    .set_down("the watch did not show a write of this store in time");
                self.shared.restart.notify_one();
            }
        }
    }
}

/// etcd's key-value API, taking answers up to [`MAX_ANSWER_BYTES`].
fn kv_client(client: &Client) -> KvClient {
    client
        .kv_client()
        .max_decoding_message_size(MAX_ANSWER_BYTES)
}

/// etcd's watch API, taking answers up to [`MAX_ANSWER_BYTES`].
fn watch_client(client: &Client) -> WatchClient {
    client
        .watch_client()
        .max_decoding_message_size(MAX_ANSWER_BYTES)
}

fn tls_options(tls: &EtcdTls) -> Result<TlsOptions, StoreError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| {
            StoreError::Backend(format!("cannot read {}: {error}", path.display()))
        })
    };
    let options = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            Ok(options.identity(Identity::from_pem(read(cert)?, read(key)?)))
        }
        (None, None) => Ok(options),
        _ => Err(StoreError::Backend(
            "a client certificate for etcd needs its key, and a key its certificate".into(),
        )),
    }
}

impl Store for EtcdStore {
    /// etcd copies itself, consistently and online, with its own tool; a copy taken here would
    /// miss what etcd keeps beside the keys (its members, its other programs' keys).
    fn snapshot(
        &self,
        _out: &mut dyn std::io::Write,
    ) -> Result<crate::SnapshotSummary, crate::SnapshotError> {
        Err(crate::SnapshotError::Unsupported(
            "snapshots of an etcd store are taken with etcd's own tool: \
             `etcdctl --endpoints=... snapshot save FILE` (and `etcdctl snapshot restore`)"
                .into(),
        ))
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.shared.mirror.get(key)
    }

    fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        self.shared.mirror.range(prefix)
    }

    fn range_page(&self, prefix: &str, page: &Page) -> Result<Vec<KeyValue>, StoreError> {
        self.shared.mirror.range_page(prefix, page)
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnOutcome, StoreError> {
        txn::txn(self, compares, ops)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.shared.mirror.revision()
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        replay::watch(self, prefix, after_revision)
    }

    fn history(&self, prefix: &str, after_revision: u64) -> Result<Vec<WatchEvent>, StoreError> {
        replay::history(self, prefix, after_revision)
    }

    fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let current = self.shared.mirror.revision()?;
        let requested = i64::try_from(revision).unwrap_or(i64::MAX);
        self.call("a compaction", REQUEST_DEADLINE, move |client| async move {
            match kv_client(&client).compact(requested, None).await {
                Ok(_) => Ok(()),
                Err(error) if is_future_revision(&error) => Err(StoreError::FutureRevision {
                    requested: revision,
                    current,
                }),
                // Compacted there or later already: what was asked for holds.
                Err(error) if is_compacted(&error) => Ok(()),
                Err(error) => Err(store_error(error)),
            }
        })
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        leases::grant(self, ttl)
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        leases::keep_alive(self, lease)
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        leases::revoke(self, lease)
    }
}
