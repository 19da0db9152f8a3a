//! `coding-job sim`: many simulated hosts in one process, for measuring the control plane at a
//! scale this machine has no engines for. Each host is the real agent (`cj_agent::run_remote`,
//! the same link, reconcile loop and reports as `coding-job agent`) on its own [`SimRuntime`],
//! which has every image and runs every container as nothing until it is stopped. Only the
//! engine is simulated, so what the server sees and does is what it would with real hosts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cj_agent::{HostSize, RemoteOptions, run_remote};
use cj_net::TlsClient;
use cj_runtime::SimRuntime;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Hosts are started this many at a time, [`WAVE_PAUSE`] apart: a thousand dialling in the same
/// millisecond would all wait on the server's accept queue and welcome together.
const WAVE: usize = 50;
const WAVE_PAUSE: Duration = Duration::from_millis(50);
/// How often the running containers are counted (for `/metrics`), and how often the count is
/// said when it changed.
const COUNT_EVERY: Duration = Duration::from_millis(250);
const SAY_EVERY: Duration = Duration::from_secs(5);

pub struct SimOptions {
    pub server: String,
    pub token: Option<String>,
    pub tls: TlsClient,
    pub hosts: u32,
    pub size: HostSize,
    pub prefix: String,
    pub zones: u32,
    pub labels: Vec<(String, String)>,
}

/// Runs the simulated hosts until `shutdown`; their containers vanish with them.
pub async fn run_sim(
    options: SimOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let hosts = host_names(&options.prefix, options.hosts);
    println!(
        "coding-job sim: {} simulated hosts ({} .. {}), {} CPUs and {} each, linking to {}",
        hosts.len(),
        hosts.first().map(String::as_str).unwrap_or_default(),
        hosts.last().map(String::as_str).unwrap_or_default(),
        options.size.cpus,
        cj_spec::format_bytes(options.size.memory_bytes),
        options.server
    );
    println!("  engine: simulated (no Docker; the containers vanish with this process)");
    let (stop, stopped) = watch::channel(false);
    let mut agents = JoinSet::new();
    let mut engines = Vec::with_capacity(hosts.len());
    tokio::pin!(shutdown);
    for (index, wave) in hosts.chunks(WAVE).enumerate() {
        if index > 0 {
            tokio::select! {
                () = tokio::time::sleep(WAVE_PAUSE) => {}
                () = &mut shutdown => return stop_all(stop, agents).await,
            }
        }
        for name in wave {
            let engine = SimRuntime::new();
            engine.set_all_images_present(true);
            // Nobody reads a simulated host's calls back: keeping them would cost a thousand
            // hosts gigabytes.
            engine.keep_calls(0);
            engines.push(engine.clone());
            let remote = remote_options(&options, name, engines.len());
            let mut stopped = stopped.clone();
            agents.spawn(async move {
                let until_stopped = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                (
                    remote.host.clone(),
                    run_remote(Arc::new(engine), remote, until_stopped).await,
                )
            });
        }
    }
    println!(
        "  {} agents started; `coding-job hosts` shows them as they link",
        engines.len()
    );
    let mut said = None;
    let mut said_at = tokio::time::Instant::now();
    let mut count = tokio::time::interval(COUNT_EVERY);
    loop {
        tokio::select! {
            _ = count.tick() => {
                let running = running_containers(&engines);
                metrics::gauge!("coding_job_sim_containers_running").set(running as f64);
                if said != Some(running) && (said.is_none() || said_at.elapsed() >= SAY_EVERY) {
                    println!("  {running} containers running on {} hosts", engines.len());
                    said = Some(running);
                    said_at = tokio::time::Instant::now();
                }
            }
            Some(ended) = agents.join_next() => {
                // An agent ends early only for what retrying cannot fix (another cluster's
                // server, a bad URL): every other host would meet it too.
                if let Ok((host, Err(error))) = ended {
                    let _ = stop.send(true);
                    return Err(anyhow::anyhow!("simulated host {host}: {error}"));
                }
            }
            () = &mut shutdown => return stop_all(stop, agents).await,
        }
    }
}

async fn stop_all(
    stop: watch::Sender<bool>,
    mut agents: JoinSet<(String, Result<(), cj_agent::LinkError>)>,
) -> anyhow::Result<()> {
    let _ = stop.send(true);
    while agents.join_next().await.is_some() {}
    Ok(())
}

/// PREFIX0001 .. PREFIXN, zero-padded to N's digits so they sort as they count.
fn host_names(prefix: &str, count: u32) -> Vec<String> {
    let width = count.to_string().len().max(2);
    (1..=count)
        .map(|number| format!("{prefix}{number:0width$}"))
        .collect()
}

fn remote_options(options: &SimOptions, host: &str, number: usize) -> RemoteOptions {
    let mut labels: BTreeMap<String, String> = options.labels.iter().cloned().collect();
    if options.zones > 0 {
        let zone = (number - 1) % options.zones as usize + 1;
        labels.insert("zone".to_owned(), format!("zone-{zone}"));
    }
    RemoteOptions {
        server: options.server.clone(),
        token: options.token.clone(),
        host: host.to_owned(),
        advertise: None,
        labels,
        resync_interval: Duration::from_secs(10),
        stop_grace_seconds: 10,
        stats_interval: cj_agent::DEFAULT_STATS_INTERVAL,
        host_size: Some(options.size),
        tls: Some(options.tls.clone()),
        // A simulated engine unpacks nothing; the files are still fetched and checked.
        artifact_cache: cj_agent::ArtifactCacheConfig {
            dir: std::env::temp_dir().join("coding-job-sim-artifacts"),
            ..Default::default()
        },
    }
}

fn running_containers(engines: &[SimRuntime]) -> usize {
    engines.iter().map(SimRuntime::running_count).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_sort_as_they_count() {
        assert_eq!(host_names("sim-", 3), ["sim-01", "sim-02", "sim-03"]);
        let thousand = host_names("h", 1000);
        assert_eq!(thousand.first().unwrap(), "h0001");
        assert_eq!(thousand.last().unwrap(), "h1000");
        let mut sorted = thousand.clone();
        sorted.sort();
        assert_eq!(sorted, thousand);
    }
}
