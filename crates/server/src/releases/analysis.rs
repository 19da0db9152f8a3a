//! The canary phase of a deployment: the router weight the canaries take while it lasts, and
//! the analysis that judges them by their real traffic (`update.analysis`).
//!
//! Every `interval` the runner reads what the routers counted for the job's versions since the
//! last reading (and, with `log_errors`, asks the canaries' agents to count matching log lines),
//! judges it (`verdict`), and stores the measurement with the deployment before the next one:
//! a server that restarts goes on with the tally it had. `checks` passes promote; more than
//! `failure_limit` failures reject the canaries, which are then rolled back; as many
//! inconclusive measurements as `checks` leave the deployment waiting at the gate for a person.

use std::time::Duration;

use cj_api::{CanaryMeasurement, Deployment, DeploymentStatus, OperationEvent, Verdict};
use cj_spec::CanaryAnalysis;
use cj_store::StoreJson;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::base::now_rfc3339;
use crate::keys;
use crate::releases::rollout_end::Stop;
use crate::releases::traffic::counted_between;
use crate::releases::verdict::{IntervalCounts, judge};
use crate::state::ServerState;

/// `canary-phases/ENV/SERVICE/JOB`: while it exists, routers send `weight_bp` of the job's
/// route's requests to its tasks running `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryPhase {
    pub version: u64,
    pub weight_bp: u32,
    pub deployment: String,
}

/// How a canary phase's analysis ended, when it did not reject the canaries.
enum Concluded {
    Promoted,
    /// Too few requests to judge: a person decides.
    Inconclusive,
}

/// The measurements' tally so far.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    passed: u32,
    failed: u32,
    inconclusive: u32,
}

impl Tally {
    fn of(measurements: &[CanaryMeasurement]) -> Tally {
        let mut tally = Tally::default();
        for measurement in measurements {
            match measurement.verdict {
                Verdict::Pass => tally.passed += 1,
                Verdict::Fail => tally.failed += 1,
                Verdict::Inconclusive => tally.inconclusive += 1,
            }
        }
        tally
    }

    fn concluded(&self, analysis: &CanaryAnalysis) -> bool {
        self.passed >= analysis.checks
            || self.failed > analysis.failure_limit
            || self.inconclusive >= analysis.checks
    }
}

impl ServerState {
    /// Starts (`Some`) or ends (`None`) the weighted canary phase of a job.
    pub(crate) fn set_canary_phase(
        &self,
        deployment: &Deployment,
        job: &str,
        phase: Option<CanaryPhase>,
    ) -> Result<(), crate::error::Failure> {
        let key = keys::canary_phase(&deployment.env, &deployment.service, job);
        match phase {
            Some(phase) => {
                self.store.put_json(&key, &phase)?;
            }
            None => {
                self.store.delete(&key)?;
            }
        }
        self.refresh_route_table();
        Ok(())
    }

    /// Every weighted canary phase in progress, by (env, service, job).
    pub(crate) fn canary_phases(
        &self,
    ) -> Result<
        std::collections::HashMap<(String, String, String), CanaryPhase>,
        crate::error::Failure,
    > {
        let mut phases = std::collections::HashMap::new();
        for kv in self.store.range(keys::CANARY_PHASES)? {
            let parts: Vec<&str> = kv.key.split('/').collect();
            if let [_, env, service, job] = parts.as_slice()
                && let Ok(phase) = kv.json::<CanaryPhase>()
            {
                phases.insert(((*env).into(), (*service).into(), (*job).into()), phase);
            }
        }
        Ok(phases)
    }

    /// Runs the job's canary analysis if its canary batch is done and the analysis has not
    /// concluded yet (also after a restart in the middle of it). Inconclusive: waits at the
    /// gate.
    pub(crate) async fn judge_canaries_if_due(
        &self,
        deployment: &mut Deployment,
        job_index: usize,
    ) -> Result<(), Stop> {
        let job = &deployment.jobs[job_index];
        let Some(analysis) = job.policy.analysis.clone() else {
            return Ok(());
        };
        let canary_done = job
            .next_batch
            .checked_sub(1)
            .and_then(|last| job.batches.get(last))
            .is_some_and(|batch| batch.canary);
        if !canary_done || Tally::of(&job.analysis).concluded(&analysis) {
            return Ok(());
        }
        deployment.status = DeploymentStatus::Analysing;
        let concluded = self
            .analyse_canaries(deployment, job_index, &analysis)
            .await?;
        deployment.status = DeploymentStatus::Running;
        deployment.promote_requested = false;
        deployment.message = None;
        match concluded {
            Concluded::Promoted => {
                let tally = Tally::of(&deployment.jobs[job_index].analysis);
                let job = &deployment.jobs[job_index].job;
                let message = if tally.passed >= analysis.checks {
                    format!(
                        "canaries of {job} promoted by the analysis: {} measurements passed",
                        tally.passed
                    )
                } else {
                    format!("canaries of {job} promoted by hand during the analysis")
                };
                self.record_progress(deployment).map_err(failed)?;
                self.emit_status(deployment, Some(message));
                Ok(())
            }
            Concluded::Inconclusive => {
                let tally = Tally::of(&deployment.jobs[job_index].analysis);
                let message = format!(
                    "canary analysis of {} inconclusive: {} of {} measurements had too few \
                     requests; `coding-job promote {}` to go on, `coding-job abort {}` to roll back",
                    deployment.jobs[job_index].job,
                    tally.inconclusive,
                    tally.inconclusive + tally.passed + tally.failed,
                    deployment.service,
                    deployment.service
                );
                self.await_promotion_because(deployment, message).await
            }
        }
    }

    async fn analyse_canaries(
        &self,
        deployment: &mut Deployment,
        job_index: usize,
        analysis: &CanaryAnalysis,
    ) -> Result<Concluded, Stop> {
        let interval = Duration::from_millis(analysis.interval_ms);
        let (env, service) = (deployment.env.clone(), deployment.service.clone());
        let job_name = deployment.jobs[job_index].job.clone();
        let canary_version = deployment.jobs[job_index].to_version;
        loop {
            let tally = Tally::of(&deployment.jobs[job_index].analysis);
            if tally.passed >= analysis.checks {
                return Ok(Concluded::Promoted);
            }
            if tally.failed > analysis.failure_limit {
                let last = deployment.jobs[job_index]
                    .analysis
                    .iter()
                    .rev()
                    .find(|measurement| measurement.verdict == Verdict::Fail);
                let reason = last
                    .map(|measurement| measurement.reasons.join("; "))
                    .unwrap_or_else(|| "the canary analysis failed".into());
                return Err(Stop::Rejected(reason));
            }
            if tally.inconclusive >= analysis.checks {
                return Ok(Concluded::Inconclusive);
            }
            deployment.message = Some(format!(
                "canary analysis of {job_name}: {} of {} measurements passed, {} failed (of {} \
                 allowed), {} inconclusive",
                tally.passed,
                analysis.checks,
                tally.failed,
                analysis.failure_limit,
                tally.inconclusive
            ));
            self.record_progress(deployment).map_err(failed)?;
            self.emit_status(deployment, deployment.message.clone());

            let before = self.router_counts.reading(&env, &service, &job_name);
            let since_unix_seconds = time::OffsetDateTime::now_utc().unix_timestamp();
            if self.wait_or_stop(deployment, interval).await? {
                // Promoted by hand during the analysis: the person decided.
                return Ok(Concluded::Promoted);
            }
            let after = self.router_counts.reading(&env, &service, &job_name);
            let mut counted = counted_between(&before, &after);
            let mut counts = IntervalCounts {
                canary: counted.remove(&canary_version).unwrap_or_default(),
                ..IntervalCounts::default()
            };
            for other in counted.into_values() {
                crate::releases::traffic::add(&mut counts.stable, &other);
            }
            let mut unreadable_logs = None;
            if let Some(limit) = &analysis.log_errors {
                let tasks = deployment.jobs[job_index].batches[0].tasks.clone();
                match self
                    .count_canary_log_errors(
                        deployment,
                        &job_name,
                        &tasks,
                        since_unix_seconds,
                        &limit.pattern,
                    )
                    .await
                {
                    Ok(errors) => counts.log_errors = Some(errors),
                    Err(reason) => unreadable_logs = Some(reason),
                }
            }
            let mut measurement = judge(analysis, analysis.interval_ms, now_rfc3339(), &counts);
            if let Some(reason) = unreadable_logs
                && measurement.verdict == Verdict::Pass
            {
                measurement.verdict = Verdict::Inconclusive;
                measurement.reasons.push(reason);
            }
            tracing::info!(
                deployment = %deployment.id, job = %job_name,
                "canary measurement: {}", measurement.line()
            );
            self.emit(
                deployment,
                OperationEvent::Measurement {
                    job: job_name.clone(),
                    measurement: measurement.clone(),
                },
            );
            deployment.jobs[job_index].analysis.push(measurement);
            self.record_progress(deployment).map_err(failed)?;
        }
    }

    /// Waits `interval`, returning early with `Err(Aborted)` on an abort and `Ok(true)` on a
    /// promote requested meanwhile.
    async fn wait_or_stop(
        &self,
        deployment: &Deployment,
        interval: Duration,
    ) -> Result<bool, Stop> {
        let until = tokio::time::Instant::now() + interval;
        let key = crate::releases::deployments::record_key(deployment);
        loop {
            let read_at = self.store.revision().map_err(|e| failed(e.into()))?;
            let stored = self.load_deployment(deployment).map_err(failed)?;
            if stored.abort_requested {
                return Err(Stop::Aborted);
            }
            if stored.promote_requested {
                return Ok(true);
            }
            let mut changes = self
                .store
                .watch(&key, read_at)
                .map_err(|e| failed(e.into()))?;
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Ok(false),
                _ = changes.next() => {}
            }
        }
    }

    /// Log lines matching `pattern` the canaries' current containers wrote since then, counted
    /// by their hosts' agents; `Err` says whose logs could not be read.
    async fn count_canary_log_errors(
        &self,
        deployment: &Deployment,
        job: &str,
        tasks: &[String],
        since_unix_seconds: i64,
        pattern: &str,
    ) -> Result<u64, String> {
        let mut errors = 0;
        for task in tasks {
            let key = cj_api::agent::TaskKey {
                env: deployment.env.clone(),
                service: deployment.service.clone(),
                job: job.to_owned(),
                task: task.clone(),
            };
            let copies = self.copies_of(&key);
            let Some((host, container)) = copies.iter().find(|(_, c)| c.is_live()) else {
                return Err(format!(
                    "{key} has no running container to read the logs of"
                ));
            };
            let count = self
                .links
                .count_log_lines(host, &container.id, since_unix_seconds, pattern)
                .await
                .map_err(|failure| format!("the logs of {key} could not be read: {failure}"))?;
            errors += count.matching;
        }
        Ok(errors)
    }
}

fn failed(error: crate::error::Failure) -> Stop {
    Stop::Failed(error.to_string())
}
