//! `keel-monitor` watches deployed models:
//!
//! * [`profile`] — mergeable per-column summaries (counts, moments, a KLL
//!   quantile sketch, HyperLogLog, frequent items, histograms on fixed
//!   edges), with an exact mode for small data;
//! * [`drift`] — per-column drift with Evidently's default method choice and
//!   explicit thresholds and comparators, and dataset drift by the share of
//!   drifted columns;
//! * [`table`] — columns read from Parquet one at a time;
//! * [`report`] — the drift report as HTML with SVG plots.
//!
//! The two-sample statistics themselves live in `keel_stats::twosample`.

pub mod alert;
pub mod drift;
pub mod log;
pub mod performance;
pub mod profile;
pub mod report;
pub mod sort;
pub mod table;

/// What monitoring fails with; every variant names what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path} is not a readable Parquet file: {message}")]
    Parquet { path: String, message: String },
    #[error("{path} has no column {column}")]
    MissingColumn { path: String, column: String },
    #[error("{path}: column {column}: {message}")]
    ColumnType {
        path: String,
        column: String,
        message: String,
    },
    #[error("column {column}: {message}")]
    Statistics { column: String, message: String },
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
    #[error("metadata store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored monitoring data is corrupt: {0}")]
    Corrupt(String),
}

impl MonitorError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        MonitorError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
