//! Columns read from a Parquet file one at a time, so a drift report over
//! millions of rows holds two columns in memory, never the table.
//!
//! A column is read as what drift statistics need: the finite numbers of a
//! numeric column (nulls, NaN and ±inf counted, then dropped, as Evidently
//! drops them), or the category codes of a text, boolean or dictionary
//! column against a [`Dictionary`] shared by reference and current data.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use crate::MonitorError;

/// How a column's type reads for drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Floating-point numbers.
    Float,
    /// Integers: numerical, or categorical when they take few values.
    Integer,
    /// Strings, booleans, dictionary-encoded values.
    Text,
}

/// An opened Parquet file, on disk or in memory: its schema, with the
/// metadata kept for every column read.
pub struct ParquetTable {
    /// How errors name it: the path, or what the bytes are.
    name: String,
    source: Source,
    metadata: ArrowReaderMetadata,
}

enum Source {
    File(PathBuf),
    Memory(bytes::Bytes),
}

/// One column of a table as drift needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// The finite values, in file order.
    Numbers(Vec<f64>),
    /// One code per present value, into the shared dictionary.
    Codes(Vec<u32>),
}

/// What was dropped from a column before the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    /// Nulls (and NaN in numeric columns).
    pub nulls: u64,
    /// ±inf in numeric columns.
    pub infinite: u64,
}

/// Category strings to codes, shared by the reference and current columns.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    codes: HashMap<String, u32>,
    values: Vec<String>,
}

impl Dictionary {
    pub fn code(&mut self, value: &str) -> u32 {
        if let Some(c) = self.codes.get(value) {
            return *c;
        }
        let c = self.values.len() as u32;
        self.codes.insert(value.to_string(), c);
        self.values.push(value.to_string());
        c
    }
    pub fn value(&self, code: u32) -> &str {
        self.values.get(code as usize).map_or("", |s| s.as_str())
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl ParquetTable {
    pub fn open(path: &Path) -> Result<Self, MonitorError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| MonitorError::Io {
            path: name.clone(),
            message: e.to_string(),
        })?;
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .map_err(|e| parquet_error(&name, e))?;
        Ok(Self {
            name,
            source: Source::File(path.to_path_buf()),
            metadata,
        })
    }

    /// A Parquet file held in memory (a log window, an uploaded
    /// reference); `name` says what it is in errors.
    pub fn from_bytes(name: &str, bytes: bytes::Bytes) -> Result<Self, MonitorError> {
        let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())
            .map_err(|e| parquet_error(name, e))?;
        Ok(Self {
            name: name.to_string(),
            source: Source::Memory(bytes),
            metadata,
        })
    }

    pub fn rows(&self) -> u64 {
        self.metadata.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// The top-level columns with a storage drift can read; other types
    /// (timestamps, lists, structs, binary) are returned apart, by name.
    pub fn columns(&self) -> (Vec<(String, Storage)>, Vec<String>) {
        let mut readable = Vec::new();
        let mut other = Vec::new();
        for field in self.metadata.schema().fields() {
            match storage_of(field.data_type()) {
                Some(s) => readable.push((field.name().clone(), s)),
                None => other.push(field.name().clone()),
            }
        }
        (readable, other)
    }

    /// Reads one column: finite numbers for [`Storage::Float`] and
    /// [`Storage::Integer`] read numerically, codes otherwise (integers
    /// read as text are coded by their decimal form).
    pub fn read(
        &self,
        column: &str,
        as_codes: bool,
        dictionary: &mut Dictionary,
    ) -> Result<(ColumnValues, Missing), MonitorError> {
        let index = self
            .metadata
            .schema()
            .fields()
            .iter()
            .position(|f| f.name() == column)
            .ok_or_else(|| MonitorError::MissingColumn {
                path: self.name.clone(),
                column: column.to_string(),
            })?;
        let mask = ProjectionMask::roots(
            self.metadata.metadata().file_metadata().schema_descr(),
            [index],
        );
        let reader = match &self.source {
            Source::File(path) => {
                let file = File::open(path).map_err(|e| MonitorError::Io {
                    path: self.name.clone(),
                    message: e.to_string(),
                })?;
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                    .with_projection(mask)
                    .with_batch_size(65_536)
                    .build()
            }
            Source::Memory(bytes) => ParquetRecordBatchReaderBuilder::new_with_metadata(
                bytes.clone(),
                self.metadata.clone(),
            )
            .with_projection(mask)
            .with_batch_size(65_536)
            .build(),
        }
        .map_err(|e| parquet_error(&self.name, e))?;
        let mut missing = Missing::default();
        let mut values = if as_codes {
            ColumnValues::Codes(Vec::with_capacity(self.rows() as usize))
        } else {
            ColumnValues::Numbers(Vec::with_capacity(self.rows() as usize))
        };
        for batch in reader {
            let batch = batch.map_err(|e| parquet_error(&self.name, e))?;
            let array = batch.column(0);
            match &mut values {
                ColumnValues::Numbers(out) => push_numbers(array, out, &mut missing)
                    .map_err(|message| self.type_error(column, message))?,
                ColumnValues::Codes(out) => push_codes(array, out, dictionary, &mut missing)
                    .map_err(|message| self.type_error(column, message))?,
            }
        }
        Ok((values, missing))
    }

    fn type_error(&self, column: &str, message: String) -> MonitorError {
        MonitorError::ColumnType {
            path: self.name.clone(),
            column: column.to_string(),
            message,
        }
    }
}

fn parquet_error(name: &str, e: impl std::fmt::Display) -> MonitorError {
    MonitorError::Parquet {
        path: name.to_string(),
        message: e.to_string(),
    }
}

fn storage_of(t: &DataType) -> Option<Storage> {
    Some(match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Storage::Float,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Storage::Integer,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => {
            Storage::Text
        }
        DataType::Dictionary(_, value) => match storage_of(value) {
            Some(_) => Storage::Text,
            None => return None,
        },
        _ => return None,
    })
}

fn push_numbers(array: &ArrayRef, out: &mut Vec<f64>, missing: &mut Missing) -> Result<(), String> {
    macro_rules! floats {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            let nulls = a.null_count();
            missing.nulls += nulls as u64;
            let push = |x: f64, out: &mut Vec<f64>, missing: &mut Missing| {
                if x.is_finite() {
                    out.push(x);
                } else if x.is_nan() {
                    missing.nulls += 1;
                } else {
                    missing.infinite += 1;
                }
            };
            if nulls == 0 {
                for x in a.values().iter() {
                    push(*x as f64, out, missing);
                }
            } else {
                for x in a.iter().flatten() {
                    push(x as f64, out, missing);
                }
            }
        }};
    }
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            missing.nulls += a.null_count() as u64;
            if a.null_count() == 0 {
                out.extend(a.values().iter().map(|x| *x as f64));
            } else {
                out.extend(a.iter().flatten().map(|x| x as f64));
            }
        }};
    }
    match array.data_type() {
        DataType::Float64 => floats!(Float64Type),
        DataType::Float32 => floats!(Float32Type),
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        other => return Err(format!("{other} is not a numeric type")),
    }
    Ok(())
}

fn push_codes(
    array: &ArrayRef,
    out: &mut Vec<u32>,
    dictionary: &mut Dictionary,
    missing: &mut Missing,
) -> Result<(), String> {
    missing.nulls += array.null_count() as u64;
    match array.data_type() {
        DataType::Utf8 => out.extend(
            array
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(|s| dictionary.code(s)),
        ),
        DataType::LargeUtf8 => out.extend(
            array
                .as_string::<i64>()
                .iter()
                .flatten()
                .map(|s| dictionary.code(s)),
        ),
        DataType::Utf8View => out.extend(
            array
                .as_string_view()
                .iter()
                .flatten()
                .map(|s| dictionary.code(s)),
        ),
        DataType::Boolean => out.extend(
            array
                .as_boolean()
                .iter()
                .flatten()
                .map(|b| dictionary.code(if b { "True" } else { "False" })),
        ),
        DataType::Dictionary(_, _) => {
            let a = array.as_any_dictionary();
            let values = a.values();
            // Code each dictionary entry once, then map the keys.
            let mut local = Vec::new();
            let mut entry_missing = Missing::default();
            push_codes_or_numbers(values, &mut local, dictionary, &mut entry_missing)?;
            let keys = a.normalized_keys();
            let is_valid = |i: usize| array.is_valid(i);
            for (i, k) in keys.iter().enumerate() {
                if is_valid(i)
                    && let Some(code) = local.get(*k).copied().flatten()
                {
                    out.push(code);
                }
            }
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let mut numbers = Vec::with_capacity(array.len());
            let mut m = Missing::default();
            push_numbers(array, &mut numbers, &mut m)?;
            let mut cache: HashMap<u64, u32> = HashMap::new();
            for x in numbers {
                let code = *cache
                    .entry(x.to_bits())
                    .or_insert_with(|| dictionary.code(&format_integer(x)));
                out.push(code);
            }
        }
        other => return Err(format!("{other} cannot be read as categories")),
    }
    Ok(())
}

/// Codes of a dictionary's entries (`None` for a null entry).
fn push_codes_or_numbers(
    values: &ArrayRef,
    out: &mut Vec<Option<u32>>,
    dictionary: &mut Dictionary,
    missing: &mut Missing,
) -> Result<(), String> {
    let mut codes = Vec::with_capacity(values.len());
    let valid: Vec<bool> = (0..values.len()).map(|i| values.is_valid(i)).collect();
    push_codes(values, &mut codes, dictionary, missing)?;
    let mut it = codes.into_iter();
    for v in valid {
        out.push(if v { it.next() } else { None });
    }
    Ok(())
}

fn format_integer(x: f64) -> String {
    format!("{}", x as i128)
}

/// Profiles every readable column of a Parquet file, one column at a time:
/// numbers (nulls, NaN and ±inf counted) and text, as drift reads them.
/// Profiles of parts of a dataset merge into the profile of the whole
/// ([`crate::profile::DatasetProfile::merge`]).
pub fn profile_parquet(path: &Path) -> Result<crate::profile::DatasetProfile, MonitorError> {
    profile_parquet_with_edges(path, &Default::default())
}

/// [`profile_parquet`] with a histogram on fixed edges for the numeric
/// columns named in `edges` (for instance the reference's deciles, from
/// [`reference_edges`]), so every window's histogram shares the
/// reference's bins.
pub fn profile_parquet_with_edges(
    path: &Path,
    edges: &std::collections::BTreeMap<String, Vec<f64>>,
) -> Result<crate::profile::DatasetProfile, MonitorError> {
    profile_table(&ParquetTable::open(path)?, edges)
}

/// The profile of an opened table (see [`profile_parquet_with_edges`]).
pub fn profile_table(
    table: &ParquetTable,
    edges: &std::collections::BTreeMap<String, Vec<f64>>,
) -> Result<crate::profile::DatasetProfile, MonitorError> {
    use crate::profile::{CategoricalProfile, DatasetProfile, NumericProfile};
    let (columns, _) = table.columns();
    let mut profile = DatasetProfile::new().with_rows(table.rows());
    for (name, storage) in columns {
        let mut dictionary = Dictionary::default();
        let (values, missing) = table.read(&name, storage == Storage::Text, &mut dictionary)?;
        match values {
            ColumnValues::Numbers(v) => {
                let mut p = match edges.get(&name) {
                    Some(e) => NumericProfile::with_edges(e.clone()).map_err(|err| {
                        MonitorError::invalid(&format!("edges.{name}"), err.to_string())
                    })?,
                    None => NumericProfile::new(),
                };
                p.extend(&v);
                for _ in 0..missing.nulls {
                    p.update_null();
                }
                for _ in 0..missing.infinite {
                    p.update(f64::INFINITY);
                }
                profile.insert_column(name, p);
            }
            ColumnValues::Codes(codes) => {
                let mut p =
                    CategoricalProfile::from_values(codes.iter().map(|c| dictionary.value(*c)));
                for _ in 0..missing.nulls {
                    p.update_null();
                }
                profile.insert_column(name, p);
            }
        }
    }
    Ok(profile)
}

/// Histogram edges for every numeric column of a reference profile: its
/// quantiles at `0, 1/bins, …, 1` (exact in exact mode, from the KLL
/// sketch otherwise), repeated values dropped; a column with fewer than
/// two distinct edges gets none.
pub fn reference_edges(
    reference: &crate::profile::DatasetProfile,
    bins: usize,
) -> Result<std::collections::BTreeMap<String, Vec<f64>>, MonitorError> {
    use crate::profile::ColumnProfile;
    if !(1..=10_000).contains(&bins) {
        return Err(MonitorError::invalid("bins", "must be 1 to 10,000"));
    }
    let qs: Vec<f64> = (0..=bins).map(|i| i as f64 / bins as f64).collect();
    let mut out = std::collections::BTreeMap::new();
    for (name, column) in reference.columns() {
        let ColumnProfile::Numeric(p) = column else {
            continue;
        };
        let Ok(Some(mut edges)) = p.quantiles(&qs) else {
            continue;
        };
        edges.retain(|e| e.is_finite());
        edges.dedup();
        if edges.len() >= 2 {
            out.insert(name.clone(), edges);
        }
    }
    Ok(out)
}

/// A Parquet file's rows as JSON objects, for logging a batch: numbers,
/// strings and booleans as themselves, timestamps as milliseconds since the
/// epoch, nulls left out.
fn json_rows(path: &Path) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, MonitorError> {
    use arrow_array::types::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    use serde_json::Value;
    let file = File::open(path).map_err(|e| MonitorError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| parquet_error(&path.display().to_string(), e))?
        .build()
        .map_err(|e| parquet_error(&path.display().to_string(), e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(&path.display().to_string(), e))?;
        let start = out.len();
        out.resize_with(start + batch.num_rows(), serde_json::Map::new);
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            let mut put = |i: usize, v: Value| {
                out[start + i].insert(name.clone(), v);
            };
            let num = |x: f64| serde_json::Number::from_f64(x).map(Value::Number);
            macro_rules! each {
                ($a:expr, $f:expr) => {{
                    let a = $a;
                    for i in 0..a.len() {
                        if a.is_valid(i) {
                            if let Some(v) = $f(a.value(i)) {
                                put(i, v);
                            }
                        }
                    }
                }};
            }
            match array.data_type() {
                DataType::Float64 => each!(array.as_primitive::<Float64Type>(), |x: f64| num(x)),
                DataType::Float32 => {
                    each!(array.as_primitive::<Float32Type>(), |x: f32| num(x as f64))
                }
                DataType::Int64 => each!(array.as_primitive::<Int64Type>(), |x: i64| Some(
                    Value::from(x)
                )),
                DataType::Int32 => each!(array.as_primitive::<Int32Type>(), |x: i32| Some(
                    Value::from(x)
                )),
                DataType::Int16 => each!(array.as_primitive::<Int16Type>(), |x: i16| Some(
                    Value::from(x)
                )),
                DataType::Int8 => each!(array.as_primitive::<Int8Type>(), |x: i8| Some(
                    Value::from(x)
                )),
                DataType::UInt64 => each!(array.as_primitive::<UInt64Type>(), |x: u64| Some(
                    Value::from(x)
                )),
                DataType::UInt32 => each!(array.as_primitive::<UInt32Type>(), |x: u32| Some(
                    Value::from(x)
                )),
                DataType::UInt16 => each!(array.as_primitive::<UInt16Type>(), |x: u16| Some(
                    Value::from(x)
                )),
                DataType::UInt8 => each!(array.as_primitive::<UInt8Type>(), |x: u8| Some(
                    Value::from(x)
                )),
                DataType::Boolean => each!(array.as_boolean(), |x: bool| Some(Value::Bool(x))),
                DataType::Utf8 => each!(array.as_string::<i32>(), |x: &str| Some(Value::from(x))),
                DataType::LargeUtf8 => {
                    each!(array.as_string::<i64>(), |x: &str| Some(Value::from(x)))
                }
                DataType::Timestamp(unit, _) => {
                    use arrow_schema::TimeUnit;
                    match unit {
                        TimeUnit::Second => each!(
                            array.as_primitive::<TimestampSecondType>(),
                            |x: i64| Some(Value::from(x * 1000))
                        ),
                        TimeUnit::Millisecond => each!(
                            array.as_primitive::<TimestampMillisecondType>(),
                            |x: i64| Some(Value::from(x))
                        ),
                        TimeUnit::Microsecond => each!(
                            array.as_primitive::<TimestampMicrosecondType>(),
                            |x: i64| Some(Value::from(x / 1000))
                        ),
                        TimeUnit::Nanosecond => {
                            each!(array.as_primitive::<TimestampNanosecondType>(), |x: i64| {
                                Some(Value::from(x / 1_000_000))
                            })
                        }
                    }
                }
                DataType::Dictionary(_, _) => {
                    let mut d = Dictionary::default();
                    let mut codes = Vec::new();
                    let mut m = Missing::default();
                    push_codes(array, &mut codes, &mut d, &mut m).map_err(|message| {
                        MonitorError::ColumnType {
                            path: path.display().to_string(),
                            column: name.clone(),
                            message,
                        }
                    })?;
                    let mut it = codes.into_iter();
                    for i in 0..array.len() {
                        if array.is_valid(i)
                            && let Some(c) = it.next()
                        {
                            put(i, Value::from(d.value(c)));
                        }
                    }
                }
                other => {
                    return Err(MonitorError::ColumnType {
                        path: path.display().to_string(),
                        column: name.clone(),
                        message: format!("{other} cannot be logged as a feature"),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Columns of a logged batch that fill a prediction's own fields.
pub const LOG_FIELDS: [&str; 7] = [
    "id",
    "at",
    "prediction",
    "label",
    "variant",
    "model_version",
    "latency_ms",
];

/// A Parquet file as rows for `POST /v1/monitor/deployments/D/predictions`:
/// [`LOG_FIELDS`] fill their fields, every other column is a feature.
pub fn log_rows(path: &Path) -> Result<Vec<serde_json::Value>, MonitorError> {
    Ok(json_rows(path)?
        .into_iter()
        .map(|mut row| {
            let mut out = serde_json::Map::new();
            for f in LOG_FIELDS {
                if let Some(v) = row.remove(f) {
                    let v = match (f, v) {
                        ("id" | "variant" | "model_version", serde_json::Value::Number(n)) => {
                            serde_json::Value::String(n.to_string())
                        }
                        (_, v) => v,
                    };
                    out.insert(f.to_string(), v);
                }
            }
            out.insert("features".into(), serde_json::Value::Object(row));
            serde_json::Value::Object(out)
        })
        .collect())
}

/// A Parquet file of `id` and `label` columns as labels for
/// `POST /v1/monitor/deployments/D/labels`.
pub fn label_rows(path: &Path) -> Result<Vec<serde_json::Value>, MonitorError> {
    let rows = json_rows(path)?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let id = match row.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                return Err(MonitorError::invalid(
                    &format!("row {i}: id"),
                    "missing: the file needs an id column",
                ));
            }
        };
        let label = row
            .get("label")
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_bool().map(|b| if b { 1.0 } else { 0.0 }))
            })
            .ok_or_else(|| {
                MonitorError::invalid(&format!("row {i}: label"), "missing or not a number")
            })?;
        out.push(serde_json::json!({"id": id, "label": label}));
    }
    Ok(out)
}
