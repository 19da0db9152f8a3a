//! Several real hosts: a `coding-job server` on the test bed's bridge and one `coding-job agent`
//! in each host's network namespace, driving that host's own Docker engine (see
//! `support::testbed`). Nothing here shares an engine with anything else.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use support::cluster::Cluster;
use support::{IMAGE, describe, free_port, output_within, wait_for};

fn pinned(job: &str, host: &str, command: &str, extra: &str) -> String {
    format!(
        "  - name: {job}\n    image: {IMAGE}\n    run_on_host: {host}\n    command: [sh, -c, \"{command}\"]\n{extra}"
    )
}

#[test]
fn pinned_tasks_run_on_their_hosts_in_dependency_order_and_are_reached_through_their_agents() {
    let cluster = Cluster::start(2);
    let port = free_port();
    let yaml = format!(
        "service: shop\njobs:\n{}{}",
        pinned(
            "db",
            "host-1",
            &format!("echo db-ready-on-host-1; exec httpd -f -p {port} -h /"),
            &format!("    port: {port}\n    check: {{ tcp: true, interval: 200ms }}\n"),
        ),
        pinned(
            "web",
            "host-2",
            "while true; do echo tick; sleep 0.2; done",
            "    depends_on: [db]\n",
        ),
    );
    cluster.server.push_yaml("shop.yaml", &yaml);
    let up = cluster.server.ok(&["up", "shop"]);
    assert!(up.contains("2 started"), "{up}");

    // Each task runs in its own host's engine, and nowhere else.
    let db = cluster.containers("host-1", "db");
    let web = cluster.containers("host-2", "web");
    assert_eq!((db.len(), web.len()), (1, 1), "db {db:?}, web {web:?}");
    assert!(cluster.containers("host-2", "db").is_empty());
    assert!(cluster.containers("host-1", "web").is_empty());
    assert!(
        cluster.server.docker_containers().is_empty(),
        "a container landed on the main engine"
    );
    // web waited for db's check, across hosts.
    let db_started = support::nanos(&db[0].2);
    let web_created =
        cluster
            .bed
            .host("host-2")
            .docker(&["inspect", "-f", "{{.Created}}", &web[0].0]);
    assert!(
        support::nanos(web_created.trim()) > db_started,
        "web was created before db started"
    );
    let rows = cluster.server.status("shop");
    let actual: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (r.job.clone(), r.actual_host.clone()))
        .collect();
    assert!(
        actual.contains(&("db".into(), Some("host-1".into()))),
        "{actual:?}"
    );
    assert!(
        actual.contains(&("web".into(), Some("host-2".into()))),
        "{actual:?}"
    );

    // inspect and logs go through the agent of the task's host.
    let inspect = cluster.server.json(&["inspect", "shop/db/db", "--json"]);
    assert_eq!(inspect["container"]["Id"], db[0].0.as_str());
    let logs = cluster.server.ok(&["logs", "shop/db", "--tail", "5"]);
    assert!(logs.contains("db-ready-on-host-1"), "{logs}");
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_coding-job"))
        .args(["logs", "shop/web", "-f", "--tail", "1"])
        .env("CODING_JOB_SERVER", &cluster.server.url)
        .env("CODING_JOB_TOKEN", cluster.server.token.as_deref().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = BufReader::new(follow.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    for _ in 0..4 {
        let line = received
            .recv_timeout(Duration::from_secs(10))
            .expect("logs -f stopped following");
        assert_eq!(line, "tick");
    }
    follow.kill().unwrap();
    follow.wait().unwrap();

    // Each host's engine, resources and tasks.
    wait_for("host stats", Duration::from_secs(20), || {
        let hosts = cluster.hosts();
        hosts
            .iter()
            .all(|h| h.resources.is_some() && h.engine_version.is_some())
            .then_some(hosts)
    });
    let hosts = cluster.hosts();
    for name in ["host-1", "host-2"] {
        let host = hosts.iter().find(|h| h.name == name).unwrap();
        assert_eq!((host.state.as_str(), host.tasks), ("ready", 1), "{host:?}");
        // Where the link comes from, and what the agent was told the host is.
        assert_eq!(
            host.address.as_deref(),
            Some(cluster.bed.host(name).address.as_str())
        );
        assert_eq!(host.labels.get("slot").map(String::as_str), Some(name));
    }
}

#[test]
fn exec_runs_in_the_task_container_on_its_host_through_that_host_agent() {
    let mut cluster = Cluster::start(2);
    let yaml = format!(
        "service: far\njobs:\n{}",
        pinned("web", "host-2", "exec sleep 3600", ""),
    );
    cluster.server.push_yaml("far.yaml", &yaml);
    cluster.server.ok(&["up", "far"]);
    let server = &cluster.server;
    let (host_1, host_2) = (cluster.bed.host("host-1"), cluster.bed.host("host-2"));

    // Host networking: the container has its host's addresses, here host-2's and no other.
    let routes = server.ok(&["exec", "far/web", "--", "cat", "/proc/net/fib_trie"]);
    assert!(
        routes.contains(&host_2.address) && !routes.contains(&host_1.address),
        "host-2 is {}:\n{routes}",
        host_2.address
    );
    // And the container is the one in host-2's engine: what exec wrote, docker there reads.
    server.ok(&[
        "exec",
        "far/web",
        "--",
        "sh",
        "-c",
        "echo via-exec > /tmp/proof",
    ]);
    let web = cluster.containers("host-2", "web");
    let [(id, true, _)] = web.as_slice() else {
        panic!("web is not running on host-2: {web:?}")
    };
    assert_eq!(
        host_2.docker(&["exec", id, "cat", "/tmp/proof"]),
        "via-exec\n"
    );

    // Output apart, the exit code and stdin, across the link.
    let output = server.cli(&[
        "exec",
        "far/web",
        "--",
        "sh",
        "-c",
        "echo o; echo e >&2; exit 4",
    ]);
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    assert_eq!(
        (output.stdout.as_slice(), output.stderr.as_slice()),
        (&b"o\n"[..], &b"e\n"[..])
    );
    let output = server.cli_with_stdin(&["exec", "-i", "far/web", "--", "cat"], b"across hosts\n");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "across hosts\n");

    // The host's agent gone: its containers cannot be reached, and the CLI says so.
    cluster.kill_agent("host-2");
    cluster.wait_for_hosts(&["host-2".into()], "down");
    let output = cluster.server.cli(&["exec", "far/web", "--", "true"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("host host-2 has no agent connected"),
        "{stderr}"
    );
}

#[test]
fn agent_loss_and_server_restart_restart_no_container() {
    let mut cluster = Cluster::start(2);
    let yaml = format!(
        "service: calm\njobs:\n{}{}",
        pinned("one", "host-1", "exec sleep 3600", ""),
        pinned("two", "host-2", "exec sleep 3600", ""),
    );
    cluster.server.push_yaml("calm.yaml", &yaml);
    cluster.server.ok(&["up", "calm"]);
    let before = (
        cluster.containers("host-1", "one"),
        cluster.containers("host-2", "two"),
    );
    assert!(before.0[0].1 && before.1[0].1, "{before:?}");

    // An agent killed: its containers keep running, and the server sees the host down.
    cluster.kill_agent("host-1");
    cluster.wait_for_hosts(&["host-1".into()], "down");
    assert_eq!(cluster.containers("host-1", "one"), before.0);
    // Back: the running container is adopted as it is (same id, same start).
    cluster.start_agent("host-1");
    cluster.wait_for_hosts(&["host-1".into()], "ready");
    cluster.wait_running("calm", &["one", "two"]);
    assert_eq!(cluster.containers("host-1", "one"), before.0);

    // The server killed and started again with the agents connected: they link again and
    // nothing is restarted.
    cluster.server.restart();
    cluster.wait_for_hosts(&["host-1".into(), "host-2".into()], "ready");
    cluster.wait_running("calm", &["one", "two"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cluster.containers("host-1", "one"), before.0);
    assert_eq!(cluster.containers("host-2", "two"), before.1);
}

#[test]
fn a_cut_host_is_seen_down_keeps_its_containers_and_comes_back_without_a_restart() {
    let cluster = Cluster::start(2);
    let yaml = format!(
        "service: cut\njobs:\n{}",
        pinned("alone", "host-2", "exec sleep 3600", ""),
    );
    cluster.server.push_yaml("cut.yaml", &yaml);
    cluster.server.ok(&["up", "cut"]);
    let before = cluster.containers("host-2", "alone");
    cluster.bed.host("host-2").cut();
    // No close travels over a cut link: silence is what the server goes by.
    cluster.wait_for_hosts(&["host-2".into()], "down");
    assert_eq!(cluster.containers("host-2", "alone"), before);
    cluster.bed.host("host-2").heal();
    cluster.wait_for_hosts(&["host-2".into()], "ready");
    cluster.wait_running("cut", &["alone"]);
    assert_eq!(cluster.containers("host-2", "alone"), before);
}

#[test]
fn an_agent_without_an_agent_token_is_refused_and_says_why() {
    let cluster = Cluster::start(1);
    let host = cluster.bed.host("host-1");
    let admin_file = cluster.server.admin_token_file();
    let mut command = host.command_in_netns(env!("CARGO_BIN_EXE_coding-job"));
    command
        .args([
            "agent",
            "--server",
            &cluster.server.url,
            "--name",
            "intruder",
        ])
        .arg("--token-file")
        .arg(&admin_file);
    let output = output_within(command, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("403"), "{stderr}");
    assert!(
        !stderr.contains(&cluster.server.admin_token()),
        "the token was printed"
    );
    assert!(cluster.hosts().iter().all(|h| h.name != "intruder"));
}
