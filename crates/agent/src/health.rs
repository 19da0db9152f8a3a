//! Running a task's check against its container and turning results into a verdict.
//!
//! Until the first success the probe runs at a fast pace (never slower than its interval), so a
//! task that is ready is seen as healthy within a fraction of a second rather than a whole
//! interval later. Failures in the start period do not count; after it, a failure counts at most
//! once per interval, and `retries` counted failures in a row make the task unhealthy. Once
//! healthy, the probe runs every interval.

use std::sync::Arc;
use std::time::Duration;

use cj_api::agent::{Health, TaskKey};
use cj_api::time::later;
use cj_runtime::ContainerRuntime;
use cj_spec::{CheckSpec, Probe};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The fastest probing pace while a task is starting.
const STARTING_PACE: Duration = Duration::from_millis(100);

/// A verdict change for one container.
#[derive(Debug, Clone)]
pub(crate) struct HealthUpdate {
    pub container_id: String,
    pub key: TaskKey,
    pub config_hash: String,
    pub health: Health,
    pub detail: String,
}

/// The verdict logic, separate from the probing so it can be tested with a paused clock.
#[derive(Debug)]
pub(crate) struct Verdict {
    check: CheckSpec,
    started: Instant,
    health: Health,
    counted_failures: u32,
    last_counted: Option<Instant>,
}

impl Verdict {
    pub fn new(check: CheckSpec, started: Instant) -> Self {
        Verdict {
            check,
            started,
            health: Health::Starting,
            counted_failures: 0,
            last_counted: None,
        }
    }

    /// Takes one probe result; returns the new health if it changed.
    pub fn record(&mut self, success: bool, now: Instant) -> Option<Health> {
        let interval = Duration::from_millis(self.check.interval_ms);
        let before = self.health;
        if success {
            self.counted_failures = 0;
            self.last_counted = None;
            self.health = Health::Healthy;
        } else {
            let in_start_period = self.health == Health::Starting
                && now
                    < later(
                        self.started,
                        Duration::from_millis(self.check.start_period_ms),
                    );
            let counts = !in_start_period
                && self
                    .last_counted
                    .is_none_or(|last| now >= later(last, interval));
            if counts {
                self.counted_failures += 1;
                self.last_counted = Some(now);
                if self.counted_failures >= self.check.retries {
                    self.health = Health::Unhealthy;
                }
            }
        }
        (self.health != before).then_some(self.health)
    }

    /// How long to wait before the next probe.
    pub fn pause(&self) -> Duration {
        let interval = Duration::from_millis(self.check.interval_ms);
        match self.health {
            Health::Starting => interval.min(STARTING_PACE),
            Health::Healthy | Health::Unhealthy => interval,
        }
    }
}

/// Probes one container until the task is aborted (the agent aborts it when the container stops
/// or is replaced).
pub(crate) async fn probe_loop<R: ContainerRuntime>(
    runtime: Arc<R>,
    http: reqwest::Client,
    container_id: String,
    key: TaskKey,
    config_hash: String,
    check: CheckSpec,
    updates: mpsc::UnboundedSender<HealthUpdate>,
) {
    let mut verdict = Verdict::new(check.clone(), Instant::now());
    loop {
        let result = probe_once(&*runtime, &http, &container_id, &check).await;
        let detail = match &result {
            Ok(detail) | Err(detail) => detail.clone(),
        };
        if let Some(health) = verdict.record(result.is_ok(), Instant::now()) {
            let update = HealthUpdate {
                container_id: container_id.clone(),
                key: key.clone(),
                config_hash: config_hash.clone(),
                health,
                detail,
            };
            if updates.send(update).is_err() {
                return;
            }
        }
        tokio::time::sleep(verdict.pause()).await;
    }
}

/// One probe, within the check's timeout: `Ok(what answered)` or `Err(why it failed)`.
async fn probe_once<R: ContainerRuntime>(
    runtime: &R,
    http: &reqwest::Client,
    container_id: &str,
    check: &CheckSpec,
) -> Result<String, String> {
    let timeout = Duration::from_millis(check.timeout_ms);
    let attempt = async {
        match &check.probe {
            Probe::Http { url } => {
                let response = http
                    .get(url)
                    .send()
                    .await
                    .map_err(|error| format!("GET {url}: {error}"))?;
                let status = response.status();
                if status.is_success() {
                    Ok(format!("GET {url}: {status}"))
                } else {
                    Err(format!("GET {url}: {status}"))
                }
            }
            Probe::Tcp { port } => tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .map(|_| format!("tcp port {port} accepts connections"))
                .map_err(|error| format!("tcp port {port}: {error}")),
            Probe::Exec { command } => match runtime.exec(container_id, command).await {
                Ok(0) => Ok(format!("`{}` exited 0", command.join(" "))),
                Ok(code) => Err(format!("`{}` exited {code}", command.join(" "))),
                Err(error) => Err(format!("`{}`: {error}", command.join(" "))),
            },
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}ms", check.timeout_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(interval_ms: u64, retries: u32, start_period_ms: u64) -> CheckSpec {
        CheckSpec {
            probe: Probe::Tcp { port: 1 },
            interval_ms,
            timeout_ms: 100,
            retries,
            start_period_ms,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_tasks_are_healthy_at_once_and_probed_fast_until_then() {
        let start = Instant::now();
        let mut verdict = Verdict::new(check(10_000, 3, 0), start);
        assert_eq!(
            verdict.pause(),
            STARTING_PACE,
            "a starting task is not left waiting a whole interval"
        );
        assert_eq!(verdict.record(true, start), Some(Health::Healthy));
        assert_eq!(verdict.pause(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_in_the_start_period_do_not_count() {
        let start = Instant::now();
        let mut verdict = Verdict::new(check(1000, 1, 5000), start);
        for step in 0..40 {
            assert_eq!(
                verdict.record(false, start + Duration::from_millis(step * 100)),
                None
            );
        }
        assert_eq!(
            verdict.record(false, start + Duration::from_millis(5000)),
            Some(Health::Unhealthy)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_counts_once_per_interval() {
        let start = Instant::now();
        let mut verdict = Verdict::new(check(1000, 3, 0), start);
        let at = |millis| start + Duration::from_millis(millis);
        assert_eq!(verdict.record(false, at(0)), None);
        for millis in (100..1000).step_by(100) {
            assert_eq!(
                verdict.record(false, at(millis)),
                None,
                "fast probes do not use up the retries"
            );
        }
        assert_eq!(verdict.record(false, at(1000)), None);
        assert_eq!(verdict.record(false, at(2000)), Some(Health::Unhealthy));
        assert_eq!(verdict.record(true, at(2100)), Some(Health::Healthy));
        assert_eq!(
            verdict.record(false, at(3100)),
            None,
            "a success resets the count"
        );
    }
}
