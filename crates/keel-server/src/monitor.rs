//! Monitoring routes under `/v1/monitor`: the prediction log of a
//! deployment (served predictions land there by themselves; batches and
//! late labels are posted), its reference data, drift of a time window or
//! of every window over time, performance with labels and estimated
//! before them, alert rules that send lifecycle events and call webhooks,
//! and the metric series evaluations leave behind.
//!
//! Times in query strings are milliseconds since the epoch; windows are
//! durations (`30m`, `1h`, `7d`) or seconds.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use futures::StreamExt;
use keel_monitor::MonitorError;
use keel_monitor::alert::{Alert, AlertRule, Measure, MonitorStore, Transition, next_state};
use keel_monitor::drift::{DriftReport, DriftSpec, Method};
use keel_monitor::log::{
    LabelRow, META_COLUMNS, PredictionRow, Window, encode_labels, encode_predictions, segment_name,
    segment_span,
};
use keel_monitor::performance::{self, Task};
use keel_monitor::table::ParquetTable;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::lifecycle::V1Error;

type V1Result = Result<Response, V1Error>;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/monitor/deployments/{deployment}/predictions",
            post(log_predictions).get(read_predictions),
        )
        .route("/monitor/deployments/{deployment}/labels", post(log_labels))
        .route(
            "/monitor/deployments/{deployment}/reference",
            put(put_reference).get(get_reference),
        )
        .route("/monitor/deployments/{deployment}/drift", get(drift))
        .route(
            "/monitor/deployments/{deployment}/drift/history",
            get(drift_history),
        )
        .route(
            "/monitor/deployments/{deployment}/performance",
            get(performance_route),
        )
        .route(
            "/monitor/deployments/{deployment}/profile",
            get(profile_route),
        )
        .route("/monitor/alerts", get(list_alerts))
        .route("/monitor/alerts/evaluate", post(evaluate_route))
        .route(
            "/monitor/alerts/{name}",
            put(put_alert).get(get_alert).delete(delete_alert),
        )
        .route("/monitor/series", get(series))
        .route("/monitor/dashboard", get(dashboard))
}

/// Most rows one logging request may carry.
pub const MAX_BATCH: usize = 100_000;

pub fn predictions_folder(deployment: &str) -> String {
    format!("monitor/{deployment}/predictions")
}
fn labels_folder(deployment: &str) -> String {
    format!("monitor/{deployment}/labels")
}
fn reference_path(deployment: &str) -> String {
    format!("monitor/{deployment}/reference.parquet")
}

fn store(s: &AppState) -> Result<&MonitorStore, V1Error> {
    s.monitor
        .as_ref()
        .ok_or_else(|| V1Error::unavailable("this server does not run monitoring"))
}

pub(crate) fn monitor_error(e: MonitorError) -> V1Error {
    match e {
        MonitorError::Invalid { field, message } => V1Error::invalid(&field, message),
        MonitorError::MissingColumn { .. }
        | MonitorError::ColumnType { .. }
        | MonitorError::Statistics { .. } => {
            V1Error::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", e.to_string())
        }
        MonitorError::Parquet { .. } => V1Error::invalid("reference", e.to_string()),
        other => internal(other),
    }
}

/// A failure of the server's own (a 500 with the cause).
fn internal(e: impl std::fmt::Display) -> V1Error {
    V1Error::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        e.to_string(),
    )
}

fn check_deployment(d: &str) -> Result<(), V1Error> {
    if d.is_empty()
        || d.len() > 200
        || d.contains(['/', '\\'])
        || d.starts_with('.')
        || d.chars().any(char::is_control)
    {
        return Err(V1Error::invalid(
            "deployment",
            "must be a plain name (no slashes, not starting with a dot)",
        ));
    }
    Ok(())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Writes one segment to the artifact store.
pub async fn put_segment(
    artifacts: &keel_store::ArtifactStore,
    folder: &str,
    first: i64,
    last: i64,
    bytes: Vec<u8>,
) -> Result<(), String> {
    let name = format!(
        "{folder}/{}",
        segment_name(
            first,
            last,
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    );
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    artifacts
        .put_stream(&name, Box::pin(body))
        .await
        .map(|_| ())
        .map_err(|e| format!("{name}: {e}"))
}

async fn read_all(artifacts: &keel_store::ArtifactStore, path: &str) -> Result<Bytes, V1Error> {
    let (size, mut stream) = artifacts.get_stream(path).await.map_err(|e| match e {
        keel_store::ArtifactError::NotFound(_) => {
            V1Error::not_found(format!("{path} does not exist"))
        }
        other => internal(other),
    })?;
    let mut buf = Vec::with_capacity(size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(internal)?;
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The log rows of `[start, end)` (µs) with every label that arrived.
pub async fn read_window(
    s: &AppState,
    deployment: &str,
    start: i64,
    end: i64,
) -> Result<Window, V1Error> {
    let mut window = Window::default();
    for entry in s
        .artifacts
        .list_files(&predictions_folder(deployment))
        .await
        .map_err(internal)?
    {
        let Some((first, last)) = segment_span(&entry.path) else {
            continue;
        };
        if last < start || first >= end {
            continue;
        }
        let bytes = read_all(&s.artifacts, &entry.path).await?;
        window
            .add_segment(bytes, start, end)
            .map_err(monitor_error)?;
    }
    for entry in s
        .artifacts
        .list_files(&labels_folder(deployment))
        .await
        .map_err(internal)?
    {
        let bytes = read_all(&s.artifacts, &entry.path).await?;
        window.add_labels(bytes).map_err(monitor_error)?;
    }
    window.sort();
    Ok(window)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    /// ms since the epoch
    start: Option<i64>,
    /// ms since the epoch
    end: Option<i64>,
    /// a duration (`1h`) or seconds: the window ending at `end`
    window: Option<String>,
    limit: Option<usize>,
    format: Option<String>,
    /// drift: one method for every column, or `COLUMN=METHOD,…`
    method: Option<String>,
    threshold: Option<f64>,
    drift_share: Option<f64>,
    /// performance: classification (default) or regression
    task: Option<String>,
    /// performance: the score at which a prediction is positive
    decision_threshold: Option<f64>,
    /// history and performance: bucket size
    step: Option<String>,
    /// performance: only rows whose feature equals a value (`plan=pro`)
    slice: Option<String>,
}

fn parse_seconds(field: &str, text: &str) -> Result<i64, V1Error> {
    if let Ok(n) = text.parse::<f64>() {
        if n > 0.0 && n.is_finite() {
            return Ok((n * 1e6) as i64);
        }
        return Err(V1Error::invalid(field, "must be positive"));
    }
    keel_core::duration::parse_duration(text)
        .map(|d| d.as_micros() as i64)
        .map_err(|e| V1Error::invalid(field, e))
        .and_then(|us| {
            if us > 0 {
                Ok(us)
            } else {
                Err(V1Error::invalid(field, "must be positive"))
            }
        })
}

impl WindowQuery {
    /// `[start, end)` in µs; the default window is the last hour.
    fn span(&self) -> Result<(i64, i64), V1Error> {
        let end = self
            .end
            .map(|ms| ms.saturating_mul(1000))
            .unwrap_or_else(|| now_micros() + 1);
        let start = match (self.start, &self.window) {
            (Some(ms), _) => ms.saturating_mul(1000),
            (None, Some(w)) => end - parse_seconds("window", w)?,
            (None, None) => end - 3_600_000_000,
        };
        if start >= end {
            return Err(V1Error::invalid("start", "must be before end"));
        }
        Ok((start, end))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogBody {
    rows: Vec<LogRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogRow {
    #[serde(default)]
    id: Option<String>,
    /// ms since the epoch (default: now)
    #[serde(default)]
    at: Option<i64>,
    #[serde(default)]
    features: serde_json::Map<String, Value>,
    #[serde(default)]
    prediction: Option<f64>,
    #[serde(default)]
    label: Option<f64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    error: Option<String>,
}

/// `POST …/predictions {"rows": [{"features": {...}, "prediction": 0.7,
/// "id": "...", "at": MS, "label": 1}]}`: one segment, acknowledged once
/// written.
async fn log_predictions(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    body: Bytes,
) -> V1Result {
    check_deployment(&deployment)?;
    let body: LogBody =
        serde_json::from_slice(&body).map_err(|e| V1Error::invalid("rows", format!("{e}")))?;
    if body.rows.is_empty() {
        return Err(V1Error::invalid("rows", "must not be empty"));
    }
    if body.rows.len() > MAX_BATCH {
        return Err(V1Error::invalid(
            "rows",
            format!("at most {MAX_BATCH} rows per request"),
        ));
    }
    let now = now_micros();
    let mut rows = Vec::with_capacity(body.rows.len());
    let mut labels = Vec::new();
    for (i, r) in body.rows.into_iter().enumerate() {
        for (name, v) in &r.features {
            if !(v.is_number() || v.is_string() || v.is_boolean() || v.is_null()) {
                return Err(V1Error::invalid(
                    &format!("rows[{i}].features.{name}"),
                    "must be a number, string, boolean or null",
                ));
            }
        }
        let id = r.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if let Some(label) = r.label {
            if !label.is_finite() {
                return Err(V1Error::invalid(
                    &format!("rows[{i}].label"),
                    "must be a finite number",
                ));
            }
            labels.push(LabelRow {
                id: id.clone(),
                label,
                at: now,
            });
        }
        rows.push(PredictionRow {
            id,
            at: r.at.map(|ms| ms.saturating_mul(1000)).unwrap_or(now),
            model: r.model.unwrap_or_default(),
            model_version: r.model_version.unwrap_or_default(),
            variant: r.variant,
            latency_us: r.latency_ms.map(|ms| (ms * 1000.0) as i64),
            features: r.features,
            prediction: r.prediction,
            outputs: Value::Null,
            error: r.error,
            shadow: false,
            propensity: None,
        });
    }
    let first = rows.iter().map(|r| r.at).min().unwrap_or(now);
    let last = rows.iter().map(|r| r.at).max().unwrap_or(now);
    let n = rows.len();
    let bytes = encode_predictions(&rows).map_err(|e| match e {
        MonitorError::Invalid { field, message } => {
            V1Error::invalid(&format!("rows.{field}"), message)
        }
        other => monitor_error(other),
    })?;
    let label_bytes = if labels.is_empty() {
        None
    } else {
        Some(encode_labels(&labels).map_err(monitor_error)?)
    };
    put_segment(
        &s.artifacts,
        &predictions_folder(&deployment),
        first,
        last,
        bytes,
    )
    .await
    .map_err(internal)?;
    if let Some(b) = label_bytes {
        put_segment(&s.artifacts, &labels_folder(&deployment), now, now, b)
            .await
            .map_err(internal)?;
    }
    Ok(Json(json!({"logged": n, "labels": labels.len()})).into_response())
}

async fn read_predictions(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    Query(q): Query<WindowQuery>,
) -> V1Result {
    check_deployment(&deployment)?;
    let (start, end) = q.span()?;
    let window = read_window(&s, &deployment, start, end).await?;
    let limit = q.limit.unwrap_or(1000).min(MAX_BATCH);
    let total = window.rows.len();
    let rows: Vec<Value> = window
        .rows
        .iter()
        .rev()
        .take(limit)
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            if let Some(l) = window.labels.get(&r.id) {
                v["label"] = json!(l);
            }
            v
        })
        .collect();
    Ok(Json(json!({"deployment": deployment, "total": total, "rows": rows})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsBody {
    labels: Vec<LabelIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelIn {
    id: String,
    label: f64,
}

/// `POST …/labels {"labels": [{"id": "...", "label": 1}]}`: labels that
/// arrived after their predictions, joined by id when windows are read.
async fn log_labels(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    body: Bytes,
) -> V1Result {
    check_deployment(&deployment)?;
    let body: LabelsBody =
        serde_json::from_slice(&body).map_err(|e| V1Error::invalid("labels", format!("{e}")))?;
    if body.labels.is_empty() || body.labels.len() > MAX_BATCH {
        return Err(V1Error::invalid(
            "labels",
            format!("must hold 1 to {MAX_BATCH} labels"),
        ));
    }
    let now = now_micros();
    let mut rows = Vec::with_capacity(body.labels.len());
    for (i, l) in body.labels.into_iter().enumerate() {
        if l.id.is_empty() {
            return Err(V1Error::invalid(
                &format!("labels[{i}].id"),
                "must not be empty",
            ));
        }
        if !l.label.is_finite() {
            return Err(V1Error::invalid(
                &format!("labels[{i}].label"),
                "must be a finite number",
            ));
        }
        rows.push(LabelRow {
            id: l.id,
            label: l.label,
            at: now,
        });
    }
    let n = rows.len();
    let bytes = encode_labels(&rows).map_err(monitor_error)?;
    put_segment(&s.artifacts, &labels_folder(&deployment), now, now, bytes)
        .await
        .map_err(internal)?;
    Ok(Json(json!({"labels": n})).into_response())
}

/// `PUT …/reference`: a Parquet file as the body, or with `?start=&end=`
/// (or `?window=`) and no body, that window of the log.
async fn put_reference(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    Query(q): Query<WindowQuery>,
    body: Bytes,
) -> V1Result {
    check_deployment(&deployment)?;
    let bytes = if body.is_empty() {
        let (start, end) = q.span()?;
        let window = read_window(&s, &deployment, start, end).await?;
        if window.rows.is_empty() {
            return Err(V1Error::invalid(
                "start",
                "the log holds no predictions in this window",
            ));
        }
        window.to_parquet().map_err(monitor_error)?
    } else {
        body.to_vec()
    };
    // Check it is Parquet before keeping it.
    let (rows, columns) = keel_monitor::log::parquet_summary(Bytes::from(bytes.clone()))
        .map_err(|e| V1Error::invalid("reference", e.to_string()))?;
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    s.artifacts
        .put_stream(&reference_path(&deployment), Box::pin(body))
        .await
        .map_err(internal)?;
    Ok(Json(json!({"deployment": deployment, "rows": rows, "columns": columns})).into_response())
}

async fn get_reference(State(s): State<AppState>, Path(deployment): Path<String>) -> V1Result {
    check_deployment(&deployment)?;
    let bytes = read_all(&s.artifacts, &reference_path(&deployment)).await?;
    let (rows, columns) = keel_monitor::log::parquet_summary(bytes).map_err(monitor_error)?;
    Ok(Json(json!({"deployment": deployment, "rows": rows, "columns": columns})).into_response())
}

fn drift_spec(q: &WindowQuery) -> Result<DriftSpec, V1Error> {
    let mut spec = DriftSpec {
        exclude: META_COLUMNS
            .iter()
            .filter(|c| **c != "prediction")
            .map(|c| c.to_string())
            .collect(),
        prediction: Some("prediction".into()),
        threshold: q.threshold,
        ..Default::default()
    };
    if let Some(share) = q.drift_share {
        spec.drift_share = share;
    }
    if let Some(m) = &q.method {
        for part in m.split(',').filter(|p| !p.is_empty()) {
            let (column, name) = match part.split_once('=') {
                Some((c, n)) => (Some(c), n),
                None => (None, part),
            };
            let method = Method::parse(name).ok_or_else(|| {
                V1Error::invalid(
                    "method",
                    format!(
                        "unknown method {name:?}; one of {}",
                        keel_monitor::drift::method_names()
                    ),
                )
            })?;
            match column {
                Some(c) => {
                    spec.methods.insert(c.to_string(), method);
                }
                None => {
                    spec.numerical_method = Some(method);
                    if !method.numerical_only() {
                        spec.categorical_method = Some(method);
                    }
                }
            }
        }
    }
    spec.validate().map_err(monitor_error)?;
    Ok(spec)
}

/// The deployment's reference data, or a 409 saying how to set it.
async fn reference_bytes(s: &AppState, deployment: &str) -> Result<Bytes, V1Error> {
    read_all(&s.artifacts, &reference_path(deployment))
        .await
        .map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                V1Error::new(
                    StatusCode::CONFLICT,
                    "NO_REFERENCE",
                    format!("{deployment} has no reference data: PUT /v1/monitor/deployments/{deployment}/reference first"),
                )
            } else {
                e
            }
        })
}

/// Drift of the log's window against the reference (read once by the
/// caller, compared in memory).
pub async fn window_drift(
    reference: &Bytes,
    window: &Window,
    spec: DriftSpec,
) -> Result<DriftReport, V1Error> {
    let reference = reference.clone();
    let current = Bytes::from(window.to_parquet().map_err(monitor_error)?);
    tokio::task::spawn_blocking(move || -> Result<DriftReport, V1Error> {
        let reference =
            ParquetTable::from_bytes("the reference", reference).map_err(monitor_error)?;
        let current = ParquetTable::from_bytes("the window", current).map_err(monitor_error)?;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        keel_monitor::drift::drift_tables(&reference, &current, &spec, threads, &|_, _| {})
            .map_err(monitor_error)
    })
    .await
    .map_err(internal)?
}

fn usable(window: &Window) -> Window {
    Window {
        rows: window
            .rows
            .iter()
            .filter(|r| r.error.is_none() && !r.shadow)
            .cloned()
            .collect(),
        labels: window.labels.clone(),
    }
}

/// `GET …/drift?window=1h[&method=psi][&threshold=0.2][&format=html]`.
async fn drift(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    Query(q): Query<WindowQuery>,
) -> V1Result {
    check_deployment(&deployment)?;
    let spec = drift_spec(&q)?;
    let (start, end) = q.span()?;
    let window = usable(&read_window(&s, &deployment, start, end).await?);
    if window.rows.is_empty() {
        return Err(V1Error::invalid(
            "window",
            "the log holds no predictions in this window",
        ));
    }
    let reference = reference_bytes(&s, &deployment).await?;
    let report = window_drift(&reference, &window, spec).await?;
    if let Some(store) = &s.monitor {
        let at = end / 1000;
        let labels = format!("deployment={deployment}");
        let mut points = vec![(
            "drift_share".to_string(),
            labels.clone(),
            at,
            report.drift_share,
        )];
        for c in report.columns.iter().chain(&report.prediction) {
            points.push((
                format!("drift_score.{}", c.column),
                labels.clone(),
                at,
                c.score,
            ));
        }
        if let Err(e) = store.record(points).await {
            tracing::warn!(error = %e, "drift scores not recorded");
        }
    }
    if q.format.as_deref() == Some("html") {
        let page = keel_monitor::report::render_html(&report, &format!("Drift of {deployment}"));
        return Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response());
    }
    let mut v = serde_json::to_value(&report).map_err(internal)?;
    v["deployment"] = json!(deployment);
    v["start"] = json!(start / 1000);
    v["end"] = json!(end / 1000);
    Ok(Json(v).into_response())
}

/// `GET …/drift/history?window=1d&step=1h[&format=html]`: drift of every
/// step of the window, oldest first (steps with no predictions are left
/// out).
async fn drift_history(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    Query(q): Query<WindowQuery>,
) -> V1Result {
    check_deployment(&deployment)?;
    let spec = drift_spec(&q)?;
    let (start, end) = q.span()?;
    let step = parse_seconds("step", q.step.as_deref().unwrap_or("1h"))?;
    if (end - start) / step > 500 {
        return Err(V1Error::invalid("step", "at most 500 steps per request"));
    }
    let all = usable(&read_window(&s, &deployment, start, end).await?);
    let reference = reference_bytes(&s, &deployment).await?;
    let mut points = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + step).min(end);
        let part = Window {
            rows: all
                .rows
                .iter()
                .filter(|r| r.at >= from && r.at < to)
                .cloned()
                .collect(),
            labels: Default::default(),
        };
        if !part.rows.is_empty() {
            let report = window_drift(&reference, &part, spec.clone()).await?;
            points.push(json!({
                "start": from / 1000,
                "end": to / 1000,
                "rows": part.rows.len(),
                "dataset_drift": report.dataset_drift,
                "drift_share": report.drift_share,
                "columns": report.columns.iter().chain(&report.prediction).map(|c| json!({
                    "column": c.column, "method": c.method, "score": c.score, "drifted": c.drifted
                })).collect::<Vec<_>>(),
            }));
        }
        from = to;
    }
    if q.format.as_deref() == Some("html") {
        let page = history_html(&deployment, &points, spec.drift_share);
        return Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response());
    }
    Ok(
        Json(
            json!({"deployment": deployment, "step_seconds": step as f64 / 1e6, "points": points}),
        )
        .into_response(),
    )
}

/// A line chart of the drift share per step, with the dataset threshold.
fn history_html(deployment: &str, points: &[Value], threshold: f64) -> String {
    use keel_monitor::report::{LinePoint, chart_page, line_chart};
    let line: Vec<LinePoint> = points
        .iter()
        .map(|p| LinePoint {
            at_ms: p["start"].as_i64().unwrap_or(0),
            value: p["drift_share"].as_f64().unwrap_or(0.0),
            alarm: p["dataset_drift"].as_bool().unwrap_or(false),
            note: format!(
                "{} rows, share {:.3}",
                p["rows"],
                p["drift_share"].as_f64().unwrap_or(0.0)
            ),
        })
        .collect();
    chart_page(
        &format!("Drift over time: {deployment}"),
        &format!(
            "Share of drifted columns per step; the dashed line is the dataset threshold ({threshold})."
        ),
        &[(
            "drift share".to_string(),
            line_chart("drift share over time", &line, Some(threshold)),
        )],
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardQuery {
    deployment: Option<String>,
    window: Option<String>,
    step: Option<String>,
}

/// `GET /v1/monitor/dashboard[?deployment=D][&window=1d][&step=5m]`: an
/// HTML page of the embedded metric series — every series of the
/// deployment (drift share and scores, alert values, predictions per
/// variant) or, without one, the server's own (inference rates and
/// latency per model version, memory, CPU), each averaged per step.
async fn dashboard(State(s): State<AppState>, Query(q): Query<DashboardQuery>) -> V1Result {
    use keel_monitor::report::{LinePoint, chart_page, line_chart};
    let store = store(&s)?;
    let window_us = parse_seconds("window", q.window.as_deref().unwrap_or("1d"))?;
    let step_ms = parse_seconds("step", q.step.as_deref().unwrap_or("5m"))? / 1000;
    let end = keel_core::time::now_millis() + 1;
    let start = end - window_us / 1000;
    if (end - start) / step_ms.max(1) > 2000 {
        return Err(V1Error::invalid("step", "at most 2,000 steps per chart"));
    }
    let wanted = |labels: &str| match &q.deployment {
        Some(d) => {
            let own = format!("deployment={d}");
            labels == own || labels.starts_with(&format!("{own},"))
        }
        None => !labels.starts_with("deployment="),
    };
    let mut charts = Vec::new();
    for (name, labels) in store.series_names().await.map_err(monitor_error)? {
        if !wanted(&labels) {
            continue;
        }
        let points = store
            .series(&name, &labels, start, end, step_ms)
            .await
            .map_err(monitor_error)?;
        if points.is_empty() {
            continue;
        }
        let threshold = (name == "drift_share").then_some(0.5);
        let line: Vec<LinePoint> = points
            .iter()
            .map(|p| LinePoint {
                at_ms: p.at,
                value: p.value,
                alarm: threshold.is_some_and(|t| p.value >= t),
                note: format!(
                    "mean {:.4} of {} (min {:.4}, max {:.4})",
                    p.value, p.count, p.min, p.max
                ),
            })
            .collect();
        let heading = if labels.is_empty() {
            name.clone()
        } else {
            format!("{name} {{{labels}}}")
        };
        charts.push((heading.clone(), line_chart(&heading, &line, threshold)));
    }
    let title = match &q.deployment {
        Some(d) => format!("Monitoring: {d}"),
        None => "Monitoring: this server".to_string(),
    };
    let intro = if charts.is_empty() {
        "No series in this window yet: they fill as alerts are evaluated and the server samples itself (every KEEL_ALERT_INTERVAL).".to_string()
    } else {
        format!(
            "{} series, averaged per step; hover a point for its count, minimum and maximum.",
            charts.len()
        )
    };
    let page = chart_page(&title, &intro, &charts);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

/// Performance of one set of rows.
fn performance_of(
    rows: &[&PredictionRow],
    labels: &std::collections::HashMap<String, f64>,
    task: Task,
    threshold: f64,
) -> Value {
    let mut pairs = Vec::new();
    let mut unlabelled = Vec::new();
    for r in rows {
        let Some(p) = r.prediction else { continue };
        match labels.get(&r.id) {
            Some(y) => pairs.push((p, *y)),
            None => unlabelled.push(p),
        }
    }
    let mut v = json!({
        "predictions": rows.len(),
        "labelled": pairs.len(),
        "realized": performance::realized(&pairs, task, threshold),
    });
    if task == Task::Classification {
        v["estimated"] = json!(performance::estimate(&unlabelled, threshold));
    }
    v
}

/// `GET …/performance?window=1d[&step=1h][&task=regression]
/// [&decision_threshold=0.5]`: realized metrics where labels arrived and
/// CBPE estimates for the rest, overall and per variant, per step.
async fn performance_route(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    Query(q): Query<WindowQuery>,
) -> V1Result {
    check_deployment(&deployment)?;
    let task = match q.task.as_deref() {
        None | Some("classification") => Task::Classification,
        Some("regression") => Task::Regression,
        Some(other) => {
            return Err(V1Error::invalid(
                "task",
                format!("{other:?} is not classification or regression"),
            ));
        }
    };
    let threshold = q.decision_threshold.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(V1Error::invalid("decision_threshold", "must be in [0, 1]"));
    }
    let (start, end) = q.span()?;
    let step = match &q.step {
        Some(s) => parse_seconds("step", s)?,
        None => end - start,
    };
    if (end - start) / step > 1000 {
        return Err(V1Error::invalid("step", "at most 1000 steps per request"));
    }
    let mut window = usable(&read_window(&s, &deployment, start, end).await?);
    if let Some(slice) = &q.slice {
        let (feature, value) = slice
            .split_once('=')
            .ok_or_else(|| V1Error::invalid("slice", "expected FEATURE=VALUE"))?;
        window.rows.retain(|r| match r.features.get(feature) {
            Some(Value::String(v)) => v == value,
            Some(Value::Number(n)) => value.parse::<f64>().ok() == n.as_f64(),
            Some(Value::Bool(b)) => value.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        });
    }
    let mut steps = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + step).min(end);
        let rows: Vec<&PredictionRow> = window
            .rows
            .iter()
            .filter(|r| r.at >= from && r.at < to)
            .collect();
        if !rows.is_empty() {
            let mut by_variant: BTreeMap<String, Vec<&PredictionRow>> = BTreeMap::new();
            for r in &rows {
                by_variant
                    .entry(r.variant.clone().unwrap_or_default())
                    .or_default()
                    .push(r);
            }
            let variants: serde_json::Map<String, Value> = by_variant
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| {
                    (
                        k.clone(),
                        performance_of(v, &window.labels, task, threshold),
                    )
                })
                .collect();
            let mut point = performance_of(&rows, &window.labels, task, threshold);
            point["start"] = json!(from / 1000);
            point["end"] = json!(to / 1000);
            if !variants.is_empty() {
                point["variants"] = Value::Object(variants);
            }
            steps.push(point);
        }
        from = to;
    }
    Ok(Json(json!({
        "deployment": deployment,
        "task": task,
        "decision_threshold": threshold,
        "slice": q.slice,
        "steps": steps,
    }))
    .into_response())
}

/// `GET …/profile?window=1h`: the mergeable profile of the window's
/// features and prediction (`keel_monitor::profile::DatasetProfile`, the
/// same JSON `keel monitor profile` writes and merges).
async fn profile_route(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    Query(q): Query<WindowQuery>,
) -> V1Result {
    check_deployment(&deployment)?;
    let (start, end) = q.span()?;
    let window = usable(&read_window(&s, &deployment, start, end).await?);
    if window.rows.is_empty() {
        return Err(V1Error::invalid(
            "window",
            "the log holds no predictions in this window",
        ));
    }
    let bytes = Bytes::from(window.to_parquet().map_err(monitor_error)?);
    let mut profile = tokio::task::spawn_blocking(move || {
        let table = ParquetTable::from_bytes("the window", bytes)?;
        keel_monitor::table::profile_table(&table, &Default::default())
    })
    .await
    .map_err(internal)?
    .map_err(monitor_error)?;
    let mut columns = profile.columns().keys().cloned().collect::<Vec<_>>();
    columns.retain(|c| META_COLUMNS.contains(&c.as_str()) && c != "prediction");
    for c in columns {
        profile.remove_column(&c);
    }
    if let Ok(w) = keel_monitor::profile::TimeWindow::new(start, end) {
        profile = profile.with_window(w);
    }
    Ok(Json(profile).into_response())
}

// ---- alerts ---------------------------------------------------------------

async fn put_alert(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> V1Result {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(V1Error::invalid(
            "name",
            "must be 1 to 200 printable characters",
        ));
    }
    let rule: AlertRule = serde_json::from_slice(&body).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"))
            .unwrap_or("rule")
            .to_string();
        V1Error::invalid(&field, msg)
    })?;
    check_deployment(&rule.deployment)?;
    let alert = store(&s)?
        .put_alert(&name, &rule)
        .await
        .map_err(monitor_error)?;
    Ok(Json(alert).into_response())
}

async fn get_alert(State(s): State<AppState>, Path(name): Path<String>) -> V1Result {
    match store(&s)?.alert(&name).await.map_err(monitor_error)? {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(V1Error::not_found(format!("no alert named {name}"))),
    }
}

async fn delete_alert(State(s): State<AppState>, Path(name): Path<String>) -> V1Result {
    if store(&s)?
        .delete_alert(&name)
        .await
        .map_err(monitor_error)?
    {
        Ok(Json(json!({})).into_response())
    } else {
        Err(V1Error::not_found(format!("no alert named {name}")))
    }
}

async fn list_alerts(State(s): State<AppState>) -> V1Result {
    Ok(Json(json!({"alerts": store(&s)?.alerts().await.map_err(monitor_error)?})).into_response())
}

async fn evaluate_route(State(s): State<AppState>) -> V1Result {
    let results = evaluate_all(&s).await?;
    Ok(Json(json!({"evaluated": results})).into_response())
}

/// Measures a rule's value over its window now; `None` with a reason when
/// there is too little data for a verdict.
async fn measure(s: &AppState, rule: &AlertRule) -> Result<Result<f64, String>, V1Error> {
    let end = now_micros() + 1;
    let start = end - (rule.window_seconds as i64).saturating_mul(1_000_000);
    let window = read_window(s, &rule.deployment, start, end).await?;
    // Requests are what the deployment answered or failed (shadows are
    // not requests); predictions are the answers.
    let requests = window.rows.iter().filter(|r| !r.shadow).count() as u64;
    let ok = usable(&window);
    let (n, what) = match rule.condition.measure {
        Measure::ErrorRate | Measure::PredictionCount => (requests, "requests"),
        _ => (ok.rows.len() as u64, "predictions"),
    };
    if n < rule.min_rows && rule.condition.measure != Measure::PredictionCount {
        return Ok(Err(format!(
            "{n} {what} in the window, fewer than min_rows {}",
            rule.min_rows
        )));
    }
    let value = match &rule.condition.measure {
        Measure::DriftShare | Measure::ColumnDrift { .. } => {
            let reference = reference_bytes(s, &rule.deployment).await?;
            let report =
                window_drift(&reference, &ok, drift_spec(&WindowQuery::default())?).await?;
            match &rule.condition.measure {
                Measure::ColumnDrift { column } => match report
                    .columns
                    .iter()
                    .chain(&report.prediction)
                    .find(|c| &c.column == column)
                {
                    Some(c) => c.score,
                    None => return Ok(Err(format!("column {column} was not compared"))),
                },
                _ => report.drift_share,
            }
        }
        Measure::Metric { metric } => {
            let task = if performance::REGRESSION_METRICS.contains(&metric.as_str()) {
                Task::Regression
            } else {
                Task::Classification
            };
            let pairs: Vec<(f64, f64)> = ok
                .rows
                .iter()
                .filter_map(|r| Some((r.prediction?, *window.labels.get(&r.id)?)))
                .collect();
            if (pairs.len() as u64) < rule.min_rows {
                return Ok(Err(format!(
                    "{} labelled predictions, fewer than min_rows {}",
                    pairs.len(),
                    rule.min_rows
                )));
            }
            match performance::realized(&pairs, task, 0.5).get(metric) {
                Some(v) => v,
                None => return Ok(Err(format!("{metric} is undefined on this window"))),
            }
        }
        Measure::EstimatedMetric { metric } => {
            let scores: Vec<f64> = ok
                .rows
                .iter()
                .filter(|r| !window.labels.contains_key(&r.id))
                .filter_map(|r| r.prediction)
                .collect();
            match performance::estimate(&scores, 0.5).get(metric) {
                Some(v) => v,
                None => return Ok(Err(format!("{metric} cannot be estimated on this window"))),
            }
        }
        Measure::LatencyP99Ms => {
            let mut l: Vec<f64> = ok
                .rows
                .iter()
                .filter_map(|r| r.latency_us)
                .map(|us| us as f64 / 1000.0)
                .collect();
            if l.is_empty() {
                return Ok(Err("no latencies logged in the window".into()));
            }
            l.sort_by(f64::total_cmp);
            // Nearest rank.
            let rank = ((0.99 * l.len() as f64).ceil() as usize).clamp(1, l.len());
            l[rank - 1]
        }
        Measure::PredictionCount => requests as f64,
        Measure::ErrorRate => (requests - ok.rows.len() as u64) as f64 / requests as f64,
    };
    Ok(Ok(value))
}

/// Evaluates every alert once and delivers its transitions.
pub async fn evaluate_all(s: &AppState) -> Result<Vec<Value>, V1Error> {
    let store = store(s)?.clone();
    let mut out = Vec::new();
    for alert in store.alerts().await.map_err(monitor_error)? {
        out.push(evaluate_one(s, &store, alert).await);
    }
    Ok(out)
}

async fn evaluate_one(s: &AppState, store: &MonitorStore, alert: Alert) -> Value {
    let measured = match measure(s, &alert.rule).await {
        Ok(m) => m,
        Err(e) => Err(e.message),
    };
    let value = match measured {
        Ok(v) => v,
        Err(reason) => {
            let _ = store
                .set_state(
                    &alert.name,
                    alert.state,
                    alert.streak,
                    false,
                    alert.last_value,
                    Some(reason.clone()),
                )
                .await;
            return json!({"alert": alert.name, "state": alert.state, "verdict": null, "message": reason});
        }
    };
    let labels = format!("deployment={}", alert.rule.deployment);
    let _ = store
        .record(vec![(
            alert.rule.condition.measure.name(),
            labels,
            keel_core::time::now_millis(),
            value,
        )])
        .await;
    let holds = alert.rule.condition.holds(value);
    let (state, streak, transition) =
        next_state(alert.state, alert.streak, holds, alert.rule.for_evaluations);
    let mut message = None;
    if let Some(t) = transition
        && let Err(e) = deliver(s, &alert, t, value).await
    {
        message = Some(e);
    }
    if let Err(e) = store
        .set_state(
            &alert.name,
            state,
            streak,
            state != alert.state,
            Some(value),
            message.clone(),
        )
        .await
    {
        tracing::warn!(alert = %alert.name, error = %e, "alert state not saved");
        message = Some(format!("the alert's new state was not saved: {e}"));
    }
    json!({"alert": alert.name, "value": value, "holds": holds, "state": state, "transition": transition, "message": message})
}

/// Sends a transition to the rule's lifecycle and webhook.
async fn deliver(
    s: &AppState,
    alert: &Alert,
    transition: Transition,
    value: f64,
) -> Result<(), String> {
    let body = keel_monitor::alert::webhook_body(alert, transition, value);
    let mut problems = Vec::new();
    if let Some(target) = &alert.rule.lifecycle {
        let event = match transition {
            Transition::Fired => Some(target.on_fire.clone()),
            Transition::Resolved => target.on_resolve.clone(),
        };
        if let Some(event) = event {
            let key = target
                .key
                .clone()
                .unwrap_or_else(|| alert.rule.deployment.clone());
            let idempotency = format!("alert:{}:{:?}:{}", alert.name, transition, alert.since);
            if let Err(e) = crate::lifecycle::send_starting(
                s,
                &target.name,
                &key,
                json!({"deployment": alert.rule.deployment}),
                &event,
                body.clone(),
                idempotency,
            )
            .await
            {
                problems.push(format!("lifecycle {}: {}", target.name, e.message));
            }
        }
    }
    if let Some(url) = &alert.rule.webhook {
        let client = reqwest::Client::new();
        match client
            .post(url)
            .json(&body)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => problems.push(format!("webhook {url}: HTTP {}", r.status())),
            Err(e) => problems.push(format!("webhook {url}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    name: Option<String>,
    deployment: Option<String>,
    /// The label set as recorded (`model=churn,version=1`); wins over
    /// `deployment`.
    labels: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
    step: Option<String>,
}

/// `GET /v1/monitor/series?name=drift_share&deployment=churn&step=1h`:
/// a series averaged per step (min, max and count kept); without `name`,
/// the list of series.
async fn series(
    State(s): State<AppState>,
    Query(q): Query<SeriesQuery>,
    _headers: HeaderMap,
) -> V1Result {
    let store = store(&s)?;
    let Some(name) = q.name else {
        let names: Vec<Value> = store
            .series_names()
            .await
            .map_err(monitor_error)?
            .into_iter()
            .map(|(n, l)| json!({"name": n, "labels": l}))
            .collect();
        return Ok(Json(json!({"series": names})).into_response());
    };
    let labels = q
        .labels
        .or_else(|| q.deployment.map(|d| format!("deployment={d}")))
        .unwrap_or_default();
    let end = q.end.unwrap_or_else(|| keel_core::time::now_millis() + 1);
    let start = q.start.unwrap_or(end - 86_400_000);
    let step = match &q.step {
        Some(s) => parse_seconds("step", s)? / 1000,
        None => 60_000,
    };
    let points = store
        .series(&name, &labels, start, end, step)
        .await
        .map_err(monitor_error)?;
    Ok(
        Json(json!({"name": name, "labels": labels, "step_ms": step, "points": points}))
            .into_response(),
    )
}

/// What [`sample_system`] saw last, to turn counters into rates.
pub struct SystemSample {
    at: std::time::Instant,
    metrics: crate::model_metrics::MetricsSnapshot,
    cpu_seconds: Option<f64>,
}

/// Records the server's own figures since the previous sample as metric
/// series points: per model version `inference_requests_per_second`,
/// `inference_errors_per_second` and `inference_mean_latency_seconds`; per
/// deployment and variant `predictions_per_second`; and
/// `process_resident_memory_bytes` and `process_cpu_utilization` (cores).
pub async fn sample_system(s: &AppState, previous: Option<&SystemSample>) -> SystemSample {
    let (rss, cpu_seconds) = crate::process_metrics::usage();
    let now = SystemSample {
        at: std::time::Instant::now(),
        metrics: s.model_metrics.snapshot(),
        cpu_seconds,
    };
    let Some(store) = &s.monitor else {
        return now;
    };
    let at = keel_core::time::now_millis();
    let mut points = Vec::new();
    if let Some(rss) = rss {
        points.push((
            "process_resident_memory_bytes".to_string(),
            String::new(),
            at,
            rss as f64,
        ));
    }
    if let Some(prev) = previous {
        let secs = now.at.duration_since(prev.at).as_secs_f64();
        if secs > 0.0 {
            if let (Some(a), Some(b)) = (prev.cpu_seconds, now.cpu_seconds) {
                points.push((
                    "process_cpu_utilization".into(),
                    String::new(),
                    at,
                    (b - a).max(0.0) / secs,
                ));
            }
            for ((model, version), (ok, err, dur)) in &now.metrics.versions {
                let (ok0, err0, dur0) = prev
                    .metrics
                    .versions
                    .get(&(model.clone(), *version))
                    .copied()
                    .unwrap_or((0, 0, 0.0));
                let labels = format!("model={model},version={version}");
                let calls = ok.saturating_sub(ok0);
                points.push((
                    "inference_requests_per_second".into(),
                    labels.clone(),
                    at,
                    calls as f64 / secs,
                ));
                points.push((
                    "inference_errors_per_second".into(),
                    labels.clone(),
                    at,
                    err.saturating_sub(err0) as f64 / secs,
                ));
                if calls > 0 {
                    points.push((
                        "inference_mean_latency_seconds".into(),
                        labels,
                        at,
                        (dur - dur0) / calls as f64,
                    ));
                }
            }
            for ((deployment, variant), n) in &now.metrics.predictions {
                let n0 = prev
                    .metrics
                    .predictions
                    .get(&(deployment.clone(), variant.clone()))
                    .copied()
                    .unwrap_or(0);
                let labels = if variant.is_empty() {
                    format!("deployment={deployment}")
                } else {
                    format!("deployment={deployment},variant={variant}")
                };
                points.push((
                    "predictions_per_second".into(),
                    labels,
                    at,
                    n.saturating_sub(n0) as f64 / secs,
                ));
            }
        }
    }
    if let Err(e) = store.record(points).await {
        tracing::warn!(error = %e, "system metrics not recorded");
    }
    now
}

/// Deletes log segments that ended before `cutoff` (µs) and series points
/// older than it: retention.
pub async fn expire(s: &AppState, cutoff_us: i64) -> Result<usize, String> {
    let mut removed = 0;
    let entries = s
        .artifacts
        .list_files("monitor")
        .await
        .map_err(|e| e.to_string())?;
    for e in entries {
        if !(e.path.contains("/predictions/") || e.path.contains("/labels/")) {
            continue;
        }
        if let Some((_, last)) = segment_span(&e.path)
            && last < cutoff_us
        {
            s.artifacts
                .delete(&e.path)
                .await
                .map_err(|e| e.to_string())?;
            removed += 1;
        }
    }
    if let Some(store) = &s.monitor {
        store
            .expire(cutoff_us / 1000)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(removed)
}
