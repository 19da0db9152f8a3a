//! Agents joining a server that serves HTTPS: each dials `wss://` from its host's namespace,
//! trusting the web roots plus `--ca-cert` (the CA of the test bed's server certificate); an
//! agent that does not trust the server says so in its log and keeps trying; a CA file that
//! cannot be used stops the agent at start, as bad input.

mod support;

use std::process::Command;
use std::time::Duration;

use support::cluster::Cluster;
use support::{IMAGE, describe, output_within, wait_for};

#[test]
fn agents_join_a_tls_server_with_its_ca_certificate_and_say_clearly_when_they_do_not_trust_it() {
    // Waits for every host to be `ready`, over the TLS link.
    let mut cluster = Cluster::start_tls(2);
    assert!(
        cluster.server.url.starts_with("https://"),
        "{}",
        cluster.server.url
    );
    let hosts = cluster.hosts();
    for host in &cluster.bed.hosts {
        let info = hosts.iter().find(|info| info.name == host.name);
        let info = info.unwrap_or_else(|| panic!("{} is not listed: {hosts:?}", host.name));
        assert_eq!(info.state, "ready", "{info:?}");
        // The link comes from the host's own namespace.
        assert_eq!(
            info.address.as_deref(),
            Some(host.address.as_str()),
            "{info:?}"
        );
    }

    // A pinned task runs in its host's engine; its logs come back through that host's link.
    let yaml = format!(
        "service: shop\njobs:\n  - name: web\n    image: {IMAGE}\n    run_on_host: host-2\n    \
         command: [sh, -c, \"echo web-over-tls; exec sleep 3600\"]\n"
    );
    cluster.server.push_yaml("shop.yaml", &yaml);
    let up = cluster.server.ok(&["up", "shop"]);
    assert!(up.contains("1 started"), "{up}");
    let web = cluster.containers("host-2", "web");
    assert!(
        web.len() == 1 && web[0].1,
        "web is not running on host-2: {web:?}"
    );
    assert!(cluster.containers("host-1", "web").is_empty());
    let logs = wait_for("web's logs", Duration::from_secs(20), || {
        let logs = cluster.server.ok(&["logs", "shop/web", "--tail", "5"]);
        logs.contains("web-over-tls").then_some(logs)
    });
    assert!(logs.contains("web-over-tls"), "{logs}");

    // An agent without --ca-cert: it says why it cannot link, keeps trying, and never joins.
    let log = cluster.server.data_dir.path().join("untrusting-agent.log");
    let mut command = cluster.agent_command("host-1", "untrusting", None);
    command.stderr(std::fs::File::create(&log).unwrap());
    cluster.spawn_agent("untrusting", command);
    let complaints = wait_for(
        "the agent without --ca-cert to fail twice",
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            (text.matches("certificate is not trusted").count() >= 2).then_some(text)
        },
    );
    assert!(
        complaints.contains("--ca-cert FILE"),
        "the log does not say what to do: {complaints}"
    );
    let untrusting = cluster.agents.get_mut("untrusting").unwrap();
    assert!(
        untrusting.try_wait().unwrap().is_none(),
        "the agent gave up instead of retrying: {complaints}"
    );
    let hosts = cluster.hosts();
    assert!(
        !hosts
            .iter()
            .any(|info| info.name == "untrusting" && info.state == "ready"),
        "{hosts:?}"
    );
}

#[test]
fn an_agent_is_refused_at_start_when_its_ca_file_cannot_be_used() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not-pem.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    for (path, problem) in [
        (&missing, "cannot read the CA certificate"),
        (&not_pem, "holds no PEM certificate"),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coding-job"));
        command
            .args(["agent", "--server", "https://127.0.0.1:1", "--name", "h"])
            // No engine there: the CA file is refused before anything else is tried.
            .args(["--docker-host", "unix:///nonexistent/docker.sock"])
            .arg("--ca-cert")
            .arg(path)
            .env_remove("CODING_JOB_CA_CERT");
        let output = output_within(command, Duration::from_secs(30));
        assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(problem), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    }
}
