//! Properties of keys, revisions and transactions.

use super::key_names;
use crate::{Compare, CompareOp, CompareTarget, Op, Page, Store, TxnOutcome};

pub fn revisions_are_global_and_keys_count_their_puts<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let start = store.revision().unwrap();
    assert_eq!(store.put("a", b"1".to_vec()).unwrap(), start + 1);
    assert_eq!(store.put("b", b"1".to_vec()).unwrap(), start + 2);
    assert_eq!(store.put("a", b"2".to_vec()).unwrap(), start + 3);
    assert_eq!(store.revision().unwrap(), start + 3);
    let a = store.get("a").unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.version
        ),
        (&b"2"[..], start + 1, start + 3, 2)
    );
    assert_eq!(a.lease, None);
    // Several writes in one transaction share one revision.
    let ops = [Op::put("c", b"1".to_vec()), Op::put("d", b"1".to_vec())];
    assert_eq!(
        store.txn(&[], &ops).unwrap(),
        TxnOutcome::Committed {
            revision: start + 4
        }
    );
    for key in ["c", "d"] {
        assert_eq!(store.get(key).unwrap().unwrap().mod_revision, start + 4);
    }
    // A key deleted and put again starts a new life: new create revision, version 1.
    store.delete("a").unwrap();
    assert_eq!(store.put("a", b"3".to_vec()).unwrap(), start + 6);
    let a = store.get("a").unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (start + 6, start + 6, 1)
    );
}

pub fn delete_removes_one_key_at_a_new_revision<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let start = store.revision().unwrap();
    store.put("a", b"1".to_vec()).unwrap();
    store.put("ab", b"1".to_vec()).unwrap();
    assert_eq!(store.delete("a").unwrap(), Some(start + 3));
    assert_eq!(store.get("a").unwrap(), None);
    assert!(
        store.get("ab").unwrap().is_some(),
        "a delete is not a prefix delete"
    );
    assert_eq!(store.delete("a").unwrap(), None, "nothing left to delete");
    assert_eq!(store.revision().unwrap(), start + 3);
}

/// A target that compares a number (all but the value), made from the number to compare to.
type NumberTarget = fn(u64) -> CompareTarget;

pub fn comparisons_test_every_target_with_every_operator<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let start = store.revision().unwrap();
    for value in ["k1", "k2", "m"] {
        store.put("k", value.as_bytes().to_vec()).unwrap();
    }
    // `k` now: value "m", version 3, created at start + 1, last changed at start + 3.
    let mut cases = Vec::new();
    let numbers: [(NumberTarget, u64); 3] = [
        (CompareTarget::Version, 3),
        (CompareTarget::CreateRevision, start + 1),
        (CompareTarget::ModRevision, start + 3),
    ];
    for (field, at) in numbers {
        cases.extend([
            (CompareOp::Equal, field(at), true),
            (CompareOp::Equal, field(at + 1), false),
            (CompareOp::NotEqual, field(at), false),
            (CompareOp::NotEqual, field(at + 1), true),
            (CompareOp::Greater, field(at - 1), true),
            (CompareOp::Greater, field(at), false),
            (CompareOp::Less, field(at + 1), true),
            (CompareOp::Less, field(at), false),
        ]);
    }
    let value = |text: &str| CompareTarget::Value(text.as_bytes().to_vec());
    cases.extend([
        (CompareOp::Equal, value("m"), true),
        (CompareOp::Equal, value("x"), false),
        (CompareOp::NotEqual, value("m"), false),
        (CompareOp::NotEqual, value("x"), true),
        (CompareOp::Greater, value("a"), true),
        (CompareOp::Greater, value("m"), false),
        (CompareOp::Less, value("z"), true),
        (CompareOp::Less, value("m"), false),
    ]);
    for (op, target, holds) in cases {
        check_compare(&store, Compare::new("k", op, target), holds);
    }
    check_compare(&store, Compare::mod_revision("k", Some(start + 3)), true);
    check_compare(&store, Compare::mod_revision("k", Some(start + 2)), false);
    check_compare(&store, Compare::mod_revision("k", None), false);
    check_compare(&store, Compare::absent("k"), false);
    check_compare(&store, Compare::value_equals("k", "m"), true);
    check_compare(&store, Compare::value_equals("k", "k2"), false);
}

pub fn comparisons_on_a_missing_key_see_zeros_and_no_value<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    store.put("gone", b"1".to_vec()).unwrap();
    store.delete("gone").unwrap();
    // A key never written and one deleted are alike: revisions and version 0, no value.
    for key in ["never", "gone"] {
        let value = |text: &str| CompareTarget::Value(text.as_bytes().to_vec());
        for (op, target, holds) in [
            (CompareOp::Equal, CompareTarget::Version(0), true),
            (CompareOp::NotEqual, CompareTarget::Version(0), false),
            (CompareOp::Greater, CompareTarget::Version(0), false),
            (CompareOp::Less, CompareTarget::Version(1), true),
            (CompareOp::Equal, CompareTarget::CreateRevision(0), true),
            (CompareOp::Equal, CompareTarget::ModRevision(0), true),
            (CompareOp::Less, CompareTarget::ModRevision(1), true),
            (CompareOp::Greater, CompareTarget::ModRevision(0), false),
            // etcd: any comparison of a missing key's value fails.
            (CompareOp::Equal, value(""), false),
            (CompareOp::NotEqual, value("x"), false),
            (CompareOp::Greater, value(""), false),
            (CompareOp::Less, value("z"), false),
        ] {
            check_compare(&store, Compare::new(key, op, target), holds);
        }
        check_compare(&store, Compare::absent(key), true);
        check_compare(&store, Compare::mod_revision(key, None), true);
        check_compare(&store, Compare::value_equals(key, ""), false);
    }
}

/// Runs a transaction on `compare` alone that writes a marker key, and checks that it
/// commits exactly when the comparison should hold.
fn check_compare<S: Store>(store: &S, compare: Compare, holds: bool) {
    let outcome = store
        .txn(
            std::slice::from_ref(&compare),
            &[Op::put("probe", b"1".to_vec())],
        )
        .unwrap();
    let committed = matches!(outcome, TxnOutcome::Committed { .. });
    assert_eq!(committed, holds, "{compare:?}");
}

pub fn a_failed_transaction_writes_nothing<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    store.put("a", b"1".to_vec()).unwrap();
    let before = store.revision().unwrap();
    // The first comparison holds, the second does not: neither write happens.
    let compares = [Compare::value_equals("a", "1"), Compare::absent("a")];
    let ops = [Op::put("b", b"1".to_vec()), Op::delete("a")];
    assert_eq!(store.txn(&compares, &ops).unwrap(), TxnOutcome::Failed);
    assert_eq!(store.revision().unwrap(), before);
    assert_eq!(store.get("b").unwrap(), None);
    assert_eq!(store.get("a").unwrap().unwrap().value, b"1");
    assert_eq!(store.history("", before).unwrap(), []);
}

pub fn compare_and_swap_refuses_a_stale_revision<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    let start = store.revision().unwrap();
    let swap = |expected: Option<u64>, value: &str| {
        store
            .compare_and_swap("k", expected, value.as_bytes().to_vec())
            .unwrap()
    };
    assert_eq!(swap(None, "first"), Some(start + 1));
    assert_eq!(swap(None, "again"), None);
    assert_eq!(swap(Some(start + 7), "stale"), None);
    assert_eq!(swap(Some(start + 1), "second"), Some(start + 2));
    assert_eq!(store.get("k").unwrap().unwrap().value, b"second");
    assert_eq!(
        store.revision().unwrap(),
        start + 2,
        "failed swaps do not move the revision"
    );
}

pub fn range_reads_only_the_prefix<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    for key in ["svc/b", "svc/a", "svd/c", "sv"] {
        store.put(key, vec![]).unwrap();
    }
    assert_eq!(key_names(store.range("svc/").unwrap()), ["svc/a", "svc/b"]);
    assert_eq!(key_names(store.range("").unwrap()).len(), 4);
    assert_eq!(
        key_names(store.range("none/").unwrap()),
        Vec::<String>::new()
    );
}

pub fn pages_read_a_bounded_piece_in_either_direction<S: Store>(open: &dyn Fn() -> S) {
    let store = open();
    for key in [
        "log/01", "log/02", "log/03", "log/04", "log/05", "loh/00", "lof/99",
    ] {
        store.put(key, vec![]).unwrap();
    }
    let page = |page: Page| key_names(store.range_page("log/", &page).unwrap());
    assert_eq!(page(Page::newest(2)), ["log/05", "log/04"]);
    let beyond = Some("log/04".to_owned());
    assert_eq!(
        page(Page {
            beyond,
            ..Page::newest(2)
        }),
        ["log/03", "log/02"]
    );
    let oldest_first = |limit, beyond: Option<&str>| Page {
        limit,
        newest_first: false,
        beyond: beyond.map(str::to_owned),
    };
    assert_eq!(page(oldest_first(2, None)), ["log/01", "log/02"]);
    assert_eq!(page(oldest_first(10, Some("log/03"))), ["log/04", "log/05"]);
    assert_eq!(page(Page::newest(0)), Vec::<String>::new());
    assert_eq!(page(Page::newest(100)).len(), 5);
}

pub fn data_survives_reopening<S: Store>(open: &dyn Fn() -> S) {
    let (revision, before) = {
        let store = open();
        store.put("v/1", b"{\"n\":1}".to_vec()).unwrap();
        (store.revision().unwrap(), store.get("v/1").unwrap())
    };
    let store = open();
    assert_eq!(store.get("v/1").unwrap(), before);
    assert_eq!(store.revision().unwrap(), revision);
}
