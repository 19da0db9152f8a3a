//! What every backend must do, as etcd does it: one public function per property, each given a
//! way to open a fresh store, and [`conformance_tests!`](crate::conformance_tests) to run them
//! all as tests of a backend (`tests/conformance.rs` runs them against [`EmbeddedStore`],
//! `tests/conformance_etcd.rs` against [`EtcdStore`] on a real etcd).
//!
//! `open` opens the same store every time it is called (one at a time: a property drops its
//! store before opening it again, to check what survives). The store starts empty and nobody
//! else writes to it while a property runs; its revision need not start at 0 (etcd's starts at
//! 1), so revisions are checked relative to where it starts. Changes are awaited on a watch,
//! with a deadline, rather than guessed with a sleep; leases live [`LEASE_TTL`] or what the
//! backend rounds it up to, so the whole suite takes a few seconds.
//!
//! [`EmbeddedStore`]: crate::EmbeddedStore
//! [`EtcdStore`]: crate::EtcdStore

mod keys;
mod leases;
mod watches;

use std::time::Duration;

use futures_util::StreamExt;

pub use self::keys::*;
pub use self::leases::*;
pub use self::watches::*;
use crate::{KeyValue, WatchEvent, WatchKind, WatchStream};

/// The TTL of the leases that are meant to expire during a property.
pub const LEASE_TTL: Duration = Duration::from_millis(300);
/// The TTL of the leases that must not expire during a property.
pub(crate) const LONG_TTL: Duration = Duration::from_secs(60);
/// The longest a live change may take to reach a watch.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// One `#[test]` per property, for the backend whose fresh store `open_fresh` (an expression
/// evaluated once per test) opens: `cj_store::conformance_tests!(fresh_embedded_store());`.
#[macro_export]
macro_rules! conformance_tests {
    ($open_fresh:expr) => {
        $crate::conformance_tests!(@each $open_fresh;
            revisions_are_global_and_keys_count_their_puts,
            delete_removes_one_key_at_a_new_revision,
            comparisons_test_every_target_with_every_operator,
            comparisons_on_a_missing_key_see_zeros_and_no_value,
            a_failed_transaction_writes_nothing,
            compare_and_swap_refuses_a_stale_revision,
            range_reads_only_the_prefix,
            pages_read_a_bounded_piece_in_either_direction,
            data_survives_reopening,
            watch_replays_the_past_then_follows_new_changes,
            watch_sees_only_its_prefix,
            history_is_what_a_watch_replays,
            a_watch_from_before_a_compaction_is_refused,
            revoking_a_lease_deletes_its_keys_at_one_revision,
            an_expired_lease_deletes_its_keys_unasked,
            keep_alive_extends_a_lease,
            keep_alive_of_an_expired_lease_fails,
            a_put_with_an_unknown_lease_fails_and_writes_nothing,
            leases_survive_reopening,
        );
    };
    (@each $open_fresh:expr; $($property:ident),* $(,)?) => {
        $(
            #[test]
            fn $property() {
                let open = $open_fresh;
                $crate::conformance::$property(&open);
            }
        )*
    };
}

pub(crate) fn key_names(found: Vec<KeyValue>) -> Vec<String> {
    found.into_iter().map(|kv| kv.key).collect()
}

pub(crate) fn summary(events: &[WatchEvent]) -> Vec<(u64, String, WatchKind)> {
    events
        .iter()
        .map(|event| (event.revision, event.key.clone(), event.kind))
        .collect()
}

/// Reads watches on a runtime of its own: the properties are synchronous, as the trait is.
pub(crate) struct Reader(tokio::runtime::Runtime);

impl Reader {
    pub(crate) fn new() -> Reader {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime for reading watches");
        Reader(runtime)
    }

    /// The next `count` changes, which are due now or soon.
    pub(crate) fn take(&self, watch: &mut WatchStream, count: usize) -> Vec<WatchEvent> {
        self.take_within(watch, count, WAIT)
    }

    /// The next `count` changes, all within `wait`.
    fn take_within(
        &self,
        watch: &mut WatchStream,
        count: usize,
        wait: Duration,
    ) -> Vec<WatchEvent> {
        self.0.block_on(async {
            let mut seen = Vec::new();
            let taking = async {
                while seen.len() < count {
                    match watch.next().await {
                        Some(event) => seen.push(event.expect("a change")),
                        None => panic!("the watch ended"),
                    }
                }
            };
            if tokio::time::timeout(wait, taking).await.is_err() {
                panic!("{count} changes expected within {wait:?}, seen {seen:?}");
            }
            seen
        })
    }
}
