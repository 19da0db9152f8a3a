//! The web UI's pages over plain HTTP, against a real `dev` server on the real Docker engine:
//! what a browser is not needed to check (secret values never reach a page; refusals are pages).

mod support;

use support::{Dev, IMAGE};

const PASSWORD: &str = "s3cret-pa55word";

fn db_yaml(password: &str) -> String {
    format!(
        "service: shop\njobs:\n  - name: db\n    image: {IMAGE}\n    command: [sleep, '100000']\n    env: {{ DB_PASSWORD: \"{password}\", DB_USER: shop }}\n    secret_env: [DB_PASSWORD]\n"
    )
}

#[test]
fn pages_never_show_secret_values() {
    let dev = Dev::start();
    dev.push_yaml("shop.yaml", &db_yaml(PASSWORD));
    dev.ok(&["up", "shop"]);
    dev.push_yaml("shop.yaml", &db_yaml("another-s3cret"));
    let task = dev.http_get("/ui/task/production/shop/db/db");
    assert!(
        task.contains("DB_PASSWORD=******"),
        "the inspect is shown masked: {task}"
    );
    assert!(task.contains("DB_USER=shop"), "{task}");
    let pages = [
        task,
        dev.http_get("/ui/history/production/shop/db?from=1&to=2"),
        dev.http_get("/"),
        dev.http_get("/ui/deployments"),
        dev.http_get("/ui/envs"),
        dev.http_get("/ui/audit"),
    ];
    for page in &pages {
        for secret in [PASSWORD, "another-s3cret"] {
            assert!(!page.contains(secret), "{secret} shown in:\n{page}");
        }
    }
}

#[test]
fn refusals_are_pages_that_say_what_was_wrong() {
    let dev = Dev::start();
    let answer = dev.http("GET", "/ui/task/production/nope/x/y", None, None);
    assert_eq!(answer.status, 404, "{}", answer.head);
    assert!(
        answer
            .head
            .to_lowercase()
            .contains("content-type: text/html"),
        "{}",
        answer.head
    );
    assert!(answer.body.contains("nope"), "{}", answer.body);

    let answer = dev.http("GET", "/ui/history/production/shop/db?from=x", None, None);
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(answer.body.contains("<main"), "{}", answer.body);

    // A form that is not right changes nothing and says what was wrong.
    let revision = dev.store_revision();
    for (body, expected) in [
        (
            "name=copy&from=production&ttl=4+weeks",
            "ttl 4 weeks is not a duration",
        ),
        (
            "name=copy&from=production&colour=red",
            "unknown field `colour`",
        ),
    ] {
        let (status, page) = post_form(&dev, "/ui/actions/envs/create", body);
        assert!(status >= 400, "{status} {page}");
        assert!(page.contains(expected), "{page}");
    }
    assert_eq!(
        dev.store_revision(),
        revision,
        "a refused form changed the store"
    );
}

/// POSTs a form-encoded body as a browser's form would (same origin): status and body.
fn post_form(dev: &Dev, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let address = dev.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nOrigin: http://{address}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, answer)
}
