//! A suite's data: a Parquet or CSV file read whole into columns (numbers
//! as f64 with NaN for nulls, everything else as text), and slices — SQL
//! predicates over those columns — resolved to row indices by DataFusion.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, StringArray, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions};

use crate::SuiteError;

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers and booleans; null is NaN.
    Number(Vec<f64>),
    /// Everything else as text; null is `None`.
    Text(Vec<Option<String>>),
}

impl Values {
    /// Every value as text (numbers as Rust prints them), null as `null`:
    /// for grouping rows by value.
    pub fn texts(&self, null: &str) -> Vec<String> {
        match self {
            Values::Text(v) => v
                .iter()
                .map(|x| x.clone().unwrap_or_else(|| null.to_string()))
                .collect(),
            Values::Number(v) => v.iter().map(|x| format!("{x}")).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

/// A dataset in memory, with the batches kept for slice queries.
pub struct Table {
    pub name: String,
    pub rows: usize,
    pub columns: Vec<Column>,
    batches: Vec<RecordBatch>,
}

/// The name of the row-index column slices are selected by.
const ROW: &str = "__keel_row";

impl Table {
    /// Reads `path` (`.parquet` or `.csv`) whole.
    pub async fn load(name: &str, path: &Path) -> Result<Table, SuiteError> {
        let bad = |e: &dyn std::fmt::Display| SuiteError::Data {
            dataset: name.to_string(),
            message: format!("{}: {e}", path.display()),
        };
        if !path.is_file() {
            return Err(bad(&"no such file"));
        }
        let text = path.to_string_lossy().to_string();
        let ctx = SessionContext::new();
        let lower = text.to_ascii_lowercase();
        let frame = if lower.ends_with(".parquet") {
            ctx.read_parquet(&text, ParquetReadOptions::default()).await
        } else if lower.ends_with(".csv") {
            ctx.read_csv(&text, CsvReadOptions::new()).await
        } else {
            return Err(bad(&"expected a .parquet or .csv file"));
        }
        .map_err(|e| bad(&e))?;
        let batches = frame.collect().await.map_err(|e| bad(&e))?;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => return Err(bad(&"the file has no rows")),
        };
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Err(bad(&"the file has no rows"));
        }
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let arrays: Vec<&ArrayRef> = batches.iter().map(|b| b.column(i)).collect();
            columns.push(Column {
                name: field.name().clone(),
                values: values(field.data_type(), &arrays).map_err(|e| bad(&e))?,
            });
        }
        Ok(Table {
            name: name.to_string(),
            rows,
            columns,
            batches,
        })
    }

    pub fn column(&self, name: &str) -> Result<&Column, SuiteError> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
            SuiteError::Data {
                dataset: self.name.clone(),
                message: format!("no column {name:?}; its columns are {}", names.join(", ")),
            }
        })
    }

    /// The rows where `predicate` (a SQL boolean expression over the
    /// columns, e.g. `age < 25 AND region = 'EU'`) holds, in order.
    pub async fn select(&self, slice: &str, predicate: &str) -> Result<Vec<usize>, SuiteError> {
        let bad = |e: &dyn std::fmt::Display| SuiteError::Slice {
            slice: slice.to_string(),
            message: e.to_string(),
        };
        if predicate.contains(';') {
            return Err(bad(&"a predicate is one expression, without `;`"));
        }
        let ctx = SessionContext::new();
        let mut indexed = Vec::with_capacity(self.batches.len());
        let mut schema = None;
        let mut start = 0u64;
        for b in &self.batches {
            let n = b.num_rows() as u64;
            let rows: ArrayRef = Arc::new(UInt64Array::from_iter_values(start..start + n));
            start += n;
            let mut fields: Vec<Field> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(ROW, DataType::UInt64, false));
            let s = Arc::new(Schema::new(fields));
            let mut cols = b.columns().to_vec();
            cols.push(rows);
            indexed.push(RecordBatch::try_new(s.clone(), cols).map_err(|e| bad(&e))?);
            schema = Some(s);
        }
        let Some(schema) = schema else {
            return Ok(Vec::new());
        };
        let table = MemTable::try_new(schema, vec![indexed]).map_err(|e| bad(&e))?;
        ctx.register_table("data", Arc::new(table))
            .map_err(|e| bad(&e))?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let sql = format!("SELECT \"{ROW}\" FROM data WHERE ({predicate}) ORDER BY \"{ROW}\"");
        let frame = ctx
            .sql_with_options(&sql, options)
            .await
            .map_err(|e| bad(&e))?;
        let batches = frame.collect().await.map_err(|e| bad(&e))?;
        let mut out = Vec::new();
        for b in &batches {
            let rows = b
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| bad(&"the row index came back in another type"))?;
            out.extend(rows.values().iter().map(|r| *r as usize));
        }
        Ok(out)
    }
}

fn values(data_type: &DataType, arrays: &[&ArrayRef]) -> Result<Values, String> {
    let numeric = data_type.is_numeric() || matches!(data_type, DataType::Boolean);
    if numeric {
        let mut out = Vec::new();
        for a in arrays {
            let as_f64 = cast(a, &DataType::Float64).map_err(|e| e.to_string())?;
            let f = as_f64
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or("a number column did not become f64")?;
            out.extend((0..f.len()).map(|i| if f.is_null(i) { f64::NAN } else { f.value(i) }));
        }
        Ok(Values::Number(out))
    } else {
        let mut out = Vec::new();
        for a in arrays {
            let as_text = cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
            let t = as_text
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or("a column did not become text")?;
            out.extend((0..t.len()).map(|i| (!t.is_null(i)).then(|| t.value(i).to_string())));
        }
        Ok(Values::Text(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn csv_columns_and_slices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(
            &path,
            "age,region,income,default\n22,EU,1000.5,1\n31,US,,0\n19,EU,500,0\n45,EU,2000,1\n",
        )
        .unwrap();
        let t = Table::load("test", &path).await.unwrap();
        assert_eq!(t.rows, 4);
        assert_eq!(
            t.column("age").unwrap().values,
            Values::Number(vec![22.0, 31.0, 19.0, 45.0])
        );
        match &t.column("income").unwrap().values {
            Values::Number(v) => assert!(v[1].is_nan() && v[0] == 1000.5),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.column("region").unwrap().values,
            Values::Text(vec![
                Some("EU".into()),
                Some("US".into()),
                Some("EU".into()),
                Some("EU".into())
            ])
        );
        assert_eq!(
            t.select("young_eu", "age < 25 AND region = 'EU'")
                .await
                .unwrap(),
            [0, 2]
        );
        assert_eq!(
            t.select("none", "age > 100").await.unwrap(),
            Vec::<usize>::new()
        );
        for bad in [
            "agee < 3",
            "age <",
            "1; DROP TABLE data",
            "age < 3) OR (1 = 1",
        ] {
            let r = t.select("bad", bad).await;
            if bad.contains(") OR (") {
                // Still one boolean expression over the data: allowed.
                assert!(r.is_ok());
            } else {
                assert!(matches!(r, Err(SuiteError::Slice { .. })), "{bad}: {r:?}");
            }
        }
        assert!(matches!(t.column("nope"), Err(SuiteError::Data { .. })));
        assert!(matches!(
            Table::load("test", &dir.path().join("missing.csv")).await,
            Err(SuiteError::Data { .. })
        ));
    }
}
