//! Standard 5-field cron schedules, evaluated in UTC.
//!
//! Lifecycle definitions use cron lines for periodic work (re-evaluation,
//! retraining, cleanup). Only the fire-time question matters here: given a
//! moment, when is the next fire? Calendar math is done in-house with Howard
//! Hinnant's civil-date algorithms so the crate stays dependency-free and the
//! result is exact (UTC, no leap seconds, no time zones).
//!
//! Semantics follow Vixie cron: when both day-of-month and day-of-week are
//! restricted (neither field starts with `*`), a day fires when *either*
//! matches; otherwise both must match.

use keel_core::time::{civil_from_days, days_from_civil};
use std::fmt;

/// A 5-field cron line (minute hour day-of-month month day-of-week), UTC. Clone + Debug + PartialEq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    src: String,
    /// Bit N set = minute N fires.
    minutes: u64,
    /// Bit N set = hour N fires.
    hours: u32,
    /// Bit N set = day-of-month N (1..=31) fires.
    days_of_month: u32,
    /// Bit N set = month N (1..=12) fires.
    months: u16,
    /// Bit N set = weekday N fires, 0 = Sunday (7 is folded into 0).
    days_of_week: u8,
    /// The day-of-month field started with `*` (Vixie's DOM_STAR).
    dom_star: bool,
    /// The day-of-week field started with `*` (Vixie's DOW_STAR).
    dow_star: bool,
}

/// Why a cron line was rejected; `offset` is the byte offset of the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at character {offset})")]
pub struct CronError {
    pub offset: usize,
    pub message: String,
}

/// What a field accepts; drives both parsing and error messages.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names; `names[i]` stands for `min_name + i`.
    names: &'static [&'static str],
    min_name: u32,
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    min_name: 0,
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    min_name: 0,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    min_name: 0,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    min_name: 1,
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    min_name: 0,
};

const FIELDS_HINT: &str = "expected 5 fields (minute hour day-of-month month day-of-week)";

const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// How far ahead `next_after` looks before deciding a line never fires.
/// Slightly over eight years: the longest gap between two satisfiable fire
/// days is a leap day across a non-leap century year (2096-02-29 to
/// 2104-02-29), and stopping earlier would wrongly report "never".
const SEARCH_DAYS: i64 = 8 * 366 + 31;

const MS_PER_MINUTE: i64 = 60_000;
const MINUTES_PER_DAY: i64 = 1_440;

impl Cron {
    /// Parses a 5-field line or one of the macros @yearly/@annually, @monthly,
    /// @weekly, @daily/@midnight, @hourly.
    pub fn parse(src: &str) -> Result<Cron, CronError> {
        let fields = split_fields(src);
        let Some(&(first_off, first)) = fields.first() else {
            return Err(CronError {
                offset: 0,
                message: format!("empty cron line; {FIELDS_HINT}"),
            });
        };
        if first.starts_with('@') {
            let Some((_, expansion)) = MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(first))
            else {
                return Err(CronError {
                    offset: first_off,
                    message: format!(
                        "unknown macro `{first}`; use @yearly, @annually, @monthly, @weekly, \
                         @daily, @midnight or @hourly, or 5 fields (minute hour day-of-month \
                         month day-of-week)"
                    ),
                });
            };
            if let Some(&(off, _)) = fields.get(1) {
                return Err(CronError {
                    offset: off,
                    message: format!("`{first}` stands alone; nothing may follow it"),
                });
            }
            let mut cron = Self::from_fields(&split_fields(expansion))?;
            cron.src = src.to_owned();
            return Ok(cron);
        }
        if fields.len() != 5 {
            let offset = match fields.get(5) {
                Some(&(off, _)) => off,
                None => src.trim_end().len(),
            };
            return Err(CronError {
                offset,
                message: format!("{FIELDS_HINT}, found {}", fields.len()),
            });
        }
        let mut cron = Self::from_fields(&fields)?;
        cron.src = src.to_owned();
        Ok(cron)
    }

    /// Builds the bitmasks from exactly five fields.
    fn from_fields(fields: &[(usize, &str)]) -> Result<Cron, CronError> {
        let &[
            (min_off, min_text),
            (hour_off, hour_text),
            (dom_off, dom_text),
            (month_off, month_text),
            (dow_off, dow_text),
        ] = fields
        else {
            return Err(CronError {
                offset: 0,
                message: format!("{FIELDS_HINT}, found {}", fields.len()),
            });
        };
        let minutes = parse_field(min_text, min_off, &MINUTE)?;
        let hours = parse_field(hour_text, hour_off, &HOUR)?;
        let days_of_month = parse_field(dom_text, dom_off, &DAY_OF_MONTH)?;
        let months = parse_field(month_text, month_off, &MONTH)?;
        let dow = parse_field(dow_text, dow_off, &DAY_OF_WEEK)?;
        // Sunday may be written 0 or 7.
        let days_of_week = ((dow | (dow >> 7)) & 0x7f) as u8;
        Ok(Cron {
            src: String::new(),
            minutes,
            hours: hours as u32,
            days_of_month: days_of_month as u32,
            months: months as u16,
            days_of_week,
            dom_star: dom_text.starts_with('*'),
            dow_star: dow_text.starts_with('*'),
        })
    }

    /// First fire time strictly after `after_ms` (Unix epoch milliseconds, UTC), on a minute boundary.
    ///
    /// Skips whole months, days and hours that cannot match, so a call costs
    /// at most a few thousand cheap steps. Returns `None` when nothing fires
    /// within about eight years (e.g. "0 0 30 2 *"), or when the answer would
    /// not fit in an `i64`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start_minute = after_ms.div_euclid(MS_PER_MINUTE).checked_add(1)?;
        let mut day = start_minute.div_euclid(MINUTES_PER_DAY);
        // Minute of the day to start from on `day`; zero on every later day.
        let mut from = start_minute.rem_euclid(MINUTES_PER_DAY) as u32;
        let last_day = day.checked_add(SEARCH_DAYS)?;
        while day <= last_day {
            let (y, m, d) = civil_from_days(day);
            if self.months & (1 << m) == 0 {
                // Jump to the first day of the next month.
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                day = days_from_civil(ny, nm, 1);
                from = 0;
                continue;
            }
            if self.day_matches(day, d)
                && let Some(minute_of_day) = self.first_time_from(from)
            {
                let minute = day
                    .checked_mul(MINUTES_PER_DAY)?
                    .checked_add(i64::from(minute_of_day))?;
                return minute.checked_mul(MS_PER_MINUTE);
            }
            day += 1;
            from = 0;
        }
        None
    }

    /// The text this schedule was parsed from.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Vixie rule: OR the two day fields only when both are restricted.
    fn day_matches(&self, day: i64, dom: u32) -> bool {
        let dom_ok = self.days_of_month & (1 << dom) != 0;
        let dow_ok = self.days_of_week & (1 << weekday(day)) != 0;
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }

    /// First matching minute-of-day at or after `from` (0..1440), if any.
    fn first_time_from(&self, from: u32) -> Option<u32> {
        let mut hour = from / 60;
        let mut minute = from % 60;
        while hour < 24 {
            let hours_left = self.hours >> hour;
            if hours_left == 0 {
                return None;
            }
            let skip = hours_left.trailing_zeros();
            if skip > 0 {
                hour += skip;
                minute = 0;
            }
            let minutes_left = self.minutes >> minute;
            if minutes_left != 0 {
                return Some(hour * 60 + minute + minutes_left.trailing_zeros());
            }
            hour += 1;
            minute = 0;
        }
        None
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}

/// Splits on ASCII whitespace, keeping each field's byte offset.
fn split_fields(src: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, b) in src.bytes().enumerate() {
        if b.is_ascii_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &src[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &src[s..]));
    }
    out
}

/// Parses one field into a bitmask where bit N means value N fires.
fn parse_field(text: &str, offset: usize, spec: &FieldSpec) -> Result<u64, CronError> {
    let err = |message: String| CronError { offset, message };
    let name = spec.name;
    let mut mask = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err(format!("{name} field `{text}` has an empty list item")));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = parse_value(a, spec).map_err(&err)?;
            let hi = parse_value(b, spec).map_err(&err)?;
            if lo > hi {
                return Err(err(format!(
                    "{name} range {range} is backwards; write the smaller value first"
                )));
            }
            (lo, hi)
        } else {
            let v = parse_value(range, spec).map_err(&err)?;
            // `N/S` means "from N to the field's maximum, every S".
            (v, if step.is_some() { spec.max } else { v })
        };
        let step = match step {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if n >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(err(format!(
                        "{name} step `{s}` must be a positive whole number, as in */5"
                    )));
                }
            },
        };
        let mut v = lo;
        while v <= hi {
            mask |= 1 << v;
            match v.checked_add(step) {
                Some(n) => v = n,
                None => break,
            }
        }
    }
    Ok(mask)
}

/// Parses a number or (for month/day-of-week) a three-letter name, checking range.
fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    let FieldSpec { name, min, max, .. } = *spec;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(format!("{name} {text} is out of range {min}-{max}")),
        };
    }
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(spec.min_name + i as u32);
    }
    let names = match (spec.names.first(), spec.names.last()) {
        (Some(first), Some(last)) => format!(" or a name {first}-{last}"),
        _ => String::new(),
    };
    Err(format!(
        "{name} `{text}` is not valid; expected a number {min}-{max}{names}"
    ))
}

/// Day of the week for a day number counted from 1970-01-01 (a Thursday); 0 = Sunday.
fn weekday(day: i64) -> u32 {
    (day + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Epoch milliseconds for a UTC date-time, via the code under test's
    /// sibling (checked separately against known dates).
    fn ts(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        (days_from_civil(y, mo, d) * 1440 + h * 60 + mi) * 60_000
    }

    fn next(line: &str, after: i64) -> Option<i64> {
        Cron::parse(line).unwrap().next_after(after)
    }

    #[test]
    fn civil_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(1900, 1, 1), -25_567);
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28),
            1
        );
        assert_eq!(days_from_civil(0, 3, 1), -719_468);
        // 2026-11-28 is a Saturday; 1970-01-01 a Thursday.
        assert_eq!(weekday(days_from_civil(2026, 11, 28)), 6);
        assert_eq!(weekday(0), 4);
        assert_eq!(weekday(-1), 3);
        // 1_700_000_000 s = 2023-11-14T22:13:20Z.
        assert_eq!(ts(2023, 11, 14, 22, 13) + 20_000, 1_700_000_000_000);
    }

    #[test]
    fn known_next_times() {
        // Saturday evening -> Monday 03:00.
        assert_eq!(
            next("0 3 * * 1", ts(2026, 11, 28, 21, 0)),
            Some(ts(2026, 11, 30, 3, 0))
        );
        assert_eq!(next("* * * * *", 0), Some(60_000));
        assert_eq!(next("* * * * *", 59_999), Some(60_000));
        assert_eq!(next("* * * * *", -1), Some(0));
        assert_eq!(
            next("*/15 * * * *", ts(2025, 1, 1, 10, 7)),
            Some(ts(2025, 1, 1, 10, 15))
        );
        assert_eq!(
            next("30 9 * * *", ts(2025, 1, 1, 9, 30)),
            Some(ts(2025, 1, 2, 9, 30))
        );
        assert_eq!(
            next("59 23 31 12 *", ts(2025, 6, 1, 0, 0)),
            Some(ts(2025, 12, 31, 23, 59))
        );
        assert_eq!(
            next("0 0 1 1 *", ts(2025, 12, 31, 23, 59)),
            Some(ts(2026, 1, 1, 0, 0))
        );
    }

    #[test]
    fn leap_day() {
        assert_eq!(
            next("0 0 29 2 *", ts(2025, 3, 1, 0, 0)),
            Some(ts(2028, 2, 29, 0, 0))
        );
        assert_eq!(
            next("0 0 29 2 *", ts(2024, 2, 28, 12, 0)),
            Some(ts(2024, 2, 29, 0, 0))
        );
        // 2100 is not a leap year.
        assert_eq!(
            next("0 0 29 2 *", ts(2096, 3, 1, 0, 0)),
            Some(ts(2104, 2, 29, 0, 0))
        );
    }

    #[test]
    fn never_fires() {
        assert_eq!(next("0 0 30 2 *", 0), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", ts(2030, 1, 1, 0, 0)), None);
        assert_eq!(next("* * * * *", i64::MAX), None);
        // The last representable minute boundary is still found...
        assert_eq!(
            next("* * * * *", i64::MAX - 120_000),
            Some(9_223_372_036_854_660_000)
        );
        // ...but nothing past it.
        assert_eq!(next("* * * * *", i64::MAX - 30_000), None);
        assert_eq!(next("0 0 1 1 *", i64::MAX - 86_400_000), None);
        assert_eq!(
            next("* * * * *", i64::MIN),
            Some(i64::MIN - i64::MIN % 60_000)
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        let a = Cron::parse("0 12 * jan-Mar mon-FRI").unwrap();
        let b = Cron::parse("0 12 * 1-3 1-5").unwrap();
        assert_eq!(a.next_after(0), b.next_after(0));
        // 2025-01-01 is a Wednesday.
        assert_eq!(
            next("0 12 * JAN SAT", ts(2025, 1, 1, 0, 0)),
            Some(ts(2025, 1, 4, 12, 0))
        );
        assert_eq!(
            next("0 0 * * sun", ts(2025, 1, 1, 0, 0)),
            Some(ts(2025, 1, 5, 0, 0))
        );
        assert_eq!(
            next("0 0 * * 7", ts(2025, 1, 1, 0, 0)),
            Some(ts(2025, 1, 5, 0, 0))
        );
        assert_eq!(
            next("0 0 1 dec *", ts(2025, 1, 1, 0, 0)),
            Some(ts(2025, 12, 1, 0, 0))
        );
    }

    #[test]
    fn vixie_or_of_day_fields() {
        // Both restricted: the 15th OR any Monday. 2025-01-01 is a Wednesday.
        let line = "0 0 15 * 1";
        assert_eq!(next(line, ts(2025, 1, 1, 0, 0)), Some(ts(2025, 1, 6, 0, 0)));
        assert_eq!(
            next(line, ts(2025, 1, 13, 0, 0)),
            Some(ts(2025, 1, 15, 0, 0))
        );
        // Day-of-week is `*`: only the 15th.
        assert_eq!(
            next("0 0 15 * *", ts(2025, 1, 1, 0, 0)),
            Some(ts(2025, 1, 15, 0, 0))
        );
        // Day-of-month starts with `*` (Vixie DOM_STAR): both must match, so
        // odd days that are Mondays. 2025-01-06 is even; 2025-01-13 is odd.
        assert_eq!(
            next("0 0 */2 * 1", ts(2025, 1, 1, 0, 0)),
            Some(ts(2025, 1, 13, 0, 0))
        );
    }

    #[test]
    fn macros() {
        let after = ts(2025, 5, 17, 13, 45); // a Saturday
        assert_eq!(next("@yearly", after), Some(ts(2026, 1, 1, 0, 0)));
        assert_eq!(next("@annually", after), Some(ts(2026, 1, 1, 0, 0)));
        assert_eq!(next("@monthly", after), Some(ts(2025, 6, 1, 0, 0)));
        assert_eq!(next("@weekly", after), Some(ts(2025, 5, 18, 0, 0)));
        assert_eq!(next("@daily", after), Some(ts(2025, 5, 18, 0, 0)));
        assert_eq!(next("@midnight", after), Some(ts(2025, 5, 18, 0, 0)));
        assert_eq!(next("@hourly", after), Some(ts(2025, 5, 17, 14, 0)));
        assert!(
            Cron::parse("@reboot")
                .unwrap_err()
                .message
                .contains("@hourly")
        );
        assert!(Cron::parse("@daily 5").is_err());
    }

    #[test]
    fn steps_and_lists() {
        let c = Cron::parse("5/20 1-5/2,22 * * *").unwrap();
        assert_eq!(c.minutes, (1 << 5) | (1 << 25) | (1 << 45));
        assert_eq!(c.hours, (1 << 1) | (1 << 3) | (1 << 5) | (1 << 22));
        let c = Cron::parse("*/7 * * * 5-7").unwrap();
        assert_eq!(c.days_of_week, 0b110_0001);
        assert_eq!(c.minutes.count_ones(), 9);
    }

    #[test]
    fn source_and_display_keep_the_text() {
        let c = Cron::parse("  0 3 * * MON ").unwrap();
        assert_eq!(c.source(), "  0 3 * * MON ");
        assert_eq!(c.to_string(), "  0 3 * * MON ");
    }

    #[test]
    fn errors_point_at_the_field() {
        let e = Cron::parse("0 0 * * 9").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(
            e.message.contains("day-of-week 9 is out of range 0-7"),
            "{e}"
        );
        let e = Cron::parse("60 0 * * *").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("minute 60 is out of range 0-59"), "{e}");
        let e = Cron::parse("0 24 * * *").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("hour 24 is out of range 0-23"), "{e}");
        let e = Cron::parse("0 0 0 * *").unwrap_err();
        assert!(
            e.message.contains("day-of-month 0 is out of range 1-31"),
            "{e}"
        );
        let e = Cron::parse("0 0 1 13 *").unwrap_err();
        assert_eq!(e.offset, 6);
        assert!(e.message.contains("month 13 is out of range 1-12"), "{e}");
        let e = Cron::parse("0 0 * * 1,FOO").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("day-of-week"), "{e}");
        for bad in ["0 0 * *", "0 0 * * * *", ""] {
            let e = Cron::parse(bad).unwrap_err();
            assert!(
                e.message
                    .contains("5 fields (minute hour day-of-month month day-of-week)"),
                "{e}"
            );
        }
        assert_eq!(Cron::parse("0 0 * * * *").unwrap_err().offset, 10);
        for bad in [
            "*/0 * * * *",
            "5-2 * * * *",
            "1,,2 * * * *",
            "a * * * *",
            "*/x * * * *",
            "1-2-3 * * * *",
            "1/2/3 * * * *",
            "- * * * *",
            "MON * * * *",
            "* * * * */-1",
            "99999999999 * * * *",
            "* * * JANUARY *",
            "*/+1 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    /// Independent, obviously-correct matcher for the brute-force check.
    fn brute_matches(c: &Cron, minute: i64) -> bool {
        let day = minute.div_euclid(1440);
        let mod_ = minute.rem_euclid(1440);
        let (_, m, d) = civil_from_days(day);
        let wd = (day + 4).rem_euclid(7);
        let min_ok = c.minutes >> (mod_ % 60) & 1 == 1;
        let hour_ok = c.hours >> (mod_ / 60) & 1 == 1;
        let month_ok = c.months >> m & 1 == 1;
        let dom_ok = c.days_of_month >> d & 1 == 1;
        let dow_ok = c.days_of_week >> wd & 1 == 1;
        let day_ok = if c.dom_star || c.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        };
        min_ok && hour_ok && month_ok && day_ok
    }

    fn field_strategy(
        min: u32,
        max: u32,
        names: &'static [&'static str],
        name_base: u32,
    ) -> impl Strategy<Value = String> {
        let value = (min..=max, any::<bool>()).prop_map(move |(v, use_name)| {
            let idx = v.checked_sub(name_base).map(|i| i as usize);
            match idx {
                Some(i) if use_name && i < names.len() => names[i].to_lowercase(),
                _ => v.to_string(),
            }
        });
        let item = prop_oneof![
            Just("*".to_string()),
            value.clone(),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1..=max.max(2)).prop_map(|s| format!("*/{s}")),
            (min..=max, min..=max, 1..=max.max(2)).prop_map(|(a, b, s)| format!(
                "{}-{}/{s}",
                a.min(b),
                a.max(b)
            )),
            (min..=max, 1..=max.max(2)).prop_map(|(a, s)| format!("{a}/{s}")),
        ];
        proptest::collection::vec(item, 1..=3).prop_map(|items| items.join(","))
    }

    fn cron_line() -> impl Strategy<Value = String> {
        (
            field_strategy(0, 59, &[], 0),
            field_strategy(0, 23, &[], 0),
            prop_oneof![Just("*".to_string()), field_strategy(1, 31, &[], 0)],
            prop_oneof![Just("*".to_string()), field_strategy(1, 12, MONTH.names, 1)],
            prop_oneof![
                Just("*".to_string()),
                field_strategy(0, 7, DAY_OF_WEEK.names, 0)
            ],
        )
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn next_after_matches_brute_force(
            line in cron_line(),
            // 1900-01-01 .. 2200-01-01, so 2100 (not a leap year) is covered.
            after in -2_208_988_800_000i64..7_258_118_400_000i64,
        ) {
            let cron = Cron::parse(&line).unwrap();
            let horizon = 400 * 1440;
            let start = after.div_euclid(60_000) + 1;
            let expected = (start..start + horizon)
                .find(|&m| brute_matches(&cron, m))
                .map(|m| m * 60_000);
            let got = cron.next_after(after);
            match expected {
                Some(t) => prop_assert_eq!(got, Some(t), "{}", line),
                None => prop_assert!(
                    got.is_none_or(|t| t >= (start + horizon) * 60_000),
                    "{} -> {:?}", line, got
                ),
            }
        }
    }

    proptest! {
        #[test]
        fn civil_round_trip(day in -100_000_000i64..100_000_000i64) {
            let (y, m, d) = civil_from_days(day);
            prop_assert!((1..=12).contains(&m));
            prop_assert!((1..=31).contains(&d));
            prop_assert_eq!(days_from_civil(y, m, d), day);
            // Consecutive days are consecutive dates.
            let (y2, m2, d2) = civil_from_days(day + 1);
            prop_assert!(
                (y2, m2, d2) == (y, m, d + 1)
                    || (d2 == 1 && ((y2, m2) == (y, m + 1) || (y2, m2, m) == (y + 1, 1, 12)))
            );
        }

        #[test]
        fn result_is_a_later_minute_boundary(
            line in cron_line(),
            after in -10_000_000_000_000i64..10_000_000_000_000i64,
        ) {
            let cron = Cron::parse(&line).unwrap();
            if let Some(t) = cron.next_after(after) {
                prop_assert!(t > after);
                prop_assert_eq!(t.rem_euclid(60_000), 0);
                prop_assert!(brute_matches(&cron, t / 60_000));
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = Cron::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_cron_like_text(
            fields in proptest::collection::vec("[0-9*/,A-Za-z-]{0,6}", 0..7)
        ) {
            let _ = Cron::parse(&fields.join(" "));
        }
    }
}
