//! `keel-core` holds what every Keel domain shares: ids, time, SQL text
//! building, a YAML reader that keeps line and column for error messages,
//! "did you mean" hints, and the small error vocabulary. It knows nothing about HTTP, databases
//! or any one domain.

pub mod sql;
pub mod suggest;
pub mod time;
pub mod yaml;
