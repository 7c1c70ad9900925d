//! Deployments and live experiments over HTTP:
//!
//! ```text
//! POST /v1/deployments                  create {"name", "strategy", "variants", ...}
//! GET  /v1/deployments                  every deployment, described
//! GET  /v1/deployments/{name}           variants with counts, mean reward, traffic share
//! POST /v1/deployments/{name}/decide    {"unit_id", "context", "segment", "covariate"} -> decision
//! POST /v1/feedback                     {"decision_id", "reward", "error"?}
//! POST /v1/deployments/{name}/decide/batch {"requests": [decide requests]} -> {"decisions": [...]}
//! POST /v1/feedback/batch               {"feedback": [feedback]} -> {"recorded", "rejected": [...]}
//! GET  /v1/deployments/{name}/analysis  ?control=&confidence=&tau2=&draws=&segment=&cuped=
//! GET  /v1/deployments/{name}/decisions the decision log, one JSON object per line
//! POST /v1/deployments/{name}/evaluate  {"candidate": ..., "max_weight"} -> IPS, SNIPS, DR
//! POST /v1/deployments/{name}/rollout   {"action": pause|resume|advance|promote|rollback, "variant"?, "reason"?}
//! POST /v1/deployments/{name}/checks    {"suite", "variant", "passed", "severity"?, "details"?}
//! POST /v1/deployments/{name}/metrics   {"variant", "name", "value"}
//! GET  /v1/deployments/{name}/events    the deployment's moves
//! GET  /v1/deployments/{name}/plot      SVG: traffic share and mean reward over time (?bins=)
//! ```
//!
//! A deployment with `"lifecycle": {"name", "key"?}` sends each move
//! (`canary_advanced`, `canary_promoted`, `promoted`, `rolled_back`, `winner_found`,
//! `paused`, `resumed`) to that lifecycle instance as an event.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_experiment::Outcome;
use keel_experiment::rollout::{CheckReport, MetricReport};
use keel_experiment::{
    ControlRequest, DecideRequest, DeploymentSpec, Deployments, ExperimentError,
};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::lifecycle::V1Error;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/deployments", post(create).get(list))
        .route("/deployments/{name}", get(describe))
        .route("/deployments/{name}/decide", post(decide))
        .route("/deployments/{name}/decide/batch", post(decide_batch))
        .route("/feedback/batch", post(feedback_batch))
        .route("/deployments/{name}/analysis", get(analysis))
        .route("/deployments/{name}/decisions", get(decisions))
        .route("/deployments/{name}/evaluate", post(evaluate))
        .route("/deployments/{name}/rollout", post(rollout))
        .route("/deployments/{name}/checks", post(check))
        .route("/deployments/{name}/metrics", post(metric))
        .route("/deployments/{name}/events", get(events))
        .route("/deployments/{name}/plot", get(plot))
        .route("/feedback", post(feedback))
}

impl From<ExperimentError> for V1Error {
    fn from(e: ExperimentError) -> Self {
        let message = e.to_string();
        match e {
            ExperimentError::Invalid { field, reason } => V1Error::invalid(&field, reason),
            ExperimentError::UnknownDeployment(_) | ExperimentError::UnknownDecision(_) => {
                V1Error::not_found(message)
            }
            ExperimentError::DeploymentExists(_) => {
                V1Error::new(StatusCode::CONFLICT, "ALREADY_EXISTS", message)
            }
            ExperimentError::AlreadyRewarded(_) => {
                V1Error::new(StatusCode::CONFLICT, "ALREADY_REWARDED", message)
            }
            ExperimentError::Unavailable(_) => V1Error::unavailable(message),
            ExperimentError::Conflict(_) => {
                V1Error::new(StatusCode::CONFLICT, "FAILED_PRECONDITION", message)
            }
            ExperimentError::Io(_) | ExperimentError::Corrupt(_) => {
                V1Error::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
            }
        }
    }
}

fn shared(s: &AppState) -> Result<std::sync::Arc<Deployments>, V1Error> {
    s.experiments.clone().ok_or_else(not_enabled)
}

fn not_enabled() -> V1Error {
    V1Error::unavailable("deployments are not enabled on this server (start it with `keel server`)")
}

/// Runs a read of the decision log off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ExperimentError> + Send + 'static,
) -> Result<T, V1Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            V1Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                e.to_string(),
            )
        })?
        .map_err(V1Error::from)
}

fn deployments(s: &AppState) -> Result<&Deployments, V1Error> {
    s.experiments.as_deref().ok_or_else(not_enabled)
}

/// The field a serde message names (`unknown field `x``, `missing field
/// `y``), else `whole`.
fn named_field(text: &str, whole: &str) -> String {
    // A query value of the wrong type: "...query string: cuped: provided...".
    if let Some((_, rest)) = text.split_once("query string: ")
        && let Some((name, _)) = rest.split_once(": ")
        && !name.contains(' ')
    {
        return name.to_string();
    }
    text.split('`')
        .nth(1)
        .filter(|_| text.contains("field"))
        .unwrap_or(whole)
        .to_string()
}

/// A JSON body, or a 400 naming what is wrong with it.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, V1Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(V1Error::invalid(
            "body",
            format!("send {what} as a JSON object"),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        V1Error::invalid(&named_field(&text, "body"), text)
    })
}

async fn create(State(s): State<AppState>, bytes: Bytes) -> Result<Response, V1Error> {
    let spec: DeploymentSpec = body(&bytes, "the deployment")?;
    let described = deployments(&s)?.create(spec).await?;
    Ok((StatusCode::CREATED, Json(described)).into_response())
}

async fn list(State(s): State<AppState>) -> Result<Response, V1Error> {
    let d = deployments(&s)?;
    let all = d
        .names()
        .iter()
        .map(|n| d.describe(n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "deployments": all })).into_response())
}

async fn describe(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, V1Error> {
    Ok(Json(deployments(&s)?.describe(&name)?).into_response())
}

async fn decide(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, V1Error> {
    let request: DecideRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        DecideRequest::default()
    } else {
        body(&bytes, "the decision request")?
    };
    Ok(Json(deployments(&s)?.decide(&name, request).await?).into_response())
}

async fn feedback(State(s): State<AppState>, bytes: Bytes) -> Result<Response, V1Error> {
    let f: Outcome = body(&bytes, "the feedback")?;
    deployments(&s)?
        .outcome(&f.decision_id, f.reward, f.error)
        .await?;
    Ok(Json(json!({ "decision_id": f.decision_id, "recorded": true })).into_response())
}

/// The most items of one batch request.
const MAX_BATCH: usize = 10_000;

fn batch_size(field: &str, n: usize) -> Result<(), V1Error> {
    if n == 0 || n > MAX_BATCH {
        return Err(V1Error::invalid(
            field,
            format!("{n} items; send 1 to {MAX_BATCH}"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBatch {
    requests: Vec<DecideRequest>,
}

async fn decide_batch(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, V1Error> {
    let batch: DecideBatch = body(&bytes, "{\"requests\": [decision requests]}")?;
    batch_size("requests", batch.requests.len())?;
    let decisions = deployments(&s)?.decide_many(&name, batch.requests).await?;
    Ok(Json(json!({ "decisions": decisions })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBatch {
    feedback: Vec<Outcome>,
}

async fn feedback_batch(State(s): State<AppState>, bytes: Bytes) -> Result<Response, V1Error> {
    let batch: FeedbackBatch = body(&bytes, "{\"feedback\": [feedback]}")?;
    batch_size("feedback", batch.feedback.len())?;
    let ids: Vec<String> = batch
        .feedback
        .iter()
        .map(|f| f.decision_id.clone())
        .collect();
    let total = ids.len();
    let rejected = deployments(&s)?.outcomes(batch.feedback).await?;
    let rejected: Vec<_> = rejected
        .into_iter()
        .map(|(i, e)| json!({ "index": i, "decision_id": ids[i], "error": e.to_string() }))
        .collect();
    Ok(Json(json!({ "recorded": total - rejected.len(), "rejected": rejected })).into_response())
}

async fn rollout(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, V1Error> {
    let request: ControlRequest = body(&bytes, "the rollout action")?;
    Ok(Json(deployments(&s)?.control(&name, request).await?).into_response())
}

async fn check(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, V1Error> {
    let report: CheckReport = body(&bytes, "the check result")?;
    Ok(Json(deployments(&s)?.report_check(&name, report).await?).into_response())
}

async fn metric(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, V1Error> {
    let report: MetricReport = body(&bytes, "the metric")?;
    Ok(Json(deployments(&s)?.report_metric(&name, report).await?).into_response())
}

async fn events(State(s): State<AppState>, Path(name): Path<String>) -> Result<Response, V1Error> {
    let events = deployments(&s)?.events(&name)?;
    let events: Vec<_> = events
        .into_iter()
        .map(|e| {
            let at = keel_core::time::rfc3339_millis(e.at);
            let mut v = json!(e);
            v["at"] = json!(at);
            v
        })
        .collect();
    Ok(Json(json!({ "deployment": name, "events": events })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlotQuery {
    #[serde(default = "default_bins")]
    bins: usize,
}

fn default_bins() -> usize {
    60
}

async fn plot(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<PlotQuery>, QueryRejection>,
) -> Result<Response, V1Error> {
    let Query(q) = query.map_err(|e| {
        let text = e.body_text();
        V1Error::invalid(&named_field(&text, "bins"), text)
    })?;
    if !(1..=keel_experiment::plot::MAX_BINS).contains(&q.bins) {
        return Err(V1Error::invalid(
            "bins",
            format!(
                "{} is not within 1..={}",
                q.bins,
                keel_experiment::plot::MAX_BINS
            ),
        ));
    }
    let d = shared(&s)?;
    let svg = blocking(move || d.plot(&name, q.bins)).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// Sends every deployment move to the lifecycle instance its deployment
/// names (started when absent), until the process ends. The idempotency
/// key names the deployment and the move's index, so a move delivered
/// twice moves the lifecycle once.
pub async fn deliver_events(s: AppState) {
    let Some(d) = s.experiments.clone() else {
        return;
    };
    let mut moves = d.subscribe();
    while let Some(m) = moves.recv().await {
        let key = m
            .lifecycle
            .key
            .clone()
            .unwrap_or_else(|| m.deployment.clone());
        let name = m.event.event.name();
        let mut data = json!(m.event);
        data["deployment"] = json!(m.deployment);
        data["at"] = json!(keel_core::time::rfc3339_millis(m.event.at));
        let delivered = crate::lifecycle::send_starting(
            &s,
            &m.lifecycle.name,
            &key,
            json!({"deployment": m.deployment}),
            name,
            data,
            format!("deployment:{}:{}", m.deployment, m.index),
        )
        .await;
        match delivered {
            Ok(report) => tracing::info!(
                deployment = %m.deployment, event = name, lifecycle = %m.lifecycle.name,
                applied = report.applied, "deployment move sent to its lifecycle"
            ),
            Err(e) => tracing::warn!(
                deployment = %m.deployment, event = name, lifecycle = %m.lifecycle.name,
                error = ?e, "deployment move not delivered to its lifecycle"
            ),
        }
    }
}

async fn analysis(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<keel_experiment::analysis::AnalysisOptions>, QueryRejection>,
) -> Result<Response, V1Error> {
    let Query(options) = query.map_err(|e| {
        let text = e.body_text();
        V1Error::invalid(&named_field(&text, "query"), text)
    })?;
    let d = shared(&s)?;
    // With `cuped` the decision log is read: off the async threads.
    Ok(Json(blocking(move || d.analysis(&name, &options)).await?).into_response())
}

async fn decisions(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, V1Error> {
    let d = shared(&s)?;
    let (_, logged) = blocking(move || d.logged(&name)).await?;
    let mut body = Vec::with_capacity(logged.len() * 128);
    for row in &logged {
        serde_json::to_writer(&mut body, row).map_err(|e| {
            V1Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                e.to_string(),
            )
        })?;
        body.push(b'\n');
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

async fn evaluate(
    State(s): State<AppState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, V1Error> {
    let request: keel_experiment::evaluate::EvaluateRequest =
        body(&bytes, "the evaluation request")?;
    let d = shared(&s)?;
    Ok(Json(blocking(move || d.evaluate(&name, &request)).await?).into_response())
}
