//! Backup and restore of the store through the CLI, against a real `coding-job dev` process:
//! `store snapshot` while it serves, `store restore` into a new data directory with the server
//! stopped, and a server started on that directory that has everything the snapshot had (and
//! nothing written after it), re-adopts the running container and accepts the old tokens.

mod support;

use std::time::Duration;

use support::{Dev, IMAGE, describe, wait_for};

fn service(release: u32) -> String {
    format!(
        "service: shop\njobs:\n  - name: web\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    env: {{ RELEASE: \"{release}\" }}\n    tasks:\n      - name: web\n"
    )
}

fn versions(dev: &Dev) -> Vec<u64> {
    let history = dev.history("shop/web");
    let mut numbers: Vec<u64> = history
        .versions
        .iter()
        .map(|version| version.version)
        .collect();
    numbers.sort();
    numbers
}

#[test]
fn a_restored_store_serves_every_version_deployment_and_token_it_had() {
    let mut dev = Dev::start();
    dev.push_yaml("shop.yaml", &service(1));
    dev.ok(&["up", "shop"]);
    dev.push_yaml("shop.yaml", &service(2));
    dev.ok(&["rolling-update", "shop"]);
    let secret = dev
        .ok(&["token", "create", "ci", "--role", "deploy"])
        .trim()
        .to_owned();
    let deployments = dev.json(&["deployments", "shop", "--json"]);
    assert_eq!(deployments.as_array().unwrap().len(), 1, "{deployments}");
    let running = dev.status("shop/web/web")[0].container_id.clone().unwrap();

    // Only admins may copy the store (a token sent to an open `dev` is still checked).
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("shop.snapshot");
    let file_arg = file.to_str().unwrap();
    let refused = dev.cli_as(Some(&secret), &["store", "snapshot", file_arg]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs the admin role"),
        "{}",
        describe(&refused)
    );
    assert!(!file.exists());

    let taken = dev.json(&["store", "snapshot", file_arg, "--json"]);
    let revision = taken["revision"].as_u64().unwrap();
    assert_eq!(taken["file"], file_arg);
    assert!(taken["keys"].as_u64().unwrap() > 5, "{taken}");
    assert_eq!(
        taken["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    assert!(!backups.path().join("shop.snapshot.tmp").exists());
    // Written after the snapshot: not in what is restored.
    dev.push_yaml("shop.yaml", &service(3));
    assert_eq!(versions(&dev), [1, 2, 3]);

    // Restored with the server stopped, into a new data directory.
    dev.kill9();
    let restored_dir = tempfile::tempdir().unwrap();
    let data_dir = restored_dir.path().to_str().unwrap();
    let restore = |extra: &[&str]| {
        let mut args = vec!["store", "restore", file_arg, "--data-dir", data_dir];
        args.extend_from_slice(extra);
        dev.cli(&args)
    };
    let output = restore(&[]);
    assert!(output.status.success(), "{}", describe(&output));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains(&format!("revision {revision}")), "{said}");
    assert!(said.contains("versions: 2, deployments: 1"), "{said}");
    assert!(said.contains(&dev.cluster), "{said}");
    let again = restore(&[]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "{}",
        describe(&again)
    );
    assert!(restore(&["--force"]).status.success());

    dev.restart_on(restored_dir);
    // It goes on from the snapshot's revision (the server writes a little as it starts).
    assert!(dev.store_revision() >= revision);
    assert_eq!(versions(&dev), [1, 2]);
    let deployments_after = dev.json(&["deployments", "shop", "--json"]);
    assert_eq!(deployments_after, deployments);
    let tokens = dev.json(&["token", "list", "--json"]);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|token| token["name"] == "ci"),
        "{tokens}"
    );
    // The token still authenticates (a wrong one is refused, so this is not the open mode).
    let status = dev.cli_as(Some(&secret), &["status", "shop", "--json"]);
    assert!(status.status.success(), "{}", describe(&status));
    let wrong = dev.cli_as(Some("cj_0000"), &["status", "shop"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", describe(&wrong));
    // The same installation: its container is adopted as it runs, not replaced.
    let adopted = wait_for("the task running again", Duration::from_secs(30), || {
        let task = dev.status("shop/web/web").pop()?;
        (task.state == "running").then_some(task.container_id?)
    });
    assert_eq!(adopted, running);
    // The event history starts at the snapshot's revision; new changes are events again.
    dev.ok(&["events", "--limit", "5"]);
    dev.push_yaml("shop.yaml", &service(3));
    assert_eq!(versions(&dev), [1, 2, 3]);
}
