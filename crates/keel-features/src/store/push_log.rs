//! The push log: events pushed to a source with `to: offline` or
//! `online_and_offline`, kept as Parquet segments in the artifact store
//! under `features/push_log/SOURCE/`, in the source's schema. Every offline
//! read of the source (training sets, materialization) reads the source's
//! data and its log together, so a pushed event counts offline exactly as
//! it counted online.

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::context::SessionContext;
use keel_data::Format;

use super::FeatureStore;
use crate::FeatureError;

/// The log folder of a source.
pub fn log_folder(source: &str) -> String {
    format!("features/push_log/{source}")
}

impl FeatureStore {
    /// Appends one segment to a source's push log. The segment appears
    /// whole or not at all.
    pub async fn append_push_log(
        &self,
        source: &str,
        batch: RecordBatch,
    ) -> Result<(), FeatureError> {
        use datafusion::parquet::arrow::ArrowWriter;
        let mut buf = Vec::new();
        {
            let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), None).map_err(|e| {
                FeatureError::Write {
                    path: log_folder(source),
                    message: e.to_string(),
                }
            })?;
            writer.write(&batch).map_err(|e| FeatureError::Write {
                path: log_folder(source),
                message: e.to_string(),
            })?;
            writer.close().map_err(|e| FeatureError::Write {
                path: log_folder(source),
                message: e.to_string(),
            })?;
        }
        let micros = super::super::online::now_micros();
        let name = format!(
            "{}/{micros:020}-{}.parquet",
            log_folder(source),
            uuid_like()
        );
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(buf)) });
        self.catalog()
            .artifacts()
            .put_stream(&name, Box::pin(body))
            .await
            .map_err(|e| FeatureError::Write {
                path: name.clone(),
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// Replaces the table `source` registered in `ctx` by its union with
    /// the source's push log, when the log has segments.
    pub(crate) async fn union_push_log(
        &self,
        ctx: &SessionContext,
        source: &str,
    ) -> Result<bool, FeatureError> {
        let folder = log_folder(source);
        let files = match self.catalog().artifacts().list_files(&folder).await {
            Ok(files) => files,
            Err(_) => return Ok(false),
        };
        if !files.iter().any(|f| f.path.ends_with(".parquet")) {
            return Ok(false);
        }
        let log = self
            .catalog()
            .engine()
            .location_table(ctx, &folder, Format::Parquet)
            .await?;
        let base = ctx.table(source).await?;
        let schema = base.schema().as_arrow().clone();
        let logged = ctx.read_table(log)?;
        // Same columns in the same order and types: segments are written
        // in the source's schema; cast anyway in case the source changed.
        let select: Vec<datafusion::prelude::Expr> = schema
            .fields()
            .iter()
            .map(|f| {
                if logged.schema().has_column_with_unqualified_name(f.name()) {
                    datafusion::prelude::cast(
                        datafusion::prelude::ident(f.name()),
                        f.data_type().clone(),
                    )
                    .alias(f.name())
                } else {
                    datafusion::prelude::cast(
                        datafusion::prelude::lit(datafusion::scalar::ScalarValue::Null),
                        f.data_type().clone(),
                    )
                    .alias(f.name())
                }
            })
            .collect();
        let union = base.union(logged.select(select)?)?;
        ctx.deregister_table(source)?;
        ctx.register_table(source, union.into_view())?;
        Ok(true)
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:x}-{:06}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}
