//! Deployments: durable records of moving jobs between versions, and how each kind is planned.
//! `rollout` carries them out; [`DeploymentSignals`] carries their progress to followers;
//! operators' decisions (promote, abort) reach the runner through the stored record.

use std::collections::BTreeMap;
use std::sync::Arc;

use cj_api::{Batch, BatchState, Deployment, DeploymentKind, DeploymentStatus, JobRollout};
use cj_spec::{ChangeKind, ServiceSpec, TaskChange, TaskSpec, UpdatePolicy};
use cj_store::{Compare, Op, StoreJson, TxnOutcome};

use crate::base::now_rfc3339;
use crate::error::Failure;
use crate::keys;
use crate::releases::resolve::Resolved;
use crate::releases::versions::to_json;
use crate::state::{DesiredJob, ServerState};

pub mod signals;
#[allow(unused_imports)]
pub(crate) use signals::*;

impl ServerState {
    /// The newest `limit` deployments of an environment, newest first.
    pub fn deployments(&self, env: &str, limit: usize) -> Result<Vec<Deployment>, Failure> {
        crate::releases::versions::check_env_name(env)?;
        let mut all: Vec<Deployment> = self.store.range_json(&keys::deployments_of_env(env))?;
        all.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        all.truncate(limit);
        Ok(all)
    }

    /// Every deployment still running or waiting, in any environment (to resume after a restart).
    pub fn active_deployments(&self) -> Result<Vec<Deployment>, Failure> {
        let all: Vec<Deployment> = self.store.range_json(keys::DEPLOYMENTS_ALL)?;
        Ok(all
            .into_iter()
            .filter(|deployment| deployment.status.is_active())
            .collect())
    }

    pub fn active_deployment(
        &self,
        env: &str,
        service: &str,
    ) -> Result<Option<Deployment>, Failure> {
        let all: Vec<Deployment> = self.store.range_json(&keys::deployments(env, service))?;
        Ok(all
            .into_iter()
            .find(|deployment| deployment.status.is_active()))
    }

    /// Changes a stored deployment by compare-and-swap: `change` is applied to what is stored
    /// now and written only if nobody wrote the record meanwhile, else read and applied again;
    /// so a promote or abort never overwrites a runner's step, nor a step an abort.
    pub fn update_deployment<T>(
        &self,
        deployment: &Deployment,
        change: impl FnMut(&mut Deployment) -> Result<T, Failure>,
    ) -> Result<(Deployment, T), Failure> {
        self.update_json(&record_key(deployment), change)?
            .ok_or_else(|| Failure::NotFound(format!("no deployment {}", deployment.id)))
    }

    /// Records the runner's copy, keeping requests made meanwhile through the API (promote,
    /// abort): they are merged from what is stored at the moment of writing.
    pub(crate) fn record_progress(&self, deployment: &mut Deployment) -> Result<(), Failure> {
        deployment.updated = now_rfc3339();
        self.update_deployment(&deployment.clone(), |stored| {
            deployment.abort_requested |= stored.abort_requested;
            if matches!(
                deployment.status,
                DeploymentStatus::AwaitingPromotion | DeploymentStatus::Analysing
            ) {
                deployment.promote_requested |= stored.promote_requested;
            }
            *stored = deployment.clone();
            Ok(())
        })?;
        Ok(())
    }

    pub fn load_deployment(&self, deployment: &Deployment) -> Result<Deployment, Failure> {
        let key = record_key(deployment);
        self.store
            .get_json(&key)?
            .ok_or_else(|| Failure::NotFound(format!("no deployment {}", deployment.id)))
    }

    /// Stores a planned deployment under its service's next number, refusing if one is still
    /// active. The number, that check and the record are one transaction: of two concurrent
    /// creations one commits, the other finds the counter moved, reads again, and is refused
    /// because the first is active. `together` adds writes that must commit with the record (an
    /// update's new version); it is called again on every retry.
    pub fn create_deployment(
        &self,
        deployment: &mut Deployment,
        mut together: impl FnMut(&mut Deployment) -> Result<(Vec<Compare>, Vec<Op>), Failure>,
    ) -> Result<(), Failure> {
        let (env, service) = (deployment.env.clone(), deployment.service.clone());
        let counter_key = keys::deployment_counter(&env, &service);
        loop {
            let counter = self.store.get(&counter_key)?;
            let last = match &counter {
                Some(kv) => kv.json::<u64>()?,
                // Stores written before the counter existed: continue after the highest number.
                None => self
                    .store
                    .range(&keys::deployments(&env, &service))?
                    .iter()
                    .map(|kv| trailing_number(&kv.key))
                    .max()
                    .unwrap_or(0),
            };
            if let Some(active) = self.active_deployment(&env, &service)? {
                return Err(Failure::Conflict(format!(
                    "deployment {} of {service} is still {}: promote or abort it first",
                    active.id,
                    active.status.as_str()
                )));
            }
            let sequence = last + 1;
            deployment.id = format!("{service}-{sequence}");
            let (mut compares, mut ops) = together(deployment)?;
            let record_key = keys::deployment(&env, &service, sequence);
            compares.push(Compare::mod_revision(
                counter_key.clone(),
                counter.map(|kv| kv.mod_revision),
            ));
            compares.push(Compare::absent(record_key.clone()));
            ops.push(Op::put(counter_key.clone(), to_json(&sequence)?));
            ops.push(Op::put(record_key, to_json(&*deployment)?));
            if let TxnOutcome::Committed { .. } = self.store.txn(&compares, &ops)? {
                return Ok(());
            }
        }
    }

    /// Plans a deployment of `kind` for the jobs of `resolved` that are up, moving each to
    /// `to_version` (ignored by reload, which keeps each job at its version).
    pub fn plan_deployment(
        &self,
        resolved: &Resolved,
        kind: DeploymentKind,
        to_version: u64,
        user: &str,
    ) -> Result<Deployment, Failure> {
        let target = self
            .versions
            .get(&resolved.env, &resolved.service, to_version)?;
        self.plan_deployment_to(resolved, kind, &target.spec, to_version, user)
    }

    /// Plans a deployment towards `target`, the spec of `to_version` (which an update stores
    /// only together with the deployment).
    pub fn plan_deployment_to(
        &self,
        resolved: &Resolved,
        kind: DeploymentKind,
        target: &ServiceSpec,
        to_version: u64,
        user: &str,
    ) -> Result<Deployment, Failure> {
        let (env, service) = (resolved.env.as_str(), resolved.service.as_str());
        if let Some(active) = self.active_deployment(env, service)? {
            return Err(Failure::Conflict(format!(
                "deployment {} of {service} is still {}: promote or abort it first",
                active.id,
                active.status.as_str()
            )));
        }
        let order = crate::releases::operations::job_waves(target, resolved.jobs.iter())?.concat();
        let mut jobs = Vec::new();
        let mut not_up = Vec::new();
        for job in order {
            let Some(desired) = self
                .store
                .get_json::<DesiredJob>(&keys::desired(env, service, &job))?
            else {
                not_up.push(job);
                continue;
            };
            let current: BTreeMap<String, TaskSpec> = self
                .desired_tasks(&desired)?
                .into_iter()
                .map(|task| (task.spec.name.clone(), task.spec))
                .collect();
            let (to_version, wanted, policy) = if kind == DeploymentKind::Reload {
                let record = self.versions.get(env, service, desired.version)?;
                let policy = record
                    .spec
                    .job(&job)
                    .map(|j| j.update.clone())
                    .unwrap_or_default();
                (desired.version, current.clone(), policy)
            } else {
                let job_spec = target.job(&job);
                let wanted = job_spec.map(|j| {
                    j.tasks
                        .iter()
                        .map(|t| (t.name.clone(), t.clone()))
                        .collect()
                });
                (
                    to_version,
                    wanted.unwrap_or_default(),
                    job_spec.map(|j| j.update.clone()).unwrap_or_default(),
                )
            };
            let changes = task_changes(&job, &current, &wanted, kind == DeploymentKind::Reload);
            let batches = make_batches(&changes, &policy);
            jobs.push(JobRollout {
                job,
                from_version: desired.version,
                to_version,
                changes,
                policy,
                batches,
                next_batch: 0,
                done: false,
                analysis: Vec::new(),
            });
        }
        if jobs.is_empty() {
            return Err(Failure::BadRequest(format!(
                "nothing to deploy: {} of {service} is not up (use `coding-job up` first)",
                not_up.join(", ")
            )));
        }
        let now = now_rfc3339();
        Ok(Deployment {
            // Given out when the deployment is stored (`create_deployment`).
            id: String::new(),
            env: env.to_owned(),
            service: service.to_owned(),
            kind,
            status: DeploymentStatus::Running,
            user: user.to_owned(),
            created: now.clone(),
            updated: now,
            jobs,
            message: None,
            promote_requested: false,
            abort_requested: false,
        })
    }

    /// Starts carrying out a deployment that `create_deployment` stored.
    pub fn start_deployment(self: &Arc<Self>, deployment: &Deployment) {
        self.notifier
            .send(crate::observe::notify::Notification::RolloutStarted {
                env: deployment.env.clone(),
                service: deployment.service.clone(),
                deployment: deployment.id.clone(),
                kind: deployment.kind.as_str().into(),
                jobs: deployment.jobs.iter().map(|job| job.job.clone()).collect(),
                user: deployment.user.clone(),
                at: now_rfc3339(),
            });
        tokio::spawn(self.clone().run_deployment(deployment.clone()));
    }
}

/// Every task's change from `current` to `wanted`, in task-name order. A reload replaces every
/// current task with an identical fresh container.
fn task_changes(
    job: &str,
    current: &BTreeMap<String, TaskSpec>,
    wanted: &BTreeMap<String, TaskSpec>,
    reload: bool,
) -> Vec<TaskChange> {
    if reload {
        return current
            .keys()
            .map(|task| TaskChange {
                job: job.to_owned(),
                task: task.clone(),
                change: ChangeKind::Replace,
                reasons: vec!["reload".into()],
            })
            .collect();
    }
    let mut names: Vec<&String> = current.keys().chain(wanted.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|task| cj_spec::task_change(job, task, current.get(task), wanted.get(task)))
        .collect()
}

/// Canaries first (each alone in the first batch), then the rest `batch_size` at a time.
pub fn make_batches(changes: &[TaskChange], policy: &UpdatePolicy) -> Vec<Batch> {
    let moving: Vec<String> = changes
        .iter()
        .filter(|change| matches!(change.change, ChangeKind::Create | ChangeKind::Replace))
        .map(|change| change.task.clone())
        .collect();
    let canaries = (policy.canary as usize).min(moving.len());
    let batch = |tasks: &[String], canary: bool| Batch {
        tasks: tasks.to_vec(),
        canary,
        state: BatchState::Pending,
        started: None,
        finished: None,
    };
    let mut batches = Vec::new();
    if canaries > 0 {
        batches.push(batch(&moving[..canaries], true));
    }
    for chunk in moving[canaries..].chunks(policy.batch_size.max(1) as usize) {
        batches.push(batch(chunk, false));
    }
    batches
}

/// Where a deployment's record is stored.
pub(crate) fn record_key(deployment: &Deployment) -> String {
    keys::deployment(
        &deployment.env,
        &deployment.service,
        trailing_number(&deployment.id),
    )
}

/// The number a deployment's id (`web-3`) or record key (`deployments/ENV/web/000003`) ends in.
fn trailing_number(text: &str) -> u64 {
    text.rsplit(['-', '/'])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::server;

    fn planned(service: &str) -> Deployment {
        Deployment {
            id: String::new(),
            env: "production".into(),
            service: service.into(),
            kind: DeploymentKind::RollingUpdate,
            status: DeploymentStatus::Running,
            user: "test".into(),
            created: now_rfc3339(),
            updated: now_rfc3339(),
            jobs: Vec::new(),
            message: None,
            promote_requested: false,
            abort_requested: false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_rollouts_of_one_service_never_share_an_id_and_only_one_starts() {
        let (_dir, state) = server().await;
        let attempts: Vec<_> = (0..16)
            .map(|_| {
                let state = state.clone();
                std::thread::spawn(move || {
                    let mut deployment = planned("web");
                    state
                        .create_deployment(&mut deployment, |_| Ok((Vec::new(), Vec::new())))
                        .map(|()| deployment.id)
                })
            })
            .map(|thread| thread.join().unwrap())
            .collect();
        let created: Vec<&String> = attempts.iter().filter_map(|a| a.as_ref().ok()).collect();
        assert_eq!(created, [&"web-1".to_string()], "{attempts:?}");
        assert!(
            attempts
                .iter()
                .filter_map(|a| a.as_ref().err())
                .all(|error| matches!(error, Failure::Conflict(_)))
        );
        // Once it has ended, the next one gets the next number.
        let first = state.deployments("production", 50).unwrap().remove(0);
        state
            .update_deployment(&first, |stored| {
                stored.status = DeploymentStatus::Succeeded;
                Ok(())
            })
            .unwrap();
        let mut second = planned("web");
        state
            .create_deployment(&mut second, |_| Ok((Vec::new(), Vec::new())))
            .unwrap();
        assert_eq!(second.id, "web-2");
        assert_eq!(state.deployments("production", 50).unwrap().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_abort_is_never_lost_to_a_runner_recording_its_steps() {
        let (_dir, state) = server().await;
        for round in 0..20 {
            let mut deployment = planned(&format!("svc{round}"));
            state
                .create_deployment(&mut deployment, |_| Ok((Vec::new(), Vec::new())))
                .unwrap();
            let runner = {
                let (state, mut deployment) = (state.clone(), deployment.clone());
                std::thread::spawn(move || {
                    for step in 0..50 {
                        deployment.message = Some(format!("step {step}"));
                        state.record_progress(&mut deployment).unwrap();
                    }
                })
            };
            let aborter = {
                let (state, deployment) = (state.clone(), deployment.clone());
                std::thread::spawn(move || {
                    state
                        .update_deployment(&deployment, |stored| {
                            stored.abort_requested = true;
                            Ok(())
                        })
                        .unwrap()
                })
            };
            aborter.join().unwrap();
            runner.join().unwrap();
            let stored = state.load_deployment(&deployment).unwrap();
            assert!(stored.abort_requested, "round {round}: the abort was lost");
            assert_eq!(stored.message.as_deref(), Some("step 49"));
        }
    }

    fn change(task: &str, change: ChangeKind) -> TaskChange {
        TaskChange {
            job: "j".into(),
            task: task.into(),
            change,
            reasons: vec![],
        }
    }

    #[test]
    fn canaries_go_first_then_batches() {
        let changes: Vec<TaskChange> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|t| change(t, ChangeKind::Replace))
            .chain([
                change("f", ChangeKind::Unchanged),
                change("g", ChangeKind::Remove),
            ])
            .collect();
        let policy = UpdatePolicy {
            batch_size: 2,
            canary: 1,
            ..UpdatePolicy::default()
        };
        let batches: Vec<(Vec<String>, bool)> = make_batches(&changes, &policy)
            .into_iter()
            .map(|b| (b.tasks, b.canary))
            .collect();
        assert_eq!(
            batches,
            [
                (vec!["a".to_string()], true),
                (vec!["b".to_string(), "c".to_string()], false),
                (vec!["d".to_string(), "e".to_string()], false)
            ]
        );
    }

    #[test]
    fn nothing_to_move_makes_no_batches() {
        let changes = [change("a", ChangeKind::Unchanged)];
        assert!(make_batches(&changes, &UpdatePolicy::default()).is_empty());
    }
}
