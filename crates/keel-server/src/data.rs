//! `/v1/datasets…` (the dataset catalog and SQL over it) and
//! `/v1/features…` (feature repo plans and applies, training sets).
//!
//! Paths in requests (`path`, `repo_dir`, `entities`, `out`) are read and
//! written by the server, so they must be absolute: the command-line tool
//! sends the absolute form of what it was given. A dataset's `path` may
//! also be an object-store URL (`s3://bucket/key.parquet`, a folder URL).

use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_data::{Catalog, DataError};
use keel_features::store::training::{Manifest, TrainingSetRequest};
use keel_features::{FeatureError, FeatureStore};
use keel_lineage::{Edge, NewNode};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::lifecycle::V1Error;
use crate::models::{actor, field_of};

type V1Result = Result<Response, V1Error>;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/datasets", get(list_datasets).post(register))
        .route("/datasets/query", post(query))
        .route("/datasets/{name}", get(show_dataset))
        .route("/datasets/{name}/versions/{version}", get(show_version))
        .route("/features", get(current_repo))
        .route("/features/plan", post(plan))
        .route("/features/apply", post(apply))
        .route("/features/training-set", post(training_set))
}

impl From<DataError> for V1Error {
    fn from(e: DataError) -> Self {
        let message = e.to_string();
        let (status, code, field) = match &e {
            DataError::Invalid(_) => (
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                field_of(&message),
            ),
            DataError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND", None),
            DataError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT", None),
            DataError::Read { .. } => (
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                Some("path".to_owned()),
            ),
            DataError::Sql(_) => (
                StatusCode::BAD_REQUEST,
                "INVALID_SQL",
                Some("sql".to_owned()),
            ),
            DataError::Store(_) | DataError::Artifact(_) | DataError::Corrupt(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", None)
            }
        };
        V1Error {
            field,
            ..V1Error::new(status, code, message)
        }
    }
}

impl From<FeatureError> for V1Error {
    fn from(e: FeatureError) -> Self {
        let message = e.to_string();
        let bad = |field: Option<String>| V1Error {
            field,
            ..V1Error::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message.clone())
        };
        match e {
            FeatureError::Definitions(problems) => V1Error {
                field: Some("files".into()),
                problems: serde_json::to_value(&problems).ok(),
                ..V1Error::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DEFINITION",
                    format!(
                        "the feature repo has {} problem(s):\n{message}",
                        problems.len()
                    ),
                )
            },
            FeatureError::Invalid(_) => bad(field_of(&message)),
            FeatureError::Io { .. } => bad(Some("repo_dir".into())),
            FeatureError::Join(_) => bad(Some("entities".into())),
            FeatureError::NotFound(_) => V1Error {
                field: field_of(&message),
                ..V1Error::not_found(message)
            },
            FeatureError::Conflict(_) => V1Error::new(StatusCode::CONFLICT, "CONFLICT", message),
            FeatureError::Data(d) => d.into(),
            FeatureError::Online(_) => V1Error::unavailable(message),
            FeatureError::Store(_) | FeatureError::Write { .. } | FeatureError::Corrupt(_) => {
                V1Error::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
            }
        }
    }
}

fn catalog(s: &AppState) -> Result<&Catalog, V1Error> {
    s.catalog
        .as_ref()
        .ok_or_else(|| V1Error::unavailable("the dataset catalog is not running on this server"))
}

fn features(s: &AppState) -> Result<&FeatureStore, V1Error> {
    s.features
        .as_ref()
        .ok_or_else(|| V1Error::unavailable("the feature store is not running on this server"))
}

/// An absolute path from a request field.
fn absolute(field: &str, text: &str) -> Result<PathBuf, V1Error> {
    if text.is_empty() {
        return Err(V1Error::invalid(field, "required"));
    }
    let p = PathBuf::from(text);
    if !p.is_absolute() {
        return Err(V1Error::invalid(
            field,
            format!(
                "`{text}` must be an absolute path: the server reads it, from its own working directory"
            ),
        ));
    }
    Ok(p)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    name: String,
    path: String,
    #[serde(default)]
    description: Option<String>,
}

async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RegisterBody>,
) -> V1Result {
    let c = catalog(&s)?;
    let who = Some(actor(&headers));
    let done = if body.path.contains("://") && !body.path.starts_with("file://") {
        c.register_url(&body.name, &body.path, body.description, who)
            .await?
    } else {
        let path = absolute("path", body.path.trim_start_matches("file://"))?;
        c.register(&body.name, &path, body.description, who).await?
    };
    if done.created {
        let v = &done.version;
        s.record_lineage(
            vec![
                NewNode::new("dataset", keel_data::lineage_id(&v.name, &v.id))
                    .named(v.name.clone())
                    .with_attrs(json!({
                        "digest": v.digest,
                        "version": v.version,
                        "rows": v.row_count,
                        "format": v.format,
                        "catalog": true,
                    })),
            ],
            Vec::new(),
        )
        .await;
    }
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done)).into_response())
}

async fn list_datasets(State(s): State<AppState>) -> V1Result {
    let list = catalog(&s)?.list().await?;
    Ok(Json(json!({ "datasets": list })).into_response())
}

async fn show_dataset(State(s): State<AppState>, UrlPath(name): UrlPath<String>) -> V1Result {
    let c = catalog(&s)?;
    let dataset = c.dataset(&name).await?;
    let versions = c.versions(&name).await?;
    Ok(Json(json!({ "dataset": dataset, "versions": versions })).into_response())
}

async fn show_version(
    State(s): State<AppState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> V1Result {
    let v = catalog(&s)?.resolve(&format!("{name}@{version}")).await?;
    Ok(Json(json!({ "version": v })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: String,
    #[serde(default)]
    limit: Option<usize>,
}

async fn query(State(s): State<AppState>, Json(body): Json<QueryBody>) -> V1Result {
    let limit = body.limit.unwrap_or(keel_data::sql::DEFAULT_LIMIT);
    if limit == 0 || limit > 1_000_000 {
        return Err(V1Error::invalid("limit", "must be between 1 and 1000000"));
    }
    if body.sql.trim().is_empty() {
        return Err(V1Error::invalid("sql", "required"));
    }
    let result = catalog(&s)?.engine().query(&body.sql, limit).await?;
    Ok(Json(result).into_response())
}

async fn current_repo(State(s): State<AppState>) -> V1Result {
    match features(&s)?.current().await? {
        Some(applied) => Ok(Json(applied).into_response()),
        None => Err(V1Error::not_found(
            "no feature repo is applied; run `keel features apply REPO_DIR`",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    files: Vec<keel_features::definition::RepoFile>,
    repo_dir: String,
    /// The version the client's plan was made against.
    #[serde(default)]
    expected_version: Option<i64>,
}

async fn plan(State(s): State<AppState>, Json(body): Json<ApplyBody>) -> V1Result {
    apply_or_plan(&s, None, body, true).await
}

async fn apply(
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<ApplyBody>,
) -> V1Result {
    apply_or_plan(&s, Some(actor(&headers)), body, false).await
}

async fn apply_or_plan(
    s: &AppState,
    actor: Option<String>,
    body: ApplyBody,
    dry_run: bool,
) -> V1Result {
    let store = features(s)?;
    let dir = absolute("repo_dir", &body.repo_dir)?;
    let outcome = store
        .apply(&body.files, &dir, dry_run, body.expected_version, actor)
        .await?;
    if outcome.applied
        && let Some(applied) = store.current().await?
    {
        record_view_lineage(s, store, &applied.repo).await;
    }
    if outcome.applied
        && let Some(online) = &s.online
    {
        online.invalidate();
    }
    let text = outcome.plan.to_string();
    Ok(Json(json!({
        "plan": outcome.plan,
        "plan_text": text,
        "version": outcome.version,
        "applied": outcome.applied,
    }))
    .into_response())
}

/// Feature views as lineage nodes, made from the catalog datasets they
/// read.
async fn record_view_lineage(
    s: &AppState,
    store: &FeatureStore,
    repo: &keel_features::definition::Repo,
) {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for view in repo.views() {
        nodes.push(NewNode::new("feature_view", view.name()).named(view.name()));
    }
    for (name, source) in repo
        .feature_views
        .iter()
        .map(|v| (&v.name, &v.source))
        .chain(
            repo.stream_feature_views
                .iter()
                .map(|v| (&v.name, &v.source)),
        )
    {
        let Some(src) = repo.source(source) else {
            continue;
        };
        if let keel_features::definition::SourcePath::Dataset { name: ds, version } = &src.path {
            let text = match version {
                Some(v) => format!("{ds}@{v}"),
                None => ds.clone(),
            };
            if let Ok(v) = store.catalog().resolve(&text).await {
                edges.push(Edge {
                    from: v.lineage_node.clone(),
                    to: keel_lineage::key("feature_view", name),
                    relation: "source".into(),
                });
            }
        }
    }
    s.record_lineage(nodes, edges).await;
}

async fn training_set(State(s): State<AppState>, Json(req): Json<TrainingSetRequest>) -> V1Result {
    let store = features(&s)?;
    absolute("entities", &req.entities.to_string_lossy())?;
    absolute("out", &req.out.to_string_lossy())?;
    let manifest: Manifest = store.training_set(&req).await?;
    if let Some(sha) = &manifest.output.sha256 {
        let stem = req
            .out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "training-set".into());
        let id = keel_data::lineage_id(&stem, &sha[..keel_data::VERSION_ID_LEN.min(sha.len())]);
        let node = NewNode::new("dataset", id.clone())
            .named(stem)
            .with_attrs(json!({
                "training_set": true,
                "service": manifest.service,
                "path": manifest.output.path,
                "rows": manifest.output.rows,
            }));
        let to = keel_lineage::key("dataset", &id);
        let mut edges = Vec::new();
        for v in &manifest.views {
            edges.push(Edge {
                from: keel_lineage::key("feature_view", &v.name),
                to: to.clone(),
                relation: "input".into(),
            });
        }
        s.record_lineage(vec![node], edges).await;
    }
    Ok(Json(manifest).into_response())
}
