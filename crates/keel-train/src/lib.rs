//! `keel-train` runs training jobs for many teams on shared machines: job
//! specs ([`spec`]), the scheduling policy with weighted fair share, quotas
//! and rate limits ([`scheduler`]), the durable queue and billing ledger
//! ([`store`]), the local executor ([`local`]: a supervised process per
//! attempt, with measured usage) and the service that ties them to the
//! tracking server ([`service`]).

pub mod local;
pub mod ray;
pub mod scheduler;
pub mod service;
pub mod spec;
pub mod store;

pub use service::{Training, TrainingConfig};
pub use store::MIGRATIONS;

/// What can go wrong with a training request.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A request or spec that cannot be accepted; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error("job {0} does not exist")]
    NotFound(i64),
    /// Too many submissions: retry after this many seconds.
    #[error("tenant {tenant} submits more than {rate}/s; retry in {retry_after:.1} s")]
    RateLimited {
        tenant: String,
        rate: f64,
        retry_after: f64,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("executor: {0}")]
    Executor(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("tracking: {0}")]
    Tracking(String),
}
