//! The API's edge against malformed and hostile requests, over a real `coding-job dev`: every
//! route (from one table that must match the server's own list) gets malformed JSON, empty and
//! oversized bodies, missing and wrong content types, wrong types, unknown fields, huge numbers,
//! wrong methods, bad and missing query parameters, an overlong URI and oversized headers. Each
//! must be a 4xx with a JSON `{"error", "code"}`, nothing may change (same store revision, no
//! container), and the server must still answer at the end.

#[path = "../support/mod.rs"]
mod support;

mod cases;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Dev, IMAGE};

/// The whole barrage must finish within this.
const DEADLINE: Duration = Duration::from_secs(240);
const TEN_MB: usize = 10 * 1024 * 1024;
/// No error message may be longer than this, whatever the request echoed.
const MAX_ERROR_CHARS: usize = 2000;

/// What a route takes: nothing, a query string, or a JSON body. `valid` would be accepted (and,
/// for `/v1/up`, start containers): every request sent is derived from it and must be refused.
#[derive(Clone, Copy)]
enum Input {
    None,
    Query {
        valid: &'static str,
        required: &'static [&'static str],
        numbers: &'static [&'static str],
        flags: &'static [&'static str],
    },
    Body {
        required: &'static [&'static str],
    },
    /// A body of data of any size, passed to the handler as it arrives (an agent's snapshot):
    /// a 10 MB one for no snapshot in progress is refused as not found, not as too large.
    Data,
}

struct Route {
    method: &'static str,
    path: &'static str,
    input: Input,
}

const fn query(
    valid: &'static str,
    required: &'static [&'static str],
    numbers: &'static [&'static str],
    flags: &'static [&'static str],
) -> Input {
    Input::Query {
        valid,
        required,
        numbers,
        flags,
    }
}

const fn route(method: &'static str, path: &'static str, input: Input) -> Route {
    Route {
        method,
        path,
        input,
    }
}

const NO_INPUT: Input = Input::None;
const ENV_TARGET_BODY: Input = Input::Body {
    required: &["env", "target"],
};
const FILE_BODY: Input = Input::Body {
    required: &["env", "file", "source"],
};
const TOKEN_BODY: Input = Input::Body {
    required: &["name", "role"],
};
const SCOPE: Input = query("env=production&target=abuse", &[], &[], &[]);
const TARGET: Input = query("env=production&target=abuse", &["target"], &[], &[]);
const VERSIONS: Input = query(
    "env=production&target=abuse&limit=5&before=9",
    &["target"],
    &["limit", "before"],
    &[],
);
const LOGS: Input = query(
    "env=production&target=abuse&tail=10&follow=false&container=ab&since=10m&timestamps=true",
    &["target"],
    &["tail"],
    &["follow", "timestamps"],
);
/// Valid but for the missing upgrade headers (and the container, which does not exist).
const EXEC: Input = query(
    "env=production&target=abuse&container=ab&tty=true&stdin=false&rows=24&cols=80&cmd=true",
    &["target", "cmd"],
    &["rows", "cols"],
    &["tty", "stdin"],
);
const HISTORY: Input = query(
    "env=production&target=abuse&limit=5",
    &["target"],
    &["limit"],
    &[],
);
/// `env up|down`: the environment (`abuse`, which does not exist) and the wave timeout.
const ENV_WAIT: Input = query("timeout_seconds=30", &[], &["timeout_seconds"], &[]);
const VERSION_DIFF: Input = query(
    "env=production&target=abuse&from=1&to=1",
    &["target", "from", "to"],
    &["from", "to"],
    &[],
);

/// Every route of the API. The test fails if the server has one this table does not name.
const ROUTES: &[Route] = &[
    route("GET", "/v1/info", NO_INPUT),
    route("GET", "/v1/agent/connect", NO_INPUT),
    route("POST", "/v1/push", FILE_BODY),
    route(
        "GET",
        "/v1/services",
        query("env=production", &[], &[], &[]),
    ),
    route("GET", "/v1/versions", VERSIONS),
    route("POST", "/v1/up", ENV_TARGET_BODY),
    route("POST", "/v1/down", ENV_TARGET_BODY),
    route("GET", "/v1/status", SCOPE),
    route(
        "GET",
        "/v1/hosts",
        query("history=false", &[], &[], &["history"]),
    ),
    route("GET", "/v1/servers", NO_INPUT),
    route("POST", "/v1/hosts/{name}/drain", NO_INPUT),
    route("POST", "/v1/hosts/{name}/undrain", NO_INPUT),
    route("POST", "/v1/hosts/{name}/prewarm", NO_INPUT),
    route("GET", "/v1/inspect", TARGET),
    route("GET", "/v1/logs", LOGS),
    route("GET", "/v1/exec", EXEC),
    route("GET", "/v1/history", HISTORY),
    route("POST", "/v1/rolling-update", ENV_TARGET_BODY),
    route("POST", "/v1/rollback", ENV_TARGET_BODY),
    route("POST", "/v1/reload", ENV_TARGET_BODY),
    route("POST", "/v1/update", ENV_TARGET_BODY),
    route("GET", "/v1/update/tags", TARGET),
    route("POST", "/v1/promote", ENV_TARGET_BODY),
    route("POST", "/v1/abort", ENV_TARGET_BODY),
    route("GET", "/v1/deployments", SCOPE),
    route("POST", "/v1/diff", FILE_BODY),
    route("GET", "/v1/versions/diff", VERSION_DIFF),
    route("POST", "/v1/tokens", TOKEN_BODY),
    route("GET", "/v1/tokens", NO_INPUT),
    route("DELETE", "/v1/tokens/{name}", NO_INPUT),
    route("GET", "/v1/audit", query("limit=5", &[], &["limit"], &[])),
    route("GET", "/v1/store/snapshot", NO_INPUT),
    route("GET", "/v1/envs", query("all=false", &[], &[], &["all"])),
    route(
        "POST",
        "/v1/envs",
        Input::Body {
            required: &["name", "from"],
        },
    ),
    route(
        "DELETE",
        "/v1/envs/{name}",
        query("keep_volumes=false", &[], &[], &["keep_volumes"]),
    ),
    route("POST", "/v1/envs/{name}/up", ENV_WAIT),
    route("POST", "/v1/envs/{name}/down", ENV_WAIT),
    route("GET", "/v1/envs/{name}/vars", NO_INPUT),
    route(
        "PUT",
        "/v1/envs/{name}/vars",
        Input::Body { required: &["set"] },
    ),
    route("GET", "/v1/envs/{name}/addresses", NO_INPUT),
    route(
        "GET",
        "/v1/routes",
        query("watch=false", &[], &[], &["watch"]),
    ),
    route(
        "POST",
        "/v1/router/counts",
        Input::Body {
            required: &["router", "started", "routes"],
        },
    ),
    route("GET", "/v1/router/certificates", NO_INPUT),
    route("GET", "/v1/router/certificates/{name}", NO_INPUT),
    route(
        "PUT",
        "/v1/router/certificates/{name}",
        Input::Body {
            required: &["chain_pem", "key_pem", "not_after"],
        },
    ),
    route("GET", "/v1/router/challenges/{token}", NO_INPUT),
    route(
        "PUT",
        "/v1/router/challenges/{token}",
        Input::Body {
            required: &["key_authorization"],
        },
    ),
    route("DELETE", "/v1/router/challenges/{token}", NO_INPUT),
    route(
        "PUT",
        "/v1/router/leases/{name}",
        Input::Body {
            required: &["holder", "ttl_seconds"],
        },
    ),
    route(
        "GET",
        "/v1/events",
        query(
            "env=production&since=1&limit=5",
            &[],
            &["since", "limit"],
            &[],
        ),
    ),
    route("GET", "/v1/volumes", SCOPE),
    route(
        "GET",
        "/v1/snapshots",
        query("env=production&task=abuse&volume=data", &[], &[], &[]),
    ),
    route(
        "POST",
        "/v1/snapshots",
        Input::Body {
            required: &["env", "task", "volume"],
        },
    ),
    route(
        "POST",
        "/v1/snapshots/restore",
        Input::Body {
            required: &["env", "task", "volume", "snapshot"],
        },
    ),
    route("GET", "/v1/snapshot-data/{id}", NO_INPUT),
    route("PUT", "/v1/agent/snapshots/{id}", Input::Data),
    route("GET", "/v1/agent/snapshots/{id}", NO_INPUT),
    route("GET", "/metrics", NO_INPUT),
    route("GET", "/v1/alerts", NO_INPUT),
    route("GET", "/v1/openapi.json", NO_INPUT),
];

fn service_yaml() -> String {
    format!(
        "service: abuse\njobs:\n  - name: abuse-job\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"
    )
}

/// The accepted body of a POST route, with every field it knows set.
fn valid_body(path: &str) -> Value {
    match path {
        "/v1/push" => json!({"env": "production", "file": "abuse.yaml",
                             "source": service_yaml(), "check_revision": 0}),
        "/v1/diff" => json!({"env": "production", "file": "abuse.yaml", "source": service_yaml()}),
        "/v1/up" | "/v1/down" => {
            json!({"env": "production", "target": "abuse", "timeout_seconds": 30})
        }
        "/v1/promote" | "/v1/abort" => {
            json!({"env": "production", "target": "abuse", "follow": false})
        }
        "/v1/tokens" => json!({"name": "abuse-token", "role": "read"}),
        "/v1/envs" => json!({"name": "abuse-env", "from": "production", "vars": {"a": "1"},
                             "secret_vars": ["a"], "ttl_seconds": 60,
                             "map_hosts": {"host-1": "host-2"}, "vars_file": "vars.yaml"}),
        "/v1/envs/{name}/vars" => json!({"set": {"abuse_var": "1"}, "secret": []}),
        "/v1/router/certificates/{name}" => json!({"chain_pem": "-----BEGIN CERTIFICATE-----",
                             "key_pem": "-----BEGIN PRIVATE KEY-----", "not_after": 1}),
        "/v1/router/challenges/{token}" => json!({"key_authorization": "abuse.abuse"}),
        "/v1/router/leases/{name}" => json!({"holder": "abuse", "ttl_seconds": 60}),
        "/v1/snapshots" => {
            json!({"env": "production", "task": "abuse", "volume": "data", "live": false})
        }
        "/v1/snapshots/restore" => json!({"env": "production", "task": "abuse", "volume": "data",
                             "snapshot": "snap-0123456789abcdef", "follow": false}),
        "/v1/router/counts" => json!({"router": "abuse", "started": "2026-01-01T00:00:00Z",
                             "routes": [{"env": "production", "route": "abuse", "service": "abuse",
                                         "job": "abuse-job", "versions": []}]}),
        _ => {
            json!({"env": "production", "target": "abuse", "to_version": 1, "tag": "2", "follow": false})
        }
    }
}

#[test]
fn the_route_table_names_every_route_of_the_server() {
    let mut ours: Vec<(String, String)> = ROUTES
        .iter()
        .map(|route| (route.method.to_owned(), route.path.to_owned()))
        .collect();
    let mut servers: Vec<(String, String)> = cj_server::API_ROUTES
        .iter()
        .map(|(method, path)| (method.to_uppercase(), (*path).to_owned()))
        .collect();
    ours.sort();
    servers.sort();
    assert_eq!(
        ours, servers,
        "the abuse test's ROUTES and the server's routes differ"
    );
}

#[test]
fn every_route_refuses_malformed_and_hostile_requests_and_nothing_changes() {
    let dev = Dev::start();
    assert_eq!(
        dev.push_yaml("abuse.yaml", &service_yaml()).trim(),
        "abuse -> version 1"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(DEADLINE, barrage(&dev))
            .await
            .expect("the barrage did not finish within its deadline");
    });
}

async fn barrage(dev: &Dev) {
    let started = Instant::now();
    let mut abuse = Abuse::new(dev);
    let revision = abuse.revision().await;
    assert!(dev.docker_containers().is_empty());

    for route in ROUTES {
        abuse.everywhere(route).await;
        match route.input {
            Input::None => {}
            Input::Query {
                valid,
                required,
                numbers,
                flags,
            } => {
                abuse.queries(route, valid, required, numbers, flags).await;
            }
            Input::Body { required } => abuse.bodies(route, required).await,
            Input::Data => {}
        }
    }
    abuse.specials().await;
    // (`/` itself is the web UI's overview page.)
    for path in [
        "/v1",
        "/v1/",
        "/v1/nope",
        "/v2/info",
        "/v1/info/more",
        "/v1/push/",
        "/%FF",
    ] {
        let request = abuse.request(Method::GET, path);
        abuse
            .check(&format!("GET {path}"), request, Some("unknown_route"))
            .await;
    }
    abuse.raw().await;

    let sent = abuse.sent;
    assert!(
        abuse.failures.is_empty(),
        "{} of {sent} abusive requests were not refused properly:\n{}",
        abuse.failures.len(),
        abuse.failures.join("\n")
    );
    assert_eq!(
        abuse.revision().await,
        revision,
        "the barrage changed the store"
    );
    assert!(
        dev.docker_containers().is_empty(),
        "the barrage created containers"
    );
    println!(
        "api_abuse: {sent} abusive requests refused in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

struct Abuse {
    client: reqwest::Client,
    url: String,
    address: String,
    sent: usize,
    failures: Vec<String>,
}

impl Abuse {
    fn new(dev: &Dev) -> Abuse {
        Abuse {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            url: dev.url.clone(),
            address: dev.url.trim_start_matches("http://").to_owned(),
            sent: 0,
            failures: Vec::new(),
        }
    }

    /// A request to a path of the route table (a `{name}` in it stands for `abuse`).
    fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let path_and_query = path_and_query.replace("{name}", "abuse");
        self.client
            .request(method, format!("{}{path_and_query}", self.url))
    }

    async fn revision(&self) -> u64 {
        let info: Value = self
            .request(Method::GET, "/v1/info")
            .send()
            .await
            .expect("GET /v1/info")
            .json()
            .await
            .unwrap();
        info["revision"].as_u64().unwrap()
    }

    /// Sends one request; it must be refused with a 4xx and a JSON error (of `code`, if given).
    async fn check(&mut self, what: &str, request: reqwest::RequestBuilder, code: Option<&str>) {
        self.sent += 1;
        let verdict = match request.send().await {
            Err(error) => Err(format!("no answer: {error}")),
            Ok(response) => {
                let status = response.status();
                let allow = response.headers().contains_key("allow");
                let body = response.text().await.unwrap_or_default();
                judge(status.as_u16(), &body, code).and_then(|()| {
                    if status == 405 && !allow {
                        Err("405 without an Allow header".into())
                    } else {
                        Ok(())
                    }
                })
            }
        };
        if let Err(problem) = verdict {
            self.failures.push(format!("{what}: {problem}"));
        }
    }
}

/// A 4xx with a JSON body whose `error` and `code` are not empty (and `code` is the one
/// expected), and whose message stays short whatever was sent.
fn judge(status: u16, body: &str, code: Option<&str>) -> Result<(), String> {
    if !(400..500).contains(&status) {
        return Err(format!("status {status}: {}", shorten(body)));
    }
    let error: Value = serde_json::from_str(body).map_err(|_| {
        format!(
            "status {status} with a body that is not JSON: {}",
            shorten(body)
        )
    })?;
    let message = error["error"].as_str().unwrap_or_default();
    let got = error["code"].as_str().unwrap_or_default();
    if message.is_empty() || got.is_empty() {
        return Err(format!(
            "status {status} without error or code: {}",
            shorten(body)
        ));
    }
    if message.chars().count() > MAX_ERROR_CHARS {
        return Err(format!(
            "status {status}, a {} character message",
            message.len()
        ));
    }
    match code {
        Some(code) if code != got => Err(format!(
            "status {status}, code {got} instead of {code}: {message}"
        )),
        _ => Ok(()),
    }
}

fn shorten(text: &str) -> String {
    let mut chars = text.chars();
    let mut short: String = chars.by_ref().take(120).collect();
    if chars.next().is_some() {
        short.push('…');
    }
    short.escape_debug().to_string()
}

#[test]
fn stored_file_names_and_users_are_printable_and_bounded() {
    let dev = Dev::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let file = format!("evil\0name\n\r\u{1b}[31m{}", "x".repeat(100_000));
        let pushed = client
            .post(format!("{}/v1/push", dev.url))
            .header(
                "x-coding-job-user",
                format!("mallory\t{}", "y".repeat(1000)),
            )
            .json(&json!({"env": "production", "file": file, "source": service_yaml()}))
            .send()
            .await
            .unwrap();
        assert_eq!(pushed.status(), 200, "{}", pushed.text().await.unwrap());
        let versions: Vec<cj_api::VersionInfo> = client
            .get(format!(
                "{}/v1/versions?env=production&target=abuse",
                dev.url
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let [version] = versions.as_slice() else {
            panic!("{versions:?}")
        };
        assert!(
            version.file.starts_with("evilname[31mxxx"),
            "{}",
            version.file
        );
        assert_eq!(version.file.chars().count(), 255);
        assert!(version.file.ends_with('…'));
        assert!(
            version.pushed_by.starts_with("malloryyyy"),
            "{}",
            version.pushed_by
        );
        assert_eq!(version.pushed_by.chars().count(), 64);
        for text in [&version.file, &version.pushed_by] {
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
    });
}
