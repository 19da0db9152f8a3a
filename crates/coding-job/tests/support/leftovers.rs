//! What a test process killed before its cleanup ran (a test run's timeout, Ctrl-C) leaves in
//! Docker: the containers and volumes of its `dev`'s cluster. Each [`super::Dev`] records its
//! cluster id with this process as the owner; starting any `Dev` removes what belongs to
//! clusters whose owner is gone, as `scripts/testbed.sh sweep` does for test beds.

use std::path::PathBuf;
use std::process::Command;

use cj_runtime::labels;

fn owners() -> PathBuf {
    std::env::temp_dir().join("coding-job-test-clusters")
}

/// Records `cluster` as this process's, until [`release`].
pub fn own(cluster: &str) {
    let dir = owners();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(cluster), std::process::id().to_string());
}

/// Removes the cluster's containers and volumes, then its record.
pub fn release(cluster: &str) {
    remove(cluster);
    let _ = std::fs::remove_file(owners().join(cluster));
}

/// Releases every recorded cluster whose owner process no longer runs.
pub fn sweep() {
    let Ok(entries) = std::fs::read_dir(owners()) else {
        return;
    };
    for entry in entries.flatten() {
        let cluster = entry.file_name().to_string_lossy().into_owned();
        let owner = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let alive = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| PathBuf::from(format!("/proc/{pid}")).exists());
        if !alive {
            release(&cluster);
        }
    }
}

/// The cluster's containers, in every state (full ids).
pub fn containers(cluster: &str) -> Vec<String> {
    listed(cluster, CONTAINERS).expect("failed to run `docker ps`")
}

const CONTAINERS: &[&str] = &["ps", "-a", "--no-trunc"];

/// Cleanup goes as far as it can: a failing `docker` leaves things, it does not panic.
fn remove(cluster: &str) {
    let containers = listed(cluster, CONTAINERS).unwrap_or_default();
    if !containers.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&containers)
            .output();
    }
    let volumes = listed(cluster, &["volume", "ls"]).unwrap_or_default();
    if !volumes.is_empty() {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f"])
            .args(&volumes)
            .output();
    }
}

/// The ids `docker WHAT -q` lists for the cluster's label.
fn listed(cluster: &str, what: &[&str]) -> std::io::Result<Vec<String>> {
    let filter = format!("label={}={cluster}", labels::CLUSTER);
    let output = Command::new("docker")
        .args(what)
        .args(["-q", "--filter", &filter])
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}
