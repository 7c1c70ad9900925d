//! MLflow 3's logged-model endpoints (`/api/2.0/mlflow/logged-models…`)
//! and `runs/outputs`, as `mlflow.<flavor>.log_model` and `runs:/` /
//! `models:/` URI resolution use them.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use serde_json::{Value, json};

use keel_tracking::{
    LoggedModelOrder, LoggedModelSearch, LoggedModelStatus, ModelOutput, NewLoggedModel,
};

use super::error::ApiError;
use super::request::Fields;
use super::{ApiResult, experiment_id, ok, parse_experiment_id, tag_list, wire};
use crate::AppState;
use crate::artifacts::{file_info, store_path_of};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/logged-models", post(create))
        .route("/logged-models/search", post(search))
        .route(
            "/logged-models/{id}",
            get(get_model).patch(finalize).delete(remove),
        )
        .route("/logged-models/{id}/params", post(log_params))
        .route("/logged-models/{id}/tags", patch(set_tags))
        .route("/logged-models/{id}/tags/{key}", delete(delete_tag))
        .route(
            "/logged-models/{id}/artifacts/directories",
            get(list_artifacts),
        )
        .route("/runs/outputs", post(log_outputs))
}

async fn create(State(s): State<AppState>, f: Fields) -> ApiResult {
    let new = NewLoggedModel {
        experiment_id: experiment_id(&f, "experiment_id")?,
        name: f.str_opt("name")?,
        model_type: f.str_opt("model_type")?.filter(|t| !t.is_empty()),
        source_run_id: f.str_opt("source_run_id")?.filter(|r| !r.is_empty()),
        params: tag_list(&f, "params")?,
        tags: tag_list(&f, "tags")?,
    };
    let model = s.tracking.create_logged_model(new).await?;
    if let Some(run_id) = &model.source_run_id {
        let run = keel_lineage::NewNode::new("run", run_id.clone());
        let logged = keel_lineage::NewNode::new("logged_model", model.model_id.clone())
            .named(model.name.clone());
        let edge = keel_lineage::Edge {
            from: run.key(),
            to: logged.key(),
            relation: "produced".into(),
        };
        s.record_lineage(vec![run, logged], vec![edge]).await;
    }
    Ok(Json(json!({"model": wire::logged_model(&model)})))
}

async fn get_model(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let allow_deleted = f.bool_opt("allow_deleted")?.unwrap_or(false);
    let model = s.tracking.get_logged_model(&id, allow_deleted).await?;
    Ok(Json(json!({"model": wire::logged_model(&model)})))
}

async fn finalize(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let raw = f.str_req("status")?;
    let status = LoggedModelStatus::parse(&raw).ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid value '{raw}' for parameter 'status': use LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED"
        ))
    })?;
    let model = s.tracking.finalize_logged_model(id, status).await?;
    Ok(Json(json!({"model": wire::logged_model(&model)})))
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    s.tracking.delete_logged_model(id).await?;
    ok()
}

async fn log_params(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    s.tracking
        .log_logged_model_params(id, tag_list(&f, "params")?)
        .await?;
    ok()
}

async fn set_tags(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    s.tracking
        .set_logged_model_tags(id, tag_list(&f, "tags")?)
        .await?;
    ok()
}

async fn delete_tag(
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    s.tracking.delete_logged_model_tag(id, key).await?;
    ok()
}

async fn search(State(s): State<AppState>, f: Fields) -> ApiResult {
    let experiment_ids = f
        .str_list("experiment_ids")?
        .iter()
        .map(|i| parse_experiment_id(i, "experiment_ids"))
        .collect::<Result<Vec<_>, _>>()?;
    let order_by = f
        .objects("order_by")?
        .iter()
        .map(|o| {
            Ok(LoggedModelOrder {
                field_name: o.str_req("field_name")?,
                ascending: o.bool_opt("ascending")?.unwrap_or(true),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let page = s
        .tracking
        .search_logged_models(LoggedModelSearch {
            experiment_ids,
            filter: f.str_opt("filter")?.unwrap_or_default(),
            max_results: f.i64_opt("max_results")?,
            order_by,
            page_token: f.str_opt("page_token")?,
        })
        .await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        body["models"] = Value::Array(page.items.iter().map(wire::logged_model).collect());
    }
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

async fn list_artifacts(State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> ApiResult {
    let model = s.tracking.get_logged_model(&id, false).await?;
    let sub = f.str_opt("artifact_directory_path")?.unwrap_or_default();
    let mut body = json!({"root_uri": model.artifact_location});
    if let Some(root) = store_path_of(&model.artifact_location) {
        let dir = if sub.is_empty() {
            root.clone()
        } else {
            format!("{root}/{sub}")
        };
        let files: Vec<Value> = s
            .artifacts
            .list(&dir)
            .await?
            .iter()
            .map(|e| {
                let rel = e.path.strip_prefix(&format!("{root}/")).unwrap_or(&e.path);
                file_info(rel, e)
            })
            .collect();
        if !files.is_empty() {
            body["files"] = Value::Array(files);
        }
    }
    Ok(Json(body))
}

async fn log_outputs(State(s): State<AppState>, f: Fields) -> ApiResult {
    let run_id = f.run_id()?;
    let outputs = f
        .objects("models")?
        .iter()
        .map(|m| {
            Ok(ModelOutput {
                model_id: m.str_req("model_id")?,
                step: m.i64_opt("step")?.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    s.tracking.log_outputs(run_id, outputs).await?;
    ok()
}
