//! The simulator's own behaviour, on a paused clock: Docker's states, errors and events, and
//! the script.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::*;
use crate::{
    ContainerRuntime, ContainerState, CreateRequest, ExecOptions, LogChunk, LogsOptions,
    RuntimeEvent, VolumeMount, labels,
};

const IMAGE: &str = "img:1";

fn request(name: &str, task: &str) -> CreateRequest {
    let yaml = format!(
        "service: s\njobs:\n  - name: {task}\n    image: {IMAGE}\n    env: {{A: b}}\n    command: [sleep, '100']\n"
    );
    let spec = cj_spec::parse_service("t.yaml", &yaml).unwrap();
    CreateRequest {
        name: name.into(),
        image: IMAGE.into(),
        task: spec.jobs[0].tasks[0].clone(),
        labels: BTreeMap::from([
            (labels::CLUSTER.into(), "c".into()),
            (labels::TASK.into(), task.into()),
        ]),
        mounts: Vec::new(),
    }
}

fn engine() -> SimRuntime {
    let sim = SimRuntime::new();
    sim.add_image(IMAGE);
    sim
}

/// The actions (with the exit code of `die`) the stream yields until none is ready.
async fn actions(
    events: &mut futures_util::stream::BoxStream<'static, Result<RuntimeEvent, RuntimeError>>,
) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(1), events.next()).await
    {
        let event = event.unwrap();
        seen.push(match event.exit_code {
            Some(code) => format!("{} {code}", event.action),
            None => event.action,
        });
    }
    seen
}

async fn output(sim: &SimRuntime, id: &str, tail: Option<u32>) -> String {
    let chunks: Vec<_> = sim
        .logs(
            id,
            LogsOptions {
                tail,
                ..LogsOptions::default()
            },
        )
        .collect()
        .await;
    chunks
        .into_iter()
        .map(|chunk| match chunk.unwrap() {
            LogChunk::Stdout(bytes) | LogChunk::Stderr(bytes) => {
                String::from_utf8_lossy(&bytes).into_owned()
            }
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_lifecycle_yields_dockers_states_and_events() {
    let sim = engine();
    let mut events = sim.events(&[(labels::CLUSTER, "c")]);
    let mut others = sim.events(&[(labels::CLUSTER, "other")]);
    let id = sim.create(&request("web_1", "web")).await.unwrap();
    assert_eq!(id.len(), 64);
    let listed = sim.list(&[(labels::TASK, "web")]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].state),
        ("web_1", ContainerState::Created)
    );
    assert!(sim.list(&[(labels::TASK, "db")]).await.unwrap().is_empty());

    sim.start(&id).await.unwrap();
    sim.start(&id).await.unwrap();
    assert_eq!(
        sim.container(&id).unwrap().starts,
        1,
        "starting a running one does nothing"
    );
    sim.stop(&id, 10).await.unwrap();
    sim.stop(&id, 10).await.unwrap();
    let stopped = sim.container(&id).unwrap();
    assert_eq!(
        (stopped.state, stopped.exit_code),
        (ContainerState::Exited, Some(143))
    );
    sim.remove(&id).await.unwrap();
    sim.remove(&id).await.unwrap();
    assert!(sim.containers().is_empty());
    assert_eq!(
        actions(&mut events).await,
        ["create", "start", "kill", "die 143", "stop", "destroy"]
    );
    assert!(actions(&mut others).await.is_empty(), "filtered by label");
}

#[tokio::test(start_paused = true)]
async fn event_attributes_are_the_labels_name_image_and_exit_code() {
    let sim = engine();
    let mut events = sim.events(&[]);
    let id = sim.create(&request("web_1", "web")).await.unwrap();
    sim.start(&id).await.unwrap();
    assert!(sim.kill(&id, 3));
    assert!(!sim.kill(&id, 3), "dead already");
    let all: Vec<RuntimeEvent> = events.by_ref().take(3).map(Result::unwrap).collect().await;
    let died = &all[2];
    assert_eq!((died.action.as_str(), died.exit_code), ("die", Some(3)));
    assert_eq!(died.labels["name"], "web_1");
    assert_eq!(died.labels["image"], IMAGE);
    assert_eq!(died.labels["exitCode"], "3");
    assert_eq!(died.labels[labels::TASK], "web");
    assert!(all[0].time_nanos <= died.time_nanos);
}

#[tokio::test(start_paused = true)]
async fn inspect_is_dockers_document_read_as_dockers() {
    let sim = engine();
    let id = sim.create(&request("web_1", "web")).await.unwrap();
    let (status, document) = sim.inspect(&id).await.unwrap();
    assert_eq!(status.state, ContainerState::Created);
    assert_eq!((status.started_at, status.exit_code), (None, Some(0)));
    assert_eq!(document["State"]["StartedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(document["Name"], "/web_1");
    assert_eq!(document["Config"]["Env"], serde_json::json!(["A=b"]));
    assert_eq!(document["Config"]["Labels"][labels::TASK], "web");
    assert_eq!(document["HostConfig"]["Init"], true);
    assert!(document["Image"].as_str().unwrap().starts_with("sha256:"));

    sim.start(&id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    sim.oom_kill(&id);
    let (status, document) = sim.inspect(&id).await.unwrap();
    assert_eq!(status.state, ContainerState::Exited);
    assert_eq!((status.exit_code, status.oom_killed), (Some(137), true));
    let started = time::OffsetDateTime::parse(
        status.started_at.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let finished = time::OffsetDateTime::parse(
        status.finished_at.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        finished - started,
        time::Duration::seconds(5),
        "the paused clock's time"
    );
    assert_eq!(document["State"]["Status"], "exited");
    assert!(matches!(
        sim.inspect("missing").await,
        Err(RuntimeError::NoSuchContainer(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn images_are_pulled_unless_scripted_to_fail() {
    let sim = SimRuntime::new();
    let err = sim.create(&request("web_1", "web")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err}");
    assert!(!sim.image_present(IMAGE).await.unwrap());
    let mut lines = Vec::new();
    sim.pull(IMAGE, |line| lines.push(line.to_owned()))
        .await
        .unwrap();
    assert!(!lines.is_empty());
    assert!(sim.image_present(IMAGE).await.unwrap());
    sim.create(&request("web_1", "web")).await.unwrap();
    let conflict = sim.create(&request("web_1", "web")).await.unwrap_err();
    assert!(matches!(conflict, RuntimeError::NameConflict(name) if name == "web_1"));

    sim.fail_pull("gone:1", "manifest unknown");
    let failed = sim.pull("gone:1", |_| {}).await.unwrap_err();
    assert_eq!(
        failed.to_string(),
        "image gone:1 not found: manifest unknown"
    );
    sim.set_all_images_present(true);
    assert!(sim.image_present("anything:2").await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn scripted_deaths_end_each_run_after_their_time() {
    let sim = engine();
    sim.die_after(SimMatch::Task("web".into()), 1, Duration::from_secs(3));
    sim.die_after(SimMatch::Image("other:1".into()), 2, Duration::from_secs(1));
    let web = sim.create(&request("web_1", "web")).await.unwrap();
    let db = sim.create(&request("db_1", "db")).await.unwrap();
    let listed: Vec<String> = sim
        .list(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        listed,
        [db.clone(), web.clone()],
        "newest first, as Docker lists"
    );
    let mut events = sim.events(&[]);
    let started = Instant::now();
    sim.start(&web).await.unwrap();
    sim.start(&db).await.unwrap();
    let died = events
        .by_ref()
        .filter(|event| futures_util::future::ready(event.as_ref().unwrap().action == "die"))
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (died.container_id.as_str(), died.exit_code),
        (web.as_str(), Some(1))
    );
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(sim.container(&db).unwrap().state, ContainerState::Running);

    // A death scheduled for a run that was stopped does not end the next run.
    sim.clear_deaths();
    sim.die_after(SimMatch::Any, 4, Duration::from_secs(2));
    sim.start(&web).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    sim.stop(&web, 10).await.unwrap();
    sim.clear_deaths();
    sim.start(&web).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let web = sim.container(&web).unwrap();
    assert_eq!((web.state, web.starts), (ContainerState::Running, 3));
}

#[tokio::test(start_paused = true)]
async fn a_stop_waits_for_the_exit_up_to_the_grace_then_kills() {
    let sim = engine();
    let id = sim.create(&request("web_1", "web")).await.unwrap();
    sim.start(&id).await.unwrap();
    sim.set_stop_time(Duration::from_secs(30));
    let mut events = sim.events(&[]);
    let before = Instant::now();
    sim.stop(&id, 2).await.unwrap();
    assert_eq!(before.elapsed(), Duration::from_secs(2));
    assert_eq!(
        actions(&mut events).await,
        ["kill", "kill", "die 137", "stop"]
    );

    sim.set_stop_time(Duration::from_secs(1));
    sim.start(&id).await.unwrap();
    sim.stop(&id, 2).await.unwrap();
    assert_eq!(sim.container(&id).unwrap().exit_code, Some(143));

    sim.start(&id).await.unwrap();
    actions(&mut events).await;
    sim.remove(&id).await.unwrap();
    assert_eq!(actions(&mut events).await, ["kill", "die 137", "destroy"]);
}

#[tokio::test(start_paused = true)]
async fn execs_exit_as_scripted_and_need_a_running_container() {
    let sim = engine();
    sim.set_exec(&["check"], 3, "not yet\n");
    let id = sim.create(&request("web_1", "web")).await.unwrap();
    let not_running = sim.exec(&id, &["true".into()]).await.unwrap_err();
    assert!(
        matches!(not_running, RuntimeError::NotRunning(_)),
        "{not_running}"
    );
    sim.start(&id).await.unwrap();
    assert_eq!(sim.exec(&id, &["true".into()]).await.unwrap(), 0);
    assert_eq!(sim.exec(&id, &["check".into()]).await.unwrap(), 3);

    let options = ExecOptions {
        command: vec!["check".into()],
        tty: true,
        stdin: true,
        size: Some((24, 80)),
    };
    let mut attached = sim.exec_attached(&id, &options).await.unwrap();
    assert_eq!(sim.exec_size(&attached.id), Some((24, 80)));
    sim.resize_exec(&attached.id, 50, 120).await.unwrap();
    assert_eq!(sim.exec_size(&attached.id), Some((50, 120)));
    assert_eq!(sim.exec_exit_code(&attached.id).await.unwrap(), None);
    let chunk = attached.output.next().await.unwrap().unwrap();
    assert_eq!(chunk, LogChunk::Stdout("not yet\n".into()));
    assert!(attached.output.next().await.is_none());
    assert_eq!(sim.exec_exit_code(&attached.id).await.unwrap(), Some(3));
    assert!(sim.exec_exit_code("missing").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn logs_keep_what_runs_wrote_and_follow_until_the_run_ends() {
    let sim = engine();
    sim.print_on_start(SimMatch::Task("web".into()), "one\ntwo");
    let id = sim.create(&request("web_1", "web")).await.unwrap();
    sim.start(&id).await.unwrap();
    assert_eq!(output(&sim, &id, None).await, "one\ntwo\n");
    assert_eq!(output(&sim, &id, Some(1)).await, "two\n");

    let mut followed = sim.logs(
        &id,
        LogsOptions {
            tail: Some(0),
            follow: true,
            ..LogsOptions::default()
        },
    );
    sim.write_log(&id, LogChunk::Stderr("three\n".into()));
    assert_eq!(
        followed.next().await.unwrap().unwrap(),
        LogChunk::Stderr("three\n".into())
    );
    sim.stop(&id, 1).await.unwrap();
    assert!(followed.next().await.is_none(), "the stop ends the follow");
    let missing: Vec<_> = sim.logs("missing", LogsOptions::default()).collect().await;
    assert!(matches!(
        missing[..],
        [Err(RuntimeError::NoSuchContainer(_))]
    ));
}

#[tokio::test(start_paused = true)]
async fn a_mounted_volume_stays_until_its_container_is_removed() {
    let sim = engine();
    let volume_labels = BTreeMap::from([(labels::CLUSTER.to_owned(), "c".to_owned())]);
    assert!(sim.create_volume("data", &volume_labels).await.unwrap());
    assert!(!sim.create_volume("data", &BTreeMap::new()).await.unwrap());
    let mut with_volume = request("web_1", "web");
    with_volume.mounts = vec![VolumeMount {
        volume: "data".into(),
        path: "/data".into(),
    }];
    let id = sim.create(&with_volume).await.unwrap();
    assert_eq!(sim.container(&id).unwrap().mounts, with_volume.mounts);
    let in_use = sim.remove_volume("data").await.unwrap_err();
    assert!(in_use.to_string().contains("volume is in use"), "{in_use}");

    let archive = futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"12345"))]).boxed();
    sim.upload_archive(&id, "/data", archive).await.unwrap();
    assert_eq!(
        sim.uploads(),
        [SimUpload {
            container_id: id.clone(),
            path: "/data".into(),
            bytes: 5
        }]
    );
    let listed = sim.list_volumes(&[(labels::CLUSTER, "c")]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].labels, volume_labels, "kept as first created");
    sim.remove(&id).await.unwrap();
    sim.remove_volume("data").await.unwrap();
    sim.remove_volume("data").await.unwrap();
    assert!(sim.volumes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn calls_take_their_latency_and_fail_as_scripted() {
    let sim = engine();
    sim.set_latency(Duration::from_millis(100));
    sim.set_latency_of(SimOp::Pull, Duration::from_secs(20));
    let before = Instant::now();
    sim.list(&[]).await.unwrap();
    sim.pull("new:1", |_| {}).await.unwrap();
    assert_eq!(before.elapsed(), Duration::from_millis(20_100));

    sim.fail_next(SimOp::Create, RuntimeError::InvalidConfig("no".into()));
    assert!(matches!(
        sim.create(&request("web_1", "web")).await,
        Err(RuntimeError::InvalidConfig(_))
    ));
    sim.create(&request("web_1", "web")).await.unwrap();
    let creates = sim.calls_of(SimOp::Create);
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0].target, "web_1");
    assert_eq!(
        sim.engine_version().await.unwrap(),
        format!("sim-{}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_broken_event_stream_ends_with_an_error() {
    let sim = engine();
    let mut events = sim.events(&[]);
    sim.break_events();
    assert!(events.next().await.unwrap().is_err());
    assert!(events.next().await.is_none());
    sim.fail_next(SimOp::Events, RuntimeError::Docker("down".into()));
    let mut refused = sim.events(&[]);
    assert!(refused.next().await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn usage_is_scripted_per_container() {
    let sim = engine();
    let web = sim.create(&request("web_1", "web")).await.unwrap();
    let db = sim.create(&request("db_1", "db")).await.unwrap();
    let busy = crate::ContainerUsage {
        cpu_nanos: 5,
        system_cpu_nanos: 10,
        online_cpus: 2,
        memory_bytes: 1 << 30,
        memory_limit_bytes: 2 << 30,
    };
    sim.set_usage(SimMatch::Task("db".into()), busy);
    assert_eq!(sim.usage(&db).await.unwrap(), busy);
    let idle = sim.usage(&web).await.unwrap();
    assert_eq!(
        (idle.memory_bytes, idle.memory_limit_bytes),
        (32 << 20, 8 << 30)
    );
}
