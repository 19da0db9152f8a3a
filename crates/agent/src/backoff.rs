//! Restart backoff: the first restart after a death is immediate (a one-off crash costs no
//! downtime); each further quick death doubles the pause, up to a cap. A container that ran long
//! enough before dying starts the count afresh.

use std::time::Duration;

use tokio::time::Instant;

/// A container that ran at least this long before dying is not crash-looping.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Failures in a row (deaths after a short run, or failed attempts to start).
    pub consecutive_failures: u32,
    /// No new attempt before this.
    pub not_before: Option<Instant>,
    /// When the current container was last started by us.
    pub started_at: Option<Instant>,
}

impl Backoff {
    /// The pause before the next attempt after `failures` failures in a row.
    pub fn pause(failures: u32) -> Duration {
        match failures {
            0 | 1 => Duration::ZERO,
            n => FIRST_PAUSE
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_PAUSE),
        }
    }

    /// Records a failure at `now` and returns the pause before the next attempt.
    pub fn record_failure(&mut self, now: Instant) -> Duration {
        let ran_long_enough = self
            .started_at
            .is_some_and(|started| now.duration_since(started) >= STABLE_AFTER);
        self.consecutive_failures = if ran_long_enough {
            1
        } else {
            self.consecutive_failures + 1
        };
        self.started_at = None;
        let pause = Self::pause(self.consecutive_failures);
        self.not_before = Some(cj_api::time::later(now, pause));
        pause
    }

    pub fn record_start(&mut self, now: Instant) {
        self.started_at = Some(now);
        self.not_before = None;
    }

    pub fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|not_before| now >= not_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_cap() {
        let pauses: Vec<u64> = (1..=8).map(|n| Backoff::pause(n).as_secs()).collect();
        assert_eq!(pauses, [0, 1, 2, 4, 8, 16, 30, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_run_resets_the_count() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        backoff.record_start(start);
        assert_eq!(
            backoff.record_failure(start + Duration::from_secs(1)),
            Duration::ZERO
        );
        backoff.record_start(start + Duration::from_secs(1));
        assert_eq!(
            backoff.record_failure(start + Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert!(!backoff.ready(start + Duration::from_millis(2500)));
        assert!(backoff.ready(start + Duration::from_secs(3)));
        backoff.record_start(start + Duration::from_secs(3));
        assert_eq!(
            backoff.record_failure(start + Duration::from_secs(60)),
            Duration::ZERO
        );
        assert_eq!(backoff.consecutive_failures, 1);
    }
}
