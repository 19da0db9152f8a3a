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

/// How often an agent reports resource use unless told otherwise.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Reads and reports until the report channel closes.
pub(crate) async fn report_usage<R: ContainerRuntime>(
    runtime: Arc<R>,
    cluster: String,
    host: String,
    interval: Duration,
    reports: mpsc::UnboundedSender<AgentReport>,
) {
    let engine_version = runtime
        .engine_version()
        .await
        .unwrap_or_else(|error| format!("unknown ({error})"));
    let system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let (mut system, mut disks) = match (system, Disks::new_with_refreshed_list()) {
        (Ok(system), Ok(disks)) => (system, disks),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "cannot read this host's resources; no stats are reported");
            return;
        }
    };
    let mut previous: HashMap<String, ContainerUsage> = HashMap::new();
    // CPU use is a difference between two reads: take a first one a moment before reporting.
    system.refresh_cpu_usage();
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(500))).await;
    loop {
        system.refresh_cpu_usage();
        system.refresh_memory();
        disks.refresh(true);
        let host_stats = host_stats(&system, &disks);
        let containers = container_stats(&*runtime, &cluster, &mut previous).await;
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

fn host_stats(system: &System, disks: &Disks) -> HostResources {
    let biggest = disks.iter().max_by_key(|disk| disk.total_space());
    let (disk_total_bytes, disk_used_bytes) = biggest
        .map(|disk| {
            let total = disk.total_space();
            (total, total.saturating_sub(disk.available_space()))
        })
        .unwrap_or((0, 0));
    HostResources {
        at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
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
