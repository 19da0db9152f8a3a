//! Environments on several real hosts: a copy of production whose pinned task would take a fixed
//! port another environment uses on the same host is refused, `--map-hosts` moves it, and a
//! standalone `coding-job router` serves both environments' tasks on the bed's hosts.

mod support;

use std::time::Duration;

use support::cluster::Cluster;
use support::{IMAGE, describe, free_port, http_get_host, wait_for};

fn shop(db_port: u16) -> String {
    format!(
        r#"service: shop
jobs:
  - name: db
    image: {IMAGE}
    run_on_host: host-1
    port: {db_port}
    command: [sh, -c, 'exec httpd -f -p {db_port} -h /']
  - name: web
    image: {IMAGE}
    instances: 2
    port: auto
    route: web
    depends_on: [db]
    env:
      GREETING: "{{{{ vars.greeting }}}} in {{{{ env.name }}}}"
      DB: "{{{{ addr(\"db\") }}}}"
    command: [sh, -c, 'mkdir -p /tmp/www && echo "$GREETING via $DB" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s }}
"#
    )
}

#[test]
fn a_copy_moves_pinned_tasks_with_map_hosts_and_one_router_serves_both_environments() {
    let cluster = Cluster::start(2);
    let server = &cluster.server;
    let db_port = free_port();
    server.ok(&["env", "vars", "production", "--set", "greeting=hello"]);
    server.push_yaml("shop.yaml", &shop(db_port));
    server.ok(&["up", "shop"]);

    // The same file in a copy would put db's fixed port on host-1 twice: refused, with the fix.
    server.ok(&[
        "env",
        "create",
        "dev-1",
        "--from",
        "production",
        "--set",
        "greeting=hi",
    ]);
    let refused = server.cli(&["env", "up", "dev-1"]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let message = String::from_utf8_lossy(&refused.stderr);
    let port = format!("port {db_port}");
    for needle in [port.as_str(), "host-1", "port: auto", "--map-hosts"] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    server.ok(&["env", "destroy", "dev-1"]);

    // Mapped to host-2, it runs there, and the copy's web renders db's new address.
    server.ok(&[
        "env",
        "create",
        "dev-2",
        "--from",
        "production",
        "--set",
        "greeting=hi",
        "--map-hosts",
        "host-1=host-2",
    ]);
    server.ok(&["env", "up", "dev-2"]);
    // Where each environment's db runs, as its host's engine shows it.
    let db_host = |env: &str| -> (String, bool) {
        let status = server.json(&["status", "shop/db", "--env", env, "--json"]);
        let task = &status[0];
        let host = task["actual_host"].as_str().unwrap_or_default().to_owned();
        let id = task["container_id"].as_str().unwrap_or_default().to_owned();
        let running = cluster
            .containers(&host, "db")
            .iter()
            .any(|(full_id, running, _)| *running && full_id.starts_with(&id));
        (host, running)
    };
    assert_eq!(db_host("production"), ("host-1".to_owned(), true));
    assert_eq!(db_host("dev-2"), ("host-2".to_owned(), true));

    let router = cluster.start_router("cj.test");
    let serve = |host: &str| {
        wait_for(
            &format!("the router to serve {host}"),
            Duration::from_secs(30),
            || match http_get_host(&router.address, host, "/") {
                Ok((200, body)) => Some(body.trim().to_owned()),
                _ => None,
            },
        )
    };
    let host_1 = cluster.bed.host("host-1").address.clone();
    let host_2 = cluster.bed.host("host-2").address.clone();
    assert_eq!(
        serve("web.cj.test"),
        format!("hello in production via {host_1}:{db_port}")
    );
    assert_eq!(
        serve("web.dev-2.cj.test"),
        format!("hi in dev-2 via {host_2}:{db_port}")
    );
    // Both of web's tasks, on both hosts, take requests.
    let page = http_get_host(&router.address, "cj.test", "/").unwrap().1;
    assert!(page.contains("web"), "{page}");
    server.ok(&["env", "destroy", "dev-2"]);
    server.ok(&["down", "shop"]);
}
