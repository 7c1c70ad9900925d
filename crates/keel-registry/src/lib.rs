//! `keel-registry` owns the model registry: registered models, their
//! versions, tags, aliases and (for older clients) stages, in the metadata
//! store's registry tables, and what a model store adds: artifact
//! digests, signatures and dependencies read from a model's files
//! ([`inspect`]), checkpoints, model cards ([`card`]), alias history and
//! retraining policies. It knows nothing about HTTP; the server maps its
//! types to MLflow's wire and to Keel's `/v1` JSON.

pub mod card;
mod filter;
pub mod inspect;
mod model_store;
mod store;

pub use filter::{Condition, FilterError, parse_filter};
pub use model_store::{
    AliasChange, Checkpoint, ModelCardRecord, RegisteredFile, RetrainingPolicy, RetrainingTrigger,
    SuiteRecord, TRIGGER_KINDS, VersionExtras, onnx_model_file, suite_tag,
};
pub use store::Registry;

use keel_store::{Migration, StoreError};

/// The registry domain's schema steps.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        domain: "registry",
        version: 1,
        description: "registered models, model versions, tags, aliases",
        sqlite: include_str!("migrations/0001_registry.sql"),
        postgres: include_str!("migrations/0001_registry.sql"),
    },
    Migration {
        domain: "registry",
        version: 2,
        description: "artifact digests, signatures, dependencies, checkpoints, model cards, alias history, retraining",
        sqlite: include_str!("migrations/0002_model_store.sql"),
        postgres: include_str!("migrations/0002_model_store.sql"),
    },
    Migration {
        domain: "registry",
        version: 3,
        description: "quality-suite results attached to model versions",
        sqlite: include_str!("migrations/0003_suite_results.sql"),
        postgres: include_str!("migrations/0003_suite_results.sql"),
    },
];

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
    /// The artifact-store directory of the version's files, when Keel's
    /// artifact store holds them; nothing below it may change afterwards.
    pub artifact_root: Option<String>,
    /// Every file below `artifact_root` with its digest.
    pub files: Vec<VersionFile>,
    /// Input/output schemas (JSON), from `MLmodel`, an ONNX graph or given.
    pub signature: Option<serde_json::Value>,
    /// Frameworks, requirements, code and image the version needs (JSON).
    pub dependencies: Option<serde_json::Value>,
}

/// One artifact file of a version as it was at registration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VersionFile {
    /// Relative to the version's artifact root.
    pub path: String,
    /// Where the artifact store keeps it.
    pub store_path: String,
    pub size: i64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
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
