//! Durations as ContainerPilot users write them.
//!
//! Go's `time.ParseDuration` syntax (`"1500ms"`, `"1m30s"`, `"-2h"`, units
//! `ns us µs μs ms s m h`), plus ContainerPilot's `GetTimeout` rule that a bare
//! integer string (`"10"`) means seconds. Hand-written rather than taken from
//! `humantime` because humantime accepts a different syntax (`"1 hour"`,
//! spaces between parts) and rejects Go's fractional parts (`"1.5h"`); the
//! error messages also follow Go's so users recognise them. This module owns
//! only the syntax; which fields take durations is decided by the front ends.

use std::time::Duration;

/// Why a duration string was rejected, in Go's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("duration {0:?} must not be negative")]
    Negative(String),
}

/// A signed duration: Go durations may be negative (`"-1s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignedDuration {
    pub negative: bool,
    pub magnitude: Duration,
}

/// The largest duration Go can represent (about 292 years); larger is an error.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses Go's `time.ParseDuration` syntax exactly.
pub(crate) fn parse_go(input: &str) -> Result<SignedDuration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(SignedDuration {
            negative,
            magnitude: Duration::ZERO,
        });
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (number, after_number) = split_number(rest).ok_or_else(invalid)?;
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let unit = &after_number[..unit_len];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit_nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?;
        total = total
            .checked_add(number.nanos(unit_nanos).ok_or_else(invalid)?)
            .filter(|total| *total <= MAX_NANOS)
            .ok_or_else(invalid)?;
        rest = &after_number[unit_len..];
    }
    Ok(SignedDuration {
        negative,
        magnitude: Duration::from_nanos(total as u64),
    })
}

/// Parses a duration string the way ContainerPilot's `GetTimeout` does: a
/// bare integer is seconds, anything else is Go syntax. Negative values are
/// rejected.
pub(crate) fn parse_timeout(input: &str) -> Result<Duration, DurationError> {
    if let Some(seconds) = parse_go_int(input) {
        if seconds < 0 {
            return Err(DurationError::Negative(input.to_string()));
        }
        return Ok(Duration::from_secs(seconds as u64));
    }
    let parsed = parse_go(input)?;
    if parsed.negative && !parsed.magnitude.is_zero() {
        return Err(DurationError::Negative(input.to_string()));
    }
    Ok(parsed.magnitude)
}

/// Go's `strconv.Atoi`: optional sign, then decimal digits only.
fn parse_go_int(input: &str) -> Option<i64> {
    let digits = input.strip_prefix(['+', '-']).unwrap_or(input);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    input.parse().ok()
}

/// A decimal number with an optional fraction, as `"1"`, `"1.5"`, `".5"`, `"1."`.
struct DecimalNumber<'a> {
    whole: &'a str,
    fraction: &'a str,
}

impl DecimalNumber<'_> {
    /// The number times `unit` nanoseconds, truncated like Go; `None` on overflow.
    fn nanos(&self, unit: u128) -> Option<u128> {
        let whole: u128 = if self.whole.is_empty() {
            0
        } else {
            self.whole.parse().ok()?
        };
        let mut nanos = whole.checked_mul(unit)?;
        let mut scale = unit;
        for digit in self.fraction.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos = nanos.checked_add(u128::from(digit - b'0') * scale)?;
        }
        Some(nanos)
    }
}

fn split_number(text: &str) -> Option<(DecimalNumber<'_>, &str)> {
    let whole_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let whole = &text[..whole_len];
    let rest = &text[whole_len..];
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            (&after_dot[..len], &after_dot[len..])
        }
        None => ("", rest),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    Some((DecimalNumber { whole, fraction }, rest))
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(s: &str) -> Result<Duration, DurationError> {
        parse_go(s).map(|d| d.magnitude)
    }

    #[test]
    fn go_syntax() {
        assert_eq!(go("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(go("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(go(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(go("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(go("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(go("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(go("3ns"), Ok(Duration::from_nanos(3)));
        assert_eq!(go("0"), Ok(Duration::ZERO));
        assert_eq!(go("+5s"), Ok(Duration::from_secs(5)));
        assert!(parse_go("-5s").unwrap().negative);
    }

    #[test]
    fn go_errors_read_like_go() {
        assert_eq!(
            go("nope").unwrap_err().to_string(),
            "time: invalid duration \"nope\""
        );
        assert_eq!(
            go("10").unwrap_err().to_string(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            go("10x").unwrap_err().to_string(),
            "time: unknown unit \"x\" in duration \"10x\""
        );
        for bad in ["", "-", ".", "s", "1s.", "9999999999999h"] {
            assert!(go(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn timeouts_take_bare_seconds() {
        assert_eq!(parse_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(parse_timeout("100ms"), Ok(Duration::from_millis(100)));
        assert!(matches!(
            parse_timeout("-1"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_timeout("-1s"),
            Err(DurationError::Negative(_))
        ));
    }
}
