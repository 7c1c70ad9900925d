//! MLflow's tracking REST API (`/api/2.0/mlflow/…` and its `/ajax-api`
//! twin), field for field as the `mlflow` client speaks it, plus Keel's
//! extensions: `OR`/`NOT`/parentheses in filters, `experiment_ids: ["*"]`,
//! `info_only` search and `permanent` deletes.

pub mod error;
mod logged_models;
pub mod registry;
pub mod request;
pub mod wire;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use keel_tracking::{
    Dataset, DatasetInput, ExperimentSearch, Metric, NewRun, RunSearch, RunStatus, RunUpdate, Tag,
    ViewType,
};

use crate::AppState;
use crate::artifacts::store_path_of;
use error::ApiError;
use request::Fields;

pub(crate) type ApiResult = Result<Json<Value>, ApiError>;

/// The tracking routes, to be nested under `/api/2.0/mlflow` and
/// `/ajax-api/2.0/mlflow`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(registry::routes())
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route(
            "/experiments/search",
            post(search_experiments).get(search_experiments),
        )
        .route("/experiments/list", get(search_experiments))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/update", post(update_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route(
            "/experiments/delete-experiment-tag",
            post(delete_experiment_tag),
        )
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/search", post(search_runs).get(search_runs))
        .route("/metrics/get-history", get(metric_history))
        .route("/artifacts/list", get(list_run_artifacts))
        .merge(logged_models::routes())
}

pub(crate) fn ok() -> ApiResult {
    Ok(Json(json!({})))
}

pub(crate) fn experiment_id(f: &Fields, field: &str) -> Result<i64, ApiError> {
    let raw = f.str_req(field)?;
    parse_experiment_id(&raw, field)
}

pub(crate) fn parse_experiment_id(raw: &str, field: &str) -> Result<i64, ApiError> {
    raw.trim().parse::<i64>().map_err(|_| {
        ApiError::invalid(format!(
            "Invalid experiment ID '{raw}' (field '{field}'): experiment ids are integers, e.g. '0' or '12'"
        ))
    })
}

pub(crate) fn tag_list(f: &Fields, field: &str) -> Result<Vec<Tag>, ApiError> {
    f.objects(field)?
        .iter()
        .map(|t| {
            Ok(Tag {
                key: t.str_req("key")?,
                value: t.str_req_allow_empty("value")?,
            })
        })
        .collect()
}

fn view_type(f: &Fields, field: &str) -> Result<ViewType, ApiError> {
    match f.str_opt(field)? {
        None => Ok(ViewType::ActiveOnly),
        Some(v) => ViewType::parse(&v).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value '{v}' for parameter '{field}': use ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))
        }),
    }
}

// ---- experiments ---------------------------------------------------------

async fn create_experiment(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str_req("name")?;
    let location = f.str_opt("artifact_location")?;
    let tags = tag_list(&f, "tags")?;
    let id = s.tracking.create_experiment(name, location, tags).await?;
    Ok(Json(json!({"experiment_id": id.to_string()})))
}

async fn get_experiment(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = experiment_id(&f, "experiment_id")?;
    let e = s.tracking.get_experiment(id).await?;
    Ok(Json(json!({"experiment": wire::experiment(&e)})))
}

async fn get_experiment_by_name(State(s): State<AppState>, f: Fields) -> ApiResult {
    let name = f.str_req("experiment_name")?;
    let e = s.tracking.get_experiment_by_name(&name).await?;
    Ok(Json(json!({"experiment": wire::experiment(&e)})))
}

async fn search_experiments(State(s): State<AppState>, f: Fields) -> ApiResult {
    let search = ExperimentSearch {
        filter: f.str_opt("filter")?.unwrap_or_default(),
        view: view_type(&f, "view_type")?,
        max_results: f.i64_opt("max_results")?,
        order_by: f.str_list("order_by")?,
        page_token: f.str_opt("page_token")?,
    };
    let page = s.tracking.search_experiments(search).await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        body["experiments"] = Value::Array(page.items.iter().map(wire::experiment).collect());
    }
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

async fn delete_experiment(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = experiment_id(&f, "experiment_id")?;
    if f.bool_opt("permanent")?.unwrap_or(false) {
        // Registered versions' files are immutable: refuse before purging.
        let location = s.tracking.get_experiment(id).await?.artifact_location;
        if let Some(prefix) = store_path_of(&location) {
            crate::artifacts::refuse_if_registered(&s, &prefix, true).await?;
        }
        let e = s.tracking.purge_experiment(id).await?;
        if let Some(prefix) = store_path_of(&e.artifact_location) {
            s.artifacts.delete(&prefix).await?;
        }
    } else {
        s.tracking.delete_experiment(id).await?;
    }
    ok()
}

async fn restore_experiment(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = experiment_id(&f, "experiment_id")?;
    s.tracking.restore_experiment(id).await?;
    ok()
}

async fn update_experiment(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = experiment_id(&f, "experiment_id")?;
    if let Some(name) = f.str_opt("new_name")?.filter(|n| !n.is_empty()) {
        s.tracking.rename_experiment(id, name).await?;
    } else {
        s.tracking.get_experiment(id).await?;
    }
    ok()
}

async fn set_experiment_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = experiment_id(&f, "experiment_id")?;
    let tag = Tag {
        key: f.str_req("key")?,
        value: f.str_req_allow_empty("value")?,
    };
    s.tracking.set_experiment_tag(id, tag).await?;
    ok()
}

async fn delete_experiment_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let id = experiment_id(&f, "experiment_id")?;
    s.tracking
        .delete_experiment_tag(id, f.str_req("key")?)
        .await?;
    ok()
}

// ---- runs ------------------------------------------------------------------

async fn create_run(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_id = match f.str_opt("experiment_id")?.filter(|e| !e.is_empty()) {
        Some(raw) => Some(parse_experiment_id(&raw, "experiment_id")?),
        None => None,
    };
    let new = NewRun {
        experiment_id,
        user_id: f.str_opt("user_id")?,
        run_name: f.str_opt("run_name")?,
        start_time: f.i64_opt("start_time")?,
        tags: tag_list(&f, "tags")?,
    };
    let run = s.tracking.create_run(new).await?;
    Ok(Json(json!({"run": wire::run(&run)})))
}

async fn get_run(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run = s.tracking.get_run(&f.run_id()?).await?;
    Ok(Json(json!({"run": wire::run(&run)})))
}

async fn update_run(State(s): State<AppState>, f: Fields) -> ApiResult {
    let status = match f.str_opt("status")? {
        None => None,
        Some(v) => Some(RunStatus::parse(&v).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value '{v}' for parameter 'status': use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
            ))
        })?),
    };
    let update = RunUpdate {
        status,
        end_time: f.i64_opt("end_time")?,
        run_name: f.str_opt("run_name")?,
    };
    let info = s.tracking.update_run(f.run_id()?, update).await?;
    Ok(Json(json!({"run_info": wire::run_info(&info)})))
}

async fn delete_run(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    if f.bool_opt("permanent")?.unwrap_or(false) {
        let uri = s.tracking.get_run(&run_id).await?.info.artifact_uri;
        if let Some(path) = store_path_of(&uri) {
            let run_dir = path.strip_suffix("/artifacts").unwrap_or(&path);
            crate::artifacts::refuse_if_registered(&s, run_dir, true).await?;
        }
        let info = s.tracking.purge_run(run_id).await?;
        if let Some(path) = store_path_of(&info.artifact_uri) {
            let run_dir = path.strip_suffix("/artifacts").unwrap_or(&path).to_owned();
            s.artifacts.delete(&run_dir).await?;
        }
    } else {
        s.tracking.delete_run(run_id).await?;
    }
    ok()
}

async fn restore_run(State(s): State<AppState>, f: Fields) -> ApiResult {
    s.tracking.restore_run(f.run_id()?).await?;
    ok()
}

fn metric_of(m: &Fields) -> Result<Metric, ApiError> {
    Ok(Metric {
        key: m.str_req("key")?,
        value: m.f64_req("value")?,
        timestamp: m.i64_req("timestamp")?,
        step: m.i64_opt("step")?.unwrap_or(0),
        model_id: m.str_opt("model_id")?.filter(|s| !s.is_empty()),
        dataset_name: m.str_opt("dataset_name")?.filter(|s| !s.is_empty()),
        dataset_digest: m.str_opt("dataset_digest")?.filter(|s| !s.is_empty()),
    })
}

async fn log_metric(State(s): State<AppState>, f: Fields) -> ApiResult {
    let metric = metric_of(&f)?;
    s.tracking.log_metric(f.run_id()?, metric).await?;
    ok()
}

async fn log_param(State(s): State<AppState>, f: Fields) -> ApiResult {
    let param = Tag {
        key: f.str_req("key")?,
        value: f.str_req_allow_empty("value")?,
    };
    s.tracking.log_param(f.run_id()?, param).await?;
    ok()
}

async fn set_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let tag = Tag {
        key: f.str_req("key")?,
        value: f.str_req_allow_empty("value")?,
    };
    s.tracking.set_tag(f.run_id()?, tag).await?;
    ok()
}

async fn delete_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    s.tracking
        .delete_tag(f.run_id()?, f.str_req("key")?)
        .await?;
    ok()
}

async fn log_batch(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let metrics = f
        .objects("metrics")?
        .iter()
        .map(metric_of)
        .collect::<Result<Vec<_>, _>>()?;
    let params = tag_list(&f, "params")?;
    let tags = tag_list(&f, "tags")?;
    s.tracking.log_batch(run_id, metrics, params, tags).await?;
    ok()
}

async fn log_inputs(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let mut inputs = Vec::new();
    for input in f.objects("datasets")? {
        let Some(d) = input.object("dataset")? else {
            return Err(ApiError::missing("datasets[].dataset"));
        };
        inputs.push(DatasetInput {
            dataset: Dataset {
                name: d.str_req("name")?,
                digest: d.str_req("digest")?,
                source_type: d.str_req("source_type")?,
                source: d.str_req_allow_empty("source")?,
                schema: d.str_opt("schema")?,
                profile: d.str_opt("profile")?,
            },
            tags: tag_list(&input, "tags")?,
        });
    }
    let lineage: Vec<(keel_lineage::NewNode, keel_lineage::Edge)> = inputs
        .iter()
        .map(|i| {
            let d = &i.dataset;
            let node = keel_lineage::NewNode::new("dataset", format!("{}@{}", d.name, d.digest))
                .named(d.name.clone())
                .with_attrs(crate::models::attrs(&[
                    ("digest", json!(d.digest)),
                    ("source_type", json!(d.source_type)),
                    // MLflow sends a dataset source as JSON, e.g. {"uri": "s3://…"}.
                    (
                        "source",
                        json!(
                            serde_json::from_str::<Value>(&d.source)
                                .ok()
                                .and_then(|v| v
                                    .get("uri")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned))
                                .unwrap_or_else(|| d.source.clone())
                        ),
                    ),
                ]));
            let edge = keel_lineage::Edge {
                from: node.key(),
                to: keel_lineage::key("run", &run_id),
                relation: "input".into(),
            };
            (node, edge)
        })
        .collect();
    s.tracking.log_inputs(run_id.clone(), inputs).await?;
    if !lineage.is_empty() {
        let (mut nodes, edges): (Vec<_>, Vec<_>) = lineage.into_iter().unzip();
        nodes.push(keel_lineage::NewNode::new("run", run_id));
        s.record_lineage(nodes, edges).await;
    }
    ok()
}

async fn search_runs(State(s): State<AppState>, f: Fields) -> ApiResult {
    let raw_ids = f.str_list("experiment_ids")?;
    let experiment_ids = if raw_ids.iter().any(|i| i == "*") {
        None
    } else {
        Some(
            raw_ids
                .iter()
                .map(|i| parse_experiment_id(i, "experiment_ids"))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let search = RunSearch {
        experiment_ids,
        filter: f.str_opt("filter")?.unwrap_or_default(),
        view: view_type(&f, "run_view_type")?,
        max_results: f.i64_opt("max_results")?,
        order_by: f.str_list("order_by")?,
        page_token: f.str_opt("page_token")?,
        info_only: f.bool_opt("info_only")?.unwrap_or(false),
    };
    let page = s.tracking.search_runs(search).await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        body["runs"] = Value::Array(page.items.iter().map(wire::run).collect());
    }
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

async fn metric_history(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let key = f.str_req("metric_key")?;
    let page_token = f.str_opt("page_token")?;
    let page = s
        .tracking
        .metric_history(
            &run_id,
            &key,
            f.i64_opt("max_results")?,
            page_token.as_deref(),
        )
        .await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        body["metrics"] = Value::Array(page.items.iter().map(wire::metric).collect());
    }
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

/// Lists a run's artifacts with run-relative paths, as `mlflow server`'s
/// tracking-side listing does.
async fn list_run_artifacts(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run = s.tracking.get_run(&f.run_id()?).await?;
    let sub = f.str_opt("path")?.unwrap_or_default();
    let root_uri = run.info.artifact_uri.clone();
    let mut body = json!({"root_uri": root_uri});
    if let Some(root) = store_path_of(&root_uri) {
        let dir = if sub.is_empty() {
            root.clone()
        } else {
            format!("{root}/{sub}")
        };
        let entries = s.artifacts.list(&dir).await?;
        let files: Vec<Value> = entries
            .iter()
            .map(|e| {
                let rel = e.path.strip_prefix(&format!("{root}/")).unwrap_or(&e.path);
                crate::artifacts::file_info(rel, e)
            })
            .collect();
        if !files.is_empty() {
            body["files"] = Value::Array(files);
        }
    }
    Ok(Json(body))
}
