use crate::definition::Problem;
use crate::point_in_time::PointInTimeError;

/// What the feature store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The definitions have problems; every one found is listed, sorted by
    /// file and position. A client mistake (400 at an HTTP edge).
    #[error("{}", lines(.0))]
    Definitions(Vec<Problem>),
    /// A file or folder of the repo could not be read.
    #[error("feature repo {path}: {source}; check that it exists and is readable")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Bad input other than definitions (an entity file without its
    /// timestamp column, …); the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// What was applied changed under the request; retrying is safe.
    #[error("{0}")]
    Conflict(String),
    /// The point-in-time join refused its input.
    #[error(transparent)]
    Join(Box<PointInTimeError>),
    /// Reading sources or datasets.
    #[error(transparent)]
    Data(#[from] keel_data::DataError),
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
    /// Writing the training set.
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    /// The online store failed (unreachable Redis, a locked file).
    #[error("{0}")]
    Online(String),
    #[error("the feature store holds a damaged record: {0}")]
    Corrupt(String),
}

impl From<PointInTimeError> for FeatureError {
    fn from(e: PointInTimeError) -> Self {
        FeatureError::Join(Box::new(e))
    }
}

impl From<sqlx::Error> for FeatureError {
    fn from(e: sqlx::Error) -> Self {
        FeatureError::Store(keel_store::StoreError::from(e))
    }
}

impl From<datafusion::error::DataFusionError> for FeatureError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        FeatureError::Data(keel_data::DataError::from(e))
    }
}

/// One `file:line:column: path: message` line per problem.
fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}
