//! Volume snapshots against the real Docker engine, through the CLI: a task's volume copied
//! while the task is paused (the engine's own events say it was, and for how long), kept on the
//! server's snapshot target, listed, written to a file whose content is the volume's; a live
//! copy that never pauses; and refusals that record nothing.

mod support;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use support::{Dev, IMAGE, describe, docker, docker_inspect};

/// A task whose volume holds a known text and 3 MiB of random bytes, written at start.
fn db_yaml() -> String {
    format!(
        r#"service: db
jobs:
  - name: mysql
    image: {IMAGE}
    command: [sh, -c, 'echo standard-library > /var/lib/data/known.txt && mkdir -p /var/lib/data/sub && head -c 3145728 /dev/urandom > /var/lib/data/sub/blob && exec sleep 100000']
    volumes:
      - name: data
        mount: /var/lib/data
"#
    )
}

/// The id of the task's running container, as the engine shows it.
fn container_of(dev: &Dev) -> String {
    let status = dev.status("db/mysql");
    status[0]
        .container_id
        .clone()
        .expect("the task has a container")
}

/// The engine's pause and unpause events of `container` since `since` (Unix seconds).
fn pause_events(container: &str, since: u64) -> Vec<String> {
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        &format!("container={container}"),
        "--filter",
        "event=pause",
        "--filter",
        "event=unpause",
        "--format",
        "{{.Action}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Unpacks a `.tar.zst` into `dir` with the system's tar and zstd.
fn unpack(file: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let done = std::process::Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(file)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[test]
fn a_paused_snapshot_holds_the_volume_and_is_listed() {
    let dev = Dev::start();
    dev.push_yaml("db.yaml", &db_yaml());
    dev.ok(&["up", "db"]);
    let container = container_of(&dev);
    // The task has written its files once `exec` sees them.
    support::wait_for(
        "the task's files",
        std::time::Duration::from_secs(30),
        || {
            dev.cli(&[
                "exec",
                "db/mysql",
                "--",
                "test",
                "-s",
                "/var/lib/data/sub/blob",
            ])
            .status
            .success()
            .then_some(())
        },
    );
    let blob = dev.ok(&["exec", "db/mysql", "--", "md5sum", "/var/lib/data/sub/blob"]);

    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let file = dev.data_dir.path().join("db-data.tar.zst");
    let record = dev.json(&[
        "volume",
        "snapshot",
        "db/mysql/mysql",
        "data",
        "-o",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(record["method"], "paused", "{record}");
    assert_eq!(record["volume"], "data");
    assert_eq!(record["task"], "mysql");
    let paused_ms = record["paused_ms"].as_u64().expect("the pause is reported");
    assert!(paused_ms < 10_000, "paused {paused_ms} ms");
    assert!(
        record["content_bytes"].as_u64().unwrap() > 3 * 1024 * 1024,
        "{record}"
    );
    let id = record["id"].as_str().unwrap().to_owned();

    // The engine paused and unpaused the container once, and it runs.
    assert_eq!(pause_events(&container, since), ["pause", "unpause"]);
    let state = &docker_inspect(&container)["State"];
    assert_eq!(state["Running"], true, "{state}");
    assert_eq!(state["Paused"], false, "{state}");

    // The file is the volume: the known text, and the random blob byte for byte.
    let unpacked = dev.data_dir.path().join("unpacked");
    unpack(&file, &unpacked);
    assert_eq!(
        std::fs::read_to_string(unpacked.join("known.txt")).unwrap(),
        "standard-library\n"
    );
    let copied = std::process::Command::new("md5sum")
        .arg(unpacked.join("sub/blob"))
        .output()
        .unwrap();
    let copied = String::from_utf8_lossy(&copied.stdout);
    assert_eq!(
        copied.split_whitespace().next(),
        blob.split_whitespace().next()
    );
    // And it is kept on the server's target under its id, the same bytes.
    let kept = dev.data_dir.path().join(format!("snapshots/{id}.tar.zst"));
    assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(&file).unwrap());

    let volumes = dev.json(&["volumes", "--json"]);
    let row = &volumes.as_array().unwrap()[0];
    assert_eq!(row["volume"], "data", "{volumes}");
    assert_eq!(row["mount"], "/var/lib/data");
    assert_eq!(row["last_snapshot"]["id"], id.as_str());
    assert_eq!(row["snapshots"], 1);
    assert!(
        docker(&["volume", "ls", "-q"])
            .lines()
            .any(|name| name == row["docker_name"].as_str().unwrap()),
        "{row}"
    );

    // A live copy never pauses the task.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let live = dev.json(&["volume", "snapshot", "mysql", "data", "--live", "--json"]);
    assert_eq!(live["method"], "live", "{live}");
    assert!(live["paused_ms"].is_null());
    assert!(pause_events(&container, since).is_empty());
    let listed = dev.json(&["volume", "snapshots", "db/mysql/mysql", "data", "--json"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [live["id"].as_str().unwrap(), id.as_str()],
        "newest first"
    );
    let table = dev.ok(&["volumes"]);
    assert!(table.contains(live["id"].as_str().unwrap()), "{table}");
}

#[test]
fn snapshots_of_what_is_not_there_are_refused_and_record_nothing() {
    let dev = Dev::start();
    dev.push_yaml("db.yaml", &db_yaml());
    dev.ok(&["up", "db"]);

    let no_volume = dev.cli(&["volume", "snapshot", "db/mysql/mysql", "nope"]);
    assert!(!no_volume.status.success());
    let said = describe(&no_volume);
    assert!(
        said.contains("task db/mysql/mysql has no volume \"nope\" (it has: data)"),
        "{said}"
    );

    dev.ok(&["down", "db"]);
    let not_up = dev.cli(&["volume", "snapshot", "db/mysql/mysql", "data"]);
    assert!(!not_up.status.success());
    assert!(
        describe(&not_up).contains("is not up"),
        "{}",
        describe(&not_up)
    );

    let listed = dev.json(&["volume", "snapshots", "--json"]);
    assert_eq!(listed, serde_json::json!([]));
    let kept = std::fs::read_dir(dev.data_dir.path().join("snapshots"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(kept, 0, "nothing kept on the target");
}

#[test]
fn a_restore_replaces_the_volume_and_a_tampered_snapshot_changes_nothing() {
    let dev = Dev::start();
    dev.push_yaml("db.yaml", &db_yaml());
    dev.ok(&["up", "db"]);
    let read = |path: &str| dev.cli(&["exec", "db/mysql", "--", "cat", path]);
    support::wait_for(
        "the task's files",
        std::time::Duration::from_secs(30),
        || {
            read("/var/lib/data/known.txt")
                .status
                .success()
                .then_some(())
        },
    );
    // A file the task's command does not rewrite at start.
    dev.ok(&[
        "exec",
        "db/mysql",
        "--",
        "sh",
        "-c",
        "echo as-snapshotted > /var/lib/data/marker",
    ]);
    let snapshot = dev.json(&["volume", "snapshot", "mysql", "data", "--json"]);
    let id = snapshot["id"].as_str().unwrap().to_owned();

    // Changed and written after the snapshot: undone by the restore.
    dev.ok(&[
        "exec",
        "db/mysql",
        "--",
        "sh",
        "-c",
        "echo dirty > /var/lib/data/marker && echo new > /var/lib/data/later.txt",
    ]);
    let before = container_of(&dev);
    let restored = dev.cli(&["volume", "restore", "db/mysql/mysql", "data", &id]);
    assert!(restored.status.success(), "{}", describe(&restored));
    let after = container_of(&dev);
    assert_ne!(before, after, "the task got a new container");
    let marker = read("/var/lib/data/marker");
    assert_eq!(
        String::from_utf8_lossy(&marker.stdout).trim(),
        "as-snapshotted",
        "{}",
        describe(&marker)
    );
    let later = read("/var/lib/data/later.txt");
    assert!(
        !later.status.success(),
        "later.txt survived: {}",
        describe(&later)
    );
    let volume = &docker_inspect(&after)["Mounts"][0]["Name"];
    let labels = docker(&[
        "volume",
        "inspect",
        volume.as_str().unwrap(),
        "--format",
        "{{index .Labels \"coding-job.restored-from\"}}",
    ]);
    assert_eq!(labels.trim(), id);

    // A snapshot whose data changed on the target is refused, and the task is left alone.
    let kept = dev.data_dir.path().join(format!("snapshots/{id}.tar.zst"));
    let mut bytes = std::fs::read(&kept).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&kept, bytes).unwrap();
    let refused = dev.cli(&["volume", "restore", "mysql", "data", &id]);
    assert!(!refused.status.success());
    let said = describe(&refused);
    assert!(
        said.contains("its data does not match its checksum (recorded ")
            && said.contains("; nothing was changed"),
        "{said}"
    );
    assert_eq!(container_of(&dev), after, "nothing was replaced");
}

#[test]
fn a_copy_with_data_starts_from_the_source_volumes_and_stays_apart() {
    let dev = Dev::start();
    dev.push_yaml("db.yaml", &db_yaml());
    dev.ok(&["up", "db"]);
    let exec = |env: &str, script: &str| {
        dev.cli(&["exec", "--env", env, "db/mysql", "--", "sh", "-c", script])
    };
    support::wait_for(
        "the task's files",
        std::time::Duration::from_secs(30),
        || {
            exec("production", "test -s /var/lib/data/sub/blob")
                .status
                .success()
                .then_some(())
        },
    );
    assert!(
        exec("production", "echo production-rows > /var/lib/data/marker")
            .status
            .success()
    );

    let unknown = dev.cli(&[
        "env",
        "create",
        "nope",
        "--from",
        "production",
        "--with-data=cache",
    ]);
    assert!(!unknown.status.success());
    assert!(
        describe(&unknown).contains(
            "no job \"cache\" with volumes is up in production (those with volumes: db/mysql)"
        ),
        "{}",
        describe(&unknown)
    );

    let created = dev.json(&[
        "env",
        "create",
        "staging",
        "--from",
        "production",
        "--with-data",
        "--json",
    ]);
    let snapshots = created["snapshots"].as_array().expect("snapshots taken");
    assert_eq!(snapshots.len(), 1, "{created}");
    assert_eq!(snapshots[0]["env"], "production");
    dev.ok(&["env", "up", "staging"]);
    let read = |env: &str| {
        let out = exec(env, "cat /var/lib/data/marker");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(read("staging"), "production-rows");

    // Independent copies: a write in staging never reaches production, nor the other way.
    assert!(
        exec("staging", "echo staging-rows > /var/lib/data/marker")
            .status
            .success()
    );
    assert_eq!(read("production"), "production-rows");
    assert!(
        exec("production", "echo newer > /var/lib/data/marker")
            .status
            .success()
    );
    assert_eq!(read("staging"), "staging-rows");
    let volumes: Vec<String> = ["production", "staging"]
        .iter()
        .map(|env| {
            let rows = dev.json(&["volumes", "--env", env, "--json"]);
            rows[0]["docker_name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_ne!(volumes[0], volumes[1]);
    dev.ok(&["env", "destroy", "staging"]);
}
