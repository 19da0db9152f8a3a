//! Environments on one machine, through the CLI binary, against the real Docker engine: one
//! templated file serving production and a copy with their own variables through `dev`'s router,
//! allocated ports that survive a rollout, order across services, seeded volumes, `env run`,
//! `--ttl`, and template errors with their locations.

mod support;

use std::time::Duration;

use support::{Dev, IMAGE, describe, docker, docker_inspect, http_get_host, nanos, wait_for};

const DOMAIN: &str = "cj.localhost";

/// A routed web job: two tasks on allocated ports, each answering with its greeting.
fn hello_yaml(extra_env: &str) -> String {
    format!(
        r#"service: hello
jobs:
  - name: web
    image: {IMAGE}
    instances: 2
    port: auto
    route: web
    drain_timeout: 1s
    env:
      GREETING: "{{{{ vars.greeting }}}} from {{{{ env.name }}}}"{extra_env}
    command: [sh, -c, 'mkdir -p /tmp/www && echo "$GREETING" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s, retries: 2 }}
"#
    )
}

fn start_dev_with_router() -> Dev {
    Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", DOMAIN])
}

/// The body the router answers `host` with, once it answers 200.
fn through_router(dev: &Dev, host: &str) -> String {
    let router = dev.router_address();
    wait_for(
        &format!("the router to serve {host}"),
        Duration::from_secs(30),
        || match http_get_host(&router, host, "/") {
            Ok((200, body)) => Some(body.trim().to_owned()),
            _ => None,
        },
    )
}

fn ports_of(dev: &Dev, env: &str) -> Vec<u16> {
    let status: Vec<cj_api::TaskStatus> =
        serde_json::from_value(dev.json(&["status", "hello", "--env", env, "--json"])).unwrap();
    let mut ports: Vec<u16> = status
        .iter()
        .map(|task| {
            let id = task.container_id.as_deref().expect("a running container");
            let env_list = docker_inspect(id)["Config"]["Env"].clone();
            env_list
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|line| line.as_str()?.strip_prefix("PORT="))
                .map(|port| port.parse().unwrap())
                .next()
                .expect("the task sees PORT")
        })
        .collect();
    ports.sort();
    ports
}

#[test]
fn production_and_a_copy_serve_their_own_variables_through_the_router() {
    let dev = start_dev_with_router();
    dev.ok(&["env", "vars", "production", "--set", "greeting=hello"]);
    dev.push_yaml("hello.yaml", &hello_yaml(""));
    dev.ok(&["up", "hello"]);
    dev.ok(&[
        "env",
        "create",
        "dev-1",
        "--from",
        "production",
        "--set",
        "greeting=hi",
    ]);
    let up = dev.ok(&["env", "up", "dev-1"]);
    assert!(up.contains("hello/web"), "{up}");

    assert_eq!(
        through_router(&dev, "web.cj.localhost"),
        "hello from production"
    );
    assert_eq!(
        through_router(&dev, "web.production.cj.localhost"),
        "hello from production"
    );
    assert_eq!(
        through_router(&dev, "web.dev-1.cj.localhost"),
        "hi from dev-1"
    );

    // Ports: allocated, distinct across environments, in the range.
    let production = ports_of(&dev, "production");
    let copy = ports_of(&dev, "dev-1");
    assert_eq!(production.len(), 2);
    // The tests give each installation its own block of 20000-29999 (`--port-range`).
    assert!(
        production
            .iter()
            .chain(&copy)
            .all(|p| (20000..30000).contains(p))
    );
    assert!(
        production.iter().all(|port| !copy.contains(port)),
        "{production:?} {copy:?}"
    );

    // A rollout keeps each task's port.
    dev.push_yaml("hello.yaml", &hello_yaml("\n      RELEASE: \"2\""));
    dev.ok(&["rolling-update", "hello"]);
    assert_eq!(ports_of(&dev, "production"), production);

    // The environment list shows both; the copy says where it came from.
    let envs = dev.json(&["env", "list", "--json"]);
    let copy_info = envs
        .as_array()
        .unwrap()
        .iter()
        .find(|env| env["name"] == "dev-1")
        .expect("dev-1 is listed");
    assert_eq!(copy_info["from"], "production");
    assert_eq!(copy_info["tasks_running"], 2);

    // Destroyed: its containers are gone and the router says so; production stays.
    let destroyed = dev.json(&["env", "destroy", "dev-1", "--json"]);
    assert_eq!(destroyed["ports_released"], 2, "{destroyed}");
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=coding-job.cluster={}", dev.cluster),
        "--filter",
        "label=coding-job.env=dev-1",
    ]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    let (status, body) =
        http_get_host(&dev.router_address(), "web.dev-1.cj.localhost", "/").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("dev-1"), "{body}");
    assert_eq!(
        through_router(&dev, "web.cj.localhost"),
        "hello from production"
    );

    // History stays; the name is free again, and a destroyed environment refuses changes.
    // A conflict with the state of things (409): exit code 1, as the CLI gives for those.
    let again = dev.cli(&["up", "hello", "--env", "dev-1"]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("destroyed"),
        "{}",
        describe(&again)
    );
    dev.ok(&["down", "hello"]);
}

#[test]
fn jobs_start_in_dependency_order_across_services_with_addresses_rendered() {
    let dev = Dev::start();
    dev.push_yaml(
        "core.yaml",
        &format!(
            r#"service: core
jobs:
  - name: db
    image: {IMAGE}
    port: auto
    command: [sh, -c, 'sleep 1; mkdir -p /tmp/www && echo db > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s }}
"#
        ),
    );
    dev.push_yaml(
        "app.yaml",
        &format!(
            r#"service: app
jobs:
  - name: api
    image: {IMAGE}
    depends_on: [core/db]
    env:
      DB: "{{{{ addr(\"core/db\") }}}}"
    command: [sh, -c, 'exec sleep 100000']
"#
        ),
    );
    // `up app` brings up what it depends on in the other service first.
    let up = dev.ok(&["up", "app"]);
    assert!(up.contains("core/db"), "{up}");
    let status = |service: &str| dev.status(service).remove(0);
    let db = status("core");
    let api = status("app");
    let db_container = docker_inspect(db.container_id.as_deref().unwrap());
    let api_container = docker_inspect(api.container_id.as_deref().unwrap());
    let db_started = nanos(db_container["State"]["StartedAt"].as_str().unwrap());
    let api_started = nanos(api_container["State"]["StartedAt"].as_str().unwrap());
    assert!(db_started < api_started, "db must start before api");
    let db_port = db_container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|line| line.as_str()?.strip_prefix("PORT=").map(str::to_owned))
        .unwrap();
    let api_env: Vec<String> = api_container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        api_env.contains(&format!("DB=127.0.0.1:{db_port}")),
        "{api_env:?}"
    );
    dev.ok(&["down", "app"]);
    dev.ok(&["down", "core"]);
}

#[test]
fn template_errors_name_file_line_column_and_change_nothing() {
    let dev = Dev::start();
    let yaml = format!(
        "service: t\njobs:\n  - name: web\n    image: {IMAGE}\n    env:\n      A: \"{{{{ vars.missing }}}}\"\n"
    );
    let path = dev.data_dir.path().join("t.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let output = dev.cli(&["push", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("t.yaml:6:"), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(
        dev.json(&["env", "list", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Set it, push; a copy with the variable removed by a vars file is refused, by name.
    dev.ok(&["env", "vars", "production", "--set", "missing=here"]);
    dev.ok(&["push", path.to_str().unwrap()]);
    let vars = dev.data_dir.path().join("vars.yaml");
    std::fs::write(&vars, "other: 1\n").unwrap();
    let created = dev.cli(&[
        "env",
        "create",
        "dev-2",
        "--from",
        "nowhere",
        "--vars",
        vars.to_str().unwrap(),
    ]);
    assert_eq!(created.status.code(), Some(2), "{}", describe(&created));
    assert!(String::from_utf8_lossy(&created.stderr).contains("nowhere"));
    let bad_name = dev.cli(&["env", "create", "Bad/Name", "--from", "production"]);
    assert_eq!(bad_name.status.code(), Some(2), "{}", describe(&bad_name));
}

#[test]
fn seeded_volumes_are_filled_once_per_environment_and_removed_with_it() {
    let dev = Dev::start();
    let seed_dir = dev.data_dir.path().join("seed");
    std::fs::create_dir_all(seed_dir.join("content")).unwrap();
    std::fs::write(seed_dir.join("content/standard.txt"), "standard-library\n").unwrap();
    let tarball = dev.data_dir.path().join("std.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(seed_dir.join("content"))
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    dev.push_yaml(
        "db.yaml",
        &format!(
            r#"service: db
jobs:
  - name: mysql
    image: {IMAGE}
    command: [sh, -c, 'exec sleep 100000']
    volumes:
      - name: data
        mount: /var/lib/data
        seed: {}
"#,
            tarball.display()
        ),
    );
    dev.ok(&["up", "db"]);
    dev.ok(&["env", "create", "dev-1", "--from", "production"]);
    dev.ok(&["env", "up", "dev-1"]);
    let read = |env: &str| {
        dev.ok(&[
            "exec",
            "--env",
            env,
            "db/mysql",
            "--",
            "cat",
            "/var/lib/data/standard.txt",
        ])
    };
    assert_eq!(read("production").trim(), "standard-library");
    assert_eq!(read("dev-1").trim(), "standard-library");
    dev.ok(&[
        "exec",
        "--env",
        "dev-1",
        "db/mysql",
        "--",
        "sh",
        "-c",
        "echo dirty > /var/lib/data/standard.txt",
    ]);
    assert_eq!(read("dev-1").trim(), "dirty");
    assert_eq!(read("production").trim(), "standard-library");

    // Kept across a restart of the container.
    dev.ok(&["reload", "db", "--env", "dev-1"]);
    assert_eq!(read("dev-1").trim(), "dirty");

    let destroyed = dev.json(&["env", "destroy", "dev-1", "--json"]);
    assert_eq!(
        destroyed["volumes_removed"].as_array().unwrap().len(),
        1,
        "{destroyed}"
    );
    let volumes = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=coding-job.cluster={}", dev.cluster),
    ]);
    assert_eq!(
        volumes.lines().count(),
        1,
        "production's volume stays: {volumes}"
    );
    dev.ok(&["down", "db"]);
    docker(&["volume", "rm", volumes.trim()]);
}

#[test]
fn an_environment_with_a_ttl_is_destroyed_when_it_expires() {
    let dev = Dev::start();
    dev.push_yaml(
        "s.yaml",
        &format!(
            "service: s\njobs:\n  - name: w\n    image: {IMAGE}\n    command: [sleep, '100000']\n"
        ),
    );
    dev.ok(&[
        "env",
        "create",
        "short",
        "--from",
        "production",
        "--ttl",
        "3s",
    ]);
    dev.ok(&["env", "up", "short"]);
    wait_for("the environment to expire", Duration::from_secs(60), || {
        let envs = dev.json(&["env", "list", "--all", "--json"]);
        let short = envs
            .as_array()?
            .iter()
            .find(|env| env["name"] == "short")?
            .clone();
        (short["state"] == "destroyed").then_some(())
    });
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=coding-job.cluster={}", dev.cluster),
    ]);
    assert!(left.trim().is_empty(), "{left}");
    let expired = dev.cli(&["env", "up", "short"]);
    assert_eq!(expired.status.code(), Some(1), "{}", describe(&expired));
    assert!(String::from_utf8_lossy(&expired.stderr).contains("destroyed"));
}

#[test]
fn secret_variables_never_come_back_but_reach_the_task() {
    let dev = Dev::start();
    dev.ok(&[
        "env",
        "vars",
        "production",
        "--set",
        "db_password=hunter2-very-secret",
        "--secret",
        "db_password",
        "--set",
        "db_user=app",
    ]);
    dev.push_yaml(
        "s.yaml",
        &format!(
            "service: s\njobs:\n  - name: w\n    image: {IMAGE}\n    env:\n      DSN: \"{{{{ vars.db_user }}}}:{{{{ vars.db_password }}}}@db\"\n    command: [sleep, '100000']\n"
        ),
    );
    dev.ok(&["up", "s"]);
    let listed = dev.ok(&["env", "vars", "production", "--json"]);
    assert!(!listed.contains("hunter2"), "{listed}");
    assert!(listed.contains("db_user"), "{listed}");
    let inspected = dev.ok(&["inspect", "s/w", "--json"]);
    assert!(!inspected.contains("hunter2"), "{inspected}");
    assert!(inspected.contains("app:******@db"), "{inspected}");
    // The container itself has the real value.
    let id = dev.status("s")[0].container_id.clone().unwrap();
    let env = docker_inspect(&id)["Config"]["Env"].to_string();
    assert!(env.contains("DSN=app:hunter2-very-secret@db"), "{env}");
    dev.ok(&["down", "s"]);
}
