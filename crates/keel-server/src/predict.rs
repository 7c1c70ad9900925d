//! The online request path, `POST /v1/predict/{deployment}`: named features
//! and entity keys in, the deployment's model out, with a decision id.
//!
//! A deployment is, for now, a served model (its name in the model
//! repository); experiments will put a choice of variants behind the same
//! name. The model's `model-settings.json` says how named features become
//! its input tensors (`features`: the column order of a single matrix
//! input; otherwise each input is named after a feature) and which feature
//! service to fetch online features from for the request's `entities`.
//!
//! Every prediction — features, outputs, model version, latency — goes to
//! the prediction log, `predictions/DEPLOYMENT/*.jsonl` in the artifact
//! store, flushed every second (a crash loses at most the last second of
//! log lines, never an answer already sent).

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use keel_serve::plan::TensorSpec;
use keel_serve::repository::ServedVersion;
use keel_serve::tensor::{Datatype, NamedTensor};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::inference::{V2Error, data_json, decode_json};

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/predict/{deployment}", post(predict))
}

/// Predictions waiting to be appended to the artifact store.
#[derive(Default)]
pub struct PredictionLog {
    pending: Mutex<Vec<(String, Vec<u8>)>>,
}

pub fn prediction_log_folder(deployment: &str) -> String {
    format!("predictions/{deployment}")
}

impl PredictionLog {
    fn record(&self, deployment: &str, line: Vec<u8>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.push((deployment.to_string(), line));
    }

    /// Appends the logged predictions as one JSON-lines file per deployment.
    pub async fn flush(&self, artifacts: &keel_store::ArtifactStore) -> Result<usize, String> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let count = taken.len();
        let mut by_deployment: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for (deployment, line) in taken {
            let buf = by_deployment.entry(deployment).or_default();
            buf.extend_from_slice(&line);
            buf.push(b'\n');
        }
        let now = now_micros();
        for (deployment, buf) in by_deployment {
            let name = format!(
                "{}/{now:020}-{}.jsonl",
                prediction_log_folder(&deployment),
                std::process::id()
            );
            let body =
                futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(buf)) });
            artifacts
                .put_stream(&name, Box::pin(body))
                .await
                .map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(count)
    }
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
    let served = s.inference.get(&deployment)?.version(version.as_deref())?;
    let mut features: Map<String, Value> = match request.get("features") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(V2Error::bad(
                "features: expected an object of feature name to value",
            ));
        }
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
    let inputs = model_inputs(&served, &features)?;
    let outputs = served.infer(inputs).await?;
    let mut answer = Map::new();
    for out in &outputs {
        let data = data_json(&out.data);
        let value = match data {
            Value::Array(mut items) if items.len() == 1 => items.pop().unwrap_or(Value::Null),
            other => other,
        };
        answer.insert(out.name.clone(), value);
    }
    let decision_id = uuid::Uuid::new_v4().to_string();
    let latency_us = started.elapsed().as_micros() as u64;
    let response = json!({
        "decision_id": decision_id,
        "deployment": deployment,
        "model": served.name,
        "model_version": served.version.to_string(),
        "outputs": answer,
        "latency_ms": latency_us as f64 / 1e3,
    });
    let line = json!({
        "decision_id": decision_id,
        "at": now_micros(),
        "deployment": deployment,
        "model": served.name,
        "model_version": served.version.to_string(),
        "features": features,
        "outputs": response["outputs"],
        "latency_us": latency_us,
    });
    if let Ok(bytes) = serde_json::to_vec(&line) {
        s.predictions.record(&deployment, bytes);
    }
    Ok(axum::Json(response).into_response())
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
