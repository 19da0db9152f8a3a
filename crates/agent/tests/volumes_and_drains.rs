//! A real agent against the real Docker engine, driven through its link by a stand-in server
//! (`support`): volumes seeded before the first start and kept across replacements, a seed that
//! cannot be read, removing an environment's leftovers (`RemoveEnv`), and a routed task's
//! container reported leaving before it is stopped (timed from the reports, as a server sees
//! them).

mod support;

use std::time::Duration;

use cj_runtime::{ContainerRuntime, CreateRequest, DockerRuntime, LogChunk, LogsOptions, labels};
use coding_job_agent::link::{AgentRequest, Outcome, RemoveEnvOutcome};
use coding_job_agent::{AgentReport, ContainerEventKind, Phase, TaskKey};
use futures_util::StreamExt;
use support::{
    Cleanup, FakeServer, assignment, ensure_image, is_snapshot_with, running, task, unique_cluster,
};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(30);

fn phase_of<'a>(report: &'a AgentReport, task: &TaskKey) -> Option<&'a Phase> {
    match report {
        AgentReport::Phase { key, phase, .. } if key == task => Some(phase),
        _ => None,
    }
}

/// Waits until the container's output so far contains `expected`.
async fn wait_for_output(runtime: &DockerRuntime, id: &str, expected: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let mut output = Vec::new();
        let mut logs = runtime.logs(id, LogsOptions::default());
        while let Some(Ok(LogChunk::Stdout(bytes) | LogChunk::Stderr(bytes))) = logs.next().await {
            output.extend_from_slice(&bytes);
        }
        let output = String::from_utf8_lossy(&output);
        if output.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never printed {expected:?}; it printed {output:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn volume_names(runtime: &DockerRuntime, cluster: &str) -> Vec<String> {
    let mut names: Vec<String> = runtime
        .list_volumes(&[(labels::CLUSTER, cluster)])
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    names.sort();
    names
}

/// Waits for two snapshots from `from` on: the second comes from a pass that began after
/// everything sent before `from` was read.
async fn settle(server: &mut FakeServer, from: usize) {
    let (first, _) = server
        .wait_for(from, STEP, "after the change", |r| {
            is_snapshot_with(r, |_| true)
        })
        .await;
    server
        .wait_for(first + 1, STEP, "of a later pass", |r| {
            is_snapshot_with(r, |_| true)
        })
        .await;
}

#[tokio::test]
async fn a_new_volume_is_seeded_before_the_first_start_and_kept_across_replacements() {
    ensure_image();
    let cluster = unique_cluster();
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
    };
    tokio::time::timeout(DEADLINE, seeding(&cluster))
        .await
        .expect("the test ran past its deadline");
}

async fn seeding(cluster: &str) {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("hello.txt"), "seeded\n").unwrap();
    let tarball = dir.path().join("seed.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&content)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());

    let runtime = DockerRuntime::connect().await.unwrap();
    let mut server = FakeServer::start(cluster).await;
    let with_volume = |spec: &mut cj_spec::TaskSpec, seed: &str| {
        spec.volumes = vec![cj_spec::VolumeSpec {
            name: "data".into(),
            mount: "/data".into(),
            seed: Some(seed.into()),
        }];
    };
    let (db, mut v1) = task(
        "e",
        "db",
        "cat /data/hello.txt; echo v1 > /data/written-by-v1; exec sleep 3600",
    );
    with_volume(&mut v1, tarball.to_str().unwrap());
    let (bad, mut bad_spec) = task("e", "bad", "exec sleep 3600");
    with_volume(&mut bad_spec, "/nonexistent/seed.tar.gz");
    let db_v1 = assignment(db.clone(), v1);
    server
        .assign(vec![db_v1.clone(), assignment(bad.clone(), bad_spec)])
        .await;

    let (seeding, _) = server
        .wait_for(
            0,
            STEP,
            "seeding db's volume",
            |r| matches!(phase_of(r, &db), Some(Phase::Seeding { volume }) if volume == "data"),
        )
        .await;
    let (at, _) = server
        .wait_for(seeding, STEP, "db running", |r| {
            running(r, &db, &db_v1.config_hash).is_some()
        })
        .await;
    let first = running(&server.reports[at].1, &db, &db_v1.config_hash).unwrap();
    wait_for_output(&runtime, &first, "seeded").await;

    let reason = "seed /nonexistent/seed.tar.gz for volume data: No such file or directory";
    let (failed, _) = server
        .wait_for(
            0,
            STEP,
            "bad's seed failing",
            |r| matches!(phase_of(r, &bad), Some(Phase::Failed { reason: said }) if said == reason),
        )
        .await;
    // Waiting for the next attempt still says why.
    server
        .wait_for(failed, STEP, "bad backing off from its seed", |r| {
            matches!(phase_of(r, &bad), Some(Phase::BackingOff { reason: said, .. }) if said == reason)
        })
        .await;
    // Without `bad`, nothing is left of its attempts: no container and, above all, no volume
    // that a later attempt would take as seeded.
    let from = server.reports.len();
    server.assign(vec![db_v1.clone()]).await;
    settle(&mut server, from).await;
    let volume = format!("data_db_s_e_{}", &cluster[..8]);
    assert_eq!(
        volume_names(&runtime, cluster).await,
        std::slice::from_ref(&volume)
    );
    let bad_containers = runtime
        .list(&[(labels::CLUSTER, cluster), (labels::TASK, "bad")])
        .await
        .unwrap();
    assert!(bad_containers.is_empty(), "{bad_containers:?}");

    // A new configuration gets a new container on the same volume, which is not seeded again.
    let (_, v2) = task("e", "db", "cat /data/written-by-v1; exec sleep 3600");
    let mut v2 = v2;
    with_volume(&mut v2, tarball.to_str().unwrap());
    let db_v2 = assignment(db.clone(), v2);
    let from = server.reports.len();
    server.assign(vec![db_v2.clone()]).await;
    let (at, _) = server
        .wait_for(from, STEP, "db's replacement running", |r| {
            running(r, &db, &db_v2.config_hash).is_some()
        })
        .await;
    let second = running(&server.reports[at].1, &db, &db_v2.config_hash).unwrap();
    assert_ne!(first, second);
    wait_for_output(&runtime, &second, "v1").await;
    assert!(
        !server.reports[from..]
            .iter()
            .any(|(_, r)| matches!(phase_of(r, &db), Some(Phase::Seeding { .. }))),
        "an existing volume is never seeded again"
    );

    // The task gone, its volume stays: only removing the environment removes it.
    let from = server.reports.len();
    server.assign(Vec::new()).await;
    server
        .wait_for(from, STEP, "db removed", |r| {
            matches!(phase_of(r, &db), Some(Phase::Removed))
        })
        .await;
    assert_eq!(volume_names(&runtime, cluster).await, [volume]);
}

#[tokio::test]
async fn remove_env_removes_an_environments_leftovers_and_its_volumes_unless_kept() {
    ensure_image();
    let cluster = unique_cluster();
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
    };
    tokio::time::timeout(DEADLINE, remove_env(&cluster))
        .await
        .expect("the test ran past its deadline");
}

async fn remove_env(cluster: &str) {
    let runtime = DockerRuntime::connect().await.unwrap();
    let mut server = FakeServer::start(cluster).await;
    let volume = |spec: &mut cj_spec::TaskSpec| {
        spec.volumes = vec![cj_spec::VolumeSpec {
            name: "data".into(),
            mount: "/data".into(),
            seed: None,
        }];
    };
    let (web, mut web_spec) = task("pr-1", "web", "exec sleep 3600");
    volume(&mut web_spec);
    let (other, mut other_spec) = task("prod", "other", "exec sleep 3600");
    volume(&mut other_spec);
    let web_assignment = assignment(web.clone(), web_spec.clone());
    let other_assignment = assignment(other.clone(), other_spec);
    server
        .assign(vec![web_assignment.clone(), other_assignment.clone()])
        .await;
    for (key, hash) in [
        (&web, &web_assignment.config_hash),
        (&other, &other_assignment.config_hash),
    ] {
        server
            .wait_for(0, STEP, "running", |r| running(r, key, hash).is_some())
            .await;
    }
    // A container of the environment that is no task's (the loop never sees it).
    let stray = format!("stray_{cluster}");
    runtime
        .create(&CreateRequest {
            name: stray.clone(),
            image: support::IMAGE.into(),
            task: web_spec,
            labels: [
                (labels::CLUSTER.to_owned(), cluster.to_owned()),
                (labels::ENV.to_owned(), "pr-1".to_owned()),
            ]
            .into(),
            mounts: Vec::new(),
        })
        .await
        .unwrap();
    let web_volume = format!("data_web_s_pr-1_{}", &cluster[..8]);
    let other_volume = format!("data_other_s_prod_{}", &cluster[..8]);

    let ask = async |server: &mut FakeServer, keep_volumes: bool| {
        let request = AgentRequest::RemoveEnv {
            env: "pr-1".into(),
            keep_volumes,
        };
        match server.ask(request, STEP).await {
            Outcome::Ok(value) => serde_json::from_value::<RemoveEnvOutcome>(value).unwrap(),
            failed => panic!("RemoveEnv failed: {failed:?}"),
        }
    };
    // While `web` is still assigned, only what no assignment wants goes.
    assert_eq!(
        ask(&mut server, false).await,
        RemoveEnvOutcome {
            containers_removed: vec![stray],
            volumes_removed: Vec::new(),
            volumes_kept: vec![web_volume.clone()],
        }
    );
    let from = server.reports.len();
    server.assign(vec![other_assignment.clone()]).await;
    server
        .wait_for(from, STEP, "web removed", |r| {
            matches!(phase_of(r, &web), Some(Phase::Removed))
        })
        .await;
    assert_eq!(
        ask(&mut server, true).await,
        RemoveEnvOutcome {
            containers_removed: Vec::new(),
            volumes_removed: Vec::new(),
            volumes_kept: vec![web_volume.clone()],
        }
    );
    assert_eq!(
        ask(&mut server, false).await,
        RemoveEnvOutcome {
            containers_removed: Vec::new(),
            volumes_removed: vec![web_volume],
            volumes_kept: Vec::new(),
        }
    );
    // Another environment's container and volume are untouched.
    assert_eq!(volume_names(&runtime, cluster).await, [other_volume]);
    let others = runtime
        .list(&[(labels::CLUSTER, cluster), (labels::ENV, "prod")])
        .await
        .unwrap();
    assert!(others.iter().any(|c| c.state.is_live()), "{others:?}");
}

#[tokio::test]
async fn a_routed_container_is_reported_leaving_a_drain_before_it_stops() {
    ensure_image();
    let cluster = unique_cluster();
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
    };
    tokio::time::timeout(DEADLINE, leaving(&cluster))
        .await
        .expect("the test ran past its deadline");
}

const DRAIN: Duration = Duration::from_millis(1500);
/// What "at once" allows for: a pass reading the host and a report crossing the link.
const AT_ONCE: Duration = Duration::from_millis(1000);
/// The drain as measured from reports: the leaving report arrives a little after the drain's
/// start.
const DRAIN_MEASURED: Duration = Duration::from_millis(1300);

/// A time from the engine's inspect of a container, at a JSON pointer.
async fn engine_time(runtime: &DockerRuntime, id: &str, at: &str) -> time::OffsetDateTime {
    let (_, inspect) = runtime.inspect(id).await.unwrap();
    let text = inspect.pointer(at).and_then(|v| v.as_str()).unwrap();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

async fn leaving(cluster: &str) {
    let runtime = DockerRuntime::connect().await.unwrap();
    let mut server = FakeServer::start(cluster).await;
    let routed = |command: &str| {
        let (key, spec) = task("e", "web", command);
        let mut wanted = assignment(key, spec);
        wanted.drain_ms = DRAIN.as_millis() as u64;
        wanted
    };
    let v1 = routed("exec sleep 3600");
    let web = v1.key.clone();
    server.assign(vec![v1.clone()]).await;
    let (at, _) = server
        .wait_for(0, STEP, "v1 running", |r| {
            running(r, &web, &v1.config_hash).is_some()
        })
        .await;
    let old = running(&server.reports[at].1, &web, &v1.config_hash).unwrap();

    // Replaced (stop first): leaving at once, stopped after the drain, and only then replaced.
    let v2 = routed("exec sleep 3601");
    let from = server.reports.len();
    let sent = server.assign(vec![v2.clone()]).await;
    let is_leaving = |id: &str| {
        let id = id.to_owned();
        move |r: &AgentReport| {
            is_snapshot_with(r, |cs| {
                cs.iter().any(|c| c.id == id && c.leaving && c.is_live())
            })
        }
    };
    let (left_at, left) = server
        .wait_for(from, STEP, "v1 leaving", is_leaving(&old))
        .await;
    let (stopped_at, stopped) = server
        .wait_for(from, STEP, "v1 stopped", |r| {
            matches!(r, AgentReport::Container { event, .. }
                if event.kind == ContainerEventKind::Stopped && event.container_id == old)
        })
        .await;
    assert!(
        left - sent < AT_ONCE,
        "reported leaving {:?} after the change",
        left - sent
    );
    assert!(
        stopped - left >= DRAIN_MEASURED,
        "stopped {:?} after it was reported leaving",
        stopped - left
    );
    for (_, report) in &server.reports[left_at..stopped_at] {
        if let AgentReport::Snapshot { containers, .. } = report {
            for c in containers.iter().filter(|c| c.id == old && c.is_live()) {
                assert!(c.leaving, "a later report took v1 back into the pool");
            }
        }
    }
    let (at, _) = server
        .wait_for(from, STEP, "v2 running", |r| {
            running(r, &web, &v2.config_hash).is_some()
        })
        .await;
    let new = running(&server.reports[at].1, &web, &v2.config_hash).unwrap();
    // The stop-first replacement was created only once the old one had stopped (the engine's
    // own times: the reports of the two may cross).
    let old_finished = engine_time(&runtime, &old, "/State/FinishedAt").await;
    let new_created = engine_time(&runtime, &new, "/Created").await;
    assert!(
        new_created > old_finished,
        "the replacement was created at {new_created}, before the old one stopped at {old_finished}"
    );

    // No longer assigned: the same, then removed.
    let from = server.reports.len();
    let sent = server.assign(Vec::new()).await;
    let (_, left) = server
        .wait_for(from, STEP, "v2 leaving", is_leaving(&new))
        .await;
    let (_, removed) = server
        .wait_for(from, STEP, "web removed", |r| {
            matches!(phase_of(r, &web), Some(Phase::Removed))
        })
        .await;
    assert!(left - sent < AT_ONCE, "{:?}", left - sent);
    assert!(removed - left >= DRAIN_MEASURED, "{:?}", removed - left);
}

#[tokio::test]
async fn a_seeding_that_never_finished_is_undone_and_done_again() {
    ensure_image();
    let cluster = unique_cluster();
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
    };
    tokio::time::timeout(DEADLINE, unfinished_seeding(&cluster))
        .await
        .expect("the test ran past its deadline");
}

/// What an agent stopped half-way through a seeding leaves: the new volume (partly filled,
/// here empty) and the container created to fill it, never started.
async fn unfinished_seeding(cluster: &str) {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("hello.txt"), "seeded\n").unwrap();
    let tarball = dir.path().join("seed.tar");
    let tar = std::process::Command::new("tar")
        .arg("cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&content)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());

    let runtime = DockerRuntime::connect().await.unwrap();
    let (db, mut spec) = task("e", "db", "cat /data/hello.txt; exec sleep 3600");
    spec.volumes = vec![cj_spec::VolumeSpec {
        name: "data".into(),
        mount: "/data".into(),
        seed: Some(tarball.to_str().unwrap().into()),
    }];
    let wanted = assignment(db.clone(), spec.clone());
    let volume = format!("data_db_s_e_{}", &cluster[..8]);
    let owner = [
        (labels::CLUSTER.to_owned(), cluster.to_owned()),
        (labels::ENV.to_owned(), "e".to_owned()),
        (labels::SERVICE.to_owned(), "s".to_owned()),
        (labels::JOB.to_owned(), "db".to_owned()),
        (labels::TASK.to_owned(), "db".to_owned()),
    ];
    assert!(
        runtime
            .create_volume(&volume, &owner.clone().into())
            .await
            .unwrap()
    );
    let mut container_labels: std::collections::BTreeMap<String, String> = owner.into();
    container_labels.extend([
        (labels::VERSION.to_owned(), "1".to_owned()),
        (labels::CONFIG_HASH.to_owned(), wanted.config_hash.clone()),
        (labels::HOST.to_owned(), support::HOST.to_owned()),
        (labels::SEEDING.to_owned(), volume.clone()),
    ]);
    let half_done = runtime
        .create(&CreateRequest {
            name: format!("db_s_e_{cluster}"),
            image: support::IMAGE.into(),
            task: spec,
            labels: container_labels,
            mounts: vec![cj_runtime::VolumeMount {
                volume: volume.clone(),
                path: "/data".into(),
            }],
        })
        .await
        .unwrap();

    // Its configuration is right, yet it is not started: it is removed with its volume, and
    // the task's next container seeds a new one.
    let mut server = FakeServer::start(cluster).await;
    server.assign(vec![wanted.clone()]).await;
    server
        .wait_for(0, STEP, "seeding again", |r| {
            matches!(phase_of(r, &db), Some(Phase::Seeding { .. }))
        })
        .await;
    let (at, _) = server
        .wait_for(0, STEP, "db running", |r| {
            running(r, &db, &wanted.config_hash).is_some()
        })
        .await;
    let id = running(&server.reports[at].1, &db, &wanted.config_hash).unwrap();
    assert_ne!(id, half_done);
    wait_for_output(&runtime, &id, "seeded").await;
    assert!(runtime.inspect(&half_done).await.is_err(), "it was removed");
    assert_eq!(volume_names(&runtime, cluster).await, [volume]);
}
