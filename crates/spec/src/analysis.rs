//! `update.canary_weight` and `update.analysis`: how much of a route's traffic the canaries take,
//! and the thresholds their measurements are judged by. Thresholds are written as people write
//! them (`>= 99%`, `< 500ms`) and kept as numbers with their comparison.

use serde_saphyr::Spanned;

use crate::limits::{MAX_ANALYSIS_INTERVAL_MS, MAX_LOG_PATTERN_BYTES, MIN_ANALYSIS_INTERVAL_MS};
use crate::model::{CanaryAnalysis, LogErrorLimit, Threshold};
use crate::parse::Checker;
use crate::raw::{RawAnalysis, RawNumberText, RawUpdate};
use crate::units::parse_duration_ms;

/// Basis points in 100%.
const FULL_BP: f64 = 10_000.0;

impl Checker<'_> {
    /// `canary_weight:` a share from 0.01% to 100%, for a job with canaries.
    pub(crate) fn canary_weight(
        &mut self,
        path: &str,
        update: &RawUpdate,
        canary: u32,
        routed: bool,
    ) -> Option<u32> {
        let raw = update.canary_weight.as_ref()?;
        let path = format!("{path}.canary_weight");
        let Some(weight) = percent_bp(&raw.value).filter(|bp| (1..=10_000).contains(bp)) else {
            self.error(
                &raw.referenced,
                path,
                "expected a share of requests from 0.01% to 100%, such as 10%",
            );
            return None;
        };
        if canary == 0 {
            self.error(
                &raw.referenced,
                path,
                "canary_weight needs canaries: set update.canary to 1 or more",
            );
            return None;
        }
        if !routed {
            self.error(
                &raw.referenced,
                path,
                "canary_weight shares a route's requests: give the job a route",
            );
            return None;
        }
        Some(weight)
    }

    /// `analysis:` its thresholds, for a job with canaries.
    pub(crate) fn analysis(
        &mut self,
        path: &str,
        update: &RawUpdate,
        canary: u32,
        routed: bool,
    ) -> Option<CanaryAnalysis> {
        let raw = update.analysis.as_ref()?;
        let path = format!("{path}.analysis");
        if canary == 0 {
            self.error(
                &raw.referenced,
                path.clone(),
                "analysis judges canaries: set update.canary to 1 or more",
            );
        }
        let analysis = &raw.value;
        let interval_ms = self.duration(
            &path,
            "interval",
            analysis.interval.as_ref(),
            CanaryAnalysis::DEFAULT_INTERVAL_MS,
            MIN_ANALYSIS_INTERVAL_MS..=MAX_ANALYSIS_INTERVAL_MS,
        );
        let checks = analysis
            .checks
            .as_ref()
            .and_then(|raw| self.count(raw, format!("{path}.checks")))
            .unwrap_or(CanaryAnalysis::DEFAULT_CHECKS);
        let failure_limit = analysis
            .failure_limit
            .as_ref()
            .and_then(|raw| self.count(raw, format!("{path}.failure_limit")))
            .unwrap_or(CanaryAnalysis::DEFAULT_FAILURE_LIMIT);
        let min_requests = analysis
            .min_requests
            .as_ref()
            .and_then(|raw| self.count(raw, format!("{path}.min_requests")))
            .map_or(CanaryAnalysis::DEFAULT_MIN_REQUESTS, u64::from);
        let success_rate = analysis
            .success_rate
            .as_ref()
            .and_then(|raw| self.success_rate(&path, raw));
        let latency_p99 = analysis
            .latency_p99
            .as_ref()
            .and_then(|raw| self.latency(&path, raw));
        let log_errors = self.log_errors(&path, analysis);
        let relative_to_stable = analysis.relative_to_stable.unwrap_or(false);
        if success_rate.is_none()
            && latency_p99.is_none()
            && log_errors.is_none()
            && !relative_to_stable
        {
            self.error(
                &raw.referenced,
                path,
                "expected at least one of success_rate, latency_p99, relative_to_stable or \
                 log_errors to judge the canaries by",
            );
            return None;
        }
        let measures_requests =
            success_rate.is_some() || latency_p99.is_some() || relative_to_stable;
        if measures_requests && !routed {
            self.error(
                &raw.referenced,
                path,
                "success_rate, latency_p99 and relative_to_stable measure the requests of a \
                 route: give the job a route, or judge it by log_errors only",
            );
            return None;
        }
        Some(CanaryAnalysis {
            interval_ms,
            checks,
            failure_limit,
            min_requests,
            success_rate,
            latency_p99,
            relative_to_stable,
            log_errors,
        })
    }

    /// `success_rate: ">= 99%"` (or `"> 99.5%"`, or `99%` meaning at least).
    fn success_rate(&mut self, path: &str, raw: &Spanned<RawNumberText>) -> Option<Threshold> {
        let parsed = match &raw.value {
            RawNumberText::Number(number) => Some((true, *number)),
            RawNumberText::Text(text) => {
                let (inclusive, rest) = lower_bound(text.trim());
                rest.strip_suffix('%')
                    .and_then(|number| number.trim().parse::<f64>().ok())
                    .map(|number| (inclusive, number))
            }
        };
        match parsed.filter(|(_, number)| (0.0..=100.0).contains(number)) {
            Some((inclusive, number)) => Some(Threshold {
                value: (number * 100.0).round() as u64,
                inclusive,
            }),
            None => {
                self.error(
                    &raw.referenced,
                    format!("{path}.success_rate"),
                    "expected a lowest success rate such as \">= 99%\" or \"> 99.5%\"",
                );
                None
            }
        }
    }

    /// `latency_p99: "< 500ms"` (or `"<= 1s"`, or `500ms` meaning at most).
    fn latency(&mut self, path: &str, raw: &Spanned<RawNumberText>) -> Option<Threshold> {
        let parsed = match &raw.value {
            RawNumberText::Number(seconds) => {
                crate::units::seconds_to_ms(*seconds).map(|millis| (true, millis))
            }
            RawNumberText::Text(text) => {
                let (inclusive, rest) = upper_bound(text.trim());
                parse_duration_ms(rest).map(|millis| (inclusive, millis))
            }
        };
        match parsed.filter(|(_, millis)| (1..=MAX_ANALYSIS_INTERVAL_MS).contains(millis)) {
            Some((inclusive, value)) => Some(Threshold { value, inclusive }),
            None => {
                self.error(
                    &raw.referenced,
                    format!("{path}.latency_p99"),
                    "expected a highest 99th percentile latency such as \"< 500ms\" or \"<= 2s\"",
                );
                None
            }
        }
    }

    fn log_errors(&mut self, path: &str, analysis: &RawAnalysis) -> Option<LogErrorLimit> {
        let raw = analysis.log_errors.as_ref()?;
        let path = format!("{path}.log_errors");
        let pattern = &raw.value.pattern;
        let max_per_minute = raw
            .value
            .max_per_minute
            .as_ref()
            .and_then(|raw| self.count(raw, format!("{path}.max_per_minute")))
            .unwrap_or(0);
        if pattern.value.is_empty() || pattern.value.len() > MAX_LOG_PATTERN_BYTES {
            self.error(
                &pattern.referenced,
                format!("{path}.pattern"),
                format!(
                    "expected a regular expression of 1 to {MAX_LOG_PATTERN_BYTES} bytes, such \
                     as \"ERROR|Exception\""
                ),
            );
            return None;
        }
        if let Err(error) = regex::Regex::new(&pattern.value) {
            let problem = error.to_string();
            let last = problem.lines().last().unwrap_or("invalid").trim();
            self.error(
                &pattern.referenced,
                format!("{path}.pattern"),
                format!("expected a regular expression: {last}"),
            );
            return None;
        }
        Some(LogErrorLimit {
            pattern: pattern.value.clone(),
            max_per_minute,
        })
    }
}

/// `10%`, `10` or `0.5%` in basis points.
fn percent_bp(raw: &RawNumberText) -> Option<u32> {
    let number = match raw {
        RawNumberText::Number(number) => *number,
        RawNumberText::Text(text) => {
            let text = text.trim();
            text.strip_suffix('%')
                .unwrap_or(text)
                .trim()
                .parse::<f64>()
                .ok()?
        }
    };
    let bp = (number * FULL_BP / 100.0).round();
    (bp.is_finite() && (0.0..=FULL_BP).contains(&bp)).then_some(bp as u32)
}

/// `>= X` and `X`: at least X; `> X`: above X.
fn lower_bound(text: &str) -> (bool, &str) {
    if let Some(rest) = text.strip_prefix(">=") {
        (true, rest.trim())
    } else if let Some(rest) = text.strip_prefix('>') {
        (false, rest.trim())
    } else {
        (true, text)
    }
}

/// `<= X` and `X`: at most X; `< X`: below X.
fn upper_bound(text: &str) -> (bool, &str) {
    if let Some(rest) = text.strip_prefix("<=") {
        (true, rest.trim())
    } else if let Some(rest) = text.strip_prefix('<') {
        (false, rest.trim())
    } else {
        (true, text)
    }
}

impl Threshold {
    /// Whether `measured` is at least this bound (a success rate).
    pub fn admits_at_least(&self, measured: u64) -> bool {
        if self.inclusive {
            measured >= self.value
        } else {
            measured > self.value
        }
    }

    /// Whether `measured` is at most this bound (a latency).
    pub fn admits_at_most(&self, measured: u64) -> bool {
        if self.inclusive {
            measured <= self.value
        } else {
            measured < self.value
        }
    }

    /// `>= 99%`, `> 99.5%`: a success rate bound as written.
    pub fn rate_text(&self) -> String {
        let op = if self.inclusive { ">=" } else { ">" };
        format!("{op} {}", percent_text(self.value))
    }

    /// `< 500ms`, `<= 2s`: a latency bound as written.
    pub fn latency_text(&self) -> String {
        let op = if self.inclusive { "<=" } else { "<" };
        format!("{op} {}", crate::units::format_ms(self.value))
    }
}

/// Basis points as a percentage with no more decimals than needed: `99%`, `71.3%`, `99.95%`.
pub fn percent_text(bp: u64) -> String {
    let whole = bp / 100;
    match bp % 100 {
        0 => format!("{whole}%"),
        hundredths if hundredths.is_multiple_of(10) => format!("{whole}.{}%", hundredths / 10),
        hundredths => format!("{whole}.{hundredths:02}%"),
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_service;

    fn job_with(update: &str) -> String {
        format!(
            "service: shop\njobs:\n  - name: api\n    image: api:1\n    hosts: [h1]\n    \
             port: 8080\n    route: api\n    instances: 4\n    update:\n{update}"
        )
    }

    fn errors(update: &str) -> String {
        match parse_service("shop.yml", &job_with(update)) {
            Ok(_) => String::new(),
            Err(errors) => errors.to_string(),
        }
    }

    #[test]
    fn the_issue_example_reads_as_written() {
        let source = job_with(
            "      canary: 1\n      canary_weight: 10%\n      analysis:\n        interval: 30s\n        \
             checks: 5\n        failure_limit: 1\n        min_requests: 20\n        \
             success_rate: \">= 99%\"\n        latency_p99: \"< 500ms\"\n        \
             relative_to_stable: true\n        log_errors: { pattern: \"ERROR|Exception\", \
             max_per_minute: 5 }\n",
        );
        let spec = parse_service("shop.yml", &source).unwrap();
        let update = &spec.jobs[0].update;
        assert_eq!(update.canary_weight_bp, Some(1000));
        let analysis = update.analysis.as_ref().unwrap();
        assert_eq!(
            (
                analysis.interval_ms,
                analysis.checks,
                analysis.failure_limit
            ),
            (30_000, 5, 1)
        );
        assert_eq!(analysis.min_requests, 20);
        let rate = analysis.success_rate.unwrap();
        assert_eq!((rate.value, rate.inclusive), (9900, true));
        assert_eq!(rate.rate_text(), ">= 99%");
        let latency = analysis.latency_p99.unwrap();
        assert_eq!((latency.value, latency.inclusive), (500, false));
        assert!(latency.admits_at_most(499) && !latency.admits_at_most(500));
        assert!(analysis.relative_to_stable);
        let log = analysis.log_errors.as_ref().unwrap();
        assert_eq!(
            (log.pattern.as_str(), log.max_per_minute),
            ("ERROR|Exception", 5)
        );
    }

    #[test]
    fn bad_analysis_is_refused_where_it_is_written() {
        let report = errors(
            "      canary: 1\n      canary_weight: 120%\n      analysis:\n        \
             success_rate: \"< 99%\"\n        latency_p99: fast\n        checks: 0\n        \
             log_errors: { pattern: \"ERROR(\" }\n",
        );
        assert!(report.contains("shop.yml:11:22"), "{report}");
        assert!(
            report.contains("jobs[0].update.canary_weight: expected a share of requests"),
            "{report}"
        );
        assert!(
            report.contains("jobs[0].update.analysis.success_rate: expected a lowest success rate"),
            "{report}"
        );
        assert!(
            report.contains("analysis.latency_p99: expected a highest"),
            "{report}"
        );
        assert!(
            report.contains("analysis.checks: expected a number from 1"),
            "{report}"
        );
        assert!(
            report.contains("analysis.log_errors.pattern: expected a regular expression"),
            "{report}"
        );
    }

    #[test]
    fn weight_and_analysis_need_canaries_and_something_to_judge() {
        let report = errors("      canary_weight: 10%\n      analysis: { interval: 10s }\n");
        assert!(report.contains("canary_weight needs canaries"), "{report}");
        assert!(report.contains("analysis judges canaries"), "{report}");
        assert!(
            report.contains("expected at least one of success_rate"),
            "{report}"
        );
        let report =
            errors("      canary: 1\n      analysis: { interval: 1s, success_rate: 99% }\n");
        assert!(
            report.contains("analysis.interval: expected a duration from 2s"),
            "{report}"
        );
    }

    #[test]
    fn percentages_read_as_people_write_them() {
        assert_eq!(super::percent_text(9900), "99%");
        assert_eq!(super::percent_text(7130), "71.3%");
        assert_eq!(super::percent_text(9995), "99.95%");
    }
}
