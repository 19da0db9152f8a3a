//! Parsed versions kept in memory. Versions are immutable and every assignment computation reads
//! the ones that run, so they are cached; the cache is bounded by the size of what it holds, so a
//! long history of large files never grows the server's memory: the least recently used
//! versions make way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::base::lock;
use crate::releases::versions::record::VersionRecord;

/// (environment, service, version)
type Key = (String, String, u64);

pub struct VersionCache {
    budget_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// The sum of the entries' weights.
    bytes: usize,
    /// Bumped on every use; an entry's `last_used` orders evictions.
    clock: u64,
}

struct Entry {
    record: Arc<VersionRecord>,
    /// The size of the stored record, a fair measure of what its parsed form occupies.
    weight: usize,
    last_used: u64,
}

impl VersionCache {
    /// Enough for the versions that run in a large installation.
    pub const DEFAULT_BUDGET_BYTES: usize = 32 << 20;

    pub fn new(budget_bytes: usize) -> Self {
        VersionCache {
            budget_bytes,
            inner: Mutex::default(),
        }
    }

    pub fn get(&self, key: &Key) -> Option<Arc<VersionRecord>> {
        let mut inner = lock(&self.inner);
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(key)?;
        entry.last_used = now;
        Some(entry.record.clone())
    }

    /// Keeps `record`, evicting the least recently used entries while over budget (a record
    /// larger than the whole budget is not kept at all).
    pub fn insert(&self, key: Key, record: Arc<VersionRecord>, weight: usize) {
        if weight > self.budget_bytes {
            return;
        }
        let mut inner = lock(&self.inner);
        inner.clock += 1;
        let last_used = inner.clock;
        let entry = Entry {
            record,
            weight,
            last_used,
        };
        if let Some(replaced) = inner.entries.insert(key, entry) {
            inner.bytes -= replaced.weight;
        }
        inner.bytes += weight;
        while inner.bytes > self.budget_bytes {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(evicted) = inner.entries.remove(&oldest) {
                inner.bytes -= evicted.weight;
            }
        }
    }

    /// How many bytes the cache holds now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        lock(&self.inner).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u64) -> Arc<VersionRecord> {
        Arc::new(VersionRecord {
            env: "production".into(),
            service: "s".into(),
            version,
            file: "s.yaml".into(),
            source: String::new(),
            spec: cj_spec::ServiceSpec {
                service: "s".into(),
                jobs: Vec::new(),
            },
            pushed_at: String::new(),
            pushed_by: String::new(),
            copied_from: None,
        })
    }

    fn key(version: u64) -> Key {
        ("production".into(), "s".into(), version)
    }

    #[test]
    fn stays_within_its_budget_evicting_the_least_recently_used() {
        let cache = VersionCache::new(300);
        for version in 1..=3 {
            cache.insert(key(version), record(version), 100);
        }
        // Version 1 is used, so version 2 is the one to go when version 4 arrives.
        assert!(cache.get(&key(1)).is_some());
        cache.insert(key(4), record(4), 100);
        assert_eq!(cache.bytes(), 300);
        assert!(cache.get(&key(1)).is_some());
        assert!(cache.get(&key(2)).is_none());
        assert!(cache.get(&key(3)).is_some());
        assert!(cache.get(&key(4)).is_some());
        // Too large to keep at all: nothing else is evicted for it.
        cache.insert(key(5), record(5), 301);
        assert!(cache.get(&key(5)).is_none());
        assert_eq!(cache.bytes(), 300);
    }
}
