//! The assignment controller: from the desired state in the store to every host's assignments.
//!
//! It follows the store's watch from the revision it last published, so a write by any request
//! (or any process on the same store) reaches it, and it is the only writer of what agents are
//! told. A change under `desired/ENV/SERVICE/` or a placement of that service places and
//! renders that one service again, against what every other service takes of each host
//! (`placement::Load`), and then renders again the services whose templates name one of its jobs
//! (`{{ addr("db") }}`). Everything is placed again, as one, when what placement rests on
//! changes outside the store (an agent links or leaves, a host has been down for
//! `--host-down-after`), when a drain starts or ends, when the watch breaks (compaction, a slow
//! reader), and every [`RESYNC_EVERY`] in case anything was missed.
//!
//! Requests that wrote wait for [`super::published::Scheduler::wait_published`] with their revision, so they
//! answer once what they wrote is in force.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cj_api::agent::TaskKey;
use cj_store::{WatchEvent, WatchKind};
use futures_util::{FutureExt, StreamExt};

use super::published::Published;
use crate::base::lock;
use crate::control::placement::Load;
use crate::error::Failure;
use crate::keys;
use crate::state::{DesiredTask, ServerState};

/// How often everything is placed and published again, whatever the watch said.
pub const RESYNC_EVERY: Duration = Duration::from_secs(60);

/// After a failed publish, how long before trying again (everything, then).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// After a change to the assignments arrives, how long to wait for more before publishing.
const COALESCE: Duration = Duration::from_millis(3);

/// At most this many watch events are handled in one publish.
const BATCH: usize = 10_000;

/// An environment and a service: the unit of an incremental publish.
pub type ServiceKey = (String, String);

/// What the controller keeps of one service between publishes.
#[derive(Default)]
pub(super) struct ServiceEntry {
    /// Its desired tasks as written (with their allocated ports).
    pub(super) raw: Vec<DesiredTask>,
    /// Where each of its unpinned tasks was placed, or why it was not.
    pub(super) placed: BTreeMap<TaskKey, String>,
    pub(super) unplaced: BTreeMap<TaskKey, String>,
    /// Its tasks handing over from a host that still runs them.
    pub(super) handovers: BTreeMap<TaskKey, String>,
    /// What its tasks take of each host.
    pub(super) load: HashMap<String, Load>,
    /// Its assignments as published: (declared host, task).
    pub(super) assigned: Vec<(String, TaskKey)>,
    /// The services whose jobs its templates name.
    pub(super) names: BTreeSet<ServiceKey>,
}

/// What one pass of the loop has to do.
#[derive(Default)]
struct Work {
    everything: bool,
    services: BTreeSet<ServiceKey>,
    /// The highest revision seen among the events.
    through: Option<u64>,
}

pub struct Publisher {
    pub(super) state: Arc<ServerState>,
    pub(super) services: BTreeMap<ServiceKey, ServiceEntry>,
    /// What all services take of each host.
    pub(super) totals: HashMap<String, Load>,
    /// The services whose templates name a job of a service.
    pub(super) named_by: HashMap<ServiceKey, BTreeSet<ServiceKey>>,
    pub(super) published: Published,
    /// Revisions of the placements this controller wrote: when the watch brings them back,
    /// they are no news. A revision may hold many writes; it is forgotten once the watch has
    /// passed it.
    pub(super) own_writes: BTreeSet<u64>,
}

impl Publisher {
    /// Places and publishes everything once, so nothing is answered (and no agent told
    /// "nothing assigned") before the desired state is loaded; [`Publisher::run`] then follows
    /// the store from there.
    pub fn start(state: Arc<ServerState>) -> Result<(Publisher, u64), Failure> {
        let mut publisher = Publisher {
            state,
            services: BTreeMap::new(),
            totals: HashMap::new(),
            named_by: HashMap::new(),
            published: Published::default(),
            own_writes: BTreeSet::new(),
        };
        let revision = publisher.publish_everything()?;
        Ok((publisher, revision))
    }

    /// Follows the store's watch from `after` until the server stops.
    pub async fn run(mut self, mut after: u64) {
        let state = self.state.clone();
        let scheduler = &state.scheduler;
        let mut joined = state.links.subscribe_joined();
        let mut full_requests = scheduler.full_requested.subscribe();
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        resync.reset();
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let mut watch = match state.store.watch("", after) {
                Ok(watch) => watch,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch the store; publishing everything");
                    match self.publish_everything() {
                        Ok(revision) => after = revision,
                        Err(error) => self.failed(&error),
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            };
            loop {
                let mut work = Work::default();
                let next_loss = state
                    .hosts
                    .next_loss(&state.links.hosts(), scheduler.host_down_after());
                let lost = sleep_until(next_loss);
                let retry = sleep_until(retry_at);
                let mut rewatch = false;
                tokio::select! {
                    event = watch.next() => match event {
                        Some(Ok(event)) => {
                            self.note(&event, &mut work);
                            // A request writes its jobs one commit after another (`up` of a
                            // wave): a moment's wait lets them go out as one publication
                            // rather than one each.
                            if work.everything || !work.services.is_empty() {
                                tokio::time::sleep(COALESCE).await;
                            }
                            // Everything already committed goes into this one publish.
                            for _ in 0..BATCH {
                                match watch.next().now_or_never() {
                                    Some(Some(Ok(event))) => self.note(&event, &mut work),
                                    Some(Some(Err(error))) => {
                                        tracing::warn!(%error, "the store's watch broke; publishing everything");
                                        work.everything = true;
                                        rewatch = true;
                                        break;
                                    }
                                    Some(None) | None => break,
                                }
                            }
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%error, "the store's watch broke; publishing everything");
                            work.everything = true;
                            rewatch = true;
                        }
                        None => {
                            work.everything = true;
                            rewatch = true;
                        }
                    },
                    changed = joined.changed() => {
                        if changed.is_err() { return }
                        self.host_joined(&mut work);
                    }
                    changed = full_requests.changed() => {
                        if changed.is_err() { return }
                        work.everything = true;
                    }
                    () = lost => self.hosts_lost(&mut work),
                    () = retry => work.everything = true,
                    _ = resync.tick() => work.everything = true,
                }
                retry_at = None;
                match self.publish_off_worker(work) {
                    Ok(Some(revision)) => after = revision,
                    Ok(None) => {}
                    Err(error) => {
                        self.failed(&error);
                        retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
                    }
                }
                if rewatch {
                    break;
                }
            }
        }
    }

    fn failed(&self, error: &Failure) {
        tracing::error!(%error, "failed to publish assignments");
        *lock(&self.state.scheduler.last_error) = Some(error.to_string());
    }

    /// A host's agent joined: only tasks no host could take may go there now. Placed tasks
    /// stay where they are (nothing is rebalanced onto a new host, as in Nomad), so a thousand
    /// hosts linking again after a network blip do not place a hundred thousand tasks again
    /// each. On a `dev` server a joining host also takes back the tasks declared for it that
    /// its own host ran meanwhile: there everything is looked at again.
    fn host_joined(&self, work: &mut Work) {
        if self.state.local_host.is_some() {
            work.everything = true;
            return;
        }
        let waiting = self
            .services
            .iter()
            .filter(|(_, entry)| !entry.unplaced.is_empty())
            .map(|(service, _)| service.clone());
        work.services.extend(waiting);
    }

    /// A host has been down for `--host-down-after`: only the services with tasks placed there
    /// move anything (on a `dev` server, everything is looked at again, as on a join).
    fn hosts_lost(&self, work: &mut Work) {
        if self.state.local_host.is_some() {
            work.everything = true;
            return;
        }
        let connected = self.state.links.hosts();
        let down_after = self.state.scheduler.host_down_after();
        let lost: BTreeSet<String> = self
            .state
            .hosts
            .views(&connected, down_after)
            .into_iter()
            .filter(|host| host.lost)
            .map(|host| host.name)
            .collect();
        work.services
            .extend(self.state.scheduler.services_placed_on(&lost));
    }

    /// [`Publisher::publish`], which can take seconds with a hundred thousand tasks, without
    /// holding up the runtime's other tasks meanwhile (the agents' links answer their pings on
    /// them: a worker held for seconds would look like a server gone).
    fn publish_off_worker(&mut self, work: Work) -> Result<Option<u64>, Failure> {
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.publish(work))
            }
            _ => self.publish(work),
        }
    }

    /// What an event means for the assignments.
    fn note(&mut self, event: &WatchEvent, work: &mut Work) {
        work.through = Some(event.revision);
        self.own_writes = self.own_writes.split_off(&event.revision);
        if self.own_writes.contains(&event.revision) {
            return;
        }
        let key = event.key.as_str();
        if let Some(path) = key
            .strip_prefix(keys::DESIRED_ALL)
            .or_else(|| key.strip_prefix(keys::PLACEMENTS))
        {
            let mut parts = path.split('/');
            if let (Some(env), Some(service)) = (parts.next(), parts.next()) {
                work.services.insert((env.to_owned(), service.to_owned()));
            }
        } else if let Some(env) = key.strip_prefix(keys::ENVS) {
            // Its variables may have changed: every service of it renders again.
            let of_env = self.services.keys().filter(|(in_env, _)| in_env == env);
            work.services.extend(of_env.cloned());
        } else if let Some(host) = key.strip_prefix(keys::DRAINS) {
            let drain = match event.kind {
                WatchKind::Put => event
                    .value
                    .as_deref()
                    .and_then(|value| serde_json::from_slice(value).ok()),
                WatchKind::Delete => None,
            };
            self.state.hosts.set_draining(host, drain);
            work.everything = true;
        }
    }

    /// Does `work`; the revision the assignments now reflect, if it moved.
    fn publish(&mut self, work: Work) -> Result<Option<u64>, Failure> {
        let started = std::time::Instant::now();
        let publishes = work.everything || !work.services.is_empty();
        let done = self.publish_timed(work);
        if publishes {
            *lock(&self.state.scheduler.last_took) = started.elapsed();
        }
        done
    }

    fn publish_timed(&mut self, work: Work) -> Result<Option<u64>, Failure> {
        let state = self.state.clone();
        let scheduler = &state.scheduler;
        if work.everything {
            let request = *scheduler.full_requested.borrow();
            let revision = self.publish_everything()?;
            scheduler
                .full_served
                .send_if_modified(|served| std::mem::replace(served, request) != request);
            return Ok(Some(revision.max(work.through.unwrap_or(0))));
        }
        if !work.services.is_empty() {
            self.publish_services(&work.services)?;
        }
        let Some(through) = work.through else {
            return Ok(None);
        };
        scheduler.published_through(through);
        Ok(Some(through))
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
