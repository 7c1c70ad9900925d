//! The lifecycle API (`/v1/lifecycles`, `/v1/events`): Keel's own JSON.
//!
//! Errors are `{"error": {"code", "message", "field"?, "problems"?}}` with
//! 400 for bad input (every definition problem with line and column), 404
//! for unknown names, 409 when an instance's state does not accept an
//! event, 413 for oversized payloads and 503 when the engine has stopped.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_lifecycle::engine::{ListQuery, SendRequest, Target};
use keel_lifecycle::{LifecycleError, Lifecycles};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/lifecycles", get(list_definitions).post(apply_definition))
        .route("/lifecycles/{name}", get(get_definition))
        .route("/lifecycles/{name}/graph", get(graph_json))
        .route("/lifecycles/{name}/graph.svg", get(graph_svg))
        .route("/lifecycles/{name}/stats", get(stats))
        .route(
            "/lifecycles/{name}/instances",
            get(list_instances).post(start),
        )
        .route("/lifecycles/{name}/instances/{*key}", get(get_instance))
        .route("/lifecycles/{name}/history/{*key}", get(history))
        .route("/lifecycles/{name}/events", post(send_to_lifecycle))
        .route("/events", post(send))
        .route("/events/batch", post(send_batch))
        .route("/lifecycle-engine/stats", get(engine_stats))
        .route("/lifecycle-engine/snapshot", post(snapshot))
}

/// A Keel API error.
#[derive(Debug)]
pub struct V1Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub problems: Option<Value>,
}

impl V1Error {
    /// An error with no field or problem list.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        V1Error {
            status,
            code,
            message: message.into(),
            field: None,
            problems: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// A part of Keel this server does not run.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        V1Error {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT",
            message: format!("{field}: {}", message.into()),
            field: Some(field.to_owned()),
            problems: None,
        }
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field {
            error["field"] = json!(f);
        }
        if let Some(p) = self.problems {
            error["problems"] = p;
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<LifecycleError> for V1Error {
    fn from(e: LifecycleError) -> Self {
        let message = e.to_string();
        let (status, code, field, problems) = match &e {
            LifecycleError::Definition(d) => (
                StatusCode::BAD_REQUEST,
                "INVALID_DEFINITION",
                Some("definition".to_owned()),
                serde_json::to_value(&d.problems).ok(),
            ),
            LifecycleError::Invalid { field, .. } => (
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                Some((*field).to_owned()),
                None,
            ),
            LifecycleError::NotFound { .. } => (StatusCode::NOT_FOUND, "NOT_FOUND", None, None),
            LifecycleError::Rejected(r) => match r {
                keel_lifecycle::machine::Rejection::UnknownEvent { .. } => (
                    StatusCode::BAD_REQUEST,
                    "UNKNOWN_EVENT",
                    Some("event".to_owned()),
                    None,
                ),
                _ => (StatusCode::CONFLICT, "EVENT_REJECTED", None, None),
            },
            LifecycleError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                Some("data".to_owned()),
                None,
            ),
            LifecycleError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", None, None)
            }
            // An error the owning cluster node gave for the request.
            LifecycleError::Remote { status, message } => match status {
                404 => (StatusCode::NOT_FOUND, "NOT_FOUND", None, None),
                409 => (StatusCode::CONFLICT, "EVENT_REJECTED", None, None),
                400..=499 if message.starts_with("event `") => (
                    StatusCode::BAD_REQUEST,
                    "UNKNOWN_EVENT",
                    Some("event".to_owned()),
                    None,
                ),
                400..=499 => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", None, None),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", None, None),
            },
            _ => {
                tracing::error!(error = %e, "lifecycle engine failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", None, None)
            }
        };
        V1Error {
            status,
            code,
            message,
            field,
            problems,
        }
    }
}

type V1Result = Result<Response, V1Error>;

pub(crate) fn engine(s: &AppState) -> Result<&Lifecycles, V1Error> {
    s.lifecycle
        .as_ref()
        .ok_or_else(|| V1Error::unavailable("the lifecycle engine is not running on this server"))
}

/// Sends `event` to the instance `lifecycle/key`, starting it with
/// `start_data` when it does not exist yet: how other domains (retraining
/// policies, deployment moves) drive lifecycles.
pub(crate) async fn send_starting(
    s: &AppState,
    lifecycle: &str,
    key: &str,
    start_data: Value,
    event: &str,
    data: Value,
    idempotency_key: String,
) -> Result<keel_lifecycle::engine::SendReport, V1Error> {
    let lc = engine(s)?;
    if lc.get(lifecycle, key).await.is_err() {
        lc.start(lifecycle, key, start_data, None).await?;
    }
    Ok(lc
        .send(SendRequest {
            event: event.to_string(),
            target: Target::Key {
                lifecycle: Some(lifecycle.to_string()),
                key: key.to_string(),
            },
            data,
            idempotency_key: Some(idempotency_key),
        })
        .await?)
}

fn ok(v: impl serde::Serialize) -> V1Result {
    Ok(Json(v).into_response())
}

/// Reads a JSON object body, naming what is wrong with it.
fn json_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, V1Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(V1Error::invalid("body", "must be a JSON object")),
        Err(e) => Err(V1Error::invalid("body", format!("malformed JSON: {e}"))),
    }
}

fn opt_str(m: &serde_json::Map<String, Value>, field: &str) -> Result<Option<String>, V1Error> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(V1Error::invalid(
            field,
            format!("must be a string, not {other}"),
        )),
    }
}

async fn list_definitions(State(s): State<AppState>) -> V1Result {
    ok(json!({"lifecycles": engine(&s)?.definitions().await?}))
}

/// The body is the definition's YAML, or JSON `{"definition": "YAML"}`.
async fn apply_definition(State(s): State<AppState>, body: Bytes) -> V1Result {
    let text = std::str::from_utf8(&body)
        .map_err(|_| V1Error::invalid("definition", "must be UTF-8 text"))?;
    let source = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) if m.contains_key("definition") => match m.get("definition") {
            Some(Value::String(d)) => d.clone(),
            _ => {
                return Err(V1Error::invalid(
                    "definition",
                    "must be the YAML text as a string",
                ));
            }
        },
        _ => text.to_owned(),
    };
    let applied = engine(&s)?.apply_definition(&source).await?;
    let status = if applied.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(applied)).into_response())
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<u32>,
}

async fn get_definition(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> V1Result {
    let m = engine(&s)?.definition(&name, q.version).await?;
    ok(json!({
        "lifecycle": &*m.name,
        "version": m.version,
        "mode": keel_lifecycle::engine::mode_name(m.mode()),
        "description": m.definition.description,
        "initial": m.definition.initial,
        "states": m.top_states().collect::<Vec<_>>(),
        "source": &*m.source,
    }))
}

async fn graph_json(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> V1Result {
    let m = engine(&s)?.definition(&name, q.version).await?;
    ok(keel_lifecycle::graph::graph_json(&m.definition))
}

#[derive(Deserialize)]
struct SvgQuery {
    version: Option<u32>,
    /// Highlight this instance's state(s).
    key: Option<String>,
}

async fn graph_svg(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<SvgQuery>,
) -> V1Result {
    let e = engine(&s)?;
    let m = e.definition(&name, q.version).await?;
    let stats = e.stats(&name).await?;
    let counts: std::collections::BTreeMap<String, u64> = stats
        .states
        .into_iter()
        .map(|c| (c.state, c.count))
        .collect();
    let highlight = match &q.key {
        Some(k) => {
            let v = e.get(&name, k).await?;
            let mut h = vec![v.state.clone()];
            h.extend(v.branches);
            h
        }
        None => Vec::new(),
    };
    let svg = keel_lifecycle::graph::graph_svg(
        &m.definition,
        &keel_lifecycle::graph::Overlay {
            counts: Some(&counts),
            highlight: &highlight,
        },
    );
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

async fn stats(State(s): State<AppState>, Path(name): Path<String>) -> V1Result {
    ok(engine(&s)?.stats(&name).await?)
}

async fn start(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> V1Result {
    let m = json_body(&body)?;
    let key = opt_str(&m, "key")?.ok_or_else(|| V1Error::invalid("key", "is required"))?;
    let idem = opt_str(&m, "idempotency_key")?;
    let data = m.get("data").cloned().unwrap_or(Value::Null);
    let started = engine(&s)?.start(&name, &key, data, idem).await?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(started)).into_response())
}

#[derive(Deserialize)]
struct ListParams {
    state: Option<String>,
    prefix: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

async fn list_instances(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ListParams>,
) -> V1Result {
    let page = engine(&s)?
        .list(
            &name,
            &ListQuery {
                state: q.state,
                prefix: q.prefix,
                limit: q.limit.unwrap_or(100),
                after: q.after,
            },
        )
        .await?;
    ok(page)
}

async fn get_instance(
    State(s): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> V1Result {
    ok(engine(&s)?.get(&name, &key).await?)
}

#[derive(Deserialize)]
struct HistoryParams {
    limit: Option<usize>,
}

async fn history(
    State(s): State<AppState>,
    Path((name, key)): Path<(String, String)>,
    Query(q): Query<HistoryParams>,
) -> V1Result {
    let entries = engine(&s)?
        .history(&name, &key, q.limit.unwrap_or(1000))
        .await?;
    ok(json!({"lifecycle": name, "key": key, "history": entries}))
}

async fn send_to_lifecycle(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> V1Result {
    let mut m = json_body(&body)?;
    if let Some(other) = opt_str(&m, "lifecycle")?
        && other != name
    {
        return Err(V1Error::invalid(
            "lifecycle",
            format!("`{other}` differs from the path's `{name}`"),
        ));
    }
    m.insert("lifecycle".into(), json!(name));
    send_map(&s, m).await
}

/// `{"event", "key" | "prefix" | "state", "lifecycle"?, "data"?, "idempotency_key"?}`
async fn send(State(s): State<AppState>, body: Bytes) -> V1Result {
    let m = json_body(&body)?;
    send_map(&s, m).await
}

/// Reads one event request: `{"event", "key" | "prefix" | "state", "lifecycle"?, "data"?, "idempotency_key"?}`.
fn send_request(m: &serde_json::Map<String, Value>) -> Result<SendRequest, V1Error> {
    let event = opt_str(m, "event")?.ok_or_else(|| V1Error::invalid("event", "is required"))?;
    let lifecycle = opt_str(m, "lifecycle")?;
    let key = opt_str(m, "key")?;
    let prefix = opt_str(m, "prefix")?;
    let state = opt_str(m, "state")?;
    let target = match (key, prefix, state) {
        (Some(key), None, None) => Target::Key { lifecycle, key },
        (None, Some(prefix), None) => Target::Prefix {
            lifecycle: lifecycle
                .ok_or_else(|| V1Error::invalid("lifecycle", "is required with `prefix`"))?,
            prefix,
        },
        (None, None, Some(state)) => Target::State {
            lifecycle: lifecycle
                .ok_or_else(|| V1Error::invalid("lifecycle", "is required with `state`"))?,
            state,
        },
        (None, None, None) => {
            return Err(V1Error::invalid(
                "key",
                "give one of `key`, `prefix` or `state`",
            ));
        }
        _ => {
            return Err(V1Error::invalid(
                "key",
                "give only one of `key`, `prefix` and `state`",
            ));
        }
    };
    Ok(SendRequest {
        event,
        target,
        data: m.get("data").cloned().unwrap_or(Value::Null),
        idempotency_key: opt_str(m, "idempotency_key")?,
    })
}

async fn send_map(s: &AppState, m: serde_json::Map<String, Value>) -> V1Result {
    let request = send_request(&m)?;
    ok(engine(s)?.send(request).await?)
}

/// `{"events": [EVENT, …]}` → `{"results": [{"ok": REPORT} | {"error": {…}}, …]}`
/// in the same order; each event succeeds or fails on its own.
async fn send_batch(State(s): State<AppState>, body: Bytes) -> V1Result {
    let m = json_body(&body)?;
    let Some(Value::Array(items)) = m.get("events") else {
        return Err(V1Error::invalid("events", "must be a list of events"));
    };
    if items.len() > 10_000 {
        return Err(V1Error::invalid(
            "events",
            format!("{} events; send at most 10,000 per batch", items.len()),
        ));
    }
    let mut parsed: Vec<Result<SendRequest, V1Error>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        parsed.push(match item {
            Value::Object(o) => send_request(o),
            _ => Err(V1Error::invalid(
                &format!("events[{i}]"),
                "must be an object",
            )),
        });
    }
    let requests: Vec<SendRequest> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut sent = engine(&s)?.send_batch(requests).await?.into_iter();
    let results: Vec<Value> = parsed
        .into_iter()
        .map(|p| match p.and_then(|_| sent.next().unwrap_or_else(|| Err(LifecycleError::Unavailable("missing result".into()))).map_err(V1Error::from)) {
            Ok(report) => json!({ "ok": report }),
            Err(e) => json!({"error": {"code": e.code, "status": e.status.as_u16(), "message": e.message}}),
        })
        .collect();
    ok(json!({ "results": results }))
}

async fn engine_stats(State(s): State<AppState>) -> V1Result {
    ok(engine(&s)?.engine_stats().await?)
}

async fn snapshot(State(s): State<AppState>) -> V1Result {
    let pos = engine(&s)?.snapshot().await?;
    ok(json!({ "position": pos }))
}
