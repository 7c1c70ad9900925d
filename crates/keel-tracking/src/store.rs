//! The tracking service over the metadata store. Every write runs inside
//! one [`Db::write`] transaction, so a failed request leaves nothing behind.

use std::collections::HashMap;

use base64::Engine;
use keel_core::time::now_millis;
use keel_store::{
    AnyConnection, AnyRow, Db, Dialect, QueryBuilder, Row, SqlValue, bind_all, dialect_of,
};

use crate::error::TrackingError;
use crate::model::*;
use crate::run_names::run_name_for;
use crate::search::{self, Expr, Membership};
use crate::validate::{self, Limits};

type Result<T, E = TrackingError> = std::result::Result<T, E>;

/// The tag MLflow mirrors the run name into.
pub const RUN_NAME_TAG: &str = "mlflow.runName";
const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";
const RUN_COLUMNS: &str = "r.run_uuid, r.experiment_id, r.run_name, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage";
const EXPERIMENT_COLUMNS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";
/// `is_nan` read as a 0/1 integer: the `Any` driver cannot decode SQLite
/// booleans.
const IS_NAN: &str = "CAST(CASE WHEN is_nan THEN 1 ELSE 0 END AS BIGINT)";
/// The columns [`metric_from_row`] reads.
pub(crate) const METRIC_COLUMNS: &str = "key, value, CAST(CASE WHEN is_nan THEN 1 ELSE 0 END AS BIGINT), timestamp, step, model_id, dataset_name, dataset_digest";
/// Rows per multi-row INSERT of metric values.
const METRIC_INSERT_CHUNK: usize = 100;

/// Experiment tracking on one metadata store; cheap to clone.
#[derive(Clone)]
pub struct Tracking {
    db: Db,
}

impl Tracking {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    // ---- experiments -------------------------------------------------

    /// Creates an experiment; its artifacts live under `mlflow-artifacts:/<id>`
    /// unless `artifact_location` is given.
    pub async fn create_experiment(
        &self,
        name: String,
        artifact_location: Option<String>,
        tags: Vec<Tag>,
    ) -> Result<i64> {
        validate::experiment_name(&name)?;
        tags.iter().try_for_each(validate::experiment_tag)?;
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let existing = sqlx::query("SELECT lifecycle_stage FROM experiments WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                    if let Some(row) = existing {
                        let stage: String = row.try_get(0)?;
                        return Err(experiment_exists(&name, &stage));
                    }
                    let now = now_millis();
                    let row = sqlx::query(
                        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
                         VALUES ($1, '', 'active', $2, $2) RETURNING experiment_id",
                    )
                    .bind(name.as_str())
                    .bind(now)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| unique_to_exists(e, || experiment_exists(&name, "active")))?;
                    let id: i64 = row.try_get(0)?;
                    let location = match artifact_location.filter(|l| !l.is_empty()) {
                        Some(l) => l,
                        None => format!("mlflow-artifacts:/{id}"),
                    };
                    sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
                        .bind(location)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    for t in &tags {
                        upsert_experiment_tag(conn, id, t).await?;
                    }
                    Ok(id)
                })
            })
            .await
    }

    pub async fn get_experiment(&self, id: i64) -> Result<Experiment> {
        let mut conn = self.db.reader().acquire().await?;
        load_experiment(&mut conn, id)
            .await?
            .ok_or_else(|| TrackingError::experiment_not_found(id))
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let mut conn = self.db.reader().acquire().await?;
        let row = sqlx::query("SELECT experiment_id FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            return Err(TrackingError::NotFound {
                kind: "Experiment with name",
                id: name.to_owned(),
            });
        };
        let id: i64 = row.try_get(0)?;
        load_experiment(&mut conn, id)
            .await?
            .ok_or_else(|| TrackingError::experiment_not_found(id))
    }

    pub async fn search_experiments(&self, s: ExperimentSearch) -> Result<Page<Experiment>> {
        let max = validate::max_results(
            s.max_results,
            Limits::SEARCH_DEFAULT_RESULTS,
            Limits::SEARCH_MAX_RESULTS,
        )?;
        let offset = decode_page_token(s.page_token.as_deref())?;
        let filter = search::experiments::parse_filter(&s.filter)?;
        let order = search::experiments::parse_order_by(&s.order_by)?;
        let mut q = QueryBuilder::new();
        q.push("SELECT e.experiment_id FROM experiments e WHERE e.lifecycle_stage IN (");
        push_list(&mut q, s.view.stages().iter().map(|s| SqlValue::from(*s)));
        q.push(")");
        if let Some(f) = &filter {
            q.push(" AND (");
            search::experiments::push_filter(f, self.db.dialect(), &mut q);
            q.push(")");
        }
        q.push(" ORDER BY ");
        search::experiments::push_order_by(&order, &mut q);
        q.push(" LIMIT ")
            .push_bind(max + 1)
            .push(" OFFSET ")
            .push_bind(offset);
        let (sql, binds) = q.into_parts_for(self.db.dialect());
        let mut conn = self.db.reader().acquire().await?;
        let rows = bind_all(sql, &binds).fetch_all(&mut *conn).await?;
        let more = rows.len() as i64 > max;
        let mut items = Vec::with_capacity(rows.len().min(max as usize));
        for row in rows.iter().take(max as usize) {
            let id: i64 = row.try_get(0)?;
            if let Some(e) = load_experiment(&mut conn, id).await? {
                items.push(e);
            }
        }
        Ok(Page {
            items,
            next_page_token: more.then(|| encode_page_token(offset + max)),
        })
    }

    pub async fn rename_experiment(&self, id: i64, new_name: String) -> Result<()> {
        validate::experiment_name(&new_name)?;
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let stage = experiment_stage(conn, id).await?;
                    if stage != "active" {
                        return Err(TrackingError::invalid(format!(
                            "Cannot rename a non-active experiment {id} (field 'experiment_id'); restore it first."
                        )));
                    }
                    sqlx::query("UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3")
                        .bind(new_name.as_str())
                        .bind(now_millis())
                        .bind(id)
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| unique_to_exists(e, || experiment_exists(&new_name, "active")))?;
                    Ok(())
                })
            })
            .await
    }

    /// Soft delete: the experiment and its runs move to the trash.
    pub async fn delete_experiment(&self, id: i64) -> Result<()> {
        self.set_experiment_stage(id, LifecycleStage::Deleted).await
    }

    pub async fn restore_experiment(&self, id: i64) -> Result<()> {
        self.set_experiment_stage(id, LifecycleStage::Active).await
    }

    async fn set_experiment_stage(&self, id: i64, stage: LifecycleStage) -> Result<()> {
        if id == 0 && stage == LifecycleStage::Deleted {
            return Err(TrackingError::invalid(
                "Cannot delete the default experiment '0' (field 'experiment_id'). This is an internally reserved experiment.",
            ));
        }
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let current = experiment_stage(conn, id).await?;
                    if stage == LifecycleStage::Active && current == "active" {
                        return Err(TrackingError::invalid(format!(
                            "Cannot restore an active experiment {id} (field 'experiment_id')."
                        )));
                    }
                    let now = now_millis();
                    let from = match stage {
                        LifecycleStage::Active => "deleted",
                        LifecycleStage::Deleted => "active",
                    };
                    sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
                        .bind(stage.as_str())
                        .bind(now)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
                    sqlx::query(
                        "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3 AND lifecycle_stage = $4",
                    )
                    .bind(stage.as_str())
                    .bind(deleted_time)
                    .bind(id)
                    .bind(from)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Hard delete: the experiment, its runs and all their data are gone and
    /// the name is free at once. Returns the experiment as it was, so the
    /// caller can remove its artifacts.
    pub async fn purge_experiment(&self, id: i64) -> Result<Experiment> {
        if id == 0 {
            return Err(TrackingError::invalid(
                "Cannot delete the default experiment '0' (field 'experiment_id').",
            ));
        }
        let experiment = self.get_experiment(id).await?;
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    for table in ["params", "tags", "metrics", "latest_metrics", "run_inputs"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE run_uuid IN (SELECT run_uuid FROM runs WHERE experiment_id = $1)"
                        )))
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    }
                    for table in ["runs", "datasets", "experiment_tags", "experiments"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE experiment_id = $1")))
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(experiment)
    }

    pub async fn set_experiment_tag(&self, id: i64, tag: Tag) -> Result<()> {
        validate::experiment_tag(&tag)?;
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let stage = experiment_stage(conn, id).await?;
                    if stage != "active" {
                        return Err(TrackingError::invalid(format!(
                            "The experiment {id} must be in the 'active' state. Current state is {stage}."
                        )));
                    }
                    upsert_experiment_tag(conn, id, &tag).await
                })
            })
            .await
    }

    pub async fn delete_experiment_tag(&self, id: i64, key: String) -> Result<()> {
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    experiment_stage(conn, id).await?;
                    let done = sqlx::query(
                        "DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2",
                    )
                    .bind(id)
                    .bind(key.as_str())
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(TrackingError::NotFound {
                            kind: "Experiment tag",
                            id: key,
                        });
                    }
                    Ok(())
                })
            })
            .await
    }

    // ---- runs ---------------------------------------------------------

    pub async fn create_run(&self, mut new: NewRun) -> Result<Run> {
        new.tags.iter().try_for_each(validate::tag)?;
        for t in &mut new.tags {
            validate::truncate(&mut t.value, Limits::TAG_VALUE_LENGTH);
        }
        let experiment_id = new.experiment_id.unwrap_or(0);
        let run_uuid = uuid::Uuid::new_v4();
        let run_id = run_uuid.simple().to_string();
        let tag_name = new
            .tags
            .iter()
            .find(|t| t.key == RUN_NAME_TAG)
            .map(|t| t.value.clone());
        if let (Some(given), Some(tagged)) = (&new.run_name, &tag_name)
            && given != tagged
            && !given.is_empty()
        {
            return Err(TrackingError::invalid(format!(
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{given}', mlflow.runName='{tagged}')."
            )));
        }
        let run_name = new
            .run_name
            .filter(|n| !n.is_empty())
            .or(tag_name)
            .unwrap_or_else(|| run_name_for(&run_uuid));
        validate::run_name(&run_name)?;
        let start_time = new.start_time.unwrap_or_else(now_millis);
        let user_id = new.user_id.unwrap_or_default();
        let mut tags = new.tags;
        tags.retain(|t| t.key != RUN_NAME_TAG);
        tags.push(Tag {
            key: RUN_NAME_TAG.into(),
            value: run_name.clone(),
        });
        let id = run_id.clone();
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let Some(exp) = load_experiment(conn, experiment_id).await? else {
                        return Err(TrackingError::experiment_not_found(experiment_id));
                    };
                    if exp.lifecycle_stage != LifecycleStage::Active {
                        return Err(TrackingError::invalid(format!(
                            "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
                        )));
                    }
                    let artifact_uri = format!(
                        "{}/{}/artifacts",
                        exp.artifact_location.trim_end_matches('/'),
                        id
                    );
                    sqlx::query(
                        "INSERT INTO runs (run_uuid, experiment_id, run_name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri, deleted_time) \
                         VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, 'active', $6, NULL)",
                    )
                    .bind(id.as_str())
                    .bind(experiment_id)
                    .bind(run_name.as_str())
                    .bind(user_id.as_str())
                    .bind(start_time)
                    .bind(artifact_uri.as_str())
                    .execute(&mut *conn)
                    .await?;
                    for t in &tags {
                        upsert_run_tag(conn, &id, t).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        self.get_run(&run_id).await
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let mut conn = self.db.reader().acquire().await?;
        let info = load_run_info(&mut conn, run_id)
            .await?
            .ok_or_else(|| TrackingError::run_not_found(run_id))?;
        let mut data = load_run_data(&mut conn, &[run_id.to_owned()]).await?;
        Ok(Run {
            info,
            data: Some(data.remove(run_id).unwrap_or_default()),
        })
    }

    pub async fn update_run(&self, run_id: String, update: RunUpdate) -> Result<RunInfo> {
        if let Some(name) = &update.run_name {
            validate::run_name(name)?;
        }
        let id = run_id.clone();
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    active_run(conn, &id).await?;
                    if let Some(status) = update.status {
                        sqlx::query("UPDATE runs SET status = $1 WHERE run_uuid = $2")
                            .bind(status.as_str())
                            .bind(id.as_str())
                            .execute(&mut *conn)
                            .await?;
                    }
                    if let Some(end) = update.end_time {
                        sqlx::query("UPDATE runs SET end_time = $1 WHERE run_uuid = $2")
                            .bind(end)
                            .bind(id.as_str())
                            .execute(&mut *conn)
                            .await?;
                    }
                    if let Some(name) = update.run_name.filter(|n| !n.is_empty()) {
                        set_run_name(conn, &id, &name).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        let mut conn = self.db.reader().acquire().await?;
        load_run_info(&mut conn, &run_id)
            .await?
            .ok_or_else(|| TrackingError::run_not_found(&run_id))
    }

    pub async fn delete_run(&self, run_id: String) -> Result<()> {
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    run_stage(conn, &run_id).await?;
                    sqlx::query("UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $1 WHERE run_uuid = $2")
                        .bind(now_millis())
                        .bind(run_id.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn restore_run(&self, run_id: String) -> Result<()> {
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    run_stage(conn, &run_id).await?;
                    sqlx::query("UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_uuid = $1")
                        .bind(run_id.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Hard delete of one run and all its data. Returns its info so the
    /// caller can remove its artifacts.
    pub async fn purge_run(&self, run_id: String) -> Result<RunInfo> {
        let info = {
            let mut conn = self.db.reader().acquire().await?;
            load_run_info(&mut conn, &run_id)
                .await?
                .ok_or_else(|| TrackingError::run_not_found(&run_id))?
        };
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    for table in [
                        "params",
                        "tags",
                        "metrics",
                        "latest_metrics",
                        "run_inputs",
                        "runs",
                    ] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE run_uuid = $1"
                        )))
                        .bind(run_id.as_str())
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(info)
    }

    pub async fn set_tag(&self, run_id: String, tag: Tag) -> Result<()> {
        self.log_batch(run_id, Vec::new(), Vec::new(), vec![tag])
            .await
    }

    pub async fn delete_tag(&self, run_id: String, key: String) -> Result<()> {
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    active_run(conn, &run_id).await?;
                    let done = sqlx::query("DELETE FROM tags WHERE run_uuid = $1 AND key = $2")
                        .bind(run_id.as_str())
                        .bind(key.as_str())
                        .execute(&mut *conn)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(TrackingError::NotFound {
                            kind: "Tag",
                            id: format!("{key}' on run '{run_id}"),
                        });
                    }
                    Ok(())
                })
            })
            .await
    }

    pub async fn log_metric(&self, run_id: String, metric: Metric) -> Result<()> {
        self.log_batch(run_id, vec![metric], Vec::new(), Vec::new())
            .await
    }

    pub async fn log_param(&self, run_id: String, param: Param) -> Result<()> {
        self.log_batch(run_id, Vec::new(), vec![param], Vec::new())
            .await
    }

    /// Logs metrics, params and tags atomically, within MLflow's limits.
    /// A param may be logged again only with the same value.
    pub async fn log_batch(
        &self,
        run_id: String,
        metrics: Vec<Metric>,
        mut params: Vec<Param>,
        mut tags: Vec<Tag>,
    ) -> Result<()> {
        validate::batch(&metrics, &params, &tags)?;
        for p in &mut params {
            validate::truncate(&mut p.value, Limits::PARAM_VALUE_LENGTH);
        }
        for t in &mut tags {
            validate::truncate(&mut t.value, Limits::TAG_VALUE_LENGTH);
        }
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    active_run(conn, &run_id).await?;
                    if !params.is_empty() {
                        log_params(conn, &run_id, &params).await?;
                    }
                    for t in &tags {
                        if t.key == RUN_NAME_TAG {
                            set_run_name(conn, &run_id, &t.value).await?;
                        } else {
                            upsert_run_tag(conn, &run_id, t).await?;
                        }
                    }
                    if !metrics.is_empty() {
                        log_metrics(conn, &run_id, &metrics).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Records the datasets a run consumed.
    pub async fn log_inputs(&self, run_id: String, inputs: Vec<DatasetInput>) -> Result<()> {
        for (i, input) in inputs.iter().enumerate() {
            if input.dataset.name.is_empty() || input.dataset.digest.is_empty() {
                return Err(TrackingError::invalid(format!(
                    "datasets[{i}] needs a non-empty 'name' and 'digest'"
                )));
            }
            input.tags.iter().try_for_each(validate::tag)?;
        }
        self.db
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let experiment_id = active_run(conn, &run_id).await?;
                    for input in &inputs {
                        let d = &input.dataset;
                        let existing = sqlx::query(
                            "SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
                        )
                        .bind(experiment_id)
                        .bind(d.name.as_str())
                        .bind(d.digest.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                        let dataset_uuid = match existing {
                            Some(row) => row.try_get::<String, _>(0)?,
                            None => {
                                let uuid = uuid::Uuid::new_v4().simple().to_string();
                                sqlx::query(
                                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile) \
                                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                                )
                                .bind(uuid.as_str())
                                .bind(experiment_id)
                                .bind(d.name.as_str())
                                .bind(d.digest.as_str())
                                .bind(d.source_type.as_str())
                                .bind(d.source.as_str())
                                .bind(d.schema.as_deref())
                                .bind(d.profile.as_deref())
                                .execute(&mut *conn)
                                .await?;
                                uuid
                            }
                        };
                        let context = input
                            .tags
                            .iter()
                            .find(|t| t.key == DATASET_CONTEXT_TAG)
                            .map(|t| t.value.as_str());
                        sqlx::query(
                            "INSERT INTO run_inputs (run_uuid, dataset_uuid, context, tags) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (run_uuid, dataset_uuid) DO NOTHING",
                        )
                        .bind(run_id.as_str())
                        .bind(dataset_uuid.as_str())
                        .bind(context)
                        .bind(encode_tags(&input.tags))
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// One page of a metric's full history, in MLflow's order (timestamp,
    /// step, value), at most 25,000 values a page.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        let max = validate::max_results(
            max_results.map(|m| m.min(Limits::HISTORY_MAX_RESULTS)),
            Limits::HISTORY_MAX_RESULTS,
            Limits::HISTORY_MAX_RESULTS,
        )?;
        let offset = decode_page_token(page_token)?;
        let mut conn = self.db.reader().acquire().await?;
        if load_run_info(&mut conn, run_id).await?.is_none() {
            return Err(TrackingError::run_not_found(run_id));
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {METRIC_COLUMNS} FROM metrics WHERE run_uuid = $1 AND key = $2 \
             ORDER BY timestamp, step, value LIMIT $3 OFFSET $4"
        )))
        .bind(run_id)
        .bind(key)
        .bind(max + 1)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
        let more = rows.len() as i64 > max;
        let items = rows
            .iter()
            .take(max as usize)
            .map(metric_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page {
            items,
            next_page_token: more.then(|| encode_page_token(offset + max)),
        })
    }

    /// MLflow's run search, plus `OR`/`NOT`/parentheses, search across all
    /// experiments and an info-only light mode.
    pub async fn search_runs(&self, s: RunSearch) -> Result<Page<Run>> {
        let max = validate::max_results(
            s.max_results,
            Limits::SEARCH_DEFAULT_RESULTS,
            Limits::SEARCH_MAX_RESULTS,
        )?;
        let offset = decode_page_token(s.page_token.as_deref())?;
        let filter = search::parse_filter(&s.filter)?;
        let order = search::parse_order_by(&s.order_by)?;
        if s.experiment_ids.as_ref().is_some_and(|ids| ids.is_empty()) {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        }
        let dialect = self.db.dialect();
        let mut conn = self.db.reader().acquire().await?;
        let driver = match (&filter, dialect) {
            (Some(f), Dialect::Sqlite) => shortest_membership_list(&mut conn, f).await?,
            _ => None,
        };
        let mut rows = Vec::new();
        // Ordered by one metric and no short list to start from: walk the
        // metric's (key, value) index in order and stop at the page's end.
        // Runs lacking the metric sort after all runs having it, so this is
        // exact whenever the page fills up; otherwise the general plan runs.
        if let ([first], Dialect::Sqlite, None) = (order.as_slice(), dialect, &driver)
            && let search::Key::Metric(key) = &first.key
        {
            let mut q = QueryBuilder::new();
            q.push("SELECT ")
                .push(RUN_COLUMNS)
                // CROSS JOIN: SQLite's way to fix the join order, so the
                // metric index drives.
                .push(" FROM latest_metrics ob0 CROSS JOIN runs r ON r.run_uuid = ob0.run_uuid WHERE ob0.key = ")
                .push_bind(key.as_str())
                .push(" AND ob0.is_nan = FALSE AND ");
            push_run_scope(&mut q, &s);
            if let Some(f) = &filter {
                q.push(" AND (");
                search::push_filter_planned(f, dialect, Membership::Probe, &mut q);
                q.push(")");
            }
            q.push(if first.ascending {
                " ORDER BY ob0.value ASC"
            } else {
                " ORDER BY ob0.value DESC"
            })
            .push(", r.start_time DESC, r.run_uuid ASC LIMIT ")
            .push_bind(max + 1)
            .push(" OFFSET ")
            .push_bind(offset);
            let (sql, binds) = q.into_parts_for(dialect);
            rows = bind_all(sql, &binds).fetch_all(&mut *conn).await?;
            if (rows.len() as i64) <= max {
                rows.clear();
            }
        }
        if rows.is_empty() {
            let mut q = QueryBuilder::new();
            q.push("SELECT ").push(RUN_COLUMNS);
            match &driver {
                // Start from the short list; CROSS JOIN keeps SQLite from
                // reordering the join (without statistics it may scan all
                // runs instead).
                Some(Expr::Compare(c)) => {
                    q.push(" FROM (");
                    search::push_membership_rows(c, dialect, &mut q);
                    q.push(") drv CROSS JOIN runs r ON r.run_uuid = drv.run_uuid ");
                }
                _ => {
                    q.push(" FROM runs r ");
                }
            }
            search::push_order_joins(&order, &mut q);
            q.push(" WHERE ");
            push_run_scope(&mut q, &s);
            if let Some(f) = &filter {
                q.push(" AND (");
                match dialect {
                    Dialect::Postgres => search::push_filter(f, dialect, &mut q),
                    Dialect::Sqlite => {
                        search::push_filter_planned(f, dialect, Membership::Probe, &mut q)
                    }
                }
                q.push(")");
            }
            q.push(" ORDER BY ");
            search::push_order_by(&order, &mut q);
            q.push(" LIMIT ")
                .push_bind(max + 1)
                .push(" OFFSET ")
                .push_bind(offset);
            let (sql, binds) = q.into_parts_for(dialect);
            rows = bind_all(sql, &binds).fetch_all(&mut *conn).await?;
        }
        let more = rows.len() as i64 > max;
        let infos = rows
            .iter()
            .take(max as usize)
            .map(run_info_from_row)
            .collect::<Result<Vec<_>>>()?;
        let items = if s.info_only {
            infos
                .into_iter()
                .map(|info| Run { info, data: None })
                .collect()
        } else {
            let ids: Vec<String> = infos.iter().map(|i| i.run_id.clone()).collect();
            let mut data = load_run_data(&mut conn, &ids).await?;
            infos
                .into_iter()
                .map(|info| {
                    let d = data.remove(&info.run_id).unwrap_or_default();
                    Run {
                        info,
                        data: Some(d),
                    }
                })
                .collect()
        };
        Ok(Page {
            items,
            next_page_token: more.then(|| encode_page_token(offset + max)),
        })
    }
}

// ---- helpers over one connection ---------------------------------------

/// `r.lifecycle_stage IN (…) [AND r.experiment_id IN (…)]`.
fn push_run_scope(q: &mut QueryBuilder, s: &RunSearch) {
    q.push("r.lifecycle_stage IN (");
    push_list(q, s.view.stages().iter().map(|s| SqlValue::from(*s)));
    q.push(")");
    if let Some(ids) = &s.experiment_ids {
        q.push(" AND r.experiment_id IN (");
        push_list(q, ids.iter().map(|i| SqlValue::Int(*i)));
        q.push(")");
    }
}

/// A membership list (metric, param, tag comparison) holding at most this
/// many runs drives the search plan; longer lists are only probed while the
/// runs are scanned in order.
const DRIVING_LIST_MAX: i64 = 2000;

/// Among the top-level `AND` terms of `filter` that compile to membership
/// lists, the first whose list holds at most [`DRIVING_LIST_MAX`] rows. Each
/// count reads at most that many index entries.
async fn shortest_membership_list(conn: &mut AnyConnection, filter: &Expr) -> Result<Option<Expr>> {
    let terms: Vec<&Expr> = match filter {
        Expr::And(children) => children.iter().collect(),
        other => vec![other],
    };
    for term in terms {
        let Expr::Compare(c) = term else { continue };
        let mut q = QueryBuilder::new();
        q.push("SELECT COUNT(*) FROM (");
        if !search::push_membership_rows(c, Dialect::Sqlite, &mut q) {
            continue;
        }
        q.push(" LIMIT ")
            .push_bind(DRIVING_LIST_MAX + 1)
            .push(") AS list_rows");
        let (sql, binds) = q.into_parts_for(dialect_of(conn));
        let count: i64 = bind_all(sql, &binds)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if count <= DRIVING_LIST_MAX {
            return Ok(Some(term.clone()));
        }
    }
    Ok(None)
}

fn experiment_exists(name: &str, stage: &str) -> TrackingError {
    if stage == "deleted" {
        TrackingError::AlreadyExists(format!(
            "Experiment '{name}' already exists in deleted state. Restore it, or delete it permanently (experiments/delete with \"permanent\": true) to reuse the name."
        ))
    } else {
        TrackingError::AlreadyExists(format!("Experiment(name={name}) already exists."))
    }
}

pub(crate) fn unique_to_exists(
    e: sqlx::Error,
    exists: impl FnOnce() -> TrackingError,
) -> TrackingError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => exists(),
        _ => e.into(),
    }
}

pub(crate) fn push_list(q: &mut QueryBuilder, values: impl Iterator<Item = SqlValue>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push_bind(v);
    }
}

pub(crate) async fn experiment_stage(conn: &mut AnyConnection, id: i64) -> Result<String> {
    let row = sqlx::query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(TrackingError::experiment_not_found(id)),
    }
}

pub(crate) async fn load_experiment(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<Experiment>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE experiment_id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let tags =
        sqlx::query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(tag_from_row)
            .collect::<Result<Vec<_>>>()?;
    let stage: String = row.try_get(3)?;
    Ok(Some(Experiment {
        experiment_id: row.try_get(0)?,
        name: row.try_get(1)?,
        artifact_location: row.try_get(2)?,
        lifecycle_stage: LifecycleStage::parse(&stage).unwrap_or(LifecycleStage::Active),
        creation_time: row.try_get(4)?,
        last_update_time: row.try_get(5)?,
        tags,
    }))
}

async fn upsert_experiment_tag(conn: &mut AnyConnection, id: i64, t: &Tag) -> Result<()> {
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .bind(t.key.as_str())
    .bind(t.value.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn run_stage(conn: &mut AnyConnection, run_id: &str) -> Result<(String, i64)> {
    let row = sqlx::query("SELECT lifecycle_stage, experiment_id FROM runs WHERE run_uuid = $1")
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok((row.try_get(0)?, row.try_get(1)?)),
        None => Err(TrackingError::run_not_found(run_id)),
    }
}

/// Checks the run exists and is active; returns its experiment id.
pub(crate) async fn active_run(conn: &mut AnyConnection, run_id: &str) -> Result<i64> {
    let (stage, experiment_id) = run_stage(conn, run_id).await?;
    if stage != "active" {
        return Err(TrackingError::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {stage}."
        )));
    }
    Ok(experiment_id)
}

async fn set_run_name(conn: &mut AnyConnection, run_id: &str, name: &str) -> Result<()> {
    validate::run_name(name)?;
    sqlx::query("UPDATE runs SET run_name = $1 WHERE run_uuid = $2")
        .bind(name)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    upsert_run_tag(
        conn,
        run_id,
        &Tag {
            key: RUN_NAME_TAG.into(),
            value: name.into(),
        },
    )
    .await
}

async fn upsert_run_tag(conn: &mut AnyConnection, run_id: &str, t: &Tag) -> Result<()> {
    sqlx::query(
        "INSERT INTO tags (run_uuid, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
    )
    .bind(run_id)
    .bind(t.key.as_str())
    .bind(t.value.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn log_params(conn: &mut AnyConnection, run_id: &str, params: &[Param]) -> Result<()> {
    let mut q = QueryBuilder::new();
    q.push("SELECT key, value FROM params WHERE run_uuid = ")
        .push_bind(run_id)
        .push(" AND key IN (");
    push_list(
        &mut q,
        params.iter().map(|p| SqlValue::from(p.key.as_str())),
    );
    q.push(")");
    let (sql, binds) = q.into_parts_for(dialect_of(conn));
    let existing: HashMap<String, String> = bind_all(sql, &binds)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    let changed: Vec<&Param> = params
        .iter()
        .filter(|p| existing.get(&p.key).is_some_and(|v| *v != p.value))
        .collect();
    if !changed.is_empty() {
        let detail: Vec<String> = changed
            .iter()
            .map(|p| {
                format!(
                    "'{}': logged '{}', new '{}'",
                    p.key, existing[&p.key], p.value
                )
            })
            .collect();
        return Err(TrackingError::invalid(format!(
            "Changing param values is not allowed. Params were already logged for run ID='{run_id}': {}",
            detail.join("; ")
        )));
    }
    let mut q = QueryBuilder::new();
    q.push("INSERT INTO params (run_uuid, key, value) VALUES ");
    for (i, p) in params.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.push_bind(run_id)
            .push(", ")
            .push_bind(p.key.as_str())
            .push(", ")
            .push_bind(p.value.as_str())
            .push(")");
    }
    q.push(" ON CONFLICT (run_uuid, key) DO NOTHING");
    let (sql, binds) = q.into_parts_for(dialect_of(conn));
    bind_all(sql, &binds).execute(&mut *conn).await?;
    Ok(())
}

pub(crate) fn opt_text(v: &Option<String>) -> SqlValue {
    match v {
        Some(s) => SqlValue::Text(s.clone()),
        None => SqlValue::Null,
    }
}

fn stored_value(v: f64) -> (f64, bool) {
    if v.is_nan() { (0.0, true) } else { (v, false) }
}

async fn log_metrics(conn: &mut AnyConnection, run_id: &str, metrics: &[Metric]) -> Result<()> {
    // One row per primary key: PostgreSQL refuses an upsert that touches
    // the same row twice in one statement.
    let mut unique: Vec<&Metric> = Vec::with_capacity(metrics.len());
    let mut seen = std::collections::HashSet::with_capacity(metrics.len());
    for m in metrics.iter().rev() {
        let (value, is_nan) = stored_value(m.value);
        if seen.insert((m.key.as_str(), m.step, m.timestamp, value.to_bits(), is_nan)) {
            unique.push(m);
        }
    }
    unique.reverse();
    for chunk in unique.chunks(METRIC_INSERT_CHUNK) {
        let mut q = QueryBuilder::new();
        q.push(
            "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest) VALUES ",
        );
        for (i, m) in chunk.iter().enumerate() {
            let (value, is_nan) = stored_value(m.value);
            q.push(if i == 0 { "(" } else { ", (" });
            q.push_bind(run_id)
                .push(", ")
                .push_bind(m.key.as_str())
                .push(", ")
                .push_bind(m.step)
                .push(", ")
                .push_bind(m.timestamp)
                .push(", ")
                .push_bind(value)
                .push(", ")
                .push_bind(is_nan)
                .push(", ")
                .push_bind(opt_text(&m.model_id))
                .push(", ")
                .push_bind(opt_text(&m.dataset_name))
                .push(", ")
                .push_bind(opt_text(&m.dataset_digest))
                .push(")");
        }
        q.push(
            " ON CONFLICT (run_uuid, key, step, timestamp, value, is_nan) DO UPDATE SET \
             model_id = COALESCE(excluded.model_id, metrics.model_id), \
             dataset_name = COALESCE(excluded.dataset_name, metrics.dataset_name), \
             dataset_digest = COALESCE(excluded.dataset_digest, metrics.dataset_digest)",
        );
        let (sql, binds) = q.into_parts_for(dialect_of(conn));
        bind_all(sql, &binds).execute(&mut *conn).await?;
    }
    // The latest value per key: greatest (step, timestamp, value).
    let mut latest: HashMap<&str, &Metric> = HashMap::new();
    for m in metrics {
        let newer = match latest.get(m.key.as_str()) {
            None => true,
            Some(cur) => {
                (m.step, m.timestamp) > (cur.step, cur.timestamp)
                    || ((m.step, m.timestamp) == (cur.step, cur.timestamp)
                        && stored_value(m.value).0 > stored_value(cur.value).0)
            }
        };
        if newer {
            latest.insert(m.key.as_str(), m);
        }
    }
    for m in latest.values() {
        let (value, is_nan) = stored_value(m.value);
        sqlx::query(
            "INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan, \
             timestamp = excluded.timestamp, step = excluded.step \
             WHERE excluded.step > latest_metrics.step \
                OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
                OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                    AND excluded.value > latest_metrics.value)",
        )
        .bind(run_id)
        .bind(m.key.as_str())
        .bind(value)
        .bind(is_nan)
        .bind(m.timestamp)
        .bind(m.step)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(crate) async fn load_run_info(
    conn: &mut AnyConnection,
    run_id: &str,
) -> Result<Option<RunInfo>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = $1"
    )))
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(run_info_from_row).transpose()
}

fn run_info_from_row(row: &AnyRow) -> Result<RunInfo> {
    let status: String = row.try_get(4)?;
    let stage: String = row.try_get(8)?;
    Ok(RunInfo {
        run_id: row.try_get(0)?,
        experiment_id: row.try_get(1)?,
        run_name: row.try_get(2)?,
        user_id: row.try_get(3)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Running),
        start_time: row.try_get(5)?,
        end_time: row.try_get(6)?,
        artifact_uri: row.try_get(7)?,
        lifecycle_stage: LifecycleStage::parse(&stage).unwrap_or(LifecycleStage::Active),
    })
}

pub(crate) fn tag_from_row(row: &AnyRow) -> Result<Tag> {
    Ok(Tag {
        key: row.try_get(0)?,
        value: row.try_get(1)?,
    })
}

/// Reads `key, value, is_nan, timestamp, step, model_id, dataset_name,
/// dataset_digest` ([`METRIC_COLUMNS`]).
pub(crate) fn metric_from_row(row: &AnyRow) -> Result<Metric> {
    let is_nan = row.try_get::<i64, _>(2)? != 0;
    let value: f64 = row.try_get(1)?;
    Ok(Metric {
        key: row.try_get(0)?,
        value: if is_nan { f64::NAN } else { value },
        timestamp: row.try_get(3)?,
        step: row.try_get(4)?,
        model_id: row.try_get(5)?,
        dataset_name: row.try_get(6)?,
        dataset_digest: row.try_get(7)?,
    })
}

/// Params, tags, latest metrics and inputs of many runs, in four queries.
async fn load_run_data(
    conn: &mut AnyConnection,
    run_ids: &[String],
) -> Result<HashMap<String, RunData>> {
    let mut out: HashMap<String, RunData> = run_ids
        .iter()
        .map(|id| (id.clone(), RunData::default()))
        .collect();
    if run_ids.is_empty() {
        return Ok(out);
    }
    let dialect = dialect_of(conn);
    for chunk in run_ids.chunks(500) {
        let ids = || chunk.iter().map(|id| SqlValue::from(id.as_str()));
        let select = |sql: &str| {
            let mut q = QueryBuilder::new();
            q.push(sql).push(" WHERE run_uuid IN (");
            push_list(&mut q, ids());
            q.push(") ORDER BY 1, 2");
            q.into_parts_for(dialect)
        };
        type PairList = fn(&mut RunData) -> &mut Vec<Tag>;
        let pair_tables: [(&str, PairList); 2] =
            [("params", |d| &mut d.params), ("tags", |d| &mut d.tags)];
        for (table, list) in pair_tables {
            let (sql, binds) = select(&format!("SELECT run_uuid, key, value FROM {table}"));
            for row in bind_all(sql, &binds).fetch_all(&mut *conn).await? {
                let id: String = row.try_get(0)?;
                if let Some(d) = out.get_mut(&id) {
                    list(d).push(Tag {
                        key: row.try_get(1)?,
                        value: row.try_get(2)?,
                    });
                }
            }
        }
        let (sql, binds) = select(&format!(
            "SELECT run_uuid, key, value, {IS_NAN}, timestamp, step FROM latest_metrics"
        ));
        for row in bind_all(sql, &binds).fetch_all(&mut *conn).await? {
            let id: String = row.try_get(0)?;
            let is_nan = row.try_get::<i64, _>(3)? != 0;
            let value: f64 = row.try_get(2)?;
            let m = Metric {
                key: row.try_get(1)?,
                value: if is_nan { f64::NAN } else { value },
                timestamp: row.try_get(4)?,
                step: row.try_get(5)?,
                ..Default::default()
            };
            if let Some(d) = out.get_mut(&id) {
                d.metrics.push(m);
            }
        }
        let (sql, binds) = select("SELECT run_uuid, model_id, step FROM run_outputs");
        for row in bind_all(sql, &binds).fetch_all(&mut *conn).await? {
            let id: String = row.try_get(0)?;
            let o = ModelOutput {
                model_id: row.try_get(1)?,
                step: row.try_get(2)?,
            };
            if let Some(d) = out.get_mut(&id) {
                d.outputs.push(o);
            }
        }
        let mut q = QueryBuilder::new();
        q.push(
            "SELECT i.run_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, i.tags \
             FROM run_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid WHERE i.run_uuid IN (",
        );
        push_list(&mut q, ids());
        q.push(") ORDER BY i.run_uuid, d.name");
        let (sql, binds) = q.into_parts_for(dialect_of(conn));
        for row in bind_all(sql, &binds).fetch_all(&mut *conn).await? {
            let id: String = row.try_get(0)?;
            let tags: String = row.try_get(7)?;
            let input = DatasetInput {
                dataset: Dataset {
                    name: row.try_get(1)?,
                    digest: row.try_get(2)?,
                    source_type: row.try_get(3)?,
                    source: row.try_get(4)?,
                    schema: row.try_get(5)?,
                    profile: row.try_get(6)?,
                },
                tags: decode_tags(&tags),
            };
            if let Some(d) = out.get_mut(&id) {
                d.inputs.push(input);
            }
        }
    }
    Ok(out)
}

fn encode_tags(tags: &[Tag]) -> String {
    let list: Vec<serde_json::Value> = tags
        .iter()
        .map(|t| serde_json::json!({"key": t.key, "value": t.value}))
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn decode_tags(s: &str) -> Vec<Tag> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(s) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|v| {
            Some(Tag {
                key: v.get("key")?.as_str()?.to_owned(),
                value: v.get("value")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

/// MLflow's page token: base64 of `{"offset": N}`.
pub(crate) fn encode_page_token(offset: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

pub(crate) fn decode_page_token(token: Option<&str>) -> Result<i64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let invalid = || {
        TrackingError::invalid(format!(
            "Invalid page token '{token}' (field 'page_token'): pass the next_page_token of a previous response"
        ))
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    v.get("offset")
        .and_then(|o| o.as_i64())
        .filter(|o| *o >= 0)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(
            decode_page_token(Some(&encode_page_token(1234))).unwrap(),
            1234
        );
        assert_eq!(decode_page_token(None).unwrap(), 0);
        assert!(decode_page_token(Some("garbage!")).is_err());
        assert!(
            decode_page_token(Some(
                &base64::engine::general_purpose::STANDARD.encode("{\"offset\": -1}")
            ))
            .is_err()
        );
    }
}
