//! Training sets: a feature service's features joined point-in-time onto
//! an entity file, written as Parquet with a manifest of exactly what was
//! read.
//!
//! Every batch feature view the service needs (directly or through an
//! on-demand view) is read from its source — through its `sql` when it has
//! one — as a stream of Arrow batches and joined by the point-in-time
//! kernel, one view at a time, so no view is ever whole in memory. Stream
//! feature views are computed over their sources with the window kernel.
//! On-demand views are then evaluated by the SQL engine over the joined
//! rows (their expressions name features in full, `view__feature`, and
//! request columns of the entity file). The output keeps the entity file's
//! rows in order, its columns first, then the service's features in the
//! order the service lists them.
//!
//! The file is written next to its final name and renamed into place, so
//! a failure never leaves half a training set. The manifest goes into the
//! Parquet footer (key `keel.training_set`) and beside the file as
//! `OUT.manifest.json`, with the output's own hash added.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatchReader;
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{Expr, cast, ident};
use futures::StreamExt;
use keel_core::time::now_millis;
use serde::{Deserialize, Serialize};

use super::{Applied, FeatureStore, Resolved};
use crate::FeatureError;
use crate::definition::{DataType, FeatureView, Repo, View};
use crate::point_in_time::{FeatureNames, JoinOptions, PointInTimeJoin, StreamViewSpec, ViewSpec};

type Result<T> = std::result::Result<T, FeatureError>;

/// Key of the manifest in the Parquet footer.
pub const FOOTER_KEY: &str = "keel.training_set";

/// What to build.
#[derive(Debug, Clone, Deserialize)]
pub struct TrainingSetRequest {
    /// The feature service.
    pub service: String,
    /// A Parquet (or CSV, Arrow) file or folder with the join keys and
    /// `event_timestamp`.
    pub entities: PathBuf,
    /// The Parquet file to write.
    pub out: PathBuf,
    /// Bare feature names instead of `view__feature`.
    #[serde(default)]
    pub short_names: bool,
}

/// Exactly what a training set was made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub service: String,
    pub feature_repo: RepoRef,
    pub entities: FileRef,
    pub views: Vec<ViewInput>,
    pub output: Output,
    pub created_at: i64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoRef {
    pub version: i64,
    pub digest: String,
}

/// A local file or folder and its content digest (the SHA-256 of a file;
/// of its files' `path<TAB>sha256` lines for a folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRef {
    pub path: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

/// What one view read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewInput {
    pub name: String,
    /// `batch`, `stream` or `on_demand`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source's file, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRef>,
    /// The dataset version, when the source is one (`NAME@ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The source's push log, when pushed events were read with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_log: Option<PushLogRef>,
}

/// The push-log segments a view read: segments are written once and never
/// change, so their names and sizes pin what was read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushLogRef {
    pub folder: String,
    pub segments: usize,
    /// SHA-256 of the segments' `path<TAB>size` lines, sorted.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    pub path: String,
    pub rows: usize,
    pub columns: Vec<String>,
    /// Set in the manifest file (the footer cannot hold its own file's
    /// hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The batches of a DataFusion stream, read from a blocking thread.
struct BlockingReader {
    handle: tokio::runtime::Handle,
    stream: SendableRecordBatchStream,
    schema: SchemaRef,
}

impl Iterator for BlockingReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.handle
            .block_on(self.stream.next())
            .map(|r| r.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for BlockingReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// The Arrow type a declared dtype is cast to (lists keep theirs).
fn arrow_type(t: &DataType) -> Option<ArrowType> {
    match t {
        DataType::List(_) => None,
        scalar => Some(crate::online::convert::arrow_type(scalar)),
    }
}

/// The views a service needs, split by kind, in first-use order, and the
/// output features as (view, feature) pairs.
struct Needs<'r> {
    batch: Vec<&'r FeatureView>,
    stream: Vec<&'r crate::definition::StreamFeatureView>,
    on_demand: Vec<&'r crate::definition::OnDemandFeatureView>,
    outputs: Vec<(String, String)>,
}

/// The (view, feature) pairs a feature service serves, in its order; a
/// whole view stands for all of its features. `field` names the request
/// field in the message when there is no such service.
pub(crate) fn service_features(
    repo: &Repo,
    service: &str,
    field: &str,
) -> Result<Vec<(String, String)>> {
    let Some(svc) = repo.feature_service(service) else {
        let names: Vec<&str> = repo
            .feature_services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        return Err(crate::definition::suggest::not_defined(
            field,
            "feature service",
            service,
            &names,
        ));
    };
    let mut out = Vec::new();
    for r in &svc.features {
        let view = repo.view(&r.view).ok_or_else(|| {
            FeatureError::Corrupt(format!(
                "service `{service}` names unknown view `{}`",
                r.view
            ))
        })?;
        match &r.feature {
            Some(f) => out.push((r.view.clone(), f.clone())),
            None => out.extend(
                view.feature_names()
                    .into_iter()
                    .map(|f| (r.view.clone(), f.to_owned())),
            ),
        }
    }
    Ok(out)
}

fn needs<'r>(repo: &'r Repo, service: &str) -> Result<Needs<'r>> {
    let outputs = service_features(repo, service, "service")?;
    let mut n = Needs {
        batch: Vec::new(),
        stream: Vec::new(),
        on_demand: Vec::new(),
        outputs: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    fn add<'r>(repo: &'r Repo, name: &str, n: &mut Needs<'r>, seen: &mut BTreeSet<String>) {
        if !seen.insert(name.to_owned()) {
            return;
        }
        match repo.view(name) {
            Some(View::Batch(v)) => n.batch.push(v),
            Some(View::Stream(v)) => n.stream.push(v),
            Some(View::OnDemand(v)) => {
                for s in &v.sources {
                    add(repo, s, n, seen);
                }
                n.on_demand.push(v);
            }
            // Request sources: their columns come from the entity file.
            None => {}
        }
    }
    for (view, _) in &outputs {
        add(repo, view, &mut n, &mut seen);
    }
    n.outputs = outputs;
    Ok(n)
}

impl FeatureStore {
    /// Builds the training set `req` asks for from the current repo.
    pub async fn training_set(&self, req: &TrainingSetRequest) -> Result<Manifest> {
        let started = Instant::now();
        let applied: Applied = self.current().await?.ok_or_else(|| {
            FeatureError::NotFound(
                "no feature repo is applied; run `keel features apply REPO_DIR` first".into(),
            )
        })?;
        let repo = &applied.repo;
        let repo_dir = PathBuf::from(&applied.repo_dir);
        let needs = needs(repo, &req.service)?;
        if req.out.extension().and_then(|e| e.to_str()) != Some("parquet") {
            return Err(FeatureError::Invalid(format!(
                "out: {} must be a .parquet file",
                req.out.display()
            )));
        }
        if let Some(dir) = req.out.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(FeatureError::Invalid(format!(
                "out: the folder {} does not exist; create it first",
                dir.display()
            )));
        }

        // Hash the entity file and file sources while the join runs.
        let mut hashing: Hashing = Vec::new();
        let entity_hash = hash_in_background(req.entities.clone());

        let engine = self.catalog.engine();
        let ctx = engine.session()?;
        let entity_table = keel_data::sql::local_table(&ctx, &req.entities)
            .await
            .map_err(|e| FeatureError::Invalid(format!("entities: {e}")))?;
        let entity_schema = entity_table.schema();
        ctx.register_table("__keel_entities", entity_table)?;
        let batches = ctx.table("__keel_entities").await?.collect().await?;
        let entity = datafusion::arrow::compute::concat_batches(&entity_schema, &batches)
            .map_err(|e| FeatureError::Invalid(format!("entities: {e}")))?;
        let entity_rows = entity.num_rows();
        let entity_columns: Vec<String> = entity_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();

        let options = JoinOptions {
            feature_names: FeatureNames::Full,
            ..JoinOptions::default()
        };
        let mut join = PointInTimeJoin::new(entity, options)?;
        let mut inputs = Vec::new();
        let ctx_for = EntityContext {
            schema: &entity_schema,
            columns: &entity_columns,
        };
        for view in &needs.batch {
            let source = repo.source(&view.source).ok_or_else(|| {
                FeatureError::Corrupt(format!("view `{}` has no source", view.name))
            })?;
            let join_keys: Vec<String> = view
                .entities
                .iter()
                .filter_map(|e| repo.entity(e))
                .flat_map(|e| e.join_keys.iter().cloned())
                .collect();
            let mut columns = vec![source.timestamp_field.clone()];
            columns.extend(source.created_timestamp_field.iter().cloned());
            columns.extend(view.features.iter().map(|f| f.name.clone()));
            let (reader, input) = self
                .read_view(
                    &repo_dir,
                    &ctx_for,
                    ViewRead {
                        name: &view.name,
                        kind: "batch",
                        source,
                        sql: view.sql.as_deref(),
                        join_keys: &join_keys,
                        columns: &columns,
                    },
                    &mut hashing,
                    inputs.len(),
                )
                .await?;
            inputs.push(input);
            let mut spec =
                ViewSpec::new(view.name.clone(), join_keys, source.timestamp_field.clone())
                    .features(view.features.iter().map(|f| f.name.clone()))
                    .ttl(Duration::from_secs(view.ttl.seconds()));
            if let Some(c) = &source.created_timestamp_field {
                spec = spec.created_timestamp(c.clone());
            }
            join = tokio::task::spawn_blocking(move || -> Result<PointInTimeJoin> {
                join.add_view_reader(&spec, reader)?;
                Ok(join)
            })
            .await
            .map_err(|e| FeatureError::Corrupt(format!("the join stopped: {e}")))??;
        }
        for view in &needs.stream {
            let source = repo.source(&view.source).ok_or_else(|| {
                FeatureError::Corrupt(format!("view `{}` has no source", view.name))
            })?;
            let spec = StreamViewSpec::from_definition(repo, view).ok_or_else(|| {
                FeatureError::Corrupt(format!("stream view `{}` lost an entity", view.name))
            })?;
            let mut columns = vec![spec.timestamp_column.clone()];
            for a in &view.aggregations {
                if !columns.contains(&a.column) {
                    columns.push(a.column.clone());
                }
            }
            let (reader, input) = self
                .read_view(
                    &repo_dir,
                    &ctx_for,
                    ViewRead {
                        name: &view.name,
                        kind: "stream",
                        source,
                        sql: None,
                        join_keys: &spec.join_keys,
                        columns: &columns,
                    },
                    &mut hashing,
                    inputs.len(),
                )
                .await?;
            inputs.push(input);
            join = tokio::task::spawn_blocking(move || -> Result<PointInTimeJoin> {
                join.add_stream_view_reader(&spec, reader)?;
                Ok(join)
            })
            .await
            .map_err(|e| FeatureError::Corrupt(format!("the join stopped: {e}")))??;
        }
        let mut joined = tokio::task::spawn_blocking(move || join.finish())
            .await
            .map_err(|e| FeatureError::Corrupt(format!("the join stopped: {e}")))??;

        if !needs.on_demand.is_empty() {
            joined = on_demand(&needs, joined).await?;
        }
        for v in &needs.on_demand {
            inputs.push(ViewInput {
                name: v.name.clone(),
                kind: "on_demand".into(),
                source: None,
                file: None,
                dataset: None,
                push_log: None,
            });
        }

        // Entity columns, then the service's features.
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        let mut out_names: Vec<String> = Vec::new();
        let schema = joined.schema();
        let mut push = |name: &str, out: String| -> Result<()> {
            if let Some(clash) = out_names.iter().position(|n| *n == out) {
                return Err(FeatureError::Invalid(if req.short_names && out != name {
                    format!(
                        "short_names: two output columns would be named `{out}` (`{}` and `{name}`); use full names",
                        out_names[clash]
                    )
                } else {
                    format!(
                        "service: the output would have two columns named `{out}`; a service lists each feature once, and no feature may share an entity column's name"
                    )
                }));
            }
            let i = schema
                .index_of(name)
                .map_err(|_| FeatureError::Corrupt(format!("the joined table lacks `{name}`")))?;
            let f = schema.field(i);
            fields.push(Field::new(out.clone(), f.data_type().clone(), true));
            columns.push(joined.column(i).clone());
            out_names.push(out);
            Ok(())
        };
        for c in &entity_columns {
            push(c, c.clone())?;
        }
        for (view, feature) in &needs.outputs {
            let full = format!("{view}__{feature}");
            let out = if req.short_names {
                feature.clone()
            } else {
                full.clone()
            };
            push(&full, out)?;
        }
        let out_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        let table = RecordBatch::try_new(out_schema, columns)
            .map_err(|e| FeatureError::Corrupt(format!("assembling the output: {e}")))?;

        let entities = entity_hash
            .await
            .map_err(|e| FeatureError::Corrupt(e.to_string()))??;
        for (i, h) in hashing {
            inputs[i].file = Some(
                h.await
                    .map_err(|e| FeatureError::Corrupt(e.to_string()))??,
            );
        }
        let mut manifest = Manifest {
            service: req.service.clone(),
            feature_repo: RepoRef {
                version: applied.version,
                digest: applied.digest.clone(),
            },
            entities: FileRef {
                rows: Some(entity_rows),
                ..entities
            },
            views: inputs,
            output: Output {
                path: req.out.display().to_string(),
                rows: table.num_rows(),
                columns: out_names.clone(),
                sha256: None,
            },
            created_at: now_millis(),
            elapsed_ms: 0,
        };
        manifest.elapsed_ms = started.elapsed().as_millis() as u64;
        let out = req.out.clone();
        let footer =
            serde_json::to_string(&manifest).map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        let sha = tokio::task::spawn_blocking(move || write_parquet(&out, &table, footer))
            .await
            .map_err(|e| FeatureError::Corrupt(e.to_string()))??;
        manifest.output.sha256 = Some(sha);
        manifest.elapsed_ms = started.elapsed().as_millis() as u64;
        let manifest_path = manifest_path(&req.out);
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        std::fs::write(&manifest_path, text).map_err(|e| FeatureError::Write {
            path: manifest_path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(manifest)
    }
}

/// The entity file's schema and column names, for key casts and messages.
struct EntityContext<'e> {
    schema: &'e SchemaRef,
    columns: &'e [String],
}

/// What to read of one view's source.
struct ViewRead<'v> {
    name: &'v str,
    kind: &'static str,
    source: &'v crate::definition::Source,
    sql: Option<&'v str>,
    join_keys: &'v [String],
    /// Timestamps and value columns, after the keys.
    columns: &'v [String],
}

type Hashing = Vec<(
    usize,
    tokio::task::JoinHandle<std::result::Result<FileRef, keel_data::DataError>>,
)>;

impl FeatureStore {
    /// Opens a view's source (through its SQL, if any) as a stream of
    /// batches with the join keys cast to the entity file's types, then the
    /// other columns; starts hashing a file source for the manifest.
    async fn read_view(
        &self,
        repo_dir: &Path,
        entity: &EntityContext<'_>,
        view: ViewRead<'_>,
        hashing: &mut Hashing,
        index: usize,
    ) -> Result<(BlockingReader, ViewInput)> {
        let ctx = self.catalog.engine().session()?;
        let (_, resolved) = self
            .register_source(&ctx, repo_dir, view.source)
            .await
            .map_err(|p| FeatureError::Definitions(vec![p]))?;
        let mut input = ViewInput {
            name: view.name.to_owned(),
            kind: view.kind.into(),
            source: Some(view.source.name.clone()),
            file: None,
            dataset: None,
            push_log: self.push_log_ref(&view.source.name).await,
        };
        match resolved {
            Resolved::File(path) => hashing.push((index, hash_in_background(path))),
            Resolved::Dataset(v) => input.dataset = Some(keel_data::lineage_id(&v.name, &v.id)),
        }
        let df = match view.sql {
            Some(sql) => ctx.sql(sql).await?,
            None => ctx.table(view.source.name.as_str()).await?,
        };
        // Keys take the entity file's types, so an int32 key in one file
        // meets an int64 key in the other.
        let mut select: Vec<Expr> = Vec::new();
        for k in view.join_keys {
            let target = entity
                .schema
                .field_with_name(k)
                .map(|f| f.data_type().clone())
                .map_err(|_| {
                    FeatureError::Invalid(format!(
                        "entities: the entity file has no column `{k}`, the join key of feature view `{}`; its columns are {}",
                        view.name,
                        entity.columns.join(", ")
                    ))
                })?;
            select.push(cast(ident(k), target).alias(k));
        }
        for c in view.columns {
            select.push(ident(c));
        }
        let stream = df.select(select)?.execute_stream().await?;
        let schema = stream.schema();
        Ok((
            BlockingReader {
                handle: tokio::runtime::Handle::current(),
                stream,
                schema,
            },
            input,
        ))
    }
}

impl FeatureStore {
    /// The push-log segments of a source, if it has any.
    async fn push_log_ref(&self, source: &str) -> Option<PushLogRef> {
        use sha2::Digest;
        let folder = super::log_folder(source);
        let mut files = self.catalog.artifacts().list_files(&folder).await.ok()?;
        files.retain(|f| f.path.ends_with(".parquet"));
        if files.is_empty() {
            return None;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut hasher = sha2::Sha256::new();
        for f in &files {
            hasher.update(format!("{}\t{}\n", f.path, f.size.unwrap_or(0)).as_bytes());
        }
        Some(PushLogRef {
            folder,
            segments: files.len(),
            digest: keel_store::hex(&hasher.finalize()),
        })
    }
}

/// Hashes a local file or folder on a blocking thread.
fn hash_in_background(
    path: PathBuf,
) -> tokio::task::JoinHandle<std::result::Result<FileRef, keel_data::DataError>> {
    tokio::task::spawn_blocking(move || {
        keel_data::local_digest(&path).map(|(_, digest, _)| FileRef {
            path: path.display().to_string(),
            digest,
            rows: None,
        })
    })
}

/// `OUT.manifest.json` beside `OUT`.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// Evaluates the on-demand views over the joined rows.
async fn on_demand(needs: &Needs<'_>, joined: RecordBatch) -> Result<RecordBatch> {
    let ctx = SessionContext::new();
    let schema = joined.schema();
    let table = MemTable::try_new(schema, vec![vec![joined]])?;
    ctx.register_table("features", Arc::new(table))?;
    let mut select = vec!["*".to_owned()];
    for v in &needs.on_demand {
        for f in &v.features {
            let expr = match arrow_type(&f.dtype) {
                Some(t) => format!("CAST(({}) AS {})", f.expression, sql_type(&t)),
                None => format!("({})", f.expression),
            };
            select.push(format!("{expr} AS \"{}__{}\"", v.name, f.name));
        }
    }
    let sql = format!("SELECT {} FROM features", select.join(", "));
    let df = ctx.sql(&sql).await.map_err(|e| {
        FeatureError::Invalid(format!(
            "on-demand feature views: {}",
            keel_data::DataError::from(e)
        ))
    })?;
    let out_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    datafusion::arrow::compute::concat_batches(&out_schema, &batches)
        .map_err(|e| FeatureError::Corrupt(format!("on-demand feature views: {e}")))
}

fn sql_type(t: &ArrowType) -> &'static str {
    match t {
        ArrowType::Int32 => "INT",
        ArrowType::Int64 => "BIGINT",
        ArrowType::Float32 => "REAL",
        ArrowType::Float64 => "DOUBLE",
        ArrowType::Utf8 => "VARCHAR",
        ArrowType::Boolean => "BOOLEAN",
        ArrowType::Binary => "BYTEA",
        _ => "TIMESTAMP",
    }
}

/// Writes `table` to `out` through a temporary file renamed into place;
/// answers the file's SHA-256.
fn write_parquet(out: &Path, table: &RecordBatch, footer: String) -> Result<String> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::metadata::KeyValue;
    use datafusion::parquet::file::properties::WriterProperties;
    let err = |m: String| FeatureError::Write {
        path: out.display().to_string(),
        message: m,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| err(e.to_string()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(FOOTER_KEY.to_owned(), footer)]))
        .build();
    let file = tmp.reopen().map_err(|e| err(e.to_string()))?;
    let mut writer =
        ArrowWriter::try_new(file, table.schema(), Some(props)).map_err(|e| err(e.to_string()))?;
    writer.write(table).map_err(|e| err(e.to_string()))?;
    writer.close().map_err(|e| err(e.to_string()))?;
    tmp.as_file().sync_all().map_err(|e| err(e.to_string()))?;
    tmp.persist(out).map_err(|e| err(e.to_string()))?;
    let (_, digest, _) = keel_data::local_digest(out)?;
    Ok(digest)
}

/// Servers run the build on a multi-threaded runtime.
#[cfg(test)]
#[allow(dead_code)]
fn training_set_is_send(s: &FeatureStore, r: &TrainingSetRequest) {
    fn send<T: Send>(_: &T) {}
    let f = s.training_set(r);
    send(&f);
}
