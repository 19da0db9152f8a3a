//! Snapshots of the embedded backend: what a restored store holds, and what a bad snapshot
//! or a bad place to restore to gives.

use std::path::Path;
use std::time::Duration;

use crate::snapshot::{self, SnapshotError, SnapshotSummary};
use crate::{EmbeddedStore, KeyValue, Op, Store, StoreError};

fn snapshot_of(store: &EmbeddedStore) -> (Vec<u8>, SnapshotSummary) {
    let mut bytes = Vec::new();
    let summary = store.snapshot(&mut bytes).unwrap();
    (bytes, summary)
}

/// A store with a bit of everything: keys put several times, a key deleted and created again,
/// a value that is not UTF-8, a key with a lease, and a revoked lease.
fn busy_store(path: &Path) -> EmbeddedStore {
    let store = EmbeddedStore::open(path).unwrap();
    store.put("cluster/id", br#""ab12""#.to_vec()).unwrap();
    for n in 0..3 {
        store
            .put(
                "services/production/shop/latest",
                format!("{n}").into_bytes(),
            )
            .unwrap();
    }
    store.put("again", b"1".to_vec()).unwrap();
    store.delete("again").unwrap();
    store.put("again", b"2".to_vec()).unwrap();
    store.put("binary", vec![0, 159, 146, 150, 255]).unwrap();
    let revoked = store.grant_lease(Duration::from_secs(60)).unwrap();
    store.revoke_lease(revoked).unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).unwrap();
    store
        .txn(
            &[],
            &[
                Op::put_with_lease("leader", b"me".to_vec(), lease),
                Op::put("tokens/ci", br#"{"role":"deploy"}"#.to_vec()),
            ],
        )
        .unwrap();
    store
}

#[test]
fn a_restored_store_has_every_key_with_its_revisions_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = busy_store(&dir.path().join("store.redb"));
    let (bytes, summary) = snapshot_of(&store);
    let revision = store.revision().unwrap();
    let keys = store.range("").unwrap();
    assert_eq!(
        summary,
        SnapshotSummary {
            revision,
            keys: keys.len() as u64,
            leases: 1,
            bytes: bytes.len() as u64,
        }
    );
    assert_eq!(snapshot::check(bytes.as_slice()).unwrap(), summary);

    let restored_path = dir.path().join("restored.redb");
    let restored_summary = EmbeddedStore::restore(bytes.as_slice(), &restored_path, false).unwrap();
    assert_eq!(restored_summary, summary);
    let restored = EmbeddedStore::open(&restored_path).unwrap();
    assert_eq!(restored.revision().unwrap(), revision);
    assert_eq!(restored.range("").unwrap(), keys);
    let again = restored.get("again").unwrap().unwrap();
    assert_eq!(
        (again.version, again.create_revision),
        (1, again.mod_revision)
    );
    let latest = restored
        .get("services/production/shop/latest")
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, 3);
    assert_eq!(
        restored.get("binary").unwrap().unwrap().value,
        [0, 159, 146, 150, 255]
    );

    // It goes on as the original would: the next write is the next revision, a new key
    // starts at version 1, lease ids are not given out twice, and the lease still owns its key.
    let leader: KeyValue = restored.get("leader").unwrap().unwrap();
    let lease = leader.lease.unwrap();
    assert_eq!(restored.put("new", b"x".to_vec()).unwrap(), revision + 1);
    assert!(restored.grant_lease(Duration::from_secs(1)).unwrap() > lease);
    restored.revoke_lease(lease).unwrap();
    assert_eq!(restored.get("leader").unwrap(), None);
    // The restored copy is a copy: the original still has its key.
    assert!(store.get("leader").unwrap().is_some());
}

#[tokio::test]
async fn a_restored_store_keeps_no_history_before_its_revision() {
    use futures_util::StreamExt;

    let dir = tempfile::tempdir().unwrap();
    let store = busy_store(&dir.path().join("store.redb"));
    let (bytes, summary) = snapshot_of(&store);
    let path = dir.path().join("restored.redb");
    EmbeddedStore::restore(bytes.as_slice(), &path, false).unwrap();
    let restored = EmbeddedStore::open(&path).unwrap();
    assert!(matches!(
        restored.history("", summary.revision - 1),
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(restored.history("", summary.revision).unwrap(), []);
    let mut watch = restored.watch("", summary.revision).unwrap();
    restored.put("next", b"1".to_vec()).unwrap();
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (event.key.as_str(), event.revision),
        ("next", summary.revision + 1)
    );
}

#[test]
fn a_snapshot_is_one_revision_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            // Each write adds a key and counts it, in one transaction.
            for n in 1..=40u32 {
                store
                    .txn(
                        &[],
                        &[
                            Op::put(format!("items/{n:05}"), vec![1]),
                            Op::put("count", n.to_string().into_bytes()),
                        ],
                    )
                    .unwrap();
            }
        })
    };
    let mut snapshots = Vec::new();
    while !writer.is_finished() {
        snapshots.push(snapshot_of(&store).0);
    }
    writer.join().unwrap();
    assert!(
        snapshots.len() > 1,
        "the writes were over before a second snapshot"
    );
    for (n, bytes) in snapshots.iter().enumerate() {
        let path = dir.path().join(format!("restored-{n}.redb"));
        EmbeddedStore::restore(bytes.as_slice(), &path, false).unwrap();
        let restored = EmbeddedStore::open(&path).unwrap();
        let count = restored.get("count").unwrap().map_or(0, |kv| {
            String::from_utf8(kv.value).unwrap().parse().unwrap()
        });
        assert_eq!(restored.range("items/").unwrap().len(), count);
        assert_eq!(restored.revision().unwrap(), count as u64);
    }
}

#[test]
fn a_truncated_or_damaged_snapshot_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = busy_store(&dir.path().join("store.redb"));
    let (bytes, _) = snapshot_of(&store);
    let path = dir.path().join("restored.redb");
    let restore = |bytes: &[u8]| {
        let result = EmbeddedStore::restore(bytes, &path, false);
        assert!(!path.exists(), "a refused snapshot left {}", path.display());
        let partial = dir.path().join("restored.redb.restoring");
        assert!(
            !partial.exists(),
            "a refused snapshot left {}",
            partial.display()
        );
        result.unwrap_err()
    };

    // Cut anywhere: at a line's end, within a line, before the end record, or nothing at all.
    let line_ends: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'\n')
        .map(|(at, _)| at + 1)
        .collect();
    let cuts = [
        0,
        10,
        line_ends[0],
        line_ends[2] - 5,
        line_ends[line_ends.len() - 2],
        bytes.len() - 1,
    ];
    for cut in cuts {
        let error = restore(&bytes[..cut]);
        assert!(
            matches!(error, SnapshotError::Truncated { .. }),
            "cut at {cut}: {error}"
        );
        assert!(error.to_string().contains("truncated"), "{error}");
    }

    // A changed value that still reads as JSON: only the checksum can tell.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let altered = text.replace(r#""text":"me""#, r#""text":"you""#);
    assert_ne!(altered, text);
    let error = restore(altered.as_bytes());
    assert!(matches!(error, SnapshotError::Checksum), "{error}");

    // A damaged line is named.
    let damaged = text.replacen(r#""record":"key""#, r#""record":"kye""#, 1);
    let error = restore(damaged.as_bytes());
    assert!(
        matches!(error, SnapshotError::Malformed { line: 3, .. }),
        "{error}"
    );

    // Something that is not a snapshot at all.
    let error = restore(b"{\"hello\":1}\n");
    assert!(
        error.to_string().starts_with("line 1 of the snapshot:"),
        "{error}"
    );
    let newer = text.replacen(r#""version":1"#, r#""version":2"#, 1);
    let error = restore(newer.as_bytes());
    assert!(error.to_string().contains("format version 2"), "{error}");

    // Anything after the end record.
    let error = restore(format!("{text}{{}}\n").as_bytes());
    assert!(
        error.to_string().contains("follows the end record"),
        "{error}"
    );
}

#[test]
fn restore_replaces_a_store_only_when_told_and_never_one_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let source = busy_store(&dir.path().join("store.redb"));
    let (bytes, summary) = snapshot_of(&source);
    let path = dir.path().join("target.redb");
    {
        let existing = EmbeddedStore::open(&path).unwrap();
        existing.put("old", b"1".to_vec()).unwrap();
        let error = EmbeddedStore::restore(bytes.as_slice(), &path, false).unwrap_err();
        assert!(matches!(error, SnapshotError::Exists { .. }), "{error}");
        let error = EmbeddedStore::restore(bytes.as_slice(), &path, true).unwrap_err();
        assert!(matches!(error, SnapshotError::InUse { .. }), "{error}");
        assert!(existing.get("old").unwrap().is_some());
    }
    assert_eq!(
        EmbeddedStore::restore(bytes.as_slice(), &path, true).unwrap(),
        summary
    );
    let restored = EmbeddedStore::open(&path).unwrap();
    assert_eq!(restored.get("old").unwrap(), None);
    assert_eq!(restored.revision().unwrap(), summary.revision);
}
