//! What a model store keeps beyond MLflow's registry: the digest of every
//! artifact file at registration (versions are immutable), signatures and
//! dependencies, training checkpoints, model-card fields, the history of
//! alias moves, and retraining policies.

use keel_core::time::now_millis;
use keel_store::Row;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{put_version_tag, require_model, require_version};
use crate::{Registry, RegistryError, VersionFile};

type Result<T> = std::result::Result<T, RegistryError>;

/// A registered artifact file found by its artifact-store path.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredFile {
    pub name: String,
    pub version: i64,
    pub file: VersionFile,
}

/// The model-store fields of a version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionExtras {
    pub artifact_root: Option<String>,
    pub signature: Option<Value>,
    pub dependencies: Option<Value>,
    pub files: Vec<VersionFile>,
}

/// One training checkpoint of a version: the step, its metrics, where its
/// weights are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub step: i64,
    #[serde(default)]
    pub metrics: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_uri: Option<String>,
    #[serde(default)]
    pub created_at: i64,
}

/// One move of an alias (`kind` `alias`): to `version` (absent when it was
/// removed) from `previous_version` (absent when it was new); or of a
/// version into a stage (`kind` `stage`, `alias` the stage, `note` where it
/// came from and what it archived).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AliasChange {
    pub seq: i64,
    pub kind: String,
    pub alias: String,
    pub note: String,
    pub version: Option<i64>,
    pub previous_version: Option<i64>,
    pub actor: String,
    pub time: i64,
}

/// The latest result of a quality suite run against a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteRecord {
    pub suite: String,
    pub passed: bool,
    pub created_at: i64,
    pub created_by: String,
    /// The suite result as `keel test run --json` prints it.
    pub result: Value,
}

/// Which of a version's files is its ONNX model: its only `.onnx` file,
/// or among several the one named `model.onnx`. Returns the index into
/// `paths`, or what is wrong (to follow the version's name).
pub fn onnx_model_file(paths: &[&str]) -> std::result::Result<usize, String> {
    let onnx: Vec<usize> = (0..paths.len())
        .filter(|&i| paths[i].ends_with(".onnx"))
        .collect();
    match onnx.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("has no .onnx file among its {} files", paths.len())),
        many => many
            .iter()
            .copied()
            .find(|&i| paths[i] == "model.onnx" || paths[i].ends_with("/model.onnx"))
            .ok_or_else(|| format!("has {} .onnx files and none is model.onnx", many.len())),
    }
}

/// The model-version tag that carries a suite's verdict (`passed` or
/// `failed`), so MLflow clients and searches see it.
pub fn suite_tag(suite: &str) -> String {
    format!("keel.suite.{suite}")
}

/// The editable fields of a model card, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCardRecord {
    pub fields: serde_json::Map<String, Value>,
    pub updated_at: i64,
    pub updated_by: String,
}

/// Kinds of condition that can trigger a retraining.
pub const TRIGGER_KINDS: [&str; 3] = ["drift", "data_arrival", "metric_decay"];

/// When a registered model must be retrained: on a cron schedule and/or
/// when a trigger condition holds; each is delivered as `event` to the
/// lifecycle instance `lifecycle`/`key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainingPolicy {
    /// Five-field cron, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default)]
    pub triggers: Vec<RetrainingTrigger>,
    /// The lifecycle that retrains the model.
    pub lifecycle: String,
    /// Its instance key; the model name when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The event sent; `retrain` when not given.
    #[serde(default = "default_event")]
    pub event: String,
}

fn default_event() -> String {
    "retrain".into()
}

/// A condition that triggers a retraining when it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainingTrigger {
    /// `drift`, `data_arrival` or `metric_decay`.
    pub kind: String,
    /// The feature, dataset or metric the condition watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// The score (drift), or the fall from the registered value
    /// (metric decay), at which the trigger fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl RetrainingPolicy {
    /// Checks what a cron parser cannot: lifecycle and event present,
    /// trigger kinds known, thresholds where they are needed.
    pub fn check(&self) -> Result<()> {
        let invalid = |m: String| Err(RegistryError::Invalid(m));
        if self.lifecycle.trim().is_empty() {
            return invalid(
                "lifecycle: required; name the lifecycle that retrains this model".into(),
            );
        }
        if self.event.trim().is_empty() {
            return invalid("event: must not be empty".into());
        }
        if self.schedule.is_none() && self.triggers.is_empty() {
            return invalid("schedule: give a cron schedule, triggers, or both".into());
        }
        for (i, t) in self.triggers.iter().enumerate() {
            if !TRIGGER_KINDS.contains(&t.kind.as_str()) {
                return invalid(format!(
                    "triggers[{i}].kind: unknown kind `{}`; expected one of {}",
                    t.kind,
                    TRIGGER_KINDS.join(", ")
                ));
            }
            if t.kind != "data_arrival" && t.threshold.is_none_or(|x| !x.is_finite()) {
                return invalid(format!(
                    "triggers[{i}].threshold: a `{}` trigger needs a finite threshold",
                    t.kind
                ));
            }
            if t.kind == "metric_decay" && t.on.is_none() {
                return invalid(format!("triggers[{i}].on: name the metric that decays"));
            }
        }
        Ok(())
    }
}

fn version_file(row: &keel_store::AnyRow, at: usize) -> Result<VersionFile> {
    Ok(VersionFile {
        path: row.try_get(at)?,
        store_path: row.try_get(at + 1)?,
        size: row.try_get(at + 2)?,
        sha256: row.try_get(at + 3)?,
    })
}

fn json_text(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

impl Registry {
    /// The registered file kept at `store_path`, if any version has one.
    pub async fn registered_file(&self, store_path: &str) -> Result<Option<RegisteredFile>> {
        let row = sqlx::query(
            "SELECT name, version, path, store_path, size, sha256 FROM model_version_files WHERE store_path = $1 LIMIT 1",
        )
        .bind(store_path)
        .fetch_optional(self.db.reader())
        .await?;
        row.map(|r| {
            Ok(RegisteredFile {
                name: r.try_get(0)?,
                version: r.try_get(1)?,
                file: version_file(&r, 2)?,
            })
        })
        .transpose()
    }

    /// The version whose artifact root is `store_path` or one of its
    /// ancestors (nothing there may be written), or, with `below`, also a
    /// directory under it (a delete of `store_path` would remove a version's
    /// files). The `below` probe is a `LIKE` scan, so uploads skip it.
    pub async fn immutable_owner(
        &self,
        store_path: &str,
        below: bool,
    ) -> Result<Option<(String, i64)>> {
        let trimmed = store_path.trim_matches('/');
        let mut candidates: Vec<&str> = Vec::new();
        let mut end = trimmed.len();
        while end > 0 {
            candidates.push(&trimmed[..end]);
            end = trimmed[..end].rfind('/').unwrap_or(0);
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        let marks: Vec<String> = (1..=candidates.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT name, version FROM model_versions WHERE artifact_root IN ({}) LIMIT 1",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in candidates {
            q = q.bind(c.to_owned());
        }
        let mut row = q.fetch_optional(self.db.reader()).await?;
        if row.is_none() && below {
            // A directory that holds a version's files.
            let like = format!(
                "{}/%",
                trimmed
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            row = sqlx::query(
                "SELECT name, version FROM model_versions WHERE artifact_root LIKE $1 ESCAPE '\\' LIMIT 1",
            )
            .bind(like)
            .fetch_optional(self.db.reader())
            .await?;
        }
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// A version's artifact root, signature, dependencies and files.
    pub async fn version_extras(&self, name: &str, version: i64) -> Result<VersionExtras> {
        let conn = &mut *self.db.reader().acquire().await?;
        require_version(conn, name, version).await?;
        let row = sqlx::query(
            "SELECT artifact_root, signature, dependencies FROM model_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_one(&mut *conn)
        .await?;
        let mut extras = VersionExtras {
            artifact_root: row.try_get(0)?,
            signature: json_text(row.try_get(1)?),
            dependencies: json_text(row.try_get(2)?),
            files: Vec::new(),
        };
        for r in sqlx::query(
            "SELECT path, store_path, size, sha256 FROM model_version_files WHERE name = $1 AND version = $2 ORDER BY path",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?
        {
            extras.files.push(version_file(&r, 0)?);
        }
        Ok(extras)
    }

    /// Replaces a version's signature (an explicit one, checked by the
    /// caller).
    pub async fn set_signature(&self, name: &str, version: i64, signature: Value) -> Result<()> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_version(conn, &n, version).await?;
                    sqlx::query("UPDATE model_versions SET signature = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
                        .bind(signature.to_string())
                        .bind(now_millis())
                        .bind(n.as_str())
                        .bind(version)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Adds (or replaces, for the same step) a training checkpoint.
    pub async fn add_checkpoint(
        &self,
        name: &str,
        version: i64,
        cp: Checkpoint,
    ) -> Result<Checkpoint> {
        if cp.step < 0 {
            return Err(RegistryError::Invalid(format!(
                "step: must be 0 or more, got {}",
                cp.step
            )));
        }
        for (k, v) in &cp.metrics {
            if !v.is_number() {
                return Err(RegistryError::Invalid(format!(
                    "metrics.{k}: must be a number, got {v}"
                )));
            }
        }
        let n = name.to_owned();
        let stored = Checkpoint {
            created_at: now_millis(),
            ..cp
        };
        let row = stored.clone();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_version(conn, &n, version).await?;
                    sqlx::query("DELETE FROM model_checkpoints WHERE name = $1 AND version = $2 AND step = $3")
                        .bind(n.as_str())
                        .bind(version)
                        .bind(row.step)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("INSERT INTO model_checkpoints (name, version, step, metrics, artifact_uri, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(n.as_str())
                        .bind(version)
                        .bind(row.step)
                        .bind(Value::Object(row.metrics).to_string())
                        .bind(row.artifact_uri)
                        .bind(row.created_at)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(stored)
    }

    /// A version's checkpoints by step.
    pub async fn checkpoints(&self, name: &str, version: i64) -> Result<Vec<Checkpoint>> {
        let conn = &mut *self.db.reader().acquire().await?;
        require_version(conn, name, version).await?;
        let rows = sqlx::query(
            "SELECT step, metrics, artifact_uri, created_at FROM model_checkpoints WHERE name = $1 AND version = $2 ORDER BY step",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    step: r.try_get(0)?,
                    metrics: match json_text(r.try_get(1)?) {
                        Some(Value::Object(m)) => m,
                        _ => serde_json::Map::new(),
                    },
                    artifact_uri: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Who moved which alias of a model, or which version into which
    /// stage, when; oldest first.
    pub async fn alias_history(&self, name: &str) -> Result<Vec<AliasChange>> {
        let conn = &mut *self.db.reader().acquire().await?;
        require_model(conn, name).await?;
        let rows = sqlx::query(
            "SELECT seq, kind, alias, note, version, previous_version, actor, time FROM model_alias_history WHERE name = $1 ORDER BY seq",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasChange {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    alias: r.try_get(2)?,
                    note: r.try_get(3)?,
                    version: r.try_get(4)?,
                    previous_version: r.try_get(5)?,
                    actor: r.try_get(6)?,
                    time: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Attaches a suite result (`{"suite", "passed", "checks", …}`) to a
    /// version, replacing that suite's previous result, and sets the tag
    /// [`suite_tag`] to `passed` or `failed`, in one transaction.
    pub async fn set_suite_result(
        &self,
        name: &str,
        version: i64,
        result: Value,
        actor: &str,
    ) -> Result<SuiteRecord> {
        let invalid = |m: &str| Err(RegistryError::Invalid(m.to_string()));
        let Some(suite) = result.get("suite").and_then(Value::as_str) else {
            return invalid("suite: missing; a suite result names its suite");
        };
        if suite.is_empty() || suite.len() > 250 {
            return invalid("suite: must be 1 to 250 characters");
        }
        let Some(passed) = result.get("passed").and_then(Value::as_bool) else {
            return invalid("passed: missing; expected true or false");
        };
        if !result.get("checks").is_some_and(Value::is_array) {
            return invalid("checks: missing; expected the list of check results");
        }
        let record = SuiteRecord {
            suite: suite.to_owned(),
            passed,
            created_at: now_millis(),
            created_by: actor.to_owned(),
            result,
        };
        let (n, row) = (name.to_owned(), record.clone());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_version(conn, &n, version).await?;
                    sqlx::query("DELETE FROM model_suite_results WHERE name = $1 AND version = $2 AND suite = $3")
                        .bind(n.as_str())
                        .bind(version)
                        .bind(row.suite.as_str())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("INSERT INTO model_suite_results (name, version, suite, passed, result, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                        .bind(n.as_str())
                        .bind(version)
                        .bind(row.suite.as_str())
                        .bind(i64::from(row.passed))
                        .bind(row.result.to_string())
                        .bind(row.created_at)
                        .bind(row.created_by.as_str())
                        .execute(&mut *conn)
                        .await?;
                    let verdict = if row.passed { "passed" } else { "failed" };
                    put_version_tag(conn, &n, version, &suite_tag(&row.suite), verdict).await
                })
            })
            .await?;
        Ok(record)
    }

    /// The latest result of each suite run against a version, by suite name.
    pub async fn suite_results(&self, name: &str, version: i64) -> Result<Vec<SuiteRecord>> {
        let conn = &mut *self.db.reader().acquire().await?;
        require_version(conn, name, version).await?;
        let rows = sqlx::query(
            "SELECT suite, passed, result, created_at, created_by FROM model_suite_results WHERE name = $1 AND version = $2 ORDER BY suite",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SuiteRecord {
                    suite: r.try_get(0)?,
                    passed: r.try_get::<i64, _>(1)? != 0,
                    result: json_text(r.try_get(2)?).unwrap_or(Value::Null),
                    created_at: r.try_get(3)?,
                    created_by: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The stored (edited) model-card fields of a version, if any.
    pub async fn model_card(&self, name: &str, version: i64) -> Result<Option<ModelCardRecord>> {
        let conn = &mut *self.db.reader().acquire().await?;
        require_version(conn, name, version).await?;
        let row = sqlx::query("SELECT fields, updated_at, updated_by FROM model_cards WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| {
            Ok(ModelCardRecord {
                fields: match json_text(r.try_get(0)?) {
                    Some(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                },
                updated_at: r.try_get(1)?,
                updated_by: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Merges `fields` into a version's model card (a `null` removes a
    /// field) and returns the result.
    pub async fn edit_model_card(
        &self,
        name: &str,
        version: i64,
        fields: serde_json::Map<String, Value>,
        actor: &str,
    ) -> Result<ModelCardRecord> {
        let (n, who) = (name.to_owned(), actor.to_owned());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_version(conn, &n, version).await?;
                    let old = sqlx::query("SELECT fields FROM model_cards WHERE name = $1 AND version = $2")
                        .bind(n.as_str())
                        .bind(version)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let mut merged = match old.map(|r| r.try_get::<String, _>(0)).transpose()?.and_then(|t| serde_json::from_str(&t).ok()) {
                        Some(Value::Object(m)) => m,
                        _ => serde_json::Map::new(),
                    };
                    for (k, v) in fields {
                        if v.is_null() {
                            merged.remove(&k);
                        } else {
                            merged.insert(k, v);
                        }
                    }
                    sqlx::query("DELETE FROM model_cards WHERE name = $1 AND version = $2")
                        .bind(n.as_str())
                        .bind(version)
                        .execute(&mut *conn)
                        .await?;
                    let now = now_millis();
                    sqlx::query("INSERT INTO model_cards (name, version, fields, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)")
                        .bind(n.as_str())
                        .bind(version)
                        .bind(Value::Object(merged.clone()).to_string())
                        .bind(now)
                        .bind(who.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(ModelCardRecord { fields: merged, updated_at: now, updated_by: who })
                })
            })
            .await
    }

    /// Sets a model's retraining policy; `next_due` is the schedule's next
    /// time (the caller parses the cron).
    pub async fn set_retraining(
        &self,
        name: &str,
        policy: &RetrainingPolicy,
        next_due: Option<i64>,
    ) -> Result<()> {
        policy.check()?;
        let n = name.to_owned();
        let text =
            serde_json::to_string(policy).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &n).await?;
                    sqlx::query("DELETE FROM retraining_policies WHERE name = $1").bind(n.as_str()).execute(&mut *conn).await?;
                    sqlx::query("INSERT INTO retraining_policies (name, policy, next_due, updated_at) VALUES ($1, $2, $3, $4)")
                        .bind(n.as_str())
                        .bind(text)
                        .bind(next_due)
                        .bind(now_millis())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// A model's retraining policy with its next due time and last firing.
    pub async fn retraining(
        &self,
        name: &str,
    ) -> Result<Option<(RetrainingPolicy, Option<i64>, Option<i64>)>> {
        let conn = &mut *self.db.reader().acquire().await?;
        require_model(conn, name).await?;
        let row = sqlx::query(
            "SELECT policy, next_due, last_fired FROM retraining_policies WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let text: String = r.try_get(0)?;
        let policy = serde_json::from_str(&text).map_err(|e| {
            RegistryError::Invalid(format!("stored retraining policy of {name}: {e}"))
        })?;
        Ok(Some((policy, r.try_get(1)?, r.try_get(2)?)))
    }

    pub async fn delete_retraining(&self, name: &str) -> Result<()> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &n).await?;
                    sqlx::query("DELETE FROM retraining_policies WHERE name = $1")
                        .bind(n.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Models whose schedule is due at `now`: (name, policy).
    pub async fn due_retrainings(&self, now: i64) -> Result<Vec<(String, RetrainingPolicy)>> {
        let rows = sqlx::query("SELECT name, policy FROM retraining_policies WHERE next_due IS NOT NULL AND next_due <= $1 ORDER BY next_due LIMIT 1000")
            .bind(now)
            .fetch_all(self.db.reader())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get(0)?;
            let text: String = r.try_get(1)?;
            if let Ok(p) = serde_json::from_str(&text) {
                out.push((name, p));
            }
        }
        Ok(out)
    }

    /// Records that a model's retraining fired at `fired` and when it is
    /// next due.
    pub async fn retraining_fired(
        &self,
        name: &str,
        fired: i64,
        next_due: Option<i64>,
    ) -> Result<()> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE retraining_policies SET last_fired = $1, next_due = $2 WHERE name = $3")
                        .bind(fired)
                        .bind(next_due)
                        .bind(n.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::onnx_model_file;

    #[test]
    fn the_onnx_model_file_is_the_only_one_or_model_onnx() {
        assert_eq!(onnx_model_file(&["MLmodel", "m.onnx"]), Ok(1));
        assert_eq!(onnx_model_file(&["a.onnx", "x/model.onnx"]), Ok(1));
        assert!(
            onnx_model_file(&["MLmodel"])
                .unwrap_err()
                .contains("no .onnx file among its 1")
        );
        assert!(
            onnx_model_file(&["a.onnx", "b.onnx"])
                .unwrap_err()
                .contains("none is model.onnx")
        );
    }
}
