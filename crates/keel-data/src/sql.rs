//! SQL over datasets, with DataFusion.
//!
//! A query's table names are resolved against the catalog before it is
//! planned: `churn` is the latest version of dataset `churn`, `"churn@v2"`
//! and `"churn@3f2a9c"` one version (quote names with `@`, `-` or `.`).
//! Each resolves to a listing table over the version's files in the
//! artifact store, read through the store's `object_store` backend, so the
//! same query runs over a local directory or a bucket. Queries are
//! read-only: DDL, DML and `SET` statements are refused.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::{Column, DataError, DatasetVersion, Format};

/// The URL the artifact store is registered under in a session.
const ARTIFACTS_URL: &str = "keel-artifacts://store/";

/// Rows a query answers by default.
pub const DEFAULT_LIMIT: usize = 10_000;

/// A query's answer.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    /// One object per row, column name → value (timestamps as RFC 3339
    /// text, nulls as `null`).
    pub rows: Vec<Map<String, Value>>,
    pub row_count: usize,
    /// More rows existed than `limit`.
    pub truncated: bool,
}

/// Builds sessions that see the catalog's datasets.
#[derive(Clone)]
pub struct Engine {
    catalog: Catalog,
}

impl Engine {
    pub fn new(catalog: Catalog) -> Self {
        Engine { catalog }
    }

    /// A fresh session with the artifact store registered (and nothing
    /// else: tables are added per query).
    pub fn session(&self) -> Result<SessionContext, DataError> {
        let mut config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(parallelism());
        // A registered folder's files at any depth belong to the version.
        config
            .options_mut()
            .execution
            .listing_table_ignore_subdirectory = false;
        let ctx = SessionContext::new_with_config(config);
        let url = url::Url::parse(ARTIFACTS_URL)
            .map_err(|e| DataError::Corrupt(format!("artifact URL: {e}")))?;
        ctx.register_object_store(&url, self.catalog.artifacts().object_store());
        Ok(ctx)
    }

    /// A table over one version's files.
    pub async fn version_table(
        &self,
        ctx: &SessionContext,
        version: &DatasetVersion,
    ) -> Result<Arc<dyn TableProvider>, DataError> {
        self.location_table(ctx, &version.location, version.format)
            .await
    }

    /// A table over the files of an artifact-store folder.
    pub async fn location_table(
        &self,
        ctx: &SessionContext,
        location: &str,
        format: Format,
    ) -> Result<Arc<dyn TableProvider>, DataError> {
        let url = format!("{ARTIFACTS_URL}{}/", location.trim_end_matches('/'));
        listing_table(ctx, &url, format).await
    }

    /// Runs a read-only query; at most `limit` rows come back.
    pub async fn query(&self, sql: &str, limit: usize) -> Result<QueryResult, DataError> {
        let ctx = self.session()?;
        self.register_referenced(&ctx, sql).await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if rows + batch.num_rows() > limit {
                batches.push(batch.slice(0, limit - rows));
                rows = limit;
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok(QueryResult {
            columns: columns_of(&schema),
            rows: rows_json(&batches)?,
            row_count: rows,
            truncated,
        })
    }

    /// Registers every dataset the statement names, under the name used.
    pub async fn register_referenced(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<(), DataError> {
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statements = DFParser::parse_sql_with_dialect(
            sql,
            datafusion::sql::sqlparser::dialect::dialect_from_str(dialect)
                .ok_or_else(|| DataError::Sql("unknown SQL dialect".into()))?
                .as_ref(),
        )
        .map_err(|e| DataError::Sql(e.to_string()))?;
        if statements.len() != 1 {
            return Err(DataError::Invalid(format!(
                "sql: write exactly one statement (found {})",
                statements.len()
            )));
        }
        let Some(statement) = statements.pop_front() else {
            return Err(DataError::Invalid("sql: the query is empty".into()));
        };
        let refs = state.resolve_table_references(&statement)?;
        for r in refs {
            let name = r.table().to_owned();
            if ctx.table_exist(name.as_str())? {
                continue;
            }
            let version = match self.catalog.resolve(&name).await {
                Ok(v) => v,
                Err(DataError::NotFound(m)) => {
                    return Err(DataError::NotFound(format!("in the query: {m}")));
                }
                Err(e) => return Err(e),
            };
            let table = self.version_table(ctx, &version).await?;
            ctx.register_table(name.as_str(), table)?;
        }
        Ok(())
    }
}

/// Threads a query may use: the machine's cores.
fn parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The listing options of a format; every file of the folder is read.
fn listing_options(format: Format) -> ListingOptions {
    let file_format: Arc<dyn FileFormat> = match format {
        Format::Parquet => Arc::new(ParquetFormat::default()),
        Format::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
        Format::Arrow => Arc::new(ArrowFormat),
    };
    ListingOptions::new(file_format).with_file_extension("")
}

/// A table over the files at `url` (a file, or a folder ending in `/`).
pub async fn listing_table(
    ctx: &SessionContext,
    url: &str,
    format: Format,
) -> Result<Arc<dyn TableProvider>, DataError> {
    let table_url = ListingTableUrl::parse(url)?;
    let options = listing_options(format);
    let schema = options.infer_schema(&ctx.state(), &table_url).await?;
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// A table over local files: a file, or a folder of files of one format.
pub async fn local_table(
    ctx: &SessionContext,
    path: &std::path::Path,
) -> Result<Arc<dyn TableProvider>, DataError> {
    let files = crate::catalog::data_files(path)?;
    let format = files.format;
    let abs = path.canonicalize().map_err(|e| DataError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut url = url::Url::from_file_path(&abs)
        .map_err(|_| DataError::Invalid(format!("path: {} is not usable", abs.display())))?
        .to_string();
    if abs.is_dir() && !url.ends_with('/') {
        url.push('/');
    }
    listing_table(ctx, &url, format).await
}

/// The schema's columns as the catalog records them.
pub fn columns_of(schema: &SchemaRef) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// Batches as JSON objects, one per row.
pub fn rows_json(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, DataError> {
    use datafusion::arrow::json::{WriterBuilder, writer::JsonArray};
    let mut buf = Vec::new();
    {
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut buf);
        for b in batches {
            writer
                .write(b)
                .map_err(|e| DataError::Sql(format!("cannot render the result: {e}")))?;
        }
        writer
            .finish()
            .map_err(|e| DataError::Sql(format!("cannot render the result: {e}")))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf)
        .map_err(|e| DataError::Sql(format!("cannot render the result: {e}")))
}
