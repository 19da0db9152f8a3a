//! The simulated engine in Docker's shapes: the inspect document (read back through bollard's
//! type, as Docker's is), times as Docker writes them, image ids and the mounts of a create
//! body.

use std::time::SystemTime;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::state::Entry;
use crate::types::{ContainerState, VolumeMount};

/// Docker's way of writing a time in an inspect document; the zero time for "never".
pub(super) fn docker_time(time: Option<SystemTime>) -> String {
    match time {
        Some(time) => OffsetDateTime::from(time)
            .format(&Rfc3339)
            .unwrap_or_default(),
        None => "0001-01-01T00:00:00Z".to_owned(),
    }
}

pub(super) fn unix_seconds(time: SystemTime) -> i64 {
    OffsetDateTime::from(time).unix_timestamp()
}

pub(super) fn docker_state(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Removing => "removing",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
        ContainerState::Unknown => "",
    }
}

/// A stable id for an image name, written as Docker's (`sha256:` and 64 hex digits).
pub(super) fn image_id(image: &str) -> String {
    // FNV-1a, then four rounds of splitmix64: not a digest, only a stable name for the image.
    let mut seed = image.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut digits = String::from("sha256:");
    for _ in 0..4 {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        digits.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    digits
}

/// The named volumes the create body mounts (ours, and any the user passed through).
pub(super) fn volume_mounts(body: &Value) -> Vec<VolumeMount> {
    let Some(mounts) = body["HostConfig"]["Mounts"].as_array() else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|mount| mount["Type"] == "volume")
        .filter_map(|mount| {
            Some(VolumeMount {
                volume: mount["Source"].as_str()?.to_owned(),
                path: mount["Target"].as_str()?.to_owned(),
            })
        })
        .collect()
}

/// Docker's inspect document of the container.
pub(super) fn inspect_document(entry: &Entry) -> Value {
    let mut config = entry.body.clone();
    let host_config = config
        .as_object_mut()
        .and_then(|body| body.remove("HostConfig"))
        .unwrap_or_else(|| json!({}));
    config["Hostname"] = json!(entry.id[..12]);
    let command: Vec<String> = config["Cmd"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|part| part.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let running = entry.is_running();
    let mounts: Vec<Value> = entry
        .mounts
        .iter()
        .map(|mount| {
            json!({
                "Type": "volume",
                "Name": mount.volume,
                "Source": format!("/var/lib/docker/volumes/{}/_data", mount.volume),
                "Destination": mount.path,
                "Driver": "local",
                "Mode": "z",
                "RW": true,
                "Propagation": "",
            })
        })
        .collect();
    json!({
        "Id": entry.id,
        "Created": docker_time(Some(entry.created)),
        "Path": command.first().cloned().unwrap_or_default(),
        "Args": command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": docker_state(entry.state),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": entry.oom_killed,
            "Dead": false,
            "Pid": if running { 1000 + entry.run as i64 } else { 0 },
            "ExitCode": entry.exit_code,
            "Error": "",
            "StartedAt": docker_time(entry.started_at),
            "FinishedAt": docker_time(entry.finished_at),
        },
        "Image": entry.image_id,
        "Name": format!("/{}", entry.name),
        "RestartCount": 0,
        "Driver": "sim",
        "Platform": "linux",
        "Mounts": mounts,
        "Config": config,
        "HostConfig": host_config,
        "NetworkSettings": {},
    })
}
