//! `coding-job exec` against a real `coding-job dev` and Docker: output streams kept apart and
//! the command's exit code, stdin with `-i` (streamed, large, its end closing the command's),
//! a pseudo-terminal with `-t` (its size and changes, raw mode here and the terminal restored),
//! refusals before anything runs (no upgrade, no command, a task not running, a read token),
//! and a caller going away without killing the command.

mod support;

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Dev, IMAGE, Server, describe, wait_for};

/// How long one exec in these tests may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// A dev server running `shop/db` (a shell that sleeps) and its container's id.
fn shop() -> (Dev, String) {
    let dev = Dev::start();
    let yaml = format!(
        "service: shop\njobs:\n  - name: db\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"
    );
    dev.push_yaml("shop.yaml", &yaml);
    dev.ok(&["up", "shop"]);
    let id = dev.status("shop/db")[0].container_id.clone().unwrap();
    (dev, id)
}

/// The CLI against `dev`, its streams piped.
fn cli(dev: &Dev, args: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coding-job"));
    command
        .args(args)
        .env("CODING_JOB_SERVER", &dev.url)
        .env_remove("CODING_JOB_ENV")
        .env_remove("CODING_JOB_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = &dev.token {
        command.env("CODING_JOB_TOKEN", token);
    }
    command.spawn().expect("failed to run the CLI")
}

/// Reads a pipe on a thread, chunk by chunk.
fn reader(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (chunks, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = pipe.read(&mut buffer) {
            if chunks.send(buffer[..read].to_vec()).is_err() {
                return;
            }
        }
    });
    received
}

/// Waits for `child` (its stdin already handed out or closed) and collects its output; kills
/// it and panics past the deadline.
fn finish(mut child: Child, stdout: mpsc::Receiver<Vec<u8>>, what: &str) -> Output {
    let stderr = reader(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let collect =
        |chunks: mpsc::Receiver<Vec<u8>>| -> Vec<u8> { chunks.iter().flatten().collect() };
    Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

#[test]
fn exec_keeps_stdout_and_stderr_apart_streams_stdin_and_exits_with_the_command_code() {
    let (dev, id) = shop();

    let started = Instant::now();
    let output = dev.cli(&[
        "exec",
        "shop/db",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    println!("exec: one command in {:.0} ms", took.as_secs_f64() * 1000.0);
    // It ran in the task's container: its process 1 is the task's command (under Docker's
    // init), and the container's own files are there.
    let init = dev.ok(&["exec", "shop/db", "--", "cat", "/proc/1/cmdline"]);
    assert!(init.ends_with("sleep\x003600\x00"), "{init:?}");
    support::docker(&["exec", &id, "sh", "-c", "echo mine > /tmp/own-file"]);
    assert_eq!(
        dev.ok(&["exec", "shop/db", "--", "cat", "/tmp/own-file"]),
        "mine\n"
    );
    // A program that is not there: the engine's code (126 or 127 by its version), as `docker
    // exec` exits.
    let missing = dev.cli(&["exec", "shop/db", "--", "no-such-program"]);
    assert!(
        matches!(missing.status.code(), Some(126 | 127)),
        "{}",
        describe(&missing)
    );

    // -i: what is written comes back as it is written, and the end of stdin ends `cat`.
    let mut child = cli(&dev, &["exec", "-i", "shop/db", "--", "cat"]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = reader(child.stdout.take().unwrap());
    let mut echoed = Vec::new();
    for line in ["first line\n", "second line\n"] {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        while !String::from_utf8_lossy(&echoed).ends_with(line) {
            let chunk = stdout
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("{line:?} was not echoed while stdin stayed open"));
            echoed.extend(chunk);
        }
    }
    drop(stdin);
    let output = finish(child, stdout, "exec -i cat");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&echoed),
        "first line\nsecond line\n"
    );
    assert!(output.stdout.is_empty(), "{}", describe(&output));

    // Megabytes both ways, through the windows of every hop.
    let size = 5 * 1024 * 1024;
    let input: Vec<u8> = (0..size).map(|n| (n % 251) as u8).collect();
    let started = Instant::now();
    let output = dev.cli_with_stdin(&["exec", "-i", "shop/db", "--", "md5sum"], &input);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let local = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut md5| {
            md5.stdin.take().unwrap().write_all(&input)?;
            md5.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).split(' ').next(),
        String::from_utf8_lossy(&local.stdout).split(' ').next(),
        "stdin arrived changed"
    );
    let output = dev.cli(&[
        "exec",
        "shop/db",
        "--",
        "sh",
        "-c",
        &format!("head -c {size} /dev/zero; echo done >&2"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(output.stdout.len(), size);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "done\n");
    println!(
        "exec: 5 MiB in and 5 MiB out in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // A caller that goes away stops the relay, not the command.
    let mut child = cli(
        &dev,
        &[
            "exec",
            "shop/db",
            "--",
            "sh",
            "-c",
            "sleep 2; echo finished > /tmp/marker",
        ],
    );
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(
        "the command to finish by itself",
        Duration::from_secs(10),
        || {
            let output = dev.cli(&["exec", "shop/db", "--", "cat", "/tmp/marker"]);
            output.status.success().then_some(())
        },
    );

    // Refusals before the upgrade run nothing: without upgrade headers, without a command.
    let plain = dev.http(
        "GET",
        "/v1/exec?target=shop/db&cmd=touch&cmd=/tmp/plain-get",
        None,
        None,
    );
    assert_eq!(plain.status, 426, "{plain:?}");
    assert!(
        plain.body.contains(r#""code":"upgrade_required""#),
        "{plain:?}"
    );
    let empty = dev.http("GET", "/v1/exec?target=shop/db", None, None);
    assert_eq!(empty.status, 400, "{empty:?}");
    assert!(empty.body.contains("a command is required"), "{empty:?}");
    let touched = dev.cli(&["exec", "shop/db", "--", "test", "-e", "/tmp/plain-get"]);
    assert_eq!(
        touched.status.code(),
        Some(1),
        "a plain GET ran the command"
    );
}

#[test]
fn exec_with_a_tty_gets_a_terminal_of_this_size_and_this_terminal_is_restored() {
    let (dev, _) = shop();
    let dir = dev.data_dir.path();
    let file = |name: &str| dir.join(name).display().to_string();
    // Under `script`, a real pseudo-terminal: its settings before, during (raw) and after;
    // a size change while the command runs (stty sends SIGWINCH to the foreground group; a
    // background job's stdin is /dev/null, so it names the terminal); ^C typed here reaching
    // the command; and this process killed while in raw mode.
    let script = format!(
        "stty rows 40 cols 100; stty -g > {before}; \
         (sleep 1; stty -a < /dev/tty > {during}; stty rows 50 cols 120 < /dev/tty) & \
         {bin} exec -it shop/db -- sh -c 'tty; sleep 0.5; stty size; sleep 2; stty size; exit 5'; \
         echo \"exit=$?\"; wait; stty -g > {after}; \
         {bin} exec -it shop/db -- sh -c 'trap \"echo got-int; exit 7\" INT; echo ready; sleep 30 & wait'; \
         echo \"exit=$?\"; \
         (sleep 1; kill -TERM $(cat {pid})) & \
         sh -c 'echo $$ > {pid}; exec {bin} exec -it shop/db -- sleep 30'; \
         echo \"exit=$?\"; wait; stty -g > {after_kill}",
        before = file("before"),
        during = file("during"),
        after = file("after"),
        after_kill = file("after-kill"),
        pid = file("pid"),
        bin = env!("CARGO_BIN_EXE_coding-job"),
    );
    let mut child = Command::new("script")
        .args(["-qec", &script, "/dev/null"])
        .env("CODING_JOB_SERVER", &dev.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // What is written here is typed at the terminal; stdin stays open until the end.
    let mut keyboard = child.stdin.take().unwrap();
    let stdout = reader(child.stdout.take().unwrap());
    let mut screen = Vec::new();
    while !String::from_utf8_lossy(&screen).contains("ready\r\n") {
        let chunk = stdout
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no ready: {}", String::from_utf8_lossy(&screen)));
        screen.extend(chunk);
    }
    keyboard.write_all(b"\x03").unwrap();
    keyboard.flush().unwrap();
    let output = finish(child, stdout, "script exec -it");
    drop(keyboard);
    screen.extend(output.stdout);
    let screen = String::from_utf8_lossy(&screen);
    assert!(screen.contains("/dev/pts/"), "{screen}");
    assert!(screen.contains("40 100\r\n"), "the start size: {screen}");
    assert!(screen.contains("50 120\r\n"), "the new size: {screen}");
    assert_eq!(screen.matches("exit=").count(), 3, "{screen}");
    assert!(screen.contains("exit=5"), "the command's code: {screen}");
    assert!(
        screen.contains("got-int") && screen.contains("exit=7"),
        "^C went to the command: {screen}"
    );
    assert!(screen.contains("exit=143"), "killed by SIGTERM: {screen}");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let during = read("during");
    let flags: Vec<&str> = during.split_whitespace().collect();
    assert!(
        flags.contains(&"-icanon") && flags.contains(&"-echo") && flags.contains(&"-isig"),
        "not raw while it ran: {during}"
    );
    assert_eq!(
        read("before"),
        read("after"),
        "the terminal was not restored"
    );
    assert_eq!(
        read("before"),
        read("after-kill"),
        "the terminal was not restored after SIGTERM"
    );

    // Without -t there is no terminal.
    let output = dev.cli(&["exec", "shop/db", "--", "tty"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("not a tty"));
}

#[test]
fn exec_into_a_task_without_a_running_container_is_refused_clearly() {
    let dev = Dev::start();
    let yaml = format!(
        "service: shop\njobs:\n  - name: db\n    image: {IMAGE}\n    on_failure: keep\n    command: [sh, -c, 'sleep 1; exit 3']\n  - name: idle\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"
    );
    dev.push_yaml("shop.yaml", &yaml);
    dev.ok(&["up", "shop/db"]);
    wait_for("db to exit", Duration::from_secs(15), || {
        (dev.status("shop/db")[0].state == "exited").then_some(())
    });
    let output = dev.cli(&["exec", "shop/db/db", "--", "true"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "error: task shop/db/db has no running container (state: exited)"
    );
    let output = dev.cli(&["exec", "shop/idle", "--", "true"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("(state: down)"),
        "{}",
        describe(&output)
    );
    let output = dev.cli(&["exec", "shop/nothing", "--", "true"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let output = dev.cli(&["exec", "shop/db", "--container", "ffff", "--", "true"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("has no container ffff"),
        "{}",
        describe(&output)
    );
}

#[test]
fn exec_needs_the_deploy_role() {
    let mut server = Server::start();
    server.token = Some(server.admin_token());
    let read = server.json(&["token", "create", "viewer", "--role", "read", "--json"]);
    let read = read["secret"].as_str().unwrap().to_owned();
    let output = server.cli_as(Some(&read), &["exec", "shop/db", "--", "true"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs the deploy role"), "{stderr}");
    assert!(!stderr.contains(&read), "the token was printed");
    let output = server.cli_as(None, &["exec", "shop/db", "--", "true"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs a token"));
    // A deploy token gets past the role check (to a task that does not exist).
    let deploy = server.json(&["token", "create", "ci", "--role", "deploy", "--json"]);
    let deploy = deploy["secret"].as_str().unwrap().to_owned();
    let output = server.cli_as(Some(&deploy), &["exec", "shop/db", "--", "true"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("role"), "{stderr}");
    // Execs are audited as writes are, refused or not.
    let audit = server.json(&["audit", "--json", "--limit", "10"]);
    let execs: Vec<(&str, &str, u64)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["path"] == "/v1/exec")
        .map(|entry| {
            assert_eq!(entry["target"], "shop/db", "{entry}");
            (
                entry["who"].as_str().unwrap(),
                entry["method"].as_str().unwrap(),
                entry["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        execs,
        [
            ("ci", "GET", 404),
            ("anonymous", "GET", 401),
            ("viewer", "GET", 403)
        ],
        "{audit}"
    );
}

#[test]
fn exec_reaches_a_tls_server_trusting_its_ca_certificate() {
    let files = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let tls = support::Tls {
        cert: files.path().join("cert.pem"),
        key: files.path().join("key.pem"),
    };
    std::fs::write(&tls.cert, certified.cert.pem()).unwrap();
    std::fs::write(&tls.key, certified.signing_key.serialize_pem()).unwrap();
    let mut server = Server::start_with(Some(&tls));
    server.token = Some(server.admin_token());

    let untrusted = server.cli(&["exec", "shop/db", "--", "true"]);
    assert_eq!(untrusted.status.code(), Some(1), "{}", describe(&untrusted));
    let message = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        message.contains("TLS") && message.contains("--ca-cert"),
        "{message}"
    );

    // Trusted, the upgrade reaches the handler, which answers as it does over plain HTTP.
    server.ca_cert = Some(tls.cert.clone());
    let output = server.cli(&["exec", "shop/db", "--", "true"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("shop"), "{message}");
    assert!(!message.contains("TLS"), "{message}");
}
