//! Rollouts across several real hosts: a `coding-job server`, and one agent and one Docker engine
//! per host (see `support::cluster`). A rolling update moves one host at a time, each batch
//! gated on its check; a check that fails on the first host rolls the rollout back on every
//! host, and hosts the rollout never reached keep their containers untouched.

mod support;

use cj_runtime::labels;
use support::cluster::Cluster;
use support::{IMAGE, describe, free_port, nanos};

const HOSTS: [&str; 3] = ["host-1", "host-2", "host-3"];
const SERVICE: &str = "fleet";
const JOB: &str = "web";

/// The file of `fleet`: one task per host, each an httpd serving `served_port` and checked over
/// HTTP on `checked_port`. `release` changes the configuration from one version to the next.
/// Each host has its own network namespace, so every task can use the same port.
fn fleet_yaml(release: u32, checked_port: u16, served_port: u16) -> String {
    format!(
        r#"service: {SERVICE}
jobs:
  - name: {JOB}
    image: {IMAGE}
    hosts: [host-1, host-2, host-3]
    port: {checked_port}
    env: {{ RELEASE: "{release}" }}
    command: [httpd, -f, -p, "{served_port}", -h, /srv/www]
    check: {{ http: /health, interval: 200ms, timeout: 500ms, retries: 2 }}
    update: {{ batch_size: 1, healthy_deadline: 5s, auto_rollback: true }}
"#
    )
}

/// One container of the job in a host's engine, as that engine sees it.
#[derive(Debug, Clone, PartialEq)]
struct Container {
    id: String,
    running: bool,
    started_at: String,
    finished_at: String,
    version: String,
    config_hash: String,
}

/// Every container of the job in `host`'s own engine, running or not.
fn containers_on(cluster: &Cluster, host: &str) -> Vec<Container> {
    let engine = cluster.bed.host(host);
    let template = format!(
        "{{{{.Id}}}} {{{{.State.Running}}}} {{{{.State.StartedAt}}}} {{{{.State.FinishedAt}}}} \
         {{{{index .Config.Labels \"{}\"}}}} {{{{index .Config.Labels \"{}\"}}}}",
        labels::VERSION,
        labels::CONFIG_HASH
    );
    let ids = engine.docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={}={JOB}", labels::JOB),
    ]);
    ids.lines()
        .map(|id| {
            let line = engine.docker(&["inspect", "-f", &template, id]);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [id, running, started_at, finished_at, version, config_hash] = fields[..] else {
                panic!("unexpected docker inspect output on {host}: {line:?}")
            };
            Container {
                id: id.to_owned(),
                running: running == "true",
                started_at: started_at.to_owned(),
                finished_at: finished_at.to_owned(),
                version: version.to_owned(),
                config_hash: config_hash.to_owned(),
            }
        })
        .collect()
}

/// The one running container of the job on `host`; fails if there is none or more than one.
fn the_running_container(cluster: &Cluster, host: &str) -> Container {
    let all = containers_on(cluster, host);
    let running: Vec<&Container> = all.iter().filter(|c| c.running).collect();
    match running[..] {
        [only] => only.clone(),
        _ => panic!("{host} should run exactly one container of {JOB}: {all:#?}"),
    }
}

fn deployment(cluster: &Cluster) -> cj_api::Deployment {
    let all: Vec<cj_api::Deployment> =
        serde_json::from_value(cluster.server.json(&["deployments", SERVICE, "--json"])).unwrap();
    all.into_iter().next().expect("a deployment")
}

/// Pushes version 1 and brings it up: one healthy task on each host.
fn fleet_at_version_1(cluster: &Cluster, port: u16) {
    cluster
        .server
        .push_yaml("fleet.yaml", &fleet_yaml(1, port, port));
    let up = cluster.server.ok(&["up", SERVICE]);
    assert!(up.contains("3 started"), "{up}");
    for host in HOSTS {
        assert_eq!(the_running_container(cluster, host).version, "1");
    }
}

#[test]
fn a_rollout_across_three_hosts_moves_one_host_at_a_time_gated_on_checks() {
    let cluster = Cluster::start(HOSTS.len());
    let port = free_port();
    fleet_at_version_1(&cluster, port);
    let before: Vec<Container> = HOSTS
        .iter()
        .map(|host| the_running_container(&cluster, host))
        .collect();

    cluster
        .server
        .push_yaml("fleet.yaml", &fleet_yaml(2, port, port));
    let output = cluster.server.cli(&["rolling-update", SERVICE]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("succeeded"), "{stdout}");

    // Each host's own engine runs exactly one container of the job, made for version 2.
    for (host, old) in HOSTS.iter().zip(&before) {
        let new = the_running_container(&cluster, host);
        assert_eq!(new.version, "2", "{host}: {new:?}");
        assert_ne!(new.config_hash, old.config_hash, "{host}: {new:?}");
        assert_ne!(new.id, old.id, "{host} got a fresh container");
    }
    let status = cluster.server.status(SERVICE);
    assert_eq!(status.len(), HOSTS.len(), "{status:?}");
    for task in &status {
        assert_eq!(
            (
                task.state.as_str(),
                task.health.as_deref(),
                task.version,
                task.actual_host.as_deref()
            ),
            (
                "running",
                Some("healthy"),
                Some(2),
                Some(task.host.as_str())
            ),
            "{task:?}"
        );
    }

    // Three batches of one host each, in order, every one healthy.
    let record = deployment(&cluster);
    assert_eq!(
        record.status,
        cj_api::DeploymentStatus::Succeeded,
        "{record:?}"
    );
    let batches = &record.jobs[0].batches;
    let tasks: Vec<Vec<String>> = batches.iter().map(|b| b.tasks.clone()).collect();
    assert_eq!(
        tasks,
        HOSTS.map(|host| vec![format!("{JOB}-{host}")]),
        "{record:?}"
    );
    assert!(
        batches
            .iter()
            .all(|b| b.state == cj_api::BatchState::Healthy),
        "{batches:?}"
    );
    assert_eq!(record.jobs[0].next_batch, 3);

    // Never two hosts down at once: the batches ran one after the other, and each host was down
    // (its old container stopped, its new one not yet healthy) only inside its own batch.
    let window = |batch: &cj_api::Batch| {
        let started = nanos(batch.started.as_deref().expect("a started batch"));
        let finished = nanos(batch.finished.as_deref().expect("a finished batch"));
        (started, finished)
    };
    for pair in batches.windows(2) {
        assert!(
            window(&pair[0]).1 <= window(&pair[1]).0,
            "batches overlapped: {pair:?}"
        );
    }
    for ((host, old), batch) in HOSTS.iter().zip(&before).zip(batches) {
        let (started, finished) = window(batch);
        let all = containers_on(&cluster, host);
        let stopped = all
            .iter()
            .find(|c| c.id == old.id)
            .unwrap_or_else(|| panic!("{host}'s old container is gone: {all:#?}"));
        assert!(!stopped.running, "{host}: {stopped:?}");
        let new = the_running_container(&cluster, host);
        assert!(
            nanos(&stopped.finished_at) >= started && nanos(&new.started_at) <= finished,
            "{host} was down outside its batch {batch:?}: old {stopped:?}, new {new:?}"
        );
    }
}

#[test]
fn a_failing_check_on_one_host_rolls_the_rollout_back_on_every_host() {
    let cluster = Cluster::start(HOSTS.len());
    let (port, other_port) = (free_port(), free_port());
    fleet_at_version_1(&cluster, port);
    let before: Vec<Vec<Container>> = HOSTS
        .iter()
        .map(|host| containers_on(&cluster, host))
        .collect();

    // Version 2 serves another port than the one checked: its first batch never gets healthy.
    cluster
        .server
        .push_yaml("fleet.yaml", &fleet_yaml(2, port, other_port));
    let output = cluster.server.cli(&["rolling-update", SERVICE]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("rolled-back"), "{}", describe(&output));

    let record = deployment(&cluster);
    assert_eq!(
        record.status,
        cj_api::DeploymentStatus::RolledBack,
        "{record:?}"
    );
    let message = record.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("{JOB}-host-1: unhealthy")) && message.contains("rolled back"),
        "{message}"
    );
    let states: Vec<cj_api::BatchState> = record.jobs[0].batches.iter().map(|b| b.state).collect();
    assert_eq!(
        states,
        [
            cj_api::BatchState::Failed,
            cj_api::BatchState::Pending,
            cj_api::BatchState::Pending
        ],
        "only the first host was moved: {record:?}"
    );

    // Every host runs version 1 again, healthy, and no version 2 container runs anywhere.
    for host in HOSTS {
        let running = the_running_container(&cluster, host);
        assert_eq!(running.version, "1", "{host}: {running:?}");
        let all = containers_on(&cluster, host);
        assert!(
            !all.iter().any(|c| c.running && c.version == "2"),
            "{host}: {all:#?}"
        );
    }
    let status = cluster.server.status(SERVICE);
    assert_eq!(status.len(), HOSTS.len(), "{status:?}");
    for task in &status {
        assert_eq!(
            (task.state.as_str(), task.health.as_deref(), task.version),
            ("running", Some("healthy"), Some(1)),
            "{task:?}"
        );
    }

    // The failed batch did reach host-1: its engine made a version 2 container, now stopped.
    let host_1 = containers_on(&cluster, "host-1");
    assert!(
        host_1.iter().any(|c| c.version == "2" && !c.running),
        "{host_1:#?}"
    );
    // Hosts the rollout never reached keep their version 1 container exactly as it was: the
    // same container, never restarted, and nothing else beside it.
    for (host, before) in HOSTS.iter().zip(&before).skip(1) {
        assert_eq!(&containers_on(&cluster, host), before, "{host} was touched");
    }
}
