//! Where coding-job's keys live in etcd: under a namespace prefix (`/coding-job/` unless told
//! otherwise), so one etcd can hold other programs' data too. Every etcd key this backend sends
//! or reads is made or taken apart here, so callers never see the prefix and no key can escape
//! it.

/// The namespace prefix, as bytes on the wire.
#[derive(Debug, Clone)]
pub(super) struct Namespace(Vec<u8>);

/// The keys of a prefix as etcd ranges them: from `start` (included) to `end` (excluded); an
/// `end` of `[0]` means "to the last key", as in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRange {
    pub(super) start: Vec<u8>,
    pub(super) end: Vec<u8>,
}

impl KeyRange {
    /// Every key in etcd, whoever wrote it.
    pub(super) fn everything() -> KeyRange {
        KeyRange {
            start: vec![0],
            end: vec![0],
        }
    }
}

/// A key read back from etcd under the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Name {
    /// One of ours: the key as callers know it.
    Ours(String),
    /// Not UTF-8, so not written by coding-job; it is still counted, so the mirror's count of
    /// keys matches etcd's.
    Undecodable(Vec<u8>),
}

impl Namespace {
    pub(super) fn new(prefix: &str) -> Namespace {
        Namespace(prefix.as_bytes().to_vec())
    }

    /// The etcd key of `key`.
    pub(super) fn key(&self, key: &str) -> Vec<u8> {
        let mut etcd_key = self.0.clone();
        etcd_key.extend_from_slice(key.as_bytes());
        etcd_key
    }

    /// The etcd range of the keys starting with `prefix` (`""`: the whole namespace).
    pub(super) fn range(&self, prefix: &str) -> KeyRange {
        let start = self.key(prefix);
        let end = prefix_end(&start);
        KeyRange { start, end }
    }

    /// The caller's name for an etcd key, or `None` if the key is outside the namespace (seen by
    /// a watch over all of etcd).
    pub(super) fn name(&self, etcd_key: &[u8]) -> Option<Name> {
        let rest = etcd_key.strip_prefix(self.0.as_slice())?;
        Some(match std::str::from_utf8(rest) {
            Ok(name) => Name::Ours(name.to_owned()),
            Err(_) => Name::Undecodable(etcd_key.to_vec()),
        })
    }
}

/// The first key after every key starting with `prefix`, as etcd's clients compute it: the
/// prefix with its last byte below 0xff incremented (and what follows dropped). A prefix of
/// 0xff bytes only (or none) has no such key: `[0]`, to the end.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_range(namespace: &str, prefix: &str, start: &[u8], end: &[u8]) {
        let range = Namespace::new(namespace).range(prefix);
        assert_eq!(
            (range.start.as_slice(), range.end.as_slice()),
            (start, end),
            "{namespace:?} + {prefix:?}"
        );
    }

    #[test]
    fn a_prefix_ranges_up_to_its_successor() {
        check_range("/cj/", "", b"/cj/", b"/cj0");
        check_range("/cj/", "jobs/", b"/cj/jobs/", b"/cj/jobs0");
        check_range("", "a", b"a", b"b");
        check_range("", "", b"", &[0]);
        check_range("", "a\u{7f}", b"a\x7f", b"a\x80");
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), [0]);
    }

    #[test]
    fn names_are_keys_without_the_namespace() {
        let namespace = Namespace::new("/cj/");
        assert_eq!(namespace.key("jobs/a"), b"/cj/jobs/a");
        assert_eq!(
            namespace.name(b"/cj/jobs/a"),
            Some(Name::Ours("jobs/a".into()))
        );
        assert_eq!(namespace.name(b"/cj/"), Some(Name::Ours(String::new())));
        assert_eq!(namespace.name(b"/other/x"), None);
        assert_eq!(
            namespace.name(b"/cj/\xff"),
            Some(Name::Undecodable(b"/cj/\xff".to_vec()))
        );
    }
}
