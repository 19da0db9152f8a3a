//! Code artifacts on real hosts: a fixed image whose code (a tarball named by a version
//! variable) is fetched by each host's agent once, kept in the host's cache, checked against its
//! checksum and unpacked before the container starts; a wrong checksum fails the new task and
//! leaves the old one serving.

mod support;

use std::time::Duration;

use support::artifact_server::{ArtifactServer, incompressible, sha256, tarball};
use support::cluster::Cluster;
use support::{Dev, IMAGE, describe, free_port, wait_for};

/// A version of the code: a page saying which version it is, and some weight.
fn code(version: &str) -> Vec<u8> {
    tarball(&[
        ("index.html", format!("api {version}\n").as_bytes()),
        ("lib/app.jar", &incompressible(200_000)),
    ])
}

/// The job of seed 002: a fixed image serving whatever code it is given at /app.
fn api_file(artifacts: &str) -> String {
    format!(
        r#"service: shop
jobs:
  - name: api
    image: {IMAGE}
    instances: 4
    port: auto
    artifact:
      url: "{artifacts}/api/{{{{ vars.api_version }}}}.tar.gz"
      sha256: "{{{{ vars.api_sha256 }}}}"
      path: /app
    command: [sh, -c, 'exec httpd -f -p "$PORT" -h /app']
    check: {{ http: /, interval: 1s, timeout: 1s }}
"#
    )
}

/// What each task of `api` answers, asked inside its container on its host's engine:
/// (task, host, page), the page `None` when the container does not answer (it is being
/// replaced).
fn pages(cluster: &Cluster) -> Vec<(String, String, Option<String>)> {
    let mut pages = Vec::new();
    for task in cluster.server.status("shop/api") {
        let (Some(host), Some(id)) = (task.actual_host.clone(), task.container_id.clone()) else {
            continue;
        };
        let engine = cluster.bed.host(&host);
        let asked = std::process::Command::new("docker")
            .arg("-H")
            .arg(&engine.docker_host)
            .args(["exec", &id, "sh", "-c"])
            .arg("wget -qO- http://127.0.0.1:$PORT/index.html")
            .output()
            .expect("failed to run docker");
        let page = asked
            .status
            .success()
            .then(|| String::from_utf8_lossy(&asked.stdout).trim().to_owned());
        pages.push((task.task, host, page));
    }
    pages
}

/// Whether all four tasks answer `expected`.
fn all_serve(pages: &[(String, String, Option<String>)], expected: &str) -> bool {
    pages.len() == 4
        && pages
            .iter()
            .all(|(_, _, page)| page.as_deref() == Some(expected))
}

#[test]
fn each_host_fetches_an_artifact_once_and_a_new_version_replaces_the_tasks() {
    let cluster = Cluster::start(2);
    let server = &cluster.server;
    let artifacts = ArtifactServer::start(cluster.bed.gateway());
    let (one, two) = (code("1"), code("2"));
    artifacts.put("/api/1.tar.gz", one.clone());
    artifacts.put("/api/2.tar.gz", two.clone());
    server.ok(&[
        "env",
        "vars",
        "production",
        "--set",
        "api_version=1",
        "--set",
        &format!("api_sha256={}", sha256(&one)),
    ]);
    server.push_yaml("shop.yaml", &api_file(&artifacts.url));
    server.ok(&["up", "shop"]);

    let served = pages(&cluster);
    assert!(all_serve(&served, "api 1"), "{served:?}");
    let hosts: std::collections::BTreeSet<&str> =
        served.iter().map(|(_, host, _)| host.as_str()).collect();
    assert_eq!(
        hosts.len(),
        2,
        "the tasks are spread over both hosts: {served:?}"
    );
    assert_eq!(artifacts.gets("/api/1.tar.gz"), 2, "one fetch per host");

    // The history says where each container's code came from.
    let notes: Vec<String> = server
        .history("shop/api")
        .events
        .into_iter()
        .filter(|event| event.kind == "created")
        .filter_map(|event| event.detail)
        .collect();
    let fetched = notes
        .iter()
        .filter(|n| n.starts_with("artifact fetched: "))
        .count();
    let cached = notes
        .iter()
        .filter(|n| *n == "artifact from the host's cache")
        .count();
    assert_eq!((fetched, cached), (2, 2), "{notes:?}");

    // Another version is a variable away: the tasks are replaced, each host fetches it once.
    let changed = server.ok(&[
        "env",
        "vars",
        "production",
        "--set",
        "api_version=2",
        "--set",
        &format!("api_sha256={}", sha256(&two)),
    ]);
    assert!(
        changed.contains("api-1"),
        "the replaced tasks are listed: {changed}"
    );
    wait_for(
        "every task to serve version 2",
        Duration::from_secs(60),
        || all_serve(&pages(&cluster), "api 2").then_some(()),
    );
    assert_eq!(artifacts.gets("/api/2.tar.gz"), 2);
    assert_eq!(
        artifacts.gets("/api/1.tar.gz"),
        2,
        "version 1 was not fetched again"
    );

    // A version never uploaded: every task says why it is not replaced, and keeps serving.
    // (With version 2's checksum, version 2's file in the cache would do: it is that file.)
    let never_built = sha256(b"version 3, never uploaded");
    server.ok(&[
        "env",
        "vars",
        "production",
        "--set",
        "api_version=3",
        "--set",
        &format!("api_sha256={never_built}"),
    ]);
    let missing = format!(
        "its replacement failed: artifact {}/api/3.tar.gz: HTTP 404 Not Found",
        artifacts.url
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = server.status("shop/api");
        let shown = rows.iter().filter(|row| {
            row.state == "running" && row.detail.as_deref().is_some_and(|d| d.contains(&missing))
        });
        if shown.count() == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every task to show {missing:?}: {rows:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(all_serve(&pages(&cluster), "api 2"));
    server.ok(&["down", "shop"]);
}

/// One task on a fixed port of this machine, its code from `url` checked against `sha`.
fn single_file(port: u16, url: &str, sha: &str) -> String {
    format!(
        r#"service: shop
jobs:
  - name: api
    image: {IMAGE}
    port: {port}
    artifact: {{ url: "{url}", sha256: "{sha}", path: /srv/app }}
    command: [httpd, -f, -p, "{port}", -h, /srv/app]
    check: {{ http: /, interval: 1s, timeout: 1s }}
    update: {{ healthy_deadline: 10s, auto_rollback: true }}
"#
    )
}

fn page(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.trim().to_owned())
}

#[test]
fn a_checksum_mismatch_fails_the_new_task_and_the_old_one_keeps_serving() {
    let dev = Dev::start();
    let artifacts = ArtifactServer::start("127.0.0.1");
    let port = free_port();
    let (one, two) = (code("1"), code("2"));
    artifacts.put("/api/1.tar.gz", one.clone());
    artifacts.put("/api/2.tar.gz", two);
    let url = |version: &str| format!("{}/api/{version}.tar.gz", artifacts.url);
    dev.push_yaml("shop.yaml", &single_file(port, &url("1"), &sha256(&one)));
    dev.ok(&["up", "shop"]);
    assert_eq!(page(port).as_deref(), Some("api 1"));
    let before = dev.status("shop/api").remove(0);

    // Version 2 with the checksum of another build of it: what is served is not what was
    // built. (Version 1's checksum would do no harm: the cache holds that file, by checksum.)
    let built = sha256(b"the build that was never uploaded");
    dev.push_yaml("shop.yaml", &single_file(port, &url("2"), &built));
    let output = std::thread::scope(|scope| {
        let rollout = scope.spawn(|| dev.cli(&["rolling-update", "shop"]));
        while !rollout.is_finished() {
            assert_eq!(
                page(port).as_deref(),
                Some("api 1"),
                "the old version serves throughout"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        rollout.join().unwrap()
    });
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let expected = format!(
        "shop/api/api: artifact {}: sha256 mismatch: expected {built}, got {}",
        url("2"),
        sha256(&artifacts.content("/api/2.tar.gz"))
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains(&expected),
        "{printed}\nexpected: {expected}"
    );
    let deployment = &dev.json(&["deployments", "shop", "--json"])[0];
    assert_eq!(deployment["status"], "rolled-back", "{deployment}");
    let message = deployment["message"].as_str().unwrap_or_default();
    assert!(message.contains(&expected), "{message}");

    // Never stopped: the same container, started once.
    let after = dev.status("shop/api").remove(0);
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.started_at, before.started_at);
    assert_eq!(page(port).as_deref(), Some("api 1"));
    dev.ok(&["down", "shop"]);
}
