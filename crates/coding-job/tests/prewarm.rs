//! Pre-warm on real engines: a `coding-job server`, an agent per test-bed host and a real
//! registry (Debian's `docker-registry`). Pushing a config makes each host's agent pull the
//! images of the tasks it runs or may run, and no other; `hosts prewarm` reports them present;
//! `up` then starts the tasks with the registry gone, because nothing needs pulling.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cj_api::{PrewarmResponse, PullOutcome};
use support::cluster::Cluster;
use support::testbed::TestHost;
use support::{IMAGE, describe, wait_for};

/// How long an agent may take to pull an image by itself once the config naming it is pushed.
const PREWARM_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn pushed_images_are_pulled_where_their_tasks_may_run_and_up_then_needs_no_registry() {
    let mut cluster = Cluster::start(2);
    let mut registry = GatewayRegistry::start(cluster.bed.gateway());
    let pinned = format!("{}/prewarm/pinned:1", registry.address);
    let placed = format!("{}/prewarm/placed:1", registry.address);
    for image in [&pinned, &placed] {
        registry.push_from(cluster.bed.host("host-1"), image);
    }
    for host in ["host-1", "host-2"] {
        for image in [&pinned, &placed] {
            assert!(!has_image(&cluster, host, image), "{host} has {image}");
        }
    }

    // Pushed, not started: host-1 may run `pinned` (its config names it) and host-2 `placed`
    // (only host-2 carries the label its constraint asks for).
    let yaml = format!(
        "service: warm
jobs:
  - name: pinned
    image: {pinned}
    run_on_host: host-1
    command: [sleep, \"3600\"]
  - name: placed
    image: {placed}
    instances: 1
    constraints: {{ slot: host-2 }}
    command: [sleep, \"3600\"]
"
    );
    cluster.server.push_yaml("warm.yaml", &yaml);
    wait_for("host-1 to pull its image", PREWARM_DEADLINE, || {
        has_image(&cluster, "host-1", &pinned).then_some(())
    });
    wait_for("host-2 to pull its image", PREWARM_DEADLINE, || {
        has_image(&cluster, "host-2", &placed).then_some(())
    });

    // Each host's set is exactly its own image, found present (nothing pulled twice).
    for (host, image) in [("host-1", &pinned), ("host-2", &placed)] {
        let (code, response) = prewarm(&cluster, host);
        assert_eq!(code, Some(0), "{response:?}");
        let outcomes: Vec<(&str, &PullOutcome)> = response
            .images
            .iter()
            .map(|pull| (pull.image.as_str(), &pull.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [(image.as_str(), &PullOutcome::Present)],
            "{host}"
        );
    }
    assert!(
        !has_image(&cluster, "host-2", &pinned),
        "host-2 pulled host-1's image"
    );
    assert!(
        !has_image(&cluster, "host-1", &placed),
        "host-1 pulled host-2's image"
    );

    // With the registry gone, `up` still starts both: no pull is needed.
    registry.stop();
    let up = cluster.server.ok(&["up", "warm"]);
    assert!(up.contains("2 started"), "{up}");
    cluster.wait_running("warm", &["pinned", "placed"]);
    assert_eq!(cluster.containers("host-1", "pinned").len(), 1);
    assert_eq!(cluster.containers("host-2", "placed").len(), 1);

    // A new version naming an image the registry cannot give: the pull fails, is reported with
    // the engine's reason, and the command exits 1; what is present stays present.
    let missing = format!("{}/prewarm/pinned:2", registry.address);
    cluster
        .server
        .push_yaml("warm.yaml", &yaml.replace(&pinned, &missing));
    let (code, response) = prewarm(&cluster, "host-1");
    assert_eq!(code, Some(1), "{response:?}");
    let outcome = |image: &str| {
        response
            .images
            .iter()
            .find(|pull| pull.image == image)
            .map(|pull| pull.outcome.clone())
    };
    assert_eq!(outcome(&pinned), Some(PullOutcome::Present));
    match outcome(&missing) {
        Some(PullOutcome::Failed { error }) => assert!(!error.is_empty()),
        other => panic!("expected {missing} to fail, got {other:?}"),
    }
    let text = cluster.server.cli(&["hosts", "prewarm", "host-1"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(1), "{}", describe(&text));
    assert!(stdout.contains(&format!("present  {pinned}")), "{stdout}");
    assert!(
        stdout.contains(&format!("failed   {missing}: ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("host-1: 1 already present, 0 pulled, 1 failed"),
        "{stdout}"
    );

    // A host without its agent cannot pull (503, exit 1); an unknown host is a 404 (exit 2).
    cluster.kill_agent("host-2");
    cluster.wait_for_hosts(&["host-2".to_owned()], "down");
    let down = cluster.server.cli(&["hosts", "prewarm", "host-2"]);
    assert_eq!(down.status.code(), Some(1), "{}", describe(&down));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("host-2 has no agent connected"),
        "{}",
        describe(&down)
    );
    let unknown = cluster.server.cli(&["hosts", "prewarm", "host-9"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no host named host-9"),
        "{}",
        describe(&unknown)
    );
}

/// `hosts prewarm HOST --json`: the exit code and the answer.
fn prewarm(cluster: &Cluster, host: &str) -> (Option<i32>, PrewarmResponse) {
    let output = cluster.server.cli(&["hosts", "prewarm", host, "--json"]);
    let response = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", describe(&output)));
    (output.status.code(), response)
}

/// Whether `host`'s engine has `image` (by that name).
fn has_image(cluster: &Cluster, host: &str, image: &str) -> bool {
    let host = cluster.bed.host(host);
    Command::new("docker")
        .arg("-H")
        .arg(&host.docker_host)
        .args(["image", "inspect", "-f", "{{.Id}}", image])
        .output()
        .expect("failed to run docker")
        .status
        .success()
}

/// A `docker-registry` in the root namespace, listening on the test bed's gateway only, where
/// every host's engine reaches it (over plain HTTP, which the bed allows for its own subnet).
/// Stopped, and its storage removed, when dropped.
struct GatewayRegistry {
    /// `GATEWAY:PORT`, as image names start.
    address: String,
    process: Option<Child>,
    dir: tempfile::TempDir,
}

impl GatewayRegistry {
    fn start(ip: &str) -> GatewayRegistry {
        // Another process may take the port before the registry binds it: then try another.
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("cj-prewarm-registry-")
                .tempdir()
                .unwrap();
            let port = std::net::TcpListener::bind((ip, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let address = format!("{ip}:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(&config, registry_config(dir.path(), &address)).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let process = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("failed to start docker-registry (apt-get install docker-registry)");
            let mut registry = GatewayRegistry {
                address,
                process: Some(process),
                dir,
            };
            if registry.wait_until_ready() {
                return registry;
            }
            registry.stop();
            let log = std::fs::read_to_string(registry.dir.path().join("registry.log"));
            eprintln!("docker-registry on {ip}:{port} did not start: {log:?}");
        }
        panic!("docker-registry did not start on {ip}");
    }

    /// Pushes the test image as `image` from `host`'s engine, then removes the name there again,
    /// so the host has the layers but not the image by that name. The main engine cannot push:
    /// it allows plain HTTP to loopback registries only.
    fn push_from(&self, host: &TestHost, image: &str) {
        host.docker(&["tag", IMAGE, image]);
        host.docker(&["push", image]);
        host.docker(&["rmi", image]);
    }

    /// True once `GET /v2/` answers 200; false if the process exited or ten seconds passed.
    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let process = self.process.as_mut().unwrap();
            if process.try_wait().unwrap().is_some() {
                return false;
            }
            if let Some(status) = http_status(&self.address, "/v2/") {
                return status == 200;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for GatewayRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The registry's own config: the given address only, storage in `dir`, no auth, quiet.
fn registry_config(dir: &Path, address: &str) -> String {
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
http:
  addr: {address}
  secret: cj-prewarm-test
",
        storage = dir.join("storage").display()
    )
}

/// The status code of a plain `GET path` on `address`; `None` if nothing answers yet.
fn http_status(address: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}
