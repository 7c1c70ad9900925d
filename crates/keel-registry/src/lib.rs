//! `keel-registry` owns the model registry: registered models, their
//! versions, tags, aliases and (for older clients) stages, in the metadata
//! store's registry tables. It knows nothing about HTTP or MLflow's JSON;
//! the server maps its types to the wire.

mod filter;
mod store;

pub use filter::{Condition, FilterError, parse_filter};
pub use store::Registry;

use keel_store::{Migration, StoreError};

/// The registry domain's schema steps.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "registry",
    version: 1,
    description: "registered models, model versions, tags, aliases",
    sqlite: include_str!("migrations/0001_registry.sql"),
    postgres: include_str!("migrations/0001_registry.sql"),
}];

/// A tag (key, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    /// (alias, version)
    pub aliases: Vec<(String, i64)>,
    /// The newest version in each stage.
    pub latest_versions: Vec<ModelVersion>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub current_stage: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub status: String,
    pub storage_location: Option<String>,
    pub model_id: Option<String>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
}

/// What [`Registry::create_model_version`] needs.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    /// Where the artifacts are (resolved by the caller from a `runs:/` or
    /// `models:/` source); `get-download-uri` answers with it.
    pub storage_location: Option<String>,
    pub model_id: Option<String>,
}

/// A search's arguments.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub filter: String,
    pub max_results: Option<i64>,
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// Stages MLflow's older clients still move versions between.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// What a registry call can fail with; each maps to one MLflow error code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `RESOURCE_DOES_NOT_EXIST`
    #[error("{0}")]
    NotFound(String),
    /// `RESOURCE_ALREADY_EXISTS`
    #[error("{0}")]
    AlreadyExists(String),
    /// `INVALID_PARAMETER_VALUE`
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        RegistryError::Store(StoreError::Database(e))
    }
}
