//! Instants in the future, computed without overflow: waits come from configs and requests, and
//! `Instant + Duration` panics when the sum does not fit. A wait too long to represent becomes
//! "a year from now", which no caller tells apart from forever.

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait any deadline is given.
pub const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// `from + wait`, or `from + LONGEST_WAIT` when `wait` is longer (or the sum does not fit).
pub fn later(from: Instant, wait: Duration) -> Instant {
    from.checked_add(wait.min(LONGEST_WAIT))
        .or_else(|| from.checked_add(Duration::from_secs(3600)))
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_waits_do_not_overflow() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(later(now, Duration::MAX), now + LONGEST_WAIT);
        assert_eq!(
            later(now, Duration::from_secs(u64::MAX)),
            now + LONGEST_WAIT
        );
    }
}
