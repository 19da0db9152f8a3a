//! Fencing on real hosts (ARCHITECTURE.md, "Invariants of the control plane"), judged by what
//! every engine really runs, sampled every 100 ms: a task that moved never keeps running on the
//! host it left once that host hears the server again (gone within 3 s), a stale copy is never
//! in the routers' table, `on_host_lost: stop` stops a cut-off copy before the server moves it,
//! and `down` with a host down finishes at once and leaves nothing once the host is back.

mod support;

use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::sampler::Sampler;
use support::{IMAGE, describe, free_port, wait_for};

/// `web`: `instances` unpinned httpd tasks on a fixed port, with an http check and a route.
fn web(port: u16, instances: usize, extra: &str) -> String {
    format!(
        "service: shop\njobs:\n  - name: web\n    image: {IMAGE}\n    instances: {instances}\n    port: {port}\n    route: web\n{extra}    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n    check: {{ http: /health, interval: 500ms }}\n"
    )
}

/// The hosts whose engines run a container of `web` now.
fn web_hosts(cluster: &Cluster) -> Vec<String> {
    let mut hosts = Vec::new();
    for host in &cluster.bed.hosts {
        let running = cluster.containers(&host.name, "web");
        hosts.extend(
            running
                .iter()
                .filter(|(_, running, _)| *running)
                .map(|_| host.name.clone()),
        );
    }
    hosts
}

/// The host of the bed that runs no copy of `web`.
fn free_host(cluster: &Cluster, busy: &[String]) -> String {
    cluster
        .bed
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .find(|h| !busy.contains(h))
        .expect("a host without web")
}

/// The routers' table's backends of `web`: (task, host).
fn backends(cluster: &Cluster) -> Vec<(String, String)> {
    let table: cj_api::routes::RouteTable =
        serde_json::from_str(&cluster.server.http_get("/v1/routes")).unwrap();
    table
        .routes
        .iter()
        .filter(|route| route.job == "web")
        .flat_map(|route| route.backends.iter())
        .map(|backend| (backend.task.clone(), backend.host.clone()))
        .collect()
}

#[test]
fn an_agent_back_right_after_its_task_moved_stops_the_old_copy_at_once_and_routes_never_name_it() {
    let mut cluster = Cluster::start_with_server_args(3, &["--host-down-after", "2s"]);
    let port = free_port();
    cluster.server.push_yaml("shop.yaml", &web(port, 2, ""));
    cluster.server.ok(&["up", "shop"]);
    let sampler = Sampler::start(&cluster.bed, "web");
    for round in 0..3 {
        let before = web_hosts(&cluster);
        assert_eq!(before.len(), 2, "round {round}: {before:?}");
        let left = before[0].clone();
        let task = cluster
            .server
            .status("shop/web")
            .into_iter()
            .find(|row| row.host == left)
            .map(|row| format!("shop/web/{}", row.task))
            .unwrap();
        cluster.kill_agent(&left);
        // Moved: a copy runs on the host that had none.
        let free = free_host(&cluster, &before);
        wait_for(
            "the task to run on the free host",
            Duration::from_secs(20),
            || web_hosts(&cluster).contains(&free).then_some(()),
        );
        let moved_at = Instant::now();
        // Back right after the move.
        cluster.start_agent(&left);
        let started = Instant::now();
        // The routers' table never names the old copy once the task runs elsewhere.
        while started.elapsed() < Duration::from_secs(3) {
            let stale: Vec<_> = backends(&cluster)
                .into_iter()
                .filter(|(t, host)| *t == task && *host == left)
                .collect();
            assert!(
                stale.is_empty(),
                "round {round}: the table names a stale copy: {stale:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster.wait_for_hosts(std::slice::from_ref(&left), "ready");
        wait_for("exactly two copies", Duration::from_secs(10), || {
            (web_hosts(&cluster).len() == 2).then_some(())
        });
        let last = sampler.last_running_on(&left).unwrap();
        assert!(
            last < started + Duration::from_secs(3),
            "round {round}: the old copy on {left} still ran {:?} after its agent started",
            last - started
        );
        assert!(last >= moved_at - Duration::from_secs(5));
        let rows = cluster.server.status("shop/web");
        assert_eq!(rows.len(), 2, "status shows each task once: {rows:?}");
        assert!(
            rows.iter()
                .all(|row| row.host != left || row.state == "running")
        );
    }
}

#[test]
fn a_cut_host_s_task_moves_within_host_down_after_and_its_old_copy_goes_within_3s_of_the_heal() {
    let cluster = Cluster::start_with_server_args(3, &["--host-down-after", "5s"]);
    let port = free_port();
    cluster.server.push_yaml("shop.yaml", &web(port, 2, ""));
    cluster.server.ok(&["up", "shop"]);
    let sampler = Sampler::start(&cluster.bed, "web");
    for round in 0..2 {
        let before = web_hosts(&cluster);
        assert_eq!(before.len(), 2, "round {round}: {before:?}");
        let cut = before[0].clone();
        let free = free_host(&cluster, &before);
        let cut_at = Instant::now();
        cluster.bed.host(&cut).cut();
        let moved = wait_for("the task to run elsewhere", Duration::from_secs(30), || {
            sampler.first_running_on_after(&free, cut_at)
        });
        let took = moved - cut_at;
        eprintln!("round {round}: cut to running on {free}: {took:?}");
        // --host-down-after (5 s) + 1 s, plus what the engine takes to start it under load.
        assert!(
            took < Duration::from_millis(7000),
            "round {round}: moved after {took:?}"
        );
        std::thread::sleep(Duration::from_secs(12).saturating_sub(cut_at.elapsed()));
        let healed_at = Instant::now();
        cluster.bed.host(&cut).heal();
        wait_for("the old copy to stop", Duration::from_secs(15), || {
            (sampler.runs_now(&cut) == Some(false)).then_some(())
        });
        let last = sampler.last_running_on(&cut).unwrap();
        let after_heal = last.saturating_duration_since(healed_at);
        eprintln!("round {round}: old copy gone {after_heal:?} after the heal");
        assert!(
            after_heal < Duration::from_secs(3),
            "round {round}: {after_heal:?}"
        );
        // Three copies never ran after that.
        assert!(sampler.most_running_after(healed_at + Duration::from_secs(3)) <= 2);
        cluster.wait_for_hosts(std::slice::from_ref(&cut), "ready");
    }
}

#[test]
fn on_host_lost_stop_stops_a_cut_off_copy_before_the_server_moves_it() {
    let cluster = Cluster::start_with_server_args(3, &["--host-down-after", "3s"]);
    let port = free_port();
    cluster
        .server
        .push_yaml("shop.yaml", &web(port, 2, "    on_host_lost: stop\n"));
    cluster.server.ok(&["up", "shop"]);
    let sampler = Sampler::start(&cluster.bed, "web");
    let before = web_hosts(&cluster);
    let cut = before[0].clone();
    let free = free_host(&cluster, &before);
    let cut_at = Instant::now();
    cluster.bed.host(&cut).cut();
    let moved = wait_for("the task to run elsewhere", Duration::from_secs(30), || {
        sampler.first_running_on_after(&free, cut_at)
    });
    let stopped = sampler.last_running_on(&cut).unwrap();
    eprintln!(
        "cut-off copy stopped {:?} after the cut, new copy running {:?} after it",
        stopped - cut_at,
        moved - cut_at
    );
    assert!(stopped < moved, "two copies ran at once");
    assert!(sampler.most_running_after(cut_at) <= 2);
    cluster.bed.host(&cut).heal();
    cluster.wait_for_hosts(std::slice::from_ref(&cut), "ready");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(web_hosts(&cluster).len(), 2);
    assert!(!web_hosts(&cluster).contains(&cut));
}

#[test]
fn down_with_a_host_down_finishes_at_once_and_the_host_removes_its_tasks_when_back() {
    let mut cluster = Cluster::start_with_server_args(3, &["--host-down-after", "30s"]);
    let yaml = format!(
        "service: work\njobs:\n  - name: worker\n    image: {IMAGE}\n    run_on_host: host-3\n    command: [sleep, \"3600\"]\n  - name: helper\n    image: {IMAGE}\n    run_on_host: host-1\n    command: [sleep, \"3600\"]\n"
    );
    cluster.server.push_yaml("work.yaml", &yaml);
    cluster.server.ok(&["up", "work"]);
    cluster.kill_agent("host-3");
    cluster.wait_for_hosts(&["host-3".into()], "down");
    let began = Instant::now();
    let output = cluster.server.cli(&["down", "work"]);
    let took = began.elapsed();
    assert!(output.status.success(), "{}", describe(&output));
    assert!(took < Duration::from_secs(10), "down took {took:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("waiting for host-3: work/worker/worker"),
        "{}",
        describe(&output)
    );
    assert!(cluster.containers("host-1", "helper").is_empty());
    // Its container still runs while nobody can reach it...
    assert!(cluster.containers("host-3", "worker").iter().any(|c| c.1));
    // ... and is gone, not just stopped, soon after its agent is back.
    cluster.start_agent("host-3");
    cluster.wait_for_hosts(&["host-3".into()], "ready");
    let back = Instant::now();
    wait_for("nothing left of worker", Duration::from_secs(10), || {
        cluster
            .containers("host-3", "worker")
            .is_empty()
            .then_some(())
    });
    assert!(
        back.elapsed() < Duration::from_secs(3),
        "{:?}",
        back.elapsed()
    );
}
