//! Properties of leases: what ends them (revoke, expiry), what keeps them, what survives.

use std::time::Instant;

use super::{LEASE_TTL, LONG_TTL, Reader, WAIT, key_names, summary};
use crate::{LeaseId, Op, Store, StoreError, WatchKind};

pub fn revoking_a_lease_deletes_its_keys_at_one_revision<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    let lease = store.grant_lease(LONG_TTL).unwrap();
    store.put_with_lease("s/a", b"1".to_vec(), lease).unwrap();
    store.put_with_lease("s/b", b"1".to_vec(), lease).unwrap();
    store.put("s/c", b"1".to_vec()).unwrap();
    // Put again without the lease: no longer the lease's, as in etcd.
    store.put_with_lease("s/d", b"1".to_vec(), lease).unwrap();
    store.put("s/d", b"2".to_vec()).unwrap();
    assert_eq!(store.get("s/a").unwrap().unwrap().lease, Some(lease));
    assert_eq!(store.get("s/d").unwrap().unwrap().lease, None);
    let before = store.revision().unwrap();
    let mut watch = store.watch("s/", before).unwrap();
    store.revoke_lease(lease).unwrap();
    assert_eq!(store.revision().unwrap(), before + 1);
    assert_eq!(
        summary(&reader.take(&mut watch, 2)),
        [
            (before + 1, "s/a".into(), WatchKind::Delete),
            (before + 1, "s/b".into(), WatchKind::Delete)
        ]
    );
    assert_eq!(key_names(store.range("s/").unwrap()), ["s/c", "s/d"]);
    assert_lease_gone(&store, lease);
    // A lease without keys ends without a write.
    let empty = store.grant_lease(LONG_TTL).unwrap();
    store.revoke_lease(empty).unwrap();
    assert_eq!(store.revision().unwrap(), before + 1);
    assert_lease_gone(&store, empty);
}

pub fn an_expired_lease_deletes_its_keys_unasked<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    let lease = store.grant_lease(LEASE_TTL).unwrap();
    store.put_with_lease("s/a", b"1".to_vec(), lease).unwrap();
    store.put_with_lease("s/b", b"1".to_vec(), lease).unwrap();
    store.put("s/c", b"1".to_vec()).unwrap();
    let before = store.revision().unwrap();
    let mut watch = store.watch("s/", before).unwrap();
    // Nobody calls the store from here on: the deletes come on their own.
    let seen = reader.take_within(&mut watch, 2, LEASE_TTL + WAIT);
    assert_eq!(
        summary(&seen),
        [
            (before + 1, "s/a".into(), WatchKind::Delete),
            (before + 1, "s/b".into(), WatchKind::Delete)
        ]
    );
    assert_eq!(key_names(store.range("s/").unwrap()), ["s/c"]);
    assert_lease_gone(&store, lease);
}

pub fn keep_alive_extends_a_lease<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    let lease = store.grant_lease(LEASE_TTL).unwrap();
    store.put_with_lease("k", b"1".to_vec(), lease).unwrap();
    let ttl = store.keep_alive(lease).unwrap();
    assert!(ttl >= LEASE_TTL, "granted {ttl:?} for {LEASE_TTL:?}");
    // Kept alive for twice its TTL, it outlives it.
    let kept_until = Instant::now() + 2 * ttl;
    while Instant::now() < kept_until {
        std::thread::sleep(ttl / 4);
        assert_eq!(store.keep_alive(lease).unwrap(), ttl);
    }
    assert_eq!(store.get("k").unwrap().unwrap().lease, Some(lease));
    // Then left alone, it ends.
    let mut watch = store.watch("k", store.revision().unwrap()).unwrap();
    let seen = reader.take_within(&mut watch, 1, ttl + WAIT);
    assert_eq!(seen[0].kind, WatchKind::Delete);
    assert_eq!(store.get("k").unwrap(), None);
}

pub fn keep_alive_of_an_expired_lease_fails<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let reader = Reader::new();
    // Granted first, so it has expired by the time the second has.
    let without_keys = store.grant_lease(LEASE_TTL).unwrap();
    let lease = store.grant_lease(LEASE_TTL).unwrap();
    store.put_with_lease("k", b"1".to_vec(), lease).unwrap();
    let mut watch = store.watch("k", store.revision().unwrap()).unwrap();
    reader.take_within(&mut watch, 1, LEASE_TTL + WAIT);
    assert_lease_gone(&store, lease);
    assert_lease_gone(&store, without_keys);
}

pub fn a_put_with_an_unknown_lease_fails_and_writes_nothing<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let lease = store.grant_lease(LONG_TTL).unwrap();
    store.revoke_lease(lease).unwrap();
    let before = store.revision().unwrap();
    let ops = [
        Op::put("a", b"1".to_vec()),
        Op::put_with_lease("b", b"1".to_vec(), lease),
    ];
    assert!(matches!(
        store.txn(&[], &ops),
        Err(StoreError::LeaseNotFound(unknown)) if unknown == lease
    ));
    assert_eq!(store.revision().unwrap(), before);
    assert_eq!(store.range("").unwrap(), []);
}

pub fn leases_survive_reopening<S: Store>(open: &dyn Fn() -> S) {
    let (long, short) = {
        let store = open();
        let long = store.grant_lease(LONG_TTL).unwrap();
        let short = store.grant_lease(LEASE_TTL).unwrap();
        store.put_with_lease("long", b"1".to_vec(), long).unwrap();
        store.put_with_lease("short", b"1".to_vec(), short).unwrap();
        (long, short)
    };
    let store = open();
    let reader = Reader::new();
    let mut watch = store.watch("short", store.revision().unwrap()).unwrap();
    assert_eq!(store.get("long").unwrap().unwrap().lease, Some(long));
    assert!(store.keep_alive(long).unwrap() >= LONG_TTL);
    // The short lease still expires, with no one calling.
    let seen = reader.take_within(&mut watch, 1, LEASE_TTL + WAIT);
    assert_eq!(
        (seen[0].key.as_str(), seen[0].kind),
        ("short", WatchKind::Delete)
    );
    assert_lease_gone(&store, short);
    store.revoke_lease(long).unwrap();
    assert_eq!(store.get("long").unwrap(), None);
}

/// Every use of an ended lease is refused.
fn assert_lease_gone<S: Store>(store: &S, lease: LeaseId) {
    let gone = |result: Result<(), StoreError>| matches!(result, Err(StoreError::LeaseNotFound(unknown)) if unknown == lease);
    assert!(
        gone(store.keep_alive(lease).map(|_| ())),
        "keep-alive of {lease}"
    );
    assert!(gone(store.revoke_lease(lease)), "revoke of {lease}");
    let put = store.put_with_lease("after-the-lease", vec![], lease);
    assert!(gone(put.map(|_| ())), "put with {lease}");
}
