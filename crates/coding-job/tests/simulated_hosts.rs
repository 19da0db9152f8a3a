//! `coding-job sim` against a real `coding-job server`: the thousand-host benchmark
//! (`bench/thousand_hosts.py`) at a size the suite can afford. Forty-one simulated hosts in two
//! `sim` processes run 400 tasks, some reserving resources and some bound to a zone; then the
//! process holding one host is killed, as a host that dies, and its tasks must run elsewhere
//! within `--host-down-after` and two seconds. What runs is read from the simulated engines
//! themselves (the `sim` processes' `coding_job_sim_containers_running`), not from the server.

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Server, free_port, output_within, wait_for};

const HOST_DOWN_AFTER: Duration = Duration::from_secs(3);
const SERVICES: usize = 4;
const JOBS: usize = 5;
const INSTANCES: usize = 20;
const TASKS: usize = SERVICES * JOBS * INSTANCES;

/// A `coding-job sim` process, killed when dropped.
struct Sim {
    child: Child,
    metrics: String,
}

impl Sim {
    fn start(server: &Server, token_file: &std::path::Path, args: &[&str]) -> Sim {
        let metrics = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_coding-job"))
            .args(["sim", "--server", &server.url, "--metrics-listen", &metrics])
            .arg("--token-file")
            .arg(token_file)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("failed to start coding-job sim");
        Sim { child, metrics }
    }

    /// What the process's `/metrics` says of `name` (0 before it says anything).
    fn metric(&self, name: &str) -> f64 {
        let Ok((_, body)) = support::http_get_host(&self.metrics, "localhost", "/metrics") else {
            return 0.0;
        };
        body.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn running(&self) -> usize {
        self.metric("coding_job_sim_containers_running") as usize
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}

fn service_file(service: usize) -> String {
    let mut yaml = format!("service: svc-{service}\njobs:\n");
    for job in 1..=JOBS {
        yaml += &format!(
            "  - name: s{service}-job-{job}\n    image: app:1\n    instances: {INSTANCES}\n"
        );
        match job {
            1 => yaml += "    resources: { memory: 2g, cpu: 1 }\n",
            2 => yaml += "    constraints: { zone: zone-2 }\n",
            _ => {}
        }
    }
    yaml
}

#[test]
fn simulated_hosts_run_every_task_within_capacity_and_a_lost_hosts_tasks_move_in_time() {
    let mut server = Server::start_on_with(
        "127.0.0.1",
        None,
        &[
            "--host-down-after",
            &format!("{}s", HOST_DOWN_AFTER.as_secs()),
        ],
    );
    server.token = Some(server.admin_token());
    let created = server.json(&["token", "create", "sim", "--role", "agent", "--json"]);
    let token_file = server.data_dir.path().join("agent.token");
    std::fs::write(&token_file, created["secret"].as_str().unwrap()).unwrap();

    let size = ["--cpu", "2", "--memory", "4GiB"];
    let many = Sim::start(
        &server,
        &token_file,
        &[&["--hosts", "40", "--zones", "4"][..], &size].concat(),
    );
    let mut victim = Sim::start(
        &server,
        &token_file,
        &[
            &[
                "--hosts",
                "1",
                "--prefix",
                "victim-",
                "--label",
                "zone=zone-2",
            ][..],
            &size,
        ]
        .concat(),
    );
    let hosts = wait_for("41 simulated hosts ready", Duration::from_secs(60), || {
        let hosts = server.json(&["hosts", "--json"]);
        let hosts = hosts.as_array().unwrap().clone();
        let ready = hosts.iter().filter(|h| h["state"] == "ready").count();
        (ready == 41).then_some(hosts)
    });
    let sim_01 = hosts.iter().find(|h| h["name"] == "sim-01").unwrap();
    assert_eq!(sim_01["labels"]["zone"], "zone-1", "{sim_01}");
    // The size the hosts were given, not this machine's.
    let reported = wait_for("sim-01's resources", Duration::from_secs(30), || {
        let hosts = server.json(&["hosts", "--json"]);
        let host = hosts
            .as_array()?
            .iter()
            .find(|h| h["name"] == "sim-01")?
            .clone();
        (!host["resources"].is_null()).then_some(host)
    });
    assert_eq!(reported["resources"]["cpus"], 2, "{reported}");
    assert_eq!(
        reported["resources"]["memory_total_bytes"],
        4u64 << 30,
        "{reported}"
    );
    // Every host's size known before anything is placed: a host that has not reported its
    // resources yet is placed on as if it had room (its first stats come within seconds).
    wait_for("every host's resources", Duration::from_secs(30), || {
        let hosts = server.json(&["hosts", "--json"]);
        let hosts = hosts.as_array()?.clone();
        hosts
            .iter()
            .all(|host| !host["resources"].is_null())
            .then_some(())
    });

    for service in 1..=SERVICES {
        server.push_yaml(&format!("svc-{service}.yaml"), &service_file(service));
    }
    let ups: Vec<_> = (1..=SERVICES)
        .map(|service| {
            let command = server.cli_command(
                &support::repo_root(),
                server.token.as_deref(),
                &["up", &format!("svc-{service}")],
            );
            std::thread::spawn(move || output_within(command, Duration::from_secs(120)))
        })
        .collect();
    for up in ups {
        let output = up.join().unwrap();
        assert!(
            output.status.success(),
            "up failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    wait_for(
        "every task running in the engines",
        Duration::from_secs(30),
        || (many.running() + victim.running() == TASKS).then_some(()),
    );

    // Each host's labels as the server has them now (a host can be listed as ready a moment
    // before its labels are).
    let hosts = server.json(&["hosts", "--json"]);
    let zones: HashMap<String, String> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let zone = h["labels"]["zone"].as_str().unwrap_or_default().to_owned();
            (h["name"].as_str().unwrap().to_owned(), zone)
        })
        .collect();
    assert_eq!(zones["sim-06"], "zone-2", "{hosts}");
    // Placement kept to what each host has, and to the zone it was told.
    let tasks: Vec<cj_api::TaskStatus> = (1..=SERVICES)
        .flat_map(|service| server.status(&format!("svc-{service}")))
        .collect();
    assert_eq!(tasks.len(), TASKS);
    assert!(
        tasks.iter().all(|t| t.state == "running"),
        "not all running"
    );
    let mut reserved: HashMap<&str, usize> = HashMap::new();
    for task in &tasks {
        let host = task.actual_host.as_deref().unwrap();
        if task.job.ends_with("-job-1") {
            *reserved.entry(host).or_default() += 1;
        }
        if task.job.ends_with("-job-2") {
            assert_eq!(
                zones[host], "zone-2",
                "{}/{} on {host}",
                task.job, task.task
            );
        }
    }
    assert!(
        reserved.values().all(|count| *count <= 2),
        "a host holds more than its 2 CPUs and 4 GiB allow: {reserved:?}"
    );
    let delivered = many.metric("coding_job_agent_assignment_delivery_seconds_count");
    assert!(delivered > 0.0, "no assignment delivery was measured");

    // The victim dies: its tasks must run elsewhere within --host-down-after + 2 s.
    let on_victim: Vec<&cj_api::TaskStatus> = tasks
        .iter()
        .filter(|t| t.actual_host.as_deref() == Some("victim-01"))
        .collect();
    assert!(!on_victim.is_empty(), "the victim runs nothing");
    let killed = Instant::now();
    victim.kill();
    wait_for(
        "the lost host's tasks running in the other engines",
        HOST_DOWN_AFTER + Duration::from_secs(30),
        || (many.running() == TASKS).then_some(()),
    );
    let moved_after = killed.elapsed();
    eprintln!(
        "{} tasks of the lost host ran elsewhere {moved_after:?} after it died",
        on_victim.len()
    );
    assert!(
        moved_after <= HOST_DOWN_AFTER + Duration::from_secs(2),
        "{} tasks of the lost host ran elsewhere only {moved_after:?} after it died",
        on_victim.len()
    );
    for task in on_victim {
        let now = server.status(&format!("{}/{}/{}", task.service, task.job, task.task));
        let host = now[0].actual_host.as_deref().unwrap_or_default();
        assert!(
            host.starts_with("sim-"),
            "{}/{} is on {host:?}",
            task.job,
            task.task
        );
        if task.job.ends_with("-job-2") {
            assert_eq!(
                zones[host], "zone-2",
                "{}/{} moved to {host}",
                task.job, task.task
            );
        }
    }
}
