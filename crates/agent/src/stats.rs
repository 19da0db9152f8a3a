//! What the host and each of this agent's running containers use (seed 000: the server shows
//! every host's resources and Docker stats). Read at start and then every interval, and sent to
//! the server as [`AgentReport::Stats`]; the host's reading is the API's [`HostResources`], as
//! `hosts` shows it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cj_api::HostResources;
use cj_api::agent::{AgentReport, ContainerStats};
use cj_runtime::{ContainerRuntime, ContainerState, ContainerUsage, labels};
use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};
use tokio::sync::mpsc;

use crate::observe::task_key;

/// What a host has to give, as a simulated host reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSize {
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// How often an agent reports resource use unless told otherwise.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Reads and reports until the report channel closes. A simulated host (`host_size`) reports
/// its given size instead of the machine's, and what its containers use as its own use.
pub(crate) async fn report_usage<R: ContainerRuntime>(
    runtime: Arc<R>,
    cluster: String,
    host: String,
    interval: Duration,
    host_size: Option<HostSize>,
    reports: mpsc::UnboundedSender<AgentReport>,
) {
    let engine_version = runtime
        .engine_version()
        .await
        .unwrap_or_else(|error| format!("unknown ({error})"));
    let mut machine = match host_size {
        Some(_) => None,
        None => match Machine::open().await {
            Some(machine) => Some(machine),
            None => return,
        },
    };
    let mut previous: HashMap<String, ContainerUsage> = HashMap::new();
    loop {
        let containers = container_stats(&*runtime, &cluster, &mut previous).await;
        let host_stats = match (&mut machine, host_size) {
            (Some(machine), _) => machine.read(),
            (None, Some(size)) => simulated_host(size, &containers),
            (None, None) => unreachable!("a host without a size reads the machine"),
        };
        let report = AgentReport::Stats {
            host: host.clone(),
            engine_version: engine_version.clone(),
            host_stats,
            containers,
        };
        if reports.send(report).is_err() {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

/// This machine's CPUs, memory and disks, as sysinfo reads them.
struct Machine {
    system: System,
    disks: Disks,
}

impl Machine {
    /// Opens the readers and takes a first CPU reading (CPU use is a difference between two
    /// reads); `None`, said in the log, where the machine cannot be read.
    async fn open() -> Option<Machine> {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let (mut system, disks) = match (system, Disks::new_with_refreshed_list()) {
            (Ok(system), Ok(disks)) => (system, disks),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "cannot read this host's resources; no stats are reported");
                return None;
            }
        };
        system.refresh_cpu_usage();
        tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(500)))
            .await;
        Some(Machine { system, disks })
    }

    fn read(&mut self) -> HostResources {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks.refresh(true);
        host_stats(&self.system, &self.disks)
    }
}

/// A simulated host: its given size, using what its containers use, with no disk.
fn simulated_host(size: HostSize, containers: &[ContainerStats]) -> HostResources {
    HostResources {
        at: now_rfc3339(),
        cpus: size.cpus,
        cpu_percent: containers
            .iter()
            .filter_map(|container| container.cpu_percent)
            .sum::<f64>()
            / f64::from(size.cpus.max(1)),
        memory_total_bytes: size.memory_bytes,
        memory_used_bytes: containers.iter().map(|c| c.memory_bytes).sum(),
        disk_total_bytes: 0,
        disk_used_bytes: 0,
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn host_stats(system: &System, disks: &Disks) -> HostResources {
    let biggest = disks.iter().max_by_key(|disk| disk.total_space());
    let (disk_total_bytes, disk_used_bytes) = biggest
        .map(|disk| {
            let total = disk.total_space();
            (total, total.saturating_sub(disk.available_space()))
        })
        .unwrap_or((0, 0));
    HostResources {
        at: now_rfc3339(),
        cpus: system.cpus().len() as u32,
        cpu_percent: f64::from(system.global_cpu_usage()),
        memory_total_bytes: system.total_memory(),
        memory_used_bytes: system.used_memory(),
        disk_total_bytes,
        disk_used_bytes,
    }
}

/// The use of every running container of the cluster; `previous` keeps the last read of each
/// for the CPU share (and forgets containers that are gone).
async fn container_stats<R: ContainerRuntime>(
    runtime: &R,
    cluster: &str,
    previous: &mut HashMap<String, ContainerUsage>,
) -> Vec<ContainerStats> {
    let containers = match runtime.list(&[(labels::CLUSTER, cluster)]).await {
        Ok(containers) => containers,
        Err(error) => {
            tracing::warn!(%error, "cannot list containers for their stats");
            return Vec::new();
        }
    };
    let running: Vec<_> = containers
        .into_iter()
        .filter(|container| container.state == ContainerState::Running)
        .filter_map(|container| Some((task_key(&container.labels)?, container.id)))
        .collect();
    let reads = futures_util::future::join_all(
        running
            .iter()
            .map(|(_, id)| async move { runtime.usage(id).await }),
    )
    .await;
    let mut seen = HashMap::new();
    let mut stats = Vec::new();
    for ((key, id), read) in running.into_iter().zip(reads) {
        let Ok(usage) = read else { continue };
        let cpu_percent = previous
            .get(&id)
            .map(|earlier| usage.cpu_percent_since(earlier));
        stats.push(ContainerStats {
            key,
            container_id: id.clone(),
            cpu_percent,
            memory_bytes: usage.memory_bytes,
            memory_limit_bytes: usage.memory_limit_bytes,
        });
        seen.insert(id, usage);
    }
    *previous = seen;
    stats
}
