//! Values between Arrow columns, request JSON and the online store's
//! [`Value`]s.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Field, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType,
};
use keel_online::codec::{KeyPart, Value};
use serde_json::Value as Json;

use crate::definition::DataType;

/// The Arrow type a declared dtype is read as.
pub fn arrow_type(t: &DataType) -> ArrowType {
    match t {
        DataType::Int32 => ArrowType::Int32,
        DataType::Int64 => ArrowType::Int64,
        DataType::Float32 => ArrowType::Float32,
        DataType::Float64 => ArrowType::Float64,
        DataType::String => ArrowType::Utf8,
        DataType::Bool => ArrowType::Boolean,
        DataType::Bytes => ArrowType::Binary,
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::List(item) => {
            ArrowType::List(Arc::new(Field::new("item", arrow_type(item), true)))
        }
    }
}

/// `array` cast to the declared type; a value that does not fit is an
/// error, never a silent null.
pub fn cast_column(array: &ArrayRef, t: &DataType) -> Result<ArrayRef, String> {
    let target = arrow_type(t);
    if array.data_type() == &target {
        return Ok(array.clone());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(array, &target, &options).map_err(|e| e.to_string())
}

/// A column's event times in microseconds (null: `None`).
pub fn micros(array: &ArrayRef) -> Result<Vec<Option<i64>>, String> {
    let target = ArrowType::Timestamp(TimeUnit::Microsecond, None);
    let cast = match array.data_type() {
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => array.clone(),
        ArrowType::Timestamp(_, _) | ArrowType::Date32 | ArrowType::Date64 => {
            cast_with_options(array, &target, &CastOptions::default()).map_err(|e| e.to_string())?
        }
        other => return Err(format!("a timestamp column, not {other}")),
    };
    let a = cast.as_primitive::<TimestampMicrosecondType>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

/// The value at `row` of a column already cast by [`cast_column`].
pub fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        ArrowType::Int32 => Value::Int32(array.as_primitive::<Int32Type>().value(row)),
        ArrowType::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(row)),
        ArrowType::Float32 => Value::Float32(array.as_primitive::<Float32Type>().value(row)),
        ArrowType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(row)),
        ArrowType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        ArrowType::Boolean => Value::Bool(array.as_boolean().value(row)),
        ArrowType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::Timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        ArrowType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Value::List((0..items.len()).map(|i| cell(&items, i)).collect())
        }
        _ => Value::Null,
    }
}

/// A join key column as key parts: integers of any width, or strings.
pub fn key_column(array: &ArrayRef, name: &str) -> Result<Vec<Option<KeyPart>>, String> {
    match array.data_type() {
        ArrowType::Int8
        | ArrowType::Int16
        | ArrowType::Int32
        | ArrowType::Int64
        | ArrowType::UInt8
        | ArrowType::UInt16
        | ArrowType::UInt32
        | ArrowType::UInt64 => {
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            let cast = cast_with_options(array, &ArrowType::Int64, &options)
                .map_err(|e| format!("join key `{name}`: {e}"))?;
            let a = cast.as_primitive::<Int64Type>();
            Ok((0..a.len())
                .map(|i| a.is_valid(i).then(|| KeyPart::Int(a.value(i))))
                .collect())
        }
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
            let cast = cast_with_options(array, &ArrowType::Utf8, &CastOptions::default())
                .map_err(|e| format!("join key `{name}`: {e}"))?;
            let a: &StringArray = cast.as_string::<i32>();
            Ok((0..a.len())
                .map(|i| a.is_valid(i).then(|| KeyPart::Str(a.value(i).to_owned())))
                .collect())
        }
        other => Err(format!(
            "join key `{name}` is {other}: join keys must be integers or strings"
        )),
    }
}

/// The kind of a key part, as messages and the key-type record name it.
pub fn key_kind(part: &KeyPart) -> &'static str {
    match part {
        KeyPart::Int(_) => "integer",
        KeyPart::Str(_) => "string",
    }
}

/// A join key value from request JSON.
pub fn json_key(v: &Json) -> Result<KeyPart, String> {
    match v {
        Json::Number(n) => n
            .as_i64()
            .map(KeyPart::Int)
            .ok_or_else(|| format!("{n} is not an integer; join keys are integers or strings")),
        Json::String(s) => Ok(KeyPart::Str(s.clone())),
        other => Err(format!(
            "{} is not a join key; join keys are integers or strings",
            short(other)
        )),
    }
}

/// A value of a declared type from JSON: numbers for numbers (integers
/// exactly), strings, booleans, timestamps as RFC 3339 strings or Unix
/// seconds, bytes as strings (their UTF-8), lists as arrays; `null` for a
/// missing value.
pub fn json_value(v: &Json, t: &DataType) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let bad = || format!("{} is not a {t}", short(v));
    Ok(match t {
        DataType::Int32 => {
            let n = v.as_i64().ok_or_else(bad)?;
            Value::Int32(i32::try_from(n).map_err(|_| format!("{n} does not fit in int32"))?)
        }
        DataType::Int64 => Value::Int64(v.as_i64().ok_or_else(bad)?),
        DataType::Float32 => Value::Float32(v.as_f64().ok_or_else(bad)? as f32),
        DataType::Float64 => Value::Float64(v.as_f64().ok_or_else(bad)?),
        DataType::String => Value::String(v.as_str().ok_or_else(bad)?.to_owned()),
        DataType::Bool => Value::Bool(v.as_bool().ok_or_else(bad)?),
        DataType::Bytes => Value::Bytes(v.as_str().ok_or_else(bad)?.as_bytes().to_vec()),
        DataType::Timestamp => Value::Timestamp(json_time(v)?),
        DataType::List(item) => Value::List(
            v.as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|x| json_value(x, item))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A time from JSON in microseconds: an RFC 3339 / ISO 8601 string (no
/// zone: UTC) or a number of Unix seconds.
pub fn json_time(v: &Json) -> Result<i64, String> {
    match v {
        Json::String(s) => parse_time(s),
        Json::Number(n) => n
            .as_f64()
            .map(|s| (s * 1e6).round() as i64)
            .ok_or_else(|| format!("{n} is not a time")),
        other => Err(format!(
            "{} is not a time: write an RFC 3339 string (2026-01-31T12:00:00Z) or Unix seconds",
            short(other)
        )),
    }
}

/// An event or created time of a pushed row, in microseconds: an RFC 3339
/// string, or a number of nanoseconds since the epoch (what Feast's push
/// reads a number as: pandas' default unit).
pub fn json_event_time(v: &Json) -> Result<i64, String> {
    match v {
        Json::Number(n) => n
            .as_i64()
            .map(|ns| ns.div_euclid(1000))
            .or_else(|| n.as_f64().map(|ns| (ns / 1000.0).floor() as i64))
            .ok_or_else(|| format!("{n} is not a time")),
        other => json_time(other).map_err(|_| {
            format!(
                "{} is not a time: write an RFC 3339 string (2026-01-31T12:00:00Z) or nanoseconds since the epoch",
                short(other)
            )
        }),
    }
}

/// Parses `2026-01-31T12:00:00Z`, `2026-01-31 12:00:00.5+01:00`,
/// `2026-01-31`: microseconds since the epoch, UTC when no zone is given.
pub fn parse_time(s: &str) -> Result<i64, String> {
    datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(s.trim())
        .map(|ns| ns.div_euclid(1000))
        .map_err(|_| {
            format!("`{s}` is not a time: write RFC 3339 (2026-01-31T12:00:00Z) or a date")
        })
}

/// A value as short text for messages.
pub fn short(v: &Json) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// A one-row-per-value Arrow column of a declared type from values (for
/// the push log and on-demand views).
pub fn values_to_array(values: &[Value], t: &DataType) -> Result<ArrayRef, String> {
    use datafusion::arrow::array::{
        BinaryArray, Float32Array, Float64Array, Int32Array, Int64Array, ListBuilder,
        TimestampMicrosecondArray, make_builder,
    };
    let f = |v: &Value| match v {
        Value::Float64(x) => Some(*x),
        Value::Float32(x) => Some(f64::from(*x)),
        Value::Int64(x) => Some(*x as f64),
        Value::Int32(x) => Some(f64::from(*x)),
        _ => None,
    };
    let i = |v: &Value| match v {
        Value::Int64(x) | Value::Timestamp(x) => Some(*x),
        Value::Int32(x) => Some(i64::from(*x)),
        _ => None,
    };
    Ok(match t {
        DataType::Int32 => Arc::new(
            values
                .iter()
                .map(|v| i(v).and_then(|x| i32::try_from(x).ok()))
                .collect::<Int32Array>(),
        ),
        DataType::Int64 => Arc::new(values.iter().map(i).collect::<Int64Array>()),
        DataType::Float32 => Arc::new(
            values
                .iter()
                .map(|v| f(v).map(|x| x as f32))
                .collect::<Float32Array>(),
        ),
        DataType::Float64 => Arc::new(values.iter().map(f).collect::<Float64Array>()),
        DataType::String => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        DataType::Bool => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        DataType::Bytes => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Value::Bytes(b) => Some(b.as_slice()),
                    _ => None,
                })
                .collect::<BinaryArray>(),
        ),
        DataType::Timestamp => Arc::new(
            values
                .iter()
                .map(i)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        DataType::List(item) => {
            let item_type = arrow_type(item);
            let mut builder = ListBuilder::new(make_builder(&item_type, 0))
                .with_field(Arc::new(Field::new("item", item_type, true)));
            for v in values {
                match v {
                    Value::List(items) => {
                        let child = values_to_array(items, item)?;
                        append_items(builder.values(), &child)?;
                        builder.append(true);
                    }
                    _ => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
    })
}

fn append_items(
    builder: &mut Box<dyn datafusion::arrow::array::ArrayBuilder>,
    items: &ArrayRef,
) -> Result<(), String> {
    use datafusion::arrow::array::{
        BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
        StringBuilder, TimestampMicrosecondBuilder,
    };
    macro_rules! copy {
        ($builder:ty, $get:expr) => {{
            let b = builder
                .as_any_mut()
                .downcast_mut::<$builder>()
                .ok_or("list item builder of another type")?;
            for i in 0..items.len() {
                if items.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value($get(i));
                }
            }
        }};
    }
    match items.data_type() {
        ArrowType::Int32 => copy!(Int32Builder, |i| items.as_primitive::<Int32Type>().value(i)),
        ArrowType::Int64 => copy!(Int64Builder, |i| items.as_primitive::<Int64Type>().value(i)),
        ArrowType::Float32 => {
            copy!(Float32Builder, |i| items
                .as_primitive::<Float32Type>()
                .value(i))
        }
        ArrowType::Float64 => {
            copy!(Float64Builder, |i| items
                .as_primitive::<Float64Type>()
                .value(i))
        }
        ArrowType::Utf8 => copy!(StringBuilder, |i| items.as_string::<i32>().value(i)),
        ArrowType::Boolean => copy!(BooleanBuilder, |i| items.as_boolean().value(i)),
        ArrowType::Binary => copy!(BinaryBuilder, |i| items.as_binary::<i32>().value(i)),
        ArrowType::Timestamp(_, _) => copy!(TimestampMicrosecondBuilder, |i| items
            .as_primitive::<TimestampMicrosecondType>()
            .value(i)),
        other => return Err(format!("lists of {other}")),
    }
    Ok(())
}

/// A record batch of named columns (all the same length).
pub fn batch(columns: Vec<(String, ArrayRef)>) -> Result<RecordBatch, String> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(n.clone(), a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_and_without_zones() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert_eq!(parse_time("1970-01-01 00:00:01").unwrap(), 1_000_000);
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00").unwrap(), 1_000_000);
        assert_eq!(json_time(&serde_json::json!(1.5)).unwrap(), 1_500_000);
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn json_values_keep_their_type_or_say_why_not() {
        assert_eq!(
            json_value(&serde_json::json!(3), &DataType::Int32).unwrap(),
            Value::Int32(3)
        );
        assert!(
            json_value(&serde_json::json!("x"), &DataType::Int64)
                .unwrap_err()
                .contains("is not a int64")
        );
        assert!(json_value(&serde_json::json!(1_i64 << 40), &DataType::Int32).is_err());
        assert!(json_key(&serde_json::json!(1.5)).is_err());
        let list = DataType::List(Box::new(DataType::Float64));
        let v = json_value(&serde_json::json!([1.0, null]), &list).unwrap();
        assert_eq!(v, Value::List(vec![Value::Float64(1.0), Value::Null]));
        let a = values_to_array(&[v, Value::Null], &list).unwrap();
        assert_eq!(
            cell(&a, 0),
            Value::List(vec![Value::Float64(1.0), Value::Null])
        );
        assert_eq!(cell(&a, 1), Value::Null);
    }
}
