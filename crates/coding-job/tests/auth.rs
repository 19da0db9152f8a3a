//! Tokens, roles and the audit log, over a real `coding-job server` (tokens required) and the
//! CLI binary: what each role may do, revocation, the admin token file, the audit of allowed
//! and refused writes, TLS with a certificate of the test's own, and that no secret ever
//! shows up in a listing, the audit, an error or the server's log. A `dev` on loopback still
//! needs no token.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;
use support::{Dev, Server, Tls, describe};

const SERVICE: &str = "service: web\njobs:\n  - name: web\n    image: 127.0.0.1:9/web:1\n";

/// Makes a token with the admin token; returns its secret.
fn create_token(server: &Server, name: &str, role: &str) -> String {
    let created = server.json(&["token", "create", name, "--role", role, "--json"]);
    assert_eq!(created["name"], name);
    assert_eq!(created["role"], role);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("cj_"), "{secret}");
    secret
}

/// Writes the service file and returns its path.
fn service_file(server: &Server, yaml: &str) -> String {
    let path = server.data_dir.path().join("web.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An admin-token server with tokens of each role: (server, read, deploy, agent).
fn server_with_tokens() -> (Server, String, String, String) {
    let mut server = Server::start();
    server.token = Some(server.admin_token());
    let read = create_token(&server, "ci-read", "read");
    let deploy = create_token(&server, "ci-deploy", "deploy");
    let agent = create_token(&server, "host-1", "agent");
    (server, read, deploy, agent)
}

#[test]
fn without_a_token_the_server_answers_401_with_json() {
    let server = Server::start();
    for (method, path, body) in [
        ("GET", "/v1/status", None),
        ("GET", "/v1/info", None),
        (
            "POST",
            "/v1/push",
            Some(r#"{"env": "production", "file": "f", "source": "x"}"#),
        ),
        ("GET", "/v1/nothing", None),
    ] {
        let answer = server.http(method, path, None, body);
        assert_eq!(answer.status, 401, "{method} {path}: {}", answer.head);
        assert!(
            answer
                .head
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{}",
            answer.head
        );
        let error: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(error["code"], "unauthorized", "{}", answer.body);
        assert!(error["error"].as_str().unwrap().contains("token"));
    }
    let invalid = server.http("GET", "/v1/status", Some("cj_not-a-token"), None);
    assert_eq!(invalid.status, 401);
    assert!(!invalid.body.contains("cj_not-a-token"), "{}", invalid.body);

    let output = server.cli(&["status"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("needs a token"),
        "{}",
        describe(&output)
    );
}

#[test]
fn each_role_does_what_it_may_and_is_told_which_role_it_lacks() {
    let (server, read, deploy, agent) = server_with_tokens();
    let file = service_file(&server, SERVICE);

    // read: GET routes only.
    let status = server.cli_as(Some(&read), &["status", "--json"]);
    assert!(status.status.success(), "{}", describe(&status));
    let pushed = server.cli_as(Some(&read), &["push", &file]);
    assert_eq!(pushed.status.code(), Some(2), "{}", describe(&pushed));
    assert!(
        stderr(&pushed).contains("this needs the deploy role; token ci-read has read"),
        "{}",
        describe(&pushed)
    );
    let answer = server.http(
        "POST",
        "/v1/up",
        Some(&read),
        Some(r#"{"env": "production", "target": "web"}"#),
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    let error: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(error["code"], "forbidden");

    // agent: nothing but the agents' routes (and /v1/info).
    for args in [vec!["push", file.as_str()], vec!["status"]] {
        let output = server.cli_as(Some(&agent), &args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
        assert!(
            stderr(&output).contains("token host-1 has agent"),
            "{}",
            describe(&output)
        );
    }
    assert_eq!(
        server.http("GET", "/v1/info", Some(&agent), None).status,
        200
    );

    // deploy: pushes, and the version says who pushed it; tokens stay the admin's.
    let pushed = server.cli_as(Some(&deploy), &["push", &file]);
    assert!(pushed.status.success(), "{}", describe(&pushed));
    let versions = server.http("GET", "/v1/versions?target=web", Some(&deploy), None);
    assert_eq!(versions.status, 200, "{}", versions.body);
    let versions: Value = serde_json::from_str(&versions.body).unwrap();
    assert_eq!(versions[0]["pushed_by"], "ci-deploy", "{versions}");
    let listed = server.cli_as(Some(&deploy), &["token", "list"]);
    assert_eq!(listed.status.code(), Some(2), "{}", describe(&listed));
    assert!(
        stderr(&listed).contains("this needs the admin role; token ci-deploy has deploy"),
        "{}",
        describe(&listed)
    );
}

#[test]
fn admins_create_list_and_revoke_tokens_and_a_revoked_token_stops_working() {
    let (server, read, _deploy, _agent) = server_with_tokens();
    let listed = server.json(&["token", "list", "--json"]);
    let names: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|token| {
            (
                token["name"].as_str().unwrap(),
                token["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("admin", "admin"),
            ("ci-deploy", "deploy"),
            ("ci-read", "read"),
            ("host-1", "agent")
        ]
    );
    assert_eq!(listed[1]["created_by"], "admin");
    let table = server.ok(&["token", "list"]);
    assert!(table.starts_with("NAME"), "{table}");

    // The secret alone on stdout, the warning on stderr.
    let created = server.cli(&["token", "create", "ci-2", "--role", "read"]);
    assert!(created.status.success(), "{}", describe(&created));
    let secret = String::from_utf8(created.stdout.clone()).unwrap();
    assert!(
        secret.trim().starts_with("cj_") && secret.lines().count() == 1,
        "{secret}"
    );
    assert!(
        stderr(&created).contains("shown only now"),
        "{}",
        describe(&created)
    );

    let again = server.cli(&["token", "create", "ci-2", "--role", "read"]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        describe(&again)
    );
    let bad = server.cli(&["token", "create", "no/slash", "--role", "read"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));

    assert_eq!(
        server.http("GET", "/v1/status", Some(&read), None).status,
        200
    );
    assert_eq!(
        server.ok(&["token", "revoke", "ci-read"]).trim(),
        "token ci-read (read) revoked"
    );
    let after = server.http("GET", "/v1/status", Some(&read), None);
    assert_eq!(after.status, 401, "{}", after.body);
    let output = server.cli_as(Some(&read), &["status"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown or was revoked"),
        "{}",
        describe(&output)
    );

    // The last admin token stays.
    let last = server.cli(&["token", "revoke", "admin"]);
    assert_eq!(last.status.code(), Some(1), "{}", describe(&last));
    assert!(
        stderr(&last).contains("last admin token"),
        "{}",
        describe(&last)
    );
    let unknown = server.cli(&["token", "revoke", "nobody"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
}

#[test]
fn the_audit_lists_who_did_what_including_refused_attempts() {
    let (server, read, deploy, _agent) = server_with_tokens();
    let file = service_file(&server, SERVICE);
    assert!(
        server
            .cli_as(Some(&deploy), &["push", &file])
            .status
            .success()
    );
    assert_eq!(
        server.cli_as(Some(&read), &["push", &file]).status.code(),
        Some(2)
    );
    assert_eq!(server.cli_as(None, &["push", &file]).status.code(), Some(2));
    server.ok(&["token", "revoke", "host-1"]);
    // Reads are not audited.
    server.ok(&["status"]);

    let audit = server.json(&["audit", "--json", "--limit", "50"]);
    let rows: Vec<(String, String, String, String, u64)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().unwrap_or("-").to_owned();
            let what = format!("{} {}", text("method"), text("path"));
            (
                text("who"),
                text("role"),
                what,
                text("target"),
                entry["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |who: &str, role: &str, what: &str, target: &str, status: u64| {
        (
            who.to_owned(),
            role.to_owned(),
            what.to_owned(),
            target.to_owned(),
            status,
        )
    };
    assert_eq!(
        rows,
        [
            row("admin", "admin", "DELETE /v1/tokens/host-1", "host-1", 200),
            row("anonymous", "-", "POST /v1/push", "web", 401),
            row("ci-read", "read", "POST /v1/push", "web", 403),
            row("ci-deploy", "deploy", "POST /v1/push", "web", 200),
            row("admin", "admin", "POST /v1/tokens", "host-1", 201),
            row("admin", "admin", "POST /v1/tokens", "ci-deploy", 201),
            row("admin", "admin", "POST /v1/tokens", "ci-read", 201),
        ]
    );
    let table = server.ok(&["audit"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["WHO", "WHAT", "TARGET", "WHEN", "STATUS"]);
    assert!(table.contains("403 Forbidden"), "{table}");
    assert!(table.contains("production/web"), "{table}");

    // Only admins read the audit.
    let output = server.cli_as(Some(&deploy), &["audit"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}

#[test]
fn secrets_never_appear_in_listings_the_audit_answers_or_the_server_log() {
    let (mut server, read, deploy, agent) = server_with_tokens();
    let admin = server.admin_token();
    let file = service_file(&server, SERVICE);
    server.cli_as(Some(&deploy), &["push", &file]);
    server.cli_as(Some(&read), &["push", &file]);
    server.cli_as(Some(&agent), &["status"]);
    // One character off (never the same one, or the "wrong" token would be the right one).
    let last = if deploy.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &deploy[..deploy.len() - 1]);
    let refused = server.http(
        "POST",
        "/v1/up",
        Some(&wrong),
        Some(r#"{"env": "production", "target": "web"}"#),
    );
    assert_eq!(refused.status, 401);
    server.ok(&["token", "revoke", "ci-read"]);
    let revoked = server.http("GET", "/v1/status", Some(&read), None);
    assert_eq!(revoked.status, 401);

    let mut seen = vec![
        ("token list", server.ok(&["token", "list", "--json"])),
        ("token table", server.ok(&["token", "list"])),
        ("audit", server.ok(&["audit", "--json", "--limit", "1000"])),
        ("audit table", server.ok(&["audit"])),
        ("refused answer", refused.body),
        ("revoked answer", revoked.body),
        ("announced", server.announced.join("\n")),
    ];
    // The stored files hold hashes only.
    for file in ["store.redb", "audit.redb"] {
        let bytes = std::fs::read(server.data_dir.path().join(file)).unwrap();
        seen.push((file, String::from_utf8_lossy(&bytes).into_owned()));
    }
    // Whatever was logged, through a restart.
    server.restart();
    seen.push(("server stderr", server.stderr()));
    assert!(seen.iter().any(|(_, text)| text.contains("ci-deploy")));
    for secret in [&admin, &read, &deploy, &agent, &wrong] {
        let hex = &secret["cj_".len()..];
        for (what, text) in &seen {
            assert!(!text.contains(hex), "a secret appears in the {what}");
        }
    }
}

#[test]
fn the_admin_token_file_is_private_and_kept_across_restarts() {
    let mut server = Server::start();
    let path = server.admin_token_file();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token has mode {mode:o}");
    let secret = server.admin_token();
    let announced = server.announced.join("\n");
    assert!(
        announced.contains(&format!("admin token:    {} (new", path.display())),
        "{announced}"
    );
    assert!(!announced.contains(&secret[3..]), "{announced}");

    server.restart();
    assert_eq!(
        server.admin_token(),
        secret,
        "a restart changed the admin token"
    );
    let announced = server.announced.join("\n");
    assert!(
        announced.contains(&format!("admin token:    {}\n", path.display())),
        "{announced}"
    );
    server.token = Some(secret.clone());
    server.ok(&["token", "list"]);

    // Deleted: nothing new is written; the stored token still works.
    std::fs::remove_file(&path).unwrap();
    server.restart();
    assert!(!path.exists());
    let announced = server.announced.join("\n");
    assert!(announced.contains("--reset-admin-token"), "{announced}");
    server.ok(&["token", "list"]);
}

/// A self-signed certificate for 127.0.0.1, in the server's data directory's sibling.
fn certificate(dir: &std::path::Path) -> Tls {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    Tls { cert, key }
}

#[test]
fn a_tls_server_is_reached_with_its_ca_certificate_and_refused_clearly_without() {
    let files = tempfile::tempdir().unwrap();
    let tls = certificate(files.path());
    let mut server = Server::start_with(Some(&tls));
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    server.token = Some(server.admin_token());

    let untrusted = server.cli(&["token", "list"]);
    assert_eq!(untrusted.status.code(), Some(1), "{}", describe(&untrusted));
    let message = stderr(&untrusted);
    assert!(message.contains("not trusted"), "{message}");
    assert!(message.contains("--ca-cert"), "{message}");

    server.ca_cert = Some(tls.cert.clone());
    let listed = server.ok(&["token", "list"]);
    assert!(listed.contains("admin"), "{listed}");
    let created = server.json(&["token", "create", "ci", "--role", "read", "--json"]);
    let read = created["secret"].as_str().unwrap();
    let status = server.cli_as(Some(read), &["status", "--json"]);
    assert!(status.status.success(), "{}", describe(&status));

    // Plain HTTP to the TLS port gets no answer a client could mistake for the API's.
    let plain = server.url.replace("https://", "http://");
    let output = support::output_within(
        {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coding-job"));
            command.args(["status", "--server", &plain]);
            command
        },
        Duration::from_secs(60),
    );
    assert_ne!(output.status.code(), Some(0), "{}", describe(&output));
}

#[test]
fn dev_on_loopback_needs_no_token_but_checks_one_that_is_sent() {
    let dev = Dev::start();
    let yaml = "service: open\njobs:\n  - name: open\n    image: 127.0.0.1:9/img:1\n";
    assert_eq!(dev.push_yaml("open.yaml", yaml).trim(), "open -> version 1");
    // Under the local account's name, even where USER and LOGNAME are not set.
    let user = cj_api::local_user();
    assert_ne!(user, "unknown");
    assert_eq!(dev.history("open/open").versions[0].pushed_by, user);
    let output = dev.cli_as(Some("cj_nothing"), &["status"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("not valid"),
        "{}",
        describe(&output)
    );
    // Open mode audits too, under the identity the client claims.
    let audit = dev.json(&["audit", "--json"]);
    assert_eq!(audit[0]["who"], user.as_str(), "{audit}");
    assert_eq!(audit[0]["path"], "/v1/push");
    assert_eq!(audit[0]["target"], "open");
}

#[test]
fn pages_of_other_sites_may_not_write_run_commands_or_reach_an_open_dev_by_name() {
    let dev = Dev::start();
    let address = dev.url.trim_start_matches("http://").to_owned();
    let push = r#"{"env":"production","file":"x.yaml","source":"service: x\njobs:\n  - name: x\n    image: 127.0.0.1:9/x:1\n"}"#;
    let before = dev.store_revision();
    // A form or script of another site, posting to this machine's loopback: refused, and
    // nothing is stored, though a loopback dev asks no token.
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let answer = dev.http_with(
            "POST",
            "/v1/push",
            &[("Host", &address), ("Origin", origin)],
            None,
            Some(push),
        );
        assert_eq!(answer.status, 403, "{origin}: {}", answer.body);
        let error: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(error["code"], "csrf", "{}", answer.body);
        assert!(
            error["error"].as_str().unwrap().contains("another site"),
            "{}",
            answer.body
        );
    }
    assert_eq!(
        dev.store_revision(),
        before,
        "a refused write stored something"
    );

    // Nor may it open a terminal in a container (a WebSocket handshake names its origin).
    let exec = dev.http_with(
        "GET",
        "/v1/exec?target=x&cmd=sh",
        &[
            ("Host", &address),
            ("Origin", "https://evil.example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        None,
        None,
    );
    assert_eq!(exec.status, 403, "{}", exec.body);

    // The server's own pages (same origin) and clients that send no origin go on.
    let own = dev.http_with(
        "POST",
        "/v1/push",
        &[("Host", &address), ("Origin", &dev.url)],
        None,
        Some(push),
    );
    assert_eq!(own.status, 200, "{}", own.body);

    // A name another site points at 127.0.0.1 (DNS rebinding) reads nothing from an open dev;
    // localhost and addresses do.
    let rebound = dev.http_with(
        "GET",
        "/v1/status",
        &[("Host", "evil.example:7400")],
        None,
        None,
    );
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert!(rebound.body.contains("evil.example"), "{}", rebound.body);
    let port = address.rsplit(':').next().unwrap();
    for host in [address.clone(), format!("localhost:{port}")] {
        let answer = dev.http_with("GET", "/v1/status", &[("Host", &host)], None, None);
        assert_eq!(answer.status, 200, "{host}: {}", answer.body);
    }
    // Each refused write is in the audit, as made by another site.
    let audit = dev.json(&["audit", "--json"]);
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["who"] == "another site" && entry["status"] == 403)
        .count();
    assert_eq!(refused, 4, "{audit:#}");
}
