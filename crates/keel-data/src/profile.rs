//! A version's column profile, computed in one pass of one aggregate query:
//! per column the null count, min and max, and for numbers the mean,
//! standard deviation and quantiles. Counts, nulls, min, max, mean and
//! standard deviation are exact; the distinct count is a HyperLogLog
//! estimate (DataFusion's `approx_distinct`, typically within 2%) and the
//! quantiles come from a t-digest (`approx_percentile_cont`; exact below
//! about 100 distinct values, else close in rank).

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::execution::context::SessionContext;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DataError;
use crate::sql::rows_json;

/// The quantiles a numeric column's profile holds.
pub const QUANTILES: [(&str, f64); 5] = [
    ("p05", 0.05),
    ("p25", 0.25),
    ("p50", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
];

/// A whole version's profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub row_count: i64,
    pub columns: Vec<ColumnProfile>,
}

/// One column's profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nulls: i64,
    pub null_fraction: f64,
    /// Numbers as numbers, everything else as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// The sample standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Estimated number of distinct non-null values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<i64>,
    /// `p05`, `p25`, `p50`, `p75`, `p95` of a numeric column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quantiles: BTreeMap<String, f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Numeric,
    /// Ordered and hashable, profiled as text.
    Ordered,
    Bool,
    /// Nested and other types: nulls only.
    Other,
}

fn kind(t: &DataType) -> Kind {
    use DataType::*;
    match t {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32
        | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => {
            Kind::Numeric
        }
        Utf8 | LargeUtf8 | Utf8View | Date32 | Date64 | Timestamp(..) | Time32(..) | Time64(..) => {
            Kind::Ordered
        }
        Boolean => Kind::Bool,
        Dictionary(_, v) if matches!(v.as_ref(), Utf8 | LargeUtf8) => Kind::Ordered,
        _ => Kind::Other,
    }
}

/// `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Profiles table `table` of `ctx`, whose schema is `schema`.
pub async fn profile(
    ctx: &SessionContext,
    table: &str,
    schema: &Schema,
) -> Result<Profile, DataError> {
    let mut select = vec!["count(*) AS row_count".to_owned()];
    for (i, field) in schema.fields().iter().enumerate() {
        let c = quote_ident(field.name());
        select.push(format!("count({c}) AS n{i}"));
        match kind(field.data_type()) {
            Kind::Numeric => {
                let d = format!("CAST({c} AS DOUBLE)");
                select.push(format!("min({c}) AS min{i}"));
                select.push(format!("max({c}) AS max{i}"));
                select.push(format!("avg({d}) AS mean{i}"));
                select.push(format!("stddev({d}) AS std{i}"));
                // HyperLogLog hashes integers directly; other numbers by
                // their text, which is exact for distinctness.
                let distinct_of = if field.data_type().is_integer() {
                    c.clone()
                } else {
                    format!("CAST({c} AS VARCHAR)")
                };
                select.push(format!("approx_distinct({distinct_of}) AS distinct{i}"));
                for (q, p) in QUANTILES {
                    select.push(format!(
                        "approx_percentile_cont({p}) WITHIN GROUP (ORDER BY {d}) AS {q}_{i}"
                    ));
                }
            }
            Kind::Ordered => {
                select.push(format!("CAST(min({c}) AS VARCHAR) AS min{i}"));
                select.push(format!("CAST(max({c}) AS VARCHAR) AS max{i}"));
                select.push(format!("approx_distinct({c}) AS distinct{i}"));
            }
            Kind::Bool => {
                select.push(format!("CAST(min({c}) AS VARCHAR) AS min{i}"));
                select.push(format!("CAST(max({c}) AS VARCHAR) AS max{i}"));
            }
            Kind::Other => {}
        }
    }
    let sql = format!("SELECT {} FROM {}", select.join(", "), quote_ident(table));
    let batches = ctx.sql(&sql).await?.collect().await?;
    let rows = rows_json(&batches)?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| DataError::Sql("the profile query answered no row".into()))?;
    let int = |k: &str| row.get(k).and_then(Value::as_i64);
    let float = |k: &str| row.get(k).and_then(Value::as_f64);
    let value = |k: &str| row.get(k).filter(|v| !v.is_null()).cloned();
    let row_count = int("row_count").unwrap_or(0);
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let nulls = row_count - int(&format!("n{i}")).unwrap_or(0);
            let mut quantiles = BTreeMap::new();
            for (q, _) in QUANTILES {
                if let Some(v) = float(&format!("{q}_{i}")) {
                    quantiles.insert(q.to_owned(), v);
                }
            }
            ColumnProfile {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nulls,
                null_fraction: if row_count > 0 {
                    nulls as f64 / row_count as f64
                } else {
                    0.0
                },
                min: value(&format!("min{i}")),
                max: value(&format!("max{i}")),
                mean: float(&format!("mean{i}")),
                std: float(&format!("std{i}")),
                // An estimate never above the values there are.
                distinct: int(&format!("distinct{i}")).map(|d| d.min(row_count - nulls)),
                quantiles,
            }
        })
        .collect();
    Ok(Profile { row_count, columns })
}
