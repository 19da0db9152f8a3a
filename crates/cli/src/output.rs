//! Terminal output helpers: tables, short ids, relative times, sizes.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{CliError, CliResult};

/// A table without borders, its columns aligned, styled as `--color` says.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    crate::color::style_table(&mut table);
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

/// When an RFC 3339 time is from now, as `kubectl` and `docker` show ages: `just now` (within
/// a few seconds), `3 min ago`, `in 2 h`; `-` when there is none (or it cannot be read). Only
/// tables say it so: `--json` keeps the time as the server wrote it.
pub fn relative(rfc3339: Option<&str>) -> String {
    match parse_time(rfc3339) {
        Some(at) => relative_to(at, OffsetDateTime::now_utc()),
        None => "-".into(),
    }
}

/// How long it has been since an RFC 3339 time (`3 min`: an uptime), or `-`.
pub fn elapsed(rfc3339: Option<&str>) -> String {
    match parse_time(rfc3339) {
        Some(at) => span((OffsetDateTime::now_utc() - at).whole_seconds()),
        None => "-".into(),
    }
}

fn parse_time(rfc3339: Option<&str>) -> Option<OffsetDateTime> {
    rfc3339.and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
}

/// Times this close to now read as `just now`: closer than clocks and round trips agree.
const JUST_NOW_SECONDS: i64 = 5;

/// `at` from `now`: `just now`, `3 min ago` or `in 2 h`.
fn relative_to(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - at).whole_seconds();
    if seconds.abs() < JUST_NOW_SECONDS {
        "just now".into()
    } else if seconds > 0 {
        format!("{} ago", span(seconds))
    } else {
        format!("in {}", span(seconds.saturating_neg()))
    }
}

/// A number of seconds in its largest unit, rounded down: `42 s`, `3 min`, `7 h`, `2 d`.
fn span(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86400),
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
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::{elapsed, relative, relative_to, span};

    #[test]
    fn spans_show_their_largest_unit() {
        for (seconds, expected) in [
            (-5, "0 s"),
            (0, "0 s"),
            (42, "42 s"),
            (59, "59 s"),
            (60, "1 min"),
            (192, "3 min"),
            (3599, "59 min"),
            (8 * 3600 - 60, "7 h"),
            (86399, "23 h"),
            (2 * 86400 + 3 * 3600, "2 d"),
            (400 * 86400, "400 d"),
        ] {
            assert_eq!(span(seconds), expected, "{seconds} s");
        }
    }

    #[test]
    fn times_read_as_ago_or_in_from_now() {
        let now = datetime!(2026-05-01 12:00:00 UTC);
        let check = |offset: Duration, expected: &str| {
            assert_eq!(relative_to(now + offset, now), expected, "{offset}");
        };
        check(Duration::ZERO, "just now");
        check(Duration::seconds(-4), "just now");
        check(Duration::milliseconds(4900), "just now");
        check(Duration::seconds(-5), "5 s ago");
        check(Duration::seconds(-192), "3 min ago");
        check(-Duration::hours(2) - Duration::minutes(59), "2 h ago");
        check(-Duration::days(3), "3 d ago");
        check(Duration::seconds(5), "in 5 s");
        check(Duration::hours(2) + Duration::seconds(30), "in 2 h");
        check(Duration::days(1), "in 1 d");
    }

    #[test]
    fn missing_or_unreadable_times_are_a_dash() {
        assert_eq!(relative(None), "-");
        assert_eq!(relative(Some("yesterday")), "-");
        assert_eq!(elapsed(None), "-");
        let at = |offset: Duration| (OffsetDateTime::now_utc() + offset).format(&Rfc3339).ok();
        // Minutes of slack either side: the clock moves between writing and reading.
        let earlier = at(-Duration::minutes(5) - Duration::seconds(30));
        assert_eq!(relative(earlier.as_deref()), "5 min ago");
        assert_eq!(elapsed(earlier.as_deref()), "5 min");
        let later = at(Duration::hours(2) + Duration::minutes(30));
        assert_eq!(relative(later.as_deref()), "in 2 h");
        assert_eq!(elapsed(later.as_deref()), "0 s");
    }
}
