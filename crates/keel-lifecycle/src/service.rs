//! One face for the server: the embedded engine on one node, or a cluster
//! node on PostgreSQL. Both answer with the same types.

use std::sync::Arc;

use serde_json::Value;

use crate::cluster::ClusterEngine;
use crate::engine::{
    Applied, DefinitionSummary, Engine, HistoryEntry, InstanceView, LifecycleStats, ListPage,
    ListQuery, SendReport, SendRequest, Started,
};
use crate::error::LifecycleError;
use crate::machine::Machine;

#[derive(Clone)]
pub enum Lifecycles {
    Embedded(Engine),
    Cluster(ClusterEngine),
}

impl Lifecycles {
    pub async fn apply_definition(&self, source: &str) -> Result<Applied, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.apply_definition(source).await,
            Lifecycles::Cluster(c) => c.apply_definition(source).await,
        }
    }

    pub async fn start(
        &self,
        lifecycle: &str,
        key: &str,
        data: Value,
        idempotency_key: Option<String>,
    ) -> Result<Started, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.start(lifecycle, key, data, idempotency_key).await,
            Lifecycles::Cluster(c) => c.start(lifecycle, key, data, idempotency_key).await,
        }
    }

    pub async fn send(&self, request: SendRequest) -> Result<SendReport, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.send(request).await,
            Lifecycles::Cluster(c) => c.send(request).await,
        }
    }

    /// Many events at once; each succeeds or fails on its own.
    pub async fn send_batch(
        &self,
        requests: Vec<SendRequest>,
    ) -> Result<Vec<Result<SendReport, LifecycleError>>, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.send_batch(requests).await,
            Lifecycles::Cluster(c) => {
                let mut out = Vec::with_capacity(requests.len());
                for r in requests {
                    out.push(c.send(r).await);
                }
                Ok(out)
            }
        }
    }

    pub async fn get(&self, lifecycle: &str, key: &str) -> Result<InstanceView, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.get(lifecycle, key).await,
            Lifecycles::Cluster(c) => c.get(lifecycle, key).await,
        }
    }

    pub async fn list(&self, lifecycle: &str, q: &ListQuery) -> Result<ListPage, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.list(lifecycle, q),
            Lifecycles::Cluster(c) => c.list(lifecycle, q).await,
        }
    }

    pub async fn stats(&self, lifecycle: &str) -> Result<LifecycleStats, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.stats(lifecycle),
            Lifecycles::Cluster(c) => c.stats(lifecycle).await,
        }
    }

    pub async fn definitions(&self) -> Result<Vec<DefinitionSummary>, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.definitions(),
            Lifecycles::Cluster(c) => c.definitions().await,
        }
    }

    pub async fn definition(
        &self,
        lifecycle: &str,
        version: Option<u32>,
    ) -> Result<Arc<Machine>, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.definition(lifecycle, version),
            Lifecycles::Cluster(c) => c.definition(lifecycle, version).await,
        }
    }

    pub async fn history(
        &self,
        lifecycle: &str,
        key: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.history(lifecycle, key, limit).await,
            Lifecycles::Cluster(c) => c.history(lifecycle, key, limit).await,
        }
    }

    /// The engine's own figures.
    pub async fn engine_stats(&self) -> Result<Value, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => {
                Ok(serde_json::to_value(e.engine_stats()?).unwrap_or_default())
            }
            Lifecycles::Cluster(c) => Ok(serde_json::json!({
                "node": c.node_name(),
                "owned_partitions": c.owned_partitions().await,
            })),
        }
    }

    /// A snapshot (embedded engine only: a cluster's state is its tables).
    pub async fn snapshot(&self) -> Result<String, LifecycleError> {
        match self {
            Lifecycles::Embedded(e) => e.snapshot().await.map(|p| format!("{p:016x}")),
            Lifecycles::Cluster(_) => Err(LifecycleError::Invalid {
                field: "engine",
                message: "a cluster keeps its state in PostgreSQL; there is no snapshot to write"
                    .into(),
            }),
        }
    }

    pub async fn shutdown(&self) {
        match self {
            Lifecycles::Embedded(e) => {
                let e = e.clone();
                let _ = tokio::task::spawn_blocking(move || e.shutdown()).await;
            }
            Lifecycles::Cluster(c) => c.shutdown().await,
        }
    }
}
