//! Human-written durations such as `500ms`, `10s`, `1h30m` or `7d`.
//!
//! Lifecycle definitions and job specs express timeouts, retention and
//! cool-downs as short strings. Requiring a unit on every number (and a fixed descending unit
//! order) keeps them unambiguous: `10` could mean seconds or minutes, and
//! `30m1h` is almost always a typo, so both are rejected with a message that
//! shows the accepted forms.

use std::time::Duration;

/// The accepted units, largest first. The order doubles as the rule for
/// multi-component durations: each component's unit must come later in this
/// list than the previous one.
const UNITS: [(&str, u64); 6] = [
    ("w", 7 * 24 * 60 * 60 * 1000),
    ("d", 24 * 60 * 60 * 1000),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Appended to every error so a reader always sees what would have worked.
const FORMS: &str = "expected a number followed by a unit (ms, s, m, h, d, w), \
                     largest unit first, e.g. 500ms, 10s, 5m, 1h30m, 7d, 2w";

/// "500ms", "10s", "5m", "1h30m", "7d", "2w". A unit is required; "0s" is allowed.
///
/// Components must appear in descending unit order, each unit at most once,
/// with no whitespace. The total must fit in `u64` milliseconds.
pub fn parse_duration(src: &str) -> Result<std::time::Duration, String> {
    if src.is_empty() {
        return Err(format!("empty duration; {FORMS}"));
    }
    let bytes = src.as_bytes();
    let mut pos = 0;
    let mut total: u64 = 0;
    // Index into UNITS of the previous component's unit; the next one must be
    // strictly greater (i.e. a smaller unit).
    let mut last_unit: Option<usize> = None;
    while pos < bytes.len() {
        let num_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == num_start {
            let bad = src[pos..].chars().next().unwrap_or(' ');
            return Err(format!(
                "invalid duration `{src}`: unexpected `{bad}` where a number was expected; {FORMS}"
            ));
        }
        let digits = &src[num_start..pos];
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &src[unit_start..pos];
        if unit.is_empty() {
            if pos == bytes.len() {
                let what = if num_start == 0 {
                    format!("duration `{src}` has no unit")
                } else {
                    format!("duration `{src}` has no unit after `{digits}`")
                };
                return Err(format!("{what}; add a unit, e.g. 10s, 5m, 2h, 7d"));
            }
            let bad = src[pos..].chars().next().unwrap_or(' ');
            return Err(format!(
                "invalid duration `{src}`: unexpected `{bad}` after `{digits}`; {FORMS}"
            ));
        }
        let Some(unit_idx) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "invalid duration `{src}`: unknown unit `{unit}`; {FORMS}"
            ));
        };
        if let Some(prev) = last_unit {
            if unit_idx == prev {
                return Err(format!(
                    "invalid duration `{src}`: unit `{unit}` appears twice; {FORMS}"
                ));
            }
            if unit_idx < prev {
                return Err(format!(
                    "invalid duration `{src}`: `{unit}` comes after `{}`; {FORMS}",
                    UNITS[prev].0
                ));
            }
        }
        last_unit = Some(unit_idx);
        let too_long = || format!("duration `{src}` is too long to represent");
        let n: u64 = digits.parse().map_err(|_| too_long())?;
        let ms = n.checked_mul(UNITS[unit_idx].1).ok_or_else(too_long)?;
        total = total.checked_add(ms).ok_or_else(too_long)?;
    }
    Ok(Duration::from_millis(total))
}

/// Canonical short form: 90s -> "1m30s", 7 days -> "7d", 1500ms -> "1s500ms".
///
/// Weeks are never emitted (days read more naturally for retention-style
/// values), zero is "0s", and anything below a millisecond is dropped because
/// the text format cannot express it.
pub fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let ms = u64::from(d.subsec_millis());
    let parts = [
        (secs / 86_400, "d"),
        ((secs / 3_600) % 24, "h"),
        ((secs / 60) % 60, "m"),
        (secs % 60, "s"),
        (ms, "ms"),
    ];
    let mut out = String::new();
    for (n, unit) in parts {
        if n != 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_single_units() {
        assert_eq!(parse_duration("500ms").unwrap(), ms(500));
        assert_eq!(parse_duration("10s").unwrap(), ms(10_000));
        assert_eq!(parse_duration("5m").unwrap(), ms(300_000));
        assert_eq!(parse_duration("2h").unwrap(), ms(7_200_000));
        assert_eq!(parse_duration("7d").unwrap(), ms(604_800_000));
        assert_eq!(parse_duration("2w").unwrap(), ms(1_209_600_000));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0ms").unwrap(), Duration::ZERO);
    }

    #[test]
    fn parses_compound() {
        assert_eq!(parse_duration("1h30m").unwrap(), ms(5_400_000));
        assert_eq!(parse_duration("1w2d").unwrap(), ms(9 * 86_400_000));
        assert_eq!(parse_duration("1s500ms").unwrap(), ms(1500));
        assert_eq!(parse_duration("1d1h1m1s1ms").unwrap(), ms(90_061_001));
        // Components need not be normalised: 90m is a fine way to say 1h30m.
        assert_eq!(parse_duration("90m").unwrap(), ms(5_400_000));
    }

    #[test]
    fn bare_number_asks_for_a_unit() {
        let err = parse_duration("10").unwrap_err();
        assert!(err.contains("add a unit, e.g. 10s, 5m, 2h, 7d"), "{err}");
        let err = parse_duration("1h30").unwrap_err();
        assert!(err.contains("add a unit"), "{err}");
    }

    #[test]
    fn rejects_bad_forms_and_names_the_accepted_ones() {
        for bad in [
            "", "30m1h", "1h1h", "1ms1s", "5 m", " 5m", "5m ", "5x", "h", "-5s", "1.5h", "5M",
            "5mm", "1h+30m", "5s,",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.contains("e.g.") || err.contains("too long"),
                "{bad:?} -> {err}"
            );
        }
        assert!(parse_duration("30m1h").unwrap_err().contains("comes after"));
        assert!(parse_duration("1h1h").unwrap_err().contains("twice"));
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(parse_duration("18446744073709551615ms").is_ok());
        assert!(parse_duration("18446744073709551616ms").is_err());
        assert!(parse_duration("99999999999999999w").is_err());
        assert!(parse_duration("18446744073709551615s").is_err());
        assert!(parse_duration("18446744073709551s1s").is_err());
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_duration(ms(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(5_400_000)), "1h30m");
        assert_eq!(format_duration(ms(90_061_001)), "1d1h1m1s1ms");
        assert_eq!(format_duration(Duration::from_nanos(999_999)), "0s");
        assert_eq!(format_duration(Duration::from_nanos(1_999_999)), "1ms");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(n in any::<u64>()) {
            let d = ms(n);
            let text = format_duration(d);
            prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
        }

        #[test]
        fn small_values_round_trip(n in 0u64..10_000_000) {
            let d = ms(n);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,12}") {
            let _ = parse_duration(&s);
        }
    }
}
