//! What every simulated engine runs, sampled every [`EVERY`] of the paused clock, as the tests on
//! real hosts sample every engine: judged by the engines, not by what the server believes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cj_runtime::{ContainerState, SimRuntime, labels};
use tokio::time::Instant;

pub const EVERY: Duration = Duration::from_millis(100);

/// One running container seen in one sample.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub host: String,
    pub job: String,
    pub task: String,
    pub version: String,
    pub id: String,
}

pub struct Sampler {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Every sample's time, so a gap with nothing running still counts as looked at.
    times: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Samples `engines` (host name, engine) until dropped.
    pub fn start(engines: Vec<(String, SimRuntime)>) -> Sampler {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let (into, times_into) = (seen.clone(), times.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                let at = tick.tick().await;
                let mut sample = Vec::new();
                for (host, engine) in &engines {
                    for container in engine.containers() {
                        if container.state != ContainerState::Running {
                            continue;
                        }
                        let label =
                            |name: &str| container.labels.get(name).cloned().unwrap_or_default();
                        sample.push(Seen {
                            at,
                            host: host.clone(),
                            job: label(labels::JOB),
                            task: label(labels::TASK),
                            version: label(labels::VERSION),
                            id: container.id.clone(),
                        });
                    }
                }
                into.lock().unwrap().extend(sample);
                times_into.lock().unwrap().push(at);
            }
        });
        Sampler { seen, times, task }
    }

    /// Every running container of `job` seen, oldest first.
    pub fn seen(&self, job: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.job == job).cloned().collect()
    }

    /// The last sample in which `host` ran a container of `job`.
    pub fn last_running_on(&self, host: &str, job: &str) -> Option<Instant> {
        self.seen(job)
            .iter()
            .filter(|s| s.host == host)
            .map(|s| s.at)
            .max()
    }

    /// The first sample at or after `after` in which `host` ran a container of `job`.
    pub fn first_running_on_after(&self, host: &str, job: &str, after: Instant) -> Option<Instant> {
        self.seen(job)
            .iter()
            .filter(|s| s.host == host && s.at >= after)
            .map(|s| s.at)
            .min()
    }

    /// The most containers of `task` (of `job`) that ran at once, over every host, in the
    /// samples at or after `after`.
    pub fn most_copies_after(&self, job: &str, task: &str, after: Instant) -> usize {
        let times = self.times.lock().unwrap().clone();
        let seen = self.seen(job);
        times
            .iter()
            .filter(|at| **at >= after)
            .map(|at| {
                seen.iter()
                    .filter(|s| s.at == *at && s.task == task)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// The fewest containers of `task` (of `job`) that ran at once, over every host, in the
    /// samples at or after `after`.
    pub fn fewest_copies_after(&self, job: &str, task: &str, after: Instant) -> usize {
        let times = self.times.lock().unwrap().clone();
        let seen = self.seen(job);
        times
            .iter()
            .filter(|at| **at >= after)
            .map(|at| {
                seen.iter()
                    .filter(|s| s.at == *at && s.task == task)
                    .count()
            })
            .min()
            .unwrap_or(0)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
