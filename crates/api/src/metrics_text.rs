//! Prometheus' text exposition format, as the server's `/metrics` and every router's
//! `DOMAIN/metrics` write it.

/// A label value as the text format wants it: backslash, double quote and newline escaped.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
