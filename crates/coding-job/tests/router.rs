//! `dev`'s router in front of real containers: a rolling update of a routed job under steady load
//! loses no request, and a route with nothing healthy behind it answers 503 naming why.

mod support;

use std::time::Duration;

use support::load::{Load, LoadResult};
use support::{Dev, IMAGE, http_get_host, wait_for};

fn web_yaml(release: u32) -> String {
    format!(
        r#"service: site
jobs:
  - name: web
    image: {IMAGE}
    instances: 3
    port: auto
    route: www
    drain_timeout: 1s
    env: {{ RELEASE: "{release}" }}
    command: [sh, -c, 'mkdir -p /tmp/www && echo "release $RELEASE" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s, retries: 2 }}
    update: {{ batch_size: 1, min_healthy_time: 1s }}
"#
    )
}

#[test]
fn a_rolling_update_under_load_through_the_router_fails_no_request() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    dev.push_yaml("site.yaml", &web_yaml(1));
    dev.ok(&["up", "site"]);
    wait_for(
        "the route to serve release 1",
        Duration::from_secs(30),
        || match http_get_host(&router, "www.cj.localhost", "/") {
            Ok((200, body)) if body.contains("release 1") => Some(()),
            _ => None,
        },
    );

    // Steady load from two clients, each request on a new connection, counting every failure.
    let load = Load::start(&router, "www.cj.localhost", 2);
    std::thread::sleep(Duration::from_secs(1));
    dev.push_yaml("site.yaml", &web_yaml(2));
    dev.ok(&["rolling-update", "site"]);
    wait_for(
        "the route to serve release 2",
        Duration::from_secs(30),
        || match http_get_host(&router, "www.cj.localhost", "/") {
            Ok((200, body)) if body.contains("release 2") => Some(()),
            _ => None,
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let LoadResult { ok, failures } = load.finish();
    assert!(ok > 200, "too little load to mean anything: {ok} requests");
    assert_eq!(failures.len(), 0, "{ok} ok; failures: {failures:?}");

    // Nothing healthy: a 503 that names the environment, the route and why.
    dev.ok(&["down", "site"]);
    let (status, body) = http_get_host(&router, "www.cj.localhost", "/").unwrap();
    assert_eq!(status, 404, "a route that is down is gone: {body}");
}

#[test]
fn a_route_with_no_healthy_task_answers_503_with_the_reason() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    dev.push_yaml(
        "sick.yaml",
        &format!(
            "service: sick\njobs:\n  - name: api\n    image: {IMAGE}\n    port: auto\n    route: true\n    command: [sleep, '100000']\n    check: {{ http: /, interval: 1s, timeout: 1s, retries: 1 }}\n"
        ),
    );
    let up = dev.cli(&["up", "sick", "--timeout", "5"]);
    assert!(!up.status.success());
    let (status, body) = wait_for("a 503", Duration::from_secs(30), || {
        http_get_host(&router, "api.cj.localhost", "/")
            .ok()
            .filter(|(status, _)| *status == 503)
    });
    assert_eq!(status, 503);
    for needle in ["production", "api", "1 task"] {
        assert!(body.contains(needle), "{needle} missing from: {body}");
    }
    dev.ok(&["down", "sick"]);
}

/// A routed job whose `/cgi-bin/status` answers `STATUS` (busybox httpd's CGI), at `version`.
fn versioned_yaml(status: &str) -> String {
    format!(
        r##"service: counted
jobs:
  - name: api
    image: {IMAGE}
    instances: 2
    port: auto
    route: true
    env: {{ ANSWER: "{status}" }}
    command: [sh, -c, 'mkdir -p /tmp/www/cgi-bin && printf "#!/bin/sh\nprintf \"Status: $ANSWER\\r\\nContent-Type: text/plain\\r\\n\\r\\n$ANSWER\\n\"\n" > /tmp/www/cgi-bin/status && chmod +x /tmp/www/cgi-bin/status && echo ok > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s, retries: 2 }}
    update: {{ batch_size: 1, min_healthy_time: 1s }}
"##
    )
}

#[test]
fn the_router_counts_each_version_of_a_job_apart() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    dev.push_yaml("counted.yaml", &versioned_yaml("200 OK"));
    dev.ok(&["up", "counted"]);
    let sent = std::cell::Cell::new(0u64);
    let answers = |count: usize| {
        (0..count)
            .map(|_| {
                sent.set(sent.get() + 1);
                http_get_host(&router, "api.cj.localhost", "/cgi-bin/status")
                    .unwrap()
                    .0
            })
            .collect::<Vec<u16>>()
    };
    wait_for("the route to answer", Duration::from_secs(30), || {
        (answers(1) == [200]).then_some(())
    });
    let first = answers(20);
    assert!(first.iter().all(|&status| status == 200), "{first:?}");

    dev.push_yaml("counted.yaml", &versioned_yaml("500 Internal Server Error"));
    dev.ok(&["rolling-update", "counted"]);
    // The routers follow the table a moment after the rollout ends.
    wait_for("version 2 to answer", Duration::from_secs(30), || {
        (answers(1) == [500]).then_some(())
    });
    let second = answers(10);
    assert!(second.iter().all(|&status| status == 500), "{second:?}");

    let (status, page) = http_get_json(&router, "cj.localhost");
    assert_eq!(status, 200, "{page}");
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    let route = page["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|route| route["name"] == "api")
        .unwrap_or_else(|| panic!("no api route: {page}"));
    let versions: Vec<(u64, u64, u64)> = route["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|version| {
            (
                version["version"].as_u64().unwrap(),
                version["answered"].as_u64().unwrap(),
                version["status_5xx"].as_u64().unwrap(),
            )
        })
        .collect();
    // Every request was answered by a backend of one version or the other: 200s by version 1,
    // 500s by version 2 (at least the last eleven).
    let [(1, old_answered, 0), (2, new_answered, new_5xx)] = versions[..] else {
        panic!("expected versions 1 and 2: {route}");
    };
    assert!(old_answered >= 21, "{route}");
    assert!(new_answered >= 11 && new_5xx == new_answered, "{route}");
    assert_eq!(old_answered + new_answered, sent.get(), "{route}");
    let buckets = route["versions"][1]["latency_buckets"].as_array().unwrap();
    let timed: u64 = buckets.iter().map(|count| count.as_u64().unwrap()).sum();
    assert_eq!(timed, new_answered);

    // The same counts for Prometheus at DOMAIN/metrics, in a text its own checker accepts.
    let (status, text) = http_get_host(&router, "cj.localhost", "/metrics").unwrap();
    assert_eq!(status, 200, "{text}");
    let labels = r#"env="production",route="api",service="counted",job="api""#;
    for line in [
        format!(
            "coding_job_router_version_requests_total{{{labels},version=\"1\"}} {old_answered}"
        ),
        format!(
            "coding_job_router_version_responses_5xx_total{{{labels},version=\"2\"}} {new_5xx}"
        ),
        format!(
            "coding_job_router_version_response_seconds_count{{{labels},version=\"2\"}} {new_answered}"
        ),
    ] {
        assert!(
            text.lines().any(|written| written == line),
            "no {line} in:\n{text}"
        );
    }
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool refused the exposition: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    dev.ok(&["down", "counted"]);
}

/// GET / of `host` through the router, asking for JSON.
fn http_get_json(address: &str, host: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
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
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
