use keel_store::StoreError;

use crate::search::FilterError;

/// What a tracking call can fail with. Each variant maps to one stable
/// public code (MLflow's `error_code`) at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    /// `RESOURCE_DOES_NOT_EXIST`
    #[error("{kind} '{id}' does not exist")]
    NotFound { kind: &'static str, id: String },
    /// `RESOURCE_ALREADY_EXISTS`
    #[error("{0}")]
    AlreadyExists(String),
    /// `INVALID_PARAMETER_VALUE`: the field and what is wrong with it.
    #[error("{0}")]
    InvalidParameter(String),
    /// `INVALID_PARAMETER_VALUE` from a search filter or order_by.
    #[error("{0}")]
    Filter(#[from] FilterError),
    /// `INTERNAL_ERROR`
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TrackingError {
    fn from(e: sqlx::Error) -> Self {
        TrackingError::Store(StoreError::Database(e))
    }
}

impl TrackingError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        TrackingError::InvalidParameter(msg.into())
    }
    pub(crate) fn run_not_found(id: &str) -> Self {
        TrackingError::NotFound {
            kind: "Run",
            id: id.to_owned(),
        }
    }
    pub(crate) fn experiment_not_found(id: impl ToString) -> Self {
        TrackingError::NotFound {
            kind: "Experiment",
            id: id.to_string(),
        }
    }
}
