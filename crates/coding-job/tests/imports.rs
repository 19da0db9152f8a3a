//! `import` against a real server and real Docker: a Compose system of busybox services is
//! imported, pushed, brought up and answers through the router, one service reaching the other
//! at the address the import wrote; the seed's job list imports and pushes; and every file of
//! the import corpus (when it is present beside the project) pushes once its variables are set.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Dev, IMAGE, describe, free_port, http_get_host, wait_for};

fn compose_system(api_port: u16, web_port: u16) -> String {
    format!(
        r#"name: shop
services:
  api:
    image: ${{IMAGE}}
    command: ["sh", "-c", "mkdir -p /tmp/www && echo api-says-hello > /tmp/www/index.html && exec httpd -f -p {api_port} -h /tmp/www"]
    expose: ["{api_port}"]
    healthcheck:
      test: ["CMD", "wget", "-q", "--spider", "http://localhost:{api_port}/"]
      interval: 1s
      timeout: 1s
      retries: 3
    networks: [backend]
  web:
    image: ${{IMAGE}}
    depends_on:
      api:
        condition: service_healthy
    environment:
      API_URL: http://api:{api_port}
      GREETING: ${{GREETING:-hello from compose}}
    command: ["sh", "-c", "mkdir -p /tmp/www && wget -qO /tmp/www/index.html $$API_URL/ && echo \"$$GREETING\" >> /tmp/www/index.html && exec httpd -f -p {web_port} -h /tmp/www"]
    ports: ["8080:{web_port}"]
    labels:
      - "traefik.http.routers.web.rule=Host(`shop.example.com`)"
    healthcheck:
      test: ["CMD-SHELL", "wget -q --spider http://127.0.0.1:{web_port}/ || exit 1"]
      interval: 1s
      timeout: 1s
      retries: 3
    networks: [backend]
networks:
  backend: {{}}
"#
    )
}

#[test]
fn a_compose_system_imports_comes_up_and_answers_through_the_router() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router = dev.router_address();
    let dir = dev.data_dir.path().join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        compose_system(free_port(), free_port()),
    )
    .unwrap();

    let report = dev.json(&[
        "import",
        "compose",
        dir.join("docker-compose.yml").to_str().unwrap(),
        "-o",
        dir.join("out").to_str().unwrap(),
        "--json",
    ]);
    let variables: Vec<(&str, Option<&str>)> = report["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| {
            (
                variable["name"].as_str().unwrap(),
                variable["default"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        variables,
        [("GREETING", Some("hello from compose")), ("IMAGE", None)]
    );
    let written = std::fs::read_to_string(dir.join("out/shop.yaml")).unwrap();
    assert!(written.contains(r#"http://{{ addr("api") }}"#), "{written}");
    assert!(written.contains("route: web"), "{written}");
    let left: Vec<&str> = report["not_carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|left| left["path"].as_str().unwrap())
        .collect();
    assert!(left.contains(&"services.api.networks"), "{left:?}");
    assert!(left.contains(&"networks"), "{left:?}");

    dev.ok(&[
        "env",
        "vars",
        "production",
        "--set",
        &format!("IMAGE={IMAGE}"),
        "--set",
        "GREETING=hello from compose",
    ]);
    dev.ok(&["push", dir.join("out/shop.yaml").to_str().unwrap()]);
    dev.ok(&["up", "shop", "--timeout", "60s"]);
    let (_, body) = wait_for(
        "web to answer through the router with what api said",
        Duration::from_secs(30),
        || {
            http_get_host(&router, "web.cj.localhost", "/")
                .ok()
                .filter(|(status, _)| *status == 200)
        },
    );
    assert!(body.contains("api-says-hello"), "{body}");
    assert!(body.contains("hello from compose"), "{body}");
    dev.ok(&["down", "shop"]);
}

const SEED_JOB_LIST: &str = r#"jobs: <
  name: "coding-prober"
  image: "coding-prober:latest"
  run_on_host: "mon"
  port: "4444"
>
jobs: <
  name: "coding-blog"
  image: "coding-blog:59559fd"
  run_on_host: "core-app-2"
  port: "9090"
>
jobs: <
  name: "webhook-listener"
  image: "webhook-listener:a5af2f2"
  run_on_host: "git-app-1"
  port: "9999"
  envs: <
    key: "http_port"
    value: "8990"
  >
>
jobs: <
  name: "updatehook-listener"
  image: "updatehook-listener:latest"
  run_on_host: "git-app-1"
  port: "9999"
>
"#;

#[test]
fn the_seeds_job_list_imports_and_pushes_and_says_where_ports_clash() {
    let dev = Dev::start();
    let file = dev.data_dir.path().join("coding.pb.txt");
    std::fs::write(&file, SEED_JOB_LIST).unwrap();
    let out = dev.data_dir.path().join("out");
    let output = dev.cli(&[
        "import",
        "jobs",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(
        report.contains("webhook-listener and updatehook-listener are all pinned to git-app-1"),
        "{report}"
    );
    let pushed = dev.ok(&["push", out.join("coding.yaml").to_str().unwrap()]);
    assert!(pushed.contains("coding"), "{pushed}");
    let status = dev.status("coding");
    assert_eq!(status.len(), 4, "{status:?}");

    // A misspelt field: refused at its place, exit 2, nothing written.
    std::fs::write(&file, "jobs: <\n  name: \"a\"\n  imgae: \"x\"\n>\n").unwrap();
    let refused = dev.cli(&["import", "jobs", file.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("coding.pb.txt:3:3"), "{message}");
}

fn corpus() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CODING_JOB_IMPORT_CORPUS").map(PathBuf::from),
        Some(support::repo_root().join("../shared/import-corpus")),
        Some(PathBuf::from("/work/shared/import-corpus")),
    ];
    let found = candidates.into_iter().flatten().find(|dir| dir.is_dir());
    if found.is_none() {
        eprintln!(
            "SKIPPED: the import corpus is absent (../shared/import-corpus beside the project, or CODING_JOB_IMPORT_CORPUS)"
        );
    }
    found
}

/// Imports `file` into `out`, sets the reported variables and pushes what was written; returns
/// the number of service files pushed.
fn import_and_push(dev: &Dev, kind: &str, file: &Path, out: &Path) -> Result<usize, String> {
    let imported = dev.cli(&[
        "import",
        kind,
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    if !imported.status.success() {
        return Err(describe(&imported));
    }
    let report: serde_json::Value = serde_json::from_slice(&imported.stdout).unwrap();
    let mut set = vec!["env".to_string(), "vars".into(), "production".into()];
    for variable in report["variables"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        let value = variable["default"].as_str().unwrap_or("set-by-test");
        if variable["secret"].as_bool() == Some(true) {
            set.extend(["--secret".to_string(), name.to_string()]);
        }
        set.extend(["--set".to_string(), format!("{name}={value}")]);
    }
    if set.len() > 3 {
        let args: Vec<&str> = set.iter().map(String::as_str).collect();
        let output = dev.cli(&args);
        if !output.status.success() {
            return Err(format!("setting the variables: {}", describe(&output)));
        }
    }
    let files = report["files"].as_array().unwrap();
    let mut paths: Vec<String> = files
        .iter()
        .map(|file| {
            out.join(file["path"].as_str().unwrap())
                .display()
                .to_string()
        })
        .collect();
    paths.insert(0, "push".into());
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let pushed = dev.cli(&args);
    if !pushed.status.success() {
        return Err(format!("push: {}", describe(&pushed)));
    }
    Ok(files.len())
}

#[test]
fn every_file_of_the_corpus_imports_and_pushes() {
    let Some(corpus) = corpus() else { return };
    let dev = Dev::start();
    let mut failures = Vec::new();
    let mut imported = 0;
    for kind in ["compose", "marathon", "kamal"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join(kind))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        for (index, file) in files.iter().enumerate() {
            let out = dev.data_dir.path().join(format!("{kind}-{index}"));
            match import_and_push(&dev, kind, file, &out) {
                Ok(_) => imported += 1,
                Err(problem) => failures.push(format!("{}: {problem}", file.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(imported, 40, "the corpus holds 40 files");
}
