//! Alert rules over a deployment's monitoring, their state, and the metric
//! time series their evaluations leave behind — both in the metadata store.
//!
//! A rule names a deployment, a condition on one measured value over a
//! trailing window, and what to do on firing and resolving: an event sent
//! to a lifecycle instance (`drift_detected` → retrain) and/or a webhook.
//! Evaluation is pure ([`Condition::holds`], [`next_state`]); the server
//! measures the value and delivers the transitions.

use keel_core::time::now_millis;
use keel_store::{Db, Migration, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MonitorError;
use crate::drift::Comparator;

pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "monitor",
    version: 1,
    description: "alert rules and their state, metric time series",
    sqlite: include_str!("migrations/0001_monitor.sqlite.sql"),
    postgres: include_str!("migrations/0001_monitor.postgres.sql"),
}];

/// What a rule measures over its window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Measure {
    /// Share of drifted feature columns against the deployment's reference.
    DriftShare,
    /// One column's drift score (its method's score: a p-value or a distance).
    ColumnDrift { column: String },
    /// A realized metric on labelled predictions (accuracy, precision,
    /// recall, f1, roc_auc; mae, rmse).
    Metric { metric: String },
    /// A metric estimated from calibrated scores before labels arrive.
    EstimatedMetric { metric: String },
    /// 99th percentile of logged prediction latency, in milliseconds.
    LatencyP99Ms,
    /// Share of failed predictions among all requests to the deployment.
    ErrorRate,
    /// Predictions logged in the window.
    PredictionCount,
}

impl Measure {
    pub fn name(&self) -> String {
        match self {
            Measure::DriftShare => "drift_share".into(),
            Measure::ColumnDrift { column } => format!("drift_score.{column}"),
            Measure::Metric { metric } => metric.clone(),
            Measure::EstimatedMetric { metric } => format!("estimated_{metric}"),
            Measure::LatencyP99Ms => "latency_p99_ms".into(),
            Measure::ErrorRate => "error_rate".into(),
            Measure::PredictionCount => "prediction_count".into(),
        }
    }
}

/// `value OP threshold` fires the alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    #[serde(flatten)]
    pub measure: Measure,
    pub op: Comparator,
    pub threshold: f64,
}

impl<'de> Deserialize<'de> for Condition {
    /// Refuses unknown fields (serde's `deny_unknown_fields` does not work
    /// beside a flattened enum, so a typo would pass silently).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = serde_json::Map::<String, Value>::deserialize(d)?;
        const FIELDS: [&str; 5] = ["kind", "op", "threshold", "column", "metric"];
        if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(D::Error::custom(format!(
                "unknown field `{k}`, expected one of `kind`, `op`, `threshold`, `column`, `metric`"
            )));
        }
        #[derive(Deserialize)]
        struct Raw {
            #[serde(flatten)]
            measure: Measure,
            op: Comparator,
            threshold: f64,
        }
        let raw: Raw = serde_json::from_value(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Condition {
            measure: raw.measure,
            op: raw.op,
            threshold: raw.threshold,
        })
    }
}

impl Condition {
    pub fn holds(&self, value: f64) -> bool {
        value.is_finite() && self.op.holds(value, self.threshold)
    }
}

/// Where a firing or resolving alert is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleTarget {
    /// The lifecycle definition's name.
    pub name: String,
    /// The instance key (default: the deployment's name).
    #[serde(default)]
    pub key: Option<String>,
    /// Event sent on firing.
    #[serde(default = "default_fire_event")]
    pub on_fire: String,
    /// Event sent on resolving (none when absent).
    #[serde(default)]
    pub on_resolve: Option<String>,
}

fn default_fire_event() -> String {
    "drift_detected".into()
}

/// An alert rule as written by a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub deployment: String,
    pub condition: Condition,
    /// The trailing window measured, in seconds.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    /// Fire only after the condition held this many evaluations in a row.
    #[serde(default = "default_for")]
    pub for_evaluations: u32,
    /// Fewer rows than this in the window: no verdict (the state stays).
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    #[serde(default)]
    pub lifecycle: Option<LifecycleTarget>,
    /// POSTed a JSON body on every transition.
    #[serde(default)]
    pub webhook: Option<String>,
}

fn default_window() -> u64 {
    3600
}
fn default_for() -> u32 {
    1
}
fn default_min_rows() -> u64 {
    30
}

impl AlertRule {
    /// Checks the rule's values, naming the field at fault.
    pub fn validate(&self) -> Result<(), MonitorError> {
        if self.deployment.trim().is_empty() {
            return Err(MonitorError::invalid("deployment", "must not be empty"));
        }
        if !self.condition.threshold.is_finite() {
            return Err(MonitorError::invalid(
                "condition.threshold",
                "must be a finite number",
            ));
        }
        if self.window_seconds == 0 {
            return Err(MonitorError::invalid(
                "window_seconds",
                "must be at least 1",
            ));
        }
        if self.for_evaluations == 0 {
            return Err(MonitorError::invalid(
                "for_evaluations",
                "must be at least 1",
            ));
        }
        match &self.condition.measure {
            Measure::Metric { metric } => {
                let known = crate::performance::CLASSIFICATION_METRICS
                    .iter()
                    .chain(&crate::performance::REGRESSION_METRICS)
                    .any(|m| m == metric);
                if !known {
                    return Err(MonitorError::invalid(
                        "condition.metric",
                        format!(
                            "unknown metric {metric:?}; one of accuracy, precision, recall, f1, roc_auc, mae, rmse"
                        ),
                    ));
                }
            }
            Measure::EstimatedMetric { metric }
                if !["accuracy", "precision", "recall", "f1"].contains(&metric.as_str()) =>
            {
                return Err(MonitorError::invalid(
                    "condition.metric",
                    format!(
                        "{metric:?} cannot be estimated; one of accuracy, precision, recall, f1"
                    ),
                ));
            }
            Measure::ColumnDrift { column } if column.is_empty() => {
                return Err(MonitorError::invalid(
                    "condition.column",
                    "must not be empty",
                ));
            }
            _ => {}
        }
        if let Some(l) = &self.lifecycle {
            if l.name.is_empty() {
                return Err(MonitorError::invalid("lifecycle.name", "must not be empty"));
            }
            if l.on_fire.is_empty() {
                return Err(MonitorError::invalid(
                    "lifecycle.on_fire",
                    "must not be empty",
                ));
            }
        }
        if let Some(w) = &self.webhook
            && !(w.starts_with("http://") || w.starts_with("https://"))
        {
            return Err(MonitorError::invalid(
                "webhook",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    Ok,
    /// It holds, but not yet for `for_evaluations` evaluations.
    Pending,
    Firing,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [AlertState::Ok, AlertState::Pending, AlertState::Firing]
            .into_iter()
            .find(|a| a.name() == s)
    }
}

/// A transition to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Fired,
    Resolved,
}

/// The next state after an evaluation whose condition `holds`, given how
/// many evaluations in a row it held before.
pub fn next_state(
    state: AlertState,
    streak: u32,
    holds: bool,
    for_evaluations: u32,
) -> (AlertState, u32, Option<Transition>) {
    if !holds {
        let t = (state == AlertState::Firing).then_some(Transition::Resolved);
        return (AlertState::Ok, 0, t);
    }
    let streak = streak.saturating_add(1);
    match state {
        AlertState::Firing => (AlertState::Firing, streak, None),
        _ if streak >= for_evaluations => (AlertState::Firing, streak, Some(Transition::Fired)),
        _ => (AlertState::Pending, streak, None),
    }
}

/// A stored alert: its rule and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub name: String,
    pub rule: AlertRule,
    pub state: AlertState,
    pub streak: u32,
    /// When the current state began (ms since the epoch).
    pub since: i64,
    pub last_value: Option<f64>,
    pub last_evaluated: Option<i64>,
    /// Why the last evaluation had no verdict, or what delivery failed.
    pub message: Option<String>,
}

/// One point of a metric time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Start of the bucket (ms since the epoch).
    pub at: i64,
    pub value: f64,
    /// Raw points averaged into it.
    pub count: u64,
    pub min: f64,
    pub max: f64,
}

/// Alerts and metric series on the metadata store.
#[derive(Clone)]
pub struct MonitorStore {
    db: Db,
}

impl MonitorStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn put_alert(&self, name: &str, rule: &AlertRule) -> Result<Alert, MonitorError> {
        rule.validate()?;
        let text = serde_json::to_string(rule)
            .map_err(|e| MonitorError::invalid("rule", e.to_string()))?;
        let name_owned = name.to_string();
        self.db
            .write::<_, MonitorError, _>(move |conn| {
                Box::pin(async move {
                    let now = now_millis();
                    // A changed rule keeps its state: editing a threshold
                    // does not resolve a firing alert by itself.
                    sqlx::query(
                        "INSERT INTO monitor_alerts (name, rule, state, streak, since) VALUES ($1, $2, 'ok', 0, $3) \
                         ON CONFLICT (name) DO UPDATE SET rule = excluded.rule",
                    )
                    .bind(name_owned.as_str())
                    .bind(text.as_str())
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        self.alert(name)
            .await?
            .ok_or_else(|| MonitorError::invalid("name", "the alert vanished while being written"))
    }

    pub async fn delete_alert(&self, name: &str) -> Result<bool, MonitorError> {
        let name = name.to_string();
        self.db
            .write::<_, MonitorError, _>(move |conn| {
                Box::pin(async move {
                    let r = sqlx::query("DELETE FROM monitor_alerts WHERE name = $1")
                        .bind(name.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(r.rows_affected() > 0)
                })
            })
            .await
    }

    pub async fn alert(&self, name: &str) -> Result<Option<Alert>, MonitorError> {
        let row = sqlx::query(
            "SELECT name, rule, state, streak, since, last_value, last_evaluated, message FROM monitor_alerts WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db.reader())
        .await?;
        row.map(|r| alert_from_row(&r)).transpose()
    }

    pub async fn alerts(&self) -> Result<Vec<Alert>, MonitorError> {
        let rows = sqlx::query(
            "SELECT name, rule, state, streak, since, last_value, last_evaluated, message FROM monitor_alerts ORDER BY name",
        )
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(alert_from_row).collect()
    }

    /// Records an evaluation's outcome.
    pub async fn set_state(
        &self,
        name: &str,
        state: AlertState,
        streak: u32,
        changed: bool,
        value: Option<f64>,
        message: Option<String>,
    ) -> Result<(), MonitorError> {
        let name = name.to_string();
        self.db
            .write::<_, MonitorError, _>(move |conn| {
                Box::pin(async move {
                    let now = now_millis();
                    // `since` moves only on a change of state. (A `CASE
                    // WHEN $n = 1` would make PostgreSQL infer an int4
                    // parameter for the int8 bound here.) A missing value
                    // is written as a literal NULL, not a bound `None`:
                    // sqlx's Any driver declares a NULL double as float4 on
                    // PostgreSQL, and the statement cached with that type
                    // then refuses the next real value.
                    let sql = match value.filter(|v| v.is_finite()) {
                        Some(_) => {
                            "UPDATE monitor_alerts SET state = $1, streak = $2, since = COALESCE($3, since), \
                             last_evaluated = $4, message = $5, last_value = $7 WHERE name = $6"
                        }
                        None => {
                            "UPDATE monitor_alerts SET state = $1, streak = $2, since = COALESCE($3, since), \
                             last_evaluated = $4, message = $5, last_value = NULL WHERE name = $6"
                        }
                    };
                    let mut query = sqlx::query(sql)
                        .bind(state.name())
                        .bind(i64::from(streak))
                        .bind(changed.then_some(now))
                        .bind(now)
                        .bind(message)
                        .bind(name.as_str());
                    if let Some(v) = value.filter(|v| v.is_finite()) {
                        query = query.bind(v);
                    }
                    query.execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .await
    }

    /// Appends points to series (`name`, `labels` as a canonical string
    /// such as `deployment=churn`).
    pub async fn record(
        &self,
        points: Vec<(String, String, i64, f64)>,
    ) -> Result<(), MonitorError> {
        if points.is_empty() {
            return Ok(());
        }
        self.db
            .write::<_, MonitorError, _>(move |conn| {
                Box::pin(async move {
                    for (name, labels, at, value) in &points {
                        if !value.is_finite() {
                            continue;
                        }
                        sqlx::query(
                            "INSERT INTO monitor_series (name, labels, at, value) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(name.as_str())
                        .bind(labels.as_str())
                        .bind(*at)
                        .bind(*value)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// A series between `from` and `to` (ms), averaged into buckets of
    /// `step_ms` (downsampling on read).
    pub async fn series(
        &self,
        name: &str,
        labels: &str,
        from: i64,
        to: i64,
        step_ms: i64,
    ) -> Result<Vec<Point>, MonitorError> {
        if step_ms <= 0 {
            return Err(MonitorError::invalid("step", "must be positive"));
        }
        let rows = sqlx::query(
            "SELECT at, value FROM monitor_series WHERE name = $1 AND labels = $2 AND at >= $3 AND at < $4 ORDER BY at",
        )
        .bind(name)
        .bind(labels)
        .bind(from)
        .bind(to)
        .fetch_all(self.db.reader())
        .await?;
        let mut out: Vec<Point> = Vec::new();
        for r in rows {
            let at: i64 = r.try_get(0)?;
            let value: f64 = r.try_get(1)?;
            let bucket = from + (at - from) / step_ms * step_ms;
            match out.last_mut() {
                Some(p) if p.at == bucket => {
                    p.value += (value - p.value) / (p.count + 1) as f64;
                    p.count += 1;
                    p.min = p.min.min(value);
                    p.max = p.max.max(value);
                }
                _ => out.push(Point {
                    at: bucket,
                    value,
                    count: 1,
                    min: value,
                    max: value,
                }),
            }
        }
        Ok(out)
    }

    /// Series names and label sets.
    pub async fn series_names(&self) -> Result<Vec<(String, String)>, MonitorError> {
        let rows =
            sqlx::query("SELECT DISTINCT name, labels FROM monitor_series ORDER BY name, labels")
                .fetch_all(self.db.reader())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Deletes points older than `cutoff` (ms): retention.
    pub async fn expire(&self, cutoff: i64) -> Result<u64, MonitorError> {
        self.db
            .write::<_, MonitorError, _>(move |conn| {
                Box::pin(async move {
                    let r = sqlx::query("DELETE FROM monitor_series WHERE at < $1")
                        .bind(cutoff)
                        .execute(&mut *conn)
                        .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }
}

fn alert_from_row(r: &keel_store::AnyRow) -> Result<Alert, MonitorError> {
    let name: String = r.try_get(0)?;
    let rule: String = r.try_get(1)?;
    let state: String = r.try_get(2)?;
    let rule: AlertRule = serde_json::from_str(&rule)
        .map_err(|e| MonitorError::Corrupt(format!("alert {name}: {e}")))?;
    Ok(Alert {
        state: AlertState::parse(&state)
            .ok_or_else(|| MonitorError::Corrupt(format!("alert {name}: state {state:?}")))?,
        streak: r.try_get::<i64, _>(3)?.clamp(0, u32::MAX as i64) as u32,
        since: r.try_get(4)?,
        last_value: r.try_get(5)?,
        last_evaluated: r.try_get(6)?,
        message: r.try_get(7)?,
        rule,
        name,
    })
}

/// The body a webhook receives.
pub fn webhook_body(alert: &Alert, transition: Transition, value: f64) -> Value {
    serde_json::json!({
        "alert": alert.name,
        "transition": transition,
        "deployment": alert.rule.deployment,
        "measure": alert.rule.condition.measure.name(),
        "value": value,
        "op": alert.rule.condition.op,
        "threshold": alert.rule.condition.threshold,
        "window_seconds": alert.rule.window_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_fire_after_their_streak_and_resolve_once() {
        let (s, n, t) = next_state(AlertState::Ok, 0, true, 2);
        assert_eq!((s, n, t), (AlertState::Pending, 1, None));
        let (s, n, t) = next_state(s, n, true, 2);
        assert_eq!((s, t), (AlertState::Firing, Some(Transition::Fired)));
        let (s, n, t) = next_state(s, n, true, 2);
        assert_eq!((s, t), (AlertState::Firing, None));
        let (s, _, t) = next_state(s, n, false, 2);
        assert_eq!((s, t), (AlertState::Ok, Some(Transition::Resolved)));
        assert_eq!(next_state(AlertState::Pending, 1, false, 2).2, None);
    }

    #[test]
    fn rules_read_from_json_and_name_bad_fields() {
        let rule: AlertRule = serde_json::from_value(serde_json::json!({
            "deployment": "churn",
            "condition": {"kind": "drift_share", "op": ">=", "threshold": 0.5},
            "lifecycle": {"name": "churn-model"}
        }))
        .expect("rule");
        assert_eq!(rule.condition.measure, Measure::DriftShare);
        assert!(rule.condition.holds(0.5) && !rule.condition.holds(0.4));
        assert_eq!(
            rule.lifecycle.as_ref().map(|l| l.on_fire.as_str()),
            Some("drift_detected")
        );
        let bad = AlertRule {
            condition: Condition {
                measure: Measure::Metric {
                    metric: "acc".into(),
                },
                op: Comparator::Lt,
                threshold: 0.8,
            },
            ..rule
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("condition.metric")
        );
        let typo = serde_json::from_value::<Condition>(serde_json::json!({
            "kind": "drift_share", "op": ">=", "threshold": 0.5, "treshold": 1
        }));
        assert!(typo.unwrap_err().to_string().contains("treshold"));
    }
}
