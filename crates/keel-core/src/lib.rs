//! `keel-core` holds what every Keel domain shares: ids, time, SQL text
//! building, a YAML reader that keeps line and column for error messages,
//! "did you mean" hints, and the small error vocabulary. It knows nothing about HTTP, databases
//! or any one domain.

pub mod alloc;
pub mod duration;
pub mod sql;
pub mod suggest;
pub mod time;
pub mod yaml;

/// A name Keel uses as a path segment and a URL segment (datasets, served
/// models): letters, digits, `_`, `-` and `.`, starting with a letter or
/// digit (so never `.` or `..`), at most 128 characters.
pub fn is_plain_name(name: &str) -> bool {
    name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
