//! Reads for the feature server: Feast's `/get-online-features`.
//!
//! The answer is Feast's JSON, byte for byte where Feast is consistent:
//! `{"results":[…],"metadata":{"feature_names":[…]}}`, one result per
//! column (`values`, `statuses`, `event_timestamps`, one entry per entity
//! row): first the request's entity columns that are join keys of the
//! repo (in request order, status `PRESENT`, time `1970-01-01T00:00:00Z`),
//! then the features. Values are written as Feast's server writes them:
//! integers as integers, floats as Python's `repr` (`5.0`, `1e-05`,
//! `1e+16`; float32 widened to float64 first), NaN as `null`, infinities
//! as the strings `"Infinity"`/`"-Infinity"`, timestamps as Unix seconds,
//! bytes as base64, lists as arrays; a missing row is `null` with status
//! `NOT_FOUND` and time `1970-01-01T00:00:00Z`; event times are
//! `YYYY-MM-DDTHH:MM:SSZ`.
//!
//! Where Keel deliberately differs from Feast:
//! * features come in the order requested (a service: in its order);
//!   Feast's order varies between runs;
//! * a row older than its view's ttl is `OUTSIDE_MAX_AGE` with a null
//!   value (Feast's online read ignores the ttl);
//! * bad requests are 400/404 with a JSON object naming the field (Feast
//!   answers 500 or 404 with a JSON string inside JSON), including a join
//!   key of the wrong kind (Feast turns `"1"` into 1 and `true` into 1);
//! * on-demand features are returned with full feature names too (Feast
//!   drops them when mixed with other views' features).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionContext;
use keel_online::codec::{KeyPart, Value, decode_row_as, encode_key};
use keel_online::{Stored, TableKeys};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value as Json;

use super::convert::{self, json_value};
use super::window::WindowState;
use super::{Compiled, Kind, OnlineFeatures, OnlineView, Result, now_micros, online_error};
use crate::FeatureError;
use crate::definition::{DataType, OnDemandFeatureView, View};

/// Feast's `/get-online-features` body.
#[derive(Debug, Clone, Deserialize)]
pub struct OnlineRequest {
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Join keys and request data, column by column, in request order.
    #[serde(deserialize_with = "ordered_columns")]
    pub entities: Vec<(String, Json)>,
    #[serde(default)]
    pub full_feature_names: bool,
}

/// The answer: Feast's JSON, ready to send.
#[derive(Debug, Clone)]
pub struct OnlineResponse {
    pub body: Vec<u8>,
    /// Entity rows answered.
    pub rows: usize,
}

fn ordered_columns<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<(String, Json)>, D::Error> {
    struct Ordered;
    impl<'de> Visitor<'de> for Ordered {
        type Value = Vec<(String, Json)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of columns: {\"user_id\": [1, 2]}")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, Json>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Ordered)
}

/// One output column of the answer.
struct Column {
    name: String,
    values: Vec<Value>,
    statuses: Vec<Status>,
    /// Seconds since the epoch.
    times: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Present,
    NotFound,
    OutsideMaxAge,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Present => "PRESENT",
            Status::NotFound => "NOT_FOUND",
            Status::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// What one view's read found for every entity row: the event time and the
/// values of the view's features in their order, or nothing.
type ViewRows = Vec<Option<(i64, Vec<Value>)>>;

fn invalid(m: String) -> FeatureError {
    FeatureError::Invalid(m)
}

impl OnlineFeatures {
    /// Answers a `/get-online-features` request.
    /// Requests that name a feature service are sampled into the serving
    /// log, for skew checks.
    pub async fn get_online_features(&self, req: &OnlineRequest) -> Result<OnlineResponse> {
        let now = now_micros();
        let answer = self.get_online_features_at(req, now).await?;
        if let Some(service) = &req.feature_service {
            self.log_served(service, now, &req.entities, &answer.body);
        }
        Ok(answer)
    }

    /// Answers as at `now` (microseconds since the epoch): the instant ttls
    /// and stream windows are read at.
    pub async fn get_online_features_at(
        &self,
        req: &OnlineRequest,
        now: i64,
    ) -> Result<OnlineResponse> {
        let compiled = self.compiled().await?;
        let repo = compiled.repo();

        // 1. The features asked for, in order.
        let refs = self.requested(&compiled, req)?;
        let mut out_names: Vec<String> = Vec::with_capacity(refs.len());
        for (view, feature) in &refs {
            let name = if req.full_feature_names {
                format!("{view}__{feature}")
            } else {
                feature.clone()
            };
            if out_names.contains(&name) {
                return Err(invalid(format!(
                    "features: two features are named `{name}`; ask with full_feature_names: true, or ask for one of them"
                )));
            }
            out_names.push(name);
        }

        // 2. The views to read: the requested ones and on-demand sources.
        let mut needed: Vec<&OnlineView> = Vec::new();
        let mut odfvs: Vec<&OnDemandFeatureView> = Vec::new();
        for (view, _) in &refs {
            match repo.view(view) {
                Some(View::OnDemand(o)) => {
                    if !odfvs.iter().any(|x| x.name == o.name) {
                        odfvs.push(o);
                        for s in &o.sources {
                            if let Some(v) = compiled.view(s)
                                && !needed.iter().any(|n| n.name == v.name)
                            {
                                needed.push(v);
                            }
                        }
                    }
                }
                _ => {
                    if let Some(v) = compiled.view(view)
                        && !needed.iter().any(|n| n.name == v.name)
                    {
                        needed.push(v);
                    }
                }
            }
        }

        // 3. Entity rows.
        if req.entities.is_empty() {
            return Err(invalid(
                "entities: give each join key's values, e.g. {\"user_id\": [1, 2]}".into(),
            ));
        }
        let mut rows: Option<(usize, &str)> = None;
        let mut columns: HashMap<&str, &[Json]> = HashMap::new();
        for (name, values) in &req.entities {
            let Json::Array(values) = values else {
                return Err(invalid(format!(
                    "entities.{name}: a column is a list of values, not {}",
                    convert::short(values)
                )));
            };
            match rows {
                Some((n, first)) if n != values.len() => {
                    return Err(invalid(format!(
                        "entities.{name}: has {} values but entities.{first} has {n}; every column needs one value per entity row",
                        values.len()
                    )));
                }
                None => rows = Some((values.len(), name)),
                _ => {}
            }
            columns.insert(name.as_str(), values.as_slice());
        }
        let n = rows.map_or(0, |(n, _)| n);

        // 4. Keys per view, checked against the kinds written.
        let mut parsed: HashMap<&str, Vec<KeyPart>> = HashMap::new();
        let mut view_keys: Vec<Vec<Vec<u8>>> = Vec::with_capacity(needed.len());
        for v in &needed {
            let mut parts: Vec<Vec<KeyPart>> = vec![Vec::with_capacity(v.join_keys.len()); n];
            for (i, k) in v.join_keys.iter().enumerate() {
                let Some(col) = columns.get(k.as_str()) else {
                    return Err(invalid(format!(
                        "entities: no `{k}`, the join key of feature view `{}`; the request has {}",
                        v.name,
                        req.entities
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                if !parsed.contains_key(k.as_str()) {
                    let keys = col
                        .iter()
                        .enumerate()
                        .map(|(r, x)| {
                            request_key(x).map_err(|m| invalid(format!("entities.{k}[{r}]: {m}")))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    parsed.insert(k.as_str(), keys);
                }
                let keys = &parsed[k.as_str()];
                if let Some(kinds) = compiled.key_kinds.get(&v.name)
                    && let Some(kind) = kinds.get(i)
                    && let Some((r, bad)) = keys
                        .iter()
                        .enumerate()
                        .find(|(_, p)| convert::key_kind(p) != kind)
                {
                    return Err(invalid(format!(
                        "entities.{k}[{r}]: {} is {} {}, but the join key `{k}` of feature view `{}` holds {kind}s",
                        key_text(bad),
                        if convert::key_kind(bad) == "integer" {
                            "an"
                        } else {
                            "a"
                        },
                        convert::key_kind(bad),
                        v.name
                    )));
                }
                for (row, p) in keys.iter().enumerate() {
                    parts[row].push(p.clone());
                }
                let _ = i;
            }
            view_keys.push(parts.iter().map(|p| encode_key(p)).collect());
        }

        // 5. One read for every view.
        let reads: Vec<TableKeys<'_>> = needed
            .iter()
            .zip(&view_keys)
            .map(|(v, keys)| TableKeys {
                table: &v.table,
                keys,
            })
            .collect();
        let got = self.store().read(&reads).await.map_err(online_error)?;
        let mut found: HashMap<&str, ViewRows> = HashMap::new();
        for (v, stored) in needed.iter().zip(got) {
            found.insert(v.name.as_str(), decode_view(v, stored, now)?);
        }

        // 6. On-demand views, over the fetched features and request data.
        let mut derived: HashMap<(String, String), Vec<Value>> = HashMap::new();
        for o in &odfvs {
            let values = self
                .on_demand(&compiled, o, &found, &columns, n, now)
                .await?;
            for (f, v) in o.features.iter().zip(values) {
                derived.insert((o.name.clone(), f.name.clone()), v);
            }
        }

        // 7. The answer.
        let mut out: Vec<Column> = Vec::new();
        let join_keys: Vec<&str> = repo
            .entities
            .iter()
            .flat_map(|e| e.join_keys.iter().map(String::as_str))
            .collect();
        for (name, _) in &req.entities {
            if !join_keys.contains(&name.as_str()) {
                continue;
            }
            let values = match parsed.get(name.as_str()) {
                Some(keys) => keys.iter().map(key_value).collect(),
                None => columns[name.as_str()]
                    .iter()
                    .map(|x| request_key(x).map(|k| key_value(&k)).unwrap_or(Value::Null))
                    .collect(),
            };
            out.push(Column {
                name: name.clone(),
                values,
                statuses: vec![Status::Present; n],
                times: vec![0; n],
            });
        }
        for ((view, feature), name) in refs.iter().zip(out_names) {
            if let Some(values) = derived.remove(&(view.clone(), feature.clone())) {
                out.push(Column {
                    name,
                    values,
                    statuses: vec![Status::Present; n],
                    times: vec![0; n],
                });
                continue;
            }
            let Some(v) = compiled.view(view) else {
                continue;
            };
            let rows = &found[v.name.as_str()];
            let at = v.features.iter().position(|f| f.name == *feature);
            let mut col = Column {
                name,
                values: Vec::with_capacity(n),
                statuses: Vec::with_capacity(n),
                times: Vec::with_capacity(n),
            };
            for row in rows {
                match row {
                    None => {
                        col.values.push(Value::Null);
                        col.statuses.push(Status::NotFound);
                        col.times.push(0);
                    }
                    Some((ts, values)) => {
                        let expired = expired(v, *ts, now);
                        let value = at
                            .and_then(|i| values.get(i))
                            .cloned()
                            .unwrap_or(Value::Null);
                        col.values.push(if expired { Value::Null } else { value });
                        col.statuses.push(if expired {
                            Status::OutsideMaxAge
                        } else {
                            Status::Present
                        });
                        col.times.push(ts.div_euclid(1_000_000));
                    }
                }
            }
            out.push(col);
        }
        Ok(OnlineResponse {
            body: render(&out),
            rows: n,
        })
    }

    /// The (view, feature) pairs a request asks for, in order.
    pub(crate) fn requested(
        &self,
        compiled: &Compiled,
        req: &OnlineRequest,
    ) -> Result<Vec<(String, String)>> {
        let repo = compiled.repo();
        if let Some(service) = &req.feature_service {
            return crate::store::training::service_features(repo, service, "feature_service");
        }
        if req.features.is_empty() {
            return Err(invalid(
                "features: name the features (\"view:feature\") or a feature_service".into(),
            ));
        }
        let mut refs = Vec::new();
        for (i, text) in req.features.iter().enumerate() {
            let Some((view, feature)) = text.split_once(':') else {
                return Err(invalid(format!(
                    "features[{i}]: `{text}` is not VIEW:FEATURE (e.g. user_activity:clicks)"
                )));
            };
            let Some(v) = repo.view(view) else {
                return Err(super::unknown_view(repo, view, &format!("features[{i}]")));
            };
            let names = v.feature_names();
            if !names.contains(&feature) {
                let mut budget = keel_core::suggest::BUDGET;
                let hint = match keel_core::suggest::closest(feature, &names, &mut budget) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("its features are {}", names.join(", ")),
                };
                return Err(FeatureError::NotFound(format!(
                    "features[{i}]: feature view `{view}` has no feature `{feature}`; {hint}"
                )));
            }
            refs.push((view.to_owned(), feature.to_owned()));
        }
        Ok(refs)
    }

    /// The values of an on-demand view's features for every row.
    async fn on_demand(
        &self,
        compiled: &Compiled,
        o: &OnDemandFeatureView,
        found: &HashMap<&str, ViewRows>,
        request: &HashMap<&str, &[Json]>,
        n: usize,
        now: i64,
    ) -> Result<Vec<Vec<Value>>> {
        let repo = compiled.repo();
        let mut inputs: Vec<(String, ArrayRef)> = Vec::new();
        for s in &o.sources {
            if let Some(rows) = found.get(s.as_str()) {
                let Some(v) = compiled.view(s) else { continue };
                for (fi, f) in v.features.iter().enumerate() {
                    // What the view serves: nothing past its ttl.
                    let values: Vec<Value> = rows
                        .iter()
                        .map(|r| {
                            r.as_ref()
                                .filter(|(ts, _)| !expired(v, *ts, now))
                                .and_then(|(_, vals)| vals.get(fi))
                                .cloned()
                                .unwrap_or(Value::Null)
                        })
                        .collect();
                    let dtype = match v.kind {
                        Kind::Batch => f.dtype.clone(),
                        Kind::Stream => infer_type(&values, &v.aggregations[fi].1),
                    };
                    let array = convert::values_to_array(&values, &dtype).map_err(invalid)?;
                    inputs.push((format!("{}__{}", v.name, f.name), array));
                }
            } else if let Some(rs) = repo.request_source(s) {
                for f in &rs.schema {
                    inputs.push((f.name.clone(), request_column(request, f, n, &o.name)?));
                }
            }
        }
        for f in &o.request_schema {
            inputs.push((f.name.clone(), request_column(request, f, n, &o.name)?));
        }
        let batch = convert::batch(inputs).map_err(invalid)?;
        let df_schema = DFSchema::try_from(batch.schema().as_ref().clone())
            .map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        let ctx: &SessionContext = &self.odfv_context();
        let mut out = Vec::with_capacity(o.features.len());
        for f in &o.features {
            let expr = ctx.parse_sql_expr(&f.expression, &df_schema).map_err(|e| {
                invalid(format!(
                    "on-demand feature view `{}`, feature `{}`: {}",
                    o.name,
                    f.name,
                    keel_data::DataError::from(e)
                ))
            })?;
            let target = convert::arrow_type(&f.dtype);
            let expr = datafusion::prelude::cast(expr, target);
            let physical = ctx.create_physical_expr(expr, &df_schema).map_err(|e| {
                invalid(format!(
                    "on-demand feature view `{}`, feature `{}`: {}",
                    o.name,
                    f.name,
                    keel_data::DataError::from(e)
                ))
            })?;
            let array = physical
                .evaluate(&batch)
                .and_then(|c| c.into_array(n))
                .map_err(|e| {
                    invalid(format!(
                        "on-demand feature view `{}`, feature `{}`: {}",
                        o.name,
                        f.name,
                        keel_data::DataError::from(e)
                    ))
                })?;
            out.push((0..n).map(|i| convert::cell(array.as_ref(), i)).collect());
        }
        Ok(out)
    }

    fn odfv_context(&self) -> Arc<SessionContext> {
        static CTX: std::sync::OnceLock<Arc<SessionContext>> = std::sync::OnceLock::new();
        CTX.get_or_init(|| Arc::new(SessionContext::new())).clone()
    }
}

/// Whether a batch view's row is older than the view's ttl at `now`.
fn expired(view: &OnlineView, ts: i64, now: i64) -> bool {
    view.kind == Kind::Batch && view.ttl_us > 0 && now.saturating_sub(ts) > view.ttl_us
}

/// A request-data column of an on-demand view.
fn request_column(
    request: &HashMap<&str, &[Json]>,
    f: &crate::definition::Field,
    n: usize,
    view: &str,
) -> Result<ArrayRef> {
    let Some(col) = request.get(f.name.as_str()) else {
        return Err(invalid(format!(
            "entities: no `{}`, request data that on-demand feature view `{view}` needs",
            f.name
        )));
    };
    let values = col
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, v)| {
            json_value(v, &f.dtype).map_err(|m| invalid(format!("entities.{}[{i}]: {m}", f.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    convert::values_to_array(&values, &f.dtype).map_err(invalid)
}

/// The type of a stream feature's values, for on-demand views.
fn infer_type(values: &[Value], spec: &super::window::WindowSpec) -> DataType {
    use crate::definition::AggFunction;
    if spec.function == AggFunction::Count {
        return DataType::Int64;
    }
    for v in values {
        match v {
            Value::Int32(_) => return DataType::Int32,
            Value::Int64(_) => return DataType::Int64,
            Value::Float32(_) => return DataType::Float32,
            Value::Float64(_) => return DataType::Float64,
            Value::String(_) => return DataType::String,
            Value::Bool(_) => return DataType::Bool,
            Value::Timestamp(_) => return DataType::Timestamp,
            _ => {}
        }
    }
    DataType::Float64
}

/// A join key from request JSON: integers (also written `1.0`) or
/// strings.
fn request_key(v: &Json) -> std::result::Result<KeyPart, String> {
    if let Json::Number(n) = v
        && n.as_i64().is_none()
        && let Some(f) = n.as_f64()
        && f.fract() == 0.0
        && f.abs() < 9.0e15
    {
        return Ok(KeyPart::Int(f as i64));
    }
    convert::json_key(v)
}

fn key_value(k: &KeyPart) -> Value {
    match k {
        KeyPart::Int(i) => Value::Int64(*i),
        KeyPart::Str(s) => Value::String(s.clone()),
    }
}

fn key_text(k: &KeyPart) -> String {
    match k {
        KeyPart::Int(i) => i.to_string(),
        KeyPart::Str(s) => format!("{s:?}"),
    }
}

/// Decodes one view's stored values.
fn decode_view(view: &OnlineView, stored: Vec<Option<Stored>>, now: i64) -> Result<ViewRows> {
    let specs: Vec<super::window::WindowSpec> =
        view.aggregations.iter().map(|(_, s)| s.clone()).collect();
    let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
    stored
        .into_iter()
        .map(|s| {
            let Some(s) = s else { return Ok(None) };
            match view.kind {
                Kind::Batch => Ok(Some((
                    s.event_ts,
                    decode_row_as(&s.value, &names).map_err(online_error)?,
                ))),
                Kind::Stream => {
                    let state = WindowState::decode(&s.value).map_err(online_error)?;
                    Ok(Some((state.max_ts, state.read(&specs, now))))
                }
            }
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of microseconds since the epoch.
pub fn rfc3339(micros: i64) -> String {
    let mut s = String::new();
    write_time(&mut s, micros.div_euclid(1_000_000));
    s
}

fn write_time(out: &mut String, secs: i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = keel_core::time::civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Feast's response JSON.
fn render(columns: &[Column]) -> Vec<u8> {
    let mut s = String::with_capacity(
        64 + columns.len() * 64 * columns.first().map_or(1, |c| c.values.len()),
    );
    let mut times: HashMap<i64, String> = HashMap::new();
    s.push_str("{\"results\":[");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"values\":[");
        for (j, v) in c.values.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            write_value(&mut s, v);
        }
        s.push_str("],\"statuses\":[");
        for (j, st) in c.statuses.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            s.push('"');
            s.push_str(st.as_str());
            s.push('"');
        }
        s.push_str("],\"event_timestamps\":[");
        for (j, t) in c.times.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            // The features of one view share their rows' times: format
            // each distinct second once.
            let text = times.entry(*t).or_insert_with(|| {
                let mut x = String::with_capacity(22);
                x.push('"');
                write_time(&mut x, *t);
                x.push('"');
                x
            });
            s.push_str(text);
        }
        s.push_str("]}");
    }
    s.push_str("],\"metadata\":{\"feature_names\":[");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_string(&mut s, &c.name);
    }
    s.push_str("]}}");
    s.into_bytes()
}

fn write_string(out: &mut String, text: &str) {
    // serde_json escapes as Python's json.dumps(ensure_ascii=False) does.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

/// One value as Feast's server writes it.
pub(crate) fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int32(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float32(f) => write_float(out, f64::from(*f)),
        Value::Float64(f) => write_float(out, *f),
        Value::String(s) => write_string(out, s),
        Value::Bytes(b) => {
            out.push('"');
            out.push_str(&base64(b));
            out.push('"');
        }
        Value::Timestamp(us) => {
            let _ = write!(out, "{}", us.div_euclid(1_000_000));
        }
        Value::List(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, x);
            }
            out.push(']');
        }
    }
}

/// A float as Python's `repr`: the shortest digits that round-trip, fixed
/// notation for decimal exponents from -4 to 15 (with `.0` when whole),
/// else `d.ddde±XX`.
pub fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("null");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // Shortest round-trip digits, formatted on the stack.
    let mut buf = [0u8; 40];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{:e}", f.abs()));
    let len = cursor.position() as usize;
    let sci = std::str::from_utf8(&buf[..len]).unwrap_or("0e0");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digit_buf = [0u8; 24];
    let mut nd_len = 0;
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        if nd_len < digit_buf.len() {
            digit_buf[nd_len] = b;
            nd_len += 1;
        }
    }
    let digits = std::str::from_utf8(&digit_buf[..nd_len]).unwrap_or("0");
    if f < 0.0 {
        out.push('-');
    }
    // Python's decpt: the value is 0.DIGITS x 10^decpt.
    let decpt = exp + 1;
    if (-3..=16).contains(&decpt) {
        let nd = digits.len() as i32;
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(digits);
        } else if decpt >= nd {
            out.push_str(digits);
            for _ in 0..(decpt - nd) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(f: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, f);
        s
    }

    #[test]
    fn floats_are_written_as_python_repr_writes_them() {
        // The values and texts Feast's server answered for them.
        let cases = [
            (5.0, "5.0"),
            (0.30000000000000004, "0.30000000000000004"),
            (1e-05, "1e-05"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (-0.0, "-0.0"),
            (1.5e300, "1.5e+300"),
            (2.5e-300, "2.5e-300"),
            (0.0001, "0.0001"),
            (100.0, "100.0"),
            (f64::from(1.975f32), "1.975000023841858"),
            (58.91, "58.91"),
            (-1234.5, "-1234.5"),
            (f64::NAN, "null"),
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ];
        for (f, want) in cases {
            assert_eq!(py(f), want, "{f:e}");
        }
    }

    #[test]
    fn times_and_bytes() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_929_164_999_999), "2026-11-29T05:12:44Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn requests_keep_the_order_of_their_entity_columns() {
        let r: OnlineRequest = serde_json::from_str(
            r#"{"entities": {"user_id": [1], "item_id": ["a"], "a": [2]}, "features": ["v:f"]}"#,
        )
        .unwrap();
        let names: Vec<&str> = r.entities.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["user_id", "item_id", "a"]);
    }
}
