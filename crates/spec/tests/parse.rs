//! The config contract: what loads, what it resolves to, and the exact error for each kind of
//! mistake (file, line, column, field path, message). One `rejects` helper per case keeps the
//! matrix readable.

use coding_job_spec::{OnFailure, parse_service};

fn rejects(yaml: &str, expected: &str) {
    let errors = parse_service("core.yaml", yaml).expect_err("the config should be rejected");
    assert_eq!(errors.to_string(), expected, "for config:\n{yaml}");
}

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
fn empty_file() {
    rejects(
        "",
        "core.yaml:1:1: .: the file is empty: expected a mapping with `service` and `jobs`",
    );
}

#[test]
fn yaml_syntax_error() {
    rejects(
        &format!("{HEADER}  - name: a\n   image: x\n"),
        "core.yaml:4:4: jobs: while parsing a block collection, did not find expected '-' indicator",
    );
}

#[test]
fn missing_service() {
    rejects(
        "jobs:\n  - name: a\n",
        "core.yaml:1:1: .: missing required field \"service\"",
    );
}

#[test]
fn unknown_top_level_key() {
    rejects(
        "service: core\njbos:\n  - name: a\n",
        "core.yaml:2:1: jbos: unknown field \"jbos\", did you mean \"jobs\"? (expected one of: service, jobs)",
    );
}

#[test]
fn misspelt_job_key() {
    rejects(
        &format!("{HEADER}  - name: a\n    imgae: x\n"),
        "core.yaml:4:5: jobs[0].imgae: unknown field \"imgae\", did you mean \"image\"? (expected one of: name, image, command, env, port, run_on_host, resources, init, docker_config, depends_on, on_failure, instances, hosts, tasks)",
    );
}

#[test]
fn misspelt_task_key() {
    rejects(
        &format!("{HEADER}  - name: a\n    tasks:\n      - name: a\n        run_on_hots: h\n"),
        "core.yaml:6:9: jobs[0].tasks[0].run_on_hots: unknown field \"run_on_hots\", did you mean \"run_on_host\"? (expected one of: name, image, command, env, port, run_on_host, resources, init, docker_config)",
    );
}

#[test]
fn missing_job_name() {
    rejects(
        &format!("{HEADER}  - image: x\n"),
        "core.yaml:3:5: jobs[0]: missing required field \"name\"",
    );
}

#[test]
fn port_not_a_number() {
    rejects(
        &format!("{HEADER}  - name: a\n    port: http\n"),
        "core.yaml:4:11: jobs[0].port: expected a port number from 0 to 65535, found \"http\"",
    );
}

#[test]
fn port_out_of_range() {
    rejects(
        &format!("{HEADER}  - name: a\n    port: 70000\n"),
        "core.yaml:4:11: jobs[0].port: expected a port number from 0 to 65535, found 70000",
    );
}

#[test]
fn duplicate_job_names() {
    rejects(
        &format!("{HEADER}  - name: a\n  - name: a\n"),
        "core.yaml:4:11: jobs[1].name: duplicate job name \"a\"",
    );
}

#[test]
fn duplicate_task_names() {
    rejects(
        &format!("{HEADER}  - name: a\n    tasks:\n      - name: t\n      - name: t\n"),
        "core.yaml:6:15: jobs[0].tasks[1].name: duplicate task name \"t\" in job \"a\"",
    );
}

#[test]
fn invalid_job_name() {
    rejects(
        &format!("{HEADER}  - name: core nginx\n"),
        "core.yaml:3:11: jobs[0].name: invalid job name \"core nginx\": expected 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit",
    );
}

#[test]
fn unknown_dependency_with_hint() {
    rejects(
        &format!("{HEADER}  - name: core-nginx\n  - name: web\n    depends_on: [core-ngnix]\n"),
        "core.yaml:5:18: jobs[1].depends_on[0]: unknown job \"core-ngnix\", did you mean \"core-nginx\"? (jobs in this service: core-nginx, web)",
    );
}

#[test]
fn job_depends_on_itself() {
    rejects(
        &format!("{HEADER}  - name: a\n    depends_on: [a]\n"),
        "core.yaml:4:18: jobs[0].depends_on[0]: job \"a\" depends on itself",
    );
}

#[test]
fn dependency_cycle_names_the_jobs() {
    rejects(
        &format!(
            "{HEADER}  - name: a\n    depends_on: [b]\n  - name: b\n    depends_on: [c]\n  - name: c\n    depends_on: [a]\n"
        ),
        "core.yaml:3:11: jobs[0].depends_on: dependency cycle: a -> b -> c -> a",
    );
}

#[test]
fn misspelt_docker_hostconfig_field() {
    rejects(
        &format!(
            "{HEADER}  - name: a\n    docker_config:\n      docker_hostconfig:\n        Bind: [\"/data:/data\"]\n"
        ),
        "core.yaml:6:9: jobs[0].docker_config.docker_hostconfig.Bind: unknown Docker HostConfig field \"Bind\", did you mean \"Binds\"? (fields use the Docker Engine API's names, e.g. Binds, NetworkMode)",
    );
}

#[test]
fn docker_field_of_the_wrong_kind() {
    rejects(
        &format!(
            "{HEADER}  - name: a\n    docker_config:\n      docker_hostconfig:\n        Binds: /data:/data\n"
        ),
        "core.yaml:6:9: jobs[0].docker_config.docker_hostconfig.Binds: expected a list for Docker's HostConfig field Binds",
    );
}

#[test]
fn misspelt_docker_config_section() {
    rejects(
        &format!("{HEADER}  - name: a\n    docker_config:\n      docker_hostconf: {{}}\n"),
        "core.yaml:5:7: jobs[0].docker_config.docker_hostconf: unknown field \"docker_hostconf\", did you mean \"docker_hostconfig\"? (expected one of: docker_hostconfig, docker_config)",
    );
}

#[test]
fn bad_memory_size() {
    rejects(
        &format!("{HEADER}  - name: a\n    resources: {{ memory: 12zb }}\n"),
        "core.yaml:4:26: jobs[0].resources.memory: expected a memory size such as 256m, 1g or a number of bytes",
    );
}

#[test]
fn bad_on_failure() {
    rejects(
        &format!("{HEADER}  - name: a\n    on_failure: retry\n"),
        "core.yaml:4:17: jobs[0].on_failure: unknown variant \"retry\", expected one of restart, keep",
    );
}

#[test]
fn env_entry_without_value() {
    rejects(
        &format!("{HEADER}  - name: a\n    env: [DEBUG]\n"),
        "core.yaml:4:10: jobs[0].env[0]: expected NAME=value, found \"DEBUG\"",
    );
}

#[test]
fn tasks_and_instances_together() {
    rejects(
        &format!("{HEADER}  - name: a\n    instances: 2\n    tasks:\n      - name: t\n"),
        "core.yaml:3:11: jobs[0]: give only one of `tasks`, `instances` or `hosts` to say which tasks the job runs",
    );
}

#[test]
fn no_jobs() {
    rejects(
        "service: core\njobs: []\n",
        "core.yaml:2:7: jobs: expected at least one job",
    );
}

#[test]
fn unbalanced_quote_in_command() {
    rejects(
        &format!("{HEADER}  - name: a\n    command: sh -c 'echo\n"),
        "core.yaml:4:14: jobs[0].command: cannot split command: missing closing quote",
    );
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
fn colon_inside_a_plain_scalar() {
    rejects(
        &format!("{HEADER}  - name: a\n    command: sh -c 'echo \"x: y\"'\n"),
        "core.yaml:4:28: jobs[0]: mapping values are not allowed in this context",
    );
}
