//! The requests of the barrage, by kind: what every route must refuse, bad query strings,
//! bad JSON bodies, cases about one route, and what only a raw socket can send.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Abuse, Input, ROUTES, Route, TEN_MB, judge, shorten, valid_body};

impl Abuse {
    /// What every route must refuse, sent with otherwise valid input.
    pub(super) async fn everywhere(&mut self, route: &Route) {
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let (uri, body) = match route.input {
            Input::Query { valid, .. } => (format!("{}?{valid}", route.path), None),
            Input::Body { .. } => (
                route.path.to_owned(),
                Some(valid_body(route.path).to_string()),
            ),
            Input::None | Input::Data => (route.path.to_owned(), None),
        };
        let valid = |abuse: &Abuse, method: Method, uri: &str| {
            let request = abuse.request(method, uri);
            match &body {
                Some(body) => request
                    .header("content-type", "application/json")
                    .body(body.clone()),
                None => request,
            }
        };
        let name = format!("{} {}", route.method, route.path);
        let wrong = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"];
        // Methods no route of this path takes (`/v1/tokens` takes GET and POST).
        let taken = |method: &str| {
            ROUTES
                .iter()
                .any(|other| other.path == route.path && other.method == method)
        };
        for other in wrong.iter().filter(|other| !taken(other)) {
            let request = valid(self, Method::from_bytes(other.as_bytes()).unwrap(), &uri);
            self.check(
                &format!("{name} as {other}"),
                request,
                Some("method_not_allowed"),
            )
            .await;
        }
        let separator = if uri.contains('?') { '&' } else { '?' };
        let long_uri = format!("{uri}{separator}pad={}", "a".repeat(16 * 1024));
        let request = valid(self, method.clone(), &long_uri);
        self.check(
            &format!("{name} with a 16 KiB URI"),
            request,
            Some("uri_too_long"),
        )
        .await;
        let request = valid(self, method.clone(), &uri).header("x-pad", "p".repeat(40 * 1024));
        self.check(
            &format!("{name} with a 40 KiB header"),
            request,
            Some("headers_too_large"),
        )
        .await;
        let mut request = valid(self, method.clone(), &uri);
        for n in 0..120 {
            request = request.header(format!("x-pad-{n}"), "p");
        }
        self.check(
            &format!("{name} with 120 headers"),
            request,
            Some("headers_too_large"),
        )
        .await;
        let huge = format!(r#"{{"env": "{}"}}"#, "a".repeat(TEN_MB));
        let request = self
            .request(method.clone(), &uri)
            .header("content-type", "application/json")
            .body(huge);
        let too_large = match route.input {
            Input::Data => "not_found",
            _ => "payload_too_large",
        };
        self.check(
            &format!("{name} with a 10 MB body"),
            request,
            Some(too_large),
        )
        .await;
        if body.is_some() {
            let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024]));
            let request = self
                .request(method, &uri)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                )));
            let what = format!("{name} with a 10 MB chunked body");
            self.check(&what, request, Some("payload_too_large")).await;
        }
    }

    pub(super) async fn queries(
        &mut self,
        route: &Route,
        valid: &str,
        required: &[&str],
        numbers: &[&str],
        flags: &[&str],
    ) {
        let mut cases: Vec<(String, Option<&str>)> = vec![
            (format!("{valid}&bogus=1"), Some("bad_request")),
            (format!("{valid}&env=staging"), Some("bad_request")),
            (format!("{valid}&%ZZ=%"), Some("bad_request")),
        ];
        let params: Vec<(&str, &str)> = valid
            .split('&')
            .map(|pair| pair.split_once('=').unwrap())
            .collect();
        let with = |name: &str, value: Option<&str>| -> String {
            params
                .iter()
                .filter_map(|(key, old)| match (*key == name, value) {
                    (true, Some(value)) => Some(format!("{key}={value}")),
                    (true, None) => None,
                    (false, _) => Some(format!("{key}={old}")),
                })
                .collect::<Vec<_>>()
                .join("&")
        };
        for name in required {
            cases.push((with(name, None), Some("bad_request")));
        }
        for name in numbers {
            for value in [
                "1e30",
                "99999999999999999999",
                "-1",
                "1.5",
                "abc",
                "",
                "0x10",
            ] {
                cases.push((with(name, Some(value)), Some("bad_request")));
            }
        }
        for name in flags {
            for value in ["yes", "1", "", "TRUE!"] {
                cases.push((with(name, Some(value)), Some("bad_request")));
            }
        }
        if params.iter().any(|(key, _)| *key == "target") {
            // Refused by the handler (4xx): names that cannot exist, echoed only in part.
            let hostile = format!("%00%0A{}%FF", "n".repeat(3000));
            for value in [hostile.as_str(), "a/b/c/d", "", "%2F%2F", "nothing-here"] {
                cases.push((with("target", Some(value)), None));
            }
        }
        if params.iter().any(|(key, _)| *key == "env") {
            // Environment names end up in store keys: anything but a name is refused.
            let long = "e".repeat(300);
            for value in [long.as_str(), "a%2Fb", "..", "%00", "x%20y"] {
                cases.push((with("env", Some(value)), Some("bad_request")));
            }
        }
        for (query, code) in cases {
            let uri = format!("{}?{query}", route.path);
            let what = format!("{} {}", route.method, shorten(&uri));
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let request = self.request(method, &uri);
            self.check(&what, request, code).await;
        }
    }

    pub(super) async fn bodies(&mut self, route: &Route, required: &[&str]) {
        let valid = valid_body(route.path);
        let object = valid.as_object().unwrap().clone();
        let text = valid.to_string();
        // Each sent as JSON, each refused as a bad request.
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        let mut json = |what: String, body: String| cases.push((what, body.into_bytes()));
        for (what, body) in [
            ("malformed JSON", r#"{"env": "production","#.to_owned()),
            ("not JSON", "not json at all".to_owned()),
            ("an empty body", String::new()),
            ("null", "null".to_owned()),
            ("an array", "[]".to_owned()),
            ("a string", r#""production""#.to_owned()),
            ("an empty object", "{}".to_owned()),
            ("trailing data", format!("{text} {{}}")),
            (
                "a duplicate field",
                text.replacen('{', r#"{"env": "staging", "#, 1),
            ),
            (
                "deep nesting",
                format!(r#"{{"env": {}{}}}"#, "[".repeat(5000), "]".repeat(5000)),
            ),
            (
                "a misspelt field",
                match object
                    .keys()
                    .find(|key| *key == "env")
                    .or(object.keys().next())
                {
                    Some(key) => text.replacen(&format!(r#""{key}""#), &format!(r#""{key}x""#), 1),
                    None => text.clone(),
                },
            ),
        ] {
            json(what.to_owned(), body);
        }
        for (field, value) in &object {
            let wrong_types: Vec<Value> = match value {
                Value::String(_) => vec![json!(12345), json!(["x"]), json!({"a": 1}), json!(true)],
                Value::Bool(_) => vec![json!("yes"), json!(1), Value::Null],
                _ => vec![json!("12"), json!([1]), json!(true)],
            };
            let huge = [json!(1e30), json!(-1), json!(1.5)];
            for bad in wrong_types.iter().chain(&huge) {
                let mut body = object.clone();
                body.insert(field.clone(), bad.clone());
                json(format!("{field}: {bad}"), Value::Object(body).to_string());
            }
            // Beyond u64: serde_json reads it as a float, which no integer field takes.
            let body = text.replacen(
                &format!(r#""{field}":{value}"#),
                &format!(r#""{field}":99999999999999999999"#),
                1,
            );
            json(format!("{field}: 99999999999999999999"), body);
        }
        for field in required {
            let mut body = object.clone();
            body.remove(*field);
            json(format!("without {field}"), Value::Object(body).to_string());
        }
        let mut body = object.clone();
        body.insert("bogus_field".into(), json!(1));
        json(
            "an unknown field".to_owned(),
            Value::Object(body).to_string(),
        );
        if object.contains_key("timeout_seconds") {
            for seconds in [json!(u64::MAX), json!(86401), json!(0)] {
                let mut body = object.clone();
                body.insert("timeout_seconds".into(), seconds.clone());
                json(
                    format!("timeout_seconds: {seconds}"),
                    Value::Object(body).to_string(),
                );
            }
        }
        let not_utf8 = b"{\"env\": \"\xff\", \"target\": \"abuse\"}";
        cases.push(("invalid UTF-8".into(), not_utf8.to_vec()));
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        for (what, body) in cases {
            let request = self
                .request(method.clone(), route.path)
                .header("content-type", "application/json")
                .body(body);
            let what = format!("{} {} with {}", route.method, route.path, shorten(&what));
            self.check(&what, request, Some("bad_request")).await;
        }
        for (what, content_type, code) in [
            ("no content type", None, "unsupported_media_type"),
            ("text/plain", Some("text/plain"), "unsupported_media_type"),
            (
                "a form",
                Some("application/x-www-form-urlencoded"),
                "unsupported_media_type",
            ),
        ] {
            let mut request = self.request(method.clone(), route.path).body(text.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let what = format!("{} {} with {what}", route.method, route.path);
            self.check(&what, request, Some(code)).await;
        }
    }

    /// Cases about one route in particular.
    pub(super) async fn specials(&mut self) {
        // A misspelt `check_revision` used to be ignored, and the push skipped the check it
        // asked for (the service changed after revision 0) and stored this changed file.
        let mut push = valid_body("/v1/push");
        let push = push.as_object_mut().unwrap();
        push.remove("check_revision");
        push.insert("check_revison".into(), json!(0));
        let changed = format!("{}# changed\n", push["source"].as_str().unwrap());
        push.insert("source".into(), json!(changed));
        let request = self.request(Method::POST, "/v1/push").json(&push);
        self.sent += 1;
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if let Err(problem) = judge(status, &body, Some("bad_request")) {
            self.failures
                .push(format!("push with check_revison: {problem}"));
        } else if !body.contains("check_revison") {
            self.failures
                .push(format!("push with check_revison does not name it: {body}"));
        }
    }

    /// Requests only a raw socket can make: a client that sends a whole oversized body before
    /// reading, one that waits for `100 Continue`, a chunked one, and malformed HTTP.
    pub(super) async fn raw(&mut self) {
        let big = format!(
            "POST /v1/push HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {TEN_MB}\r\n"
        );
        let chunk = format!("{:x}\r\n{}\r\n", 1024 * 1024, " ".repeat(1024 * 1024));
        let chunked = format!("{}0\r\n\r\n", chunk.repeat(10));
        let cases: Vec<(&str, String, Vec<u8>, bool)> = vec![
            ("10 MB sent before reading", format!("{big}\r\n"), vec![b' '; TEN_MB], true),
            ("10 MB announced, 100-continue awaited", format!("{big}Expect: 100-continue\r\n\r\n"), vec![], true),
            (
                "10 MB chunked, sent before reading",
                "POST /v1/diff HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                chunked.into_bytes(),
                true,
            ),
            // Refused by hyper before the API sees them: a 4xx, but hyper's bodiless one.
            ("a garbage request line", "GARBAGE\r\n\r\n".into(), vec![], false),
            ("a bad Content-Length", "POST /v1/push HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n".into(), vec![], false),
            ("a 70 KiB URI", format!("GET /v1/status?pad={} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70 * 1024)), vec![], false),
            ("a 600 KiB header", format!("GET /v1/info HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n", "p".repeat(600 * 1024)), vec![], false),
        ];
        for (what, head, body, json_expected) in cases {
            self.sent += 1;
            let verdict = match raw_exchange(&self.address, head.as_bytes(), &body).await {
                Err(error) => Err(format!("no answer: {error}")),
                Ok((status, body)) if json_expected => judge(status, &body, None),
                Ok((status, _)) if (400..500).contains(&status) => Ok(()),
                Ok((status, _)) => Err(format!("status {status}")),
            };
            if let Err(problem) = verdict {
                self.failures.push(format!("raw: {what}: {problem}"));
            }
        }
    }
}

/// Writes `head` and `body` on a fresh connection (all of it, before reading: a client that
/// does not wait), then reads the answer: its status and body.
async fn raw_exchange(address: &str, head: &[u8], body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(head).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    // Read until the answer is complete or the server closes.
    loop {
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer))
            .await
            .map_err(|_| std::io::Error::other("timed out reading the answer"))??;
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if read == 0 || text.contains("\r\n\r\n") && answer_complete(&text) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {}", shorten(head))))?;
    Ok((status, body.to_owned()))
}

/// Whether an answer with a Content-Length has all of its body.
fn answer_complete(text: &str) -> bool {
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    head.lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|n| n.trim().parse::<usize>())
        })
        .is_some_and(|length| length.is_ok_and(|length| body.len() >= length))
}
