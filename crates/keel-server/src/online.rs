//! The feature server: Feast's `POST /get-online-features`, `/push` and
//! `/write-to-online-store` at the root (what Feast clients and `curl`
//! scripts written for `feast serve` call), and Keel's
//! `POST /v1/features/materialize`.
//!
//! Bodies are Feast's JSON both ways. Errors are Keel's JSON objects
//! (`{"error": {"code", "message", "field"}}`) with 400/404, where Feast
//! answers a JSON string inside JSON, often with a 500.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keel_features::online::{
    MaterializeRequest, OnlineFeatures, OnlineRequest, PushRequest, WriteRequest,
};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::lifecycle::V1Error;

type V1Result = Result<Response, V1Error>;

/// Largest request body: 64 MiB of pushed rows.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// Feast's routes, at the root.
pub fn feast_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/get-online-features", post(get_online_features))
        .route("/push", post(push))
        .route("/write-to-online-store", post(write_to_online_store))
}

/// Keel's own, under `/v1`.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/features/materialize", post(materialize))
        .route("/features/skew", post(skew))
}

fn online(s: &AppState) -> Result<&OnlineFeatures, V1Error> {
    s.online.as_ref().ok_or_else(|| {
        V1Error::unavailable("the online feature store is not running on this server")
    })
}

/// A JSON body, or a 400 that says where it is wrong.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, V1Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        // Keel's own messages start with the field (`to: …`); serde names a
        // missing or unknown field in backticks.
        let field = crate::models::field_of(&text)
            .or_else(|| {
                (text.starts_with("missing field") || text.starts_with("unknown field"))
                    .then(|| text.split('`').nth(1).map(str::to_owned))
                    .flatten()
            })
            .unwrap_or_else(|| "body".to_owned());
        V1Error {
            field: Some(field),
            ..V1Error::new(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                format!("the body is not a valid request: {text}"),
            )
        }
    })
}

async fn get_online_features(State(s): State<AppState>, bytes: Bytes) -> V1Result {
    let req: OnlineRequest = body(&bytes)?;
    let answer = online(&s)?.get_online_features(&req).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], answer.body).into_response())
}

async fn push(State(s): State<AppState>, bytes: Bytes) -> V1Result {
    let req: PushRequest = body(&bytes)?;
    online(&s)?.push(&req).await?;
    // Feast answers an empty 200.
    Ok(StatusCode::OK.into_response())
}

async fn write_to_online_store(State(s): State<AppState>, bytes: Bytes) -> V1Result {
    let req: WriteRequest = body(&bytes)?;
    online(&s)?.write_to_online_store(&req).await?;
    // Feast answers `null`.
    Ok(([(header::CONTENT_TYPE, "application/json")], "null").into_response())
}

async fn materialize(State(s): State<AppState>, bytes: Bytes) -> V1Result {
    let req: MaterializeRequest = if bytes.is_empty() {
        MaterializeRequest::default()
    } else {
        body(&bytes)?
    };
    let report = online(&s)?.materialize(&req, None).await?;
    Ok(axum::Json(report).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SkewBody {
    service: String,
    #[serde(default = "default_sample")]
    sample: usize,
}

fn default_sample() -> usize {
    1000
}

async fn skew(State(s): State<AppState>, bytes: Bytes) -> V1Result {
    let req: SkewBody = body(&bytes)?;
    let scratch = tempfile::tempdir().map_err(|e| {
        V1Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            e.to_string(),
        )
    })?;
    let report = online(&s)?
        .skew(&req.service, req.sample, scratch.path())
        .await?;
    Ok(axum::Json(report).into_response())
}
