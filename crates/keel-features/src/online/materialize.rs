//! Materialization: the latest row per entity of each online feature view,
//! from its source (and the source's push log) into the online store; and
//! for stream feature views, their windows replayed from the source's
//! events.
//!
//! A view's rows with `start <= event time <= end` are read as a stream of
//! batches and reduced to the latest row per entity key (ties on event
//! time to the larger created timestamp, then to the later row) in memory,
//! one entry per entity; the winners are then written with
//! [`OnlineStore::write_newest`](keel_online::OnlineStore::write_newest),
//! so a row already online from a later event (a push) is kept. Writes are
//! buffered; the watermark (`end`) is written last, durably, which makes
//! the whole materialization durable at once. Running it again writes the
//! same values: materialization is idempotent.
//!
//! `incremental` starts each view at its watermark (views never
//! materialized start at the beginning); `end` defaults to now.
//!
//! A stream view is always rebuilt: its windows are recomputed from every
//! event of its source and push log that a read at or after `end` can
//! still count (the longest window plus two slides before `end`) and
//! replace the stored ones, whatever the range asked — so running it
//! again, or after pushes, never counts an event twice. Events pushed
//! online only (not to the push log) are not in the offline data, and a
//! rebuild forgets them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::prelude::{Expr, ident};
use futures::StreamExt;
use keel_online::codec::{KeyPart, Value, encode_key, encode_row};
use keel_online::{Durability, Entry};
use serde::{Deserialize, Serialize};

use super::convert::{cast_column, cell, key_column, micros};
use super::window::WindowState;
use super::{Compiled, Kind, OnlineFeatures, OnlineView, Result, now_micros, online_error};
use crate::FeatureError;

/// What to materialize.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MaterializeRequest {
    /// Feature views and stream feature views; empty: every online one.
    #[serde(default)]
    pub views: Vec<String>,
    /// Microseconds since the epoch, inclusive; absent: from the beginning
    /// (or the watermark, when incremental).
    #[serde(default)]
    pub start: Option<i64>,
    /// Microseconds since the epoch, inclusive; absent: now.
    #[serde(default)]
    pub end: Option<i64>,
    /// Start each view at its watermark.
    #[serde(default)]
    pub incremental: bool,
}

/// Where a materialization is, for a progress bar.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub view: String,
    /// Source rows read so far, and in all.
    pub rows_done: u64,
    pub rows_total: u64,
}

/// What one view's materialization did.
#[derive(Debug, Clone, Serialize)]
pub struct ViewMaterialized {
    pub name: String,
    /// `batch` or `stream`.
    pub kind: &'static str,
    pub start: Option<i64>,
    pub end: i64,
    /// Source rows in the range.
    pub rows: u64,
    /// Entities written (batch views) or whose windows were written
    /// (stream views).
    pub entities_written: u64,
    /// Entities whose online row was newer than the source's latest.
    pub kept_newer: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaterializeReport {
    pub views: Vec<ViewMaterialized>,
    pub elapsed_ms: u64,
}

/// Entries written per store call.
const WRITE_CHUNK: usize = 20_000;

/// The winning row of one entity so far.
struct Winner {
    ts: i64,
    created: i64,
    value: Vec<u8>,
}

impl OnlineFeatures {
    /// Materializes the views `req` names (all online views by default).
    pub async fn materialize(
        &self,
        req: &MaterializeRequest,
        progress: Option<&(dyn Fn(&Progress) + Send + Sync)>,
    ) -> Result<MaterializeReport> {
        let started = Instant::now();
        let compiled = self.compiled().await?;
        let repo = compiled.repo();
        let mut names: Vec<String> = Vec::new();
        if req.views.is_empty() {
            names.extend(
                repo.feature_views
                    .iter()
                    .filter(|v| v.online)
                    .map(|v| v.name.clone()),
            );
            names.extend(
                repo.stream_feature_views
                    .iter()
                    .filter(|v| v.online)
                    .map(|v| v.name.clone()),
            );
        } else {
            for (i, name) in req.views.iter().enumerate() {
                if compiled.view(name).is_none() {
                    return Err(super::unknown_view(repo, name, &format!("views[{i}]")));
                }
                names.push(name.clone());
            }
        }
        let end = req.end.unwrap_or_else(now_micros);
        if let Some(start) = req.start
            && start > end
        {
            return Err(FeatureError::Invalid(format!(
                "start: {} is after end {}",
                super::serve::rfc3339(start),
                super::serve::rfc3339(end)
            )));
        }
        let mut report = MaterializeReport {
            views: Vec::new(),
            elapsed_ms: 0,
        };
        for name in &names {
            let Some(view) = compiled.view(name) else {
                continue;
            };
            let start = match (view.kind, req.incremental, req.start) {
                // A stream view's windows are rebuilt from every event they
                // can still count, whatever the range: merging a range into
                // them would count again the events pushes already added.
                (Kind::Stream, _, _) => Some(
                    end.saturating_sub(
                        view.aggregations
                            .iter()
                            .map(|(_, w)| w.lookback())
                            .max()
                            .unwrap_or(0),
                    ),
                ),
                (_, _, Some(s)) => Some(s),
                (_, true, None) => self.watermark(name).await?,
                (_, false, None) => None,
            };
            let one = self
                .materialize_view(&compiled, view, start, end, progress)
                .await?;
            report.views.push(one);
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    async fn materialize_view(
        &self,
        compiled: &Compiled,
        view: &OnlineView,
        start: Option<i64>,
        end: i64,
        progress: Option<&(dyn Fn(&Progress) + Send + Sync)>,
    ) -> Result<ViewMaterialized> {
        let started = Instant::now();
        let features = self.features();
        let repo = compiled.repo();
        let source = repo
            .source(&view.source)
            .ok_or_else(|| FeatureError::Corrupt(format!("view `{}` has no source", view.name)))?;
        let repo_dir = PathBuf::from(&compiled.applied.repo_dir);
        let ctx = features.catalog().engine().session()?;
        features
            .register_source(&ctx, &repo_dir, source)
            .await
            .map_err(|p| FeatureError::Definitions(vec![p]))?;
        let sql = repo
            .feature_views
            .iter()
            .find(|v| v.name == view.name)
            .and_then(|v| v.sql.clone());
        let df = match &sql {
            Some(sql) => ctx.sql(sql).await?,
            None => ctx.table(source.name.as_str()).await?,
        };
        let value_columns: Vec<String> = match view.kind {
            Kind::Batch => view.features.iter().map(|f| f.name.clone()).collect(),
            Kind::Stream => {
                let mut cols: Vec<String> = Vec::new();
                for (c, _) in &view.aggregations {
                    if !cols.contains(c) {
                        cols.push(c.clone());
                    }
                }
                cols
            }
        };
        let mut select: Vec<Expr> = view.join_keys.iter().map(ident).collect();
        select.push(ident(&view.timestamp_field));
        if let Some(c) = &view.created_field {
            select.push(ident(c));
        }
        select.extend(value_columns.iter().map(ident));
        let df = df.select(select)?;
        // The total for the progress bar: free from file metadata, but a
        // view's SQL would run twice, so such a bar counts rows only.
        let total = if sql.is_none() {
            df.clone().count().await? as u64
        } else {
            0
        };
        let mut stream = df.execute_stream().await?;
        let nk = view.join_keys.len();
        let first_value = nk + 1 + usize::from(view.created_field.is_some());
        let mut rows_in_range = 0u64;
        let mut done = 0u64;
        let mut winners: HashMap<Vec<u8>, Winner> = HashMap::new();
        let mut windows: HashMap<Vec<u8>, WindowState> = HashMap::new();
        let mut sample_key: Option<Vec<KeyPart>> = None;
        let specs: Vec<super::window::WindowSpec> =
            view.aggregations.iter().map(|(_, s)| s.clone()).collect();
        let agg_index: Vec<usize> = view
            .aggregations
            .iter()
            .map(|(c, _)| value_columns.iter().position(|v| v == c).unwrap_or(0))
            .collect();
        let bad = |m: String| FeatureError::Invalid(format!("feature view `{}`: {m}", view.name));
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let n = batch.num_rows();
            let mut keys: Vec<Vec<Option<KeyPart>>> = Vec::with_capacity(nk);
            for (i, k) in view.join_keys.iter().enumerate() {
                keys.push(key_column(batch.column(i), k).map_err(bad)?);
            }
            let ts = micros(batch.column(nk))
                .map_err(|m| bad(format!("`{}` must be {m}", view.timestamp_field)))?;
            let created = match &view.created_field {
                Some(c) => Some(
                    micros(batch.column(nk + 1)).map_err(|m| bad(format!("`{c}` must be {m}")))?,
                ),
                None => None,
            };
            let mut values = Vec::with_capacity(value_columns.len());
            for (i, name) in value_columns.iter().enumerate() {
                let col = batch.column(first_value + i);
                values.push(match view.kind {
                    Kind::Batch => cast_column(col, &view.features[i].dtype)
                        .map_err(|m| bad(format!("feature `{name}`: {m}")))?,
                    Kind::Stream => col.clone(),
                });
            }
            let mut parts = Vec::with_capacity(nk);
            'rows: for row in 0..n {
                let Some(t) = ts[row] else { continue };
                if t > end || start.is_some_and(|s| t < s) {
                    continue;
                }
                parts.clear();
                for k in &keys {
                    match &k[row] {
                        Some(p) => parts.push(p.clone()),
                        None => continue 'rows,
                    }
                }
                rows_in_range += 1;
                let key = encode_key(&parts);
                if sample_key.is_none() {
                    sample_key = Some(parts.clone());
                }
                match view.kind {
                    Kind::Batch => {
                        let c = created.as_ref().and_then(|c| c[row]).unwrap_or(i64::MIN);
                        let wins = winners
                            .get(&key)
                            .is_none_or(|w| (t, c) >= (w.ts, w.created));
                        if wins {
                            let row_values: Vec<Value> =
                                values.iter().map(|a| cell(a.as_ref(), row)).collect();
                            let value = encode_row(
                                view.features
                                    .iter()
                                    .map(|f| f.name.as_str())
                                    .zip(row_values.iter()),
                            );
                            winners.insert(
                                key,
                                Winner {
                                    ts: t,
                                    created: c,
                                    value,
                                },
                            );
                        }
                    }
                    Kind::Stream => {
                        let event: Vec<Value> = agg_index
                            .iter()
                            .map(|&i| super::write::stream_cell(values[i].as_ref(), row))
                            .collect();
                        windows.entry(key).or_default().add(&specs, t, &event);
                    }
                }
            }
            done += n as u64;
            if let Some(p) = progress {
                p(&Progress {
                    view: view.name.clone(),
                    rows_done: done,
                    rows_total: total.max(done),
                });
            }
        }
        let kinds = match &sample_key {
            Some(sample) => OnlineFeatures::check_key_kinds(
                compiled,
                view,
                std::iter::once((0, sample.as_slice())),
                |key, _| format!("source `{}` column `{key}`", view.source),
            )?,
            None => None,
        };
        let (written, kept) = match view.kind {
            Kind::Batch => {
                let mut entries: Vec<Entry> = winners
                    .into_iter()
                    .map(|(key, w)| Entry {
                        key,
                        event_ts: w.ts,
                        value: w.value,
                    })
                    .collect();
                let count = entries.len() as u64;
                let mut written = 0;
                while !entries.is_empty() {
                    let chunk: Vec<Entry> =
                        entries.drain(..entries.len().min(WRITE_CHUNK)).collect();
                    written += self
                        .store()
                        .write_newest(&view.table, chunk, Durability::Buffered)
                        .await
                        .map_err(online_error)?;
                }
                (written, count - written.min(count))
            }
            Kind::Stream => {
                let entries: Vec<Entry> = windows
                    .into_iter()
                    .map(|(key, st)| Entry {
                        key,
                        event_ts: st.max_ts,
                        value: st.encode(),
                    })
                    .collect();
                let count = entries.len() as u64;
                for chunk in entries.chunks(WRITE_CHUNK) {
                    self.store()
                        .put(&view.table, chunk.to_vec(), Durability::Buffered)
                        .await
                        .map_err(online_error)?;
                }
                (count, 0)
            }
        };
        if let Some(kinds) = kinds {
            self.record_key_kinds(compiled, view, kinds).await?;
        }
        self.set_watermark(&view.name, end).await?;
        Ok(ViewMaterialized {
            name: view.name.clone(),
            kind: match view.kind {
                Kind::Batch => "batch",
                Kind::Stream => "stream",
            },
            start,
            end,
            rows: rows_in_range,
            entities_written: written,
            kept_newer: kept,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }
}
