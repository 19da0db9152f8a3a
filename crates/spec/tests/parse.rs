//! The config contract: what loads, what it resolves to, and the exact error for each kind of
//! mistake (file, line, column, field path, message).
//!
//! The mistakes are files in `fixtures/invalid/`: `NAME.yaml` and the exact errors it must get in
//! `NAME.expected`. The end-to-end tests push the same files through the CLI.

use coding_job_spec::{OnFailure, parse_service};

const HEADER: &str = "service: core\njobs:\n";

#[test]
fn seed_000_example_loads_as_written() {
    let source = include_str!("fixtures/seed-000.yaml");
    let spec = parse_service("seed-000.yaml", source).unwrap();
    assert_eq!(spec.service, "core");
    let nginx = &spec.jobs[0].tasks[0];
    assert_eq!(nginx.image.as_deref(), Some("core-nginx:48b58c1-dirty"));
    assert_eq!(nginx.run_on_host.as_deref(), Some("host-1"));
    assert_eq!(nginx.port, 0);
    assert!(
        nginx.init,
        "Docker's init is on unless the config turns it off"
    );
    assert_eq!(
        nginx.docker_hostconfig["Binds"],
        serde_json::json!(["/data:/data/:rw"])
    );
    let email = &spec.jobs[1].tasks[0];
    assert_eq!(email.name, "coding-email");
    assert_eq!(
        email.image, None,
        "a job without an image is accepted at push"
    );
}

#[test]
fn tasks_inherit_job_defaults_and_override_them() {
    let yaml = r#"
service: web
jobs:
  - name: api
    image: api:1
    command: httpd -f -p "8080"
    env: { LOG: info, WORKERS: 4 }
    port: "8080"
    resources: { memory: 256m, cpu: 0.5 }
    on_failure: keep
    docker_config:
      docker_hostconfig: { NetworkMode: host, Memory: 1 }
    tasks:
      - name: api-1
        run_on_host: host-1
      - name: api-2
        image: api:2
        env: [LOG=debug]
        init: false
        docker_config:
          docker_hostconfig: { Memory: 2 }
"#;
    let spec = parse_service("web.yaml", yaml).unwrap();
    let job = &spec.jobs[0];
    assert_eq!(job.on_failure, OnFailure::Keep);
    let [first, second] = [&job.tasks[0], &job.tasks[1]];
    assert_eq!(first.image.as_deref(), Some("api:1"));
    assert_eq!(
        first.command.as_deref(),
        Some(&["httpd".to_string(), "-f".into(), "-p".into(), "8080".into()][..])
    );
    assert_eq!(first.env["WORKERS"], "4");
    assert_eq!(first.port, 8080);
    assert_eq!(first.resources.memory_bytes, Some(256 << 20));
    assert_eq!(first.resources.nano_cpus, Some(500_000_000));
    assert_eq!(first.run_on_host.as_deref(), Some("host-1"));
    assert_eq!(second.image.as_deref(), Some("api:2"));
    assert_eq!(second.env["LOG"], "debug");
    assert_eq!(second.env["WORKERS"], "4", "env merges key by key");
    assert!(!second.init);
    assert_eq!(second.docker_hostconfig["Memory"], 2);
    assert_eq!(
        second.docker_hostconfig["NetworkMode"], "host",
        "Docker fields merge key by key"
    );
    assert_ne!(first.config_hash(), second.config_hash());
}

#[test]
fn instances_and_hosts_expand_into_tasks() {
    let yaml = "service: s\njobs:\n  - name: w\n    image: w:1\n    instances: 3\n  - name: h\n    image: h:1\n    hosts: [a, b]\n";
    let spec = parse_service("s.yaml", yaml).unwrap();
    let names = |job: usize| {
        spec.jobs[job]
            .tasks
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(0), ["w-1", "w-2", "w-3"]);
    assert_eq!(names(1), ["h-a", "h-b"]);
    assert_eq!(spec.jobs[1].tasks[1].run_on_host.as_deref(), Some("b"));
}

#[test]
fn config_hash_is_stable_and_sensitive() {
    let yaml = "service: s\njobs:\n  - name: w\n    image: w:1\n    env: {B: 2, A: 1}\n";
    let a = parse_service("s.yaml", yaml).unwrap().jobs[0].tasks[0].config_hash();
    let b = parse_service("s.yaml", &yaml.replace("{B: 2, A: 1}", "{A: 1, B: 2}"))
        .unwrap()
        .jobs[0]
        .tasks[0]
        .config_hash();
    let c = parse_service("s.yaml", &yaml.replace("w:1", "w:2"))
        .unwrap()
        .jobs[0]
        .tasks[0]
        .config_hash();
    assert_eq!(a, b, "key order does not change the hash");
    assert_ne!(a, c);
    assert_eq!(a.len(), 12);
}

#[test]
fn several_mistakes_are_all_reported() {
    let errors = parse_service(
        "core.yaml",
        &format!(
            "{HEADER}  - name: a\n    depends_on: [x]\n  - name: a\n    resources: {{ cpu: 0 }}\n"
        ),
    )
    .unwrap_err();
    assert_eq!(errors.0.len(), 3, "{errors}");
}

#[test]
fn every_invalid_fixture_gets_its_exact_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let source = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let errors = parse_service(name, &source).expect_err(name);
        assert_eq!(errors.to_string(), expected.trim_end(), "for {name}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} invalid fixtures");
}

#[test]
fn checks_and_update_policies() {
    use coding_job_spec::{Probe, UpdatePolicy};
    let yaml = r#"
service: web
jobs:
  - name: api
    image: api:1
    port: 8080
    check: { http: /health, interval: 1s, timeout: 500ms, retries: 2, start_period: 2s }
    update: { batch_size: 2, canary: 1, min_healthy_time: 5s, healthy_deadline: 1m, auto_rollback: true, manual_gate: true }
    tasks:
      - name: api-1
      - name: api-2
        check: { tcp: true }
      - name: api-3
        check: { exec: "cat /tmp/ready" }
      - name: api-4
        check: { http: "http://127.0.0.1:9000/ready" }
  - name: worker
    image: w:1
"#;
    let spec = parse_service("web.yaml", yaml).unwrap();
    let api = &spec.jobs[0];
    let check = api.tasks[0].check.as_ref().unwrap();
    assert_eq!(
        check.probe,
        Probe::Http {
            url: "http://127.0.0.1:8080/health".into()
        }
    );
    assert_eq!(
        (
            check.interval_ms,
            check.timeout_ms,
            check.retries,
            check.start_period_ms
        ),
        (1000, 500, 2, 2000)
    );
    assert_eq!(
        api.tasks[1].check.as_ref().unwrap().probe,
        Probe::Tcp { port: 8080 }
    );
    assert_eq!(
        api.tasks[2].check.as_ref().unwrap().probe,
        Probe::Exec {
            command: vec!["cat".into(), "/tmp/ready".into()]
        }
    );
    assert_eq!(
        api.tasks[3].check.as_ref().unwrap().probe,
        Probe::Http {
            url: "http://127.0.0.1:9000/ready".into()
        }
    );
    assert_eq!(
        api.update,
        UpdatePolicy {
            batch_size: 2,
            canary: 1,
            min_healthy_time_ms: 5000,
            healthy_deadline_ms: 60_000,
            auto_rollback: true,
            manual_gate: true
        }
    );
    assert_eq!(spec.jobs[1].update, UpdatePolicy::default());
    assert!(spec.jobs[1].tasks[0].check.is_none());
}

#[test]
fn instances_are_placed_among_hosts_with_constraints_and_pinned_tasks_are_not() {
    let yaml = r#"
service: web
jobs:
  - name: api
    image: api:1
    instances: 3
    hosts: [host-1, host-2]
    constraints: { zone: a, ssd: true }
  - name: db
    image: db:1
    tasks:
      - name: db-1
        run_on_host: host-3
      - name: db-2
    constraints: { zone: b }
"#;
    let spec = parse_service("web.yaml", yaml).unwrap();
    let api = spec.job("api").unwrap();
    assert_eq!(api.tasks.len(), 3);
    for task in &api.tasks {
        assert_eq!(task.run_on_host, None);
        assert_eq!(task.placement.hosts, ["host-1", "host-2"]);
        assert_eq!(task.placement.constraints["zone"], "a");
        assert_eq!(task.placement.constraints["ssd"], "true");
    }
    let db = spec.job("db").unwrap();
    assert!(
        db.tasks[0].placement.is_unrestricted(),
        "a pinned task is not placed"
    );
    assert_eq!(db.tasks[1].placement.constraints["zone"], "b");
    // Where a task may go is not what its container is.
    let mut narrowed = api.tasks[0].clone();
    narrowed.placement.hosts = vec!["host-1".into()];
    assert_eq!(narrowed.config_hash(), api.tasks[0].config_hash());
}
