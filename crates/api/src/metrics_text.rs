//! Prometheus' text exposition format, as the server's `/metrics` and every router's
//! `DOMAIN/metrics` write it.

/// A label value as the text format wants it: backslash, double quote and newline escaped.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The per-version series of what routers counted, for `rows` of (labels, counts): the labels
/// already written as `name="value",...` (escaped), one row per series. Every router's
/// `DOMAIN/metrics` writes them for itself, and the server's `/metrics` for every router's last
/// report, with a `router` label.
pub fn version_counts(rows: &[(String, &crate::routes::VersionCounts)]) -> String {
    use crate::routes::{LATENCY_BUCKETS_MS, VersionCounts};
    use std::fmt::Write as _;

    type Counter = (&'static str, &'static str, fn(&VersionCounts) -> u64);
    let series: [Counter; 3] = [
        (
            "coding_job_router_version_requests_total",
            "Requests a backend of this version of the job answered.",
            |counts| counts.answered,
        ),
        (
            "coding_job_router_version_responses_5xx_total",
            "Answers with a 5xx status from a backend of this version.",
            |counts| counts.status_5xx,
        ),
        (
            "coding_job_router_version_connection_failures_total",
            "Requests sent to a backend of this version that failed before an answer.",
            |counts| counts.connection_failures,
        ),
    ];
    let mut text = String::new();
    for (name, help, value) in series {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, counts) in rows {
            let _ = writeln!(text, "{name}{{{labels}}} {}", value(counts));
        }
    }
    let name = "coding_job_router_version_response_seconds";
    let _ = writeln!(
        text,
        "# HELP {name} Time from sending a request to a backend of this version to its answer's headers.\n# TYPE {name} histogram"
    );
    for (labels, counts) in rows {
        let mut cumulative = 0;
        for (index, count) in counts.latency_buckets.iter().enumerate() {
            cumulative += count;
            let bound = match LATENCY_BUCKETS_MS.get(index) {
                Some(ms) => format!("{}", *ms as f64 / 1000.0),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                text,
                "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let seconds = counts.latency_sum_us as f64 / 1_000_000.0;
        let _ = writeln!(text, "{name}_sum{{{labels}}} {seconds}");
        let _ = writeln!(text, "{name}_count{{{labels}}} {cumulative}");
    }
    text
}
