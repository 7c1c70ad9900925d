//! The model store API (`/v1/models/…`) and the lineage API
//! (`/v1/lineage`): Keel's own JSON, beside MLflow's registry API.
//!
//! A version is named by number or by alias: `/v1/models/churn/versions/3`
//! or `/v1/models/churn/versions/@champion`. Errors are
//! `{"error": {"code", "message", "field"?}}`: 400 for bad input (naming the
//! field), 404 for unknown models, versions or nodes, 500 `DATA_LOSS` when a
//! registered artifact no longer matches its digest (409 `DATA_LOSS` on download).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_lineage::{Direction, Edge, LineageError, NewNode};
use keel_registry::card::{self, CardInputs, DatasetSummary, RunSummary};
use keel_registry::{Checkpoint, Registry, RegistryError, RetrainingPolicy};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::lifecycle::V1Error;

type V1Result = Result<Response, V1Error>;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/models/{name}/versions/{version}", get(version_detail))
        .route(
            "/models/{name}/versions/{version}/signature",
            get(get_signature).put(put_signature),
        )
        .route("/models/{name}/versions/{version}/verify", get(verify))
        .route(
            "/models/{name}/versions/{version}/card",
            get(get_card).patch(edit_card),
        )
        .route(
            "/models/{name}/versions/{version}/checkpoints",
            get(list_checkpoints).post(add_checkpoint),
        )
        .route(
            "/models/{name}/versions/{version}/suites",
            get(list_suite_results).post(add_suite_result),
        )
        .route("/models/{name}/aliases/history", get(alias_history))
        .route(
            "/models/{name}/retraining",
            get(get_retraining)
                .put(put_retraining)
                .delete(delete_retraining),
        )
        .route(
            "/models/{name}/retraining/trigger",
            post(trigger_retraining),
        )
        .route("/lineage", get(walk_lineage).post(record_lineage))
}

/// Who makes a change: the `X-Keel-User` header, else the user of HTTP
/// basic auth (what `MLFLOW_TRACKING_USERNAME` sends), else `anonymous`.
pub fn actor(headers: &HeaderMap) -> String {
    if let Some(u) = headers
        .get("x-keel-user")
        .and_then(|v| v.to_str().ok())
        .filter(|u| !u.trim().is_empty())
    {
        return u.trim().chars().take(200).collect();
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| decode_base64(b.trim()))
        .and_then(|creds| {
            creds
                .split_once(':')
                .map(|(u, _)| u.to_owned())
                .filter(|u| !u.is_empty())
        })
        .unwrap_or_else(|| "anonymous".to_owned())
}

fn decode_base64(text: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A domain error as Keel's JSON: the field is named when the message
/// starts with one (`inputs[2].type: …`).
fn domain_error(status: StatusCode, code: &'static str, message: String) -> V1Error {
    let field = field_of(&message);
    V1Error {
        field,
        ..V1Error::new(status, code, message)
    }
}

impl From<RegistryError> for V1Error {
    fn from(e: RegistryError) -> Self {
        let (status, code) = match &e {
            RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            RegistryError::AlreadyExists(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            RegistryError::Invalid(_) | RegistryError::Filter(_) => {
                (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
            }
            RegistryError::Store(_) => {
                tracing::error!(error = %e, "registry store failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
            }
        };
        domain_error(status, code, e.to_string())
    }
}

impl From<LineageError> for V1Error {
    fn from(e: LineageError) -> Self {
        let (status, code) = match &e {
            LineageError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            LineageError::Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            LineageError::Store(_) => {
                tracing::error!(error = %e, "lineage store failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
            }
        };
        domain_error(status, code, e.to_string())
    }
}

/// `inputs[2].type: …` names field `inputs[2].type`.
pub(crate) fn field_of(message: &str) -> Option<String> {
    let (head, _) = message.split_once(": ")?;
    let looks_like_field = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
    looks_like_field.then(|| head.to_owned())
}

fn registry(s: &AppState) -> Result<&Registry, V1Error> {
    s.registry
        .as_ref()
        .ok_or_else(|| V1Error::unavailable("the model registry is not running on this server"))
}

fn lineage(s: &AppState) -> Result<&keel_lineage::Lineage, V1Error> {
    s.lineage
        .as_ref()
        .ok_or_else(|| V1Error::unavailable("the lineage graph is not kept by this server"))
}

/// `3` or `@champion`.
async fn resolve_version(r: &Registry, name: &str, version: &str) -> Result<i64, V1Error> {
    if let Some(alias) = version.strip_prefix('@') {
        return Ok(r.get_model_version_by_alias(name, alias).await?.version);
    }
    version.parse::<i64>().map_err(|_| {
        V1Error::invalid(
            "version",
            format!("`{version}` is neither a version number nor @alias"),
        )
    })
}

fn json_body(body: &[u8]) -> Result<Value, V1Error> {
    serde_json::from_slice(body)
        .map_err(|e| V1Error::invalid("body", format!("not valid JSON: {e}")))
}

/// The lineage key of a model version.
pub fn version_node(name: &str, version: i64) -> String {
    keel_lineage::key("model_version", &format!("{name}/{version}"))
}

async fn version_detail(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let mv = r.get_model_version(&name, v).await?;
    let extras = r.version_extras(&name, v).await?;
    let checkpoints = r.checkpoints(&name, v).await?;
    Ok(Json(json!({
        "model_version": crate::mlflow::registry::model_version_json(&mv),
        "artifact_root": extras.artifact_root,
        "files": extras.files.iter().map(|f| json!({"path": f.path, "size": f.size, "sha256": f.sha256, "store_path": f.store_path})).collect::<Vec<_>>(),
        "signature": extras.signature,
        "dependencies": extras.dependencies,
        "checkpoints": checkpoints,
        "lineage_node": version_node(&name, v),
    }))
    .into_response())
}

async fn get_signature(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let extras = r.version_extras(&name, v).await?;
    Ok(Json(json!({"signature": extras.signature})).into_response())
}

async fn put_signature(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let signature = explicit_signature(&body)?;
    r.set_signature(&name, v, signature.clone()).await?;
    Ok(Json(json!({"signature": signature})).into_response())
}

/// Re-reads every registered file and compares it with its digest.
async fn verify(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let extras = r.version_extras(&name, v).await?;
    let mut files = Vec::with_capacity(extras.files.len());
    let mut ok = true;
    for f in &extras.files {
        let (status, actual) = match s.artifacts.digest(&f.store_path).await {
            Ok(d) if d.sha256 == f.sha256 && d.size as i64 == f.size => ("ok", Some(d.sha256)),
            Ok(d) => ("changed", Some(d.sha256)),
            Err(keel_store::ArtifactError::NotFound(_)) => ("missing", None),
            Err(e) => {
                return Err(V1Error::from(keel_registry::RegistryError::Invalid(
                    format!("artifact store: {e}"),
                )));
            }
        };
        ok &= status == "ok";
        files.push(json!({"path": f.path, "status": status, "sha256": f.sha256, "actual_sha256": actual, "size": f.size}));
    }
    let mut extra = Vec::new();
    if let Some(root) = &extras.artifact_root {
        let known: std::collections::HashSet<&str> =
            extras.files.iter().map(|f| f.store_path.as_str()).collect();
        for e in s.artifacts.list_files(root).await.map_err(|e| {
            V1Error::from(keel_registry::RegistryError::Invalid(format!(
                "artifact store: {e}"
            )))
        })? {
            if !known.contains(e.path.as_str()) {
                ok = false;
                extra.push(
                    e.path
                        .strip_prefix(&format!("{root}/"))
                        .unwrap_or(&e.path)
                        .to_owned(),
                );
            }
        }
    }
    // Intact means checked: a version whose files Keel never hashed is not.
    ok &= extras.artifact_root.is_some();
    Ok(Json(json!({
        "name": name,
        "version": v,
        "ok": ok,
        "verifiable": extras.artifact_root.is_some(),
        "files": files,
        "unregistered_files": extra,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct CardQuery {
    format: Option<String>,
}

/// Builds a version's card from the registry, its run and its lineage.
pub async fn build_card(s: &AppState, name: &str, v: i64) -> Result<Value, V1Error> {
    let r = registry(s)?;
    let model = r.get_registered_model(name).await?;
    let version = r.get_model_version(name, v).await?;
    let extras = r.version_extras(name, v).await?;
    let checkpoints = r.checkpoints(name, v).await?;
    let edited = r.model_card(name, v).await?;
    let run = match version.run_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => s.tracking.get_run(id).await.ok().map(|run| {
            let data = run.data.unwrap_or_default();
            RunSummary {
                run_id: run.info.run_id,
                run_name: run.info.run_name,
                user: run.info.user_id,
                start_time: run.info.start_time,
                end_time: run.info.end_time,
                params: data.params.into_iter().map(|p| (p.key, p.value)).collect(),
                metrics: data.metrics.into_iter().map(|m| (m.key, m.value)).collect(),
            }
        }),
        None => None,
    };
    let mut datasets = Vec::new();
    if let Some(l) = &s.lineage
        && let Ok(g) = l
            .walk(&version_node(name, v), Direction::Upstream, 10)
            .await
    {
        for n in g.nodes.into_iter().filter(|n| n.kind == "dataset") {
            datasets.push(DatasetSummary {
                name: n.name,
                key: n.key,
                attrs: n.attrs,
            });
        }
    }
    Ok(card::build(&CardInputs {
        model: &model,
        version: &version,
        extras: &extras,
        run,
        datasets,
        checkpoints: &checkpoints,
        edited: edited.as_ref(),
        generated_at: keel_core::time::now_millis(),
    }))
}

fn card_response(card: &Value, format: Option<&str>) -> V1Result {
    match format.unwrap_or("json") {
        "json" => Ok(Json(card.clone()).into_response()),
        "md" | "markdown" => Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            card::markdown(card),
        )
            .into_response()),
        "html" => Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            card::html(card),
        )
            .into_response()),
        other => Err(V1Error::invalid(
            "format",
            format!("`{other}` is not a card format; use json, md or html"),
        )),
    }
}

async fn get_card(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<CardQuery>,
) -> V1Result {
    let v = resolve_version(registry(&s)?, &name, &version).await?;
    let card = build_card(&s, &name, v).await?;
    card_response(&card, q.format.as_deref())
}

async fn edit_card(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<CardQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let Value::Object(fields) = json_body(&body)? else {
        return Err(V1Error::invalid(
            "body",
            "must be an object of card fields, e.g. {\"intended_use\": \"…\"}",
        ));
    };
    card::check_edit(&fields)?;
    r.edit_model_card(&name, v, fields, &actor(&headers))
        .await?;
    let card = build_card(&s, &name, v).await?;
    card_response(&card, q.format.as_deref())
}

async fn list_checkpoints(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    Ok(Json(json!({"checkpoints": r.checkpoints(&name, v).await?})).into_response())
}

async fn add_checkpoint(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let value = json_body(&body)?;
    let cp: Checkpoint = serde_json::from_value(value).map_err(|e| {
        V1Error::invalid(
            "body",
            format!("{e}; a checkpoint is {{\"step\": 1200, \"metrics\": {{\"val_loss\": 0.31}}, \"artifact_uri\": \"…\"}}"),
        )
    })?;
    let stored = r.add_checkpoint(&name, v, cp).await?;
    Ok((StatusCode::CREATED, Json(json!({"checkpoint": stored}))).into_response())
}

/// Attaches a quality-suite result (`keel test run --json`'s output) to a
/// version: the latest per suite is kept, and the version's tag
/// `keel.suite.SUITE` says `passed` or `failed`.
async fn add_suite_result(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let result = json_body(&body)?;
    if !result.is_object() {
        return Err(V1Error::invalid(
            "body",
            "expected a suite result object {\"suite\", \"passed\", \"checks\"}",
        ));
    }
    let stored = r
        .set_suite_result(&name, v, result, &actor(&headers))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "version": v, "suite": stored})),
    )
        .into_response())
}

async fn list_suite_results(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V1Result {
    let r = registry(&s)?;
    let v = resolve_version(r, &name, &version).await?;
    let suites = r.suite_results(&name, v).await?;
    Ok(Json(json!({"name": name, "version": v, "suites": suites})).into_response())
}

async fn alias_history(State(s): State<AppState>, Path(name): Path<String>) -> V1Result {
    let history = registry(&s)?.alias_history(&name).await?;
    Ok(Json(json!({"name": name, "history": history})).into_response())
}

fn next_due(policy: &RetrainingPolicy, after: i64) -> Result<Option<i64>, V1Error> {
    match &policy.schedule {
        Some(line) => {
            let cron = keel_lifecycle::cron::Cron::parse(line)
                .map_err(|e| V1Error::invalid("schedule", e.to_string()))?;
            Ok(cron.next_after(after))
        }
        None => Ok(None),
    }
}

fn retraining_json(
    name: &str,
    p: &RetrainingPolicy,
    due: Option<i64>,
    fired: Option<i64>,
) -> Value {
    json!({
        "name": name,
        "policy": p,
        "next_due": due,
        "next_due_at": due.map(keel_core::time::rfc3339_millis),
        "last_fired": fired,
    })
}

async fn get_retraining(State(s): State<AppState>, Path(name): Path<String>) -> V1Result {
    match registry(&s)?.retraining(&name).await? {
        Some((p, due, fired)) => Ok(Json(retraining_json(&name, &p, due, fired)).into_response()),
        None => Err(V1Error::not_found(format!(
            "registered model `{name}` has no retraining policy; set one with PUT"
        ))),
    }
}

async fn put_retraining(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> V1Result {
    let r = registry(&s)?;
    let policy: RetrainingPolicy = serde_json::from_value(json_body(&body)?).map_err(|e| {
        V1Error::invalid(
            "body",
            format!("{e}; a policy is {{\"schedule\": \"0 3 * * 1\", \"triggers\": [{{\"kind\": \"drift\", \"threshold\": 0.2}}], \"lifecycle\": \"churn-model\"}}"),
        )
    })?;
    policy.check()?;
    if let Some(lc) = &s.lifecycle
        && lc.definition(&policy.lifecycle, None).await.is_err()
    {
        return Err(V1Error::invalid(
            "lifecycle",
            format!(
                "`{}` is not a lifecycle here; apply its definition first (keel lifecycle apply)",
                policy.lifecycle
            ),
        ));
    }
    let due = next_due(&policy, keel_core::time::now_millis())?;
    r.set_retraining(&name, &policy, due).await?;
    Ok(Json(retraining_json(&name, &policy, due, None)).into_response())
}

async fn delete_retraining(State(s): State<AppState>, Path(name): Path<String>) -> V1Result {
    registry(&s)?.delete_retraining(&name).await?;
    Ok(Json(json!({})).into_response())
}

/// Delivers a retraining event to the policy's lifecycle instance,
/// starting the instance when it does not exist yet.
async fn deliver_retraining(
    s: &AppState,
    name: &str,
    policy: &RetrainingPolicy,
    data: Value,
    idempotency_key: String,
) -> Result<Value, V1Error> {
    let key = policy.key.clone().unwrap_or_else(|| name.to_owned());
    let report = crate::lifecycle::send_starting(
        s,
        &policy.lifecycle,
        &key,
        json!({"model": name}),
        &policy.event,
        data,
        idempotency_key,
    )
    .await?;
    Ok(json!({"lifecycle": policy.lifecycle, "key": key, "event": policy.event, "report": report}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    kind: String,
    #[serde(default)]
    on: Option<String>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    note: Option<String>,
}

/// A condition was observed (by monitoring, the catalog, a person): fires
/// the retraining when a configured trigger of that kind holds.
async fn trigger_retraining(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> V1Result {
    let r = registry(&s)?;
    let t: TriggerRequest = serde_json::from_value(json_body(&body)?).map_err(|e| {
        V1Error::invalid(
            "body",
            format!("{e}; e.g. {{\"kind\": \"drift\", \"on\": \"tenure\", \"value\": 0.31}}"),
        )
    })?;
    if !keel_registry::TRIGGER_KINDS.contains(&t.kind.as_str()) {
        return Err(V1Error::invalid(
            "kind",
            format!(
                "unknown kind `{}`; expected one of {}",
                t.kind,
                keel_registry::TRIGGER_KINDS.join(", ")
            ),
        ));
    }
    let Some((policy, _, _)) = r.retraining(&name).await? else {
        return Err(V1Error::not_found(format!(
            "registered model `{name}` has no retraining policy; set one first"
        )));
    };
    let matching = policy.triggers.iter().find(|c| {
        c.kind == t.kind
            && (c.on.is_none() || c.on == t.on)
            && match c.threshold {
                Some(th) => t.value.is_some_and(|v| v >= th),
                None => true,
            }
    });
    let Some(condition) = matching else {
        return Ok(Json(json!({
            "fired": false,
            "reason": format!("no `{}` trigger of this policy holds for this observation", t.kind),
        }))
        .into_response());
    };
    let now = keel_core::time::now_millis();
    let data = json!({
        "model": name,
        "reason": t.kind,
        "on": t.on,
        "value": t.value,
        "threshold": condition.threshold,
        "note": t.note,
        "at": keel_core::time::rfc3339_millis(now),
    });
    let delivered = deliver_retraining(
        &s,
        &name,
        &policy,
        data,
        format!("retrain:{name}:{}:{now}", t.kind),
    )
    .await?;
    let due = r.retraining(&name).await?.and_then(|(_, d, _)| d);
    r.retraining_fired(&name, now, due).await?;
    Ok(Json(json!({"fired": true, "delivered": delivered})).into_response())
}

/// Fires due retraining schedules every `every`, until the process ends.
/// The idempotency key names the due time, so a schedule fired twice (a
/// restart between delivery and bookkeeping) moves the lifecycle once.
pub async fn run_retraining_scheduler(s: AppState, every: std::time::Duration) {
    let Some(r) = s.registry.clone() else { return };
    loop {
        tokio::time::sleep(every).await;
        let now = keel_core::time::now_millis();
        let due = match r.due_retrainings(now).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "retraining schedules not read");
                continue;
            }
        };
        for (name, policy) in due {
            let Ok(Some((_, Some(at), _))) = r.retraining(&name).await else {
                continue;
            };
            let data = json!({"model": name, "reason": "schedule", "schedule": policy.schedule, "due": keel_core::time::rfc3339_millis(at)});
            match deliver_retraining(
                &s,
                &name,
                &policy,
                data,
                format!("retrain:{name}:schedule:{at}"),
            )
            .await
            {
                Ok(_) => {
                    let next = next_due(&policy, now.max(at)).ok().flatten();
                    if let Err(e) = r.retraining_fired(&name, now, next).await {
                        tracing::warn!(model = %name, error = %e, "retraining firing not recorded");
                    }
                    tracing::info!(model = %name, lifecycle = %policy.lifecycle, "retraining scheduled by cadence");
                }
                Err(e) => {
                    tracing::warn!(model = %name, error = %e.message, "retraining event not delivered; will retry")
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct LineageQuery {
    node: Option<String>,
    direction: Option<String>,
    depth: Option<u32>,
    format: Option<String>,
}

async fn walk_lineage(State(s): State<AppState>, Query(q): Query<LineageQuery>) -> V1Result {
    let l = lineage(&s)?;
    let node = q
        .node
        .ok_or_else(|| V1Error::invalid("node", "required, e.g. node=model_version:churn/3"))?;
    let direction = match q.direction.as_deref().unwrap_or("upstream") {
        "upstream" | "up" => Direction::Upstream,
        "downstream" | "down" => Direction::Downstream,
        "both" => Direction::Both,
        other => {
            return Err(V1Error::invalid(
                "direction",
                format!("`{other}`: use upstream, downstream or both"),
            ));
        }
    };
    let depth = q.depth.unwrap_or(10);
    if !(1..=100).contains(&depth) {
        return Err(V1Error::invalid("depth", "must be between 1 and 100"));
    }
    let graph = l.walk(&node, direction, depth).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(graph).into_response()),
        "svg" => Ok((
            [(header::CONTENT_TYPE, "image/svg+xml")],
            keel_lineage::svg::render(&graph),
        )
            .into_response()),
        "openlineage" => {
            Ok(Json(json!({"events": keel_lineage::openlineage::events(&graph)})).into_response())
        }
        other => Err(V1Error::invalid(
            "format",
            format!("`{other}`: use json, svg or openlineage"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordRequest {
    #[serde(default)]
    nodes: Vec<NewNode>,
    #[serde(default)]
    edges: Vec<Edge>,
}

/// Records nodes and edges other systems know of (a deployment, a
/// feature pipeline run).
async fn record_lineage(State(s): State<AppState>, body: axum::body::Bytes) -> V1Result {
    let l = lineage(&s)?;
    let req: RecordRequest = serde_json::from_value(json_body(&body)?).map_err(|e| {
        V1Error::invalid(
            "body",
            format!("{e}; send {{\"nodes\": [{{\"kind\", \"id\", \"name\"?, \"attrs\"?}}], \"edges\": [{{\"from\", \"to\", \"relation\"}}]}}"),
        )
    })?;
    if req.nodes.is_empty() && req.edges.is_empty() {
        return Err(V1Error::invalid("nodes", "give nodes, edges or both"));
    }
    let (n, e) = (req.nodes.len(), req.edges.len());
    l.record(req.nodes, req.edges).await?;
    Ok((StatusCode::CREATED, Json(json!({"nodes": n, "edges": e}))).into_response())
}

/// Checks a signature given by hand (MLflow's shape) and returns it as
/// stored; every problem is reported, the first one's field named.
fn explicit_signature(body: &[u8]) -> Result<Value, V1Error> {
    let text =
        std::str::from_utf8(body).map_err(|_| V1Error::invalid("body", "must be UTF-8 JSON"))?;
    match keel_registry::inspect::validate_signature(text) {
        Ok(sig) => serde_json::to_value(sig).map_err(|e| V1Error::invalid("body", e.to_string())),
        Err(e) => {
            let first = e.problems.first();
            let field = first
                .map(|p| p.field.clone())
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| "body".into());
            Err(V1Error {
                status: StatusCode::BAD_REQUEST,
                code: "INVALID_ARGUMENT",
                message: e.to_string(),
                field: Some(field),
                problems: Some(json!(
                    e.problems
                        .iter()
                        .map(|p| json!({"field": p.field, "message": p.message}))
                        .collect::<Vec<_>>()
                )),
            })
        }
    }
}

/// Turns a map into a JSON object value (for callers building nodes).
pub fn attrs(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Map<String, Value>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_come_from_the_header_or_basic_auth() {
        let mut h = HeaderMap::new();
        assert_eq!(actor(&h), "anonymous");
        // "ana:secret"
        h.insert(
            header::AUTHORIZATION,
            "Basic YW5hOnNlY3JldA==".parse().unwrap(),
        );
        assert_eq!(actor(&h), "ana");
        h.insert("x-keel-user", "bo".parse().unwrap());
        assert_eq!(actor(&h), "bo");
    }

    /// A due schedule reaches the lifecycle once, even when the scheduler
    /// finds it again before its bookkeeping is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_due_schedule_sends_its_event_and_moves_to_the_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let migrations = [keel_tracking::MIGRATIONS, keel_registry::MIGRATIONS].concat();
        let db = keel_store::Db::open_in_dir(dir.path(), &migrations, Default::default())
            .await
            .unwrap();
        let artifacts = keel_store::ArtifactStore::local(&dir.path().join("artifacts")).unwrap();
        let mut options = keel_lifecycle::EngineOptions::new(dir.path().join("lifecycle"));
        options.runtime = tokio::runtime::Handle::try_current().ok();
        let engine =
            keel_lifecycle::Lifecycles::Embedded(keel_lifecycle::Engine::open(options).unwrap());
        engine
            .apply_definition("lifecycle: retrain\ninitial: serving\nstates:\n  serving:\n    on: {retrain: retraining}\n  retraining:\n    on: {trained: serving}\n")
            .await
            .unwrap();
        let registry = Registry::new(db.clone());
        registry
            .create_registered_model("churn".into(), vec![], None)
            .await
            .unwrap();
        let policy: RetrainingPolicy =
            serde_json::from_value(json!({"schedule": "0 3 * * *", "lifecycle": "retrain"}))
                .unwrap();
        let due = keel_core::time::now_millis() - 1;
        registry
            .set_retraining("churn", &policy, Some(due))
            .await
            .unwrap();
        let state = AppState::new(keel_tracking::Tracking::new(db), artifacts)
            .with_lifecycle(engine.clone())
            .with_registry(registry.clone());
        let task = tokio::spawn(run_retraining_scheduler(
            state,
            std::time::Duration::from_millis(20),
        ));
        let mut fired = None;
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if let Some((_, next, Some(at))) = registry.retraining("churn").await.unwrap() {
                fired = Some((next, at));
                break;
            }
        }
        task.abort();
        let (next, _) = fired.expect("the schedule fired");
        let next = next.expect("a next time");
        assert!(next > due);
        assert_eq!(
            keel_core::time::rfc3339_millis(next)[11..],
            *"03:00:00.000Z"
        );
        let inst = engine.get("retrain", "churn").await.unwrap();
        assert_eq!(inst.state, "retraining");
        let history = engine.history("retrain", "churn", 10).await.unwrap();
        let sent: Vec<_> = history.iter().filter(|h| h.event == "retrain").collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].data["reason"], "schedule");
        engine.shutdown().await;
    }

    #[test]
    fn fields_are_named_from_messages() {
        assert_eq!(
            field_of("inputs[2].type: unknown").as_deref(),
            Some("inputs[2].type")
        );
        assert_eq!(field_of("Registered Model with name=x not found"), None);
    }
}
