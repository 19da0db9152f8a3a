//! The config contract: what loads, what it resolves to, and the exact error for each kind of
//! mistake (file, line, column, field path, message).
//!
//! The mistakes are files in `fixtures/invalid/`: `NAME.yaml` and the exact errors it must get in
//! `NAME.expected`. The end-to-end tests push the same files through the CLI.

use std::collections::BTreeMap;

use coding_job_spec::{
    OnFailure, Probe, RenderContext, TemplateScope, check_templates, parse_service, render_task,
};

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
            manual_gate: true,
            canary_weight_bp: None,
            analysis: None,
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

#[test]
fn a_templated_service_loads_checks_and_renders() {
    let source = include_str!("fixtures/templated-service.yaml");
    let spec = parse_service("templated-service.yaml", source).unwrap();
    let (db, api) = (spec.job("db").unwrap(), spec.job("api").unwrap());
    assert_eq!(api.depends_on, ["db", "auth/users"]);
    assert_eq!(api.route.as_deref(), Some("api"));
    assert_eq!(api.drain_timeout_ms, 10_000);
    assert!(
        api.tasks
            .iter()
            .all(|task| task.auto_port && task.port == 0)
    );
    assert_eq!(db.tasks[0].volumes[0].mount, "/var/lib/postgresql/data");

    let vars: BTreeMap<String, String> = [("postgres_version".to_owned(), "16".to_owned())].into();
    let job_exists = |service: &str, job: &str| (service, job) == ("auth", "users");
    let scope = TemplateScope {
        env: "pr-123",
        service: "shop",
        vars: &vars,
        job_exists: &job_exists,
    };
    check_templates("templated-service.yaml", source, &scope).unwrap();
    let no_vars = BTreeMap::new();
    let unset = TemplateScope {
        vars: &no_vars,
        ..scope
    };
    assert_eq!(
        check_templates("templated-service.yaml", source, &unset)
            .unwrap_err()
            .to_string(),
        "templated-service.yaml:5:12: jobs[0].image: variable `postgres_version` is not set in environment pr-123 (set it with `coding-job env vars pr-123 --set postgres_version=VALUE`)"
    );

    let addresses = |service: &str, job: &str| match (service, job) {
        ("shop", "db") => vec!["10.0.0.5:31000".to_owned()],
        ("auth", "users") => vec!["10.0.0.6:31010".to_owned(), "10.0.0.7:31010".to_owned()],
        _ => Vec::new(),
    };
    let ctx = RenderContext {
        env: "pr-123",
        vars: &vars,
        addr: &addresses,
    };
    let mut task = api.tasks[1].clone();
    task.port = 31001;
    let rendered = render_task("shop", api, &task, &ctx).unwrap();
    assert_eq!(
        rendered.command.as_deref().unwrap(),
        [
            "api",
            "--db",
            "10.0.0.5:31000",
            "--users",
            "10.0.0.6:31010,10.0.0.7:31010"
        ]
    );
    assert_eq!(rendered.env["INSTANCE"], "api-2 (2 of 2)");
    assert_eq!(rendered.env["LOG_LEVEL"], "debug");
    assert_eq!(rendered.env["PORT"], "31001");
    assert_eq!(
        rendered.check.unwrap().probe,
        Probe::Http {
            url: "http://127.0.0.1:31001/health".into()
        }
    );
    assert_eq!(
        rendered.docker_hostconfig["LogConfig"]["Config"]["tag"], "{{.Name}}",
        "a raw block is written as it is"
    );
    let mut db_task = db.tasks[0].clone();
    db_task.port = 31000;
    let db_rendered = render_task("shop", db, &db_task, &ctx).unwrap();
    assert_eq!(db_rendered.image.as_deref(), Some("postgres:16"));
    assert_eq!(db_rendered.env["POSTGRES_DB"], "shop_pr-123");
    assert_eq!(
        db_rendered.volumes[0].seed.as_deref(),
        Some("https://seeds.example.com/shop/pr-123.tar.gz")
    );
}

#[test]
fn port_auto_and_port_0_both_ask_for_a_port() {
    for written in ["auto", "0", "\"auto\""] {
        let yaml = format!("service: s\njobs:\n  - name: w\n    port: {written}\n");
        let task = &parse_service("s.yaml", &yaml).unwrap().jobs[0].tasks[0];
        assert!(task.auto_port, "{written}");
        assert_eq!(task.port, 0);
    }
    let fixed = parse_service("s.yaml", "service: s\njobs:\n  - name: w\n    port: 8080\n    tasks:\n      - name: w1\n      - name: w2\n        port: auto\n").unwrap();
    let tasks = &fixed.jobs[0].tasks;
    assert_eq!((tasks[0].port, tasks[0].auto_port), (8080, false));
    assert_eq!(
        (tasks[1].port, tasks[1].auto_port),
        (0, true),
        "a task's port replaces its job's"
    );
}
