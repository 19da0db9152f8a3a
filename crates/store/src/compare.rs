//! The conditions of a transaction, as etcd has them: one field of a key (its value, version,
//! create or mod revision) against a constant, with one of four operators. A missing key
//! compares as etcd's does: its revisions and version are 0, and any comparison of its value
//! fails, so "absent" is `Version == 0` and never a value test.

use std::cmp::Ordering;

use crate::types::KeyValue;

/// A condition of a transaction: `key`'s `target` field stands in relation `op` to the
/// target's constant (`ModRevision(5)` with `Less`: the key last changed before revision 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

/// The field of the key a [`Compare`] reads, with the constant it is compared to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The value, byte by byte (`Greater`/`Less` in lexicographic order).
    Value(Vec<u8>),
    /// The number of puts since the key was created; 0 when it does not exist.
    Version(u64),
    /// The revision that created the key; 0 when it does not exist.
    CreateRevision(u64),
    /// The revision that last changed the key; 0 when it does not exist.
    ModRevision(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

impl Compare {
    pub fn new(key: impl Into<String>, op: CompareOp, target: CompareTarget) -> Compare {
        Compare {
            key: key.into(),
            op,
            target,
        }
    }

    /// `key` was last changed at `revision`, or, with `None`, does not exist: the condition of a
    /// compare-and-swap on what was read.
    pub fn mod_revision(key: impl Into<String>, revision: Option<u64>) -> Compare {
        match revision {
            Some(revision) => {
                Compare::new(key, CompareOp::Equal, CompareTarget::ModRevision(revision))
            }
            None => Compare::absent(key),
        }
    }

    /// `key` does not exist.
    pub fn absent(key: impl Into<String>) -> Compare {
        Compare::new(key, CompareOp::Equal, CompareTarget::Version(0))
    }

    /// `key` exists and holds exactly `value`.
    pub fn value_equals(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Compare {
        Compare::new(key, CompareOp::Equal, CompareTarget::Value(value.into()))
    }

    /// Whether the condition holds for the key as it is (`None`: the key does not exist).
    pub(crate) fn holds(&self, current: Option<&KeyValue>) -> bool {
        let ordering = match (&self.target, current) {
            // etcd: a value comparison on a missing key fails, whatever the operator.
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(expected), Some(kv)) => kv.value.as_slice().cmp(expected),
            (CompareTarget::Version(expected), kv) => kv.map_or(0, |kv| kv.version).cmp(expected),
            (CompareTarget::CreateRevision(expected), kv) => {
                kv.map_or(0, |kv| kv.create_revision).cmp(expected)
            }
            (CompareTarget::ModRevision(expected), kv) => {
                kv.map_or(0, |kv| kv.mod_revision).cmp(expected)
            }
        };
        match self.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Greater => ordering == Ordering::Greater,
            CompareOp::Less => ordering == Ordering::Less,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CompareOp::*;
    use CompareTarget::*;

    /// Key `k` created at revision 3, last changed at 7 (its third put), holding `b"m"`.
    fn stored() -> KeyValue {
        KeyValue {
            key: "k".into(),
            value: b"m".to_vec(),
            create_revision: 3,
            mod_revision: 7,
            version: 3,
            lease: None,
        }
    }

    fn check(op: CompareOp, target: CompareTarget, on_stored: bool, on_absent: bool) {
        let compare = Compare::new("k", op, target);
        assert_eq!(
            compare.holds(Some(&stored())),
            on_stored,
            "{compare:?} on k"
        );
        assert_eq!(
            compare.holds(None),
            on_absent,
            "{compare:?} on a missing key"
        );
    }

    #[test]
    fn every_target_and_operator_compares_as_etcd_does() {
        for (op, target, on_stored, on_absent) in [
            (Equal, Value(b"m".to_vec()), true, false),
            (NotEqual, Value(b"m".to_vec()), false, false),
            (NotEqual, Value(b"x".to_vec()), true, false),
            (Greater, Value(b"a".to_vec()), true, false),
            (Less, Value(b"z".to_vec()), true, false),
            (Less, Value(b"m".to_vec()), false, false),
            (Equal, Version(3), true, false),
            (Equal, Version(0), false, true),
            (Greater, Version(0), true, false),
            (Less, Version(3), false, true),
            (NotEqual, Version(3), false, true),
            (Equal, CreateRevision(3), true, false),
            (Equal, CreateRevision(0), false, true),
            (Greater, CreateRevision(2), true, false),
            (Less, CreateRevision(3), false, true),
            (Equal, ModRevision(7), true, false),
            (NotEqual, ModRevision(7), false, true),
            (Greater, ModRevision(7), false, false),
            (Less, ModRevision(8), true, true),
        ] {
            check(op, target, on_stored, on_absent);
        }
    }

    #[test]
    fn the_shorthands_say_what_they_mean() {
        assert!(Compare::mod_revision("k", Some(7)).holds(Some(&stored())));
        assert!(!Compare::mod_revision("k", Some(6)).holds(Some(&stored())));
        assert!(Compare::mod_revision("k", None).holds(None));
        assert!(!Compare::mod_revision("k", None).holds(Some(&stored())));
        assert!(Compare::absent("k").holds(None));
        assert!(Compare::value_equals("k", b"m".to_vec()).holds(Some(&stored())));
        assert!(!Compare::value_equals("k", Vec::new()).holds(None));
    }
}
