//! Placement over simulated hosts, as `placement.rs` runs it on real ones: unpinned tasks spread
//! over the hosts and follow their constraints, and a drain moves a host's unpinned tasks away,
//! each new copy running before the old one stops, while its pinned tasks stay untouched.

use std::time::Duration;

use cj_runtime::{SimOp, labels};
use tokio::time::Instant;

use crate::support::{IMAGE, SimCluster, counts, label};

/// How long each call to an engine takes during the drain.
const LATENCY: Duration = Duration::from_millis(20);

/// `web` with `instances` unpinned tasks, `worker` (2 tasks) only where `slot: host-2`, and
/// `db` pinned to host-1.
fn shop(instances: usize) -> String {
    format!(
        "service: shop\njobs:\n\
         \x20 - name: web\n    image: {IMAGE}\n    instances: {instances}\n    command: [serve]\n\
         \x20 - name: worker\n    image: {IMAGE}\n    instances: 2\n    constraints: {{ slot: host-2 }}\n    command: [work]\n\
         \x20 - name: db\n    image: {IMAGE}\n    run_on_host: host-1\n    command: [store]\n"
    )
}

#[tokio::test(start_paused = true)]
async fn unpinned_tasks_spread_over_the_hosts_and_a_drain_moves_them_without_a_gap() {
    let cluster = SimCluster::start(&["host-1", "host-2", "host-3"], Duration::from_secs(30)).await;
    cluster.api.push("shop.yaml", &shop(6)).await;
    let up = cluster.api.operation("up", "shop").await;
    assert!(up.ok && up.changed.len() == 9, "{up:?}");
    assert_eq!(
        cluster.running_counts("web"),
        counts(&[("host-1", 2), ("host-2", 2), ("host-3", 2)])
    );
    assert_eq!(
        cluster.running_counts("worker"),
        counts(&[("host-1", 0), ("host-2", 2), ("host-3", 0)])
    );
    assert_eq!(
        cluster.running_counts("db"),
        counts(&[("host-1", 1), ("host-2", 0), ("host-3", 0)])
    );
    let db_before = cluster.running("host-1", "db");
    let web_on_1 = cluster.running("host-1", "web");

    for host in cluster.host_names() {
        cluster.engine(&host).set_latency(LATENCY);
    }
    let sampler = cluster.sampler();
    let drained_at = Instant::now();
    let drained = cluster.api.drain("drain", "host-1").await;
    assert!(drained.draining);
    assert_eq!(drained.moved.len(), 2, "{drained:?}");
    assert!(
        drained.moved.iter().all(|m| m.to != "host-1"),
        "{drained:?}"
    );
    assert_eq!(drained.pinned, ["shop/db/db"]);
    let moved_off = counts(&[("host-1", 0), ("host-2", 3), ("host-3", 3)]);
    cluster
        .until("web to leave host-1", Duration::from_secs(30), |cluster| {
            (cluster.running_counts("web") == moved_off).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Each moved task's new copy ran before its copy on host-1 was asked to stop (the engines'
    // calls take LATENCY, so the order shows on the clock), and the task always ran somewhere.
    for moved in &drained.moved {
        let task = moved.task.rsplit('/').next().unwrap();
        let new_copy = only_container(&cluster, &moved.to, task);
        let old_copy = web_on_1
            .iter()
            .find(|c| label(c, labels::TASK) == task)
            .map(|c| c.id.clone())
            .unwrap_or_else(|| panic!("{task} did not run on host-1: {web_on_1:#?}"));
        let new_running = call_at(&cluster, &moved.to, SimOp::Start, &new_copy) + LATENCY;
        let old_stopping = call_at(&cluster, "host-1", SimOp::Stop, &old_copy);
        assert!(
            new_running <= old_stopping,
            "{task}: the copy on host-1 was stopped {:?} before the one on {} ran",
            new_running - old_stopping,
            moved.to
        );
        assert_eq!(sampler.fewest_copies_after("web", task, drained_at), 1);
        assert_eq!(sampler.most_copies_after("web", task, drained_at), 2);
    }
    // The pinned task was not touched; the others stayed where they were.
    assert_eq!(cluster.running("host-1", "db"), db_before);
    assert_eq!(
        cluster.running_counts("worker"),
        counts(&[("host-1", 0), ("host-2", 2), ("host-3", 0)])
    );
    let history = cluster.api.history("shop/web").await;
    let moves = history.events.iter().filter(|e| e.kind == "moved").count();
    assert_eq!(moves, 2, "{:?}", history.events);

    // Undrained, it takes new tasks again; nothing moves back.
    let undrained = cluster.api.drain("undrain", "host-1").await;
    assert!(!undrained.draining);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(cluster.running_counts("web"), moved_off);
}

/// The id of the one container of `task` that `host`'s engine has, running or not.
fn only_container(cluster: &SimCluster, host: &str, task: &str) -> String {
    let all: Vec<_> = cluster
        .engine(host)
        .containers()
        .into_iter()
        .filter(|c| label(c, labels::TASK) == task)
        .collect();
    assert_eq!(all.len(), 1, "{host}: {all:#?}");
    all[0].id.clone()
}

/// When `host`'s engine was called to `op` `container`, the one time it was.
fn call_at(cluster: &SimCluster, host: &str, op: SimOp, container: &str) -> Instant {
    let calls: Vec<_> = cluster
        .engine(host)
        .calls_of(op)
        .into_iter()
        .filter(|call| call.target == container)
        .collect();
    assert_eq!(calls.len(), 1, "{op:?} {container} on {host}: {calls:?}");
    calls[0].at
}
