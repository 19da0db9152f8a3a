//! Human-written quantities: memory sizes such as `256m` or `1GiB`, durations such as `500ms`;
//! and the same quantities written back for messages.
//!
//! Parsing never saturates: a number too large to be held exactly (above 2^53) is not a
//! quantity at all, so `1e300` or `99999999999999999999t` cannot turn into some huge limit.

/// The largest whole number an `f64` holds exactly; every bound we check is far below it.
const EXACT_F64_LIMIT: f64 = 9_007_199_254_740_992.0;

/// A non-negative finite `value` as a whole number (rounded), if it is held exactly.
fn whole(value: f64) -> Option<u64> {
    let rounded = value.round();
    (rounded.is_finite() && (0.0..EXACT_F64_LIMIT).contains(&rounded)).then_some(rounded as u64)
}

/// Splits `12.5ms` into the number `12.5` and the unit `ms`.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    // Only plain decimals: Rust would also read "inf" or "1e3", which nobody writes as a size.
    if number.is_empty() || number.chars().filter(|c| *c == '.').count() > 1 {
        return None;
    }
    Some((number.parse().ok()?, unit.trim()))
}

/// Bytes in a memory size written as `N`, `Nk`, `Nm`, `Ng`, `Nt` (Docker's units, powers of
/// 1024), optionally followed by `b` or `ib`, case-insensitive. Fractions are rounded down to
/// whole bytes.
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let (number, unit) = number_and_unit(&lower)?;
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    whole((number * multiplier as f64).floor())
}

/// Milliseconds in a duration written as `N` (seconds), `Nms`, `Ns`, `Nm` or `Nh`, or several of
/// those with units one after another, largest first, as Go and Kubernetes write them (`1m30s`,
/// `2h15m`); fractions allowed.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(single) = one_duration_ms(text) {
        return Some(single);
    }
    if text.contains(char::is_whitespace) {
        return None;
    }
    let mut total: u64 = 0;
    let mut last_unit = f64::INFINITY;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let unit_end = rest[number_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |at| number_end + at);
        let (part, after) = rest.split_at(unit_end);
        let (_, unit) = number_and_unit(part)?;
        let per_unit = millis_per_unit(unit).filter(|per| !unit.is_empty() && *per < last_unit)?;
        last_unit = per_unit;
        total = total.checked_add(one_duration_ms(part)?)?;
        rest = after;
    }
    Some(total)
}

/// One `N` with its unit (none: seconds).
fn one_duration_ms(text: &str) -> Option<u64> {
    let (number, unit) = number_and_unit(text)?;
    whole(number * millis_per_unit(unit)?)
}

fn millis_per_unit(unit: &str) -> Option<f64> {
    match unit {
        "ms" => Some(1.0),
        "" | "s" => Some(1_000.0),
        "m" => Some(60_000.0),
        "h" => Some(3_600_000.0),
        _ => None,
    }
}

/// Milliseconds in a number of seconds written as a YAML number.
pub(crate) fn seconds_to_ms(seconds: f64) -> Option<u64> {
    if seconds < 0.0 {
        return None;
    }
    whole(seconds * 1000.0)
}

/// A duration as users write it: `100ms`, `2s`, `10m`, `1h`, `0s`.
pub(crate) fn format_ms(millis: u64) -> String {
    const HOUR: u64 = 3_600_000;
    match millis {
        0 => "0s".to_owned(),
        m if m % HOUR == 0 => format!("{}h", m / HOUR),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

/// A size for people: `512 bytes`, `6 MiB`, `1.8 MiB`, `16 TiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2s"), Some(2000));
        assert_eq!(parse_duration_ms("1.5m"), Some(90_000));
        assert_eq!(parse_duration_ms("3"), Some(3000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms("5d"), None);
        assert_eq!(parse_duration_ms("."), None);
        assert_eq!(parse_duration_ms("1.2.3s"), None);
        assert_eq!(parse_duration_ms("-1s"), None);
    }

    #[test]
    fn durations_of_several_units() {
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("2h15m"), Some(8_100_000));
        assert_eq!(parse_duration_ms("1h0m5s250ms"), Some(3_605_250));
        assert_eq!(parse_duration_ms("1.5m30s"), Some(120_000));
        // Largest first, each unit once, and every part with its unit.
        assert_eq!(parse_duration_ms("30s1m"), None);
        assert_eq!(parse_duration_ms("1m1m"), None);
        assert_eq!(parse_duration_ms("1m30"), None);
        assert_eq!(parse_duration_ms("1m 30s"), None);
        assert_eq!(parse_duration_ms("1x30s"), None);
        assert_eq!(parse_duration_ms("m30s"), None);
    }

    #[test]
    fn huge_durations_are_not_durations() {
        assert_eq!(parse_duration_ms(&format!("{}h", "9".repeat(300))), None);
        assert_eq!(parse_duration_ms("99999999999999999999"), None);
        assert_eq!(seconds_to_ms(1e300), None);
        assert_eq!(seconds_to_ms(f64::NAN), None);
        assert_eq!(seconds_to_ms(f64::INFINITY), None);
        assert_eq!(seconds_to_ms(-1.0), None);
        assert_eq!(seconds_to_ms(1.5), Some(1500));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("256m"), Some(256 << 20));
        assert_eq!(parse_memory("1GiB"), Some(1 << 30));
        assert_eq!(parse_memory("1.5g"), Some(3 << 29));
        assert_eq!(parse_memory("4096"), Some(4096));
        assert_eq!(parse_memory("12zb"), None);
        assert_eq!(parse_memory("m"), None);
        assert_eq!(parse_memory("0"), Some(0));
    }

    #[test]
    fn huge_memory_sizes_are_not_sizes() {
        assert_eq!(parse_memory("99999999999999999999t"), None);
        assert_eq!(parse_memory("8191t"), Some(8191 << 40));
        assert_eq!(parse_memory("9000000t"), None);
    }

    #[test]
    fn quantities_read_back() {
        assert_eq!(format_ms(100), "100ms");
        assert_eq!(format_ms(3_600_000), "1h");
        assert_eq!(format_ms(86_400_000), "24h");
        assert_eq!(format_ms(600_000), "10m");
        assert_eq!(format_ms(1500), "1500ms");
        assert_eq!(format_bytes(6 << 20), "6 MiB");
        assert_eq!(format_bytes(16 << 40), "16 TiB");
        assert_eq!(format_bytes(1_887_437), "1.8 MiB");
        assert_eq!(format_bytes(100), "100 bytes");
    }
}
