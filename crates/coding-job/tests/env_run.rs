//! `env run`: create an environment, bring it up, run a command on this machine with its
//! addresses, and always destroy it: after exit codes 0 and 3, after SIGINT, and after a failed
//! bring-up. Real Docker, through the CLI binary.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Dev, IMAGE, describe, docker, output_within, wait_for};

fn push_web(dev: &Dev) {
    dev.push_yaml(
        "web.yaml",
        &format!(
            r#"service: web
jobs:
  - name: front
    image: {IMAGE}
    port: auto
    route: true
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s }}
"#
        ),
    );
}

fn env_run(dev: &Dev, name: &str, extra: &[&str], command: &[&str]) -> Command {
    let mut cli = Command::new(env!("CARGO_BIN_EXE_coding-job"));
    cli.env("CODING_JOB_SERVER", &dev.url)
        .args(["env", "run", "--name", name])
        .args(extra)
        .arg("--")
        .args(command);
    cli
}

fn containers_of_env(dev: &Dev, env: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=coding-job.cluster={}", dev.cluster),
        "--filter",
        &format!("label=coding-job.env={env}"),
    ])
}

fn state_of(dev: &Dev, env: &str) -> Option<String> {
    let envs = dev.json(&["env", "list", "--all", "--json"]);
    envs.as_array()?
        .iter()
        .find(|info| info["name"] == env)
        .map(|info| info["state"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn env_run_passes_addresses_propagates_exit_codes_and_always_destroys() {
    let dev = Dev::start_with_args(&["--router-listen", "127.0.0.1:0", "--domain", "cj.localhost"]);
    let router_port = dev.router_address().rsplit(':').next().unwrap().to_owned();
    push_web(&dev);
    let script = r#"echo "env=$CJ_ENV front=$CJ_ADDR_WEB_FRONT url=$CJ_URL_FRONT"; wget -q -O - "http://$CJ_ADDR_WEB_FRONT/"; exit "$WANT""#;
    for (name, code) in [("pr-0", 0), ("pr-3", 3)] {
        let mut run = env_run(&dev, name, &["--from", "production"], &["sh", "-c", script]);
        run.env("WANT", code.to_string());
        let output = output_within(run, Duration::from_secs(120));
        assert_eq!(output.status.code(), Some(code), "{}", describe(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("env={name} front=127.0.0.1:")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "url=http://front.{name}.cj.localhost:{router_port}"
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains("ok"),
            "the command reached the task: {stdout}"
        );
        assert_eq!(state_of(&dev, name).as_deref(), Some("destroyed"));
        assert!(containers_of_env(&dev, name).trim().is_empty());
    }
}

#[test]
fn env_run_destroys_after_sigint_and_after_a_failed_bring_up() {
    let dev = Dev::start();
    push_web(&dev);
    let mut run = env_run(
        &dev,
        "pr-int",
        &["--from", "production"],
        &["sh", "-c", "echo started; exec sleep 600"],
    );
    let mut child = run
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Running: the environment is up and the command started.
    wait_for("the command to start", Duration::from_secs(120), || {
        (!containers_of_env(&dev, "pr-int").trim().is_empty()
            && state_of(&dev, "pr-int").as_deref() == Some("up"))
        .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "env run did not end after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "exit code after SIGINT");
    assert_eq!(state_of(&dev, "pr-int").as_deref(), Some("destroyed"));
    assert!(containers_of_env(&dev, "pr-int").trim().is_empty());

    // A bring-up that fails (the check never passes) destroys too, and the command never runs.
    let broken = dev.data_dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        format!(
            "service: broken\njobs:\n  - name: b\n    image: {IMAGE}\n    port: auto\n    command: [sleep, '100000']\n    check: {{ http: /, interval: 1s, timeout: 1s, retries: 1 }}\n"
        ),
    )
    .unwrap();
    dev.ok(&["push", "--env", "failing", broken.to_str().unwrap()]);
    let run = env_run(
        &dev,
        "pr-bad",
        &["--from", "failing", "--timeout", "8s"],
        &["sh", "-c", "echo RAN"],
    );
    let output = output_within(run, Duration::from_secs(120));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("RAN"));
    assert_eq!(state_of(&dev, "pr-bad").as_deref(), Some("destroyed"));
    assert!(containers_of_env(&dev, "pr-bad").trim().is_empty());

    // --keep-on-failure keeps it and says how to destroy it.
    let run = env_run(
        &dev,
        "pr-keep",
        &["--from", "production", "--keep-on-failure"],
        &["sh", "-c", "exit 5"],
    );
    let output = output_within(run, Duration::from_secs(120));
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("coding-job env destroy pr-keep"),
        "{}",
        describe(&output)
    );
    assert_eq!(state_of(&dev, "pr-keep").as_deref(), Some("up"));
    dev.ok(&["env", "destroy", "pr-keep"]);
}
