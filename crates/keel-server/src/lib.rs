//! `keel-server` is Keel's HTTP application: the MLflow-compatible tracking
//! API and artifact proxy, `/health`, `/metrics` and `server-info`. It maps
//! wire formats to domain calls and back; it owns no state of its own
//! beyond request and model metrics, and no domain logic.

pub mod artifacts;
pub mod data;
pub mod experiments;
pub mod inference;
pub mod lifecycle;
pub mod metrics;
pub mod mlflow;
pub mod model_metrics;
pub mod models;
pub mod monitor;
pub mod online;
pub mod predict;
pub mod process_metrics;
pub mod train;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router, middleware};
use keel_store::ArtifactStore;
use keel_tracking::Tracking;
use serde_json::json;
use tower_http::trace::TraceLayer;

pub use metrics::HttpMetrics;

/// What every handler can reach. The router hands every request its own
/// clone of the state, so it is one reference count: the services sit
/// behind an `Arc` and are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
#[derive(Clone)]
pub struct Services {
    pub tracking: Tracking,
    pub artifacts: ArtifactStore,
    pub metrics: Arc<HttpMetrics>,
    /// Inference and prediction counters and histograms for `/metrics`.
    pub model_metrics: Arc<model_metrics::ModelMetrics>,
    /// The lifecycle engine (absent in tools that serve tracking only).
    pub lifecycle: Option<keel_lifecycle::Lifecycles>,
    /// The model registry (on the same metadata store as tracking).
    pub registry: Option<keel_registry::Registry>,
    /// The lineage graph (on the same metadata store).
    pub lineage: Option<keel_lineage::Lineage>,
    /// The dataset catalog (metadata store + artifact store).
    pub catalog: Option<keel_data::Catalog>,
    /// The feature store (on the same stores as the catalog).
    pub features: Option<keel_features::FeatureStore>,
    /// The online feature store and feature server.
    pub online: Option<keel_features::online::OnlineFeatures>,
    /// Served models (empty unless a model repository is given).
    pub inference: Arc<keel_serve::repository::Repository>,
    /// Predictions of `/v1/predict`, waiting to be flushed.
    pub predictions: Arc<predict::PredictionLog>,
    /// Deployments and live experiments (absent in tools that do not run them).
    pub experiments: Option<Arc<keel_experiment::Deployments>>,
    /// The training scheduler (only in `keel server`).
    pub training: Option<keel_train::Training>,
    /// Training jobs and the billing ledger, for reading.
    pub jobs: Option<keel_train::store::JobStore>,
    /// Where jobs' directories (logs) live.
    pub jobs_dir: Option<std::path::PathBuf>,
    /// Alert rules and metric series (absent in tools that do not monitor).
    pub monitor: Option<keel_monitor::alert::MonitorStore>,
}

impl AppState {
    pub fn new(tracking: Tracking, artifacts: ArtifactStore) -> Self {
        Self(Arc::new(Services {
            tracking,
            artifacts,
            metrics: Arc::new(HttpMetrics::default()),
            model_metrics: Arc::default(),
            lifecycle: None,
            registry: None,
            lineage: None,
            catalog: None,
            features: None,
            online: None,
            inference: Arc::new(keel_serve::repository::Repository::new(None)),
            predictions: Arc::new(predict::PredictionLog::default()),
            experiments: None,
            training: None,
            jobs: None,
            jobs_dir: None,
            monitor: None,
        }))
    }

    /// The services, to set while the state is built (copied if a clone
    /// is already out, which only happens before serving starts).
    fn parts(&mut self) -> &mut Services {
        Arc::make_mut(&mut self.0)
    }

    /// Monitoring's alert rules and metric series.
    pub fn with_monitor(mut self, store: keel_monitor::alert::MonitorStore) -> Self {
        self.parts().monitor = Some(store);
        self
    }

    /// Training jobs for reading (`jobs_dir` holds their logs).
    pub fn with_jobs(
        mut self,
        store: keel_train::store::JobStore,
        jobs_dir: std::path::PathBuf,
    ) -> Self {
        let parts = self.parts();
        parts.jobs = Some(store);
        parts.jobs_dir = Some(jobs_dir);
        self
    }

    /// The training scheduler that takes submissions.
    pub fn with_training(mut self, training: keel_train::Training) -> Self {
        let parts = self.parts();
        parts.jobs = Some(training.store().clone());
        parts.jobs_dir = Some(training.config().jobs_dir.clone());
        parts.training = Some(training);
        self
    }

    /// Deployments and their decision log.
    pub fn with_experiments(mut self, deployments: Arc<keel_experiment::Deployments>) -> Self {
        self.parts().experiments = Some(deployments);
        self
    }

    /// The dataset catalog and the feature store over it.
    pub fn with_data(mut self, catalog: keel_data::Catalog) -> Self {
        self.parts().features = Some(keel_features::FeatureStore::new(
            catalog.db().clone(),
            catalog.clone(),
        ));
        self.parts().catalog = Some(catalog);
        self
    }

    /// The online store behind the feature server (after `with_data`).
    pub fn with_online(mut self, store: keel_online::SharedStore) -> Self {
        if let Some(features) = self.features.clone() {
            self.parts().online = Some(keel_features::online::OnlineFeatures::new(features, store));
        }
        self
    }

    /// The models to serve over Open Inference Protocol V2.
    pub fn with_inference(mut self, repository: Arc<keel_serve::repository::Repository>) -> Self {
        self.parts().inference = repository;
        self
    }

    pub fn with_registry(mut self, registry: keel_registry::Registry) -> Self {
        self.parts().registry = Some(registry);
        self
    }

    pub fn with_lineage(mut self, lineage: keel_lineage::Lineage) -> Self {
        self.parts().lineage = Some(lineage);
        self
    }

    /// Records lineage after the write it describes has committed. A
    /// failure is logged, not returned: the client's write did happen, and
    /// an error would invite a retry that writes it twice.
    pub async fn record_lineage(
        &self,
        nodes: Vec<keel_lineage::NewNode>,
        edges: Vec<keel_lineage::Edge>,
    ) {
        if let Some(l) = &self.lineage
            && let Err(e) = l.record(nodes, edges).await
        {
            tracing::warn!(error = %e, "lineage not recorded");
        }
    }

    pub fn with_lifecycle(mut self, engine: keel_lifecycle::Lifecycles) -> Self {
        self.parts().lifecycle = Some(engine);
        self
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let tracking = mlflow::routes().layer(DefaultBodyLimit::max(mlflow::request::MAX_JSON_BODY));
    let artifacts = artifacts::routes().layer(DefaultBodyLimit::disable());
    Router::new()
        .nest("/api/2.0/mlflow", tracking.clone())
        .nest("/ajax-api/2.0/mlflow", tracking)
        .nest("/api/2.0/mlflow-artifacts", artifacts.clone())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts)
        .nest(
            "/v1",
            lifecycle::routes()
                .merge(models::routes())
                .merge(data::routes())
                .merge(online::routes())
                .merge(predict::routes())
                .merge(experiments::routes())
                .merge(train::routes())
                .merge(monitor::routes())
                .layer(DefaultBodyLimit::max(4 * 1024 * 1024)),
        )
        .merge(online::feast_routes().layer(DefaultBodyLimit::max(online::MAX_BODY)))
        .merge(inference::routes().layer(DefaultBodyLimit::disable()))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .route("/metrics", get(render_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn server_info() -> impl IntoResponse {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {"gateway": false},
        "keel_version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn render_metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut text = s.metrics.render();
    s.model_metrics
        .render(&mut text, s.predictions.pending_lines());
    process_metrics::render(&mut text);
    if let Some(engine) = &s.lifecycle
        && let Ok(stats) = engine.engine_stats().await
    {
        lifecycle_metrics(&mut text, &stats);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The lifecycle engine's figures in the exposition format.
fn lifecycle_metrics(out: &mut String, stats: &serde_json::Value) {
    use std::fmt::Write;
    let series = [
        (
            "keel_lifecycle_instances",
            "gauge",
            "Lifecycle instances held by this node.",
            "instances",
        ),
        (
            "keel_lifecycle_pending_timers",
            "gauge",
            "Timers waiting in the queue (stale ones included until they come due).",
            "pending_timers",
        ),
        (
            "keel_lifecycle_inputs_applied_total",
            "counter",
            "Inputs (events, timers, action results) applied.",
            "inputs_applied",
        ),
        (
            "keel_lifecycle_snapshots_total",
            "counter",
            "Snapshots written since start.",
            "snapshots_written",
        ),
        (
            "keel_lifecycle_recovery_seconds",
            "gauge",
            "Time the last start took to recover the log.",
            "recovery_ms",
        ),
    ];
    for (name, kind, help, field) in series {
        let Some(v) = stats.get(field).and_then(serde_json::Value::as_f64) else {
            continue;
        };
        let v = if field == "recovery_ms" {
            v / 1000.0
        } else {
            v
        };
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        );
    }
    if let Some(parts) = stats
        .get("owned_partitions")
        .and_then(serde_json::Value::as_array)
    {
        let _ = write!(
            out,
            "# HELP keel_lifecycle_owned_partitions Lifecycle partitions this cluster node owns.\n# TYPE keel_lifecycle_owned_partitions gauge\nkeel_lifecycle_owned_partitions {}\n",
            parts.len()
        );
    }
}

async fn method_not_allowed(req: Request) -> impl IntoResponse {
    mlflow::error::ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "BAD_REQUEST",
        message: format!(
            "{} is not allowed on '{}'; see the MLflow REST API for the method of each endpoint",
            req.method(),
            req.uri().path()
        ),
    }
}

async fn not_found(req: Request) -> impl IntoResponse {
    mlflow::error::ApiError::endpoint_not_found(req.uri().path())
}

/// Serves the application on `listener` until `shutdown` completes, then
/// lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a streamed body's last segment waits for the
    // client's delayed ACK: about 40 ms on every artifact download.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
