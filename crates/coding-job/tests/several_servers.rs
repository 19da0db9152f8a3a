//! Several servers on a real etcd (three members on loopback), with agents on the test bed's
//! hosts, each agent given every server's URL. Judged by what every engine runs: a failover,
//! an etcd outage or a server cut off from etcd restarts no container and moves no task; a
//! killed leader is replaced within 5 s and its rollout completes; a leader stopped with
//! SIGTERM hands over at once.

mod support;

use std::time::{Duration, Instant};

use support::servers::Servers;
use support::{IMAGE, free_port, wait_for};

const HOST_DOWN_AFTER: &str = "5s";

/// `steady`, which nothing in these tests changes: a task pinned to each host, and two
/// unpinned ones the server places (and could move), none with a check.
fn steady() -> String {
    format!(
        "service: steady\njobs:\n  - name: keeper\n    image: {IMAGE}\n    hosts: [host-1, host-2, host-3]\n    command: [sleep, \"3600\"]\n  - name: roamer\n    image: {IMAGE}\n    instances: 2\n    command: [sleep, \"3600\"]\n"
    )
}

/// `fleet`: one task per host with an http check, rolled out one host at a time, each batch
/// held for two seconds, so a rollout lasts long enough to kill its leader in the middle.
fn fleet(release: u32, port: u16) -> String {
    format!(
        "service: fleet\njobs:\n  - name: web\n    image: {IMAGE}\n    hosts: [host-1, host-2, host-3]\n    port: {port}\n    env: {{ RELEASE: \"{release}\" }}\n    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n    check: {{ http: /health, interval: 200ms }}\n    update: {{ batch_size: 1, min_healthy_time: 2s }}\n"
    )
}

fn start() -> Servers {
    support::ensure_image();
    Servers::start(3, 3, &["--host-down-after", HOST_DOWN_AFTER])
}

/// The containers of `steady` (host, id, running, started at).
fn steady_containers(cluster: &Servers) -> Vec<(String, String, bool, String)> {
    let ids: Vec<String> = cluster
        .bed
        .hosts
        .iter()
        .flat_map(|host| {
            host.docker(&[
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                "label=coding-job.service=steady",
            ])
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
        })
        .collect();
    cluster
        .all_containers()
        .into_iter()
        .filter(|(_, id, _, _)| ids.contains(id))
        .collect()
}

/// Brings `steady` up through server `via` and returns its containers, all running.
fn bring_up_steady(cluster: &Servers, via: usize) -> Vec<(String, String, bool, String)> {
    cluster.server(via).push_yaml("steady.yaml", &steady());
    cluster.server(via).ok(&["up", "steady"]);
    let running = steady_containers(cluster);
    assert_eq!(running.len(), 5, "{running:?}");
    assert!(running.iter().all(|(_, _, up, _)| *up), "{running:?}");
    running
}

#[test]
fn a_leader_killed_mid_rollout_is_replaced_within_5s_and_the_rollout_completes_restarting_nothing_else()
 {
    let mut cluster = start();
    let leader = cluster.leader_by(1).expect("a leader");
    let other = (leader + 1) % 3;
    let before = bring_up_steady(&cluster, other);
    let port = free_port();
    cluster
        .server(other)
        .push_yaml("fleet.yaml", &fleet(1, port));
    cluster.server(other).ok(&["up", "fleet"]);
    cluster
        .server(other)
        .push_yaml("fleet.yaml", &fleet(2, port));
    // The rollout is started through a follower; the command's own stream may end with the
    // leader, which is not what is judged here.
    let rollout = cluster
        .server(other)
        .cli_command(
            &support::repo_root(),
            Some(&cluster.token),
            &["rolling-update", "fleet"],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once its first batch is done, the leader dies.
    wait_for("the first batch", Duration::from_secs(60), || {
        let listed = cluster
            .server(other)
            .json(&["deployments", "fleet", "--json"]);
        let text = listed.to_string();
        (text.contains("\"done\"") || text.contains("batches_done\":1")).then_some(())
    });
    let killed_at = Instant::now();
    cluster.server_mut(leader).kill9();
    let (new_leader, led_at) =
        cluster.wait_for_leader_other_than(other, leader, Duration::from_secs(10));
    let takeover = led_at - killed_at;
    eprintln!("takeover after kill -9: {takeover:?} (s{leader} -> s{new_leader})");
    assert!(takeover < Duration::from_secs(5), "took {takeover:?}");

    wait_for("the rollout to succeed", Duration::from_secs(90), || {
        let listed = cluster
            .server(other)
            .json(&["deployments", "fleet", "--json"]);
        let newest = listed.as_array()?.first()?.clone();
        (newest["status"] == "succeeded").then_some(())
    });
    let rows = cluster.server(other).status("fleet");
    assert!(
        rows.iter()
            .all(|row| row.version == Some(2) && row.state == "running"),
        "{rows:?}"
    );
    assert_eq!(
        steady_containers(&cluster),
        before,
        "steady's containers were touched"
    );
    let mut rollout = rollout;
    let _ = rollout.kill();
    let _ = rollout.wait();
}

#[test]
fn a_leader_stopped_with_sigterm_resigns_and_the_next_leads_at_once() {
    let mut cluster = start();
    let leader = cluster.leader_by(0).expect("a leader");
    let other = (leader + 1) % 3;
    let before = bring_up_steady(&cluster, other);
    let stopped_at = Instant::now();
    cluster.server_mut(leader).terminate();
    let (_, led_at) = cluster.wait_for_leader_other_than(other, leader, Duration::from_secs(10));
    let handover = led_at - stopped_at;
    eprintln!("handover after SIGTERM: {handover:?}");
    assert!(
        handover < Duration::from_secs(3),
        "the next server led only after {handover:?}: the lease expired rather than being revoked"
    );
    let listed = cluster.listed_by(other).unwrap();
    assert_eq!(
        listed.len(),
        2,
        "the stopped server is gone from the list: {listed:?}"
    );
    // The agents linked through the stopped server move on; nothing restarts.
    let names: Vec<String> = cluster.bed.hosts.iter().map(|h| h.name.clone()).collect();
    cluster.wait_for_hosts(&names, "ready");
    assert_eq!(steady_containers(&cluster), before);
}

#[test]
fn every_etcd_member_down_for_60s_stops_nothing_answers_503_and_everything_resumes() {
    let mut cluster = start();
    let before = bring_up_steady(&cluster, 0);
    let pids: Vec<u32> = cluster.servers.iter().flatten().map(|s| s.pid()).collect();
    cluster.etcd.stop_all();
    let down_since = Instant::now();
    let mut refused = 0;
    while down_since.elapsed() < Duration::from_secs(60) {
        for n in 0..3 {
            let answer =
                cluster
                    .server(n)
                    .http_with("GET", "/v1/status", &[], Some(&cluster.token), None);
            if answer.status == 503 {
                let body: serde_json::Value = serde_json::from_str(&answer.body)
                    .unwrap_or_else(|_| panic!("a 503 without JSON: {}", answer.body));
                let message = body["error"].as_str().unwrap_or_default();
                assert!(
                    message.contains("store is unavailable") || message.contains("no server leads"),
                    "{message}"
                );
                refused += 1;
            } else if down_since.elapsed() > Duration::from_secs(10) {
                panic!("s{n} answered {} with etcd down for 10 s", answer.status);
            }
        }
        let now: Vec<_> = steady_containers(&cluster);
        assert_eq!(now, before, "a container changed while etcd was down");
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(refused > 0);
    cluster.etcd.start_all();
    wait_for("a leader again", Duration::from_secs(30), || {
        cluster.leader_by(0)
    });
    let names: Vec<String> = cluster.bed.hosts.iter().map(|h| h.name.clone()).collect();
    cluster.wait_for_hosts(&names, "ready");
    // The agents report again (their links were down with the leader's term).
    wait_for(
        "every steady task reported running",
        Duration::from_secs(20),
        || {
            let rows = cluster.server(0).status("steady");
            rows.iter().all(|row| row.state == "running").then_some(())
        },
    );
    assert_eq!(steady_containers(&cluster), before, "nothing restarted");
    let after: Vec<u32> = cluster.servers.iter().flatten().map(|s| s.pid()).collect();
    assert_eq!(pids, after, "no server process restarted");
}

#[test]
fn a_leader_cut_off_from_etcd_stops_leading_and_another_leads_moving_no_task() {
    let cluster = start();
    let leader = cluster.leader_by(0).expect("a leader");
    let other = (leader + 1) % 3;
    let before = bring_up_steady(&cluster, other);
    let cut_at = Instant::now();
    for proxy in &cluster.proxies[leader] {
        proxy.cut();
    }
    let (new_leader, led_at) =
        cluster.wait_for_leader_other_than(other, leader, Duration::from_secs(15));
    eprintln!("another leader {:?} after the cut", led_at - cut_at);
    // The cut-off server answers, but does not act: it cannot say who leads.
    let answer =
        cluster
            .server(leader)
            .http_with("GET", "/v1/status", &[], Some(&cluster.token), None);
    assert_eq!(answer.status, 503, "{}", answer.body);
    // Ten seconds past --host-down-after: nothing moved, nothing restarted.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(steady_containers(&cluster), before);
    for proxy in &cluster.proxies[leader] {
        proxy.heal();
    }
    wait_for(
        "the cut-off server to follow",
        Duration::from_secs(20),
        || (cluster.leader_by(leader)? == new_leader).then_some(()),
    );
    assert_eq!(steady_containers(&cluster), before);
}
