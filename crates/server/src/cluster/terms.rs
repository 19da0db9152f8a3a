//! `coding-job server` as one of the servers of a cluster: it listens at once, registers, and
//! campaigns. While another server leads it forwards every connection there
//! (`edge::relay`); when it wins it loads the state and starts the controllers, each term on a
//! tokio runtime of its own, and answers itself. When the term ends (its session lost, the
//! leader key taken away) it stops acting at once: it forwards again and shuts the term's
//! runtime down, which ends every task the term started (control loops, rollouts, agent links,
//! requests in progress) at their next await, without waiting for any of them. It then
//! campaigns again with a new session. On `shutdown` (SIGTERM, Ctrl-C) it resigns: the lease
//! is revoked, so the next server leads at once rather than after the lease's TTL.
//!
//! On the embedded store there is one server, and its first campaign wins at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cj_store::Store;
use tokio::sync::watch;

use super::forwarding::relay_secret;
use super::leadership::{Term, campaign};
use super::members::{ServerRecord, register};
use super::session::Session;
use crate::edge::relay::Relay;
use crate::edge::serve::{Serving, serve_switching};
use crate::startup::{self, Opened, ServerOptions, Started};

/// How long to wait before trying the store again after it failed a session or a term's start.
const RETRY: Duration = Duration::from_secs(1);
/// How long a starting server waits to lead or to learn who leads before it says it is ready.
const READY_WAIT: Duration = Duration::from_secs(5);

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// `coding-job server`: the API, the store and the agents' endpoint, without an agent of its
/// own; it leads when it wins the store's election and forwards to the leader otherwise. Runs
/// until `shutdown` completes; `on_ready` is called once the API is listening and this server
/// leads or knows who does.
pub async fn run_server(
    options: ServerOptions,
    on_ready: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut shutdown: Shutdown = Box::pin(shutdown);
    let Some(opened) = open_when_the_store_answers(&options, &mut shutdown).await? else {
        return Ok(());
    };
    let opened = Arc::new(opened);
    let listener = startup::bind(options.listen).await?;
    let started = opened.started(&options, &listener)?;
    let name = options
        .cluster
        .name
        .clone()
        .unwrap_or_else(|| started.api.to_string());
    let address = options
        .cluster
        .advertise
        .clone()
        .unwrap_or_else(|| started.url.clone());
    let store = opened.store.clone();
    let relay = Arc::new(Relay {
        store: store.clone(),
        own_name: name.clone(),
        tls: match &options.cluster.peer_tls {
            Some(tls) => tls.clone(),
            None => cj_net::TlsClient::new(None).context("failed to load the web's roots")?,
        },
        secret: relay_secret(&*store).context("failed to read the cluster's relay secret")?,
    });
    let (serving, serving_now) = watch::channel(Serving::Relay(relay.clone()));
    let (stop_listening, listening_stopped) = tokio::sync::oneshot::channel::<()>();
    let listening = tokio::spawn(serve_switching(
        listener,
        opened.tls.clone(),
        serving_now,
        async move {
            let _ = listening_stopped.await;
        },
    ));
    let options = Arc::new(options);
    let (ready, readiness) = watch::channel(false);
    let member = Member {
        store,
        opened,
        options,
        record: ServerRecord::new(&name, &address),
        serving,
        relay,
        ready,
    };
    // Ready once this server leads or knows who does, so a client that starts right after
    // `on_ready` is answered rather than told an election is under way.
    let terms = member.serve_terms(&mut shutdown);
    tokio::pin!(terms);
    let mut readiness = readiness;
    let ending = tokio::select! {
        ending = &mut terms => Some(ending),
        _ = tokio::time::timeout(READY_WAIT, readiness.wait_for(|ready| *ready)) => None,
    };
    on_ready(&started);
    let ending = match ending {
        Some(ending) => ending,
        None => terms.await,
    };
    // Requests in progress finish (within the listener's grace) before the term's runtime goes.
    let _ = stop_listening.send(());
    let _ = listening.await;
    if let Some(ending) = ending {
        ending.finish().await;
    }
    Ok(())
}

/// One server of the cluster, between terms.
struct Member {
    store: Arc<dyn Store>,
    opened: Arc<Opened>,
    options: Arc<ServerOptions>,
    record: ServerRecord,
    serving: watch::Sender<Serving>,
    relay: Arc<Relay>,
    /// Set once this server leads or another one is known to.
    ready: watch::Sender<bool>,
}

/// What is left to do once the listener has stopped: end the term that was under way at
/// shutdown, and resign.
struct Ending {
    runtime: Option<tokio::runtime::Runtime>,
    session: Session,
}

impl Ending {
    async fn finish(self) {
        if let Some(runtime) = self.runtime {
            runtime.shutdown_background();
        }
        self.session.end().await;
        tracing::info!("resigned");
    }
}

impl Member {
    /// Sessions and terms until `shutdown`; what is left to end then.
    async fn serve_terms(&self, shutdown: &mut Shutdown) -> Option<Ending> {
        loop {
            let session = tokio::select! {
                session = self.start_session() => session,
                () = shutdown.as_mut() => return None,
            };
            loop {
                if let Ok(Some(leader)) = super::leadership::current_leader(&*self.store)
                    && leader.name != self.record.name
                {
                    self.ready.send_replace(true);
                }
                let won = tokio::select! {
                    won = campaign(&self.store, &session, &self.record.name, &self.record.address) => won,
                    () = shutdown.as_mut() => return Some(Ending { runtime: None, session }),
                };
                let Some(term) = won else {
                    tracing::warn!("the server's session was lost; starting a new one");
                    break;
                };
                tracing::info!(term = term.revision, "leading the cluster");
                let runtime = match self.begin_term().await {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!("failed to take up leadership: {error:#}");
                        // Let another server try; this one tries again after a while.
                        session.end().await;
                        tokio::time::sleep(RETRY).await;
                        break;
                    }
                };
                let over = tokio::select! {
                    () = term.ended(&self.store, &session) => false,
                    () = shutdown.as_mut() => true,
                };
                if over {
                    return Some(Ending {
                        runtime: Some(runtime),
                        session,
                    });
                }
                self.end_term(runtime, &term);
                if session.is_lost() {
                    break;
                }
            }
        }
    }

    /// A session with the store, registered; waits (saying so) while the store cannot be
    /// reached.
    async fn start_session(&self) -> Session {
        let mut said = false;
        loop {
            match Session::start(self.store.clone()).await {
                Ok(session) => match register(&self.store, &session, &self.record).await {
                    Ok(()) => {
                        if said {
                            tracing::info!("the store answers again");
                        }
                        return session;
                    }
                    Err(error) => warn_once(&mut said, &error),
                },
                Err(error) => warn_once(&mut said, &error),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Loads the state and starts the controllers on a runtime of the term's own, then
    /// answers connections with the API.
    async fn begin_term(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .thread_name("leader")
            .enable_all()
            .build()
            .context("failed to start the leader's runtime")?;
        let (opened, options) = (self.opened.clone(), self.options.clone());
        let led = runtime
            .spawn(async move { startup::lead(&opened, &options, None).await })
            .await;
        let (state, auth) = match led {
            Ok(Ok(led)) => led,
            Ok(Err(error)) => {
                runtime.shutdown_background();
                return Err(error);
            }
            Err(panicked) => {
                runtime.shutdown_background();
                anyhow::bail!("loading the state failed: {panicked}");
            }
        };
        let router = crate::edge::api::router(state, auth);
        self.serving.send_replace(Serving::Router {
            router,
            runtime: runtime.handle().clone(),
        });
        self.ready.send_replace(true);
        Ok(runtime)
    }

    /// Stops acting at once: new connections are forwarded, and everything the term started
    /// ends with its runtime.
    fn end_term(&self, runtime: tokio::runtime::Runtime, term: &Term) {
        self.serving
            .send_replace(Serving::Relay(self.relay.clone()));
        runtime.shutdown_background();
        tracing::warn!(term = term.revision, "stopped leading the cluster");
    }
}

/// Opens what the server needs from its store; a shared store that cannot be reached yet is
/// waited for (saying so), until `shutdown` (`None`).
async fn open_when_the_store_answers(
    options: &ServerOptions,
    shutdown: &mut Shutdown,
) -> anyhow::Result<Option<Opened>> {
    let mut said = false;
    loop {
        let error = match startup::open(options) {
            Ok(opened) => return Ok(Some(opened)),
            Err(error) => error,
        };
        let from_the_store = error
            .chain()
            .any(|cause| cause.downcast_ref::<cj_store::StoreError>().is_some());
        if matches!(options.cluster.store, startup::StoreChoice::Embedded) || !from_the_store {
            return Err(error);
        }
        if !said {
            tracing::warn!("waiting for the store before starting: {error:#}");
            said = true;
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = shutdown.as_mut() => return Ok(None),
        }
    }
}

fn warn_once(said: &mut bool, error: &cj_store::StoreError) {
    if !*said {
        tracing::warn!("waiting for the store: {error}");
        *said = true;
    }
}
