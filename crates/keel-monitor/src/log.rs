//! The prediction log as Parquet segments: every served or logged
//! prediction becomes a row with its features (one column each), its
//! prediction, the model version and variant that made it, its latency and
//! time. Labels arriving later are segments of their own, joined by
//! prediction id when a window is read.
//!
//! A segment is named `{first_at:020}-{last_at:020}-{unique}.parquet`
//! (microseconds since the epoch), so a time window is read by listing
//! names, and retention deletes whole segments older than a cut-off.
//!
//! Columns: `_id`, `_at` (µs), `_model`, `_version`, `_variant`,
//! `_latency_us`, `prediction` (the first output as a number, when it is
//! one), `_outputs` (all outputs as JSON), then one column per feature
//! (float64 when every value in the segment is a number, text otherwise).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MonitorError;

/// One logged prediction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PredictionRow {
    pub id: String,
    /// Microseconds since the epoch.
    pub at: i64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub model_version: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub latency_us: Option<i64>,
    #[serde(default)]
    pub features: serde_json::Map<String, Value>,
    /// The prediction as a number (score, class index, regression value).
    #[serde(default)]
    pub prediction: Option<f64>,
    /// Everything the model returned.
    #[serde(default)]
    pub outputs: Value,
    /// The probability the deployment's strategy chose this variant with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    /// Why the request failed (no prediction then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A shadow variant's prediction, never returned to the caller.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

/// A label that arrived for a prediction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabelRow {
    pub id: String,
    pub label: f64,
    pub at: i64,
}

pub const META_COLUMNS: [&str; 11] = [
    "_id",
    "_at",
    "_model",
    "_version",
    "_variant",
    "_latency_us",
    "prediction",
    "_outputs",
    "_error",
    "_shadow",
    "_propensity",
];

/// The segment file name for rows spanning `first..=last`.
pub fn segment_name(first: i64, last: i64, unique: &str) -> String {
    format!("{first:020}-{last:020}-{unique}.parquet")
}

/// The time span a segment name covers, if it is one.
pub fn segment_span(name: &str) -> Option<(i64, i64)> {
    let base = name.rsplit('/').next()?.strip_suffix(".parquet")?;
    let mut parts = base.splitn(3, '-');
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    Some((first, last))
}

/// Encodes predictions as one Parquet segment.
pub fn encode_predictions(rows: &[PredictionRow]) -> Result<Vec<u8>, MonitorError> {
    let n = rows.len();
    let mut id = StringBuilder::new();
    let mut at = Int64Builder::with_capacity(n);
    let mut model = StringBuilder::new();
    let mut version = StringBuilder::new();
    let mut variant = StringBuilder::new();
    let mut latency = Int64Builder::with_capacity(n);
    let mut prediction = Float64Builder::with_capacity(n);
    let mut outputs = StringBuilder::new();
    let mut error = StringBuilder::new();
    let mut shadow = arrow_array::builder::BooleanBuilder::with_capacity(n);
    let mut propensity = Float64Builder::with_capacity(n);
    for r in rows {
        id.append_value(&r.id);
        at.append_value(r.at);
        model.append_value(&r.model);
        version.append_value(&r.model_version);
        variant.append_option(r.variant.as_deref());
        latency.append_option(r.latency_us);
        prediction.append_option(r.prediction);
        outputs.append_value(r.outputs.to_string());
        error.append_option(r.error.as_deref());
        shadow.append_value(r.shadow);
        propensity.append_option(r.propensity);
    }
    let mut fields = vec![
        Field::new("_id", DataType::Utf8, false),
        Field::new("_at", DataType::Int64, false),
        Field::new("_model", DataType::Utf8, false),
        Field::new("_version", DataType::Utf8, false),
        Field::new("_variant", DataType::Utf8, true),
        Field::new("_latency_us", DataType::Int64, true),
        Field::new("prediction", DataType::Float64, true),
        Field::new("_outputs", DataType::Utf8, false),
        Field::new("_error", DataType::Utf8, true),
        Field::new("_shadow", DataType::Boolean, false),
        Field::new("_propensity", DataType::Float64, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(at.finish()),
        Arc::new(model.finish()),
        Arc::new(version.finish()),
        Arc::new(variant.finish()),
        Arc::new(latency.finish()),
        Arc::new(prediction.finish()),
        Arc::new(outputs.finish()),
        Arc::new(error.finish()),
        Arc::new(shadow.finish()),
        Arc::new(propensity.finish()),
    ];
    let mut names: BTreeMap<&str, bool> = BTreeMap::new();
    for r in rows {
        for (k, v) in &r.features {
            let numeric = names.entry(k.as_str()).or_insert(true);
            if !(v.is_number() || v.is_null()) {
                *numeric = false;
            }
        }
    }
    for (name, numeric) in names {
        if META_COLUMNS.contains(&name) {
            return Err(MonitorError::invalid(
                &format!("features.{name}"),
                "this name is reserved for the log's own columns",
            ));
        }
        if numeric {
            let mut b = Float64Builder::with_capacity(n);
            for r in rows {
                b.append_option(r.features.get(name).and_then(Value::as_f64));
            }
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(b.finish()));
        } else {
            let mut b = StringBuilder::new();
            for r in rows {
                match r.features.get(name) {
                    None | Some(Value::Null) => b.append_null(),
                    Some(Value::String(s)) => b.append_value(s),
                    Some(Value::Bool(x)) => b.append_value(if *x { "True" } else { "False" }),
                    Some(other) => b.append_value(other.to_string()),
                }
            }
            fields.push(Field::new(name, DataType::Utf8, true));
            columns.push(Arc::new(b.finish()));
        }
    }
    write_batch(Arc::new(Schema::new(fields)), columns)
}

/// Encodes labels as one Parquet segment.
pub fn encode_labels(rows: &[LabelRow]) -> Result<Vec<u8>, MonitorError> {
    let mut id = StringBuilder::new();
    let mut label = Float64Builder::with_capacity(rows.len());
    let mut at = Int64Builder::with_capacity(rows.len());
    for r in rows {
        id.append_value(&r.id);
        label.append_value(r.label);
        at.append_value(r.at);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("_id", DataType::Utf8, false),
        Field::new("label", DataType::Float64, false),
        Field::new("_at", DataType::Int64, false),
    ]));
    write_batch(
        schema,
        vec![
            Arc::new(id.finish()),
            Arc::new(label.finish()),
            Arc::new(at.finish()),
        ],
    )
}

fn write_batch(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> Result<Vec<u8>, MonitorError> {
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(encode_error)?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, None).map_err(encode_error)?;
    writer.write(&batch).map_err(encode_error)?;
    writer.close().map_err(encode_error)?;
    Ok(out)
}

fn encode_error(e: impl std::fmt::Display) -> MonitorError {
    MonitorError::Io {
        path: "prediction log segment".into(),
        message: e.to_string(),
    }
}

/// A window of the log, read back: rows in time order with features and,
/// where one arrived, the label.
#[derive(Debug, Default, Clone)]
pub struct Window {
    pub rows: Vec<PredictionRow>,
    pub labels: HashMap<String, f64>,
}

impl Window {
    /// Adds the rows of a segment whose time is in `[start, end)`.
    pub fn add_segment(
        &mut self,
        bytes: bytes::Bytes,
        start: i64,
        end: i64,
    ) -> Result<(), MonitorError> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(encode_error)?
            .build()
            .map_err(encode_error)?;
        for batch in reader {
            let batch = batch.map_err(encode_error)?;
            let schema = batch.schema();
            let col = |name: &str| batch.column_by_name(name);
            let (Some(ids), Some(ats)) = (col("_id"), col("_at")) else {
                return Err(encode_error("a segment without _id and _at"));
            };
            let ids = ids.as_string::<i32>();
            let ats = ats.as_primitive::<Int64Type>();
            let text = |name: &str, i: usize| -> Option<String> {
                col(name)
                    .filter(|a| a.data_type() == &DataType::Utf8 && a.is_valid(i))
                    .map(|a| a.as_string::<i32>().value(i).to_string())
            };
            let number = |name: &str, i: usize| -> Option<f64> {
                col(name)
                    .filter(|a| a.data_type() == &DataType::Float64 && a.is_valid(i))
                    .map(|a| a.as_primitive::<Float64Type>().value(i))
            };
            let features: Vec<(usize, &str)> = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| !META_COLUMNS.contains(&f.name().as_str()))
                .map(|(i, f)| (i, f.name().as_str()))
                .collect();
            for i in 0..batch.num_rows() {
                let at = ats.value(i);
                if at < start || at >= end {
                    continue;
                }
                let mut map = serde_json::Map::new();
                for (c, name) in &features {
                    let a = batch.column(*c);
                    if !a.is_valid(i) {
                        continue;
                    }
                    let v = match a.data_type() {
                        DataType::Float64 => {
                            serde_json::Number::from_f64(a.as_primitive::<Float64Type>().value(i))
                                .map(Value::Number)
                                .unwrap_or(Value::Null)
                        }
                        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
                        _ => continue,
                    };
                    map.insert(name.to_string(), v);
                }
                self.rows.push(PredictionRow {
                    id: ids.value(i).to_string(),
                    at,
                    model: text("_model", i).unwrap_or_default(),
                    model_version: text("_version", i).unwrap_or_default(),
                    variant: text("_variant", i),
                    latency_us: col("_latency_us")
                        .filter(|a| a.is_valid(i))
                        .map(|a| a.as_primitive::<Int64Type>().value(i)),
                    features: map,
                    prediction: number("prediction", i),
                    outputs: text("_outputs", i)
                        .and_then(|s| serde_json::from_str(&s).ok())
                        .unwrap_or(Value::Null),
                    error: text("_error", i),
                    propensity: number("_propensity", i),
                    shadow: col("_shadow")
                        .filter(|a| a.data_type() == &DataType::Boolean && a.is_valid(i))
                        .is_some_and(|a| a.as_boolean().value(i)),
                });
            }
        }
        Ok(())
    }

    /// Adds a label segment (every label, whatever its time: a label
    /// belongs to its prediction's window).
    pub fn add_labels(&mut self, bytes: bytes::Bytes) -> Result<(), MonitorError> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(encode_error)?
            .build()
            .map_err(encode_error)?;
        for batch in reader {
            let batch = batch.map_err(encode_error)?;
            let (Some(ids), Some(labels)) =
                (batch.column_by_name("_id"), batch.column_by_name("label"))
            else {
                return Err(encode_error("a label segment without _id and label"));
            };
            let ids = ids.as_string::<i32>();
            let labels = labels.as_primitive::<Float64Type>();
            for i in 0..batch.num_rows() {
                self.labels
                    .insert(ids.value(i).to_string(), labels.value(i));
            }
        }
        Ok(())
    }

    pub fn sort(&mut self) {
        self.rows
            .sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    }

    /// The window's features (and prediction) as one Parquet file, for
    /// the drift engine.
    pub fn to_parquet(&self) -> Result<Vec<u8>, MonitorError> {
        encode_predictions(&self.rows)
    }
}

/// Rows and column names of a Parquet file held in memory; an error when
/// it is not Parquet.
pub fn parquet_summary(bytes: bytes::Bytes) -> Result<(i64, Vec<String>), MonitorError> {
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| MonitorError::Parquet {
            path: "the body".into(),
            message: e.to_string(),
        })?;
    let rows = reader.metadata().file_metadata().num_rows();
    let columns = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok((rows, columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: &str, at: i64, x: f64, c: &str) -> PredictionRow {
        PredictionRow {
            id: id.into(),
            at,
            model: "m".into(),
            model_version: "1".into(),
            variant: Some("a".into()),
            latency_us: Some(120),
            features: json!({"x": x, "c": c})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            prediction: Some(x * 2.0),
            outputs: json!({"y": [x * 2.0]}),
            error: None,
            shadow: false,
            propensity: None,
        }
    }

    #[test]
    fn a_segment_round_trips_and_filters_by_time() {
        let rows = vec![
            row("a", 10, 1.0, "u"),
            row("b", 20, 2.0, "v"),
            row("c", 30, 3.0, "u"),
        ];
        let bytes = encode_predictions(&rows).expect("encode");
        let mut w = Window::default();
        w.add_segment(bytes::Bytes::from(bytes), 15, 31)
            .expect("read");
        assert_eq!(w.rows, rows[1..].to_vec());
        let labels = encode_labels(&[LabelRow {
            id: "b".into(),
            label: 1.0,
            at: 99,
        }])
        .expect("labels");
        w.add_labels(bytes::Bytes::from(labels))
            .expect("read labels");
        assert_eq!(w.labels.get("b"), Some(&1.0));
    }

    #[test]
    fn segment_names_carry_their_span() {
        let n = segment_name(5, 17, "x1");
        assert_eq!(
            segment_span(&format!("monitor/d/predictions/{n}")),
            Some((5, 17))
        );
        assert_eq!(segment_span("other.json"), None);
    }

    #[test]
    fn reserved_feature_names_are_refused() {
        let mut r = row("a", 1, 1.0, "u");
        r.features.insert("_at".into(), json!(3));
        assert!(
            encode_predictions(&[r])
                .unwrap_err()
                .to_string()
                .contains("features._at")
        );
    }
}
