//! Rollouts across simulated hosts, as `releases.rs` and `rollout_hosts.rs` run them on real
//! ones: a rollout resumed by a new server on the same store, a manual gate passed with
//! `promote` or ended with `abort`, and automatic rollbacks when the new version's task dies or
//! fails its check. Each is judged by the versions the engines run.

use std::collections::BTreeMap;
use std::time::Duration;

use cj_api::{BatchState, Deployment, DeploymentStatus, OperationEvent};
use cj_runtime::{SimContainer, SimMatch, labels};

use crate::support::{IMAGE, SimCluster, eventually, label};

const HOSTS: [&str; 3] = ["host-1", "host-2", "host-3"];

/// `fleet`: one `web` task pinned to each host, at `release`, with `more` (YAML lines of the
/// job) and the update policy `update`.
fn fleet(release: u32, more: &str, update: &str) -> String {
    format!(
        "service: fleet\njobs:\n  - name: web\n    image: {IMAGE}\n    hosts: [host-1, host-2, host-3]\n    env: {{ RELEASE: \"{release}\" }}\n    command: [serve]\n{more}    update: {update}\n"
    )
}

/// A check that passes unless the engines are told to fail `[ready, RELEASE]`.
fn check(release: u32) -> String {
    format!(
        "    check: {{ exec: [ready, \"{release}\"], interval: 200ms, timeout: 500ms, retries: 2 }}\n"
    )
}

/// The one running container of `web` on each host; fails if a host runs none or several.
fn the_running(cluster: &SimCluster) -> BTreeMap<String, SimContainer> {
    HOSTS
        .iter()
        .map(|host| {
            let running = cluster.running(host, "web");
            assert_eq!(running.len(), 1, "{host} should run one web: {running:#?}");
            ((*host).to_owned(), running[0].clone())
        })
        .collect()
}

/// The version each host's engine runs `web` at, by host.
fn versions(cluster: &SimCluster) -> BTreeMap<String, String> {
    the_running(cluster)
        .into_iter()
        .map(|(host, c)| (host, label(&c, labels::VERSION).to_owned()))
        .collect()
}

fn all_at(version: &str) -> BTreeMap<String, String> {
    HOSTS
        .iter()
        .map(|h| ((*h).to_owned(), version.to_owned()))
        .collect()
}

/// The newest deployment of `fleet`.
async fn deployment(cluster: &SimCluster) -> Deployment {
    newest_deployment(cluster).await.expect("a deployment")
}

async fn newest_deployment(cluster: &SimCluster) -> Option<Deployment> {
    cluster.api.deployments("fleet").await.into_iter().next()
}

/// The status the stream last said the deployment had.
fn last_status(events: &[OperationEvent]) -> Option<DeploymentStatus> {
    events.iter().rev().find_map(|event| match event {
        OperationEvent::Deployment { status, .. } => Some(*status),
        _ => None,
    })
}

/// Waits until no engine runs a container of version 2.
async fn version_1_alone(cluster: &SimCluster) {
    cluster
        .until("version 1 alone to run", Duration::from_secs(10), |c| {
            let v2_runs = c
                .running_everywhere("web")
                .iter()
                .any(|(_, c)| label(c, labels::VERSION) == "2");
            (!v2_runs).then_some(())
        })
        .await
}

/// Three hosts running `fleet` at version 1 (brought up), and version 2 pushed.
async fn fleet_moving_to_2(v1: &str, v2: &str) -> SimCluster {
    let cluster = SimCluster::start(&HOSTS, Duration::from_secs(30)).await;
    cluster.api.push("fleet.yaml", v1).await;
    let up = cluster.api.operation("up", "fleet").await;
    assert!(up.ok && up.changed.len() == 3, "{up:?}");
    assert_eq!(versions(&cluster), all_at("1"));
    cluster.api.push("fleet.yaml", v2).await;
    cluster
}

#[tokio::test(start_paused = true)]
async fn a_rollout_resumes_on_a_new_server_after_a_kill_and_redoes_no_batch() {
    let update = "{ batch_size: 1, min_healthy_time: 2s, healthy_deadline: 20s }";
    let (v1, v2) = (fleet(1, &check(1), update), fleet(2, &check(2), update));
    let mut cluster = fleet_moving_to_2(&v1, &v2).await;

    let api = cluster.api.clone();
    let follower = tokio::spawn(async move { api.deploy("rolling-update", "fleet").await });
    let at_kill = eventually(
        "the first batch to be done",
        Duration::from_secs(30),
        || {
            let cluster = &cluster;
            async move {
                let record = newest_deployment(cluster).await?;
                (record.jobs[0].next_batch >= 1).then_some(record)
            }
        },
    )
    .await;
    assert_eq!(at_kill.status, DeploymentStatus::Running, "{at_kill:?}");
    let moved_before_kill = the_running(&cluster)["host-1"].clone();
    assert_eq!(label(&moved_before_kill, labels::VERSION), "2");

    cluster.restart_server().await;
    // The follower's answer ended with its server, before the rollout did.
    let followed = follower.await.unwrap();
    assert!(
        !followed
            .iter()
            .any(|event| matches!(event, OperationEvent::Summary(_))),
        "{followed:?}"
    );

    let record = eventually(
        "the resumed rollout to end",
        Duration::from_secs(60),
        || {
            let cluster = &cluster;
            async move {
                let record = deployment(cluster).await;
                (record.status != DeploymentStatus::Running).then_some(record)
            }
        },
    )
    .await;
    assert_eq!(record.status, DeploymentStatus::Succeeded, "{record:?}");
    assert!(
        record.jobs[0]
            .batches
            .iter()
            .all(|batch| batch.state == BatchState::Healthy),
        "{record:?}"
    );
    assert_eq!(versions(&cluster), all_at("2"));
    // The batch done before the kill was not done again: the same container, started once.
    let now = &the_running(&cluster)["host-1"];
    assert_eq!(now.id, moved_before_kill.id);
    assert_eq!(now.starts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_manual_gate_holds_the_rest_until_promote() {
    let update = "{ batch_size: 2, canary: 1, manual_gate: true, healthy_deadline: 10s }";
    let (v1, v2) = (fleet(1, &check(1), update), fleet(2, &check(2), update));
    let cluster = fleet_moving_to_2(&v1, &v2).await;

    let waiting = cluster.api.deploy("rolling-update", "fleet").await;
    assert_eq!(
        last_status(&waiting),
        Some(DeploymentStatus::AwaitingPromotion),
        "{waiting:?}"
    );
    // Only the canary moved, and nothing else does while the gate is closed.
    let canary_only = BTreeMap::from([
        ("host-1".to_owned(), "2".to_owned()),
        ("host-2".to_owned(), "1".to_owned()),
        ("host-3".to_owned(), "1".to_owned()),
    ]);
    assert_eq!(versions(&cluster), canary_only);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(versions(&cluster), canary_only);
    let record = deployment(&cluster).await;
    assert_eq!(record.status, DeploymentStatus::AwaitingPromotion);

    let promoted = cluster.api.deploy("promote", "fleet").await;
    assert_eq!(
        last_status(&promoted),
        Some(DeploymentStatus::Succeeded),
        "{promoted:?}"
    );
    assert_eq!(versions(&cluster), all_at("2"));
    assert_eq!(
        deployment(&cluster).await.status,
        DeploymentStatus::Succeeded
    );
}

#[tokio::test(start_paused = true)]
async fn abort_at_the_gate_puts_the_canary_back_and_touches_nothing_else() {
    let update = "{ canary: 1, manual_gate: true, healthy_deadline: 10s }";
    let (v1, v2) = (fleet(1, &check(1), update), fleet(2, &check(2), update));
    let cluster = fleet_moving_to_2(&v1, &v2).await;
    let before = the_running(&cluster);

    let waiting = cluster.api.deploy("rolling-update", "fleet").await;
    assert_eq!(
        last_status(&waiting),
        Some(DeploymentStatus::AwaitingPromotion)
    );
    assert_eq!(versions(&cluster)["host-1"], "2");
    let aborted = cluster.api.deploy("abort", "fleet").await;
    assert_eq!(
        last_status(&aborted),
        Some(DeploymentStatus::Aborted),
        "{aborted:?}"
    );
    version_1_alone(&cluster).await;
    assert_eq!(versions(&cluster), all_at("1"));
    let after = the_running(&cluster);
    for host in ["host-2", "host-3"] {
        assert_eq!(after[host], before[host], "{host} was touched");
    }
}

/// Version 2 moved to on three hosts fails on the first: the rollout stops there, puts it back,
/// and the hosts it never reached run what they ran before, untouched.
async fn a_failing_version_2_is_rolled_back(cluster: &SimCluster, expected_reason: &str) {
    let before = the_running(cluster);
    let events = cluster.api.deploy("rolling-update", "fleet").await;
    assert_eq!(
        last_status(&events),
        Some(DeploymentStatus::RolledBack),
        "{events:?}"
    );
    let record = deployment(cluster).await;
    assert_eq!(record.status, DeploymentStatus::RolledBack);
    let message = record.message.clone().unwrap_or_default();
    assert!(
        message.contains("web-host-1") && message.contains(expected_reason),
        "{message}"
    );
    let states: Vec<BatchState> = record.jobs[0].batches.iter().map(|b| b.state).collect();
    assert_eq!(
        states,
        [BatchState::Failed, BatchState::Pending, BatchState::Pending],
        "only the first host was moved: {record:?}"
    );
    version_1_alone(cluster).await;
    assert_eq!(versions(cluster), all_at("1"));
    // The first host did make a version 2 container.
    let made_v2 = cluster
        .engine("host-1")
        .containers()
        .iter()
        .any(|c| label(c, labels::VERSION) == "2");
    assert!(made_v2);
    let after = the_running(cluster);
    for host in ["host-2", "host-3"] {
        assert_eq!(after[host], before[host], "{host} was touched");
        assert_eq!(cluster.engine(host).containers().len(), 1, "{host}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_version_whose_task_dies_is_rolled_back_automatically() {
    let update = "{ batch_size: 1, healthy_deadline: 10s, auto_rollback: true }";
    let (v1, v2) = (fleet(1, "", update), fleet(2, "", update));
    let cluster = fleet_moving_to_2(&v1, &v2).await;
    for host in HOSTS {
        let version_2 = SimMatch::Label(labels::VERSION.into(), "2".into());
        cluster
            .engine(host)
            .die_after(version_2, 3, Duration::from_millis(200));
    }
    a_failing_version_2_is_rolled_back(&cluster, "exit").await;
}

#[tokio::test(start_paused = true)]
async fn a_new_version_failing_its_check_is_rolled_back_automatically() {
    let update = "{ batch_size: 1, healthy_deadline: 5s, auto_rollback: true }";
    let (v1, v2) = (fleet(1, &check(1), update), fleet(2, &check(2), update));
    let cluster = fleet_moving_to_2(&v1, &v2).await;
    for host in HOSTS {
        cluster
            .engine(host)
            .set_exec(&["ready", "2"], 1, "not ready");
    }
    a_failing_version_2_is_rolled_back(&cluster, "unhealthy").await;
}
