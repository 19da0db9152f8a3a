//! Judging one interval of a canary phase: what the canaries (and the stable version) answered
//! through the routers, and what their logs said, against `update.analysis`. No IO: the
//! runner (`analysis`) gathers the numbers, this says what they mean, in words.

use cj_api::routes::{LATENCY_BUCKETS_MS, VersionCounts};
use cj_api::{CanaryMeasurement, Verdict, latency_text, seconds_text};
use cj_spec::{CanaryAnalysis, percent_text};

/// What one interval saw.
#[derive(Debug, Default)]
pub(crate) struct IntervalCounts {
    pub canary: VersionCounts,
    pub stable: VersionCounts,
    /// Lines of the canaries' logs matching `log_errors.pattern`, when the analysis has it.
    pub log_errors: Option<u64>,
}

/// Requests a version answered or failed to answer.
fn requests(counts: &VersionCounts) -> u64 {
    counts.answered + counts.connection_failures
}

/// The share of requests answered without a 5xx, in basis points (rounded down, so 98.99%
/// never shows as 99%).
fn success_rate_bp(counts: &VersionCounts) -> Option<u64> {
    let total = requests(counts);
    let good = counts.answered.saturating_sub(counts.status_5xx);
    (total > 0).then(|| good * 10_000 / total)
}

/// The 99th percentile of the time to the answer's headers, in milliseconds, interpolated
/// within its bucket as Prometheus' `histogram_quantile` does; above the last bound it is
/// taken as the last bound plus one.
pub(crate) fn p99_ms(counts: &VersionCounts) -> Option<u64> {
    let total: u64 = counts.latency_buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let wanted = total as f64 * 0.99;
    let mut seen = 0u64;
    for (index, count) in counts.latency_buckets.iter().enumerate() {
        if *count > 0 && (seen + count) as f64 >= wanted {
            let Some(upper) = LATENCY_BUCKETS_MS.get(index) else {
                break;
            };
            let lower = index
                .checked_sub(1)
                .map_or(0, |below| LATENCY_BUCKETS_MS[below]);
            let within = ((wanted - seen as f64) / *count as f64).clamp(0.0, 1.0);
            return Some((lower as f64 + (upper - lower) as f64 * within).ceil() as u64);
        }
        seen += count;
    }
    Some(LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 1] + 1)
}

/// Judges one interval of `interval_ms` that ended at `at`.
pub(crate) fn judge(
    analysis: &CanaryAnalysis,
    interval_ms: u64,
    at: String,
    counts: &IntervalCounts,
) -> CanaryMeasurement {
    let canary_requests = requests(&counts.canary);
    let stable_requests = requests(&counts.stable);
    let rate = success_rate_bp(&counts.canary);
    let p99 = p99_ms(&counts.canary);
    let stable_rate = success_rate_bp(&counts.stable);
    let stable_p99 = p99_ms(&counts.stable);
    let over = format!(
        "over {}, {canary_requests} requests",
        seconds_text(interval_ms)
    );
    let mut failures = Vec::new();

    if let (Some(threshold), Some(rate)) = (analysis.success_rate, rate)
        && !threshold.admits_at_least(rate)
    {
        failures.push(format!(
            "canary success rate {} < {} {over}",
            percent_text(rate),
            percent_text(threshold.value)
        ));
    }
    if let (Some(threshold), Some(p99)) = (analysis.latency_p99, p99)
        && !threshold.admits_at_most(p99)
    {
        failures.push(format!(
            "canary p99 latency {}, expected {} {over}",
            latency_text(p99),
            threshold.latency_text()
        ));
    }
    let stable_is_measured = stable_requests >= analysis.min_requests.max(1);
    if analysis.relative_to_stable && stable_is_measured {
        if let (Some(rate), Some(stable)) = (rate, stable_rate)
            && rate + u64::from(CanaryAnalysis::STABLE_RATE_MARGIN_BP) < stable
        {
            failures.push(format!(
                "canary success rate {} is more than {} below the stable version's {} {over}",
                percent_text(rate),
                percent_text(u64::from(CanaryAnalysis::STABLE_RATE_MARGIN_BP)),
                percent_text(stable)
            ));
        }
        if let (Some(p99), Some(stable)) = (p99, stable_p99)
            && p99 as f64 > stable as f64 * CanaryAnalysis::STABLE_LATENCY_FACTOR
        {
            failures.push(format!(
                "canary p99 latency {} is more than {}x the stable version's {} {over}",
                latency_text(p99),
                CanaryAnalysis::STABLE_LATENCY_FACTOR,
                latency_text(stable)
            ));
        }
    }
    if let (Some(limit), Some(errors)) = (&analysis.log_errors, counts.log_errors) {
        // Per minute on average over the interval, compared without rounding.
        if errors * 60_000 > u64::from(limit.max_per_minute) * interval_ms {
            failures.push(format!(
                "canary logged {errors} lines matching \"{}\" in {}, more than {}/min",
                limit.pattern,
                seconds_text(interval_ms),
                limit.max_per_minute
            ));
        }
    }

    let measures_requests = analysis.success_rate.is_some()
        || analysis.latency_p99.is_some()
        || analysis.relative_to_stable;
    let (verdict, reasons) = if !failures.is_empty() {
        (Verdict::Fail, failures)
    } else if measures_requests && canary_requests < analysis.min_requests {
        let reason = format!(
            "{canary_requests} canary requests in {}, fewer than min_requests {}",
            seconds_text(interval_ms),
            analysis.min_requests
        );
        (Verdict::Inconclusive, vec![reason])
    } else {
        (Verdict::Pass, Vec::new())
    };
    CanaryMeasurement {
        at,
        interval_ms,
        requests: canary_requests,
        success_rate_bp: rate,
        p99_ms: p99,
        stable_requests,
        stable_success_rate_bp: stable_rate,
        stable_p99_ms: stable_p99,
        log_errors: counts.log_errors,
        verdict,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use cj_spec::{LogErrorLimit, Threshold};

    use super::*;

    fn analysis() -> CanaryAnalysis {
        CanaryAnalysis {
            interval_ms: 30_000,
            checks: 5,
            failure_limit: 1,
            min_requests: 20,
            success_rate: Some(Threshold {
                value: 9900,
                inclusive: true,
            }),
            latency_p99: Some(Threshold {
                value: 500,
                inclusive: false,
            }),
            relative_to_stable: false,
            log_errors: None,
        }
    }

    /// `answered` answers in the bucket up to `bucket_ms`, `errors` of them 5xx.
    fn counts(answered: u64, errors: u64, bucket_ms: u64) -> VersionCounts {
        let mut buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        let index = LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| *bound >= bucket_ms)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        buckets[index] = answered;
        VersionCounts {
            version: 2,
            answered,
            status_5xx: errors,
            connection_failures: 0,
            latency_buckets: buckets,
            latency_sum_us: 0,
        }
    }

    fn judged(canary: VersionCounts, stable: VersionCounts) -> CanaryMeasurement {
        let counts = IntervalCounts {
            canary,
            stable,
            log_errors: None,
        };
        judge(&analysis(), 30_000, "now".into(), &counts)
    }

    #[test]
    fn a_canary_failing_a_third_of_its_requests_fails_in_the_issues_words() {
        let measurement = judged(counts(412, 118, 10), counts(4000, 0, 10));
        assert_eq!(measurement.verdict, Verdict::Fail);
        assert_eq!(
            measurement.reasons,
            ["canary success rate 71.35% < 99% over 30s, 412 requests"]
        );
    }

    #[test]
    fn few_requests_are_inconclusive_and_enough_good_ones_pass() {
        let measurement = judged(counts(12, 0, 10), counts(500, 0, 10));
        assert_eq!(measurement.verdict, Verdict::Inconclusive);
        assert_eq!(
            measurement.reasons,
            ["12 canary requests in 30s, fewer than min_requests 20"]
        );
        let measurement = judged(counts(400, 2, 10), counts(500, 0, 10));
        assert_eq!(measurement.verdict, Verdict::Pass, "{measurement:?}");
        assert_eq!(measurement.success_rate_bp, Some(9950));
    }

    #[test]
    fn slow_canaries_fail_on_the_interpolated_p99() {
        // Everything in the 250-500ms bucket: the p99 is near its top, 498ms, under 500ms.
        let measurement = judged(counts(100, 0, 500), VersionCounts::default());
        assert_eq!(measurement.p99_ms, Some(498));
        assert_eq!(measurement.verdict, Verdict::Pass);
        let measurement = judged(counts(100, 0, 1000), VersionCounts::default());
        assert_eq!(measurement.verdict, Verdict::Fail);
        assert_eq!(
            measurement.reasons,
            ["canary p99 latency 995ms, expected < 500ms over 30s, 100 requests"]
        );
    }

    #[test]
    fn relative_to_stable_and_log_errors_judge_too() {
        let mut policy = analysis();
        policy.success_rate = None;
        policy.latency_p99 = None;
        policy.relative_to_stable = true;
        policy.log_errors = Some(LogErrorLimit {
            pattern: "ERROR".into(),
            max_per_minute: 5,
        });
        let counts = IntervalCounts {
            canary: counts(100, 3, 100),
            stable: counts(1000, 0, 10),
            log_errors: Some(0),
        };
        let measurement = judge(&policy, 30_000, "now".into(), &counts);
        assert_eq!(measurement.verdict, Verdict::Fail);
        assert_eq!(measurement.reasons.len(), 2, "{:?}", measurement.reasons);
        assert!(measurement.reasons[0].contains("more than 1% below the stable version's 100%"));
        assert!(measurement.reasons[1].contains("more than 1.5x the stable version's"));
        let mut quiet = counts;
        quiet.canary = self::counts(100, 0, 10);
        // 2 in 30 s is 4 a minute: within 5.
        quiet.log_errors = Some(2);
        assert_eq!(
            judge(&policy, 30_000, "now".into(), &quiet).verdict,
            Verdict::Pass
        );
        quiet.log_errors = Some(3);
        quiet.canary = self::counts(100, 0, 10);
        let failed = judge(&policy, 30_000, "now".into(), &quiet);
        assert_eq!(
            failed.reasons,
            ["canary logged 3 lines matching \"ERROR\" in 30s, more than 5/min"]
        );
    }
}
