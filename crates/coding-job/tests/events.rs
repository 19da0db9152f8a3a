//! The event stream and blocking reads, against a real `dev` server on the real Docker engine:
//! every change of state is an event read from the store, listed, followed (`events -f`, SSE)
//! and waited for (`?index=N&wait=`).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Dev, IMAGE, Server, describe, docker, repo_root, wait_for};

fn sleeper(dev: &Dev) {
    let yaml = format!(
        "service: shop\njobs:\n  - name: worker\n    image: {IMAGE}\n    command: [sleep, '100000']\n"
    );
    dev.push_yaml("shop.yaml", &yaml);
    dev.ok(&["up", "shop"]);
}

fn container_of(dev: &Dev) -> String {
    dev.status("shop/worker")[0].container_id.clone().unwrap()
}

/// A child process killed when dropped, so a failing test leaves none behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of `reader` sent over a channel by a thread, so a test can wait with a deadline.
fn lines_of(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The first line that `matches`, within `deadline`.
fn line_matching(
    lines: &mpsc::Receiver<String>,
    deadline: Duration,
    matches: impl Fn(&str) -> bool,
) -> String {
    let end = Instant::now() + deadline;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if matches(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "no matching line within {deadline:?}; saw:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// A GET whose answer is a stream: the connection, after the head has been read.
fn open_stream(dev: &Dev, path: &str, accept: &str) -> (String, TcpStream) {
    let address = dev.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), stream)
}

#[test]
fn events_list_pushes_desired_state_and_containers_with_increasing_revisions() {
    let dev = Dev::start();
    sleeper(&dev);
    let events: Vec<cj_api::events::Event> =
        serde_json::from_str(&dev.ok(&["events", "--json"])).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["push", "desired", "container"] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    // Never decreasing: the container events of one batch share a revision.
    assert!(events.windows(2).all(|w| w[0].revision <= w[1].revision));
    let push = events.iter().find(|e| e.kind.as_str() == "push").unwrap();
    assert_eq!(push.service.as_deref(), Some("shop"));
    assert!(
        push.message.contains("shop: version 1 pushed by"),
        "{push:?}"
    );
    let started = events
        .iter()
        .find(|e| e.message.contains("shop/worker/worker: started"))
        .unwrap_or_else(|| panic!("no start event: {events:#?}"));
    assert_eq!(started.env.as_deref(), Some("production"));

    // --since gives exactly what came after; the table names kind and environment.
    let last = events.last().unwrap().revision;
    let after = dev.ok(&["events", "--since", &last.to_string()]);
    assert_eq!(after.trim(), "", "nothing happened after the last event");
    let table = dev.ok(&["events", "--limit", "3"]);
    assert_eq!(table.lines().count(), 3, "{table}");

    // A revision the store no longer holds is refused, naming the oldest it has.
    let answer = dev.http("GET", "/v1/events?since=0&limit=1", None, None);
    assert_eq!(answer.status, 200, "nothing compacted yet: {}", answer.body);
    let answer = dev.http("GET", "/v1/events?limit=0", None, None);
    assert_eq!(answer.status, 400, "{}", answer.body);
}

#[test]
fn a_killed_container_reaches_events_follow_and_an_event_stream_within_a_second() {
    let dev = Dev::start();
    sleeper(&dev);
    let mut command = dev.cli_command(&repo_root(), None, &["events", "-f"]);
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = Killed(command.spawn().unwrap());
    let cli_lines = lines_of(child.0.stdout.take().unwrap());
    let (head, stream) = open_stream(&dev, "/v1/events?follow=true", "text/event-stream");
    assert!(head.contains("text/event-stream"), "{head}");
    let sse_lines = lines_of(stream);
    // Both readers are connected once the server has answered the stream's head; give the
    // CLI its own observable start: a push it must print.
    dev.push_yaml(
        "other.yaml",
        &format!("service: other\njobs:\n  - name: x\n    image: {IMAGE}\n"),
    );
    line_matching(&cli_lines, Duration::from_secs(10), |l| {
        l.contains("other: version 1 pushed")
    });

    let id = container_of(&dev);
    let killed_at = Instant::now();
    docker(&["kill", &id]);
    let died = line_matching(&cli_lines, Duration::from_secs(10), |l| {
        l.contains("shop/worker/worker: died")
    });
    assert!(
        died.contains("container") && died.contains("production"),
        "{died}"
    );
    let data = line_matching(&sse_lines, Duration::from_secs(10), |l| {
        l.starts_with("data:") && l.contains("died")
    });
    let elapsed = killed_at.elapsed();
    let event: cj_api::events::Event =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(event.task.as_deref(), Some("worker"));
    assert!(
        elapsed < Duration::from_secs(1),
        "a container's death took {elapsed:?} to reach the stream"
    );
}

#[test]
fn reads_say_their_revision_and_block_until_something_newer_exists() {
    let dev = Dev::start();
    sleeper(&dev);
    // The start's own records (container, events) land just after `up`: wait until the store
    // is quiet, so the waits below are woken only by what this test does.
    let mut last = dev.store_revision();
    wait_for("the store to be quiet", Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_millis(700));
        let now = dev.store_revision();
        let quiet = now == last;
        last = now;
        quiet.then_some(())
    });
    let answer = dev.http("GET", "/v1/status", None, None);
    let index: u64 = answer
        .head
        .lines()
        .find_map(|line| line.strip_prefix("x-coding-job-index: "))
        .unwrap_or_else(|| panic!("no index header: {}", answer.head))
        .trim()
        .parse()
        .unwrap();
    assert!(index > 0 && index <= dev.store_revision(), "{index}");

    // Nothing newer: the read waits its whole `wait`, then answers as usual.
    let current = dev.store_revision();
    let started = Instant::now();
    let answer = dev.http(
        "GET",
        &format!("/v1/status?index={current}&wait=700ms"),
        None,
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(started.elapsed() >= Duration::from_millis(650));

    // A change wakes it at once: kill the container while a read waits for up to 60 s.
    let id = container_of(&dev);
    let (sender, receiver) = mpsc::channel();
    let waiting = {
        let url = dev.url.clone();
        std::thread::spawn(move || {
            let answer = blocking_get(&url, &format!("/v1/status?index={current}&wait=60s"));
            sender.send(answer).unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.try_recv().is_err(), "the read did not wait");
    docker(&["kill", &id]);
    let (head, _) = receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocked read answered after the change");
    waiting.join().unwrap();
    let newer: u64 = head
        .lines()
        .find_map(|line| line.strip_prefix("x-coding-job-index: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(newer > current, "{newer} > {current}");

    let answer = dev.http("GET", "/v1/status?wait=5s", None, None);
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("wait needs index"), "{}", answer.body);
    wait_for("the worker running again", Duration::from_secs(20), || {
        (dev.status("shop/worker")[0].state == "running").then_some(())
    });
}

/// A GET on its own connection, for a thread: the head and the body.
fn blocking_get(url: &str, path: &str) -> (String, String) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// Lines of `lines` until one `matches` (within `deadline`), all of them.
fn lines_until(
    lines: &mpsc::Receiver<String>,
    deadline: Duration,
    matches: impl Fn(&str) -> bool,
) -> Vec<String> {
    let end = Instant::now() + deadline;
    let mut seen = Vec::new();
    while seen.last().is_none_or(|line: &String| !matches(line)) {
        let left = end.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "no matching line within {deadline:?}; saw:\n{}",
                seen.join("\n")
            ),
        }
    }
    seen
}

#[test]
fn writes_reach_admins_following_events_as_audit_events_and_no_one_else() {
    let mut server = Server::start();
    server.token = Some(server.admin_token());
    let created = server.json(&["token", "create", "viewer", "--role", "read", "--json"]);
    let viewer = created["secret"].as_str().unwrap().to_owned();
    let follow = |token: &str| {
        let mut command = server.cli_command(&repo_root(), Some(token), &["events", "-f"]);
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = Killed(command.spawn().unwrap());
        let lines = lines_of(child.0.stdout.take().unwrap());
        (child, lines)
    };
    let (_admin, admin_lines) = follow(&server.admin_token());
    let (_viewer, viewer_lines) = follow(&viewer);
    // Both followers are connected once each has seen a change made after it started.
    let service = |name: &str| format!("service: {name}\njobs:\n  - name: x\n    image: {IMAGE}\n");
    let file = server.data_dir.path().join("first.yaml");
    std::fs::write(&file, service("first")).unwrap();
    server.ok(&["push", file.to_str().unwrap()]);
    for lines in [&admin_lines, &viewer_lines] {
        line_matching(lines, Duration::from_secs(10), |l| {
            l.contains("first: version 1 pushed")
        });
    }

    let file = server.data_dir.path().join("second.yaml");
    std::fs::write(&file, service("second")).unwrap();
    server.ok(&["push", file.to_str().unwrap()]);
    let refused = server.cli_as(Some(&viewer), &["push", file.to_str().unwrap()]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let audit = line_matching(&admin_lines, Duration::from_secs(10), |l| {
        l.contains("audit") && l.contains("POST /v1/push second -> 200")
    });
    assert!(audit.contains("admin"), "{audit}");
    line_matching(&admin_lines, Duration::from_secs(10), |l| {
        l.contains("viewer (read): POST /v1/push second -> 403")
    });
    for secret in [server.admin_token(), viewer.clone()] {
        assert!(!audit.contains(&secret), "an audit event shows a token");
    }

    // The reader sees the change itself, never who made which request: a later change marks
    // the end of what the pushes could have sent it.
    let file = server.data_dir.path().join("third.yaml");
    std::fs::write(&file, service("third")).unwrap();
    server.ok(&["push", file.to_str().unwrap()]);
    let seen = lines_until(&viewer_lines, Duration::from_secs(10), |l| {
        l.contains("third: version 1 pushed")
    });
    assert!(
        seen.iter().any(|l| l.contains("second: version 1 pushed")),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains("audit")),
        "a read token saw audit events: {seen:?}"
    );
}

#[test]
fn status_watch_shows_each_change_as_it_happens() {
    let dev = Dev::start();
    let mut command = dev.cli_command(&repo_root(), None, &["status", "--watch"]);
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = Killed(command.spawn().unwrap());
    let lines = lines_of(child.0.stdout.take().unwrap());
    line_matching(&lines, Duration::from_secs(10), |l| {
        l.contains("nothing pushed to environment production yet")
    });
    sleeper(&dev);
    line_matching(&lines, Duration::from_secs(10), |l| {
        l.starts_with("shop/worker/worker") && l.contains("running")
    });
    // Brought down by someone else: shown without asking again.
    dev.ok(&["down", "shop"]);
    line_matching(&lines, Duration::from_secs(10), |l| {
        l.starts_with("shop/worker/worker") && l.contains(" down ")
    });
}
