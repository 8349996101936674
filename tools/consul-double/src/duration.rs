//! Go duration strings (`"15s"`, `"1m30s"`, `"1.5h"`, `"250ms"`), as Consul reads them in
//! `TTL`, `DeregisterCriticalServiceAfter` and `?wait=`.
//!
//! Owns parsing and formatting only. Hand-written rather than taken from `humantime` because
//! Consul accepts exactly Go's `time.ParseDuration` grammar: decimals (`"1.5s"`) are valid
//! there and not in humantime, while humantime accepts words (`"1day"`) that Consul rejects.

use std::time::Duration;

/// Parses Go's duration syntax: an optional sign, then one or more `<decimal><unit>` parts
/// with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`; a bare `"0"` is zero. Negative values
/// return `None` (every Consul field read with it must be positive or zero).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if unsigned.starts_with('-') {
        return None;
    }
    if unsigned == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = unsigned;
    let mut total_nanos = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total_nanos += number * unit_nanos(&rest[..unit_len])?;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_nanos(total_nanos.round() as u64))
}

fn unit_nanos(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

/// Formats a duration the way Go's `Duration.String()` does for the values Consul echoes
/// back (`"15s"`, `"1m0s"`, `"250ms"`), used for the `Interval`/`Timeout`-style fields.
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        return format_sub_second(nanos);
    }
    let total_secs = duration.as_secs();
    let fraction = duration.subsec_nanos();
    let seconds = if fraction == 0 {
        format!("{}s", total_secs % 60)
    } else {
        let text = format!("{}.{:09}", total_secs % 60, fraction);
        format!("{}s", text.trim_end_matches('0'))
    };
    match (total_secs / 3600, (total_secs / 60) % 60) {
        (0, 0) => seconds,
        (0, minutes) => format!("{minutes}m{seconds}"),
        (hours, minutes) => format!("{hours}h{minutes}m{seconds}"),
    }
}

fn format_sub_second(nanos: u128) -> String {
    let (value, unit) = if nanos >= 1_000_000 {
        (nanos as f64 / 1e6, "ms")
    } else if nanos >= 1_000 {
        (nanos as f64 / 1e3, "µs")
    } else {
        (nanos as f64, "ns")
    };
    format!("{value}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_go_grammar() {
        assert_eq!(parse_go_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "15", "s", "1day", "-1s", "1.2.3s", "10 s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(format_go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_go_duration(Duration::from_secs(3725)), "1h2m5s");
    }
}
