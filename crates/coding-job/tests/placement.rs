//! Placement on real hosts: unpinned tasks spread over the test bed's hosts, constrained by
//! labels, ports and memory, moved by a drain, and moved off a host that is gone longer than
//! `--host-down-after`, with nothing running twice when it comes back.

mod support;

use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::load::{Load, LoadResult};
use support::sampler::Sampler;
use support::{IMAGE, describe, free_port, http_get_host, wait_for};

/// Running containers of `job` on each host, by host name.
fn running(cluster: &Cluster, job: &str) -> Vec<(String, usize)> {
    cluster
        .bed
        .hosts
        .iter()
        .map(|host| {
            let count = cluster
                .containers(&host.name, job)
                .iter()
                .filter(|(_, running, _)| *running)
                .count();
            (host.name.clone(), count)
        })
        .collect()
}

/// `web` with `instances` unpinned tasks and `db` pinned to `db_host`, both sleeping.
fn shop(instances: usize, db_host: &str) -> String {
    format!(
        "service: shop\njobs:\n\
         \x20 - name: web\n    image: {IMAGE}\n    instances: {instances}\n    command: [sleep, \"3600\"]\n\
         \x20 - name: db\n    image: {IMAGE}\n    run_on_host: {db_host}\n    command: [sleep, \"3600\"]\n"
    )
}

fn counts(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
    pairs.iter().map(|(h, n)| (h.to_string(), *n)).collect()
}

#[test]
fn unpinned_tasks_spread_follow_constraints_and_say_why_they_fit_nowhere() {
    let cluster = Cluster::start(3);
    let port = free_port();
    let yaml = format!(
        "service: shop\njobs:\n\
         \x20 - name: web\n    image: {IMAGE}\n    instances: 3\n    port: {port}\n\
         \x20   command: [sh, -c, \"exec httpd -f -p {port} -h /\"]\n\
         \x20 - name: worker\n    image: {IMAGE}\n    instances: 2\n\
         \x20   constraints: {{ slot: host-2 }}\n    command: [sleep, \"3600\"]\n"
    );
    cluster.server.push_yaml("shop.yaml", &yaml);
    let up = cluster.server.ok(&["up", "shop"]);
    assert!(up.contains("5 started"), "{up}");
    // Spread first: one web on each host. The workers go where their label is.
    assert_eq!(
        running(&cluster, "web"),
        counts(&[("host-1", 1), ("host-2", 1), ("host-3", 1)])
    );
    assert_eq!(
        running(&cluster, "worker"),
        counts(&[("host-1", 0), ("host-2", 2), ("host-3", 0)])
    );
    assert!(cluster.server.docker_containers().is_empty());

    // A fourth web would need the port on a host that already uses it.
    let four = yaml.replace("instances: 3", "instances: 4");
    cluster.server.push_yaml("shop.yaml", &four);
    let output = cluster.server.cli(&["rolling-update", "shop/web"]);
    let text = describe(&output);
    assert_ne!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("port {port} already used on every eligible host")),
        "{text}"
    );
    let rows = cluster.server.status("shop/web");
    let pending = rows.iter().find(|r| r.task == "web-4");
    if let Some(row) = pending {
        assert_eq!(row.state, "pending", "{row:?}");
    }

    // More memory than any host has.
    let heavy = format!(
        "service: heavy\njobs:\n  - name: big\n    image: {IMAGE}\n    resources: {{ memory: 1t }}\n    command: [sleep, \"3600\"]\n"
    );
    cluster.server.push_yaml("heavy.yaml", &heavy);
    let output = cluster.server.cli(&["up", "heavy"]);
    let text = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not placed: no host has 1 TiB free"),
        "{text}"
    );
    let rows = cluster.server.status("heavy");
    assert_eq!(rows[0].state, "pending");
    assert_eq!(
        rows[0].detail.as_deref(),
        Some("not placed: no host has 1 TiB free")
    );
    assert!(running(&cluster, "big").iter().all(|(_, n)| *n == 0));
}

#[test]
fn a_drained_host_gives_its_unpinned_tasks_away_and_keeps_its_pinned_ones() {
    let cluster = Cluster::start(2);
    let yaml = shop(2, "host-1");
    cluster.server.push_yaml("shop.yaml", &yaml);
    cluster.server.ok(&["up", "shop"]);
    let db_before = cluster.containers("host-1", "db");
    assert_eq!(
        running(&cluster, "web"),
        counts(&[("host-1", 1), ("host-2", 1)])
    );

    let drained = cluster.server.json(&["hosts", "drain", "host-1", "--json"]);
    assert_eq!(drained["draining"], true, "{drained}");
    assert_eq!(drained["moved"][0]["to"], "host-2", "{drained}");
    assert_eq!(drained["pinned"][0], "shop/db/db", "{drained}");
    wait_for("web to leave host-1", Duration::from_secs(40), || {
        (running(&cluster, "web") == counts(&[("host-1", 0), ("host-2", 2)])).then_some(())
    });
    let hosts = cluster.hosts();
    let host_1 = hosts.iter().find(|h| h.name == "host-1").unwrap();
    assert_eq!(host_1.state, "draining");
    // The pinned task was not touched.
    assert_eq!(cluster.containers("host-1", "db"), db_before);

    // Undrained, it takes new tasks; nothing moves back.
    let text = cluster.server.ok(&["hosts", "undrain", "host-1"]);
    assert!(text.contains("takes new tasks again"), "{text}");
    assert_eq!(
        running(&cluster, "web"),
        counts(&[("host-1", 0), ("host-2", 2)])
    );
    cluster.server.push_yaml("shop.yaml", &shop(3, "host-1"));
    cluster.server.ok(&["rolling-update", "shop/web"]);
    cluster.server.ok(&["up", "shop"]);
    wait_for("the new web on host-1", Duration::from_secs(40), || {
        (running(&cluster, "web") == counts(&[("host-1", 1), ("host-2", 2)])).then_some(())
    });
}

/// Per host, the containers of `job` that run, with their ids.
fn running_ids(cluster: &Cluster, host: &str, job: &str) -> Vec<String> {
    cluster
        .containers(host, job)
        .into_iter()
        .filter(|(_, running, _)| *running)
        .map(|(id, _, _)| id)
        .collect()
}

#[test]
fn a_lost_hosts_unpinned_tasks_run_elsewhere_its_pinned_ones_wait_and_nothing_runs_twice() {
    let mut cluster = Cluster::start_with_server_args(3, &["--host-down-after", "3s"]);
    let yaml = shop(3, "host-1");
    cluster.server.push_yaml("shop.yaml", &yaml);
    cluster.server.ok(&["up", "shop"]);
    let db_before = cluster.containers("host-1", "db");
    let web_on_1 = running_ids(&cluster, "host-1", "web");
    assert_eq!(web_on_1.len(), 1);

    cluster.kill_agent("host-1");
    // Its containers keep running without their agent...
    assert_eq!(running_ids(&cluster, "host-1", "web"), web_on_1);
    // ... and after --host-down-after its unpinned task runs on another host.
    wait_for(
        "web to run on the other hosts",
        Duration::from_secs(30),
        || {
            let elsewhere = running_ids(&cluster, "host-2", "web").len()
                + running_ids(&cluster, "host-3", "web").len();
            (elsewhere == 3).then_some(())
        },
    );
    // The pinned task waits for its host, and is never started elsewhere.
    for host in ["host-2", "host-3"] {
        assert!(cluster.containers(host, "db").is_empty());
    }
    let db_row = cluster.server.status("shop/db").into_iter().next().unwrap();
    assert_eq!(db_row.host, "host-1");
    let history = cluster.server.history("shop/web");
    assert!(
        history
            .events
            .iter()
            .any(|e| e.kind == "moved"
                && e.detail.as_deref() == Some("moved from host-1: host down")),
        "{:?}",
        history.events
    );

    // Back: the moved task's old container stops, the pinned one is re-adopted as it was.
    cluster.start_agent("host-1");
    cluster.wait_for_hosts(&["host-1".into()], "ready");
    wait_for(
        "the moved task's old container to stop",
        Duration::from_secs(30),
        || {
            running_ids(&cluster, "host-1", "web")
                .is_empty()
                .then_some(())
        },
    );
    let total: usize = running(&cluster, "web").iter().map(|(_, n)| n).sum();
    assert_eq!(total, 3, "{:?}", running(&cluster, "web"));
    assert_eq!(cluster.containers("host-1", "db"), db_before);
}

#[test]
fn a_host_cut_off_longer_than_host_down_after_converges_after_the_heal() {
    let cluster = Cluster::start_with_server_args(2, &["--host-down-after", "2s"]);
    let yaml = shop(2, "host-2");
    cluster.server.push_yaml("shop.yaml", &yaml);
    cluster.server.ok(&["up", "shop"]);
    let db_before = cluster.containers("host-2", "db");
    cluster.bed.host("host-2").cut();
    // Silence, then --host-down-after: host-2's web runs on host-1 as well.
    wait_for("both webs on host-1", Duration::from_secs(45), || {
        (running_ids(&cluster, "host-1", "web").len() == 2).then_some(())
    });
    // The pinned task is not duplicated.
    assert!(cluster.containers("host-1", "db").is_empty());
    cluster.bed.host("host-2").heal();
    cluster.wait_for_hosts(&["host-2".into()], "ready");
    wait_for(
        "host-2's stale web to stop",
        Duration::from_secs(30),
        || {
            running_ids(&cluster, "host-2", "web")
                .is_empty()
                .then_some(())
        },
    );
    assert_eq!(running_ids(&cluster, "host-1", "web").len(), 2);
    assert_eq!(cluster.containers("host-2", "db"), db_before);
}

#[test]
fn a_drain_under_load_starts_the_new_copy_first_and_fails_no_request() {
    let cluster = Cluster::start(3);
    let yaml = format!(
        "service: site\njobs:\n  - name: web\n    image: {IMAGE}\n    port: auto\n    route: web\n    command: [sh, -c, 'echo ok > /tmp/index.html; exec httpd -f -p $PORT -h /tmp']\n    check: {{ http: /, interval: 500ms }}\n"
    );
    cluster.server.push_yaml("site.yaml", &yaml);
    cluster.server.ok(&["up", "site"]);
    let router = cluster.start_router("cj.test");
    wait_for("the router to serve web", Duration::from_secs(30), || {
        matches!(
            http_get_host(&router.address, "web.cj.test", "/"),
            Ok((200, _))
        )
        .then_some(())
    });
    let sampler = Sampler::start(&cluster.bed, "web");
    let load = Load::start(&router.address, "web.cj.test", 2);
    for round in 0..3 {
        let from = cluster.server.status("site/web")[0].host.clone();
        let drained_at = Instant::now();
        cluster.server.ok(&["hosts", "drain", &from]);
        let to = wait_for(
            "web to run elsewhere alone",
            Duration::from_secs(40),
            || {
                let rows = cluster.server.status("site/web");
                let row = rows.first()?;
                (row.host != from
                    && row.state == "running"
                    && sampler.runs_now(&from) == Some(false))
                .then(|| row.host.clone())
            },
        );
        // Start first: the old copy ran until the new one did.
        let new_started = sampler.first_running_on_after(&to, drained_at).unwrap();
        let old_ended = sampler.last_running_on(&from).unwrap();
        assert!(
            old_ended > new_started,
            "round {round}: the copy on {from} stopped before the one on {to} ran"
        );
        cluster.server.ok(&["hosts", "undrain", &from]);
    }
    let LoadResult { ok, failures } = load.finish();
    assert!(ok > 200, "too little load to mean anything: {ok} requests");
    assert!(failures.is_empty(), "{ok} ok; failures: {failures:?}");
    let history = cluster.server.history("site/web");
    let moves = history.events.iter().filter(|e| e.kind == "moved").count();
    assert_eq!(moves, 3, "{:?}", history.events);
}
