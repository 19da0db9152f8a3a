//! The mirror alone, fed by hand: what it applies, when it counts as caught up, and what a
//! write waits for.

use std::time::Duration;

use super::*;
use crate::types::WatchKind;

fn put(key: &str, revision: u64, lease: Option<i64>) -> Observed {
    Observed::Put(KeyValue {
        key: key.into(),
        value: key.as_bytes().to_vec(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease: lease.map(LeaseId),
    })
}

fn delete(key: &str, revision: u64) -> Observed {
    Observed::Delete {
        key: key.into(),
        revision,
    }
}

/// A mirror listed at revision 10 with `a` (put at 4) and `b` (put at 7), and up.
fn listed() -> Mirror {
    let mirror = Mirror::new();
    mirror.install(vec![put("a", 4, None), put("b", 7, Some(9))], 10, false);
    mirror.set_up();
    mirror
}

#[test]
fn a_mirror_that_is_down_answers_unavailable() {
    let mirror = Mirror::new();
    let unavailable = mirror.get("a").unwrap_err();
    assert_eq!(
        unavailable.to_string(),
        "the store is unavailable: not yet connected to etcd"
    );
    let mirror = listed();
    assert_eq!(mirror.revision().unwrap(), 10);
    mirror.set_down("etcd went away");
    assert!(
        matches!(mirror.range(""), Err(StoreError::Unavailable(reason)) if reason == "etcd went away")
    );
    assert!(mirror.wait_until_up(Duration::from_millis(10)).is_err());
}

#[test]
fn changes_are_applied_once_and_broadcast_in_order() {
    let mirror = listed();
    let (mut live, snapshot) = mirror.subscribe().unwrap();
    assert_eq!(
        (snapshot.revision, snapshot.revision_is_change),
        (10, false)
    );
    mirror.apply(vec![put("c", 11, None), delete("a", 11)]);
    // A resumed watch may repeat what was applied: skipped.
    mirror.apply(vec![delete("a", 11), put("d", 12, None)]);
    let names: Vec<String> = mirror
        .range("")
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(names, ["b", "c", "d"]);
    assert_eq!(mirror.revision().unwrap(), 12);
    assert!(mirror.snapshot().unwrap().revision_is_change);
    let mut seen = Vec::new();
    while let Ok(Change::Events(events)) = live.try_recv() {
        for event in events.iter() {
            seen.push((event.revision, event.key.clone(), event.kind));
        }
    }
    assert_eq!(
        seen,
        [
            (11, "c".into(), WatchKind::Put),
            (11, "a".into(), WatchKind::Delete),
            (12, "d".into(), WatchKind::Put)
        ]
    );
    // Listing again after lost changes tells the watches.
    mirror.install(vec![], 20, true);
    assert!(matches!(live.try_recv(), Ok(Change::Lost)));
}

#[test]
fn pages_read_as_the_embedded_backend_reads_them() {
    let mirror = Mirror::new();
    let keys = ["log/1", "log/2", "log/3", "lof", "loh"];
    mirror.install(keys.iter().map(|key| put(key, 2, None)).collect(), 2, false);
    mirror.set_up();
    let page = |limit, newest_first, beyond: Option<&str>| -> Vec<String> {
        let page = Page {
            limit,
            newest_first,
            beyond: beyond.map(str::to_owned),
        };
        mirror
            .range_page("log/", &page)
            .unwrap()
            .into_iter()
            .map(|kv| kv.key)
            .collect()
    };
    assert_eq!(page(2, true, None), ["log/3", "log/2"]);
    assert_eq!(page(2, true, Some("log/2")), ["log/1"]);
    assert_eq!(page(2, false, Some("log/1")), ["log/2", "log/3"]);
    assert_eq!(page(0, false, None), Vec::<String>::new());
}

/// Caught up once the mirror agrees with etcd's count and newest change, or has gone past.
#[test]
fn catching_up_is_judged_by_count_and_newest_change() {
    let mirror = listed();
    let probe = |count, max_mod_revision| Probe {
        revision: 15,
        count,
        max_mod_revision,
    };
    assert!(mirror.caught_up(&probe(2, 7)), "nothing happened meanwhile");
    // Meanwhile `a` was deleted, and `c` put then deleted (changing neither count nor newest).
    assert!(!mirror.caught_up(&probe(1, 7)));
    mirror.apply(vec![put("c", 12, None)]);
    assert!(!mirror.caught_up(&probe(1, 7)), "c is still there");
    mirror.apply(vec![delete("c", 13)]);
    assert!(!mirror.caught_up(&probe(1, 7)), "a is still there");
    mirror.apply(vec![delete("a", 14)]);
    assert!(mirror.caught_up(&probe(1, 7)));
    // Undecodable keys count too.
    let foreign = Observed::Undecodable {
        key: vec![0xff],
        revision: 16,
        deleted: false,
    };
    mirror.apply(vec![foreign]);
    assert!(mirror.caught_up(&probe(1, 7)), "past the probe's revision");
    assert!(mirror.caught_up(&Probe {
        revision: 20,
        count: 2,
        max_mod_revision: 16
    }));
}

#[test]
fn a_write_waits_until_the_mirror_shows_it() {
    let mirror = listed();
    let quick = Duration::from_millis(20);
    let wait = |sight: Sight| mirror.await_sights(&[sight], quick);
    assert_eq!(wait(Sight::Revision(10)), Awaited::Seen);
    assert_eq!(wait(Sight::Revision(11)), Awaited::TimedOut);
    let present = |mod_revision| Sight::Key {
        key: "b".into(),
        mod_revision,
        at: 12,
    };
    assert_eq!(wait(present(Some(7))), Awaited::Seen);
    assert_eq!(wait(present(Some(12))), Awaited::TimedOut);
    // etcd says `b` was absent at 12: not seen while the mirror still has it from 7.
    assert_eq!(wait(present(None)), Awaited::TimedOut);
    let lease_ended = Sight::LeaseEnded {
        lease: LeaseId(9),
        at: 12,
    };
    assert_eq!(wait(lease_ended.clone()), Awaited::TimedOut);
    // `b` put again without its lease meanwhile: its end at 12 deletes nothing here.
    mirror.apply(vec![put("b", 11, None)]);
    assert_eq!(wait(lease_ended), Awaited::Seen);
    mirror.set_down("gone");
    assert_eq!(wait(Sight::Revision(30)), Awaited::Down);
}

/// A waiting writer is woken by the change it waits for, from another thread.
#[test]
fn a_waiting_write_wakes_when_its_change_arrives() {
    let mirror = std::sync::Arc::new(listed());
    let applier = mirror.clone();
    let apply = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        applier.apply(vec![put("z", 11, None)]);
    });
    let awaited = mirror.await_sights(&[Sight::Revision(11)], Duration::from_secs(5));
    apply.join().unwrap();
    assert_eq!(awaited, Awaited::Seen);
}
