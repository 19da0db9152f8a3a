//! What really runs, sampled: one thread per host asks that host's own engine every 100 ms for
//! the running containers of a job, so a test judges by the engines, not by what the server
//! believes. A sample is the time it was taken and the ids that were running.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::testbed::Testbed;

pub const EVERY: Duration = Duration::from_millis(100);

pub struct Sampler {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub host: String,
    pub running: Vec<String>,
}

impl Sampler {
    /// Samples the running containers of `job` on every host of `bed`.
    pub fn start(bed: &Testbed, job: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let threads = bed
            .hosts
            .iter()
            .map(|host| {
                let (stop, samples) = (stop.clone(), samples.clone());
                let (name, docker_host) = (host.name.clone(), host.docker_host.clone());
                let filter = format!("label=coding-job.job={job}");
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let began = Instant::now();
                        let output = Command::new("docker")
                            .args(["-H", &docker_host, "ps", "-q", "--no-trunc"])
                            .args(["--filter", &filter, "--filter", "status=running"])
                            .output();
                        if let Ok(output) = output
                            && output.status.success()
                        {
                            let running = String::from_utf8_lossy(&output.stdout)
                                .lines()
                                .map(str::to_owned)
                                .collect();
                            samples.lock().unwrap().push(Sample {
                                at: began,
                                host: name.clone(),
                                running,
                            });
                        }
                        std::thread::sleep(EVERY.saturating_sub(began.elapsed()));
                    }
                })
            })
            .collect();
        Sampler {
            stop,
            threads,
            samples,
        }
    }

    /// Every sample so far, in the order taken.
    pub fn samples(&self) -> Vec<Sample> {
        let mut samples = self.samples.lock().unwrap().clone();
        samples.sort_by_key(|sample| sample.at);
        samples
    }

    /// Whether `host`'s latest sample shows a container of the job running (`None`: no sample
    /// yet).
    pub fn runs_now(&self, host: &str) -> Option<bool> {
        let samples = self.samples.lock().unwrap();
        let latest = samples
            .iter()
            .filter(|sample| sample.host == host)
            .max_by_key(|s| s.at)?;
        Some(!latest.running.is_empty())
    }

    /// The last moment `host` was seen running any container of the job, if ever.
    pub fn last_running_on(&self, host: &str) -> Option<Instant> {
        self.samples()
            .into_iter()
            .filter(|sample| sample.host == host && !sample.running.is_empty())
            .map(|sample| sample.at)
            .max()
    }

    /// The first moment `host` was seen running a container of the job after `after`.
    pub fn first_running_on_after(&self, host: &str, after: Instant) -> Option<Instant> {
        self.samples()
            .into_iter()
            .filter(|sample| sample.host == host && sample.at > after && !sample.running.is_empty())
            .map(|sample| sample.at)
            .min()
    }

    /// The most containers of the job seen running at once over all hosts, after `after`
    /// (each host's latest sample at each moment).
    pub fn most_running_after(&self, after: Instant) -> usize {
        let samples = self.samples();
        let mut latest: std::collections::BTreeMap<String, usize> = Default::default();
        let mut most = 0;
        for sample in samples {
            latest.insert(sample.host.clone(), sample.running.len());
            if sample.at > after {
                most = most.max(latest.values().sum());
            }
        }
        most
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
