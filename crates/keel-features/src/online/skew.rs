//! Training/serving skew: what the feature server answered, checked
//! against what the offline store computes for the same entities at the
//! same instants.
//!
//! **The serving log.** The server keeps a sample of the
//! `/get-online-features` requests that name a feature service: the
//! request's instant, its entity columns and the answer's bytes, as they
//! were sent. Logging copies two buffers on the request path, at most
//! [`LOG_PER_SECOND`] requests per second per service, and a background
//! flush appends them every second as a JSON-lines segment to the artifact
//! store under `features/serving_log/SERVICE/`.
//!
//! **The check** ([`OnlineFeatures::skew`]) takes the latest `sample`
//! served rows of a service, builds the service's training set for those
//! (entity, instant) pairs — point-in-time, from the offline sources and
//! their push logs — and compares every feature value: equal when both are
//! null, or equal, or numbers within a relative 1e-9. A served `NOT_FOUND`
//! count equals an offline 0 (the offline window counts nothing where the
//! online store has no state). Per feature it reports how many rows
//! differ, the mismatch rate, the largest absolute difference of numbers,
//! and a few examples; [`render_html`] draws the same as a page.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value as Json;

use super::convert;
use super::{OnlineFeatures, Result, now_micros};
use crate::FeatureError;
use crate::store::training::TrainingSetRequest;

/// Requests logged per service and second, at most.
pub const LOG_PER_SECOND: u32 = 50;

/// The folder of a service's serving log.
pub fn serving_log_folder(service: &str) -> String {
    format!("features/serving_log/{service}")
}

/// One logged request.
struct Logged {
    at: i64,
    entities: Vec<u8>,
    response: Vec<u8>,
}

/// A service's requests logged since the last flush, and its rate window.
struct Pending {
    window_start: Instant,
    in_window: u32,
    logged: Vec<Logged>,
}

/// The in-memory part of the serving log.
#[derive(Default)]
pub(crate) struct ServingLog {
    pending: Mutex<HashMap<String, Pending>>,
}

impl ServingLog {
    /// Keeps a request unless its service already logged its share this
    /// second.
    pub fn record(&self, service: &str, at: i64, entities: &[(String, Json)], response: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let entry = pending
            .entry(service.to_owned())
            .or_insert_with(|| Pending {
                window_start: Instant::now(),
                in_window: 0,
                logged: Vec::new(),
            });
        if entry.window_start.elapsed().as_secs() >= 1 {
            entry.window_start = Instant::now();
            entry.in_window = 0;
        }
        if entry.in_window >= LOG_PER_SECOND {
            return;
        }
        entry.in_window += 1;
        let mut map = serde_json::Map::new();
        for (k, v) in entities {
            map.insert(k.clone(), v.clone());
        }
        entry.logged.push(Logged {
            at,
            entities: serde_json::to_vec(&map).unwrap_or_default(),
            response: response.to_vec(),
        });
    }

    fn take(&self) -> Vec<(String, Vec<Logged>)> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .iter_mut()
            .filter(|(_, e)| !e.logged.is_empty())
            .map(|(s, e)| (s.clone(), std::mem::take(&mut e.logged)))
            .collect()
    }
}

/// How one feature compared.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FeatureSkew {
    pub feature: String,
    pub compared: usize,
    pub mismatches: usize,
    pub mismatch_rate: f64,
    /// The largest |served - offline| over numbers that differ.
    pub max_abs_diff: Option<f64>,
    pub examples: Vec<SkewExample>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SkewExample {
    pub entity: serde_json::Map<String, Json>,
    pub served_at: String,
    pub served: Json,
    pub status: String,
    pub offline: Json,
}

/// What a skew check found.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SkewReport {
    pub service: String,
    /// Served rows compared.
    pub rows: usize,
    /// Rows with at least one differing feature, over `rows`.
    pub mismatch_rate: f64,
    pub features: Vec<FeatureSkew>,
    /// The instants of the oldest and newest row compared.
    pub from: Option<String>,
    pub to: Option<String>,
    pub elapsed_ms: u64,
}

/// One served row.
struct ServedRow {
    at: i64,
    keys: serde_json::Map<String, Json>,
    /// feature name → (value, status)
    values: HashMap<String, (Json, String)>,
}

impl OnlineFeatures {
    /// Logs a served request of `service` (see the module docs).
    pub(crate) fn log_served(
        &self,
        service: &str,
        at: i64,
        entities: &[(String, Json)],
        body: &[u8],
    ) {
        self.inner.serving_log.record(service, at, entities, body);
    }

    /// Appends what was logged since the last flush to the artifact store.
    pub async fn flush_serving_log(&self) -> Result<usize> {
        let mut n = 0;
        for (service, entries) in self.inner.serving_log.take() {
            let mut buf = Vec::new();
            for e in &entries {
                buf.extend_from_slice(format!("{{\"at\":{},\"entities\":", e.at).as_bytes());
                buf.extend_from_slice(&e.entities);
                buf.extend_from_slice(b",\"response\":");
                buf.extend_from_slice(&e.response);
                buf.extend_from_slice(b"}\n");
            }
            let name = format!(
                "{}/{:020}-{}.jsonl",
                serving_log_folder(&service),
                now_micros(),
                std::process::id()
            );
            let body =
                futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(buf)) });
            self.features()
                .catalog()
                .artifacts()
                .put_stream(&name, Box::pin(body))
                .await
                .map_err(|e| FeatureError::Write {
                    path: name.clone(),
                    message: e.to_string(),
                })?;
            n += entries.len();
        }
        Ok(n)
    }

    /// Compares the latest `sample` served rows of `service` with the
    /// offline store's values for the same entities and instants.
    pub async fn skew(
        &self,
        service: &str,
        sample: usize,
        scratch: &std::path::Path,
    ) -> Result<SkewReport> {
        let started = Instant::now();
        self.flush_serving_log().await?;
        let compiled = self.compiled().await?;
        // Served columns are the service's features, in its order, under
        // short or full names: map them to full names by position.
        let request: super::OnlineRequest = serde_json::from_value(serde_json::json!({
            "entities": {}, "feature_service": service,
        }))
        .map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        let full_names: Vec<String> = self
            .requested(&compiled, &request)?
            .into_iter()
            .map(|(v, f)| format!("{v}__{f}"))
            .collect();
        let rows = self
            .served_rows(service, sample.max(1), &full_names)
            .await?;
        if rows.is_empty() {
            return Err(FeatureError::NotFound(format!(
                "service: nothing served for feature service `{service}` has been logged yet; the server logs /get-online-features requests that name a feature_service"
            )));
        }
        // The entity file: the join keys as served, and the instants.
        let key_names: Vec<String> = rows[0].keys.keys().cloned().collect();
        let mut columns: Vec<(String, datafusion::arrow::array::ArrayRef)> = Vec::new();
        for k in &key_names {
            let parts: Vec<Json> = rows
                .iter()
                .map(|r| r.keys.get(k).cloned().unwrap_or(Json::Null))
                .collect();
            let array: datafusion::arrow::array::ArrayRef =
                if parts.iter().all(|p| p.is_i64() || p.is_null()) {
                    std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(
                        parts.iter().map(Json::as_i64).collect::<Vec<_>>(),
                    ))
                } else {
                    std::sync::Arc::new(datafusion::arrow::array::StringArray::from(
                        parts
                            .iter()
                            .map(|p| {
                                p.as_str()
                                    .map(str::to_owned)
                                    .or_else(|| (!p.is_null()).then(|| p.to_string()))
                            })
                            .collect::<Vec<_>>(),
                    ))
                };
            columns.push((k.clone(), array));
        }
        let times: Vec<keel_online::codec::Value> = rows
            .iter()
            .map(|r| keel_online::codec::Value::Timestamp(r.at))
            .collect();
        columns.push((
            "event_timestamp".into(),
            convert::values_to_array(&times, &crate::definition::DataType::Timestamp)
                .map_err(FeatureError::Invalid)?,
        ));
        let batch = convert::batch(columns).map_err(FeatureError::Invalid)?;
        let entities = scratch.join("skew_entities.parquet");
        let out = scratch.join("skew_offline.parquet");
        write_parquet(&entities, &batch)?;
        self.features()
            .training_set(&TrainingSetRequest {
                service: service.to_owned(),
                entities,
                out: out.clone(),
                short_names: false,
            })
            .await?;
        let offline = read_parquet(&out)?;
        let counts: Vec<String> = compiled
            .repo()
            .stream_feature_views
            .iter()
            .flat_map(|v| {
                v.aggregations
                    .iter()
                    .filter(|a| a.function == crate::definition::AggFunction::Count)
                    .map(move |a| format!("{}__{}", v.name, a.name))
            })
            .collect();
        let schema = offline.schema();
        let mut features = Vec::new();
        let mut row_bad = vec![false; rows.len()];
        for field in schema.fields() {
            let name = field.name();
            if key_names.contains(name) || name == "event_timestamp" {
                continue;
            }
            let col = offline
                .column_by_name(name)
                .ok_or_else(|| FeatureError::Corrupt(format!("the training set lacks `{name}`")))?;
            let mut f = FeatureSkew {
                feature: name.clone(),
                compared: 0,
                mismatches: 0,
                mismatch_rate: 0.0,
                max_abs_diff: None,
                examples: Vec::new(),
            };
            for (i, row) in rows.iter().enumerate() {
                let Some((served, status)) = row.values.get(name) else {
                    continue;
                };
                f.compared += 1;
                let off = value_json(&convert::cell(col.as_ref(), i));
                let count_default = counts.contains(name) && status == "NOT_FOUND" && off == 0;
                if count_default || same(served, &off) {
                    continue;
                }
                f.mismatches += 1;
                row_bad[i] = true;
                if let (Some(a), Some(b)) = (served.as_f64(), off.as_f64()) {
                    let d = (a - b).abs();
                    f.max_abs_diff = Some(f.max_abs_diff.map_or(d, |m: f64| m.max(d)));
                }
                if f.examples.len() < 5 {
                    f.examples.push(SkewExample {
                        entity: row.keys.clone(),
                        served_at: super::serve::rfc3339(row.at),
                        served: served.clone(),
                        status: status.clone(),
                        offline: off,
                    });
                }
            }
            f.mismatch_rate = if f.compared == 0 {
                0.0
            } else {
                f.mismatches as f64 / f.compared as f64
            };
            features.push(f);
        }
        let bad = row_bad.iter().filter(|b| **b).count();
        Ok(SkewReport {
            service: service.to_owned(),
            rows: rows.len(),
            mismatch_rate: bad as f64 / rows.len() as f64,
            features,
            from: rows.iter().map(|r| r.at).min().map(super::serve::rfc3339),
            to: rows.iter().map(|r| r.at).max().map(super::serve::rfc3339),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The latest `limit` served rows of a service, oldest first.
    async fn served_rows(
        &self,
        service: &str,
        limit: usize,
        full_names: &[String],
    ) -> Result<Vec<ServedRow>> {
        let artifacts = self.features().catalog().artifacts();
        let mut files = artifacts
            .list_files(&serving_log_folder(service))
            .await
            .map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        files.retain(|f| f.path.ends_with(".jsonl"));
        files.sort_by(|a, b| b.path.cmp(&a.path));
        let mut rows: Vec<ServedRow> = Vec::new();
        for file in files {
            let rel = file.path.clone();
            let (_, mut stream) = artifacts
                .get_stream(&rel)
                .await
                .map_err(|e| FeatureError::Corrupt(e.to_string()))?;
            let mut text = Vec::new();
            use futures::StreamExt;
            while let Some(chunk) = stream.next().await {
                text.extend_from_slice(&chunk.map_err(|e| FeatureError::Corrupt(e.to_string()))?);
            }
            let mut in_file = Vec::new();
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: Json = serde_json::from_slice(line)
                    .map_err(|e| FeatureError::Corrupt(format!("{rel}: {e}")))?;
                in_file.extend(explode(&v, full_names));
            }
            in_file.reverse();
            rows.extend(in_file);
            if rows.len() >= limit {
                break;
            }
        }
        rows.truncate(limit);
        rows.reverse();
        Ok(rows)
    }
}

/// The rows of one logged request.
fn explode(v: &Json, full_names: &[String]) -> Vec<ServedRow> {
    let at = v["at"].as_i64().unwrap_or(0);
    let response = &v["response"];
    let names: Vec<&str> = response["metadata"]["feature_names"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let results = response["results"].as_array().cloned().unwrap_or_default();
    let entities = v["entities"].as_object().cloned().unwrap_or_default();
    let n = results
        .first()
        .and_then(|r| r["values"].as_array())
        .map_or(0, Vec::len);
    let features = names.iter().filter(|n| !entities.contains_key(**n)).count();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut keys = serde_json::Map::new();
        let mut values = HashMap::new();
        let mut j = 0;
        for (name, r) in names.iter().zip(&results) {
            let value = r["values"][i].clone();
            if entities.contains_key(*name) {
                keys.insert((*name).to_owned(), value);
            } else {
                let status = r["statuses"][i].as_str().unwrap_or("").to_owned();
                let full = match full_names.get(j) {
                    Some(f) if features == full_names.len() => f.clone(),
                    _ => (*name).to_owned(),
                };
                j += 1;
                values.insert(full, (value, status));
            }
        }
        out.push(ServedRow { at, keys, values });
    }
    out
}

fn value_json(v: &keel_online::codec::Value) -> Json {
    let mut s = String::new();
    super::serve::write_value(&mut s, v);
    serde_json::from_str(&s).unwrap_or(Json::Null)
}

fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::Number(x), Json::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

fn write_parquet(
    path: &std::path::Path,
    batch: &datafusion::arrow::array::RecordBatch,
) -> Result<()> {
    use datafusion::parquet::arrow::ArrowWriter;
    let err = |e: String| FeatureError::Write {
        path: path.display().to_string(),
        message: e,
    };
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| err(e.to_string()))?;
    w.write(batch).map_err(|e| err(e.to_string()))?;
    w.close().map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn read_parquet(path: &std::path::Path) -> Result<datafusion::arrow::array::RecordBatch> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let err = |e: String| FeatureError::Corrupt(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| err(e.to_string()))?;
    let schema = datafusion::arrow::record_batch::RecordBatchReader::schema(&reader);
    let batches: Vec<_> = reader
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| err(e.to_string()))
}

/// A small self-contained HTML page of a report.
pub fn render_html(report: &SkewReport) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Skew: {svc}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}\
         .bar{{background:#eee;width:160px;height:12px;display:inline-block}}\
         .fill{{height:12px;display:inline-block}}code{{font-size:90%}}</style></head><body>\
         <h1>Training/serving skew: {svc}</h1>\
         <p>{rows} served rows from {from} to {to}; {rate:.2}% of rows differ in at least one feature.</p>\
         <table><tr><th>feature</th><th>compared</th><th>mismatches</th><th>rate</th><th></th><th>max |diff|</th></tr>",
        svc = esc(&report.service),
        rows = report.rows,
        from = esc(report.from.as_deref().unwrap_or("")),
        to = esc(report.to.as_deref().unwrap_or("")),
        rate = report.mismatch_rate * 100.0,
    );
    for f in &report.features {
        let color = if f.mismatches == 0 { "#2a7" } else { "#d33" };
        let width = (f.mismatch_rate * 160.0)
            .round()
            .max(if f.mismatches > 0 { 2.0 } else { 0.0 });
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.2}%</td>\
             <td><span class=\"bar\"><span class=\"fill\" style=\"width:{width}px;background:{color}\"></span></span></td><td>{}</td></tr>",
            esc(&f.feature),
            f.compared,
            f.mismatches,
            f.mismatch_rate * 100.0,
            f.max_abs_diff.map_or(String::new(), |d| format!("{d:.6}")),
        );
    }
    h.push_str("</table>");
    let examples: Vec<&FeatureSkew> = report
        .features
        .iter()
        .filter(|f| !f.examples.is_empty())
        .collect();
    if !examples.is_empty() {
        h.push_str("<h2>Examples</h2><table><tr><th>feature</th><th>entity</th><th>served at</th><th>served</th><th>offline</th></tr>");
        for f in examples {
            for e in &f.examples {
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{} ({})</td><td>{}</td></tr>",
                    esc(&f.feature),
                    esc(&Json::Object(e.entity.clone()).to_string()),
                    esc(&e.served_at),
                    esc(&e.served.to_string()),
                    esc(&e.status),
                    esc(&e.offline.to_string()),
                );
            }
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}
