//! Named volumes and archive uploads against the real Docker engine: a volume created with
//! labels (and told apart from one already there), a `.tar.gz` streamed from a file into a
//! created container's volume, read back once it runs, and the volume removed. Everything the
//! test makes carries its own cluster label and is removed when it ends, even on failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use coding_job_runtime::{
    ContainerRuntime, ContainerState, CreateRequest, DockerRuntime, LogChunk, LogsOptions,
    VolumeMount, labels,
};
use futures_util::StreamExt;

const IMAGE: &str = "cj-example/busybox:1";
const DEADLINE: Duration = Duration::from_secs(90);

/// Builds the busybox test image if it is missing (no registry needed).
fn ensure_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-example-image.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(IMAGE)
        .status()
        .expect("run build-example-image.sh");
    assert!(status.success(), "building the test image failed");
}

/// Removes every container and volume carrying the cluster label when dropped, a panic
/// included (through the CLI, which needs no async runtime).
struct Cleanup {
    cluster: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={}={}", labels::CLUSTER, self.cluster);
        for (list, remove) in [
            (vec!["ps", "-aq", "--filter", &filter], vec!["rm", "-f"]),
            (
                vec!["volume", "ls", "-q", "--filter", &filter],
                vec!["volume", "rm", "-f"],
            ),
        ] {
            let Ok(listed) = Command::new("docker").args(&list).output() else {
                continue;
            };
            let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !names.is_empty() {
                let _ = Command::new("docker").args(&remove).args(&names).output();
            }
        }
    }
}

fn unique_cluster() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:016x}",
        (nanos as u64) ^ (u64::from(std::process::id()) << 40)
    )
}

#[tokio::test]
async fn a_new_volume_is_seeded_from_a_tarball_through_a_created_container() {
    ensure_image();
    let cluster = unique_cluster();
    let _cleanup = Cleanup {
        cluster: cluster.clone(),
    };
    tokio::time::timeout(DEADLINE, seed_and_read_back(&cluster))
        .await
        .expect("the test ran past its deadline");
}

async fn seed_and_read_back(cluster: &str) {
    let runtime = DockerRuntime::connect().await.unwrap();
    let volume = format!("data_t_s_e_{}", &cluster[..8]);
    let volume_labels = BTreeMap::from([
        (labels::CLUSTER.to_owned(), cluster.to_owned()),
        (labels::VOLUME.to_owned(), "data".to_owned()),
    ]);
    assert!(
        runtime
            .create_volume(&volume, &volume_labels)
            .await
            .unwrap()
    );
    assert!(
        !runtime
            .create_volume(&volume, &volume_labels)
            .await
            .unwrap(),
        "a volume already there is not new"
    );
    let listed = runtime
        .list_volumes(&[(labels::CLUSTER, cluster)])
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, volume);
    assert_eq!(listed[0].label(labels::VOLUME), "data");

    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir_all(content.join("sub")).unwrap();
    std::fs::write(content.join("hello.txt"), "hello from the seed\n").unwrap();
    std::fs::write(content.join("sub/deep.txt"), "deep\n").unwrap();
    let tarball = dir.path().join("seed.tar.gz");
    let tar = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&content)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());

    let spec = cj_spec::parse_service(
        "t.yaml",
        &format!(
            "service: s\njobs:\n  - name: t\n    image: {IMAGE}\n    command: [sh, -c, 'cat /data/hello.txt /data/sub/deep.txt']\n"
        ),
    )
    .unwrap();
    let request = CreateRequest {
        name: format!("t_s_e_{cluster}"),
        image: IMAGE.into(),
        task: spec.jobs[0].tasks[0].clone(),
        labels: BTreeMap::from([(labels::CLUSTER.to_owned(), cluster.to_owned())]),
        mounts: vec![VolumeMount {
            volume: volume.clone(),
            path: "/data".into(),
        }],
    };
    let id = runtime.create(&request).await.unwrap();
    // Streamed as read: the file is never held whole.
    let file = tokio::fs::File::open(&tarball).await.unwrap();
    let archive = tokio_util::io::ReaderStream::new(file).boxed();
    runtime.upload_archive(&id, "/data", archive).await.unwrap();
    runtime.start(&id).await.unwrap();
    loop {
        let (status, _) = runtime.inspect(&id).await.unwrap();
        if status.state == ContainerState::Exited {
            assert_eq!(status.exit_code, Some(0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut output = Vec::new();
    let mut logs = runtime.logs(&id, LogsOptions::default());
    while let Some(chunk) = logs.next().await {
        if let LogChunk::Stdout(bytes) = chunk.unwrap() {
            output.extend_from_slice(&bytes);
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&output),
        "hello from the seed\ndeep\n"
    );

    let in_use = runtime.remove_volume(&volume).await;
    assert!(in_use.is_err(), "a mounted volume stays: {in_use:?}");
    runtime.remove(&id).await.unwrap();
    runtime.remove_volume(&volume).await.unwrap();
    runtime.remove_volume(&volume).await.unwrap();
    assert!(
        runtime
            .list_volumes(&[(labels::CLUSTER, cluster)])
            .await
            .unwrap()
            .is_empty()
    );
}
