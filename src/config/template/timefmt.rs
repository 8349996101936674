//! Go's `time.Format` layouts (`2006-01-02T15:04:05Z07:00`), for
//! consul-template's `timestamp`. Times are UTC: a container has no other
//! zone unless one is installed, and UTC is what logs and files compare.
//!
//! Written by hand: the crates that format time (chrono, time) use strftime
//! patterns, not Go's reference-time layouts, and would add more code than
//! this small table.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `time.RFC3339`, `timestamp`'s default layout.
pub(super) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// A UTC time broken into its calendar parts.
struct Civil {
    year: i64,
    month: usize,
    day: i64,
    yday: i64,
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: u32,
}

impl Civil {
    /// Howard Hinnant's `civil_from_days`, for the proleptic Gregorian calendar.
    fn from_unix(seconds: i64, nanos: u32) -> Civil {
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let before: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = before[month as usize - 1] + day + i64::from(leap && month > 2);
        Civil {
            year,
            month: month as usize,
            day,
            yday,
            weekday: (days + 4).rem_euclid(7) as usize,
            hour: in_day / 3600,
            minute: in_day % 3600 / 60,
            second: in_day % 60,
            nanos,
        }
    }
}

/// Formats the UTC time `seconds`.`nanos` after the Unix epoch with a Go
/// layout.
pub(super) fn format(layout: &str, seconds: i64, nanos: u32) -> String {
    let t = Civil::from_unix(seconds, nanos);
    let mut out = String::new();
    let mut rest = layout;
    while let Some(c) = rest.chars().next() {
        let (text, used) = chunk(rest, &t).unwrap_or_else(|| (c.to_string(), c.len_utf8()));
        out.push_str(&text);
        rest = &rest[used..];
    }
    out
}

/// The reference-time element `rest` starts with, formatted, and how many
/// bytes of the layout it took.
fn chunk(rest: &str, t: &Civil) -> Option<(String, usize)> {
    let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
    let table: [(&str, String); 28] = [
        ("January", MONTHS[t.month - 1].to_string()),
        ("Jan", MONTHS[t.month - 1][..3].to_string()),
        ("Monday", DAYS[t.weekday].to_string()),
        ("Mon", DAYS[t.weekday][..3].to_string()),
        ("MST", "UTC".to_string()),
        ("2006", format!("{:04}", t.year)),
        ("002", format!("{:03}", t.yday)),
        ("01", format!("{:02}", t.month)),
        ("02", format!("{:02}", t.day)),
        ("03", format!("{hour12:02}")),
        ("04", format!("{:02}", t.minute)),
        ("05", format!("{:02}", t.second)),
        ("06", format!("{:02}", t.year.rem_euclid(100))),
        ("15", format!("{:02}", t.hour)),
        ("_2", format!("{:>2}", t.day)),
        ("1", t.month.to_string()),
        ("2", t.day.to_string()),
        ("3", hour12.to_string()),
        ("4", t.minute.to_string()),
        ("5", t.second.to_string()),
        ("PM", if t.hour >= 12 { "PM" } else { "AM" }.to_string()),
        ("pm", if t.hour >= 12 { "pm" } else { "am" }.to_string()),
        ("Z07:00", "Z".to_string()),
        ("Z0700", "Z".to_string()),
        ("Z07", "Z".to_string()),
        ("-07:00", "+00:00".to_string()),
        ("-0700", "+0000".to_string()),
        ("-07", "+00".to_string()),
    ];
    if let Some((name, text)) = table.iter().find(|(name, _)| rest.starts_with(name)) {
        return Some((text.clone(), name.len()));
    }
    fraction(rest, t.nanos)
}

/// `.000` (fixed digits) or `.999` (trailing zeros dropped) after seconds.
fn fraction(rest: &str, nanos: u32) -> Option<(String, usize)> {
    let mut chars = rest.chars();
    let separator = chars.next().filter(|c| matches!(c, '.' | ','))?;
    let digit = chars.next().filter(|c| matches!(c, '0' | '9'))?;
    let count = 1 + rest[2..].chars().take_while(|c| *c == digit).count();
    if rest[1 + count..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{nanos:09}");
    let mut shown = digits[..count.min(9)].to_string();
    if digit == '9' {
        shown = shown.trim_end_matches('0').to_string();
        if shown.is_empty() {
            return Some((String::new(), 1 + count));
        }
    }
    Some((format!("{separator}{shown}"), 1 + count))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2009-11-10T23:04:05.012Z, a Tuesday (Go's playground time, plus a bit).
    const T: i64 = 1_257_894_245;

    #[test]
    fn go_layouts_format_like_go() {
        assert_eq!(format(RFC3339, T, 0), "2009-11-10T23:04:05Z");
        assert_eq!(format("2006-01-02", T, 0), "2009-11-10");
        assert_eq!(
            format("Mon Jan _2 15:04:05 MST 2006", T, 0),
            "Tue Nov 10 23:04:05 UTC 2009"
        );
        assert_eq!(
            format("Monday, 2 January 06 3:4:5 PM -0700", T, 0),
            "Tuesday, 10 November 09 11:4:5 PM +0000"
        );
        assert_eq!(format("15:04:05.000", T, 12_000_000), "23:04:05.012");
        assert_eq!(format("15:04:05.999", T, 12_000_000), "23:04:05.012");
        assert_eq!(format("05.999", T, 0), "05");
        assert_eq!(format("002 -07:00 -07", T, 0), "314 +00:00 +00");
        assert_eq!(format("literal text", 0, 0), "literal text");
        assert_eq!(format(RFC3339, 0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(format("2006-01-02", 951_782_400, 0), "2000-02-29");
    }
}
