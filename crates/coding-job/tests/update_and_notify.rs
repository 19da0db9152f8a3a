//! `update` against a real registry (Debian's docker-registry, with and without auth), and
//! webhook notifications received by a real HTTP listener.

#[path = "../../registry/tests/support/mod.rs"]
mod registry_support;
mod support;

use std::io::Write;
use std::time::Duration;

use registry_support::TestRegistry;
use support::webhook::Receiver;
use support::{Dev, describe, free_port};

fn httpd_service(service: &str, job: &str, image: &str, port: u16) -> String {
    format!(
        "service: {service}\njobs:\n  - name: {job}\n    image: \"{image}\"\n    port: {port}\n    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n    check: {{ http: /health, interval: 500ms }}\n"
    )
}

#[test]
fn update_lists_the_registry_tags_and_rolls_to_the_chosen_one() {
    let registry = TestRegistry::start();
    let ids: Vec<String> = ["v1", "v2", "v3"]
        .iter()
        .map(|tag| registry.push_image("blog", tag))
        .collect();
    let dev = Dev::start();
    let image = format!("{}/blog:v1", registry.host());
    dev.push_yaml(
        "blog.yaml",
        &httpd_service("blog", "coding-blog", &image, free_port()),
    );
    dev.ok(&["up", "blog"]);

    // Without a terminal and without --tag it only lists, as the seed's tool did.
    let listing = dev.ok(&["update", "coding-blog"]);
    let running_id = dev.status("blog")[0].container_id.clone().unwrap();
    assert!(
        listing.contains(&format!("ContainerID: {running_id}")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("ImageID:     {}", ids[0])),
        "{listing}"
    );
    let order: Vec<usize> = ["Version: v3", "Version: v2", "Version: v1"]
        .iter()
        .map(|v| listing.find(v).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|pair| pair[0] < pair[1]),
        "newest first: {listing}"
    );
    assert!(listing.contains("--tag TAG"), "{listing}");

    let candidates = dev.json(&["update", "coding-blog", "--json"]);
    let tags: Vec<(&str, &str)> = candidates["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tag"].as_str().unwrap(), t["image_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tags,
        [
            ("v3", ids[2].as_str()),
            ("v2", ids[1].as_str()),
            ("v1", ids[0].as_str())
        ]
    );

    let unknown = dev.cli(&["update", "coding-blog", "--tag", "nope", "--yes"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));

    // At a terminal it asks: tag 3 of the list (v1), then confirmation. `script` gives the CLI a
    // real pseudo-terminal.
    let command = format!("{} update coding-blog", env!("CARGO_BIN_EXE_coding-job"));
    let mut interactive = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("CODING_JOB_SERVER", &dev.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = interactive.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    stdin.write_all(b"3\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"y\n").unwrap();
    let output = interactive.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(
        screen.contains("pick a tag") && screen.contains("roll blog/coding-blog to v1?"),
        "{screen}"
    );
    assert!(screen.contains("succeeded"), "{screen}");
    // v1 is what the latest version already names: no new version is stored for it.
    assert_eq!(dev.history("coding-blog").versions.len(), 1);

    let rolled = dev.ok(&["update", "coding-blog", "--tag", "v2", "--yes"]);
    assert!(rolled.contains("succeeded"), "{rolled}");
    let task = dev.status("blog").remove(0);
    assert_eq!(
        task.image.as_deref(),
        Some(format!("{}/blog:v2", registry.host()).as_str())
    );
    assert_eq!(
        (task.version, task.health.as_deref()),
        (Some(2), Some("healthy"))
    );
    let history = dev.history("coding-blog");
    assert_eq!(
        history.versions.len(),
        2,
        "an update to another tag is a new version of the service"
    );
    let diff = dev.ok(&["history", "coding-blog", "--diff", "1..2"]);
    assert!(
        diff.contains(&format!("+    image: \"{}/blog:v2\"", registry.host())),
        "only the image changed: {diff}"
    );
}

#[test]
fn update_refuses_tags_outside_the_reference_grammar_and_a_refused_update_stores_nothing() {
    let dev = Dev::start();
    let port = free_port();
    dev.push_yaml(
        "web.yaml",
        &httpd_service("web", "web", "cj-example/busybox:1", port),
    );
    let update = |tag: &str| {
        let request = serde_json::json!({"env": "production", "target": "web", "tag": tag});
        dev.http_post("/v1/update", &request.to_string())
    };
    // Not up: refused, and (unlike before) no new version is left behind.
    let revision = dev.store_revision();
    let (status, body) = update("2");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not up"), "{body}");
    assert_eq!(dev.store_revision(), revision, "a refused update wrote");

    dev.ok(&["up", "web"]);
    let revision = dev.store_revision();
    let hostile = [
        "2\n    env: {INJECTED: \"1\"}",
        "2\n    docker_config:\n      docker_hostconfig: {Privileged: true, Binds: [\"/:/host\"]}",
        "a b",
        "2\"",
        "",
        "-leading-dash",
        &"x".repeat(129),
        "v1@sha256:abc",
        "../v1",
    ];
    for tag in hostile {
        let (status, body) = update(tag);
        assert_eq!(status, 400, "tag {tag:?}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().starts_with("invalid tag"),
            "tag {tag:?}: {body}"
        );
        assert!(body.len() < 400, "the refusal echoes too much: {body}");
    }
    assert_eq!(dev.store_revision(), revision, "a refused update wrote");
    let history = dev.history("web/web");
    assert_eq!(history.versions.len(), 1);
    let versions = dev.http_get("/v1/versions/diff?target=web&from=1&to=1");
    assert!(!versions.contains("INJECTED"), "{versions}");
    assert!(!versions.contains("Privileged"), "{versions}");
}

#[test]
fn update_uses_registry_credentials_from_the_server_config_and_never_shows_them() {
    const PASSWORD: &str = "s3cret-Pa55word";
    let registry = TestRegistry::start_with_auth("deploy", PASSWORD);
    registry.push_image("app", "v1");
    registry.push_image("app", "v2");
    let image = format!("{}/app:v1", registry.host());

    let anonymous = Dev::start();
    anonymous.push_yaml(
        "app.yaml",
        &httpd_service("app", "app", &image, free_port()),
    );
    let refused = anonymous.cli(&["update", "app"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("requires credentials"),
        "{}",
        describe(&refused)
    );

    let config = format!(
        "registries:\n  - host: \"{}\"\n    username: deploy\n    password: \"{PASSWORD}\"\n",
        registry.host()
    );
    let dev = Dev::start_with_config(Some(&config));
    dev.push_yaml(
        "app.yaml",
        &httpd_service("app", "app", &image, free_port()),
    );
    dev.ok(&["up", "app"]);
    let mut outputs = vec![
        dev.ok(&["update", "app"]),
        dev.ok(&["update", "app", "--json"]),
    ];
    outputs.push(dev.ok(&["update", "app", "--tag", "v2", "--yes"]));
    outputs.push(dev.ok(&["deployments", "--json"]));
    outputs.push(dev.ok(&["inspect", "app", "--json"]));
    outputs.push(dev.ok(&["history", "app", "--json"]));
    assert!(outputs[0].contains("Version: v2"), "{}", outputs[0]);
    for output in &outputs {
        assert!(
            !output.contains(PASSWORD),
            "the registry password leaked: {output}"
        );
    }
}

/// A webhook receiver on a loopback port that records each POSTed JSON body.
#[test]
fn webhooks_receive_push_rollout_and_health_events_in_order() {
    let receiver = Receiver::start();
    let dev = Dev::start_with_config(Some(&format!("notify:\n  - {}\n", receiver.url)));
    let port = free_port();
    let policy = "    update: { healthy_deadline: 10s, auto_rollback: true }\n";
    let good = httpd_service("hooked", "web", support::IMAGE, port) + policy;
    dev.push_yaml("hooked.yaml", &good);
    dev.ok(&["up", "hooked"]);
    dev.push_yaml(
        "hooked.yaml",
        &good.replace("interval: 500ms", "interval: 600ms"),
    );
    dev.ok(&["rolling-update", "hooked"]);
    dev.push_yaml("hooked.yaml", &good.replace("/health", "/missing"));
    let failed = dev.cli(&["rolling-update", "hooked"]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));

    let events = receiver.wait("every notification", Duration::from_secs(10), |e| {
        e["event"] == "rollout_failed"
    });
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let expected_order = [
        "push",
        "push",
        "rollout_started",
        "rollout_finished",
        "push",
        "rollout_started",
        "task_unhealthy",
        "rollout_failed",
    ];
    let mut position = 0;
    for kind in &kinds {
        if position < expected_order.len() && *kind == expected_order[position] {
            position += 1;
        }
    }
    assert_eq!(
        position,
        expected_order.len(),
        "events out of order or missing: {kinds:?}"
    );
    assert_eq!(events[0]["service"], "hooked");
    assert_eq!(events[0]["version"], 1);
    let failure = events
        .iter()
        .find(|e| e["event"] == "rollout_failed")
        .unwrap();
    assert_eq!(failure["rolled_back"], true);
}
