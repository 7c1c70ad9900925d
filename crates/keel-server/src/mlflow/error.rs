//! MLflow-shaped errors: `{"error_code": …, "message": …}` with the HTTP
//! status the MLflow client expects for each code. Client mistakes are
//! always 4xx: the client retries 5xx for minutes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_store::{ArtifactError, StoreError};
use keel_tracking::TrackingError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
        }
    }
    pub fn endpoint_not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "ENDPOINT_NOT_FOUND",
            message: format!(
                "No API endpoint at '{path}'. See /api/2.0/mlflow/ for the MLflow tracking API."
            ),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_ERROR",
            message: message.into(),
        }
    }
    pub fn missing(field: &str) -> Self {
        Self::invalid(format!(
            "Missing value for required parameter '{field}'. See the API docs for more information about request parameters."
        ))
    }
}

impl From<TrackingError> for ApiError {
    fn from(e: TrackingError) -> Self {
        match e {
            TrackingError::NotFound { .. } => ApiError::not_found(e.to_string()),
            TrackingError::AlreadyExists(m) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "RESOURCE_ALREADY_EXISTS",
                message: m,
            },
            TrackingError::InvalidParameter(m) => ApiError::invalid(m),
            TrackingError::Filter(f) => ApiError::invalid(f.to_string()),
            TrackingError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "metadata store failure");
        ApiError::internal(e.to_string())
    }
}

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::InvalidPath { .. } => ApiError::invalid(e.to_string()),
            ArtifactError::NotFound(_) => ApiError::not_found(e.to_string()),
            ArtifactError::UnsupportedUrl { .. } => ApiError::invalid(e.to_string()),
            ArtifactError::Backend { .. } | ArtifactError::Io(_) => {
                tracing::error!(error = %e, "artifact store failure");
                ApiError::internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}
