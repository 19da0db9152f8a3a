//! Releases on the real Docker engine: diff, rolling updates with canaries, health gates and
//! rollback, manual gates, resuming after a server crash, rollback to any version, reload.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{Dev, IMAGE, describe, docker_inspect, free_port, wait_for};

/// A service `web` with one job `api` of httpd tasks, each on its own port, with an http check.
struct Web {
    ports: BTreeMap<String, u16>,
}

impl Web {
    fn new(tasks: &[&str]) -> Web {
        Web {
            ports: tasks
                .iter()
                .map(|task| (task.to_string(), free_port()))
                .collect(),
        }
    }

    /// The file for `tasks` (a subset of those made in `new`), with `release` in the env and
    /// `health` as the checked path.
    fn yaml(&self, tasks: &[&str], release: u32, health: &str, update: &str) -> String {
        let mut yaml = format!(
            "service: web\njobs:\n  - name: api\n    image: {IMAGE}\n    env: {{ RELEASE: \"{release}\" }}\n    check: {{ http: {health}, interval: 500ms, timeout: 500ms, retries: 2 }}\n    update: {update}\n    tasks:\n"
        );
        for task in tasks {
            let port = self.ports[*task];
            yaml.push_str(&format!(
                "      - {{ name: {task}, port: {port}, command: [httpd, -f, -p, \"{port}\", -h, /srv/www] }}\n"
            ));
        }
        yaml
    }
}

fn container_ids(dev: &Dev) -> BTreeMap<String, String> {
    dev.status("web")
        .into_iter()
        .filter_map(|task| Some((task.task, task.container_id?)))
        .collect()
}

fn versions(dev: &Dev) -> BTreeMap<String, Option<u64>> {
    dev.status("web")
        .into_iter()
        .map(|task| (task.task, task.version))
        .collect()
}

fn serves(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = write!(stream, "GET /health HTTP/1.0\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

fn deployment(dev: &Dev) -> serde_json::Value {
    dev.json(&["deployments", "web", "--json"])[0].clone()
}

const STEADY: &str = "{ batch_size: 2, healthy_deadline: 20s }";

#[test]
fn diff_plans_what_rolling_update_then_does() {
    let dev = Dev::start();
    let web = Web::new(&["a", "b", "c", "d"]);
    dev.push_yaml(
        "web.yaml",
        &web.yaml(&["a", "b", "c"], 1, "/health", STEADY),
    );
    dev.ok(&["up", "web"]);
    let before = container_ids(&dev);

    // Version 2: a changes (its port), b stays, c goes, d is new.
    let mut changed = Web {
        ports: web.ports.clone(),
    };
    changed.ports.insert("a".into(), free_port());
    let file = dev.data_dir.path().join("web-2.yaml");
    std::fs::write(&file, changed.yaml(&["a", "b", "d"], 1, "/health", STEADY)).unwrap();
    let diff = dev.json(&["diff", file.to_str().unwrap(), "--json"]);
    let plan: Vec<(String, String)> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["task"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("a", "replace"),
        ("b", "unchanged"),
        ("c", "remove"),
        ("d", "create"),
    ];
    assert_eq!(plan, expected.map(|(t, c)| (t.to_owned(), c.to_owned())));
    let reasons = diff["changes"][0]["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("port ")),
        "{diff}"
    );
    let human = dev.ok(&["diff", file.to_str().unwrap()]);
    assert!(
        human.contains("web/api/a  replace") && human.contains("--check-rev"),
        "{human}"
    );
    // --exit-code: 1 when pushing would change something, 0 for the file as it stands.
    let changed = dev.cli(&["diff", "--exit-code", file.to_str().unwrap()]);
    assert_eq!(changed.status.code(), Some(1), "{changed:?}");
    let same = dev.data_dir.path().join("web-1.yaml");
    std::fs::write(&same, web.yaml(&["a", "b", "c"], 1, "/health", STEADY)).unwrap();
    let unchanged = dev.cli(&["diff", "--exit-code", "--json", same.to_str().unwrap()]);
    assert_eq!(unchanged.status.code(), Some(0), "{unchanged:?}");

    // A push checked against a stale revision is refused and stores nothing.
    let revision = diff["revision"].as_u64().unwrap();
    let stale = dev.cli(&[
        "push",
        "--check-rev",
        &(revision - 1).to_string(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(stale.status.code(), Some(1), "{}", describe(&stale));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("changed since revision"));
    dev.ok(&[
        "push",
        "--check-rev",
        &revision.to_string(),
        file.to_str().unwrap(),
    ]);

    let rollout = dev.ok(&["rolling-update", "web"]);
    assert!(rollout.contains("deployment web-1: succeeded"), "{rollout}");
    let after = container_ids(&dev);
    assert_ne!(after["a"], before["a"], "a was replaced");
    assert_eq!(after["b"], before["b"], "b was left alone");
    assert!(!after.contains_key("c"), "c was removed");
    assert!(after.contains_key("d"), "d was created");
    assert_eq!(
        versions(&dev).values().collect::<Vec<_>>(),
        [&Some(2), &Some(1), &Some(2)],
        "b keeps its container (made for 1)"
    );
    assert_eq!(
        dev.docker_containers()
            .iter()
            .filter(|id| docker_inspect(id)["State"]["Running"] == true)
            .count(),
        3
    );
}

#[test]
fn a_failing_canary_stops_the_rollout_and_auto_rollback_restores_the_old_version() {
    let dev = Dev::start();
    let web = Web::new(&["a", "b", "c"]);
    let policy = "{ batch_size: 2, canary: 1, healthy_deadline: 10s, auto_rollback: true }";
    dev.push_yaml(
        "web.yaml",
        &web.yaml(&["a", "b", "c"], 1, "/health", policy),
    );
    dev.ok(&["up", "web"]);
    let before = container_ids(&dev);

    // Version 2 checks a path httpd does not serve: the canary never gets healthy.
    dev.push_yaml(
        "web.yaml",
        &web.yaml(&["a", "b", "c"], 2, "/missing", policy),
    );
    let output = dev.cli(&["rolling-update", "web"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("canary 1/2: a"), "{stdout}");
    assert!(stdout.contains("rolled-back"), "{stdout}");

    let record = deployment(&dev);
    assert_eq!(record["status"], "rolled-back");
    assert!(
        record["message"].as_str().unwrap().contains("unhealthy"),
        "{record}"
    );
    assert_eq!(record["jobs"][0]["batches"][0]["state"], "failed");
    assert_eq!(
        record["jobs"][0]["batches"][1]["state"], "pending",
        "the rest never moved"
    );
    let after = container_ids(&dev);
    assert_eq!(
        after, before,
        "the old containers are back (the canary's restarted in place)"
    );
    assert!(versions(&dev).values().all(|v| *v == Some(1)));
    for port in web.ports.values() {
        assert!(wait_for(
            "the old version to serve",
            Duration::from_secs(5),
            || serves(*port).then_some(true)
        ));
    }
}

#[test]
fn a_manual_gate_waits_for_promote() {
    let dev = Dev::start();
    let web = Web::new(&["a", "b", "c"]);
    let policy = "{ batch_size: 2, canary: 1, manual_gate: true, healthy_deadline: 10s }";
    dev.push_yaml(
        "web.yaml",
        &web.yaml(&["a", "b", "c"], 1, "/health", policy),
    );
    dev.ok(&["up", "web"]);
    dev.push_yaml(
        "web.yaml",
        &web.yaml(&["a", "b", "c"], 2, "/health", policy),
    );

    let waiting = dev.ok(&["rolling-update", "web"]);
    assert!(waiting.contains("coding-job promote web"), "{waiting}");
    assert_eq!(deployment(&dev)["status"], "awaiting-promotion");
    std::thread::sleep(Duration::from_secs(1));
    let mixed = versions(&dev);
    assert_eq!(
        mixed.values().collect::<Vec<_>>(),
        [&Some(2), &Some(1), &Some(1)],
        "only the canary moved"
    );

    let promoted = dev.ok(&["promote", "web"]);
    assert!(promoted.contains("succeeded"), "{promoted}");
    assert!(versions(&dev).values().all(|v| *v == Some(2)));
    assert_eq!(deployment(&dev)["status"], "succeeded");
}

#[test]
fn abort_at_the_gate_rolls_the_canary_back() {
    let dev = Dev::start();
    let web = Web::new(&["a", "b"]);
    let policy = "{ canary: 1, manual_gate: true, healthy_deadline: 10s }";
    dev.push_yaml("web.yaml", &web.yaml(&["a", "b"], 1, "/health", policy));
    dev.ok(&["up", "web"]);
    dev.push_yaml("web.yaml", &web.yaml(&["a", "b"], 2, "/health", policy));
    dev.ok(&["rolling-update", "web"]);
    let output = dev.cli(&["abort", "web"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(deployment(&dev)["status"], "aborted");
    assert!(versions(&dev).values().all(|v| *v == Some(1)));
}

#[test]
fn a_rollout_resumes_after_the_server_is_killed() {
    let mut dev = Dev::start();
    let web = Web::new(&["a", "b", "c"]);
    let policy = "{ batch_size: 1, min_healthy_time: 2s, healthy_deadline: 20s }";
    dev.push_yaml(
        "web.yaml",
        &web.yaml(&["a", "b", "c"], 1, "/health", policy),
    );
    dev.ok(&["up", "web"]);
    dev.push_yaml(
        "web.yaml",
        &web.yaml(&["a", "b", "c"], 2, "/health", policy),
    );

    let server = dev.url.clone();
    let follower = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_coding-job"))
            .args(["rolling-update", "web"])
            .env("CODING_JOB_SERVER", server)
            .output()
            .unwrap()
    });
    let at_kill = wait_for(
        "the first batch to be healthy",
        Duration::from_secs(20),
        || {
            let record = deployment(&dev);
            (record["jobs"][0]["next_batch"].as_u64() >= Some(1)).then_some(record)
        },
    );
    let first_moved = container_ids(&dev)["a"].clone();
    dev.kill9();
    let _ = follower.join();
    assert_eq!(
        at_kill["status"], "running",
        "the rollout was under way when the server died"
    );

    dev.restart();
    let record = wait_for(
        "the resumed rollout to finish",
        Duration::from_secs(30),
        || {
            let record = deployment(&dev);
            (record["status"] != "running").then_some(record)
        },
    );
    assert_eq!(record["status"], "succeeded", "{record}");
    assert!(
        record["jobs"][0]["batches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["state"] == "healthy")
    );
    assert!(versions(&dev).values().all(|v| *v == Some(2)));
    assert_eq!(
        container_ids(&dev)["a"],
        first_moved,
        "the batch done before the crash was not redone"
    );
    let running = dev
        .docker_containers()
        .iter()
        .filter(|id| docker_inspect(id)["State"]["Running"] == true)
        .count();
    assert_eq!(running, 3, "one container per task, no leftovers running");
}

#[test]
fn rollback_goes_to_any_earlier_version() {
    let dev = Dev::start();
    let web = Web::new(&["a", "b"]);
    dev.push_yaml("web.yaml", &web.yaml(&["a", "b"], 1, "/health", STEADY));
    dev.ok(&["up", "web"]);
    for release in 2..=4 {
        dev.push_yaml(
            "web.yaml",
            &web.yaml(&["a", "b"], release, "/health", STEADY),
        );
    }
    dev.ok(&["rolling-update", "web"]);
    assert!(versions(&dev).values().all(|v| *v == Some(4)));

    let rollback = dev.ok(&["rollback", "api", "--to", "1"]);
    assert!(rollback.contains("succeeded"), "{rollback}");
    assert!(versions(&dev).values().all(|v| *v == Some(1)));
    for id in container_ids(&dev).values() {
        let env = docker_inspect(id)["Config"]["Env"].clone();
        assert!(
            env.as_array().unwrap().iter().any(|e| e == "RELEASE=1"),
            "{env}"
        );
    }
    assert_eq!(deployment(&dev)["kind"], "rollback");

    let diff = dev.ok(&["history", "api", "--diff", "1..4"]);
    assert!(
        diff.contains("-    env: { RELEASE: \"1\" }")
            && diff.contains("+    env: { RELEASE: \"4\" }"),
        "{diff}"
    );
}

#[test]
fn reload_replaces_every_container_in_batches() {
    let dev = Dev::start();
    let web = Web::new(&["a", "b"]);
    dev.push_yaml(
        "web.yaml",
        &web.yaml(
            &["a", "b"],
            1,
            "/health",
            "{ batch_size: 1, healthy_deadline: 20s }",
        ),
    );
    dev.ok(&["up", "web"]);
    let before = container_ids(&dev);
    let reload = dev.ok(&["reload", "web"]);
    assert!(
        reload.contains("batch 1/2: a") && reload.contains("batch 2/2: b"),
        "{reload}"
    );
    let after = container_ids(&dev);
    assert!(
        before.iter().all(|(task, id)| after[task] != *id),
        "every container was replaced"
    );
    assert!(
        dev.status("web")
            .iter()
            .all(|t| t.state == "running" && t.health.as_deref() == Some("healthy"))
    );
    assert_eq!(deployment(&dev)["kind"], "reload");
}

#[test]
fn a_task_without_a_port_starts_its_replacement_before_the_old_one_stops() {
    let dev = Dev::start();
    let service = |release: u32| {
        format!(
            "service: worker\njobs:\n  - name: worker\n    image: {IMAGE}\n    env: {{ RELEASE: \"{release}\" }}\n    command: [sh, -c, \"sleep 0.5; touch /tmp/ready; exec sleep 100000\"]\n    check: {{ exec: [test, -f, /tmp/ready], interval: 1s }}\n"
        )
    };
    dev.push_yaml("worker.yaml", &service(1));
    dev.ok(&["up", "worker"]);
    let old = dev.status("worker")[0].container_id.clone().unwrap();
    dev.push_yaml("worker.yaml", &service(2));
    dev.ok(&["rolling-update", "worker"]);
    let new = dev.status("worker")[0].container_id.clone().unwrap();
    assert_ne!(new, old);
    let old_state = docker_inspect(&old)["State"].clone();
    let new_state = docker_inspect(&new)["State"].clone();
    let new_started = support::nanos(new_state["StartedAt"].as_str().unwrap());
    let old_finished = support::nanos(old_state["FinishedAt"].as_str().unwrap());
    assert!(
        new_started < old_finished,
        "the new container started before the old one stopped"
    );
    assert!(
        old_finished - new_started >= 400_000_000,
        "the old one ran until the new one was healthy"
    );
}
