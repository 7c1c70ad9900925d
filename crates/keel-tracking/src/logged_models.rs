//! MLflow 3's logged models: a model's own record (name, status, params,
//! tags, metrics logged against it) with its files under
//! `<experiment artifact location>/models/<model_id>/artifacts`. This is
//! what `mlflow.<flavor>.log_model` writes and what `runs:/` and `models:/`
//! URIs resolve through.

use keel_core::time::now_millis;
use keel_store::{AnyConnection, QueryBuilder, Row, SqlValue, bind_all, dialect_of};

use crate::error::TrackingError;
use crate::model::*;
use crate::run_names::run_name_for;
use crate::search;
use crate::store::{
    METRIC_COLUMNS, Tracking, active_run, decode_page_token, encode_page_token, load_experiment,
    metric_from_row, push_list, tag_from_row,
};
use crate::validate::{self, Limits};

type Result<T, E = TrackingError> = std::result::Result<T, E>;

const LOGGED_MODEL_COLUMNS: &str = "m.model_id, m.experiment_id, m.name, m.artifact_location, m.creation_timestamp_ms, \
     m.last_updated_timestamp_ms, m.status, m.lifecycle_stage, m.model_type, m.source_run_id, m.status_message";
const SEARCH_DEFAULT_RESULTS: i64 = 100;

fn model_not_found(id: &str) -> TrackingError {
    TrackingError::NotFound {
        kind: "Logged model",
        id: id.to_owned(),
    }
}

/// MLflow's rule: a logged model name is non-empty and has none of `/ : . % " '`.
fn validate_model_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(TrackingError::invalid(
            "Invalid model name '' (field 'name'): it must not be empty",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '.' | '%' | '"' | '\''))
    {
        return Err(TrackingError::invalid(format!(
            "Invalid model name '{name}' (field 'name'): it must not contain '{bad}' (nor any of / : . % \" ')"
        )));
    }
    Ok(())
}

impl Tracking {
    pub async fn create_logged_model(&self, new: NewLoggedModel) -> Result<LoggedModel> {
        let model_uuid = uuid::Uuid::new_v4();
        let model_id = format!("m-{}", model_uuid.simple());
        let name = match new.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => run_name_for(&model_uuid),
        };
        validate_model_name(&name)?;
        new.params.iter().try_for_each(validate::param)?;
        new.tags.iter().try_for_each(validate::tag)?;
        let id = model_id.clone();
        self.db()
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let Some(exp) = load_experiment(conn, new.experiment_id).await? else {
                        return Err(TrackingError::experiment_not_found(new.experiment_id));
                    };
                    if exp.lifecycle_stage != LifecycleStage::Active {
                        return Err(TrackingError::invalid(format!(
                            "The experiment {} must be in the 'active' state. Current state is deleted.",
                            new.experiment_id
                        )));
                    }
                    if let Some(run) = &new.source_run_id {
                        active_run(conn, run).await?;
                    }
                    let location = format!(
                        "{}/models/{id}/artifacts",
                        exp.artifact_location.trim_end_matches('/')
                    );
                    let now = now_millis();
                    sqlx::query(
                        "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, \
                         last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) \
                         VALUES ($1, $2, $3, $4, $5, $5, $6, 'active', $7, $8, NULL)",
                    )
                    .bind(id.as_str())
                    .bind(new.experiment_id)
                    .bind(name.as_str())
                    .bind(location.as_str())
                    .bind(now)
                    .bind(LoggedModelStatus::Pending.as_str())
                    .bind(new.model_type.as_deref())
                    .bind(new.source_run_id.as_deref())
                    .execute(&mut *conn)
                    .await?;
                    upsert_pairs(conn, "logged_model_params", &id, &new.params, false).await?;
                    upsert_pairs(conn, "logged_model_tags", &id, &new.tags, true).await?;
                    Ok(())
                })
            })
            .await?;
        self.get_logged_model(&model_id, false).await
    }

    pub async fn get_logged_model(
        &self,
        model_id: &str,
        allow_deleted: bool,
    ) -> Result<LoggedModel> {
        let mut conn = self.db().reader().acquire().await?;
        let model = load_logged_model(&mut conn, model_id)
            .await?
            .ok_or_else(|| model_not_found(model_id))?;
        if model.lifecycle_stage == LifecycleStage::Deleted && !allow_deleted {
            return Err(model_not_found(model_id));
        }
        Ok(model)
    }

    /// Marks the upload done (or failed).
    pub async fn finalize_logged_model(
        &self,
        model_id: String,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let id = model_id.clone();
        self.db()
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE logged_models SET status = $1, last_updated_timestamp_ms = $2 \
                         WHERE model_id = $3 AND lifecycle_stage = 'active'",
                    )
                    .bind(status.as_str())
                    .bind(now_millis())
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(model_not_found(&id));
                    }
                    Ok(())
                })
            })
            .await?;
        self.get_logged_model(&model_id, false).await
    }

    pub async fn delete_logged_model(&self, model_id: String) -> Result<()> {
        self.db()
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = $1 \
                         WHERE model_id = $2 AND lifecycle_stage = 'active'",
                    )
                    .bind(now_millis())
                    .bind(model_id.as_str())
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(model_not_found(&model_id));
                    }
                    Ok(())
                })
            })
            .await
    }

    pub async fn log_logged_model_params(
        &self,
        model_id: String,
        params: Vec<Param>,
    ) -> Result<()> {
        params.iter().try_for_each(validate::param)?;
        self.db()
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &model_id).await?;
                    upsert_pairs(conn, "logged_model_params", &model_id, &params, false).await
                })
            })
            .await
    }

    pub async fn set_logged_model_tags(&self, model_id: String, tags: Vec<Tag>) -> Result<()> {
        tags.iter().try_for_each(validate::tag)?;
        self.db()
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &model_id).await?;
                    upsert_pairs(conn, "logged_model_tags", &model_id, &tags, true).await
                })
            })
            .await
    }

    pub async fn delete_logged_model_tag(&self, model_id: String, key: String) -> Result<()> {
        self.db()
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &model_id).await?;
                    let done = sqlx::query(
                        "DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2",
                    )
                    .bind(model_id.as_str())
                    .bind(key.as_str())
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(TrackingError::NotFound {
                            kind: "Logged model tag",
                            id: key,
                        });
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Records that a run produced these models (`run.outputs`).
    pub async fn log_outputs(&self, run_id: String, outputs: Vec<ModelOutput>) -> Result<()> {
        self.db()
            .write::<_, TrackingError, _>(move |conn| {
                Box::pin(async move {
                    active_run(conn, &run_id).await?;
                    for o in &outputs {
                        require_model(conn, &o.model_id).await?;
                        sqlx::query(
                            "INSERT INTO run_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3) \
                             ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step",
                        )
                        .bind(run_id.as_str())
                        .bind(o.model_id.as_str())
                        .bind(o.step)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Logged models of some experiments, filtered with MLflow's logged-model
    /// grammar (`name = 'model'`, `metrics.acc > 0.9`, …).
    pub async fn search_logged_models(&self, s: LoggedModelSearch) -> Result<Page<LoggedModel>> {
        if s.experiment_ids.is_empty() {
            return Err(TrackingError::invalid(
                "Missing value for required parameter 'experiment_ids': name at least one experiment",
            ));
        }
        let max = validate::max_results(
            s.max_results,
            SEARCH_DEFAULT_RESULTS,
            Limits::SEARCH_MAX_RESULTS,
        )?;
        let offset = decode_page_token(s.page_token.as_deref())?;
        let filter = search::logged_models::parse_filter(&s.filter)?;
        let order: Vec<(String, bool)> = s
            .order_by
            .iter()
            .map(|o| (o.field_name.clone(), o.ascending))
            .collect();
        let order = search::logged_models::parse_order_by(&order)?;
        let mut q = QueryBuilder::new();
        q.push("SELECT m.model_id FROM logged_models m");
        search::logged_models::push_order_joins(&order, &mut q);
        q.push(" WHERE m.lifecycle_stage = 'active' AND m.experiment_id IN (");
        push_list(&mut q, s.experiment_ids.iter().map(|i| SqlValue::Int(*i)));
        q.push(")");
        if let Some(f) = &filter {
            q.push(" AND (");
            search::logged_models::push_filter(f, self.db().dialect(), &mut q);
            q.push(")");
        }
        q.push(" ORDER BY ");
        search::logged_models::push_order_by(&order, &mut q);
        q.push(" LIMIT ")
            .push_bind(max + 1)
            .push(" OFFSET ")
            .push_bind(offset);
        let (sql, binds) = q.into_parts_for(self.db().dialect());
        let mut conn = self.db().reader().acquire().await?;
        let rows = bind_all(sql, &binds).fetch_all(&mut *conn).await?;
        let more = rows.len() as i64 > max;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(max as usize) {
            let id: String = row.try_get(0)?;
            if let Some(m) = load_logged_model(&mut conn, &id).await? {
                items.push(m);
            }
        }
        Ok(Page {
            items,
            next_page_token: more.then(|| encode_page_token(offset + max)),
        })
    }
}

async fn require_model(conn: &mut AnyConnection, model_id: &str) -> Result<()> {
    let row = sqlx::query("SELECT lifecycle_stage FROM logged_models WHERE model_id = $1")
        .bind(model_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(r) if r.try_get::<String, _>(0)? == "active" => Ok(()),
        _ => Err(model_not_found(model_id)),
    }
}

/// Inserts key/value pairs; tags overwrite, params keep their first value.
async fn upsert_pairs(
    conn: &mut AnyConnection,
    table: &'static str,
    model_id: &str,
    pairs: &[Tag],
    overwrite: bool,
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut dedup: Vec<&Tag> = Vec::with_capacity(pairs.len());
    for p in pairs.iter().rev() {
        if !dedup.iter().any(|d| d.key == p.key) {
            dedup.push(p);
        }
    }
    let mut q = QueryBuilder::new();
    q.push("INSERT INTO ")
        .push(table)
        .push(" (model_id, key, value) VALUES ");
    for (i, p) in dedup.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" });
        q.push_bind(model_id)
            .push(", ")
            .push_bind(p.key.as_str())
            .push(", ")
            .push_bind(p.value.as_str())
            .push(")");
    }
    q.push(if overwrite {
        " ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
    } else {
        " ON CONFLICT (model_id, key) DO NOTHING"
    });
    let (sql, binds) = q.into_parts_for(dialect_of(conn));
    bind_all(sql, &binds).execute(&mut *conn).await?;
    Ok(())
}

async fn load_logged_model(
    conn: &mut AnyConnection,
    model_id: &str,
) -> Result<Option<LoggedModel>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LOGGED_MODEL_COLUMNS} FROM logged_models m WHERE m.model_id = $1"
    )))
    .bind(model_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let pairs = |table: &'static str| {
        format!("SELECT key, value FROM {table} WHERE model_id = $1 ORDER BY key")
    };
    let tags = sqlx::query(sqlx::AssertSqlSafe(pairs("logged_model_tags")))
        .bind(model_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(tag_from_row)
        .collect::<Result<Vec<_>>>()?;
    let params = sqlx::query(sqlx::AssertSqlSafe(pairs("logged_model_params")))
        .bind(model_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(tag_from_row)
        .collect::<Result<Vec<_>>>()?;
    let metrics = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {METRIC_COLUMNS} FROM metrics WHERE model_id = $1 ORDER BY key, step, timestamp"
    )))
    .bind(model_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(metric_from_row)
    .collect::<Result<Vec<_>>>()?;
    let status: String = row.try_get(6)?;
    let stage: String = row.try_get(7)?;
    Ok(Some(LoggedModel {
        model_id: row.try_get(0)?,
        experiment_id: row.try_get(1)?,
        name: row.try_get(2)?,
        artifact_location: row.try_get(3)?,
        creation_timestamp_ms: row.try_get(4)?,
        last_updated_timestamp_ms: row.try_get(5)?,
        status: LoggedModelStatus::parse(&status).unwrap_or(LoggedModelStatus::Pending),
        lifecycle_stage: LifecycleStage::parse(&stage).unwrap_or(LifecycleStage::Active),
        model_type: row.try_get(8)?,
        source_run_id: row.try_get(9)?,
        status_message: row.try_get(10)?,
        tags,
        params,
        metrics,
    }))
}
