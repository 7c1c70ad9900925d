//! Runs a model-quality suite (see `keel_quality::suite`): loads its data
//! and model, resolves its slices, runs each check with keel-quality's
//! metrics, and reports pass, fail or error per check with the measured
//! value, the threshold and evidence.
//!
//! `keel_quality` stays pure (columns in, numbers out); this crate knows
//! files (Parquet and CSV through DataFusion, which also evaluates the
//! slices' SQL predicates) and models (ONNX through keel-serve).

mod checks;
pub mod data;
pub mod model;
pub mod report;
pub mod run;

/// Why a suite could not run at all (a check that cannot run is an `error`
/// result instead, and the others still run).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{0}")]
    Suite(#[from] keel_quality::suite::SuiteError),
    #[error("data.{dataset}: {message}")]
    Data { dataset: String, message: String },
    #[error("slices.{slice}: {message}")]
    Slice { slice: String, message: String },
    #[error("model: {0}")]
    Model(String),
    #[error("{0}")]
    Io(String),
}
