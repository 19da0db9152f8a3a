//! The core loop on one machine, through the CLI binary, against the real Docker engine.

mod support;

use std::time::Duration;

use support::{Dev, IMAGE, describe, docker_inspect, free_port, nanos, wait_for};

/// An httpd job serving on `port` of the host.
fn httpd_job(name: &str, port: u16, depends_on: &[&str]) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    port: {port}\n    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n    depends_on: [{}]\n",
        depends_on.join(", ")
    )
}

#[test]
fn push_up_status_inspect_logs_history_down_end_to_end() {
    let dev = Dev::start();
    let port = free_port();
    let shared = dev.data_dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("note.txt"), "from-the-host\n").unwrap();
    let yaml = format!(
        "service: shop\njobs:\n{}  - name: mailer\n    image: {IMAGE}\n    run_on_host: host-1\n    env: {{GREETING: hello-from-mailer}}\n    command: [sh, -c, 'echo $GREETING; cat /data/note.txt; exec sleep 100000']\n    resources: {{memory: 64m}}\n    depends_on: [web]\n    docker_config:\n      docker_hostconfig:\n        Binds: [\"{}:/data:ro\"]\n",
        httpd_job("web", port, &[]),
        shared.display()
    );
    assert_eq!(
        dev.push_yaml("shop.yaml", &yaml).trim(),
        "shop -> version 1"
    );

    let up = dev.ok(&["up", "shop"]);
    assert!(
        up.contains("shop/web/web") && up.contains("running"),
        "{up}"
    );
    assert!(
        up.contains("up shop: 2 started, 0 unchanged, 0 failed"),
        "{up}"
    );

    let status = dev.status("shop");
    assert_eq!(status.len(), 2);
    for task in &status {
        assert_eq!(task.state, "running", "{task:?}");
        assert_eq!(task.env, "production");
        assert_eq!(task.version, Some(1));
        assert_eq!(task.image.as_deref(), Some(IMAGE));
        assert_eq!(task.actual_host.as_deref(), Some("test-host"));
        assert!(task.started_at.is_some());
    }
    let mailer = status.iter().find(|t| t.job == "mailer").unwrap();
    assert_eq!(mailer.host, "host-1", "status shows the declared host");
    let web_http = wait_for("httpd to answer", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    drop(web_http);

    // Labels and Docker's defaults on the real container.
    let container = docker_inspect(mailer.container_id.as_deref().unwrap());
    let labels = &container["Config"]["Labels"];
    for (label, value) in [
        ("coding-job.env", "production"),
        ("coding-job.service", "shop"),
        ("coding-job.job", "mailer"),
        ("coding-job.task", "mailer"),
        ("coding-job.version", "1"),
        ("coding-job.host", "host-1"),
    ] {
        assert_eq!(labels[label], value, "label {label}");
    }
    assert_eq!(labels["coding-job.config-hash"].as_str().unwrap().len(), 12);
    assert_eq!(container["HostConfig"]["Init"], true);
    assert_eq!(container["HostConfig"]["LogConfig"]["Type"], "json-file");
    assert_eq!(
        container["HostConfig"]["LogConfig"]["Config"]["max-size"],
        "10m"
    );
    assert!(
        container["Name"]
            .as_str()
            .unwrap()
            .starts_with("/mailer_shop_production_")
    );

    let inspect = dev.json(&["inspect", "shop/mailer/mailer", "--json"]);
    assert_eq!(inspect["container"]["Id"], container["Id"]);
    assert_eq!(inspect["task"]["state"], "running");

    let logs = wait_for("the mailer's output", Duration::from_secs(5), || {
        let logs = dev.ok(&["logs", "mailer", "--tail", "10"]);
        logs.contains("from-the-host").then_some(logs)
    });
    assert_eq!(
        logs, "hello-from-mailer\nfrom-the-host\n",
        "env and the bind mount reached the container"
    );

    let history = dev.history("mailer");
    assert_eq!(history.versions.len(), 1);
    assert_eq!(history.versions[0].version, 1);
    assert_eq!(history.containers.len(), 1);
    let record = &history.containers[0];
    assert_eq!(Some(&record.id), mailer.container_id.as_ref());
    assert_eq!(
        (record.image.as_str(), record.version, record.host.as_str()),
        (IMAGE, 1, "test-host")
    );
    assert!(record.started.is_some());

    // `up` again changes nothing.
    let again = dev.ok(&["up", "shop"]);
    assert!(again.contains("0 started, 2 unchanged"), "{again}");

    let down = dev.ok(&["down", "shop"]);
    assert!(down.contains("down shop: 2 removed"), "{down}");
    assert!(
        dev.docker_containers().is_empty(),
        "down removes the containers"
    );
    assert!(dev.status("shop").iter().all(|task| task.state == "down"));
    let history = dev.history("shop/web");
    let record = &history.containers[0];
    assert!(
        record.finished.is_some() && record.removed.is_some(),
        "{record:?}"
    );
}

#[test]
fn up_starts_in_dependency_order_and_down_stops_in_reverse() {
    let dev = Dev::start();
    let yaml = format!(
        "service: stack\njobs:\n{}{}{}{}",
        httpd_job("web", free_port(), &["api"]),
        httpd_job("api", free_port(), &["db", "cache"]),
        httpd_job("db", free_port(), &[]),
        httpd_job("cache", free_port(), &[]),
    );
    dev.push_yaml("stack.yaml", &yaml);
    let up = dev.ok(&["up", "stack"]);
    assert!(
        up.contains("up order: cache + db  ->  api  ->  web"),
        "{up}"
    );

    let started_at = |job: &str| {
        let task = dev.status(&format!("stack/{job}")).remove(0);
        let container = docker_inspect(task.container_id.as_deref().unwrap());
        nanos(container["State"]["StartedAt"].as_str().unwrap())
    };
    let (db, cache, api, web) = (
        started_at("db"),
        started_at("cache"),
        started_at("api"),
        started_at("web"),
    );
    assert!(
        db < api && cache < api,
        "api started before its dependencies"
    );
    assert!(api < web, "web started before api");

    dev.ok(&["down", "stack"]);
    // The history hears of a stop from Docker's event stream, a moment after `down` returns.
    let stopped_at = |job: &str| {
        wait_for("the stop in the history", Duration::from_secs(5), || {
            let history = dev.history(&format!("stack/{job}"));
            let stop = history.events.iter().find(|e| e.kind == "stopped")?;
            Some(nanos(&stop.at))
        })
    };
    let (db, cache, api, web) = (
        stopped_at("db"),
        stopped_at("cache"),
        stopped_at("api"),
        stopped_at("web"),
    );
    assert!(web < api, "api stopped before web, which depends on it");
    assert!(api < db && api < cache, "a dependency stopped before api");
}

#[test]
fn up_of_one_job_brings_its_dependencies_first() {
    let dev = Dev::start();
    let yaml = format!(
        "service: pair\njobs:\n{}{}",
        httpd_job("front", free_port(), &["back"]),
        httpd_job("back", free_port(), &[])
    );
    dev.push_yaml("pair.yaml", &yaml);
    let up = dev.ok(&["up", "front"]);
    assert!(up.contains("up order: back  ->  front"), "{up}");
    assert!(
        dev.status("pair")
            .iter()
            .all(|task| task.state == "running")
    );
}

#[test]
fn agent_restart_does_not_restart_running_containers() {
    let mut dev = Dev::start();
    let yaml = format!(
        "service: keep\njobs:\n{}{}",
        httpd_job("one", free_port(), &[]),
        httpd_job("two", free_port(), &[])
    );
    dev.push_yaml("keep.yaml", &yaml);
    dev.ok(&["up", "keep"]);
    let before: Vec<(String, String)> = dev
        .status("keep")
        .iter()
        .map(|task| {
            let id = task.container_id.clone().unwrap();
            let started = docker_inspect(&id)["State"]["StartedAt"]
                .as_str()
                .unwrap()
                .to_owned();
            (id, started)
        })
        .collect();

    dev.restart();
    // Let the new agent read, reconcile and resync at least once.
    let status = wait_for(
        "the restarted server to see the tasks",
        Duration::from_secs(10),
        || {
            let status = dev.status("keep");
            status
                .iter()
                .all(|task| task.state == "running")
                .then_some(status)
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    for (task, (id, started)) in status.iter().zip(&before) {
        assert_eq!(
            task.container_id.as_ref(),
            Some(id),
            "the same container is adopted"
        );
        let container = docker_inspect(id);
        assert_eq!(
            container["State"]["StartedAt"].as_str().unwrap(),
            started,
            "the container was not restarted"
        );
        assert_eq!(container["RestartCount"], 0);
    }
    assert_eq!(dev.docker_containers().len(), 2, "no container was added");
    let history = dev.history("keep/one");
    assert_eq!(
        history
            .events
            .iter()
            .filter(|e| e.kind == "started")
            .count(),
        1,
        "{:?}",
        history.events
    );
}

#[test]
fn externally_killed_container_is_restarted_and_the_death_recorded() {
    let dev = Dev::start();
    let yaml = format!(
        "service: heal\njobs:\n{}",
        httpd_job("svc", free_port(), &[])
    );
    dev.push_yaml("heal.yaml", &yaml);
    dev.ok(&["up", "heal"]);
    let id = dev.status("heal").remove(0).container_id.unwrap();
    let first_start = docker_inspect(&id)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_owned();

    support::docker(&["kill", &id]);
    wait_for(
        "the killed container to run again",
        Duration::from_secs(5),
        || {
            let state = docker_inspect(&id)["State"].clone();
            (state["Running"] == true && state["StartedAt"].as_str() != Some(&first_start))
                .then_some(())
        },
    );

    let history = wait_for("the death in the history", Duration::from_secs(5), || {
        // The first start's event can carry a time just after StartedAt: count starts instead.
        let history = dev.history("heal/svc");
        let starts = history
            .events
            .iter()
            .filter(|e| e.kind == "started")
            .count();
        let died = history.events.iter().any(|e| e.kind == "died");
        (starts == 2 && died).then_some(history)
    });
    let death = history
        .events
        .iter()
        .find(|e| e.kind == "died")
        .expect("a died event");
    assert_eq!(death.exit_code, Some(137));
    assert_eq!(death.container_id, id);
    assert_eq!(history.containers[0].restarts, 1);
    assert_eq!(dev.status("heal")[0].state, "running");
}

#[test]
fn on_failure_keep_leaves_the_dead_container_with_its_logs() {
    let dev = Dev::start();
    let yaml = format!(
        "service: broken\njobs:\n  - name: crasher\n    image: {IMAGE}\n    on_failure: keep\n    command: [sh, -c, 'echo about to fail; echo the reason >&2; sleep 1; exit 3']\n"
    );
    dev.push_yaml("broken.yaml", &yaml);
    // Without a check, `up` is done once the container runs; it dies a second later.
    dev.ok(&["up", "broken"]);
    let task = wait_for("the crasher to exit", Duration::from_secs(10), || {
        dev.status("broken")
            .into_iter()
            .find(|task| task.state == "exited")
    });
    assert_eq!(
        task.detail.as_deref(),
        Some("exited with code 3; kept for inspection (on_failure: keep)")
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        dev.status("broken")[0].state,
        "exited",
        "still kept, not restarted"
    );
    let id = task.container_id.unwrap();
    assert_eq!(
        docker_inspect(&id)["State"]["ExitCode"],
        3,
        "the same container is still there"
    );
    assert_eq!(
        dev.docker_containers().len(),
        1,
        "no replacement was started"
    );
    // Both streams; the engine copies each from its own pipe, so lines written a moment
    // apart on different streams may come in either order.
    let mut both: Vec<String> = dev
        .ok(&["logs", "broken/crasher"])
        .lines()
        .map(str::to_owned)
        .collect();
    both.sort();
    assert_eq!(both, ["about to fail", "the reason"]);
    assert_eq!(
        dev.ok(&["logs", "broken/crasher", "--stream", "stdout"]),
        "about to fail\n"
    );
    assert_eq!(
        dev.ok(&["logs", "broken/crasher", "--stream", "stderr"]),
        "the reason\n"
    );
    // The dead container's lines, each with its time; none of them from the last second.
    let dated = dev.ok(&["logs", "broken/crasher", "--stream", "stdout", "-t"]);
    assert_eq!(timestamped(&dated), ["about to fail"], "{dated}");
    assert_eq!(dev.ok(&["logs", "broken/crasher", "--since", "1s"]), "");
}

/// The text of each line of `logs --timestamps` output, after checking that the line starts
/// with an RFC 3339 time of the last few minutes and a space.
fn timestamped(output: &str) -> Vec<&str> {
    let now = time::OffsetDateTime::now_utc();
    output
        .lines()
        .map(|line| {
            let (at, text) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("no time before {line:?}"));
            let at =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|error| {
                        panic!("{line:?} starts with no RFC 3339 time: {error}")
                    });
            assert!(
                (now - at).abs() < time::Duration::minutes(5),
                "{at} in {line:?} is not about now ({now})"
            );
            text
        })
        .collect()
}

#[test]
fn logs_since_leaves_out_older_lines_and_timestamps_date_each_line() {
    let dev = Dev::start();
    // A line, a pause, then a line a second: a window shorter than the pause leaves out the
    // first line, however long the test took to look.
    let yaml = format!(
        "service: clock\njobs:\n  - name: ticker\n    image: {IMAGE}\n    command: [sh, -c, 'echo early; sleep 6; while true; do echo late; sleep 1; done']\n"
    );
    dev.push_yaml("clock.yaml", &yaml);
    dev.ok(&["up", "clock"]);
    wait_for("three late lines", Duration::from_secs(30), || {
        (dev.ok(&["logs", "ticker"]).matches("late").count() >= 3).then_some(())
    });
    let task = dev.status("clock").remove(0);
    let started = task.started_at.expect("a running task has a start time");
    let container = task.container_id.unwrap();

    let all = dev.ok(&["logs", "ticker", "--since", "1h"]);
    assert!(all.starts_with("early\nlate\n"), "{all}");
    let recent = dev.ok(&["logs", "ticker", "--since", "3s"]);
    assert!(
        !recent.contains("early") && recent.contains("late\n"),
        "--since 3s: {recent}"
    );
    // An RFC 3339 time: the start shows everything, three seconds after it only the late
    // lines (on the record's path, of a container named by its id).
    assert!(
        dev.ok(&["logs", "ticker", "--since", &started])
            .starts_with("early\n")
    );
    let after_start = time::OffsetDateTime::from_unix_timestamp_nanos(nanos(&started))
        .unwrap()
        .checked_add(time::Duration::seconds(3))
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let later = dev.ok(&[
        "logs",
        "ticker",
        "--container",
        &container[..12],
        "--since",
        &after_start,
    ]);
    assert!(
        !later.contains("early") && later.starts_with("late\n"),
        "--since {after_start}: {later}"
    );

    let dated = dev.ok(&["logs", "ticker", "--tail", "3", "--timestamps"]);
    assert_eq!(timestamped(&dated), ["late"; 3], "{dated}");

    // Followed: the window's lines, then new ones as they come, each with its time.
    let mut follow = dev
        .cli_command(
            &support::repo_root(),
            None,
            &["logs", "ticker", "-f", "--since", "3s", "-t"],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(follow.stdout.take().unwrap());
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    for _ in 0..5 {
        let line = received
            .recv_timeout(Duration::from_secs(10))
            .expect("logs -f stopped following");
        seen.push(line + "\n");
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    let seen = seen.concat();
    assert_eq!(timestamped(&seen), ["late"; 5], "{seen}");

    let refused = dev.cli(&["logs", "ticker", "--since", "yesterday"]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("invalid value 'yesterday' for '--since <TIME>'")
            && stderr.contains("expected a duration such as 10m or 1h30m, or an RFC 3339 time"),
        "{stderr}"
    );
    dev.ok(&["down", "clock"]);
}

#[test]
fn up_refuses_a_task_without_an_image_and_changes_nothing() {
    let dev = Dev::start();
    let seed = support::repo_root().join("crates/spec/tests/fixtures/seed-000.yaml");
    assert_eq!(
        dev.ok(&["push", seed.to_str().unwrap()]).trim(),
        "core -> version 1"
    );
    let output = dev.cli(&["up", "coding-email"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "error: cannot start core/coding-email/coding-email: the task has no image (set `image:` on the task or its job, then push)"
    );
    assert!(dev.docker_containers().is_empty());
    assert!(dev.status("core").iter().all(|task| task.state == "down"));
}

#[test]
fn up_fails_with_a_clear_reason_when_the_image_cannot_be_pulled() {
    let dev = Dev::start();
    // A registry on a closed loopback port: the pull fails at once, and no traffic leaves the host.
    let image = format!("127.0.0.1:{}/no-such-image:1", free_port());
    dev.push_yaml(
        "ghost.yaml",
        &format!("service: ghost\njobs:\n  - name: ghost\n    image: {image}\n"),
    );
    let output = dev.cli(&["up", "ghost", "--timeout", "60"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("pulling"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "failed: ghost/ghost/ghost: image {image} not found"
        )),
        "{stderr}"
    );
    assert_eq!(dev.status("ghost")[0].state, "failed");
    dev.ok(&["down", "ghost"]);
}
