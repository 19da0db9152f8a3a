//! Checks on the real Docker engine: `up` waits for them, and a failing check is handled as
//! `on_failure` says.

mod support;

use std::time::Duration;

use support::{Dev, IMAGE, describe, docker_inspect, free_port, nanos, wait_for};

#[test]
fn up_waits_for_a_dependency_to_pass_its_check() {
    let dev = Dev::start();
    let (db_port, app_port) = (free_port(), free_port());
    // The database takes 1.5 s before it answers; the app must not start before that.
    let yaml = format!(
        r#"service: site
jobs:
  - name: db
    image: {IMAGE}
    port: {db_port}
    command: [sh, -c, "sleep 1.5; exec httpd -f -p {db_port} -h /srv/www"]
    check: {{ http: /health, interval: 1s, timeout: 500ms, retries: 3, start_period: 5s }}
  - name: app
    image: {IMAGE}
    port: {app_port}
    command: [httpd, -f, -p, "{app_port}", -h, /srv/www]
    check: {{ tcp: true, interval: 1s }}
    depends_on: [db]
"#
    );
    dev.push_yaml("site.yaml", &yaml);
    let up = dev.ok(&["up", "site"]);
    assert!(up.contains("site/db/db") && up.contains("healthy"), "{up}");

    let status = dev.status("site");
    assert!(
        status
            .iter()
            .all(|t| t.state == "running" && t.health.as_deref() == Some("healthy")),
        "{status:?}"
    );
    let started = |job: &str| {
        let id = status
            .iter()
            .find(|t| t.job == job)
            .unwrap()
            .container_id
            .clone()
            .unwrap();
        nanos(docker_inspect(&id)["State"]["StartedAt"].as_str().unwrap())
    };
    let waited = started("app") - started("db");
    assert!(
        waited >= 1_500_000_000,
        "app started {waited} ns after db, before db could answer"
    );
    assert!(
        waited < 3_000_000_000,
        "app waited {waited} ns: a healthy check should not cost a whole interval more"
    );
    let history = dev.history("site/db");
    assert!(
        history.events.iter().any(|e| e.kind == "healthy"),
        "{:?}",
        history.events
    );
}

#[test]
fn an_exec_check_gates_up() {
    let dev = Dev::start();
    let yaml = format!(
        r#"service: files
jobs:
  - name: maker
    image: {IMAGE}
    command: [sh, -c, "sleep 1; touch /tmp/ready; exec sleep 100000"]
    check: {{ exec: [test, -f, /tmp/ready], interval: 1s, start_period: 10s }}
"#
    );
    dev.push_yaml("files.yaml", &yaml);
    dev.ok(&["up", "files"]);
    assert_eq!(dev.status("files")[0].health.as_deref(), Some("healthy"));
}

#[test]
fn an_unhealthy_task_with_on_failure_keep_is_left_as_it_is() {
    let dev = Dev::start();
    let port = free_port();
    let yaml = format!(
        r#"service: sick
jobs:
  - name: web
    image: {IMAGE}
    port: {port}
    on_failure: keep
    command: [httpd, -f, -p, "{port}", -h, /srv/www]
    check: {{ http: /missing, interval: 300ms, retries: 2 }}
"#
    );
    dev.push_yaml("sick.yaml", &yaml);
    let output = dev.cli(&["up", "sick", "--timeout", "30"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("failed: sick/web/web: unhealthy") && stderr.contains("404"),
        "{stderr}"
    );

    let task = dev.status("sick").remove(0);
    let id = task.container_id.clone().unwrap();
    let started = docker_inspect(&id)["State"]["StartedAt"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let task = dev.status("sick").remove(0);
    assert_eq!(
        task.container_id.as_deref(),
        Some(id.as_str()),
        "the same container"
    );
    assert_eq!(task.health.as_deref(), Some("unhealthy"));
    assert_eq!(
        docker_inspect(&id)["State"]["StartedAt"],
        started,
        "it was not restarted"
    );
}

#[test]
fn an_unhealthy_task_is_restarted() {
    let dev = Dev::start();
    let port = free_port();
    // Nothing ever listens on the port, so the check fails after its start period.
    let yaml = format!(
        r#"service: deaf
jobs:
  - name: sleeper
    image: {IMAGE}
    command: [sleep, "100000"]
    check: {{ tcp: {port}, interval: 300ms, timeout: 200ms, retries: 1 }}
"#
    );
    dev.push_yaml("deaf.yaml", &yaml);
    let output = dev.cli(&["up", "deaf", "--timeout", "30"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let id = dev.status("deaf").remove(0).container_id.unwrap();
    let first_start = docker_inspect(&id)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for(
        "the unhealthy container to be restarted",
        Duration::from_secs(10),
        || {
            let started = docker_inspect(&id)["State"]["StartedAt"]
                .as_str()
                .unwrap()
                .to_owned();
            (started != first_start).then_some(())
        },
    );
    let history = dev.history("deaf/sleeper");
    assert!(
        history.events.iter().any(|e| e.kind == "unhealthy"),
        "{:?}",
        history.events
    );
}
