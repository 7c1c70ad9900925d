use std::path::Path;

use crate::log::LogError;
use crate::machine::Rejection;
use crate::parse::DefinitionErrors;

/// What a lifecycle call can fail with; each variant maps to one HTTP
/// status at the edge.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// 400: the definition has problems, each with its line and column.
    #[error("{0}")]
    Definition(#[from] DefinitionErrors),
    /// 400: a request field is wrong.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// 404
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: &'static str, name: String },
    /// 409: the instance's state does not accept the event (nothing written).
    #[error("{0}")]
    Rejected(Rejection),
    /// 413
    #[error(
        "data is {size} bytes of JSON; the limit is {limit}. Put large payloads in the artifact store and send their URI"
    )]
    PayloadTooLarge { size: usize, limit: usize },
    /// 503: the engine stopped (a log write failed) and needs a restart.
    #[error("{0}")]
    Unavailable(String),
    /// 500
    #[error(transparent)]
    Log(#[from] LogError),
    /// 500: the cluster's PostgreSQL store.
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
    /// An error another cluster node gave for an inbox row, with the HTTP
    /// status it maps to.
    #[error("{message}")]
    Remote { status: u16, message: String },
    /// 500: the log and the definitions disagree during recovery.
    #[error("lifecycle log replay: {0}")]
    Replay(String),
    /// 500
    #[error("lifecycle data directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl LifecycleError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        LifecycleError::Invalid {
            field,
            message: message.into(),
        }
    }
    pub(crate) fn not_found(kind: &'static str, name: &str) -> Self {
        LifecycleError::NotFound {
            kind,
            name: name.to_owned(),
        }
    }
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LifecycleError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
