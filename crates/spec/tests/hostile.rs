//! Files written carelessly or to do harm: every one is refused quickly, with short, located
//! errors, and everything accepted stays within `limits`. The fixed mistakes are in
//! `fixtures/invalid/`; these are the ones too large (or too many) to keep as files.

use std::time::{Duration, Instant};

use coding_job_spec::limits::{MAX_JOBS, MAX_REPORTED_ERRORS, MAX_TASKS};
use coding_job_spec::{MAX_SOURCE_BYTES, SpecErrors, parse_service};

/// Parses `source`, which must be refused within a few seconds (debug build), and returns the
/// errors after checking each is located and short.
fn refused(source: &str) -> SpecErrors {
    let started = Instant::now();
    let errors = parse_service("f.yaml", source).expect_err("refused");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    for error in &errors.0 {
        assert!(error.line >= 1 && error.column >= 1, "{error}");
        assert!(
            !error.path.is_empty() && error.path.chars().count() <= 200,
            "{error}"
        );
        assert!(error.message.chars().count() <= 400, "{error}");
    }
    errors
}

fn only_message(errors: &SpecErrors) -> String {
    assert_eq!(errors.0.len(), 1, "{errors}");
    errors.0[0].to_string()
}

#[test]
fn a_file_over_the_size_limit_is_refused_at_its_start() {
    let source = format!("service: s\n#{}\n", "x".repeat(MAX_SOURCE_BYTES * 18 / 10));
    assert_eq!(
        only_message(&refused(&source)),
        "f.yaml:1:1: .: the file is 1.8 MiB; at most 1 MiB is accepted"
    );
}

#[test]
fn a_megabyte_name_gives_a_short_message() {
    let name = "x".repeat(MAX_SOURCE_BYTES - 100);
    let errors = refused(&format!("service: s\njobs:\n  - name: \"{name}!\"\n"));
    let message = only_message(&errors);
    assert!(message.len() < 250, "{message}");
    assert!(
        message.contains(&format!("\"{}…\"", "x".repeat(64))),
        "{message}"
    );
}

#[test]
fn a_megabyte_unknown_key_gives_a_short_message() {
    let key = "k".repeat(MAX_SOURCE_BYTES - 100);
    let message = only_message(&refused(&format!("service: s\n{key}: 1\njobs: []\n")));
    assert!(message.len() < 400, "{message}");
}

#[test]
fn errors_are_capped_with_a_count_of_the_rest() {
    let jobs: String = (0..300)
        .map(|n| format!("  - name: j{n}\n    depends_on: [missing-{n}]\n"))
        .collect();
    let errors = refused(&format!("service: s\njobs:\n{jobs}"));
    assert_eq!(errors.0.len(), MAX_REPORTED_ERRORS + 1);
    assert_eq!(
        errors.0.last().unwrap().message,
        "200 more problems from here on are not shown"
    );
}

#[test]
fn too_many_jobs_are_refused() {
    let jobs: String = (0..=MAX_JOBS)
        .map(|n| format!("  - name: j{n}\n"))
        .collect();
    let errors = refused(&format!("service: s\njobs:\n{jobs}"));
    assert_eq!(
        only_message(&errors),
        "f.yaml:3:3: jobs: the service has 1001 jobs; at most 1000 are accepted"
    );
}

#[test]
fn too_many_tasks_are_refused_once() {
    let jobs: String = (0..3)
        .map(|n| format!("  - name: j{n}\n    instances: 400\n"))
        .collect();
    let errors = refused(&format!("service: s\njobs:\n{jobs}"));
    assert_eq!(
        only_message(&errors),
        format!(
            "f.yaml:7:11: jobs[2].name: the service has more than {MAX_TASKS} tasks; at most {MAX_TASKS} are accepted"
        )
    );
}

#[test]
fn settings_copied_into_many_tasks_are_bounded() {
    // 100 KiB of environment is fine for one task, not for 1000 copies of it.
    let env: String = (0..100)
        .map(|n| format!("      V{n}: {}\n", "v".repeat(1000)))
        .collect();
    let source = format!("service: s\njobs:\n  - name: j\n    instances: 1000\n    env:\n{env}");
    let message = only_message(&refused(&source));
    assert!(message.contains("at most 16 MiB is accepted"), "{message}");
}

#[test]
fn a_large_environment_is_refused() {
    let env: String = (0..2000).map(|n| format!("      V{n}: x\n")).collect();
    let message = only_message(&refused(&format!(
        "service: s\njobs:\n  - name: j\n    env:\n{env}"
    )));
    assert!(
        message.ends_with("the environment has 2000 variables; at most 1000 are accepted"),
        "{message}"
    );
}

#[test]
fn a_long_dependency_chain_is_ordered_quickly() {
    let jobs: String = (0..MAX_JOBS)
        .map(|n| match n {
            0 => "  - name: j0\n".to_owned(),
            n => format!("  - name: j{n}\n    depends_on: [j{}]\n", n - 1),
        })
        .collect();
    let started = Instant::now();
    let spec = parse_service("f.yaml", &format!("service: s\njobs:\n{jobs}")).unwrap();
    assert_eq!(spec.jobs.len(), MAX_JOBS);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn an_alias_bomb_is_refused() {
    // 9 levels of 10 aliases each: 90 aliases, which would expand to 10^9 strings.
    let mut labels = String::from("l0: &a0 \"xxxxxxxxxx\"");
    for level in 1..10 {
        let aliases = vec![format!("*a{}", level - 1); 10].join(", ");
        labels.push_str(&format!(", l{level}: &a{level} [{aliases}]"));
    }
    let source = format!(
        "service: s\njobs:\n  - name: j\n    docker_config:\n      docker_config: {{ Labels: {{ {labels} }} }}\n"
    );
    let message = only_message(&refused(&source));
    assert!(
        message.contains("aliases (*NAME) expand to too much"),
        "{message}"
    );
}

#[test]
fn many_aliases_are_refused_with_the_limit() {
    let values: String = (0..200).map(|n| format!("      V{n}: *v\n")).collect();
    let source = format!("service: s\njobs:\n  - name: j\n    image: &v img:1\n    env:\n{values}");
    let message = only_message(&refused(&source));
    assert!(
        message.contains("too many aliases (*NAME): at most 100"),
        "{message}"
    );
}

#[test]
fn nul_escapes_are_refused_everywhere_a_process_or_docker_would_get_them() {
    for field in [
        "command: [\"a\\0\"]",
        "env: {A: \"a\\0\"}",
        "env: [\"A=\\0\"]",
        "image: \"a\\0\"",
        "run_on_host: \"h\\0\"",
        "check: {exec: [\"a\\0\"]}",
        "check: {http: \"/\\0\"}",
        "docker_config: {docker_config: {Labels: {\"k\\0\": v}}}",
    ] {
        let errors = refused(&format!(
            "service: s\njobs:\n  - name: j\n    port: 80\n    {field}\n"
        ));
        assert_eq!(errors.0.len(), 1, "{field}: {errors}");
    }
}

#[test]
fn the_bounds_themselves_are_accepted() {
    let yaml = "service: s\njobs:\n  - name: a\n    image: reg.example.com:5000/team/app:v1\n    resources: {memory: 6m, cpu: 0.01}\n    check: {tcp: 80, interval: 100ms, timeout: 10m, start_period: 1h, retries: 100}\n    update: {min_healthy_time: 1h, healthy_deadline: 24h, batch_size: 1000, canary: 1000}\n  - name: b\n    resources: {memory: 16t, cpu: 1024}\n    check: {tcp: 80, interval: 1h, timeout: 100ms, retries: 1}\n    update: {healthy_deadline: 1s, canary: 0}\n";
    let spec = parse_service("f.yaml", yaml).unwrap();
    let a = &spec.jobs[0];
    let check = a.tasks[0].check.as_ref().unwrap();
    assert_eq!(
        (
            check.interval_ms,
            check.timeout_ms,
            check.start_period_ms,
            check.retries
        ),
        (100, 600_000, 3_600_000, 100)
    );
    assert_eq!(
        (
            a.update.batch_size,
            a.update.canary,
            a.update.healthy_deadline_ms
        ),
        (1000, 1000, 86_400_000)
    );
    assert_eq!(a.tasks[0].resources.nano_cpus, Some(10_000_000));
    assert_eq!(spec.jobs[1].tasks[0].resources.memory_bytes, Some(16 << 40));
}

#[test]
fn every_example_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            let source = std::fs::read_to_string(&path).unwrap();
            parse_service("example.yaml", &source)
                .unwrap_or_else(|errors| panic!("{}: {errors}", path.display()));
            loaded += 1;
        }
    }
    assert!(loaded >= 2, "only {loaded} examples");
}

#[test]
fn counts_that_are_not_whole_numbers_are_reported_at_their_place() {
    let errors = refused(
        "service: s\njobs:\n  - name: a\n    instances: abc\n    update: {batch_size: 2.5, canary: true}\n",
    );
    assert_eq!(
        errors.to_string(),
        "f.yaml:4:16: jobs[0].instances: expected a number from 1 to 1000\n\
         f.yaml:5:26: jobs[0].update.batch_size: expected a number from 1 to 1000\n\
         f.yaml:5:39: jobs[0].update.canary: expected a number from 0 to 1000"
    );
}

#[test]
fn a_template_that_would_grow_is_refused_before_it_is_compiled() {
    // Compiling this would fold it into a 200 MB constant.
    let source = "service: s\njobs:\n  - name: j\n    env:\n      A: '{{ \"x\" * 100000000 ~ \"x\" * 100000000 }}'\n";
    let errors = refused(source);
    assert!(
        errors
            .0
            .iter()
            .all(|error| error.message.contains("is not supported in templates")),
        "{errors}"
    );
}

#[test]
fn many_templates_are_read_quickly() {
    let env: String = (0..1000)
        .map(|n| format!("      V{n}: \"{{{{ vars.v{n} }}}}-{{% if port %}}{{{{ task.name }}}}{{% endif %}}\"\n"))
        .collect();
    let source = format!("service: s\njobs:\n  - name: j\n    env:\n{env}");
    let started = Instant::now();
    parse_service("f.yaml", &source).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let broken = source.replace("{{ vars.v999 }}", "{{ vars.v999 ");
    let message = only_message(&refused(&broken));
    assert!(
        message.starts_with("f.yaml:1004:13: jobs[0].env.V999: template syntax error"),
        "{message}"
    );
}
