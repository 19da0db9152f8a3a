//! Pre-warm: every image a host runs or may run is pulled there before a task needs it, so an
//! `up`, a rollout or a task moved from a lost host starts without waiting for a registry.
//!
//! A host's images ([`ServerState::images_for_host`]) are those of the tasks it may run: pinned
//! to it, or unpinned and allowed there by their `hosts`/`constraints`; taken from every desired
//! job at the version(s) it runs, and from the latest pushed version of every service, so a
//! version that is pushed but not yet rolled out (or a service not yet `up`) is warm when it is.
//! The server never pulls (it never talks to Docker): the candidate tasks are read once per
//! change into the [`Catalog`] ([`keep_catalog`]), and each connected agent is sent its share
//! ([`keep_agent_warm`]) when it joins and whenever that changes, and pulls in the background; `hosts prewarm HOST` ([`prewarm`]) asks the agent to pull now and waits.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::Message;
use axum::extract::{Path, State};
use cj_api::agent::link::{AgentRequest, Outcome, ServerMessage};
use cj_api::{ImagePull, PrewarmResponse};
use tokio::sync::mpsc;

use crate::error::Failure;
use crate::keys;
use crate::state::AppState;
use crate::state::ServerState;

pub mod catalog;
#[allow(unused_imports)]
pub(crate) use catalog::*;

/// How long `hosts prewarm` waits for its pulls: images of several hundred MB take minutes.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// Changes come in bursts (an `up` publishes wave by wave, a rollout batch by batch): the set is
/// worked out once they have settled this long, at most once per this long.
const SETTLE: Duration = Duration::from_secs(1);

impl ServerState {
    /// The images of every task `host` runs or may run (see the module's description).
    pub fn images_for_host(&self, host: &str) -> Result<BTreeSet<String>, Failure> {
        Ok(self.images_among(host, &self.prewarm_tasks()?))
    }

    /// What the [`Catalog`] holds, read from the store, as demands without repeats.
    fn prewarm_tasks(&self) -> Result<Vec<ImageDemand>, Failure> {
        let mut demands = HashSet::new();
        for desired in self.desired_jobs(keys::DESIRED_ALL)? {
            let tasks = self.desired_tasks(&desired)?;
            demands.extend(tasks.iter().filter_map(|task| ImageDemand::of(&task.spec)));
        }
        for (env, service) in self.all_services()? {
            let Some(latest) = self.latest_version(&env, &service)? else {
                continue;
            };
            let record = self.versions.get(&env, &service, latest)?;
            let tasks = record.spec.jobs.iter().flat_map(|job| job.tasks.iter());
            demands.extend(tasks.filter_map(ImageDemand::of));
        }
        Ok(demands.into_iter().collect())
    }

    /// The images of those of `demands` that `host` may run: pinned to it, or unpinned and
    /// allowed there. A `dev` server's own host also runs what is pinned to hosts no agent has
    /// joined as.
    fn images_among(&self, host: &str, demands: &[ImageDemand]) -> BTreeSet<String> {
        let labels = self.hosts.labels(host);
        let stands_in = self.local_host.as_deref() == Some(host);
        let known = stands_in.then(|| self.hosts.known());
        let may_run = |demand: &ImageDemand| match &demand.run_on_host {
            Some(pinned) => {
                pinned == host || known.as_ref().is_some_and(|known| !known.contains(pinned))
            }
            None => demand.placement.allows(host, &labels),
        };
        demands
            .iter()
            .filter(|demand| may_run(demand))
            .map(|demand| demand.image.clone())
            .collect()
    }
}

/// Keeps the [`Catalog`] current: worked out again when the desired state or placement is
/// published or a version is stored, once a burst of such changes has settled.
pub(crate) async fn keep_catalog(state: Arc<ServerState>) {
    let mut assignments = state.scheduler.subscribe();
    let mut versions = state.versions.subscribe_stored();
    loop {
        assignments.borrow_and_update();
        versions.borrow_and_update();
        // Every desired task is rendered: seconds with a hundred thousand of them, kept off
        // the runtime's workers (the agents' links answer on those).
        let reading = state.clone();
        let read = tokio::task::spawn_blocking(move || reading.prewarm_tasks()).await;
        match read.unwrap_or_else(|panicked| Err(Failure::Internal(panicked.to_string()))) {
            Ok(tasks) => {
                state.prewarm.tasks.send_replace(Some(Arc::new(tasks)));
            }
            Err(error) => tracing::warn!(%error, "failed to work out the images to pre-warm"),
        }
        tokio::select! {
            changed = assignments.changed() => if changed.is_err() { return },
            changed = versions.changed() => if changed.is_err() { return },
        }
        tokio::time::sleep(SETTLE).await;
    }
}

/// Sends `host`'s agent its set of images now and whenever it changes: when the [`Catalog`]
/// changes, or a host joins or leaves (a `dev` server's own host stands in for hosts that have
/// not joined). Runs as long as the agent's session.
pub(crate) async fn keep_agent_warm(
    state: Arc<ServerState>,
    host: String,
    outgoing: mpsc::Sender<Message>,
) {
    let mut catalog = state.prewarm.tasks.subscribe();
    let mut joined = state.links.subscribe_joined();
    let mut last_sent: Option<BTreeSet<String>> = None;
    loop {
        joined.borrow_and_update();
        let tasks = catalog.borrow_and_update().clone();
        if let Some(tasks) = tasks {
            let images = state.images_among(&host, &tasks);
            if last_sent.as_ref() != Some(&images) {
                let message = ServerMessage::Prewarm {
                    images: images.iter().cloned().collect(),
                };
                let text = serde_json::to_string(&message).expect("protocol messages serialize");
                if outgoing.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
                tracing::debug!(host, images = images.len(), "sent the images to pre-warm");
                last_sent = Some(images);
            }
        }
        tokio::select! {
            changed = catalog.changed() => if changed.is_err() { return },
            changed = joined.changed() => if changed.is_err() { return },
        }
    }
}

/// `POST /v1/hosts/{name}/prewarm`: the host's agent pulls every image the host runs or may
/// run that its engine lacks; the answer says, per image, present, pulled (how long) or failed.
#[utoipa::path(
    post,
    path = "/v1/hosts/{name}/prewarm",
    params(("name" = String, Path, description = "the host's name")),
    responses(
        (status = 200, description = "each image: present, pulled (how long) or failed", body = PrewarmResponse),
        (status = 404, description = "no such host", body = cj_api::ApiError),
        (status = 502, description = "the host's agent did not answer in time, or failed", body = cj_api::ApiError),
        (status = 503, description = "the host's agent is not connected", body = cj_api::ApiError),
    )
)]
pub async fn prewarm(
    State(state): AppState,
    Path(host): Path<String>,
) -> Result<Json<PrewarmResponse>, Failure> {
    state.check_known_host(&host)?;
    state.links.check_connected(&host)?;
    let images: Vec<String> = state.images_for_host(&host)?.into_iter().collect();
    let request = AgentRequest::Pull { images };
    let images = match state.links.ask(&host, request, PULL_TIMEOUT).await? {
        Outcome::Ok(value) => serde_json::from_value::<Vec<ImagePull>>(value).map_err(|error| {
            Failure::BadGateway(format!(
                "the agent of {host} answered in a form this server cannot read: {error}"
            ))
        })?,
        Outcome::Failed { error, .. } => {
            return Err(Failure::BadGateway(format!(
                "the agent of {host} could not pull: {error}"
            )));
        }
    };
    let failed = images
        .iter()
        .filter(|pull| !pull.outcome.is_ready())
        .count();
    tracing::info!(host, images = images.len(), failed, "pre-warmed");
    Ok(Json(PrewarmResponse { host, images }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cj_store::StoreJson;

    use super::*;
    use crate::state::DesiredJob;
    use crate::testing::server;

    fn push(state: &ServerState, yaml: &str) {
        state
            .push("production", "f.yaml", yaml, "alice", None)
            .unwrap();
    }

    fn desire(state: &ServerState, service: &str, job: &str, version: u64) {
        let desired = DesiredJob {
            env: "production".into(),
            service: service.into(),
            job: job.into(),
            version,
            since: String::new(),
            by: "alice".into(),
            task_versions: BTreeMap::new(),
            restart_generations: BTreeMap::new(),
            volume_sources: BTreeMap::new(),
        };
        state
            .store
            .put_json(&keys::desired("production", service, job), &desired)
            .unwrap();
    }

    fn join(state: &ServerState, host: &str) {
        let labels = BTreeMap::from([("slot".to_owned(), host.to_owned())]);
        state.hosts.joined(host, None, labels);
    }

    fn images(state: &ServerState, host: &str) -> Vec<String> {
        state.images_for_host(host).unwrap().into_iter().collect()
    }

    fn shop(version: u64) -> String {
        format!(
            "service: shop
jobs:
  - name: web
    image: web:{version}
    run_on_host: host-1
  - name: api
    image: api:{version}
    instances: 2
    constraints: {{ slot: host-2 }}
  - name: worker
    image: worker:{version}
    instances: 1
  - name: imageless
    run_on_host: host-1
"
        )
    }

    #[tokio::test]
    async fn a_host_warms_what_is_pinned_to_it_or_may_be_placed_there_at_the_running_and_latest_versions()
     {
        let (_dir, state) = server().await;
        join(&state, "host-1");
        join(&state, "host-2");
        push(&state, &shop(1));
        desire(&state, "shop", "web", 1);
        desire(&state, "shop", "api", 1);
        desire(&state, "shop", "imageless", 1);
        push(&state, &shop(2));
        // Pushed, never `up`: its latest version is what an `up` would start.
        push(
            &state,
            "service: batch\njobs:\n  - name: nightly\n    image: nightly:1\n    run_on_host: host-2\n",
        );
        // web runs at 1 and 2 is pushed; worker runs nowhere yet, so only its latest counts.
        assert_eq!(images(&state, "host-1"), ["web:1", "web:2", "worker:2"]);
        assert_eq!(
            images(&state, "host-2"),
            ["api:1", "api:2", "nightly:1", "worker:2"]
        );
        // A host whose labels match no constraint takes only unrestricted tasks.
        join(&state, "host-3");
        assert_eq!(images(&state, "host-3"), ["worker:2"]);
    }

    #[tokio::test]
    async fn the_dev_host_warms_what_is_pinned_to_hosts_that_never_joined() {
        // The test server's own host is host-1.
        let (_dir, state) = server().await;
        join(&state, "host-1");
        push(
            &state,
            "service: far\njobs:\n  - name: j\n    image: far:1\n    run_on_host: host-9\n",
        );
        assert_eq!(images(&state, "host-1"), ["far:1"]);
        join(&state, "host-9");
        assert!(images(&state, "host-1").is_empty());
        assert_eq!(images(&state, "host-9"), ["far:1"]);
    }
}
