//! MLflow's model registry REST API (`registered-models/*`,
//! `model-versions/*`), mapped onto `keel-registry`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use keel_registry::{ModelVersion, NewModelVersion, RegisteredModel, RegistryError, Search, Tag};
use serde_json::{Value, json};

use super::error::ApiError;
use super::request::Fields;
use crate::AppState;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/registered-models/create", post(create_model))
        .route("/registered-models/get", get(get_model))
        .route("/registered-models/rename", post(rename_model))
        .route(
            "/registered-models/update",
            axum::routing::patch(update_model),
        )
        .route(
            "/registered-models/delete",
            axum::routing::delete(delete_model),
        )
        .route(
            "/registered-models/search",
            get(search_models).post(search_models),
        )
        .route("/registered-models/set-tag", post(set_model_tag))
        .route(
            "/registered-models/delete-tag",
            axum::routing::delete(delete_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(set_alias).delete(delete_alias).get(get_by_alias),
        )
        .route(
            "/registered-models/get-latest-versions",
            post(latest_versions).get(latest_versions),
        )
        .route("/model-versions/create", post(create_version))
        .route("/model-versions/get", get(get_version))
        .route(
            "/model-versions/update",
            axum::routing::patch(update_version),
        )
        .route(
            "/model-versions/delete",
            axum::routing::delete(delete_version),
        )
        .route(
            "/model-versions/search",
            get(search_versions).post(search_versions),
        )
        .route("/model-versions/set-tag", post(set_version_tag))
        .route(
            "/model-versions/delete-tag",
            axum::routing::delete(delete_version_tag),
        )
        .route("/model-versions/get-download-uri", get(download_uri))
        .route("/model-versions/transition-stage", post(transition_stage))
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(m) => ApiError::not_found(m),
            RegistryError::AlreadyExists(m) => ApiError {
                status: axum::http::StatusCode::BAD_REQUEST,
                code: "RESOURCE_ALREADY_EXISTS",
                message: m,
            },
            RegistryError::Invalid(m) => ApiError::invalid(m),
            RegistryError::Filter(f) => ApiError::invalid(f.to_string()),
            RegistryError::Store(s) => s.into(),
        }
    }
}

fn registry(s: &AppState) -> Result<&keel_registry::Registry, ApiError> {
    s.registry
        .as_ref()
        .ok_or_else(|| ApiError::internal("the model registry is not running on this server"))
}

fn tags(f: &Fields, field: &str) -> Result<Vec<Tag>, ApiError> {
    Ok(super::tag_list(f, field)?
        .into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value,
        })
        .collect())
}

fn version_of(f: &Fields) -> Result<i64, ApiError> {
    let v = f.str_req("version")?;
    v.parse::<i64>().map_err(|_| {
        ApiError::invalid(format!(
            "Parameter 'version' must be an integer, got '{v}'."
        ))
    })
}

/// A model version as MLflow sends it: `description`, `run_id` and
/// `run_link` always (empty when unset), `tags` and `aliases` only when
/// there are some; search results and `latest_versions` carry no aliases.
pub fn model_version_json(v: &ModelVersion) -> Value {
    version_json(v, true)
}

fn version_json(v: &ModelVersion, with_aliases: bool) -> Value {
    let mut o = json!({
        "name": v.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
        "current_stage": v.current_stage,
        "description": v.description.clone().unwrap_or_default(),
        "source": v.source,
        "run_id": v.run_id.clone().unwrap_or_default(),
        "status": v.status,
        "run_link": v.run_link.clone().unwrap_or_default(),
    });
    if !v.tags.is_empty() {
        o["tags"] = json!(
            v.tags
                .iter()
                .map(|t| json!({"key": t.key, "value": t.value}))
                .collect::<Vec<_>>()
        );
    }
    if with_aliases && !v.aliases.is_empty() {
        o["aliases"] = json!(v.aliases);
    }
    o
}

pub fn registered_model_json(m: &RegisteredModel) -> Value {
    let mut o = json!({
        "name": m.name,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
    });
    if let Some(d) = &m.description {
        o["description"] = json!(d);
    }
    if !m.latest_versions.is_empty() {
        o["latest_versions"] = json!(
            m.latest_versions
                .iter()
                .map(model_version_json)
                .collect::<Vec<_>>()
        );
    }
    if !m.tags.is_empty() {
        o["tags"] = json!(
            m.tags
                .iter()
                .map(|t| json!({"key": t.key, "value": t.value}))
                .collect::<Vec<_>>()
        );
    }
    if !m.aliases.is_empty() {
        o["aliases"] = json!(
            m.aliases
                .iter()
                .map(|(a, v)| json!({"alias": a, "version": v.to_string()}))
                .collect::<Vec<_>>()
        );
    }
    o
}

async fn create_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let m = registry(&s)?
        .create_registered_model(
            f.str_req("name")?,
            tags(&f, "tags")?,
            f.str_opt("description")?,
        )
        .await?;
    Ok(Json(json!({"registered_model": registered_model_json(&m)})))
}

async fn get_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let m = registry(&s)?
        .get_registered_model(&f.str_req("name")?)
        .await?;
    Ok(Json(json!({"registered_model": registered_model_json(&m)})))
}

async fn rename_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let old = f.str_req("name")?;
    let m = registry(&s)?
        .rename_registered_model(&old, f.str_req("new_name")?)
        .await?;
    if let Some(l) = &s.lineage
        && let Err(e) = l
            .rename("model_version", &format!("{old}/"), &format!("{}/", m.name))
            .await
    {
        tracing::warn!(error = %e, "lineage of renamed model not updated");
    }
    Ok(Json(json!({"registered_model": registered_model_json(&m)})))
}

async fn update_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    let m = registry(&s)?
        .update_registered_model(&f.str_req("name")?, f.str_opt("description")?)
        .await?;
    Ok(Json(json!({"registered_model": registered_model_json(&m)})))
}

async fn delete_model(State(s): State<AppState>, f: Fields) -> ApiResult {
    registry(&s)?
        .delete_registered_model(&f.str_req("name")?)
        .await?;
    Ok(Json(json!({})))
}

fn search_args(f: &Fields) -> Result<Search, ApiError> {
    Ok(Search {
        filter: f.str_opt("filter")?.unwrap_or_default(),
        max_results: f.i64_opt("max_results")?,
        order_by: f.str_list("order_by")?,
        page_token: f.str_opt("page_token")?,
    })
}

async fn search_models(State(s): State<AppState>, f: Fields) -> ApiResult {
    let page = registry(&s)?
        .search_registered_models(search_args(&f)?)
        .await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        body["registered_models"] = json!(
            page.items
                .iter()
                .map(registered_model_json)
                .collect::<Vec<_>>()
        );
    }
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

async fn set_model_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let tag = Tag {
        key: f.str_req("key")?,
        value: f.str_opt("value")?.unwrap_or_default(),
    };
    registry(&s)?
        .set_registered_model_tag(&f.str_req("name")?, tag)
        .await?;
    Ok(Json(json!({})))
}

async fn delete_model_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    registry(&s)?
        .delete_registered_model_tag(&f.str_req("name")?, &f.str_req("key")?)
        .await?;
    Ok(Json(json!({})))
}

async fn set_alias(State(s): State<AppState>, headers: HeaderMap, f: Fields) -> ApiResult {
    registry(&s)?
        .set_alias(
            &f.str_req("name")?,
            &f.str_req("alias")?,
            version_of(&f)?,
            &crate::models::actor(&headers),
        )
        .await?;
    Ok(Json(json!({})))
}

async fn delete_alias(State(s): State<AppState>, headers: HeaderMap, f: Fields) -> ApiResult {
    registry(&s)?
        .delete_alias(
            &f.str_req("name")?,
            &f.str_req("alias")?,
            &crate::models::actor(&headers),
        )
        .await?;
    Ok(Json(json!({})))
}

async fn get_by_alias(State(s): State<AppState>, f: Fields) -> ApiResult {
    let v = registry(&s)?
        .get_model_version_by_alias(&f.str_req("name")?, &f.str_req("alias")?)
        .await?;
    Ok(Json(json!({"model_version": model_version_json(&v)})))
}

async fn latest_versions(State(s): State<AppState>, f: Fields) -> ApiResult {
    let m = registry(&s)?
        .get_registered_model(&f.str_req("name")?)
        .await?;
    let stages = f.str_list("stages")?;
    let versions: Vec<Value> = m
        .latest_versions
        .iter()
        .filter(|v| {
            stages.is_empty()
                || stages
                    .iter()
                    .any(|st| st.eq_ignore_ascii_case(&v.current_stage))
        })
        .map(|v| version_json(v, false))
        .collect();
    Ok(Json(json!({ "model_versions": versions })))
}

/// Where a version's files are: a logged model's location for
/// `models:/m-…`, a run's artifact directory for `runs:/RUN/PATH`, else
/// the source itself.
/// Also the run that made a logged model, which fills `run_id` when the
/// client leaves it out (as `log_model(registered_model_name=…)` does).
async fn storage_location(
    s: &AppState,
    source: &str,
) -> Result<(Option<String>, Option<String>, Option<String>), ApiError> {
    if let Some(id) = source
        .strip_prefix("models:/")
        .filter(|r| r.starts_with("m-") && !r.contains('/'))
    {
        let m = s.tracking.get_logged_model(id, false).await?;
        return Ok((
            Some(m.artifact_location),
            Some(id.to_owned()),
            m.source_run_id,
        ));
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let run = s.tracking.get_run(run_id).await?;
        let base = run.info.artifact_uri.trim_end_matches('/').to_owned();
        let loc = if path.is_empty() {
            base
        } else {
            format!("{base}/{}", path.trim_start_matches('/'))
        };
        return Ok((Some(loc), None, Some(run_id.to_owned())));
    }
    Ok((Some(source.to_owned()), None, None))
}

async fn create_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let source = f.str_req("source")?;
    let name = f.str_req("name")?;
    let (location, logged_id, source_run) = storage_location(&s, &source).await?;
    let artifact_root = location
        .as_deref()
        .and_then(crate::artifacts::store_path_of);
    let files = match &artifact_root {
        Some(root) => digest_files(&s, root).await?,
        None => Vec::new(),
    };
    let inspection = inspect_files(&s, &files).await?;
    let model_id = f
        .str_opt("model_id")?
        .filter(|m| !m.is_empty())
        .or(logged_id);
    let run_id = f
        .str_opt("run_id")?
        .filter(|r| !r.is_empty())
        .or(source_run);
    // The run, read once: its tags give the code, its name the lineage.
    let run = match run_id.as_deref() {
        Some(id) => s.tracking.get_run(id).await.ok(),
        None => None,
    };
    let (signature, dependencies) = match inspection {
        Some(i) => {
            let mut deps = serde_json::to_value(&i.dependencies).unwrap_or(Value::Null);
            if let (Some(code), Some(obj)) = (run.as_ref().and_then(code_of), deps.as_object_mut())
            {
                obj.extend(code);
            }
            (
                i.signature.and_then(|sig| serde_json::to_value(sig).ok()),
                Some(deps),
            )
        }
        None => (None, None),
    };
    let v = registry(&s)?
        .create_model_version(NewModelVersion {
            name,
            source,
            run_id: run_id.clone(),
            run_link: f.str_opt("run_link")?.filter(|r| !r.is_empty()),
            description: f.str_opt("description")?,
            tags: tags(&f, "tags")?,
            storage_location: location,
            model_id: model_id.clone(),
            artifact_root,
            files,
            signature,
            dependencies,
        })
        .await?;
    let run_node = run_id.as_deref().map(|id| {
        let node = keel_lineage::NewNode::new("run", id);
        match run.as_ref().map(|r| r.info.run_name.as_str()) {
            Some(name) if !name.is_empty() => node.named(name),
            _ => node,
        }
    });
    record_version_lineage(&s, &v, run_node, model_id.as_deref()).await;
    Ok(Json(json!({"model_version": model_version_json(&v)})))
}

/// The size and SHA-256 of every file below a version's artifact root,
/// read once at registration.
async fn digest_files(
    s: &AppState,
    root: &str,
) -> Result<Vec<keel_registry::VersionFile>, ApiError> {
    let mut out = Vec::new();
    for e in s.artifacts.list_files(root).await? {
        let d = s.artifacts.digest(&e.path).await?;
        let path = e
            .path
            .strip_prefix(root)
            .map(|p| p.trim_start_matches('/'))
            .unwrap_or(&e.path)
            .to_owned();
        out.push(keel_registry::VersionFile {
            path,
            store_path: e.path,
            size: d.size as i64,
            sha256: d.sha256,
        });
    }
    Ok(out)
}

/// Files `inspect` reads: text metadata up to 4 MiB, ONNX graphs up to
/// 512 MiB (weights usually sit beside them in external data files).
fn worth_inspecting(path: &str, size: i64) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base {
        "MLmodel" | "requirements.txt" | "conda.yaml" | "python_env.yaml" => size <= 4 << 20,
        _ => base.ends_with(".onnx") && size <= 512 << 20,
    }
}

/// Reads a version's signature and dependencies from its files; a
/// malformed `MLmodel`, environment file or ONNX graph refuses the
/// registration with the file and field named.
async fn inspect_files(
    s: &AppState,
    files: &[keel_registry::VersionFile],
) -> Result<Option<keel_registry::inspect::Inspection>, ApiError> {
    let mut read: Vec<(String, Vec<u8>)> = Vec::new();
    for f in files.iter().filter(|f| worth_inspecting(&f.path, f.size)) {
        let (_, mut stream) = s.artifacts.get_stream(&f.store_path).await?;
        let mut bytes = Vec::with_capacity(f.size as usize);
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&chunk?);
        }
        read.push((f.path.clone(), bytes));
    }
    if read.is_empty() {
        return Ok(None);
    }
    let view: Vec<(&str, &[u8])> = read
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    keel_registry::inspect::inspect(&view)
        .map(Some)
        .map_err(|e| ApiError::invalid(format!("the model's files cannot be registered: {e}")))
}

/// The code a version came from: the run's git commit, repository and
/// entry point, and a container image when the run names one.
fn code_of(run: &keel_tracking::Run) -> Option<serde_json::Map<String, Value>> {
    let tags = run
        .data
        .as_ref()
        .map(|d| d.tags.as_slice())
        .unwrap_or_default();
    let tag = |k: &str| tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
    let mut out = serde_json::Map::new();
    for (field, key) in [
        ("git_commit", "mlflow.source.git.commit"),
        ("repository", "mlflow.source.git.repoURL"),
        ("entry_point", "mlflow.source.name"),
        ("container_image", "mlflow.docker.image.uri"),
    ] {
        if let Some(v) = tag(key).filter(|v| !v.is_empty()) {
            out.insert(field.into(), json!(v));
        }
    }
    if let Some(img) =
        tag("mlflow.docker.image.name").filter(|_| !out.contains_key("container_image"))
    {
        out.insert("container_image".into(), json!(img));
    }
    (!out.is_empty()).then_some(out)
}

/// run → logged model → model version (or run → model version).
async fn record_version_lineage(
    s: &AppState,
    v: &ModelVersion,
    run: Option<keel_lineage::NewNode>,
    model_id: Option<&str>,
) {
    use keel_lineage::{Edge, NewNode};
    let node = NewNode::new("model_version", format!("{}/{}", v.name, v.version)).with_attrs(
        crate::models::attrs(&[
            ("source", json!(v.source)),
            ("storage_location", json!(v.storage_location)),
        ]),
    );
    let mut edges = Vec::new();
    let logged = model_id.map(|m| NewNode::new("logged_model", m));
    if let (Some(r), Some(m)) = (&run, &logged) {
        edges.push(Edge {
            from: r.key(),
            to: m.key(),
            relation: "produced".into(),
        });
    }
    if let Some(up) = logged.as_ref().or(run.as_ref()) {
        edges.push(Edge {
            from: up.key(),
            to: node.key(),
            relation: "registered_as".into(),
        });
    }
    let nodes: Vec<NewNode> = std::iter::once(node).chain(logged).chain(run).collect();
    s.record_lineage(nodes, edges).await;
}

async fn get_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let v = registry(&s)?
        .get_model_version(&f.str_req("name")?, version_of(&f)?)
        .await?;
    Ok(Json(json!({"model_version": model_version_json(&v)})))
}

async fn update_version(State(s): State<AppState>, f: Fields) -> ApiResult {
    let v = registry(&s)?
        .update_model_version(
            &f.str_req("name")?,
            version_of(&f)?,
            f.str_opt("description")?,
        )
        .await?;
    Ok(Json(json!({"model_version": model_version_json(&v)})))
}

async fn delete_version(State(s): State<AppState>, headers: HeaderMap, f: Fields) -> ApiResult {
    registry(&s)?
        .delete_model_version(
            &f.str_req("name")?,
            version_of(&f)?,
            &crate::models::actor(&headers),
        )
        .await?;
    Ok(Json(json!({})))
}

async fn search_versions(State(s): State<AppState>, f: Fields) -> ApiResult {
    let page = registry(&s)?
        .search_model_versions(search_args(&f)?)
        .await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        body["model_versions"] = json!(
            page.items
                .iter()
                .map(model_version_json)
                .collect::<Vec<_>>()
        );
    }
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

async fn set_version_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    let tag = Tag {
        key: f.str_req("key")?,
        value: f.str_opt("value")?.unwrap_or_default(),
    };
    registry(&s)?
        .set_model_version_tag(&f.str_req("name")?, version_of(&f)?, tag)
        .await?;
    Ok(Json(json!({})))
}

async fn delete_version_tag(State(s): State<AppState>, f: Fields) -> ApiResult {
    registry(&s)?
        .delete_model_version_tag(&f.str_req("name")?, version_of(&f)?, &f.str_req("key")?)
        .await?;
    Ok(Json(json!({})))
}

async fn download_uri(State(s): State<AppState>, f: Fields) -> ApiResult {
    let v = registry(&s)?
        .get_model_version(&f.str_req("name")?, version_of(&f)?)
        .await?;
    let uri = v.storage_location.unwrap_or(v.source);
    Ok(Json(json!({ "artifact_uri": uri })))
}

async fn transition_stage(State(s): State<AppState>, headers: HeaderMap, f: Fields) -> ApiResult {
    let v = registry(&s)?
        .transition_stage(
            &f.str_req("name")?,
            version_of(&f)?,
            &f.str_req("stage")?,
            f.bool_opt("archive_existing_versions")?.unwrap_or(false),
            &crate::models::actor(&headers),
        )
        .await?;
    Ok(Json(json!({"model_version": model_version_json(&v)})))
}
