//! `keel-lineage` keeps the lineage graph: typed nodes — dataset versions,
//! feature views, training runs, logged models, model versions,
//! deployments — and the edges "this was made from that" between them,
//! recorded by each domain as it acts. A walk from any node answers what it
//! came from (upstream) or what came from it (downstream), as JSON, as an
//! SVG picture ([`svg`]) or as OpenLineage run events ([`openlineage`]).
//!
//! A node's key is `kind:id`, e.g. `dataset:churn-events@3f2a…`,
//! `run:9f0c…`, `model_version:churn/3`, `deployment:churn-prod`.

pub mod openlineage;
mod store;
pub mod svg;

pub use store::Lineage;

use keel_store::{Migration, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The lineage domain's schema steps.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "lineage",
    version: 1,
    description: "lineage nodes and edges",
    sqlite: include_str!("migrations/0001_lineage.sql"),
    postgres: include_str!("migrations/0001_lineage.sql"),
}];

/// Node kinds Keel's domains record, upstream first. Other kinds
/// (lowercase letters, digits, `_`) are accepted too.
pub const KINDS: [&str; 7] = [
    "dataset",
    "feature_view",
    "training_job",
    "run",
    "logged_model",
    "model_version",
    "deployment",
];

/// Most nodes a walk returns.
pub const MAX_WALK_NODES: usize = 10_000;

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// `kind:id`.
    pub key: String,
    pub kind: String,
    /// What people call it (a dataset's name, a run's name, `churn/3`).
    pub name: String,
    /// Whatever the recording domain knows about it (digest, source, …).
    #[serde(default)]
    pub attrs: Value,
    #[serde(default)]
    pub created_at: i64,
}

/// `from` → `to`: `to` was made from, or uses, `from`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `input`, `produced`, `registered_as`, `deployed_as`, …
    pub relation: String,
}

/// A node to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNode {
    pub kind: String,
    pub id: String,
    /// Defaults to `id`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub attrs: Option<Value>,
}

impl NewNode {
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        NewNode {
            kind: kind.into(),
            id: id.into(),
            name: None,
            attrs: None,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn with_attrs(mut self, attrs: Value) -> Self {
        self.attrs = Some(attrs);
        self
    }

    pub fn key(&self) -> String {
        key(&self.kind, &self.id)
    }
}

/// The key of node `id` of `kind`.
pub fn key(kind: &str, id: &str) -> String {
    format!("{kind}:{id}")
}

/// Which way a walk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// What the start node was made from.
    Upstream,
    /// What was made from the start node.
    Downstream,
    Both,
}

/// A walk's answer: the nodes reached (the start first) and the edges
/// among them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub start: String,
    pub direction: Direction,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// True when the walk stopped at its depth or node limit.
    pub truncated: bool,
}

/// What a lineage call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    /// A client mistake; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("lineage node `{0}` does not exist")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LineageError {
    fn from(e: sqlx::Error) -> Self {
        LineageError::Store(StoreError::Database(e))
    }
}

/// Checks a kind (`[a-z][a-z0-9_]*`, at most 64 bytes) and an id (not
/// empty, at most 1,000 bytes, no control characters).
pub fn check_node(field: &str, kind: &str, id: &str) -> Result<(), LineageError> {
    let kind_ok = kind.len() <= 64
        && kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !kind_ok {
        return Err(LineageError::Invalid(format!(
            "{field}.kind: `{kind}` is not a node kind; use lowercase letters, digits and `_` (e.g. {})",
            KINDS.join(", ")
        )));
    }
    if id.is_empty() || id.len() > 1000 || id.chars().any(char::is_control) {
        return Err(LineageError::Invalid(format!(
            "{field}.id: must be 1 to 1000 characters without control characters"
        )));
    }
    Ok(())
}

/// Splits a node key `kind:id`.
pub fn split_key(key: &str) -> Result<(&str, &str), LineageError> {
    let (kind, id) = key.split_once(':').ok_or_else(|| {
        LineageError::Invalid(format!(
            "node: `{key}` is not a node key; write kind:id, e.g. model_version:churn/3"
        ))
    })?;
    check_node("node", kind, id)?;
    Ok((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_and_check() {
        assert_eq!(
            split_key("model_version:churn/3").unwrap(),
            ("model_version", "churn/3")
        );
        assert_eq!(split_key("dataset:a:b").unwrap(), ("dataset", "a:b"));
        assert!(split_key("churn/3").is_err());
        assert!(split_key("Model:x").is_err());
        assert!(split_key("run:").is_err());
        assert!(check_node("nodes[0]", "run", "a\nb").is_err());
    }
}
