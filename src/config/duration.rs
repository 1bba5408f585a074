//! Duration strings of the configuration: `"100ms"`, `"1s"`, `"1.5s"`, `"1m"`, `"2h"`.
//!
//! Guarantees: the parser never panics, computes in exact integer arithmetic (no float
//! rounding: `"1.1s"` is exactly 1_100_000_000 ns), and rejects a number without a unit,
//! a sign, whitespace, an empty string and anything that is not `<digits>[.<digits>]<unit>`
//! with a message that says what is wrong.

use std::time::Duration;

/// Units accepted, longest suffix first so that "ms" is not read as "m".
const UNITS: [(&str, u128); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Longest accepted run of digits on either side of the decimal point (keeps the integer
/// arithmetic far from overflow; a config has no use for more).
const MAX_DIGITS: usize = 18;

/// Parse a duration string such as `"1s"`, `"100ms"`, `"1m"` or `"1.5s"`.
///
/// Units: `ns`, `us`, `ms`, `s`, `m`, `h`. The error is a message for a human, meant to
/// follow the YAML path of the value (`flows.tcp_timeout: ...`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration: write e.g. \"1s\" or \"100ms\"".into());
    }
    if text.starts_with('-') {
        return Err(format!("{text:?}: a duration must not be negative"));
    }
    if text.starts_with('+') || text.chars().any(char::is_whitespace) {
        return Err(format!(
            "{text:?}: invalid duration: write a number and a unit without sign or spaces, e.g. \"1s\""
        ));
    }
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    if unit.is_empty() {
        return Err(format!(
            "{text:?}: missing unit: write e.g. \"{text}s\" or \"{text}ms\" (units: ns, us, ms, s, m, h)"
        ));
    }
    let Some(&(_, unit_ns)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "{text:?}: invalid duration: unknown unit {unit:?} (units: ns, us, ms, s, m, h)"
        ));
    };
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty()
        || frac_part.contains('.')
        || (number.contains('.') && frac_part.is_empty())
    {
        return Err(format!(
            "{text:?}: invalid duration: expected a number like 1, 10 or 1.5 before the unit"
        ));
    }
    if int_part.len() > MAX_DIGITS || frac_part.len() > MAX_DIGITS {
        return Err(format!("{text:?}: duration is too large"));
    }
    // Both parts are non-empty-or-absent runs of ASCII digits of at most 18 digits, so
    // they fit in u64; parse cannot fail, but stay total anyway.
    let digits = |s: &str| -> u128 {
        s.bytes()
            .fold(0u128, |acc, b| acc * 10 + u128::from(b - b'0'))
    };
    let scale = 10u128.pow(frac_part.len() as u32);
    let scaled = digits(int_part) * scale + digits(frac_part);
    let total = scaled * unit_ns;
    if total % scale != 0 {
        return Err(format!("{text:?}: duration is finer than one nanosecond"));
    }
    let nanos = total / scale;
    let secs = nanos / 1_000_000_000;
    if secs > u128::from(u64::MAX) {
        return Err(format!("{text:?}: duration is too large"));
    }
    Ok(Duration::new(secs as u64, (nanos % 1_000_000_000) as u32))
}

/// Format a duration the way the config writes it (`"1.5s"`, `"100ms"`, `"0s"`), so
/// messages quote values in the operator's own notation.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    for (unit, unit_ns) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
    ] {
        if nanos % unit_ns == 0 {
            return format!("{}{unit}", nanos / unit_ns);
        }
    }
    if nanos >= 1_000_000_000 {
        // Fractional seconds, trailing zeros trimmed.
        let s = format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000);
        return format!("{}s", s.trim_end_matches('0'));
    }
    for (unit, unit_ns) in [("ms", 1_000_000u128), ("us", 1_000)] {
        if nanos % unit_ns == 0 {
            return format!("{}{unit}", nanos / unit_ns);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_formatting() {
        for text in [
            "0s", "1s", "100ms", "1.5s", "2m", "1h", "10us", "7ns", "1.25s",
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{text}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
