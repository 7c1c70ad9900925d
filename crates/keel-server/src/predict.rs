//! The online request path, `POST /v1/predict/{deployment}`: named features
//! and entity keys in, the deployment's model out, with a decision id.
//!
//! `DEPLOYMENT` names a deployment of `/v1/deployments` or, when there is
//! none of that name, a served model. A deployment decides first (with the
//! request's `unit_id`, `segment` and `context`; a contextual strategy
//! without a `context` gets the request's numeric features in name order),
//! and the chosen variant's model answers: its `model` reference
//! (`models:/NAME/V`, `models:/NAME@ALIAS` — the registry version served
//! under its registered name — or a served `NAME[/V]`), else the served
//! model named like the variant. The decision id is the deployment's, so
//! `POST /v1/feedback` rewards it; a failed model call is fed back as an
//! error of its variant (the error rate guards roll back on). Shadow
//! variants run on the same features after the answer is sent; their
//! outputs are logged, never returned.
//!
//! The model's `model-settings.json` says how named features become
//! its input tensors (`features`: the column order of a single matrix
//! input; otherwise each input is named after a feature) and which feature
//! service to fetch online features from for the request's `entities`.
//!
//! Every prediction — features, outputs, model version, variant, latency,
//! or the error — goes to the prediction log, Parquet segments under
//! `monitor/DEPLOYMENT/predictions/` in the artifact store (see
//! `keel_monitor::log`), flushed every second (a crash loses at most the
//! last second of rows, never an answer already sent). Monitoring reads
//! it: `/v1/monitor/deployments/DEPLOYMENT/…`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use keel_experiment::{DecideRequest, Decision, ExperimentError};
use keel_monitor::log::PredictionRow;
use keel_serve::plan::TensorSpec;
use keel_serve::repository::ServedVersion;
use keel_serve::tensor::{Datatype, NamedTensor};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::inference::{V2Error, data_json, decode_json};

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/predict/{deployment}", post(predict))
}

/// Predictions waiting to be appended to the prediction log.
#[derive(Default)]
pub struct PredictionLog {
    pending: Mutex<Vec<(String, PredictionRow)>>,
}

impl PredictionLog {
    fn record(&self, deployment: &str, row: PredictionRow) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.push((deployment.to_string(), row));
    }

    /// Rows waiting for the next flush.
    pub fn pending_lines(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Appends the logged predictions as one Parquet segment per
    /// deployment (`monitor/DEPLOYMENT/predictions/`).
    pub async fn flush(&self, artifacts: &keel_store::ArtifactStore) -> Result<usize, String> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let count = taken.len();
        let mut by_deployment: std::collections::BTreeMap<String, Vec<PredictionRow>> =
            Default::default();
        for (deployment, row) in taken {
            by_deployment.entry(deployment).or_default().push(row);
        }
        for (deployment, rows) in by_deployment {
            let first = rows.iter().map(|r| r.at).min().unwrap_or(0);
            let last = rows.iter().map(|r| r.at).max().unwrap_or(0);
            let bytes = keel_monitor::log::encode_predictions(&rows)
                .map_err(|e| format!("{deployment}: {e}"))?;
            crate::monitor::put_segment(
                artifacts,
                &crate::monitor::predictions_folder(&deployment),
                first,
                last,
                bytes,
            )
            .await?;
        }
        Ok(count)
    }
}

/// The number a monitor compares and scores: the positive class's
/// probability of a binary classifier (a two-value output whose name says
/// `prob`), else the first output that is one number.
pub fn prediction_of(outputs: &Map<String, Value>) -> Option<f64> {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::Array(a) if a.len() == 1 => a[0].as_f64(),
        _ => None,
    };
    for (name, v) in outputs {
        if name.to_lowercase().contains("prob")
            && let Value::Array(a) = v
            && a.len() == 2
        {
            return a[1].as_f64();
        }
    }
    outputs.values().find_map(number)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

async fn predict(
    State(s): State<AppState>,
    Path(deployment): Path<String>,
    body: Bytes,
) -> Result<Response, V2Error> {
    let started = Instant::now();
    let request: Value =
        serde_json::from_slice(&body).map_err(|e| V2Error::bad(format!("malformed JSON: {e}")))?;
    let request = request
        .as_object()
        .ok_or_else(|| V2Error::bad("the request must be a JSON object"))?;
    let version = match request.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(V2Error::bad("version: expected a version number")),
    };
    let mut features: Map<String, Value> = match request.get("features") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(V2Error::bad(
                "features: expected an object of feature name to value",
            ));
        }
    };
    let routed = s
        .experiments
        .clone()
        .and_then(|d| d.strategy(&deployment).map(|strategy| (d, strategy)));
    let (served, decision) = match &routed {
        Some((experiments, strategy)) => {
            if version.is_some() {
                return Err(V2Error::bad(format!(
                    "version: {deployment} is a deployment; its strategy chooses the version"
                )));
            }
            let decide = decide_request(request, &features, strategy.contextual())?;
            let decision = experiments
                .decide(&deployment, decide)
                .await
                .map_err(experiment_error)?;
            let reference = decision.model.as_deref().unwrap_or(&decision.variant);
            match resolve_model(&s, reference).await {
                Ok(served) => (served, Some(decision)),
                Err(e) => {
                    record_error(experiments, &decision.decision_id).await;
                    return Err(e);
                }
            }
        }
        None => (
            s.inference.get(&deployment)?.version(version.as_deref())?,
            None,
        ),
    };
    if let Some(entities) = request.get("entities").filter(|e| !e.is_null()) {
        let entities = entities
            .as_object()
            .ok_or_else(|| V2Error::bad("entities: expected an object of join key to value"))?;
        let online = online_features(&s, &served, entities).await?;
        // Request data wins over stored features of the same name.
        for (name, value) in online {
            features.entry(name).or_insert(value);
        }
    }
    let outputs = match run_model(&s, &served, &features).await {
        Ok(outputs) => outputs,
        Err(e) => {
            if let (Some((experiments, _)), Some(d)) = (&routed, &decision) {
                record_error(experiments, &d.decision_id).await;
            }
            // Failed requests are logged too: the error rate is a share
            // of the log.
            s.predictions.record(
                &deployment,
                PredictionRow {
                    id: decision
                        .as_ref()
                        .map(|d| d.decision_id.clone())
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                    at: now_micros(),
                    model: served.name.clone(),
                    model_version: served.version.to_string(),
                    variant: decision.as_ref().map(|d| d.variant.clone()),
                    latency_us: Some(started.elapsed().as_micros() as i64),
                    features: features.clone(),
                    prediction: None,
                    outputs: Value::Null,
                    error: Some(e.message.clone()),
                    shadow: false,
                    propensity: None,
                },
            );
            return Err(e);
        }
    };
    let decision_id = decision
        .as_ref()
        .map(|d| d.decision_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let latency_us = started.elapsed().as_micros() as u64;
    let mut response = json!({
        "decision_id": decision_id,
        "deployment": deployment,
        "model": served.name,
        "model_version": served.version.to_string(),
        "outputs": outputs,
        "latency_ms": latency_us as f64 / 1e3,
    });
    let mut row = PredictionRow {
        id: decision_id.clone(),
        at: now_micros(),
        model: served.name.clone(),
        model_version: served.version.to_string(),
        variant: None,
        latency_us: Some(latency_us as i64),
        features: features.clone(),
        prediction: prediction_of(&outputs),
        outputs: Value::Object(outputs),
        error: None,
        shadow: false,
        propensity: None,
    };
    if let Some(d) = &decision {
        response["variant"] = json!(d.variant);
        response["propensity"] = json!(d.propensity);
        row.variant = Some(d.variant.clone());
        row.propensity = Some(d.propensity);
        if !d.shadows.is_empty() {
            tokio::spawn(run_shadows(
                s.clone(),
                deployment.clone(),
                d.clone(),
                features.clone(),
            ));
        }
    }
    s.predictions.record(&deployment, row);
    s.model_metrics.prediction(
        &deployment,
        decision.as_ref().map_or("", |d| d.variant.as_str()),
    );
    Ok(axum::Json(response).into_response())
}

/// The decision request of a prediction: `unit_id`, `segment`, `covariate`, and
/// `context` (or, for a contextual strategy, the numeric features in name
/// order).
fn decide_request(
    request: &Map<String, Value>,
    features: &Map<String, Value>,
    contextual: bool,
) -> Result<DecideRequest, V2Error> {
    let text = |field: &str| -> Result<Option<String>, V2Error> {
        match request.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(V2Error::bad(format!("{field}: expected a string"))),
        }
    };
    let context = match request.get("context") {
        None | Some(Value::Null) if contextual => {
            let mut names: Vec<&String> = features.keys().collect();
            names.sort();
            Some(
                names
                    .into_iter()
                    .filter_map(|n| features[n].as_f64())
                    .collect(),
            )
        }
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_f64()
                        .ok_or_else(|| V2Error::bad(format!("context[{i}]: expected a number")))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(V2Error::bad("context: expected a list of numbers")),
    };
    Ok(DecideRequest {
        unit_id: text("unit_id")?,
        context,
        segment: text("segment")?,
        covariate: match request.get("covariate") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| V2Error::bad("covariate: expected a number"))?,
            ),
        },
    })
}

fn experiment_error(e: ExperimentError) -> V2Error {
    let status = match &e {
        ExperimentError::Invalid { .. } => StatusCode::BAD_REQUEST,
        ExperimentError::UnknownDeployment(_) | ExperimentError::UnknownDecision(_) => {
            StatusCode::NOT_FOUND
        }
        ExperimentError::DeploymentExists(_)
        | ExperimentError::AlreadyRewarded(_)
        | ExperimentError::Conflict(_) => StatusCode::CONFLICT,
        ExperimentError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ExperimentError::Io(_) | ExperimentError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    V2Error {
        status,
        message: e.to_string(),
    }
}

/// Feeds a failed model call back as an error of the decision's variant.
async fn record_error(experiments: &keel_experiment::Deployments, decision_id: &str) {
    if let Err(e) = experiments.outcome(decision_id, None, true).await {
        tracing::warn!(decision = %decision_id, error = %e, "a failed prediction was not fed back");
    }
}

/// The served version a variant's model reference names.
async fn resolve_model(s: &AppState, reference: &str) -> Result<Arc<ServedVersion>, V2Error> {
    let Some(rest) = reference.strip_prefix("models:/") else {
        let (name, version) = match reference.rsplit_once('/') {
            Some((n, v)) if v.parse::<u64>().is_ok() => (n, Some(v)),
            _ => (reference, None),
        };
        return Ok(s.inference.get(name)?.version(version)?);
    };
    if let Some((model, alias)) = rest.split_once('@') {
        let registry = s.registry.as_ref().ok_or_else(|| {
            V2Error::bad(format!("{reference}: this server has no model registry"))
        })?;
        let version = registry
            .get_model_version_by_alias(model, alias)
            .await
            .map_err(|e| V2Error {
                status: StatusCode::NOT_FOUND,
                message: format!("{reference}: {e}"),
            })?;
        return Ok(s
            .inference
            .get(model)?
            .version(Some(&version.version.to_string()))?);
    }
    let (model, number) = rest.rsplit_once('/').ok_or_else(|| {
        V2Error::bad(format!(
            "{reference} is not models:/NAME/VERSION or models:/NAME@ALIAS"
        ))
    })?;
    Ok(s.inference.get(model)?.version(Some(number))?)
}

/// Runs one row of named features through a served version; the outputs
/// by name (a single row unwrapped).
async fn run_model(
    s: &AppState,
    served: &ServedVersion,
    features: &Map<String, Value>,
) -> Result<Map<String, Value>, V2Error> {
    let inputs = model_inputs(served, features)?;
    let outputs = s.model_metrics.infer(served, inputs).await?;
    let mut answer = Map::new();
    for out in &outputs {
        let value = match data_json(&out.data) {
            Value::Array(mut items) if items.len() == 1 => items.pop().unwrap_or(Value::Null),
            other => other,
        };
        answer.insert(out.name.clone(), value);
    }
    Ok(answer)
}

/// Mirrors a request to a deployment's shadow variants and logs their
/// answers (or errors) beside the primary's, under the same decision id.
async fn run_shadows(
    s: AppState,
    deployment: String,
    decision: Decision,
    features: Map<String, Value>,
) {
    for (variant, model) in decision.shadows.iter().zip(&decision.shadow_models) {
        let started = Instant::now();
        let reference = model.as_deref().unwrap_or(variant);
        let result = match resolve_model(&s, reference).await {
            Ok(served) => run_model(&s, &served, &features)
                .await
                .map(|outputs| (served, outputs)),
            Err(e) => Err(e),
        };
        let mut row = PredictionRow {
            id: decision.decision_id.clone(),
            at: now_micros(),
            model: String::new(),
            model_version: String::new(),
            variant: Some(variant.clone()),
            latency_us: Some(started.elapsed().as_micros() as i64),
            features: features.clone(),
            prediction: None,
            outputs: Value::Null,
            error: None,
            shadow: true,
            propensity: None,
        };
        match result {
            Ok((served, outputs)) => {
                row.model = served.name.clone();
                row.model_version = served.version.to_string();
                row.prediction = prediction_of(&outputs);
                row.outputs = Value::Object(outputs);
            }
            Err(e) => row.error = Some(e.message),
        }
        s.predictions.record(&deployment, row);
    }
}

/// The model's feature service, read for the request's entity keys; the
/// answer under short feature names.
async fn online_features(
    s: &AppState,
    served: &ServedVersion,
    entities: &Map<String, Value>,
) -> Result<Map<String, Value>, V2Error> {
    let service = served.settings.feature_service.as_ref().ok_or_else(|| {
        V2Error::bad(format!(
            "entities: model {} has no feature_service in its model-settings.json, so entity keys cannot be looked up",
            served.name
        ))
    })?;
    let online = s.online.as_ref().ok_or_else(|| {
        V2Error::bad("entities: the online feature store is not running on this server")
    })?;
    let columns: Map<String, Value> = entities
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    let request: keel_features::online::OnlineRequest =
        serde_json::from_value(json!({ "feature_service": service, "entities": columns }))
            .map_err(|e| V2Error::bad(format!("entities: {e}")))?;
    let answer = online
        .get_online_features(&request)
        .await
        .map_err(|e| V2Error::bad(format!("online features of {service}: {e}")))?;
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| V2Error::bad(format!("online features of {service}: {e}")))?;
    let names = body["metadata"]["feature_names"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let results = body["results"].as_array().cloned().unwrap_or_default();
    let mut out = Map::new();
    for (name, result) in names.iter().zip(results) {
        if let Some(name) = name.as_str() {
            out.insert(name.to_string(), result["values"][0].clone());
        }
    }
    Ok(out)
}

/// One row of named features as the model's input tensors.
fn model_inputs(
    served: &ServedVersion,
    features: &Map<String, Value>,
) -> Result<Vec<NamedTensor>, V2Error> {
    let specs = &served.plan.signature.inputs;
    let missing = |name: &str| {
        let known: Vec<&String> = features.keys().collect();
        V2Error::bad(format!(
            "features.{name}: missing; the request has {known:?}"
        ))
    };
    if let (Some(order), [spec]) = (&served.settings.features, specs.as_slice()) {
        let values: Vec<Value> = order
            .iter()
            .map(|name| features.get(name).cloned().ok_or_else(|| missing(name)))
            .collect::<Result<_, _>>()?;
        return tensor(
            spec,
            vec![1, values.len()],
            &Value::Array(values),
            "features",
        )
        .map(|t| vec![t]);
    }
    specs
        .iter()
        .map(|spec| {
            let value = features
                .get(&spec.name)
                .ok_or_else(|| missing(&spec.name))?;
            let row: Vec<usize> = spec
                .shape
                .iter()
                .map(|d| if *d < 0 { 1 } else { *d as usize })
                .collect();
            let elements: usize = row.iter().skip(1).product();
            let shape = match value {
                Value::Array(items) if spec.shape.len() == 2 && items.len() != elements => {
                    vec![1, items.len()]
                }
                _ => row,
            };
            tensor(spec, shape, value, &format!("features.{}", spec.name)).map(|mut t| {
                t.name = spec.name.clone();
                t
            })
        })
        .collect()
}

fn tensor(
    spec: &TensorSpec,
    shape: Vec<usize>,
    values: &Value,
    field: &str,
) -> Result<NamedTensor, V2Error> {
    // A missing online feature (null) is NaN for a float input, which the
    // signature then accepts or refuses.
    let float = matches!(
        spec.datatype,
        Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64
    );
    let values = match values {
        Value::Array(items) => Value::Array(items.iter().map(|v| null_as_nan(v, float)).collect()),
        v => Value::Array(vec![null_as_nan(v, float)]),
    };
    let data =
        decode_json(spec.datatype, &values).map_err(|m| V2Error::bad(format!("{field}: {m}")))?;
    Ok(NamedTensor::new(spec.name.clone(), shape, data))
}

fn null_as_nan(v: &Value, float: bool) -> Value {
    if float && v.is_null() {
        json!("NaN")
    } else {
        v.clone()
    }
}
