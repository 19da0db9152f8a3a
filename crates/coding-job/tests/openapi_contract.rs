//! The OpenAPI document against the live server: schemathesis (PyPI) loads
//! `GET /v1/openapi.json` (so it is a valid OpenAPI 3 document), generates requests for every
//! documented route from it and fails on any 5xx answer, and on any answer whose status,
//! content type or body the document does not describe. The server has something to return:
//! a pushed service whose image is in a real registry (Debian's docker-registry, so the routes
//! that read tags reach one) and a running task. Endless answers are kept finite (`follow` of
//! logs and `watch` of routes are always false, a wave waits at most 3 s, deployments are not
//! followed) and the WebSocket routes are left out; every request has a timeout and the whole
//! run a time budget and a deadline.

#[path = "../../registry/tests/support/mod.rs"]
mod registry_support;
mod support;

use std::process::Command;
use std::time::Duration;

use registry_support::TestRegistry;
use support::{Dev, describe, free_port, output_within};

/// The version scripts/test.sh installs.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// What schemathesis may spend generating and sending requests, all phases together.
const BUDGET_SECONDS: u64 = 60;
/// How long one request may take: streamed answers (`up`, a followed deployment) end well
/// before, with the timeouts the config pins.
const REQUEST_TIMEOUT_SECONDS: u64 = 20;
/// No 5xx; and every answer's status, content type and body as the document says.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";
/// The WebSocket routes: a generated request cannot speak the protocol after the 101.
const WEBSOCKET_ROUTES: [&str; 2] = ["/v1/exec", "/v1/agent/connect"];

/// Values that exist on the server, offered for half of the generated names so requests get
/// past "no such service" to the handlers' own work.
const CONFIG: &str = r#"
[generation]
# A `dev` server on loopback takes requests without a token; a generated (invalid) one would
# only be refused with 401.
with-security-parameters = false

[dictionaries.names]
values = ["production", "shop", "shop/web", "shop/web/web", "test-host", "v1", "v2", "1", "2"]

[parameters]
"query.env" = { dictionary = "names", probability = 0.5 }
"query.target" = { dictionary = "names", probability = 0.5 }
"path.name" = { dictionary = "names", probability = 0.5 }
"body.env" = { dictionary = "names", probability = 0.5 }
"body.target" = { dictionary = "names", probability = 0.5 }
"body.tag" = { dictionary = "names", probability = 0.5 }

# Streamed answers kept short: a wave waits at most 3 s for its tasks, and deployments answer
# at once instead of following a rollout that may wait a minute for a task to be healthy.
"body.timeout_seconds" = 3
"query.timeout_seconds" = 3
"body.follow" = false

# Without end otherwise: the answer follows the logs, or the route table, until the client
# goes away.
[[operations]]
include-path = "/v1/logs"
parameters = { "query.follow" = false }

[[operations]]
include-path = "/v1/routes"
parameters = { "query.watch" = false }

[[operations]]
include-path = "/v1/events"
parameters = { "query.follow" = false }
"#;

#[test]
fn no_route_answers_with_a_server_error_or_off_its_document() {
    assert!(
        which("schemathesis").is_some(),
        "schemathesis is not installed: `pip install {SCHEMATHESIS}` (scripts/test.sh does)"
    );
    let registry = TestRegistry::start();
    registry.push_image("shop", "v1");
    registry.push_image("shop", "v2");
    let dev = Dev::start();
    let port = free_port();
    dev.push_yaml(
        "shop.yaml",
        &format!(
            "service: shop\njobs:\n  - name: web\n    image: \"{}/shop:v1\"\n    port: {port}\n    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n",
            registry.host()
        ),
    );
    dev.ok(&["up", "shop"]);
    assert_eq!(dev.status("shop")[0].state, "running");

    let document: serde_json::Value =
        serde_json::from_str(&dev.http_get("/v1/openapi.json")).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, cj_server::API_ROUTES.len());

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut command = Command::new("schemathesis");
    // Its working directory is the temporary one: schemathesis keeps its example database
    // (`.hypothesis`) there.
    command
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", dev.url))
        .args(["--checks", CHECKS])
        .args(["--max-examples", "5"])
        .args(["--max-time", &BUDGET_SECONDS.to_string()])
        .args(["--request-timeout", &REQUEST_TIMEOUT_SECONDS.to_string()])
        // One worker: with two threads, hypothesis (describing its filters) parses source
        // concurrently, which Python 3.11.7 (this machine's) can fail at with "AST constructor
        // recursion depth mismatch", an error of the tool, not of the server.
        .args(["--workers", "1"]);
    for route in WEBSOCKET_ROUTES {
        command.args(["--exclude-path", route]);
    }
    let deadline = Duration::from_secs(BUDGET_SECONDS + 60);
    let output = output_within(command, deadline);
    let report = describe(&output);
    assert!(output.status.success(), "{report}");
    // Schemathesis leaves out the route it loaded the document from (read above).
    let tested = cj_server::API_ROUTES.len() - WEBSOCKET_ROUTES.len() - 1;
    assert!(
        report.contains(&format!("Tested: {tested}\n")),
        "expected every route but the WebSocket ones and the document ({tested}) to be tested: {report}"
    );
    assert!(
        report.contains("Specification:    Open API 3.1.0"),
        "{report}"
    );
}

/// Where `program` is on the PATH, if it is.
fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}
