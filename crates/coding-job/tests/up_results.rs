//! `up` reports success only for what really runs when it returns: every container of the
//! operation, sampled from Docker right after `up` exits 0, runs; a container that dies soon after
//! its start fails `up`, naming the task, its exit code and the last lines of its log.

mod support;

use support::{Dev, IMAGE, describe, docker};

/// 50 sleeping jobs in 5 waves of 10; each job of a wave depends on two of the wave before.
fn fifty_jobs() -> String {
    let mut yaml = String::from("service: system\njobs:\n");
    for wave in 0..5 {
        for job in 0..10 {
            yaml.push_str(&format!(
                "  - name: w{wave}j{job}\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"
            ));
            if wave > 0 {
                yaml.push_str(&format!(
                    "    depends_on: [w{}j{job}, w{}j{}]\n",
                    wave - 1,
                    wave - 1,
                    (job + 1) % 10
                ));
            }
        }
    }
    yaml
}

fn running(dev: &Dev) -> usize {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=coding-job.cluster={}", dev.cluster),
        "--filter",
        "status=running",
    ])
    .lines()
    .filter(|line| !line.is_empty())
    .count()
}

#[test]
fn up_of_a_50_job_system_ten_times_in_a_row_returns_with_every_task_running() {
    let dev = Dev::start();
    dev.push_yaml("system.yaml", &fifty_jobs());
    for round in 0..10 {
        let output = dev.cli(&["up", "system"]);
        assert!(
            output.status.success(),
            "round {round}: {}",
            describe(&output)
        );
        assert_eq!(running(&dev), 50, "round {round}: {}", describe(&output));
        dev.ok(&["down", "system"]);
        assert_eq!(running(&dev), 0, "round {round}");
    }
}

#[test]
fn a_task_that_dies_200ms_after_its_start_fails_up_with_its_exit_code_and_log() {
    let dev = Dev::start();
    let yaml = format!(
        "service: flaky\njobs:\n  - name: steady\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n  - name: crasher\n    image: {IMAGE}\n    command: [sh, -c, \"echo starting; sleep 0.2; echo 'bad config: no such key' >&2; exit 3\"]\n"
    );
    dev.push_yaml("flaky.yaml", &yaml);
    let output = dev.cli(&["up", "flaky"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("failed: flaky/crasher/crasher: its container exited with code 3"),
        "{}",
        describe(&output)
    );
    assert!(
        stderr.contains("| bad config: no such key"),
        "{}",
        describe(&output)
    );
    // Scripts read the same in JSON.
    dev.ok(&["down", "flaky"]);
    let output = dev.cli(&["up", "flaky", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {}", describe(&output)));
    let failed = &summary["failed"][0];
    assert_eq!(failed["exit_code"], 3, "{summary}");
    assert!(
        failed["log_tail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line == "bad config: no such key"),
        "{summary}"
    );
}
