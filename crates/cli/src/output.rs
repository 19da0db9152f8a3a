//! Terminal output helpers: tables, short ids, ages.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{CliError, CliResult};

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

/// Prints a table with its columns aligned and no trailing spaces.
pub fn print_table(table: &Table) {
    print!("{}", table_text(table));
}

/// The table as `print_table` prints it: each line without the padding at its ends.
pub fn table_text(table: &Table) -> String {
    table
        .to_string()
        .lines()
        .map(|line| format!("{}\n", line.trim_end().trim_start_matches(' ')))
        .collect()
}

pub fn print_json(value: &impl Serialize) -> CliResult<i32> {
    let text =
        serde_json::to_string_pretty(value).map_err(|error| CliError::failed(error.to_string()))?;
    println!("{text}");
    Ok(0)
}

pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

pub fn dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// "3m12s ago"-style age of an RFC 3339 time, or "-".
pub fn age(rfc3339: Option<&str>) -> String {
    let Some(at) = rfc3339.and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok()) else {
        return "-".into();
    };
    span((OffsetDateTime::now_utc() - at).whole_seconds())
}

/// The time left until an RFC 3339 time ("in 7h59m"-style; "0s" once it has passed), or "-".
pub fn until(rfc3339: Option<&str>) -> String {
    let Some(at) = rfc3339.and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok()) else {
        return "-".into();
    };
    span((at - OffsetDateTime::now_utc()).whole_seconds())
}

/// A number of seconds in its two largest units: `42s`, `3m12s`, `7h59m`, `2d3h`.
fn span(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{}s", seconds / 60, seconds % 60),
        3600..86400 => format!("{}h{}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{}h", seconds / 86400, seconds % 86400 / 3600),
    }
}

/// A size the way `docker stats` shows one: `12.3MiB`, `1.5GiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod bytes_tests {
    use super::bytes;

    #[test]
    fn sizes_read_as_docker_shows_them() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(12 << 20), "12.0MiB");
        assert_eq!(bytes(3 << 29), "1.5GiB");
    }
}

#[cfg(test)]
mod time_tests {
    use time::format_description::well_known::Rfc3339;
    use time::{Duration, OffsetDateTime};

    use super::{age, span, until};

    #[test]
    fn spans_show_their_two_largest_units() {
        assert_eq!(span(-5), "0s");
        assert_eq!(span(42), "42s");
        assert_eq!(span(192), "3m12s");
        assert_eq!(span(8 * 3600 - 60), "7h59m");
        assert_eq!(span(2 * 86400 + 3 * 3600 + 59), "2d3h");
    }

    #[test]
    fn ages_look_back_and_untils_look_ahead() {
        let at = |offset: Duration| (OffsetDateTime::now_utc() + offset).format(&Rfc3339).ok();
        // A few seconds of slack: the clock moves between writing and reading.
        let later = at(Duration::hours(2) + Duration::seconds(30));
        assert!(until(later.as_deref()).starts_with("2h0m"));
        assert_eq!(age(later.as_deref()), "0s");
        let earlier = at(-Duration::minutes(5) - Duration::seconds(3));
        assert!(age(earlier.as_deref()).starts_with("5m"));
        assert_eq!(until(earlier.as_deref()), "0s");
        assert_eq!(until(None), "-");
        assert_eq!(until(Some("yesterday")), "-");
    }
}
