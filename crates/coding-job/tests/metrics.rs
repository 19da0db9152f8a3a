//! `GET /metrics` scraped by a real Prometheus (Debian's `prometheus`): a running task shows up
//! as a `coding_job_tasks` series Prometheus can query, and it is gone from the exposition once
//! its job is down; a server that requires tokens is scraped with a `read` token from a
//! credentials file; a standalone agent on a host of a test bed serves its own series.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::cluster::Cluster;
use support::{Dev, IMAGE, Server, free_port, http_get_host, wait_for};

/// A Prometheus process on a temporary directory, killed (and its directory removed) on drop.
struct Prometheus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (`HOST:PORT`) every second at `/metrics`, sending `token` (if any) from
    /// a credentials file, as docs/operations.md shows.
    fn start(target: &str, token: Option<&str>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config: PathBuf = dir.path().join("prometheus.yml");
        let mut text = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: coding-job\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        if let Some(token) = token {
            let file = dir.path().join("coding-job.token");
            std::fs::write(&file, token).unwrap();
            text.push_str(&format!(
                "    authorization:\n      credentials_file: {}\n",
                file.display()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={address}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start prometheus (Debian package `prometheus`)");
        Prometheus {
            child,
            address,
            _dir: dir,
        }
    }

    /// The samples of an instant query, as Prometheus's HTTP API answers (`data.result`).
    fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http_get_host(&self.address, &self.address, &path).ok()?;
        if status != 200 {
            return None;
        }
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        answer["data"]["result"].as_array().cloned()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_running_tasks() {
    let dev = Dev::start();
    dev.push_yaml(
        "metered.yaml",
        &format!(
            "service: metered\njobs:\n  - name: meter\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    instances: 2\n"
        ),
    );
    dev.ok(&["up", "metered"]);
    let running = r#"coding_job_tasks{env="production",service="metered",job="meter",state="running",health="none"} 2"#;
    wait_for(
        "both tasks running in /metrics",
        Duration::from_secs(30),
        || {
            let text = dev.http_get("/metrics");
            text.lines().any(|line| line == running).then_some(text)
        },
    );
    // The API's own latency, by route template, is there too: the scrapes before this one
    // were counted.
    let text = dev.http_get("/metrics");
    assert!(
        text.contains(r#"coding_job_api_request_duration_seconds_bucket{method="GET",route="/metrics",status="2xx""#),
        "{text}"
    );
    assert!(
        text.contains("coding_job_host_up{host=\"test-host\"} 1"),
        "{text}"
    );

    let prometheus = Prometheus::start(dev.url.trim_start_matches("http://"), None);
    let samples = wait_for(
        "Prometheus to have scraped coding_job_tasks",
        Duration::from_secs(60),
        || {
            prometheus
                .query(r#"coding_job_tasks{service="metered",state="running"}"#)
                .filter(|samples| !samples.is_empty())
        },
    );
    assert_eq!(samples.len(), 1, "{samples:?}");
    // Prometheus keeps `job` for its scrape job and files ours as `exported_job`.
    assert_eq!(samples[0]["metric"]["exported_job"], "meter");
    assert_eq!(samples[0]["metric"]["job"], "coding-job");
    assert_eq!(samples[0]["value"][1], "2");

    // A job brought down leaves no series behind.
    dev.ok(&["down", "metered"]);
    wait_for(
        "the tasks to leave /metrics",
        Duration::from_secs(30),
        || (!dev.http_get("/metrics").contains("service=\"metered\"")).then_some(()),
    );
}

#[test]
fn prometheus_sends_a_read_token_to_a_server_that_requires_one() {
    let mut server = Server::start();
    assert_eq!(server.http("GET", "/metrics", None, None).status, 401);
    server.token = Some(server.admin_token());
    let created = server.json(&["token", "create", "prometheus", "--role", "read", "--json"]);
    let read = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        server.http("GET", "/metrics", Some(&read), None).status,
        200
    );

    let prometheus = Prometheus::start(server.url.trim_start_matches("http://"), Some(&read));
    // The server's own API latency, recorded for the scrapes themselves.
    let samples = wait_for(
        "Prometheus to have scraped with the token",
        Duration::from_secs(60),
        || {
            prometheus
                .query(r#"coding_job_api_request_duration_seconds_count{route="/metrics",status="2xx"}"#)
                .filter(|samples| !samples.is_empty())
        },
    );
    assert_eq!(samples[0]["metric"]["method"], "GET");
    let up = prometheus.query(r#"up{job="coding-job"}"#).unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
}

#[test]
fn prometheus_scrapes_a_standalone_agent_on_its_own_host() {
    let mut cluster = Cluster::start(1);
    // host-1's agent again, serving its own series in its host's network namespace.
    let port = free_port();
    cluster.kill_agent("host-1");
    let mut command = cluster.agent_command("host-1", "host-1", None);
    command.args(["--metrics-listen", &format!("0.0.0.0:{port}")]);
    cluster.spawn_agent("host-1", command);
    cluster.wait_for_hosts(&["host-1".to_owned()], "ready");
    cluster.server.push_yaml(
        "metered.yaml",
        &format!("service: metered\njobs:\n  - name: meter\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"),
    );
    cluster.server.ok(&["up", "metered"]);

    let target = format!("{}:{port}", cluster.bed.host("host-1").address);
    let prometheus = Prometheus::start(&target, None);
    let samples = wait_for(
        "Prometheus to have scraped the agent's reconcile passes",
        Duration::from_secs(60),
        || {
            prometheus
                .query("coding_job_agent_reconcile_duration_seconds_count")
                .filter(|samples| !samples.is_empty())
        },
    );
    let passes: f64 = samples[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(passes >= 1.0, "{samples:?}");
    assert_eq!(samples[0]["metric"]["instance"], target.as_str());
}
