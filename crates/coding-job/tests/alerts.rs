//! Alerts end to end: a `dev` server whose `alerts:` rules send to real webhook receivers (small
//! HTTP servers on loopback, one taking our JSON and one Slack's format), a job whose container
//! exits a second after it starts and so crash-loops. The alert must arrive once (not again on later restarts),
//! show in `coding-job alerts`, and be resolved once the job is brought down. A rollout that
//! fails raises a `deployment_failed` alert (here also in DingTalk's format) that the next
//! successful rollout resolves. A routed task whose check fails raises `unhealthy` and
//! `route_down`, both resolved when the job is brought down; a disk above its threshold raises
//! `disk` from the host's own readings. On a test bed of two real hosts, a host whose agent
//! is gone raises `host_down` after the rule's time, resolved when the agent is back.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::cluster::Cluster;
use support::webhook::Receiver;
use support::{Dev, IMAGE, wait_for};

fn is_alert(event: &str) -> impl Fn(&Value) -> bool + '_ {
    move |body| body["event"] == event && body["rule"] == "crash_loop"
}

#[test]
fn a_crash_loop_alerts_once_and_resolves_when_the_job_is_down() {
    let ours = Receiver::start();
    let slack = Receiver::start();
    let config = format!(
        "notify:\n  - {}\n  - url: {}\n    format: slack\nalerts:\n  crash_loop: {{ restarts: 2, within: 5m }}\n",
        ours.url, slack.url
    );
    let dev = Dev::start_with_config(Some(&config));
    dev.push_yaml(
        "looping.yaml",
        &format!(
            "service: looping\njobs:\n  - name: crasher\n    image: {IMAGE}\n    command: [sh, -c, 'sleep 1; exit 3']\n"
        ),
    );
    dev.ok(&["up", "looping"]);
    let task = dev.status("looping")[0].task.clone();
    let subject = format!("production/looping/crasher/{task}");

    let events = ours.wait(
        "the crash-loop alert",
        Duration::from_secs(60),
        is_alert("alert_firing"),
    );
    let firing = events.iter().find(|e| is_alert("alert_firing")(e)).unwrap();
    assert_eq!(firing["subject"], subject.as_str());
    assert_eq!(
        firing["message"],
        format!("{subject} restarted 2 times within 5m").as_str()
    );
    let id = firing["alert"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());

    let slack_bodies = slack.wait("the Slack message", Duration::from_secs(30), |body| {
        body["text"]
            .as_str()
            .is_some_and(|text| text.starts_with("coding-job alert:"))
    });
    let text = slack_bodies
        .iter()
        .find(|body| {
            body["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("coding-job alert:")
        })
        .unwrap();
    assert_eq!(
        text,
        &serde_json::json!({"text": format!("coding-job alert: {subject} restarted 2 times within 5m")})
    );

    // It keeps crashing; the alert is not sent again.
    let restarts_at_alert = restarts_so_far(&dev);
    wait_for("two more restarts", Duration::from_secs(60), || {
        (restarts_so_far(&dev) >= restarts_at_alert + 2).then_some(())
    });
    let listed = dev.json(&["alerts", "--json"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["rule"], "crash_loop");
    assert!(listed[0].get("resolved").is_none(), "{listed:?}");
    let table = dev.ok(&["alerts"]);
    assert!(
        table.contains("FIRING") && table.contains(&subject),
        "{table}"
    );
    // The web UI's overview shows it too.
    let overview = dev.http_get("/");
    assert!(
        overview.contains("class=\"alert firing\"") && overview.contains(&subject),
        "{overview}"
    );

    dev.ok(&["down", "looping"]);
    let events = ours.wait(
        "the resolve message",
        Duration::from_secs(30),
        is_alert("alert_resolved"),
    );
    let resolved = events
        .iter()
        .find(|e| is_alert("alert_resolved")(e))
        .unwrap();
    assert_eq!(resolved["alert"], id.as_str());
    assert_eq!(resolved["subject"], subject.as_str());
    let fired = events
        .iter()
        .filter(|e| is_alert("alert_firing")(e))
        .count();
    assert_eq!(fired, 1, "the alert fired more than once: {events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["event"] != "alert_firing" || e["alert"] == id.as_str()),
        "{events:?}"
    );

    let listed = dev.json(&["alerts", "--json"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0]["resolved"].is_string(), "{listed}");
    let overview = dev.http_get("/");
    assert!(
        overview.contains("class=\"alert resolved\"") && !overview.contains("alert firing"),
        "{overview}"
    );
}

/// How often the job's container has been restarted, from its history.
fn restarts_so_far(dev: &Dev) -> u64 {
    dev.history("looping/crasher")
        .containers
        .iter()
        .map(|container| u64::from(container.restarts))
        .sum()
}

#[test]
fn a_failed_rollout_alerts_until_a_rollout_succeeds() {
    let ding = Receiver::start();
    let ours = Receiver::start();
    let config = format!(
        "notify:\n  - url: {}\n    format: dingtalk\n  - {}\nalerts:\n  deployment_failed: true\n",
        ding.url, ours.url
    );
    let dev = Dev::start_with_config(Some(&config));
    let port = support::free_port();
    let good = format!(
        "service: rolled\njobs:\n  - name: web\n    image: {IMAGE}\n    port: {port}\n    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n    check: {{ http: /health, interval: 500ms }}\n    update: {{ healthy_deadline: 5s, auto_rollback: true }}\n"
    );
    dev.push_yaml("rolled.yaml", &good);
    dev.ok(&["up", "rolled"]);
    dev.push_yaml("rolled.yaml", &good.replace("/health", "/missing"));
    let failed = dev.cli(&["rolling-update", "rolled"]);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "{}",
        support::describe(&failed)
    );

    let failure =
        |body: &Value| body["event"] == "alert_firing" && body["rule"] == "deployment_failed";
    let events = ours.wait("the failed-rollout alert", Duration::from_secs(30), failure);
    let firing = events.iter().find(|e| failure(e)).unwrap();
    assert_eq!(firing["subject"], "production/rolled");
    let message = firing["message"].as_str().unwrap();
    assert!(
        message.starts_with("deployment of production/rolled failed: "),
        "{message}"
    );

    let texts = ding.wait("the DingTalk message", Duration::from_secs(30), |body| {
        body["text"]["content"].as_str().is_some_and(|text| {
            text.starts_with("coding-job alert: deployment of production/rolled failed")
        })
    });
    let text = texts
        .iter()
        .find(|body| {
            body["text"]["content"]
                .as_str()
                .is_some_and(|t| t.starts_with("coding-job alert:"))
        })
        .unwrap();
    assert_eq!(
        text,
        &serde_json::json!({"msgtype": "text", "text": {"content": format!("coding-job alert: {message}")}})
    );

    // A rollout that succeeds ends it.
    dev.push_yaml(
        "rolled.yaml",
        &good.replace("interval: 500ms", "interval: 600ms"),
    );
    dev.ok(&["rolling-update", "rolled"]);
    let resolved =
        |body: &Value| body["event"] == "alert_resolved" && body["rule"] == "deployment_failed";
    let events = ours.wait("the resolve message", Duration::from_secs(30), resolved);
    assert_eq!(
        events.iter().find(|e| resolved(e)).unwrap()["alert"],
        firing["alert"]
    );
    assert_eq!(
        events.iter().filter(|e| failure(e)).count(),
        1,
        "{events:?}"
    );
}

#[test]
fn an_unhealthy_routed_task_alerts_for_the_task_and_its_route_until_it_is_down() {
    let hook = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.yaml");
    std::fs::write(
        &config,
        format!(
            "notify:\n  - {}\nalerts:\n  unhealthy: {{ for: 1s }}\n  route_down: {{ for: 1s }}\n",
            hook.url
        ),
    )
    .unwrap();
    let dev = Dev::start_with_args(&[
        "--router-listen",
        "127.0.0.1:0",
        "--domain",
        "cj.localhost",
        "--config",
        config.to_str().unwrap(),
    ]);
    let port = support::free_port();
    dev.push_yaml(
        "sick.yaml",
        &format!(
            "service: sick\njobs:\n  - name: web\n    image: {IMAGE}\n    port: {port}\n    route: true\n    on_failure: keep\n    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n    check: {{ http: /missing, interval: 300ms, retries: 2 }}\n"
        ),
    );
    let up = dev.cli(&["up", "sick", "--timeout", "30"]);
    assert_eq!(up.status.code(), Some(1), "{}", support::describe(&up));

    let firing = |rule: &'static str| {
        move |body: &Value| body["event"] == "alert_firing" && body["rule"] == rule
    };
    let events = hook.wait(
        "the unhealthy alert",
        Duration::from_secs(30),
        firing("unhealthy"),
    );
    let unhealthy = events.iter().find(|e| firing("unhealthy")(e)).unwrap();
    assert_eq!(unhealthy["subject"], "production/sick/web/web");
    assert_eq!(
        unhealthy["message"],
        "production/sick/web/web has been unhealthy for 1s"
    );
    let events = hook.wait(
        "the route alert",
        Duration::from_secs(30),
        firing("route_down"),
    );
    let route = events.iter().find(|e| firing("route_down")(e)).unwrap();
    assert_eq!(route["subject"], "production/web");
    let message = route["message"].as_str().unwrap();
    assert!(
        message.starts_with("route production/web has had no healthy backend for 1s"),
        "{message}"
    );

    dev.ok(&["down", "sick"]);
    let resolved = |body: &Value| body["event"] == "alert_resolved";
    let events = wait_for("both resolve messages", Duration::from_secs(30), || {
        let bodies = hook.bodies();
        (bodies.iter().filter(|e| resolved(e)).count() >= 2).then_some(bodies)
    });
    let mut resolved_rules: Vec<&str> = events
        .iter()
        .filter(|e| resolved(e))
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    resolved_rules.sort();
    assert_eq!(resolved_rules, ["route_down", "unhealthy"], "{events:?}");
    for rule in ["unhealthy", "route_down"] {
        let fired = events.iter().filter(|e| firing(rule)(e)).count();
        assert_eq!(fired, 1, "{rule} fired {fired} times: {events:?}");
    }
}

#[test]
fn a_disk_above_its_threshold_alerts_from_the_hosts_readings() {
    let hook = Receiver::start();
    // Any disk in use is above 0.001%: the first reading of the host's disk fires it.
    let dev = Dev::start_with_config(Some(&format!(
        "notify:\n  - {}\nalerts:\n  disk: {{ above: 0.001% }}\n",
        hook.url
    )));
    let disk = |body: &Value| body["event"] == "alert_firing" && body["rule"] == "disk";
    let events = hook.wait("the disk alert", Duration::from_secs(30), disk);
    let alert = events.iter().find(|e| disk(e)).unwrap();
    assert_eq!(alert["subject"], "test-host");
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.starts_with("host test-host's disk is ")
            && message.ends_with("% full (above 0.001%)"),
        "{message}"
    );
    let hosts = dev.json(&["hosts", "--json"]);
    let used = &hosts[0]["resources"];
    assert!(used["disk_used_bytes"].as_u64().unwrap() > 0, "{hosts}");
    let listed = dev.json(&["alerts", "--json"]);
    assert_eq!(listed[0]["rule"], "disk");
    assert!(listed[0].get("resolved").is_none(), "{listed}");
}

#[test]
fn a_host_whose_agent_is_gone_alerts_after_its_time_and_resolves_when_it_is_back() {
    let receiver = Receiver::start();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("server.yaml");
    std::fs::write(
        &config,
        format!(
            "notify:\n  - {}\nalerts:\n  host_down: {{ for: 3s }}\n",
            receiver.url
        ),
    )
    .unwrap();
    let mut cluster = Cluster::start_with_server_args(2, &["--config", config.to_str().unwrap()]);
    let is_host_down = |event: &'static str| {
        move |body: &Value| {
            body["event"] == event && body["rule"] == "host_down" && body["subject"] == "host-1"
        }
    };

    // The agent of host-1 stops (its host is cut off from the server): after 3 seconds, one alert.
    let gone_at = std::time::Instant::now();
    cluster.kill_agent("host-1");
    let bodies = receiver.wait(
        "the host_down alert",
        Duration::from_secs(30),
        is_host_down("alert_firing"),
    );
    let waited = gone_at.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "fired after {waited:?}, before the rule's 3s"
    );
    let firing = bodies
        .iter()
        .find(|b| is_host_down("alert_firing")(b))
        .unwrap();
    assert_eq!(firing["message"], "host host-1 has been down for 3s");
    assert!(
        !bodies.iter().any(|b| b["subject"] == "host-2"),
        "host-2 is up: {bodies:#?}"
    );
    let alerts = cluster.server.json(&["alerts", "--json"]);
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "host_down"
                && a["subject"] == "host-1"
                && a["resolved"].is_null()),
        "{alerts:#}"
    );

    // The agent comes back: the alert is resolved, once.
    cluster.start_agent("host-1");
    let bodies = receiver.wait(
        "the host_down alert to resolve",
        Duration::from_secs(40),
        is_host_down("alert_resolved"),
    );
    std::thread::sleep(Duration::from_secs(1));
    let count = |event| {
        receiver
            .bodies()
            .iter()
            .filter(|b| is_host_down(event)(b))
            .count()
    };
    assert_eq!(
        (count("alert_firing"), count("alert_resolved")),
        (1, 1),
        "{bodies:#?}"
    );
}
