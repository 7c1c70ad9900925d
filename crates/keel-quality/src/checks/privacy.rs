//! Privacy checks: PII in string columns ([`scan`]), k-anonymity over
//! quasi-identifiers ([`k_anonymity`]) and the loss-threshold membership
//! inference attack ([`membership_inference`]).
//!
//! The PII detectors are hand-written scanners over bytes, one pass per
//! detector, no backtracking: a million short values scan in well under a
//! second. They aim at few false positives on ordinary data (dates, version
//! strings, plain integer ids) at the cost of missing unusual spellings;
//! each detector's documentation on [`PiiKind`] states what it accepts.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::metrics::classification::{LOG_LOSS_EPS, roc_auc};
use crate::metrics::labels::Binary;
use crate::{Grouper, QualityError, Result, invalid, not_finite};

/// Examples kept per kind in a [`PiiReport`].
pub const MAX_EXAMPLES: usize = 5;

/// A kind of personal data the scanner recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// `local@domain.tld`: an RFC 5322 dot-atom local part (letters, digits,
    /// `._%+-`, no leading, trailing or doubled dot) and a domain of at
    /// least two labels whose last is two or more letters.
    Email,
    /// A phone number: `+` and 8–15 digits (E.164, separators allowed), or
    /// a national number of 7–15 digits written in at least two groups
    /// separated by spaces, dashes, dots or parentheses (`(555) 123-4567`,
    /// `020 7946 0958`, `06 12 34 56 78`). Plain integers are never phones,
    /// nor are dates (`2024-01-15`, `15.01.2024`, also leading a time),
    /// decimals (`1234.5678`), dotted quads or version strings (a one-digit
    /// group is allowed only first).
    Phone,
    /// 13–19 digits, optionally grouped by single spaces or dashes, with a
    /// valid Luhn check digit.
    CreditCard,
    /// An IBAN (printed with or without spaces): a country code of the
    /// EU/EEA, GB, CH or a few neighbours, two check digits, a BBAN that
    /// makes the country's length, and `mod 97 == 1` (ISO 13616).
    Iban,
    /// A dotted-quad IPv4 address, each part 0–255 without leading zeros.
    Ipv4,
    /// An IPv6 address (RFC 4291 text form, `::` compression and an
    /// embedded IPv4 tail allowed; no zone index).
    Ipv6,
    /// A US social security number `AAA-GG-SSSS` (dashes or spaces), with
    /// the never-issued ranges excluded: area 000, 666 or 900–999, group
    /// 00, serial 0000. Nine digits without separators are not flagged.
    UsSsn,
    /// A UK National Insurance number `AB123456C` (spaces between pairs
    /// allowed), upper case, with HMRC's prefix rules: first letter not
    /// D F I Q U V, second not D F I O Q U V, not BG GB KN NK NT TN ZZ,
    /// suffix A–D.
    UkNino,
}

/// What [`scan`] found in a column.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PiiReport {
    /// Findings per kind (a value can hold several).
    pub findings_by_kind: BTreeMap<PiiKind, u64>,
    /// The first [`MAX_EXAMPLES`] findings per kind, masked so the report
    /// itself leaks nothing: an e-mail keeps the first character of its
    /// local part and its domain, anything else its last four letters or
    /// digits.
    pub examples: BTreeMap<PiiKind, Vec<String>>,
    /// Values holding at least one finding.
    pub rows_with_pii: u64,
}

impl PiiReport {
    /// Findings of all kinds.
    pub fn total_findings(&self) -> u64 {
        self.findings_by_kind.values().sum()
    }
}

/// Scans every value for PII (see [`PiiKind`]). Detectors run in a fixed
/// order (e-mail, IBAN, IPv6, UK NINO, then the numeric ones: IPv4, SSN,
/// credit card, phone) and a finding overlapping an earlier one is dropped,
/// so the digits of an IBAN are not also a phone number.
pub fn scan(values: &[&str]) -> PiiReport {
    let mut report = PiiReport::default();
    let mut found = Vec::new();
    for value in values {
        found.clear();
        find_pii(value, &mut found);
        if found.is_empty() {
            continue;
        }
        report.rows_with_pii += 1;
        for (kind, span) in &found {
            *report.findings_by_kind.entry(*kind).or_insert(0) += 1;
            let examples = report.examples.entry(*kind).or_default();
            if examples.len() < MAX_EXAMPLES {
                examples.push(mask(*kind, &value[span.clone()]));
            }
        }
    }
    report
}

/// The PII findings of one value, in detector order.
pub fn find(value: &str) -> Vec<(PiiKind, String)> {
    let mut found = Vec::new();
    find_pii(value, &mut found);
    found
        .into_iter()
        .map(|(k, span)| (k, value[span].to_string()))
        .collect()
}

fn find_pii(s: &str, out: &mut Vec<(PiiKind, Range<usize>)>) {
    let b = s.as_bytes();
    let push = |out: &mut Vec<(PiiKind, Range<usize>)>, kind, span: Range<usize>| {
        if !out
            .iter()
            .any(|(_, r)| r.start < span.end && span.start < r.end)
        {
            out.push((kind, span));
        }
    };
    for span in emails(b) {
        push(out, PiiKind::Email, span);
    }
    for span in ibans(b) {
        push(out, PiiKind::Iban, span);
    }
    for span in ipv6s(b) {
        push(out, PiiKind::Ipv6, span);
    }
    for span in ninos(b) {
        push(out, PiiKind::UkNino, span);
    }
    for run in numeric_runs(b) {
        if let Some(kind) = classify_numeric(&b[run.clone()]) {
            push(out, kind, run);
            continue;
        }
        // A run joined by spaces may hold several numbers: try each piece.
        let mut start = run.start;
        for i in run.start..=run.end {
            if i == run.end || b[i] == b' ' {
                if start < i
                    && let Some(kind) = classify_numeric(&b[start..i])
                {
                    push(out, kind, start..i);
                }
                start = i + 1;
            }
        }
    }
}

fn is_alnum(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_alphanumeric)
}

/// Nothing alphanumeric touches `start..end` on either side.
fn bounded(b: &[u8], start: usize, end: usize) -> bool {
    (start == 0 || !is_alnum(b, start - 1)) && !is_alnum(b, end)
}

fn mask(kind: PiiKind, text: &str) -> String {
    if kind == PiiKind::Email
        && let Some(at) = text.find('@')
    {
        let first = text.chars().next().unwrap_or('*');
        return format!("{first}***{}", &text[at..]);
    }
    let alnum = text.chars().filter(char::is_ascii_alphanumeric).count();
    let keep_from = alnum.saturating_sub(4);
    let mut seen = 0;
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                seen += 1;
                if seen <= keep_from { '*' } else { c }
            } else {
                c
            }
        })
        .collect()
}

// ---- e-mail ----

fn emails(b: &[u8]) -> Vec<Range<usize>> {
    let local_char = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain_char = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut out = Vec::new();
    let mut from = 0; // the end of the last finding: no overlaps
    for at in 0..b.len() {
        if b[at] != b'@' || at < from {
            continue;
        }
        let mut start = at;
        while start > from && local_char(b[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < b.len() && domain_char(b[end]) {
            end += 1;
        }
        while end > at + 1 && b[end - 1] == b'.' {
            end -= 1; // a sentence's full stop
        }
        let local = &b[start..at];
        let domain = &b[at + 1..end];
        let local_ok = !local.is_empty()
            && local[0] != b'.'
            && local[local.len() - 1] != b'.'
            && !local.windows(2).any(|w| w == b"..");
        if local_ok && valid_domain(domain) && bounded(b, start, end) {
            out.push(start..end);
            from = end;
        }
    }
    out
}

fn valid_domain(d: &[u8]) -> bool {
    let labels: Vec<&[u8]> = d.split(|&c| c == b'.').collect();
    if labels.len() < 2 {
        return false;
    }
    let labels_ok = labels
        .iter()
        .all(|l| !l.is_empty() && l.len() <= 63 && l[0] != b'-' && l[l.len() - 1] != b'-');
    let tld = labels[labels.len() - 1];
    labels_ok && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)
}

// ---- IBAN ----

/// IBAN lengths of the EU/EEA countries, GB, CH and a few neighbours (the
/// SWIFT IBAN registry).
const IBAN_LENGTHS: [(&[u8; 2], usize); 47] = [
    (b"AD", 24),
    (b"AL", 28),
    (b"AT", 20),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IS", 26),
    (b"IT", 27),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MT", 31),
    (b"NL", 18),
    (b"NO", 15),
    (b"PL", 28),
    (b"PT", 25),
    (b"RO", 24),
    (b"RS", 22),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
];

/// The IBAN length of a country, if it is one [`scan`] knows.
pub fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == country.as_bytes())
        .map(|&(_, n)| n)
}

/// ISO 7064 MOD 97-10 of an IBAN (without spaces, upper case): the country
/// code and check digits moved to the end, letters as 10–35. A valid IBAN
/// gives 1. `None` for a character that is not a digit or an upper-case
/// letter.
pub fn iban_mod97(iban: &[u8]) -> Option<u32> {
    if iban.len() < 4 {
        return None;
    }
    let mut rem = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return None,
        };
    }
    Some(rem)
}

fn ibans(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let head = &b[i..i + 4];
        let candidate = head[0].is_ascii_uppercase()
            && head[1].is_ascii_uppercase()
            && head[2].is_ascii_digit()
            && head[3].is_ascii_digit()
            && (i == 0 || !is_alnum(b, i - 1));
        let Some(len) = candidate
            .then(|| IBAN_LENGTHS.iter().find(|(c, _)| c[..] == head[..2]))
            .flatten()
            .map(|&(_, n)| n)
        else {
            i += 1;
            continue;
        };
        let mut compact = Vec::with_capacity(len);
        let mut j = i;
        while compact.len() < len && j < b.len() {
            if b[j].is_ascii_alphanumeric() {
                compact.push(b[j].to_ascii_uppercase());
                j += 1;
            } else if b[j] == b' ' && is_alnum(b, j + 1) && j > i {
                j += 1;
            } else {
                break;
            }
        }
        if compact.len() == len && !is_alnum(b, j) && iban_mod97(&compact) == Some(1) {
            out.push(i..j);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

// ---- IPv6 ----

fn ipv6s(b: &[u8]) -> Vec<Range<usize>> {
    let in_set = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !in_set(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && in_set(b[i]) {
            i += 1;
        }
        let mut end = i;
        while end > start && b[end - 1] == b'.' {
            end -= 1;
        }
        let text = &b[start..end];
        if text.iter().filter(|&&c| c == b':').count() >= 2
            && bounded(b, start, end)
            && valid_ipv6(text)
        {
            out.push(start..end);
        }
    }
    out
}

fn valid_ipv6(t: &[u8]) -> bool {
    let Ok(t) = std::str::from_utf8(t) else {
        return false;
    };
    if !t.bytes().any(|c| c.is_ascii_hexdigit()) || t.matches("::").count() > 1 {
        return false;
    }
    let groups = |part: &str, last: bool| -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let pieces: Vec<&str> = part.split(':').collect();
        let mut n = 0;
        for (k, p) in pieces.iter().enumerate() {
            if last && k == pieces.len() - 1 && p.contains('.') {
                valid_ipv4(p.as_bytes()).then_some(())?;
                n += 2;
            } else if (1..=4).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_hexdigit()) {
                n += 1;
            } else {
                return None;
            }
        }
        Some(n)
    };
    match t.split_once("::") {
        Some((head, tail)) => match (groups(head, false), groups(tail, true)) {
            (Some(h), Some(t)) => h + t <= 7,
            _ => false,
        },
        None => groups(t, true) == Some(8),
    }
}

// ---- UK National Insurance number ----

fn ninos(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 9 <= b.len() {
        match nino_at(b, i) {
            Some(end) => {
                out.push(i..end);
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

fn nino_at(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_alnum(b, i - 1) {
        return None;
    }
    let (p0, p1) = (*b.get(i)?, *b.get(i + 1)?);
    let ok = p0.is_ascii_uppercase()
        && p1.is_ascii_uppercase()
        && !b"DFIQUV".contains(&p0)
        && !b"DFIOQUV".contains(&p1)
        && ![b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"].contains(&&[p0, p1]);
    if !ok {
        return None;
    }
    let mut j = i + 2;
    for _ in 0..3 {
        if b.get(j) == Some(&b' ') {
            j += 1;
        }
        for _ in 0..2 {
            b.get(j).filter(|c| c.is_ascii_digit())?;
            j += 1;
        }
    }
    if b.get(j) == Some(&b' ') {
        j += 1;
    }
    b.get(j).filter(|c| (b'A'..=b'D').contains(c))?;
    j += 1;
    (!is_alnum(b, j)).then_some(j)
}

// ---- numeric: IPv4, SSN, credit card, phone ----

/// Maximal runs of digits and the separators numbers are written with,
/// trimmed to start at a digit, `+` or `(` and end at a digit, and not
/// glued to a letter.
fn numeric_runs(b: &[u8]) -> Vec<Range<usize>> {
    let in_set = |c: u8| c.is_ascii_digit() || b" -.()+/".contains(&c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !in_set(b[i]) {
            i += 1;
            continue;
        }
        let raw_start = i;
        while i < b.len() && in_set(b[i]) {
            i += 1;
        }
        let raw_end = i;
        let mut start = raw_start;
        while start < raw_end
            && !(b[start].is_ascii_digit() || b[start] == b'+' || b[start] == b'(')
        {
            start += 1;
        }
        let mut end = raw_end;
        while end > start && !b[end - 1].is_ascii_digit() {
            end -= 1;
        }
        if end > start && bounded(b, start, end) {
            out.push(start..end);
        }
    }
    out
}

fn classify_numeric(t: &[u8]) -> Option<PiiKind> {
    if valid_ipv4(t) {
        return Some(PiiKind::Ipv4);
    }
    if let Some(valid) = ssn_shape(t) {
        return valid.then_some(PiiKind::UsSsn);
    }
    if credit_card(t) {
        return Some(PiiKind::CreditCard);
    }
    phone(t).then_some(PiiKind::Phone)
}

fn valid_ipv4(t: &[u8]) -> bool {
    let parts: Vec<&[u8]> = t.split(|&c| c == b'.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            (1..=3).contains(&p.len())
                && p.iter().all(u8::is_ascii_digit)
                && (p.len() == 1 || p[0] != b'0')
                && p.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0')) <= 255
        })
}

/// `Some(valid)` if `t` is shaped `DDD-DD-DDDD` (or with spaces).
fn ssn_shape(t: &[u8]) -> Option<bool> {
    if t.len() != 11 || !(t[3] == t[6] && (t[3] == b'-' || t[3] == b' ')) {
        return None;
    }
    let digits = |r: Range<usize>| -> Option<u32> {
        t[r].iter().try_fold(0u32, |a, &c| {
            c.is_ascii_digit().then(|| a * 10 + u32::from(c - b'0'))
        })
    };
    let (area, group, serial) = (digits(0..3)?, digits(4..6)?, digits(7..11)?);
    Some(area != 0 && area != 666 && area < 900 && group != 0 && serial != 0)
}

/// Whether a digit string passes the Luhn check (ISO/IEC 7812-1).
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &c)| {
            let d = u32::from(c - b'0');
            if k % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn credit_card(t: &[u8]) -> bool {
    let mut digits = Vec::with_capacity(19);
    let mut prev_sep = true;
    for &c in t {
        if c.is_ascii_digit() {
            digits.push(c);
            prev_sep = false;
        } else if (c == b' ' || c == b'-') && !prev_sep {
            prev_sep = true;
        } else {
            return false;
        }
    }
    (13..=19).contains(&digits.len()) && luhn_valid(&digits)
}

fn phone(t: &[u8]) -> bool {
    let plus = t.first() == Some(&b'+');
    let body = if plus { &t[1..] } else { t };
    if body.contains(&b'/') || body.contains(&b'+') {
        return false;
    }
    let mut groups: Vec<usize> = Vec::new();
    let mut seps: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let s = i;
        if body[i].is_ascii_digit() {
            while i < body.len() && body[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(i - s);
        } else {
            while i < body.len() && !body[i].is_ascii_digit() {
                i += 1;
            }
            if s > 0 {
                seps.push(&body[s..i]);
            }
            if i - s > 2 {
                return false; // `- (` at most
            }
        }
    }
    let digits: usize = groups.iter().sum();
    if plus {
        return (8..=15).contains(&digits);
    }
    if !(7..=15).contains(&digits) || groups.len() < 2 {
        return false;
    }
    if groups[0] > 5 || groups[1..].iter().any(|&g| !(2..=5).contains(&g)) {
        return false;
    }
    // A date, alone or leading a date-time (`2024-01-15 12`).
    let dateish = groups.len() >= 3
        && seps[0] == seps[1]
        && matches!(
            (groups[0], groups[1], groups[2]),
            (4, 2, 2) | (4, 1, 2) | (4, 2, 1) | (2, 2, 4) | (1, 2, 4) | (2, 1, 4) | (1, 1, 4)
        );
    let all_dots = seps.iter().all(|s| s == b".");
    // `1234.5678` is a decimal number, `192.168.10.300` not an address.
    let decimal = groups.len() == 2 && all_dots;
    let dotted_quad = groups.len() == 4 && all_dots && groups.iter().all(|&g| g <= 3);
    !dateish && !decimal && !dotted_quad
}

// ---- k-anonymity ----

/// The k-anonymity of a table's quasi-identifiers (Sweeney, 2002): rows
/// fall into equivalence classes by their tuple of quasi-identifier
/// values, and `k` is the smallest class's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KAnonymity {
    /// The smallest equivalence-class size.
    pub k: u64,
    /// The number of equivalence classes.
    pub classes: u64,
    pub rows: u64,
    /// `(class size, number of classes of that size)`, by size ascending.
    pub size_histogram: Vec<(u64, u64)>,
}

impl KAnonymity {
    /// Rows in classes smaller than `k_threshold`: those a release at that
    /// threshold would have to suppress or generalise.
    pub fn rows_in_classes_below(&self, k_threshold: u64) -> u64 {
        self.size_histogram
            .iter()
            .take_while(|(size, _)| *size < k_threshold)
            .map(|(size, count)| size * count)
            .sum()
    }
}

/// k-anonymity of the quasi-identifier columns (values as strings: the
/// caller stringifies, and generalises — bins ages, truncates zip codes —
/// first if it wants to). One pass, no per-row allocation.
pub fn k_anonymity(columns: &[&[&str]]) -> Result<KAnonymity> {
    let Some(first) = columns.first() else {
        return Err(invalid(
            "quasi_identifiers",
            "no columns given; name at least one quasi-identifier",
        ));
    };
    let n = first.len();
    for (c, col) in columns.iter().enumerate() {
        crate::paired(
            "quasi_identifiers[0]",
            n,
            &format!("quasi_identifiers[{c}]"),
            col.len(),
        )?;
    }
    let mut grouper = Grouper::new(columns.len());
    let mut sizes: Vec<u64> = Vec::new();
    for r in 0..n {
        let g = grouper.group(columns.iter().map(|col| col[r]));
        if g == sizes.len() {
            sizes.push(0);
        }
        sizes[g] += 1;
    }
    let mut histogram: BTreeMap<u64, u64> = BTreeMap::new();
    for &s in &sizes {
        *histogram.entry(s).or_insert(0) += 1;
    }
    Ok(KAnonymity {
        k: histogram.keys().next().copied().unwrap_or(0),
        classes: sizes.len() as u64,
        rows: n as u64,
        size_histogram: histogram.into_iter().collect(),
    })
}

// ---- membership inference ----

/// The loss-threshold membership inference attack of Yeom et al. (2018):
/// the attacker guesses "member" when a row's loss is at most a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipInference {
    /// ROC AUC of `−loss` at telling training rows (positive) from holdout
    /// rows; 0.5 is no leak.
    pub auc: f64,
    /// The membership advantage `max_τ TPR(τ) − FPR(τ)` (Yeom et al.'s
    /// `Adv`), at least 0 (the threshold that flags nobody scores 0).
    pub advantage: f64,
    /// The best threshold: rows with `loss ≤ threshold` are guessed members;
    /// `-inf` (`null` in JSON) when no threshold beats flagging nobody.
    pub threshold: f64,
}

/// Runs the attack on per-row losses of training rows and holdout rows
/// (the model's own loss on each row, e.g. from [`per_row_log_loss`]; for
/// confidences pass `1 − confidence`, so that lower still means member).
/// One sort.
pub fn membership_inference(
    train_loss: &[f64],
    holdout_loss: &[f64],
) -> Result<MembershipInference> {
    for (name, col) in [("train_loss", train_loss), ("holdout_loss", holdout_loss)] {
        if col.is_empty() {
            return Err(QualityError::Empty { name: name.into() });
        }
        if let Some((i, &x)) = col.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(not_finite(name, i, x));
        }
    }
    let n = train_loss.len() + holdout_loss.len();
    let mut labels = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    let mut all: Vec<(f64, bool)> = Vec::with_capacity(n);
    for &x in train_loss {
        labels.push(1);
        scores.push(-x);
        all.push((x, true));
    }
    for &x in holdout_loss {
        labels.push(0);
        scores.push(-x);
        all.push((x, false));
    }
    let auc = roc_auc(&labels, &scores, 1)?;
    drop(scores);
    drop(labels);
    all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let (p, q) = (train_loss.len() as f64, holdout_loss.len() as f64);
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut advantage, mut threshold) = (0.0, f64::NEG_INFINITY);
    let mut i = 0;
    while i < all.len() {
        let x = all[i].0;
        while i < all.len() && all[i].0 == x {
            if all[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let adv = tp as f64 / p - fp as f64 / q;
        if adv > advantage {
            advantage = adv;
            threshold = x;
        }
    }
    Ok(MembershipInference {
        auc,
        advantage,
        threshold,
    })
}

/// The binary log loss of each row, `−ln p` on rows equal to `pos_label`
/// and `−ln(1 − p)` on the others, clipped as
/// [`log_loss`](crate::metrics::classification::log_loss) does (its mean).
/// `y_true` may hold at most two labels.
pub fn per_row_log_loss(y_true: &[i64], y_prob: &[f64], pos_label: i64) -> Result<Vec<f64>> {
    crate::paired("y_true", y_true.len(), "y_prob", y_prob.len())?;
    let bin = Binary::new(pos_label, &[y_true]);
    let mut strays = 0;
    let mut out = Vec::with_capacity(y_true.len());
    for (i, (&t, &p)) in y_true.iter().zip(y_prob).enumerate() {
        if !(0.0..=1.0).contains(&p) {
            return Err(crate::bad_probability("y_prob", i, p));
        }
        strays += bin.stray(t);
        let q = if bin.positive(t) { p } else { 1.0 - p };
        out.push(-q.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln());
    }
    bin.check(strays, "y_true", &[y_true])?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_stats::rng::Rng;
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    fn kinds(s: &str) -> Vec<PiiKind> {
        find(s).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn email() {
        assert_eq!(
            find("mail jane.doe+x@mail.example.co.uk."),
            [(PiiKind::Email, "jane.doe+x@mail.example.co.uk".into())]
        );
        for neg in [
            "a@b",
            "@example.com",
            "x@.com",
            "x@example.c0m",
            "a..b@example.com",
            "user@-bad.com",
            "5 @ 6",
        ] {
            assert_eq!(kinds(neg), [], "{neg}");
        }
    }

    #[test]
    fn phone_numbers() {
        for pos in [
            "+14155552671",
            "+44 20 7946 0958",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "call 020 7946 0958 now",
            "06 12 34 56 78",
            "1-800-555-1234",
        ] {
            assert_eq!(kinds(pos), [PiiKind::Phone], "{pos}");
        }
        for neg in [
            "123456",
            "12345678901",
            "2024-01-15",
            "15.01.2024",
            "1/2/2024",
            "1.2.3.4.5",
            "10.0.19041.1",
            "999.999.999.999",
            "1234.5678",
            "at 2024-01-15 12:30:45",
            "2024-01-15T12:30:45Z",
            "00:1A:2B:3C:4D:5E",
            "v12-3",
            "+12345",
            "order 42",
        ] {
            assert_eq!(kinds(neg), [], "{neg}");
        }
    }

    #[test]
    fn credit_cards() {
        for pos in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
            "card: 6011 0009 9013 9424.",
        ] {
            assert_eq!(kinds(pos), [PiiKind::CreditCard], "{pos}");
        }
        for neg in [
            "4111111111111112",
            "4111 1111 1111 1112",
            "4111  1111 1111 1111x",
            "411111111111",
        ] {
            assert_ne!(kinds(neg), [PiiKind::CreditCard], "{neg}");
        }
        assert_eq!(kinds("4111 1111 1111 1112"), []);
    }

    #[test]
    fn iban() {
        for pos in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82 WEST 1234 5698 7654 32",
            "iban: CH9300762011623852957",
            "NL91ABNA0417164300",
            "FR1420041010050500013M02606",
        ] {
            assert_eq!(kinds(pos), [PiiKind::Iban], "{pos}");
        }
        for neg in [
            "DE88370400440532013000",
            "DE8937040044053201300",
            "XX89370400440532013000",
            "GB82 WEST 1234 5698 7654 3",
        ] {
            assert!(!kinds(neg).contains(&PiiKind::Iban), "{neg}");
        }
        assert_eq!(iban_length("GB"), Some(22));
    }

    #[test]
    fn ip_addresses() {
        for pos in ["192.168.1.1", "host 10.0.0.255.", "0.0.0.0"] {
            assert_eq!(kinds(pos), [PiiKind::Ipv4], "{pos}");
        }
        for pos in [
            "2001:db8::1",
            "fe80::1ff:fe23:4567:890a",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "::ffff:192.0.2.128",
            "::1",
        ] {
            assert_eq!(kinds(pos), [PiiKind::Ipv6], "{pos}");
        }
        for neg in [
            "256.1.1.1",
            "1.2.3.4.5",
            "01.2.3.4",
            "12:30:45",
            "std::fmt",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "12345::1",
        ] {
            assert_eq!(kinds(neg), [], "{neg}");
        }
    }

    #[test]
    fn national_ids() {
        assert_eq!(kinds("ssn 123-45-6789"), [PiiKind::UsSsn]);
        assert_eq!(kinds("123 45 6789"), [PiiKind::UsSsn]);
        for neg in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123456789",
        ] {
            assert_eq!(kinds(neg), [], "{neg}");
        }
        for pos in ["AB123456C", "AB 12 34 56 C", "ni: JG103759A"] {
            assert_eq!(kinds(pos), [PiiKind::UkNino], "{pos}");
        }
        for neg in [
            "DA123456C",
            "AO123456C",
            "GB123456A",
            "AB123456E",
            "AB12345C",
            "XAB123456C",
        ] {
            assert_eq!(kinds(neg), [], "{neg}");
        }
    }

    #[test]
    fn scan_counts_and_masks() {
        let values = [
            "jane@example.com, 555-123-4567",
            "nothing here",
            "4111 1111 1111 1111",
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "d@example.com",
            "e@example.com",
        ];
        let r = scan(&values);
        assert_eq!(r.rows_with_pii, 7);
        assert_eq!(r.findings_by_kind[&PiiKind::Email], 6);
        assert_eq!(r.findings_by_kind[&PiiKind::Phone], 1);
        assert_eq!(r.total_findings(), 8);
        assert_eq!(r.examples[&PiiKind::Email].len(), MAX_EXAMPLES);
        assert_eq!(r.examples[&PiiKind::Email][0], "j***@example.com");
        assert_eq!(r.examples[&PiiKind::Phone][0], "***-***-4567");
        assert_eq!(r.examples[&PiiKind::CreditCard][0], "**** **** **** 1111");
        assert_eq!(scan(&[]), PiiReport::default());
    }

    /// Appends the Luhn check digit.
    fn with_luhn(body: &[u8]) -> Vec<u8> {
        (b'0'..=b'9')
            .map(|d| {
                let mut v = body.to_vec();
                v.push(d);
                v
            })
            .find(|v| luhn_valid(v))
            .unwrap()
    }

    proptest! {
        #[test]
        fn generated_cards_pass_luhn_and_one_digit_changes_fail(body in proptest::collection::vec(b'0'..=b'9', 12..19), pos in 0usize..19, bump in 1u8..10) {
            let card = with_luhn(&body);
            prop_assert!(luhn_valid(&card));
            let text = String::from_utf8(card.clone()).unwrap();
            prop_assert_eq!(kinds(&text), [PiiKind::CreditCard]);
            let mut wrong = card.clone();
            let k = pos % wrong.len();
            wrong[k] = b'0' + (wrong[k] - b'0' + bump) % 10;
            prop_assert!(!luhn_valid(&wrong));
        }

        #[test]
        fn generated_ibans_are_found(country in 0usize..IBAN_LENGTHS.len(), bban in proptest::collection::vec(b'0'..=b'9', 30)) {
            let (code, len) = IBAN_LENGTHS[country];
            let mut iban = code.to_vec();
            iban.extend_from_slice(b"00");
            iban.extend_from_slice(&bban[..len - 4]);
            let check = 98 - iban_mod97(&iban).unwrap();
            iban[2] = b'0' + (check / 10) as u8;
            iban[3] = b'0' + (check % 10) as u8;
            prop_assert_eq!(iban_mod97(&iban), Some(1));
            let text = String::from_utf8(iban.clone()).unwrap();
            prop_assert_eq!(kinds(&text), [PiiKind::Iban]);
            let grouped: Vec<String> = iban.chunks(4).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
            prop_assert_eq!(kinds(&grouped.join(" ")), [PiiKind::Iban]);
            iban[3] = b'0' + (iban[3] - b'0' + 1) % 10;
            let text = String::from_utf8(iban).unwrap();
            prop_assert!(!kinds(&text).contains(&PiiKind::Iban));
        }

        #[test]
        fn scan_never_panics(s in "\\PC{0,40}") {
            let _ = scan(&[s.as_str()]);
        }
    }

    #[test]
    fn k_anonymity_classes() {
        let age = ["30", "30", "30", "40", "40", "50"];
        let zip = ["123", "123", "123", "456", "456", "789"];
        let k = k_anonymity(&[&age, &zip]).unwrap();
        assert_eq!(k.k, 1);
        assert_eq!(k.classes, 3);
        assert_eq!(k.rows, 6);
        assert_eq!(k.size_histogram, [(1, 1), (2, 1), (3, 1)]);
        assert_eq!(k.rows_in_classes_below(1), 0);
        assert_eq!(k.rows_in_classes_below(3), 3);
        assert_eq!(k.rows_in_classes_below(10), 6);
        let k1 = k_anonymity(&[&zip[..5]]).unwrap();
        assert_eq!((k1.k, k1.classes), (2, 2));
        assert!(k_anonymity(&[]).is_err());
        assert!(k_anonymity(&[&age, &zip[..2]]).is_err());
    }

    #[test]
    fn membership_inference_separated() {
        let train = [0.01, 0.02, 0.05, 0.03];
        let holdout = [0.9, 1.2, 0.7, 2.0, 0.8];
        let m = membership_inference(&train, &holdout).unwrap();
        assert_eq!(m.auc, 1.0);
        assert_eq!(m.advantage, 1.0);
        assert_eq!(m.threshold, 0.05);
        // Partial overlap: by hand, τ = 0.5 flags 2/3 members and 0/3.
        let m = membership_inference(&[0.1, 0.5, 0.9], &[0.6, 0.7, 1.0]).unwrap();
        assert!((m.advantage - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.threshold, 0.5);
        assert!((m.auc - 7.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn membership_inference_identical_distributions() {
        let mut rng = Rng::from_seed(7);
        let train: Vec<f64> = (0..20_000).map(|_| rng.normal().abs()).collect();
        let holdout: Vec<f64> = (0..20_000).map(|_| rng.normal().abs()).collect();
        let m = membership_inference(&train, &holdout).unwrap();
        assert!(m.advantage < 0.03, "{m:?}");
        assert!((m.auc - 0.5).abs() < 0.02, "{m:?}");
    }

    #[test]
    fn membership_inference_bad_input() {
        assert!(membership_inference(&[], &[1.0]).is_err());
        assert!(matches!(
            membership_inference(&[1.0, f64::NAN], &[1.0]),
            Err(QualityError::NotFinite { index: 1, .. })
        ));
        let m = membership_inference(&[1.0], &[1.0]).unwrap();
        assert_eq!(
            (m.auc, m.advantage, m.threshold),
            (0.5, 0.0, f64::NEG_INFINITY)
        );
    }

    #[test]
    fn per_row_log_loss_matches_the_mean() {
        let y = [1, 0, 1, 0];
        let p = [0.9, 0.2, 0.4, 0.0];
        let rows = per_row_log_loss(&y, &p, 1).unwrap();
        assert!((rows[0] + 0.9f64.ln()).abs() < 1e-15);
        assert!((rows[1] + 0.8f64.ln()).abs() < 1e-15);
        let mean = rows.iter().sum::<f64>() / 4.0;
        let reference = crate::metrics::classification::log_loss(&y, &p, 1).unwrap();
        assert!((mean - reference).abs() < 1e-12);
        assert!(per_row_log_loss(&y, &[0.5, 1.5, 0.5, 0.5], 1).is_err());
        assert!(per_row_log_loss(&[0, 1, 2], &[0.5; 3], 1).is_err());
    }
}
