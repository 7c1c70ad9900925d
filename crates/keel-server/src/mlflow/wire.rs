//! Tracking types rendered as MLflow's JSON: 64-bit integers as numbers,
//! ids as strings, enums by name, NaN and infinities as strings, unset
//! fields omitted.

use keel_tracking::{Dataset, DatasetInput, Experiment, LoggedModel, Metric, Run, RunInfo, Tag};
use serde_json::{Map, Value, json};

pub fn double(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v == f64::INFINITY {
        Value::String("Infinity".into())
    } else if v == f64::NEG_INFINITY {
        Value::String("-Infinity".into())
    } else {
        json!(v)
    }
}

pub fn tags(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

pub fn experiment(e: &Experiment) -> Value {
    let mut m = Map::new();
    m.insert("experiment_id".into(), json!(e.experiment_id.to_string()));
    m.insert("name".into(), json!(e.name));
    m.insert("artifact_location".into(), json!(e.artifact_location));
    m.insert("lifecycle_stage".into(), json!(e.lifecycle_stage.as_str()));
    m.insert("last_update_time".into(), json!(e.last_update_time));
    m.insert("creation_time".into(), json!(e.creation_time));
    if !e.tags.is_empty() {
        m.insert("tags".into(), tags(&e.tags));
    }
    Value::Object(m)
}

pub fn run_info(i: &RunInfo) -> Value {
    let mut m = Map::new();
    m.insert("run_id".into(), json!(i.run_id));
    m.insert("run_uuid".into(), json!(i.run_id));
    m.insert("run_name".into(), json!(i.run_name));
    m.insert("experiment_id".into(), json!(i.experiment_id.to_string()));
    m.insert("user_id".into(), json!(i.user_id));
    m.insert("status".into(), json!(i.status.as_str()));
    m.insert("start_time".into(), json!(i.start_time));
    if let Some(end) = i.end_time {
        m.insert("end_time".into(), json!(end));
    }
    m.insert("artifact_uri".into(), json!(i.artifact_uri));
    m.insert("lifecycle_stage".into(), json!(i.lifecycle_stage.as_str()));
    Value::Object(m)
}

pub fn metric(m: &Metric) -> Value {
    let mut v =
        json!({"key": m.key, "value": double(m.value), "timestamp": m.timestamp, "step": m.step});
    if let Some(id) = &m.model_id {
        v["model_id"] = json!(id);
    }
    if let Some(name) = &m.dataset_name {
        v["dataset_name"] = json!(name);
    }
    if let Some(digest) = &m.dataset_digest {
        v["dataset_digest"] = json!(digest);
    }
    v
}

pub fn logged_model(m: &LoggedModel) -> Value {
    let mut info = Map::new();
    info.insert("model_id".into(), json!(m.model_id));
    info.insert("experiment_id".into(), json!(m.experiment_id.to_string()));
    info.insert("name".into(), json!(m.name));
    info.insert(
        "creation_timestamp_ms".into(),
        json!(m.creation_timestamp_ms),
    );
    info.insert(
        "last_updated_timestamp_ms".into(),
        json!(m.last_updated_timestamp_ms),
    );
    info.insert("artifact_uri".into(), json!(m.artifact_location));
    info.insert("status".into(), json!(m.status.as_str()));
    if let Some(t) = &m.model_type {
        info.insert("model_type".into(), json!(t));
    }
    if let Some(r) = &m.source_run_id {
        info.insert("source_run_id".into(), json!(r));
    }
    if let Some(msg) = &m.status_message {
        info.insert("status_message".into(), json!(msg));
    }
    if !m.tags.is_empty() {
        info.insert("tags".into(), tags(&m.tags));
    }
    let mut data = Map::new();
    if !m.params.is_empty() {
        data.insert("params".into(), tags(&m.params));
    }
    if !m.metrics.is_empty() {
        data.insert(
            "metrics".into(),
            Value::Array(m.metrics.iter().map(metric).collect()),
        );
    }
    json!({"info": Value::Object(info), "data": Value::Object(data)})
}

fn dataset(d: &Dataset) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(d.name));
    m.insert("digest".into(), json!(d.digest));
    m.insert("source_type".into(), json!(d.source_type));
    m.insert("source".into(), json!(d.source));
    if let Some(s) = &d.schema {
        m.insert("schema".into(), json!(s));
    }
    if let Some(p) = &d.profile {
        m.insert("profile".into(), json!(p));
    }
    Value::Object(m)
}

fn dataset_input(i: &DatasetInput) -> Value {
    let mut m = Map::new();
    if !i.tags.is_empty() {
        m.insert("tags".into(), tags(&i.tags));
    }
    m.insert("dataset".into(), dataset(&i.dataset));
    Value::Object(m)
}

pub fn run(r: &Run) -> Value {
    let mut m = Map::new();
    m.insert("info".into(), run_info(&r.info));
    if let Some(d) = &r.data {
        let mut data = Map::new();
        if !d.metrics.is_empty() {
            data.insert(
                "metrics".into(),
                Value::Array(d.metrics.iter().map(metric).collect()),
            );
        }
        if !d.params.is_empty() {
            data.insert("params".into(), tags(&d.params));
        }
        if !d.tags.is_empty() {
            data.insert("tags".into(), tags(&d.tags));
        }
        m.insert("data".into(), Value::Object(data));
        let mut inputs = Map::new();
        if !d.inputs.is_empty() {
            inputs.insert(
                "dataset_inputs".into(),
                Value::Array(d.inputs.iter().map(dataset_input).collect()),
            );
        }
        m.insert("inputs".into(), Value::Object(inputs));
        let mut outputs = Map::new();
        if !d.outputs.is_empty() {
            outputs.insert(
                "model_outputs".into(),
                Value::Array(
                    d.outputs
                        .iter()
                        .map(|o| json!({"model_id": o.model_id, "step": o.step}))
                        .collect(),
                ),
            );
        }
        m.insert("outputs".into(), Value::Object(outputs));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_doubles_are_strings() {
        assert_eq!(double(f64::NAN), json!("NaN"));
        assert_eq!(double(f64::INFINITY), json!("Infinity"));
        assert_eq!(double(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(double(0.5), json!(0.5));
    }
}
