//! Pushing: rejected files change nothing, and acknowledged pushes survive SIGKILL.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Dev, describe, repo_root};

#[test]
fn every_invalid_config_is_rejected_with_its_exact_error_and_nothing_is_stored() {
    let dev = Dev::start();
    let fixtures = repo_root().join("crates/spec/tests/fixtures/invalid");
    let revision_before = dev.store_revision();
    let mut checked = 0;
    let mut names: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    for name in &names {
        let expected =
            std::fs::read_to_string(fixtures.join(name.replace(".yaml", ".expected"))).unwrap();
        let output = dev.cli_in(&fixtures, &["push", name]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{name}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(
            stderr,
            format!(
                "{}error: the file was rejected; nothing was stored\n",
                expected
            ),
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} malformed configs");
    assert_eq!(
        dev.store_revision(),
        revision_before,
        "a rejected push wrote to the store"
    );
    let services = dev.json(&["status", "--json"]);
    assert_eq!(services, serde_json::json!([]));
}

#[test]
fn pushing_the_latest_file_again_stores_nothing() {
    let dev = Dev::start();
    let yaml = "service: svc\njobs:\n  - name: job\n    image: 127.0.0.1:9/img:1\n";
    assert_eq!(dev.push_yaml("svc.yaml", yaml).trim(), "svc -> version 1");
    let revision = dev.store_revision();
    assert_eq!(
        dev.push_yaml("svc.yaml", yaml).trim(),
        "svc: unchanged: still version 1"
    );
    let file = dev.data_dir.path().join("svc.yaml");
    let answer = dev.json(&["push", file.to_str().unwrap(), "--json"]);
    assert_eq!(answer[0]["version"], 1);
    assert_eq!(answer[0]["stored"], false);
    assert_eq!(dev.store_revision(), revision, "an unchanged push wrote");
    assert_eq!(dev.history("svc/job").versions.len(), 1);
    // Any change, a comment included, is a new version.
    let changed = format!("{yaml}# reviewed\n");
    assert_eq!(
        dev.push_yaml("svc.yaml", &changed).trim(),
        "svc -> version 2"
    );
}

#[test]
fn a_file_over_one_mebibyte_is_refused_before_and_at_the_server() {
    let dev = Dev::start();
    let mut yaml =
        String::from("service: svc\njobs:\n  - name: job\n    image: 127.0.0.1:9/img:1\n");
    while yaml.len() <= 1024 * 1024 {
        yaml.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let revision = dev.store_revision();
    let path = dev.data_dir.path().join("big.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let output = dev.cli(&["push", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at most 1048576 bytes (1 MiB)"), "{stderr}");
    // A client that does not check gets the same refusal from the server.
    let request = serde_json::json!({"env": "production", "file": "big.yaml", "source": yaml});
    let (status, body) = dev.http_post("/v1/push", &request.to_string());
    assert!((400..500).contains(&status), "{status}: {body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("1 MiB")
            || error["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("1 MiB"),
        "{body}"
    );
    assert_eq!(dev.store_revision(), revision);
}

#[test]
fn a_missing_file_is_bad_input() {
    let dev = Dev::start();
    let output = dev.cli(&["push", "no/such/file.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .starts_with("error: cannot read no/such/file.yaml:")
    );
}

#[test]
fn sigkill_of_the_server_loses_no_acknowledged_push() {
    let mut dev = Dev::start();
    let file = dev.data_dir.path().join("svc.yaml");
    let write_version = |n: u32| {
        std::fs::write(
            &file,
            format!("service: svc\njobs:\n  - name: job\n    image: 127.0.0.1:9/img:{n}\n"),
        )
        .unwrap();
    };

    // Pushes before a kill, each acknowledged.
    for n in 1..=5 {
        write_version(n);
        assert_eq!(
            dev.ok(&["push", file.to_str().unwrap()]).trim(),
            format!("svc -> version {n}")
        );
    }
    dev.restart();
    let history = dev.history("svc/job");
    assert_eq!(
        history
            .versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );

    // Pushes racing a kill: whatever was acknowledged must be there after the restart.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (acknowledged, stop, url, file) = (
            acknowledged.clone(),
            stop.clone(),
            dev.url.clone(),
            file.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 100;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                std::fs::write(
                    &file,
                    format!("service: svc\njobs:\n  - name: job\n    image: 127.0.0.1:9/img:{n}\n"),
                )
                .unwrap();
                let output = std::process::Command::new(env!("CARGO_BIN_EXE_coding-job"))
                    .args(["push", file.to_str().unwrap()])
                    .env("CODING_JOB_SERVER", &url)
                    .output()
                    .unwrap();
                if !output.status.success() {
                    break;
                }
                let line = String::from_utf8(output.stdout).unwrap();
                let version: u64 = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
                acknowledged.lock().unwrap().push(version);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    dev.kill9();
    stop.store(true, Ordering::SeqCst);
    pusher.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        !acknowledged.is_empty(),
        "no push went through before the kill"
    );

    dev.restart();
    let stored: Vec<u64> = dev
        .history("svc/job")
        .versions
        .iter()
        .map(|v| v.version)
        .collect();
    for version in &acknowledged {
        assert!(
            stored.contains(version),
            "acknowledged version {version} was lost; stored: {stored:?}"
        );
    }
    let expected: Vec<u64> = (1..=stored.len() as u64).collect();
    assert_eq!(
        stored, expected,
        "versions are contiguous, none half-written"
    );
}
