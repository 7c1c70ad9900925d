//! `keel-data` is the dataset catalog: files registered under a name become
//! immutable, content-addressed **versions** — a copy in the artifact store,
//! with the schema, row count and a profile of every column — and SQL runs
//! over them by name.
//!
//! - [`Catalog::register`] copies a Parquet, CSV or Arrow IPC file (or a
//!   folder of them) into `datasets/NAME/DIGEST/` of the artifact store.
//!   The version's id is the first 16 hex digits of its content hash (the
//!   SHA-256 of the file, or of the sorted `path<TAB>sha256` lines of a
//!   folder's files); registering the same content again is a no-op that
//!   answers the existing version. Each version records how its schema
//!   changed from the previous one ([`SchemaChange`]).
//! - [`sql::Engine`] answers SQL with DataFusion; a table name is a
//!   dataset (`churn`, its latest version), or one version (`"churn@v2"`,
//!   `"churn@3f2a9c"`).
//!
//! Version references: `NAME` (latest), `NAME@latest`, `NAME@vN` (the
//! N-th version) or `NAME@HEX` (a prefix of at least 4 digits of the
//! digest).

mod catalog;
pub mod profile;
pub mod schema_change;
pub mod sql;

pub use catalog::{Catalog, Registered, data_files, local_digest};
pub use profile::{ColumnProfile, Profile};
pub use schema_change::{ChangeKind, ColumnChange, SchemaChange};

use keel_store::{ArtifactError, Migration, StoreError};
use serde::{Deserialize, Serialize};

/// The catalog's schema steps.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "data",
    version: 1,
    description: "datasets and their versions",
    sqlite: include_str!("migrations/0001_datasets.sql"),
    postgres: include_str!("migrations/0001_datasets.sql"),
}];

/// Hex digits of the content hash that name a version.
pub const VERSION_ID_LEN: usize = 16;

/// What goes wrong in the catalog. `Invalid` and `NotFound` are the
/// caller's to fix (4xx); the others are the system's.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Bad input; the message names the offending field or path.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The files changed while being registered, or a concurrent
    /// registration won; retrying is safe.
    #[error("{0}")]
    Conflict(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The SQL engine's error: a bad query is the caller's to fix.
    #[error("{0}")]
    Sql(String),
    #[error("the catalog holds a damaged record: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for DataError {
    fn from(e: sqlx::Error) -> Self {
        DataError::Store(StoreError::from(e))
    }
}

impl From<datafusion::error::DataFusionError> for DataError {
    /// Planning and execution errors alike describe the query or the files
    /// it read; context wrappers keep their words in front.
    fn from(e: datafusion::error::DataFusionError) -> Self {
        DataError::Sql(e.strip_backtrace().to_string())
    }
}

/// The file formats a dataset can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
    Arrow,
}

impl Format {
    /// The format a file name's extension says.
    pub fn of_path(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        match ext {
            "parquet" | "pq" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            "arrow" | "feather" | "ipc" | "arrows" => Some(Format::Arrow),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Arrow => "arrow",
        }
    }
}

/// One column of a version's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// Arrow's type, as Arrow prints it (`Int64`, `Utf8`, `Timestamp(µs, "UTC")`).
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Relative to the version's folder (a registered single file keeps
    /// its file name).
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A named dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub description: Option<String>,
    pub latest_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One immutable version of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetVersion {
    pub name: String,
    /// 1, 2, … in registration order (`NAME@vN`).
    pub version: i64,
    /// The first [`VERSION_ID_LEN`] hex digits of `digest`.
    pub id: String,
    /// SHA-256 of the content (see the crate docs).
    pub digest: String,
    pub format: Format,
    /// Where it was registered from.
    pub source: String,
    /// The folder of its copy in the artifact store.
    pub location: String,
    pub columns: Vec<Column>,
    pub row_count: i64,
    pub size_bytes: i64,
    pub files: Vec<DataFile>,
    pub profile: Profile,
    pub schema_change: SchemaChange,
    pub created_at: i64,
    pub actor: Option<String>,
    /// `dataset:NAME@ID`, its node in the lineage graph.
    pub lineage_node: String,
}

/// The lineage key of a dataset version: the same `NAME@ID` form MLflow
/// dataset inputs get, so the two meet in the graph.
pub fn lineage_id(name: &str, id: &str) -> String {
    format!("{name}@{id}")
}

/// A parsed version reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(i64),
    Digest(String),
}

/// Splits `NAME[@REF]` (see the crate docs).
pub fn parse_ref(text: &str) -> Result<(String, VersionRef), DataError> {
    let (name, version) = match text.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (text, None),
    };
    check_name(name)?;
    let version = match version {
        None | Some("latest") => VersionRef::Latest,
        Some(v) => {
            if let Some(n) = v.strip_prefix('v').and_then(|n| n.parse::<i64>().ok())
                && n > 0
            {
                VersionRef::Number(n)
            } else if v.len() >= 4 && v.len() <= 64 && v.chars().all(|c| c.is_ascii_hexdigit()) {
                VersionRef::Digest(v.to_ascii_lowercase())
            } else {
                return Err(DataError::Invalid(format!(
                    "version `{v}` of `{text}`: write `latest`, `vN` (the N-th version) or at least 4 hex digits of the version id"
                )));
            }
        }
    };
    Ok((name.to_owned(), version))
}

/// A dataset name: letters, digits, `_`, `-` and `.`, starting with a
/// letter or digit, at most 128 characters.
pub fn check_name(name: &str) -> Result<(), DataError> {
    if keel_core::is_plain_name(name) {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "name: `{name}` is not a dataset name; use letters, digits, `_`, `-` and `.` (at most 128, starting with a letter or digit)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse() {
        assert_eq!(
            parse_ref("churn").unwrap(),
            ("churn".into(), VersionRef::Latest)
        );
        assert_eq!(
            parse_ref("churn@latest").unwrap(),
            ("churn".into(), VersionRef::Latest)
        );
        assert_eq!(
            parse_ref("churn@v12").unwrap(),
            ("churn".into(), VersionRef::Number(12))
        );
        assert_eq!(
            parse_ref("churn@3F2A").unwrap(),
            ("churn".into(), VersionRef::Digest("3f2a".into()))
        );
        for bad in [
            "",
            "@v1",
            "churn@v0",
            "churn@x",
            "churn@abc",
            "a b",
            "-x",
            "churn@v",
        ] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_follow_extensions() {
        assert_eq!(Format::of_path("a/b.PARQUET"), Some(Format::Parquet));
        assert_eq!(Format::of_path("x.csv"), Some(Format::Csv));
        assert_eq!(Format::of_path("x.feather"), Some(Format::Arrow));
        assert_eq!(Format::of_path("x.json"), None);
        assert_eq!(Format::of_path("noext"), None);
    }
}
