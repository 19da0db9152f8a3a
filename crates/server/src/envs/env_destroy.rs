//! `env destroy NAME`, and destroying environments whose `--ttl` is up.
//!
//! Destroying stops every task (dependents first is not needed: everything goes), waits until
//! the agents report them gone, has every connected host remove what is left of the environment
//! (dead containers, and volumes unless `--keep-volumes`), releases its ports and marks the
//! record destroyed. Versions, containers' records and events stay: history outlives the
//! environment, and the name can be created again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cj_api::agent::link::{AgentRequest, Outcome, RemoveEnvOutcome};
use cj_api::envs::DestroyEnvResponse;
use cj_api::{DEFAULT_ENV, OperationEvent};
use cj_store::StoreJson;
use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::base::now_rfc3339;
use crate::envs::debts::REMOVE_TIMEOUT;
use crate::envs::records::EnvRecord;
use crate::error::Failure;
use crate::keys;
use crate::releases::waiting::Goal;
use crate::state::ServerState;

/// How long destroying waits for the agents to remove the environment's containers.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);
/// How soon an expired environment that failed to be destroyed is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// How often expiries are looked at even when no environment changed.
const RESYNC_EVERY: Duration = Duration::from_secs(60);

impl ServerState {
    pub async fn destroy_env(
        &self,
        env: &str,
        keep_volumes: bool,
        user: &str,
    ) -> Result<DestroyEnvResponse, Failure> {
        crate::releases::versions::check_env_name(env)?;
        if env == DEFAULT_ENV {
            return Err(Failure::BadRequest(format!(
                "{DEFAULT_ENV} cannot be destroyed; bring its services down with `coding-job down SERVICE`"
            )));
        }
        let record = match self.env_record(env)? {
            Some(record) if record.is_destroyed() => {
                return Err(Failure::NotFound(format!(
                    "environment {env} was already destroyed at {}",
                    record.destroyed_at.as_deref().unwrap_or_default()
                )));
            }
            Some(record) => record,
            None if self.env_exists(env)? => EnvRecord {
                name: env.to_owned(),
                ..EnvRecord::default()
            },
            None => return Err(self.no_such_env(env)?),
        };
        let started = Instant::now();
        self.put_env_record(&EnvRecord {
            destroying: true,
            ..record.clone()
        })?;
        tracing::info!(env, user, keep_volumes, "destroying environment");

        // Everything stops: no desired job is left, and the agents remove the containers.
        let since = self.observed.generation();
        let progress = self.observed.subscribe_progress();
        let desired_prefix = format!("{}{env}/", keys::DESIRED_ALL);
        for entry in self.store.range(&desired_prefix)? {
            self.store.delete(&entry.key)?;
        }
        self.assignments_caught_up().await?;
        let tasks: Vec<_> = self
            .observed
            .task_keys()
            .into_iter()
            .filter(|key| key.env == env)
            .map(|key| (key, Goal::Gone))
            .collect();
        let tasks_removed = tasks.iter().map(|(key, _)| key.to_string()).collect();
        // Nobody follows a destroy's progress: with the receiver gone, each event is dropped.
        let (events, _) = mpsc::channel::<OperationEvent>(1);
        let waited = self
            .wait_for_tasks(&tasks, since, STOP_TIMEOUT, progress, &events)
            .await;
        if let Some(failure) = waited.failures.first() {
            tracing::warn!(
                env,
                task = failure.task,
                reason = failure.reason,
                "a task did not stop"
            );
        }

        // What is left on each host: dead containers, and the volumes. A host that is down owes
        // it: recorded now, paid when its agent is back.
        let mut volumes_removed = Vec::new();
        let mut volumes_kept = Vec::new();
        let connected = self.links.hosts();
        let mut hosts_pending = Vec::new();
        for host in self.hosts.known().difference(&connected) {
            self.record_env_debt(host, env, keep_volumes, user)?;
            hosts_pending.push(host.clone());
        }
        for host in connected {
            let request = AgentRequest::RemoveEnv {
                env: env.to_owned(),
                keep_volumes,
            };
            match self.links.ask(&host, request, REMOVE_TIMEOUT).await {
                Ok(Outcome::Ok(value)) => match serde_json::from_value::<RemoveEnvOutcome>(value) {
                    Ok(outcome) => {
                        volumes_removed.extend(outcome.volumes_removed);
                        volumes_kept.extend(outcome.volumes_kept);
                    }
                    Err(error) => tracing::warn!(host, %error, "unreadable answer to remove-env"),
                },
                Ok(Outcome::Failed { error, .. }) => {
                    volumes_kept.push(format!("on {host}: {error}"));
                }
                Err(error) => volumes_kept.push(format!("on {host}: {error}")),
            }
        }
        let ports_released = self.release_ports(env)?;
        self.put_env_record(&EnvRecord {
            destroying: false,
            destroyed_at: Some(now_rfc3339()),
            ..record
        })?;
        self.env_changed();
        tracing::info!(env, user, "environment destroyed");
        Ok(DestroyEnvResponse {
            env: env.to_owned(),
            tasks_removed,
            volumes_removed,
            volumes_kept,
            hosts_pending,
            ports_released,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn put_env_record(&self, record: &EnvRecord) -> Result<(), Failure> {
        self.store.put_json(&keys::env(&record.name), record)?;
        Ok(())
    }

    /// Wakes the expiry loop: an environment was created, destroyed or its expiry changed.
    pub fn env_changed(&self) {}

    /// The environments whose time is up now, and when the next one's will be.
    fn expiries(&self) -> Result<(Vec<String>, Option<OffsetDateTime>), Failure> {
        let now = OffsetDateTime::now_utc();
        let mut due = Vec::new();
        let mut next = None::<OffsetDateTime>;
        for record in self.store.range_json::<EnvRecord>(keys::ENVS)? {
            if record.is_destroyed() {
                continue;
            }
            let Some(expires) = record.expires_at() else {
                continue;
            };
            if expires <= now {
                due.push(record.name);
            } else {
                next = Some(next.map_or(expires, |next| next.min(expires)));
            }
        }
        Ok((due, next))
    }
}

/// Destroys each environment when its `--ttl` is up: sleeps until the next expiry, or until an
/// environment record changes in the store (whoever wrote it), and looks again at least every
/// [`RESYNC_EVERY`].
pub async fn run_expiry_loop(state: Arc<ServerState>) {
    loop {
        let read_at = state.store.revision().unwrap_or(0);
        let (due, next) = match state.expiries() {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(%error, "failed to read environments for expiry");
                (
                    Vec::new(),
                    Some(OffsetDateTime::now_utc() + time::Duration::seconds(10)),
                )
            }
        };
        let mut failed = false;
        for env in due {
            tracing::info!(env, "environment expired");
            if let Err(error) = state.destroy_env(&env, false, "ttl").await {
                tracing::error!(env, %error, "failed to destroy an expired environment");
                failed = true;
            }
        }
        let mut wait = next.map(|at| {
            let left = at - OffsetDateTime::now_utc();
            Duration::from_millis(left.whole_milliseconds().clamp(0, i64::MAX as i128) as u64)
        });
        if failed {
            // Try again soon, but not in a tight loop.
            wait = Some(wait.map_or(RETRY_AFTER_FAILURE, |wait| wait.min(RETRY_AFTER_FAILURE)));
        }
        let wait = wait.map_or(RESYNC_EVERY, |wait| wait.min(RESYNC_EVERY));
        // Changes after the read above: none written meanwhile is missed.
        let changes = state.store.watch(keys::ENVS, read_at);
        if let Err(error) = &changes {
            tracing::warn!(%error, "cannot watch environments; looking again in a while");
        }
        tokio::select! {
            _ = async {
                match changes {
                    Ok(mut changes) => { changes.next().await; }
                    Err(_) => std::future::pending().await,
                }
            } => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
