//! The one error type of filter and order_by parsing.

use std::fmt;

/// Why a filter or an order_by clause was rejected.
///
/// `position` is the byte offset of the offending token in the filter (or in
/// the order_by clause), `near` its text (empty at the end of the input), and
/// `message` says what was wrong and what was expected. `clause` is the
/// index of the order_by clause at fault, `None` for a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Described(self))]
pub struct FilterError {
    pub position: usize,
    pub near: String,
    pub message: String,
    pub clause: Option<usize>,
}

/// The longest `near` text kept, in characters.
const NEAR_MAX_CHARS: usize = 40;

impl FilterError {
    pub(super) fn new(position: usize, near: &str, message: impl Into<String>) -> Self {
        let near = if near.chars().count() > NEAR_MAX_CHARS {
            let mut cut: String = near.chars().take(NEAR_MAX_CHARS).collect();
            cut.push('…');
            cut
        } else {
            near.to_owned()
        };
        FilterError {
            position,
            near,
            message: message.into(),
            clause: None,
        }
    }
}

struct Described<'a>(&'a FilterError);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        match e.clause {
            None => f.write_str("invalid filter")?,
            Some(i) => write!(f, "invalid order_by[{i}]")?,
        }
        if e.near.is_empty() {
            write!(f, " at end of input (character {})", e.position)?;
        } else {
            write!(f, " at character {} near '{}'", e.position, e.near)?;
        }
        write!(f, ": {}", e.message)
    }
}
