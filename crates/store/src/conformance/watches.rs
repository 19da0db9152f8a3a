//! Properties of watches, the history they replay, and its compaction.

use super::{Reader, summary};
use crate::{Op, Store, StoreError, WatchKind};

pub fn watch_replays_the_past_then_follows_new_changes<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    let start = store.revision().unwrap();
    store.put("jobs/a", b"1".to_vec()).unwrap();
    store.put("other/x", b"1".to_vec()).unwrap();
    let ops = [Op::put("jobs/b", b"2".to_vec()), Op::delete("jobs/a")];
    store.txn(&[], &ops).unwrap();
    let mut watch = store.watch("jobs/", start + 1).unwrap();
    store.put("jobs/c", b"3".to_vec()).unwrap();
    let seen = reader.take(&mut watch, 3);
    assert_eq!(
        summary(&seen),
        [
            (start + 3, "jobs/b".into(), WatchKind::Put),
            (start + 3, "jobs/a".into(), WatchKind::Delete),
            (start + 4, "jobs/c".into(), WatchKind::Put)
        ]
    );
    assert_eq!(seen[0].value.as_deref(), Some(&b"2"[..]));
    assert_eq!(seen[1].value, None);
    assert_eq!(seen[2].value.as_deref(), Some(&b"3"[..]));
}

pub fn watch_sees_only_its_prefix<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    let start = store.revision().unwrap();
    store.put("jobs", b"1".to_vec()).unwrap();
    store.put("jobs/a", b"1".to_vec()).unwrap();
    let mut watch = store.watch("jobs/", start).unwrap();
    for key in ["other/x", "jobs", "jobsx", "jobs/b"] {
        store.put(key, b"2".to_vec()).unwrap();
    }
    let seen = reader.take(&mut watch, 2);
    assert_eq!(
        summary(&seen),
        [
            (start + 2, "jobs/a".into(), WatchKind::Put),
            (start + 6, "jobs/b".into(), WatchKind::Put)
        ]
    );
}

pub fn history_is_what_a_watch_replays<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    let start = store.revision().unwrap();
    for key in ["a/1", "b/1", "a/2"] {
        store.put(key, b"1".to_vec()).unwrap();
    }
    store.delete("a/1").unwrap();
    let history = store.history("a/", start + 1).unwrap();
    assert_eq!(
        summary(&history),
        [
            (start + 3, "a/2".into(), WatchKind::Put),
            (start + 4, "a/1".into(), WatchKind::Delete)
        ]
    );
    let mut watch = store.watch("a/", start + 1).unwrap();
    assert_eq!(reader.take(&mut watch, 2), history);
    assert_eq!(store.history("", start + 4).unwrap(), []);
}

pub fn a_watch_from_before_a_compaction_is_refused<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    let start = store.revision().unwrap();
    for n in 1..=5u8 {
        store.put("k", vec![n]).unwrap();
    }
    store.compact(start + 3).unwrap();
    let compacted = |result: Result<_, StoreError>| {
        matches!(result, Err(StoreError::Compacted { requested, oldest })
            if requested == start + 1 && oldest == start + 3)
    };
    assert!(compacted(store.watch("k", start + 1).map(|_| ())));
    assert!(compacted(store.history("k", start + 1).map(|_| ())));
    // From the compaction on, the history is kept.
    let mut watch = store.watch("k", start + 2).unwrap();
    let seen = reader.take(&mut watch, 3);
    assert_eq!(seen[0].revision, start + 3);
    assert_eq!(store.history("k", start + 2).unwrap(), seen);
    assert!(matches!(
        store.compact(start + 6),
        Err(StoreError::FutureRevision { .. })
    ));
}
