//! Writes that do not come from materialization: pushes (`/push`, and the
//! stream consumer) and direct writes (`/write-to-online-store`).
//!
//! A request's rows arrive as Feast's column-oriented JSON (`{"col":
//! [values…]}`). Every value is checked against its column's type before
//! anything is written, so a bad value refuses the whole request and
//! writes nothing. A push to a source goes:
//!
//! * offline (`to` is `offline` or `online_and_offline`): appended to the
//!   source's push log as one Parquet segment, first, so an acknowledged
//!   push is in the training data even if the online write fails;
//! * online (`online`, the default, or `online_and_offline`): the latest
//!   row per entity into every online feature view over the source
//!   (newest event wins), and every event into the windows of every stream
//!   feature view over the source.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    SchemaRef, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use keel_online::codec::{KeyPart, Value, encode_key, encode_row};
use keel_online::{Durability, Entry, TableKeys};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::convert::{self, json_event_time, json_key, json_value};
use super::window::{WindowSpec, WindowState};
use super::{Compiled, Kind, OnlineFeatures, OnlineView, Result, online_error};
use crate::FeatureError;
use crate::definition::DataType;

/// Where a push goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum PushMode {
    #[default]
    Online,
    Offline,
    OnlineAndOffline,
}

impl TryFrom<String> for PushMode {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        match text.as_str() {
            "online" => Ok(PushMode::Online),
            "offline" => Ok(PushMode::Offline),
            "online_and_offline" => Ok(PushMode::OnlineAndOffline),
            other => Err(format!(
                "to: `{other}` is not a push mode; write online, offline or online_and_offline"
            )),
        }
    }
}

/// Feast's `/push` body.
#[derive(Debug, Clone, Deserialize)]
pub struct PushRequest {
    pub push_source_name: String,
    pub df: serde_json::Map<String, Json>,
    #[serde(default)]
    pub to: PushMode,
}

/// Feast's `/write-to-online-store` body.
#[derive(Debug, Clone, Deserialize)]
pub struct WriteRequest {
    pub feature_view_name: String,
    pub df: serde_json::Map<String, Json>,
}

/// What a push or write did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteReport {
    pub rows: usize,
    /// Rows appended to the push log.
    pub offline_rows: usize,
    /// Entities written, over all views.
    pub entities_written: u64,
    /// Entities whose online row was from a later event and was kept.
    pub kept_newer: u64,
    /// Events dropped from stream windows as too old to count.
    pub events_too_old: u64,
}

/// A value of a stream column for the window kernel (numbers and
/// timestamps keep their type; anything else is kept as is).
pub(crate) fn stream_cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        ArrowType::Int8 => Value::Int64(i64::from(array.as_primitive::<Int8Type>().value(row))),
        ArrowType::Int16 => Value::Int64(i64::from(array.as_primitive::<Int16Type>().value(row))),
        ArrowType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().value(row)),
        ArrowType::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(row)),
        ArrowType::UInt8 => Value::Int64(i64::from(array.as_primitive::<UInt8Type>().value(row))),
        ArrowType::UInt16 => Value::Int64(i64::from(array.as_primitive::<UInt16Type>().value(row))),
        ArrowType::UInt32 => Value::Int64(i64::from(array.as_primitive::<UInt32Type>().value(row))),
        ArrowType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(v).map_or(Value::Float64(v as f64), Value::Int64)
        }
        ArrowType::Float32 => Value::Float32(array.as_primitive::<Float32Type>().value(row)),
        ArrowType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(row)),
        ArrowType::Timestamp(_, _) | ArrowType::Date32 | ArrowType::Date64 => {
            let a: ArrayRef = array.slice(row, 1);
            match convert::micros(&a) {
                Ok(v) => v[0].map_or(Value::Null, Value::Timestamp),
                Err(_) => Value::Null,
            }
        }
        _ => {
            let t = DataType::from_column_type(&array.data_type().to_string());
            match t {
                Some(t) => match convert::cast_column(&array.slice(row, 1), &t) {
                    Ok(a) => convert::cell(a.as_ref(), 0),
                    Err(_) => Value::Null,
                },
                None => Value::Null,
            }
        }
    }
}

/// Rows parsed from column JSON: `columns[name] = values`.
struct Rows {
    n: usize,
    columns: HashMap<String, Vec<Value>>,
    keys: HashMap<String, Vec<Option<KeyPart>>>,
    times: HashMap<String, Vec<Option<i64>>>,
}

fn column<'a>(
    df: &'a serde_json::Map<String, Json>,
    name: &str,
    needed_by: &str,
) -> Result<&'a [Json]> {
    match df.get(name) {
        Some(Json::Array(values)) => Ok(values),
        Some(other) => Err(FeatureError::Invalid(format!(
            "df.{name}: a column is a list of values, not {}",
            convert::short(other)
        ))),
        None => {
            let have: Vec<&str> = df.keys().map(String::as_str).collect();
            Err(FeatureError::Invalid(format!(
                "df: no column `{name}`, which {needed_by} needs; the request has {}",
                if have.is_empty() {
                    "no columns".to_owned()
                } else {
                    have.join(", ")
                }
            )))
        }
    }
}

impl Rows {
    fn parse(
        df: &serde_json::Map<String, Json>,
        keys: &[(String, String)],
        times: &[(String, String)],
        values: &[(String, DataType, String)],
    ) -> Result<Rows> {
        let mut n: Option<(usize, String)> = None;
        let mut check_len = |name: &str, len: usize| -> Result<()> {
            match &n {
                Some((m, first)) if *m != len => Err(FeatureError::Invalid(format!(
                    "df.{name}: has {len} values but df.{first} has {m}; every column needs one value per row"
                ))),
                Some(_) => Ok(()),
                None => {
                    n = Some((len, name.to_owned()));
                    Ok(())
                }
            }
        };
        let mut rows = Rows {
            n: 0,
            columns: HashMap::new(),
            keys: HashMap::new(),
            times: HashMap::new(),
        };
        for (name, by) in keys {
            if rows.keys.contains_key(name) {
                continue;
            }
            let col = column(df, name, by)?;
            check_len(name, col.len())?;
            let parts = col
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if v.is_null() {
                        return Err(FeatureError::Invalid(format!(
                            "df.{name}[{i}]: a join key cannot be null"
                        )));
                    }
                    json_key(v)
                        .map(Some)
                        .map_err(|m| FeatureError::Invalid(format!("df.{name}[{i}]: {m}")))
                })
                .collect::<Result<Vec<_>>>()?;
            rows.keys.insert(name.clone(), parts);
        }
        for (name, by) in times {
            if rows.times.contains_key(name) {
                continue;
            }
            let col = column(df, name, by)?;
            check_len(name, col.len())?;
            let ts = col
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if v.is_null() {
                        return Ok(None);
                    }
                    json_event_time(v)
                        .map(Some)
                        .map_err(|m| FeatureError::Invalid(format!("df.{name}[{i}]: {m}")))
                })
                .collect::<Result<Vec<_>>>()?;
            rows.times.insert(name.clone(), ts);
        }
        for (name, dtype, by) in values {
            if rows.columns.contains_key(name) {
                continue;
            }
            let col = column(df, name, by)?;
            check_len(name, col.len())?;
            let parsed = col
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    json_value(v, dtype)
                        .map_err(|m| FeatureError::Invalid(format!("df.{name}[{i}]: {m}")))
                })
                .collect::<Result<Vec<_>>>()?;
            rows.columns.insert(name.clone(), parsed);
        }
        rows.n = n.map_or(0, |(len, _)| len);
        Ok(rows)
    }

    fn key(&self, view: &OnlineView, row: usize) -> Option<Vec<KeyPart>> {
        view.join_keys
            .iter()
            .map(|k| self.keys.get(k).and_then(|c| c[row].clone()))
            .collect()
    }
}

impl OnlineFeatures {
    /// Feast's `/push`.
    pub async fn push(&self, req: &PushRequest) -> Result<WriteReport> {
        let compiled = self.compiled().await?;
        let repo = compiled.repo();
        let Some(source) = repo.source(&req.push_source_name) else {
            let names: Vec<&str> = repo.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(crate::definition::suggest::not_defined(
                "push_source_name",
                "source",
                &req.push_source_name,
                &names,
            ));
        };
        let online = matches!(req.to, PushMode::Online | PushMode::OnlineAndOffline);
        let offline = matches!(req.to, PushMode::Offline | PushMode::OnlineAndOffline);
        let mut views: Vec<&OnlineView> = compiled
            .views
            .values()
            .filter(|v| v.source == source.name && v.online && !v.has_sql)
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        let schema = if offline {
            Some(self.source_schema(&compiled, &source.name).await?)
        } else {
            None
        };
        // The columns to read: every view's keys, times and values; for the
        // log, every column of the source the request has.
        let mut keys = Vec::new();
        let mut times = Vec::new();
        let mut values = Vec::new();
        if online {
            for v in &views {
                let by = format!("feature view `{}`", v.name);
                keys.extend(v.join_keys.iter().map(|k| (k.clone(), by.clone())));
                times.push((v.timestamp_field.clone(), by.clone()));
                if let Some(c) = &v.created_field
                    && req.df.contains_key(c)
                {
                    times.push((c.clone(), by.clone()));
                }
                match v.kind {
                    Kind::Batch => values.extend(
                        v.features
                            .iter()
                            .map(|f| (f.name.clone(), f.dtype.clone(), by.clone())),
                    ),
                    Kind::Stream => {
                        let schema = match &schema {
                            Some(s) => s.clone(),
                            None => self.source_schema(&compiled, &source.name).await?,
                        };
                        for (c, _) in &v.aggregations {
                            values.push((c.clone(), column_type(&schema, c)?, by.clone()));
                        }
                    }
                }
            }
        }
        if let Some(schema) = &schema {
            times.push((
                source.timestamp_field.clone(),
                format!("source `{}`", source.name),
            ));
            for f in schema.fields() {
                let name = f.name();
                if !req.df.contains_key(name)
                    || keys.iter().any(|(k, _)| k == name)
                    || times.iter().any(|(t, _)| t == name)
                    || values.iter().any(|(v, _, _)| v == name)
                {
                    continue;
                }
                if matches!(
                    f.data_type(),
                    ArrowType::Timestamp(_, _) | ArrowType::Date32 | ArrowType::Date64
                ) {
                    times.push((name.clone(), String::new()));
                } else {
                    values.push((name.clone(), column_type(schema, name)?, String::new()));
                }
            }
        }
        let rows = Rows::parse(&req.df, &keys, &times, &values)?;
        if online {
            for v in &views {
                check_kinds(&compiled, v, &rows)?;
            }
        }
        let mut report = WriteReport {
            rows: rows.n,
            ..WriteReport::default()
        };
        if let Some(schema) = &schema {
            report.offline_rows = self.append_log(&source.name, schema, &rows).await?;
        }
        if online {
            for v in views {
                self.write_view(&compiled, v, &rows, &mut report).await?;
            }
        }
        Ok(report)
    }

    /// Feast's `/write-to-online-store`: rows into one view, online only.
    pub async fn write_to_online_store(&self, req: &WriteRequest) -> Result<WriteReport> {
        let compiled = self.compiled().await?;
        let Some(view) = compiled.view(&req.feature_view_name) else {
            return Err(super::unknown_view(
                compiled.repo(),
                &req.feature_view_name,
                "feature_view_name",
            ));
        };
        let by = format!("feature view `{}`", view.name);
        let keys: Vec<(String, String)> = view
            .join_keys
            .iter()
            .map(|k| (k.clone(), by.clone()))
            .collect();
        let mut times = vec![(view.timestamp_field.clone(), by.clone())];
        if let Some(c) = &view.created_field
            && req.df.contains_key(c)
        {
            times.push((c.clone(), by.clone()));
        }
        let values: Vec<(String, DataType, String)> = match view.kind {
            Kind::Batch => view
                .features
                .iter()
                .map(|f| (f.name.clone(), f.dtype.clone(), by.clone()))
                .collect(),
            Kind::Stream => {
                let schema = self.source_schema(&compiled, &view.source).await?;
                view.aggregations
                    .iter()
                    .map(|(c, _)| Ok((c.clone(), column_type(&schema, c)?, by.clone())))
                    .collect::<Result<_>>()?
            }
        };
        let rows = Rows::parse(&req.df, &keys, &times, &values)?;
        let mut report = WriteReport {
            rows: rows.n,
            ..WriteReport::default()
        };
        self.write_view(&compiled, view, &rows, &mut report).await?;
        Ok(report)
    }

    async fn write_view(
        &self,
        compiled: &Compiled,
        view: &OnlineView,
        rows: &Rows,
        report: &mut WriteReport,
    ) -> Result<()> {
        if rows.n == 0 {
            return Ok(());
        }
        let ts = rows
            .times
            .get(&view.timestamp_field)
            .ok_or_else(|| FeatureError::Corrupt("timestamps were not parsed".into()))?;
        if let Some(i) = ts.iter().position(Option::is_none) {
            return Err(FeatureError::Invalid(format!(
                "df.{}[{i}]: the event time cannot be null",
                view.timestamp_field
            )));
        }
        let created = view.created_field.as_ref().and_then(|c| rows.times.get(c));
        if let Some(kinds) = check_kinds(compiled, view, rows)? {
            self.record_key_kinds(compiled, view, kinds).await?;
        }
        match view.kind {
            Kind::Batch => {
                let mut latest: HashMap<Vec<u8>, (i64, i64, usize)> = HashMap::new();
                for row in 0..rows.n {
                    let Some(parts) = rows.key(view, row) else {
                        continue;
                    };
                    let t = ts[row].unwrap_or(i64::MIN);
                    let c = created.and_then(|c| c[row]).unwrap_or(i64::MIN);
                    let key = encode_key(&parts);
                    if latest
                        .get(&key)
                        .is_none_or(|&(lt, lc, _)| (t, c) >= (lt, lc))
                    {
                        latest.insert(key, (t, c, row));
                    }
                }
                let null = Value::Null;
                let entries: Vec<Entry> = latest
                    .into_iter()
                    .map(|(key, (t, _, row))| Entry {
                        key,
                        event_ts: t,
                        value: encode_row(view.features.iter().map(|f| {
                            (
                                f.name.as_str(),
                                rows.columns.get(&f.name).map_or(&null, |c| &c[row]),
                            )
                        })),
                    })
                    .collect();
                let count = entries.len() as u64;
                let written = self
                    .store()
                    .write_newest(&view.table, entries, Durability::Durable)
                    .await
                    .map_err(online_error)?;
                report.entities_written += written;
                report.kept_newer += count - written.min(count);
            }
            Kind::Stream => {
                let specs: Vec<WindowSpec> =
                    view.aggregations.iter().map(|(_, s)| s.clone()).collect();
                let mut order: Vec<Vec<u8>> = Vec::new();
                let mut events: HashMap<Vec<u8>, Vec<(i64, Vec<Value>)>> = HashMap::new();
                for row in 0..rows.n {
                    let Some(parts) = rows.key(view, row) else {
                        continue;
                    };
                    let key = encode_key(&parts);
                    let values: Vec<Value> = view
                        .aggregations
                        .iter()
                        .map(|(c, _)| rows.columns.get(c).map_or(Value::Null, |v| v[row].clone()))
                        .collect();
                    let e = events.entry(key.clone()).or_insert_with(|| {
                        order.push(key);
                        Vec::new()
                    });
                    e.push((ts[row].unwrap_or(i64::MIN), values));
                }
                let _guard = self.inner.windows.lock().await;
                let got = self
                    .store()
                    .read(&[TableKeys {
                        table: &view.table,
                        keys: &order,
                    }])
                    .await
                    .map_err(online_error)?;
                let mut entries = Vec::with_capacity(order.len());
                for (key, stored) in order.into_iter().zip(got.into_iter().flatten()) {
                    let mut state = match stored {
                        Some(s) => WindowState::decode(&s.value).map_err(online_error)?,
                        None => WindowState::default(),
                    };
                    for (t, values) in events.remove(&key).unwrap_or_default() {
                        if !state.add(&specs, t, &values) {
                            report.events_too_old += 1;
                        }
                    }
                    entries.push(Entry {
                        key,
                        event_ts: state.max_ts,
                        value: state.encode(),
                    });
                }
                report.entities_written += entries.len() as u64;
                self.store()
                    .put(&view.table, entries, Durability::Durable)
                    .await
                    .map_err(online_error)?;
            }
        }
        Ok(())
    }

    /// The Arrow schema of a source's data.
    async fn source_schema(&self, compiled: &Compiled, name: &str) -> Result<SchemaRef> {
        if let Some(s) = compiled
            .schemas
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Ok(s);
        }
        let source = compiled
            .repo()
            .source(name)
            .ok_or_else(|| FeatureError::NotFound(format!("there is no source `{name}`")))?;
        let ctx = self.features().catalog().engine().session()?;
        let (schema, _) = self
            .features()
            .register_source(
                &ctx,
                std::path::Path::new(&compiled.applied.repo_dir),
                source,
            )
            .await
            .map_err(|p| FeatureError::Definitions(vec![p]))?;
        if let Ok(mut m) = compiled.schemas.lock() {
            m.insert(name.to_owned(), schema.clone());
        }
        Ok(schema)
    }

    /// Appends rows to a source's push log: one Parquet segment with the
    /// source's columns (absent ones null), in the source's types.
    async fn append_log(&self, source: &str, schema: &SchemaRef, rows: &Rows) -> Result<usize> {
        if rows.n == 0 {
            return Ok(0);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let name = f.name();
            let array: ArrayRef = if let Some(t) = rows.times.get(name) {
                let values: Vec<Value> = t
                    .iter()
                    .map(|v| v.map_or(Value::Null, Value::Timestamp))
                    .collect();
                convert::values_to_array(&values, &DataType::Timestamp)
                    .map_err(FeatureError::Invalid)?
            } else if let Some(k) = rows.keys.get(name) {
                let values: Vec<Value> = k
                    .iter()
                    .map(|p| match p {
                        Some(KeyPart::Int(i)) => Value::Int64(*i),
                        Some(KeyPart::Str(s)) => Value::String(s.clone()),
                        None => Value::Null,
                    })
                    .collect();
                let t = if values.iter().any(|v| matches!(v, Value::String(_))) {
                    DataType::String
                } else {
                    DataType::Int64
                };
                convert::values_to_array(&values, &t).map_err(FeatureError::Invalid)?
            } else if let Some(v) = rows.columns.get(name) {
                let t = column_type(schema, name)?;
                convert::values_to_array(v, &t).map_err(FeatureError::Invalid)?
            } else {
                datafusion::arrow::array::new_null_array(f.data_type(), rows.n)
            };
            let array = if array.data_type() == f.data_type() {
                array
            } else {
                datafusion::arrow::compute::cast(&array, f.data_type()).map_err(|e| {
                    FeatureError::Invalid(format!(
                        "df.{name}: cannot be stored as the source's {}: {e}",
                        f.data_type()
                    ))
                })?
            };
            columns.push(array);
        }
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| FeatureError::Invalid(format!("df: {e}")))?;
        self.features().append_push_log(source, batch).await?;
        Ok(rows.n)
    }
}

/// Every row's key kinds against the view's (see
/// [`OnlineFeatures::check_key_kinds`]).
fn check_kinds(compiled: &Compiled, view: &OnlineView, rows: &Rows) -> Result<Option<Vec<String>>> {
    let keys: Vec<(usize, Vec<KeyPart>)> = (0..rows.n)
        .filter_map(|r| rows.key(view, r).map(|k| (r, k)))
        .collect();
    OnlineFeatures::check_key_kinds(
        compiled,
        view,
        keys.iter().map(|(r, k)| (*r, k.as_slice())),
        |key, row| format!("df.{key}[{row}]"),
    )
}

/// The declared type a source column's values are read as.
fn column_type(schema: &SchemaRef, name: &str) -> Result<DataType> {
    let f = schema
        .field_with_name(name)
        .map_err(|_| FeatureError::Invalid(format!("the source has no column `{name}`")))?;
    Ok(match f.data_type() {
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 | ArrowType::UInt16 => {
            DataType::Int32
        }
        ArrowType::UInt32 | ArrowType::UInt64 => DataType::Int64,
        ArrowType::Date32 | ArrowType::Date64 => DataType::Timestamp,
        other => DataType::from_column_type(&other.to_string()).unwrap_or(DataType::String),
    })
}
