//! Secret values (`secret_env`, secret variables) reach the container and nothing else, and
//! a `--public-read` server lets anyone read without a token but write nothing.

mod support;

use support::{Dev, IMAGE, Server, describe, docker_inspect};

const PASSWORD: &str = "s3cret-pa55word";

fn db_yaml(password: &str) -> String {
    format!(
        "service: shop\njobs:\n  - name: db\n    image: {IMAGE}\n    command: [sleep, '100000']\n    env: {{ DB_PASSWORD: \"{password}\", DB_USER: shop }}\n    secret_env: [DB_PASSWORD]\n"
    )
}

#[test]
fn secret_env_values_reach_the_container_and_never_come_back() {
    let dev = Dev::start();
    dev.push_yaml("shop.yaml", &db_yaml(PASSWORD));
    dev.ok(&["up", "shop"]);
    let task = &dev.status("shop/db")[0];
    let container = docker_inspect(task.container_id.as_deref().unwrap());
    let env = container["Config"]["Env"].to_string();
    assert!(
        env.contains(&format!("DB_PASSWORD={PASSWORD}")),
        "the container gets the value: {env}"
    );

    let inspect = dev.ok(&["inspect", "shop/db/db", "--json"]);
    assert!(inspect.contains("DB_PASSWORD=******"), "{inspect}");
    assert!(inspect.contains("DB_USER=shop"), "{inspect}");
    dev.push_yaml("shop.yaml", &db_yaml("another-s3cret"));
    let file = dev.data_dir.path().join("next.yaml");
    std::fs::write(&file, db_yaml("third-s3cret")).unwrap();
    let answers = [
        inspect,
        dev.ok(&["history", "db", "--diff", "1..2"]),
        dev.ok(&["diff", file.to_str().unwrap(), "--json"]),
        dev.ok(&["diff", file.to_str().unwrap()]),
        dev.ok(&["events", "--json"]),
        dev.http_get("/v1/versions/diff?target=shop&from=1&to=2"),
    ];
    for answer in &answers {
        for secret in [PASSWORD, "another-s3cret", "third-s3cret"] {
            assert!(!answer.contains(secret), "{secret} shown in:\n{answer}");
        }
    }
    assert!(
        answers[1].contains("secret values are masked, and a change of one does not show"),
        "{}",
        answers[1]
    );

    // A misspelt key is refused with its location, and nothing is stored.
    let wrong = db_yaml(PASSWORD).replace("secret_env: [DB_PASSWORD]", "secret_env: [DB_PASWORD]");
    let path = dev.data_dir.path().join("wrong.yaml");
    std::fs::write(&path, wrong).unwrap();
    let output = dev.cli(&["push", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("wrong.yaml:7:18: jobs[0].secret_env[0]: DB_PASWORD is not a key"),
        "{stderr}"
    );
}

#[test]
fn public_read_lets_anyone_read_hides_secrets_and_refuses_writes() {
    let mut server = Server::start_on_with("127.0.0.1", None, &["--public-read"]);
    server.token = Some(server.admin_token());
    let file = server.data_dir.path().join("shop.yaml");
    std::fs::write(&file, db_yaml(PASSWORD)).unwrap();
    server.ok(&["push", file.to_str().unwrap()]);
    std::fs::write(&file, db_yaml("another-s3cret")).unwrap();
    server.ok(&["push", file.to_str().unwrap()]);

    for path in [
        "/v1/status",
        "/v1/services",
        "/v1/versions?target=shop",
        "/v1/versions/diff?target=shop&from=1&to=2",
        "/v1/events",
        "/v1/deployments",
        "/v1/hosts",
        "/v1/envs",
    ] {
        let answer = server.http("GET", path, None, None);
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        for secret in [PASSWORD, "another-s3cret", &server.admin_token()] {
            assert!(!answer.body.contains(secret), "GET {path} shows a secret");
        }
    }
    assert!(
        server
            .announced
            .iter()
            .any(|line| line.contains("public read"))
    );
    // The CLI without a token reads too.
    let status = server.cli_as(None, &["status"]);
    assert!(status.status.success(), "{}", describe(&status));

    // Writes, and what only admins read, still need a token.
    let push = server.http(
        "POST",
        "/v1/push",
        None,
        Some(r#"{"env":"production","file":"x.yaml","source":"service: x\njobs: []\n"}"#),
    );
    assert_eq!(push.status, 401, "{}", push.body);
    for path in ["/v1/tokens", "/v1/audit", "/v1/exec?target=shop/db&cmd=id"] {
        let answer = server.http("GET", path, None, None);
        assert_eq!(
            answer.status, 401,
            "GET {path} without a token: {}",
            answer.body
        );
    }
    let output = server.cli_as(None, &["down", "shop"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}
