//! What only the embedded backend does: its file layout, its log's budget, its runtimes.
//! What every backend does is in `crate::conformance`, run against this one in
//! `tests/conformance.rs`.

use std::time::Duration;

use futures_util::StreamExt;
use redb::{ReadableDatabase, ReadableTable};

use super::format::{KV, LOG, META};
use super::*;

fn open_with(options: Options) -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_with(&dir.path().join("store.redb"), options).unwrap();
    (dir, store)
}

fn open() -> (tempfile::TempDir, EmbeddedStore) {
    open_with(Options::default())
}

#[test]
fn the_watch_log_keeps_values_as_text_within_its_byte_budget() {
    let (_dir, store) = open_with(Options {
        log_budget_bytes: 10_000,
        ..Options::default()
    });
    let value = format!("\"{}\"", "x".repeat(3_000));
    for n in 0..20 {
        store
            .put(&format!("big/{n:02}"), value.clone().into_bytes())
            .unwrap();
    }
    let read = store.shared.db.begin_read().unwrap();
    let log = read.open_table(LOG).unwrap();
    let sizes: Vec<usize> = log
        .iter()
        .unwrap()
        .map(|entry| entry.unwrap().1.value().len())
        .collect();
    // Text, not a list of numbers: an entry is about the value's own size.
    assert!(sizes.iter().all(|size| *size < 3_100), "{sizes:?}");
    assert!(sizes.iter().sum::<usize>() <= 10_000, "{sizes:?}");
    assert_eq!(sizes.len(), 3);
    // A watch from a dropped revision is told so; one from a kept revision replays.
    assert!(matches!(
        store.watch("big/", 1),
        Err(StoreError::Compacted { oldest: 18, .. })
    ));
    assert!(store.watch("big/", 17).is_ok());
}

#[test]
fn the_watch_log_keeps_at_most_its_count_of_changes() {
    let (_dir, store) = open_with(Options {
        log_retained: 3,
        ..Options::default()
    });
    for n in 0..6 {
        store.put("k", vec![n]).unwrap();
    }
    assert!(matches!(
        store.history("", 2),
        Err(StoreError::Compacted { oldest: 4, .. })
    ));
    assert_eq!(store.history("", 3).unwrap().len(), 3);
}

#[tokio::test]
async fn log_entries_written_as_byte_lists_still_replay() {
    let (_dir, store) = open();
    store.put("k", b"1".to_vec()).unwrap();
    {
        let write = store.shared.db.begin_write().unwrap();
        {
            let mut log = write.open_table(LOG).unwrap();
            let old = br#"[{"key":"k","kind":"Put","value":[50]}]"#;
            log.insert(1, old.as_slice()).unwrap();
        }
        write.commit().unwrap();
    }
    let mut watch = store.watch("k", 0).unwrap();
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!(event.value, Some(b"2".to_vec()));
}

#[test]
fn a_damaged_entry_is_an_error_not_a_panic() {
    let (_dir, store) = open();
    {
        let write = store.shared.db.begin_write().unwrap();
        write
            .open_table(KV)
            .unwrap()
            .insert("broken", [1u8, 2, 3].as_slice())
            .unwrap();
        write.commit().unwrap();
    }
    assert!(matches!(
        store.get("broken"),
        Err(StoreError::Decode { key, .. }) if key == "broken"
    ));
    assert!(store.range("bro").is_err());
    assert!(store.put("broken", b"1".to_vec()).is_err());
    // It can still be deleted, which is how it is repaired.
    let revision = store.revision().unwrap();
    let deleted = store.txn(&[], &[Op::delete("broken")]).unwrap();
    assert_eq!(
        deleted,
        TxnOutcome::Committed {
            revision: revision + 1
        }
    );
    assert_eq!(store.get("broken").unwrap(), None);
}

#[test]
fn a_file_written_before_versions_and_leases_opens_with_its_keys_at_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        // The layout before: a 16-byte header of create and mod revision, and no format mark.
        let db = redb::Database::create(&path).unwrap();
        let write = db.begin_write().unwrap();
        {
            let mut kv = write.open_table(KV).unwrap();
            let mut old = Vec::new();
            old.extend_from_slice(&2u64.to_le_bytes());
            old.extend_from_slice(&5u64.to_le_bytes());
            old.extend_from_slice(b"value");
            kv.insert("k", old.as_slice()).unwrap();
            let mut meta = write.open_table(META).unwrap();
            meta.insert("revision", 5).unwrap();
        }
        write.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    let k = store.get("k").unwrap().unwrap();
    assert_eq!(
        (k.value.as_slice(), k.create_revision, k.mod_revision),
        (&b"value"[..], 2, 5)
    );
    assert_eq!((k.version, k.lease), (1, None));
    store.put("k", b"again".to_vec()).unwrap();
    drop(store);
    // Opened again, the upgraded entries are read as they are, not upgraded twice.
    let store = EmbeddedStore::open(&path).unwrap();
    let k = store.get("k").unwrap().unwrap();
    assert_eq!((k.value.as_slice(), k.version), (&b"again"[..], 2));
}

#[test]
fn a_reopened_store_gives_each_lease_its_full_ttl_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let ttl = Duration::from_millis(300);
    let lease = {
        let store = EmbeddedStore::open(&path).unwrap();
        let lease = store.grant_lease(ttl).unwrap();
        store.put_with_lease("k", b"1".to_vec(), lease).unwrap();
        lease
    };
    // Closed for longer than the TTL: the lease would have expired had the store been open.
    std::thread::sleep(ttl + Duration::from_millis(100));
    let store = EmbeddedStore::open(&path).unwrap();
    assert!(store.get("k").unwrap().is_some());
    assert_eq!(store.keep_alive(lease).unwrap(), ttl);
}

#[tokio::test]
async fn a_watch_that_falls_behind_is_told_so_then_ends() {
    let (_dir, store) = open_with(Options {
        live_capacity: 2,
        ..Options::default()
    });
    let mut watch = store.watch("", 0).unwrap();
    for n in 0..5 {
        store.put("k", vec![n]).unwrap();
    }
    assert!(matches!(watch.next().await, Some(Err(StoreError::Lagged))));
    assert!(watch.next().await.is_none());
}

#[tokio::test]
async fn a_watch_ends_with_an_error_when_its_store_is_dropped() {
    let (_dir, store) = open();
    let mut watch = store.watch("", 0).unwrap();
    drop(store);
    assert!(matches!(
        watch.next().await,
        Some(Err(StoreError::Backend(_)))
    ));
    assert!(watch.next().await.is_none());
}

#[test]
fn store_calls_work_from_every_kind_of_runtime() {
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    // Multi-threaded: the call leaves the worker (block_in_place) and still answers.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let in_multi = store.clone();
    multi.block_on(async move {
        tokio::spawn(async move { in_multi.put("a", b"1".to_vec()).unwrap() })
            .await
            .unwrap()
    });
    // Single-threaded (as in most tests), where block_in_place would panic: it runs as is.
    let single = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    single.block_on(async { store.put("b", b"2".to_vec()).unwrap() });
    assert_eq!(store.range("").unwrap().len(), 2);
}
