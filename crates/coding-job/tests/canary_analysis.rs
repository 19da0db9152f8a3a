//! Canaries judged by their real traffic, through `dev`'s router in front of real containers
//! (busybox httpd with a CGI script): a version that answers 500 to a third of its requests is
//! rolled back by the analysis with the reason while the old one keeps serving; a healthy one is
//! promoted after its checks; with no traffic the rollout waits at the gate; a version that logs
//! errors is rolled back by `log_errors`; `canary_weight` shares the route's requests as it says,
//! and the canary header routes one request on purpose.

mod support;

use std::time::Duration;

use support::load::Load;
use support::{Dev, IMAGE, http_get_host, wait_for};

const HOST: &str = "api.cj.localhost";
const PATH: &str = "/cgi-bin/status";

/// A routed job of three tasks whose `/cgi-bin/status` answers 500 to every `fail_every`th
/// request (never with 0) and says `release`; with `log_errors` it also writes an ERROR line to
/// stderr every 200 ms. `update` is the job's `update:` mapping.
fn judged_yaml(release: u32, fail_every: u32, log_errors: bool, update: &str) -> String {
    let logger = if log_errors {
        "(while true; do echo 'ERROR: payment failed' >&2; sleep 0.2; done) &"
    } else {
        ""
    };
    format!(
        r#"service: judged
jobs:
  - name: api
    image: {IMAGE}
    instances: 3
    port: auto
    route: true
    drain_timeout: 1s
    env: {{ RELEASE: "{release}" }}
    command:
      - sh
      - -c
      - |
        mkdir -p /tmp/www/cgi-bin
        echo ok > /tmp/www/index.html
        cat > /tmp/www/cgi-bin/status <<EOF
        #!/bin/sh
        n=\$(cat /tmp/n 2>/dev/null || echo 0); n=\$((n+1)); echo \$n > /tmp/n
        if [ {fail_every} != 0 ] && [ \$((n % {fail_every})) = 0 ]; then printf 'Status: 500 Internal Server Error\r\n\r\nfail\n'; else printf 'Status: 200 OK\r\n\r\nrelease {release}\n'; fi
        EOF
        chmod +x /tmp/www/cgi-bin/status
        {logger}
        exec httpd -f -p "$PORT" -h /tmp/www
    check: {{ http: /, interval: 1s, timeout: 1s, retries: 2 }}
    update: {update}
"#
    )
}

/// Judged every 3 s; two passes promote, one failure rolls back, five requests are enough.
const ANALYSED: &str = r#"{ canary: 1, min_healthy_time: 1s, analysis: { interval: 3s, checks: 2, failure_limit: 0, min_requests: 5, success_rate: ">= 99%" } }"#;

fn start_judged(dev: &Dev, router: &str, update: &str) {
    dev.push_yaml("judged.yaml", &judged_yaml(1, 0, false, update));
    dev.ok(&["up", "judged"]);
    wait_for("the route to answer", Duration::from_secs(30), || {
        matches!(http_get_host(router, HOST, PATH), Ok((200, _))).then_some(())
    });
}

/// The newest deployment of `judged`.
fn last_deployment(dev: &Dev) -> serde_json::Value {
    let deployments = dev.json(&["deployments", "judged", "--json"]);
    deployments[0].clone()
}

fn verdicts(deployment: &serde_json::Value) -> Vec<String> {
    deployment["jobs"][0]["analysis"]
        .as_array()
        .map(|measurements| {
            measurements
                .iter()
                .map(|m| m["verdict"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `RELEASE` of every running container of `judged`, as the engine itself has them.
fn engine_releases(dev: &Dev) -> Vec<String> {
    let listed = std::process::Command::new("docker")
        .args([
            "ps",
            "--filter",
            &format!("label=coding-job.cluster={}", dev.cluster),
            "--filter",
            "label=coding-job.service=judged",
            "--format",
            "{{.ID}}",
        ])
        .output()
        .expect("docker ps");
    let mut releases: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|id| {
            let inspected = std::process::Command::new("docker")
                .args([
                    "inspect",
                    "--format",
                    "{{range .Config.Env}}{{println .}}{{end}}",
                    id,
                ])
                .output()
                .expect("docker inspect");
            String::from_utf8_lossy(&inspected.stdout)
                .lines()
                .find_map(|line| line.strip_prefix("RELEASE=").map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    releases.sort();
    releases
}

/// Every task's version, as `status` says.
fn versions(dev: &Dev) -> Vec<u64> {
    dev.status("judged")
        .iter()
        .map(|task| task.version.unwrap_or(0))
        .collect()
}

#[test]
fn a_canary_failing_a_third_of_its_requests_is_rolled_back_by_the_analysis() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    start_judged(&dev, &router, ANALYSED);
    let load = Load::start_path(&router, HOST, PATH, 2);

    dev.push_yaml("judged.yaml", &judged_yaml(2, 3, false, ANALYSED));
    let rollout = dev.cli(&["rolling-update", "judged"]);
    let printed = String::from_utf8_lossy(&rollout.stdout).into_owned()
        + &String::from_utf8_lossy(&rollout.stderr);
    assert!(!rollout.status.success(), "{printed}");
    assert!(
        printed.contains("canary measurement fail"),
        "no failed measurement shown: {printed}"
    );

    let deployment = last_deployment(&dev);
    assert_eq!(deployment["status"], "rolled-back", "{deployment:#}");
    let message = deployment["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("canary success rate") && message.contains("< 99% over 3s"),
        "the reason is not in words: {message}"
    );
    assert_eq!(
        verdicts(&deployment).last().map(String::as_str),
        Some("fail")
    );
    let failed = &deployment["jobs"][0]["analysis"][0];
    assert!(failed["requests"].as_u64().unwrap() >= 5, "{failed}");
    assert!(
        failed["success_rate_bp"].as_u64().unwrap() < 9900,
        "{failed}"
    );

    // Back on version 1 everywhere, and serving: after the rollback no request fails.
    wait_for(
        "every task back on version 1",
        Duration::from_secs(30),
        || (versions(&dev) == [1, 1, 1]).then_some(()),
    );
    // What the engine runs, not what the server believes: three containers of release 1.
    wait_for(
        "the engine to run release 1 only",
        Duration::from_secs(30),
        || (engine_releases(&dev) == ["1", "1", "1"]).then_some(()),
    );
    let during = load.finish();
    assert!(
        during.ok > 50,
        "too little load to mean anything: {}",
        during.ok
    );
    let after = Load::start_path(&router, HOST, PATH, 2);
    std::thread::sleep(Duration::from_secs(2));
    let after = after.finish();
    assert!(after.ok > 20, "{}", after.ok);
    assert_eq!(after.failures, Vec::<String>::new());
    // The failures under load were the canary's 500s, and only a part of the answers.
    assert!(
        during
            .failures
            .iter()
            .all(|failure| failure.contains("500")),
        "{:?}",
        during.failures
    );
    assert!(
        during.failures.len() < during.ok,
        "{} failed",
        during.failures.len()
    );
    dev.ok(&["down", "judged"]);
}

#[test]
fn a_healthy_canary_is_promoted_after_its_checks_and_no_traffic_waits_at_the_gate() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    start_judged(&dev, &router, ANALYSED);

    // Healthy, under load: two passing measurements promote, and the rollout goes on.
    let load = Load::start_path(&router, HOST, PATH, 2);
    dev.push_yaml("judged.yaml", &judged_yaml(2, 0, false, ANALYSED));
    let printed = dev.ok(&["rolling-update", "judged"]);
    let result = load.finish();
    assert_eq!(result.failures, Vec::<String>::new(), "{printed}");
    let deployment = last_deployment(&dev);
    assert_eq!(deployment["status"], "succeeded", "{deployment:#}");
    assert_eq!(verdicts(&deployment), ["pass", "pass"], "{deployment:#}");
    assert_eq!(versions(&dev), [2, 2, 2]);
    let shown = dev.ok(&["deployments", "judged"]);
    assert!(shown.contains("canary analysis of api"), "{shown}");
    assert!(shown.contains("pass:"), "{shown}");

    // No traffic: every measurement is inconclusive, and the rollout waits for a person.
    dev.push_yaml("judged.yaml", &judged_yaml(3, 0, false, ANALYSED));
    let printed = dev.ok(&["rolling-update", "judged"]);
    assert!(printed.contains("waiting:"), "{printed}");
    let deployment = last_deployment(&dev);
    assert_eq!(deployment["status"], "awaiting-promotion", "{deployment:#}");
    assert_eq!(verdicts(&deployment), ["inconclusive", "inconclusive"]);
    let message = deployment["message"].as_str().unwrap();
    assert!(message.contains("inconclusive"), "{message}");
    dev.ok(&["promote", "judged"]);
    wait_for(
        "the promoted rollout to end",
        Duration::from_secs(60),
        || (last_deployment(&dev)["status"] == "succeeded").then_some(()),
    );
    assert_eq!(versions(&dev), [3, 3, 3]);
    dev.ok(&["down", "judged"]);
}

#[test]
fn a_canary_that_logs_errors_is_rolled_back_by_log_errors() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    let update = r#"{ canary: 1, min_healthy_time: 1s, analysis: { interval: 3s, checks: 2, failure_limit: 0, log_errors: { pattern: "ERROR|Exception", max_per_minute: 5 } } }"#;
    start_judged(&dev, &router, update);
    dev.push_yaml("judged.yaml", &judged_yaml(2, 0, true, update));
    let rollout = dev.cli(&["rolling-update", "judged"]);
    assert!(!rollout.status.success());
    let deployment = last_deployment(&dev);
    assert_eq!(deployment["status"], "rolled-back", "{deployment:#}");
    let measured = &deployment["jobs"][0]["analysis"][0];
    // Five lines a second for 3 s, counted on the host.
    assert!(measured["log_errors"].as_u64().unwrap() >= 10, "{measured}");
    let message = deployment["message"].as_str().unwrap();
    assert!(
        message.contains("lines matching \"ERROR|Exception\" in 3s, more than 5/min"),
        "{message}"
    );
    wait_for(
        "every task back on version 1",
        Duration::from_secs(30),
        || (versions(&dev) == [1, 1, 1]).then_some(()),
    );
    // What the engine runs, not what the server believes: three containers of release 1.
    wait_for(
        "the engine to run release 1 only",
        Duration::from_secs(30),
        || (engine_releases(&dev) == ["1", "1", "1"]).then_some(()),
    );
    dev.ok(&["down", "judged"]);
}

#[test]
fn canary_weight_shares_the_routes_requests_and_the_header_routes_on_purpose() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    // Four tasks, one canary taking 10% (round-robin alone would give it 25%); the gate holds
    // the canary phase while it is measured.
    let update = "{ canary: 1, canary_weight: 10%, manual_gate: true, min_healthy_time: 1s }";
    start_judged(&dev, &router, update);
    let four = judged_yaml(1, 0, false, update).replace("instances: 3", "instances: 4");
    dev.push_yaml("judged.yaml", &four);
    dev.ok(&["up", "judged"]);
    let next = judged_yaml(2, 0, false, update).replace("instances: 3", "instances: 4");
    dev.push_yaml("judged.yaml", &next);
    let printed = dev.ok(&["rolling-update", "judged"]);
    assert!(printed.contains("waiting:"), "{printed}");
    // The table carries the canary once its task serves.
    wait_for(
        "the canary to take requests",
        Duration::from_secs(30),
        || {
            (0..50)
            .any(|_| {
                matches!(http_get_host(&router, HOST, PATH), Ok((200, body)) if body.contains("release 2"))
            })
            .then_some(())
        },
    );

    let mut canary = 0;
    for _ in 0..2000 {
        let (status, body) = http_get_host(&router, HOST, PATH).unwrap();
        assert_eq!(status, 200, "{body}");
        if body.contains("release 2") {
            canary += 1;
        }
    }
    assert!(
        (160..=240).contains(&canary),
        "the canary took {canary} of 2000 requests, expected 8-12%"
    );

    // The header (and the cookie) send one request where it says, whatever the weight.
    let asked = |header: &str| {
        (0..20)
            .map(|_| {
                let (status, body) = http_get_with(&router, HOST, PATH, header);
                assert_eq!(status, 200, "{body}");
                body.contains("release 2")
            })
            .collect::<Vec<bool>>()
    };
    assert!(
        asked("X-Coding-Job-Canary: always")
            .iter()
            .all(|canary| *canary)
    );
    assert!(
        asked("X-Coding-Job-Canary: never")
            .iter()
            .all(|canary| !*canary)
    );
    assert!(
        asked("Cookie: theme=dark; coding-job-canary=always")
            .iter()
            .all(|canary| *canary)
    );

    // Promoted: the phase ends, and every task serves release 2.
    dev.ok(&["promote", "judged"]);
    wait_for(
        "the promoted rollout to end",
        Duration::from_secs(90),
        || (last_deployment(&dev)["status"] == "succeeded").then_some(()),
    );
    assert_eq!(versions(&dev), [3, 3, 3, 3]);
    let table = dev.http_get("/v1/routes");
    let table: serde_json::Value = serde_json::from_str(&table).unwrap();
    let route = &table["routes"][0];
    assert!(route.get("canary_weight_bp").is_none(), "{route}");
    dev.ok(&["down", "judged"]);
}

/// GET `path` of `host` at `router` with one more header line; (status, body).
fn http_get_with(router: &str, host: &str, path: &str, header: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(router).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{header}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}
