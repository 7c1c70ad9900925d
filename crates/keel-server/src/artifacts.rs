//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/…`):
//! uploads and downloads are streamed between the client and the artifact
//! store, never held whole in memory.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use keel_store::ArtifactEntry;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::mlflow::error::ApiError;

/// The scheme of artifact URIs the server proxies.
pub const PROXY_SCHEME: &str = "mlflow-artifacts:";

/// The artifact-store path of a `mlflow-artifacts:/x/y` URI (`x/y`), or
/// `None` for URIs the server does not proxy.
pub fn store_path_of(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix(PROXY_SCHEME)?;
    // `mlflow-artifacts://host/path` names another server's host: keep the path.
    let rest = match rest.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => rest,
    };
    Some(rest.trim_matches('/').to_owned())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/", get(list))
        .route(
            "/artifacts/{*path}",
            get(download).put(upload).delete(remove),
        )
}

/// A `FileInfo` JSON object; `file_size` is omitted for directories and
/// empty files, as MLflow does.
pub fn file_info(path: &str, e: &ArtifactEntry) -> Value {
    let mut v = json!({"path": path, "is_dir": e.is_dir});
    if let Some(size) = e.size.filter(|s| *s > 0) {
        v["file_size"] = json!(size);
    }
    v
}

#[derive(Deserialize)]
struct ListQuery {
    path: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let dir = q.path.unwrap_or_default();
    let dir = dir.trim_end_matches('/');
    let entries = s.artifacts.list(dir).await?;
    let files: Vec<Value> = entries
        .iter()
        .map(|e| {
            let name = e.path.rsplit('/').next().unwrap_or(&e.path);
            file_info(name, e)
        })
        .collect();
    if files.is_empty() {
        return Ok(Json(json!({})));
    }
    Ok(Json(json!({"files": files})))
}

async fn download(
    State(s): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    verify_registered(&s, &path).await?;
    let (size, stream) = s.artifacts.get_stream(&path).await?;
    let name = path.rsplit('/').next().unwrap_or(&path).replace('"', "");
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&name)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// A file of a registered model version is checked against the digest
/// recorded at registration before any byte is sent: a changed file is
/// refused with `DATA_LOSS` rather than served. The status is 409, not a
/// 5xx: clients retry 5xx answers and then report only "too many 500
/// error responses", while a 409 shows them this message at once.
async fn verify_registered(s: &AppState, path: &str) -> Result<(), ApiError> {
    let Some(registry) = &s.registry else {
        return Ok(());
    };
    let Some(rf) = registry.registered_file(path.trim_matches('/')).await? else {
        return Ok(());
    };
    let actual = s.artifacts.digest(&rf.file.store_path).await?;
    if actual.sha256 != rf.file.sha256 || actual.size as i64 != rf.file.size {
        tracing::error!(model = %rf.name, version = rf.version, path = %rf.file.path, "registered artifact changed");
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            code: "DATA_LOSS",
            message: format!(
                "artifact '{}' of registered model version {}/{} is corrupted: its sha256 at registration was {} ({} bytes), it is now {} ({} bytes). \
                 Restore the file from a backup, or register a new version from a good copy; `keel models verify {}/{}` lists every changed file.",
                rf.file.path,
                rf.name,
                rf.version,
                rf.file.sha256,
                rf.file.size,
                actual.sha256,
                actual.size,
                rf.name,
                rf.version
            ),
        });
    }
    Ok(())
}

/// Files of a registered version are immutable: no write below its
/// artifact root, and no delete of anything that holds them.
pub(crate) async fn refuse_if_registered(
    s: &AppState,
    path: &str,
    delete: bool,
) -> Result<(), ApiError> {
    let Some(registry) = &s.registry else {
        return Ok(());
    };
    if let Some((name, version)) = registry.immutable_owner(path, delete).await? {
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            code: "INVALID_STATE",
            message: format!(
                "artifact '{path}' belongs to registered model version {name}/{version}, whose files are immutable; log a new model and register it as a new version"
            ),
        });
    }
    Ok(())
}

async fn upload(
    State(s): State<AppState>,
    Path(path): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    refuse_if_registered(&s, &path, false).await?;
    let stream = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    s.artifacts.put_stream(&path, stream).await?;
    Ok(Json(json!({})))
}

async fn remove(
    State(s): State<AppState>,
    Path(path): Path<String>,
) -> Result<Json<Value>, ApiError> {
    refuse_if_registered(&s, &path, true).await?;
    s.artifacts.delete(&path).await?;
    Ok(Json(json!({})))
}

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt" | "log" | "md" | "yaml" | "yml" | "py") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("csv") => "text/csv",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_uris_map_to_store_paths() {
        assert_eq!(
            store_path_of("mlflow-artifacts:/1/abc/artifacts").as_deref(),
            Some("1/abc/artifacts")
        );
        assert_eq!(
            store_path_of("mlflow-artifacts://host:5000/1/x").as_deref(),
            Some("1/x")
        );
        assert_eq!(store_path_of("s3://bucket/x"), None);
    }
}
