//! The registry service over the metadata store. Every change is one
//! `Db::write`, so a failed request leaves nothing behind.

use keel_core::sql::SqlValue;
use keel_core::time::now_millis;
use keel_store::{AnyConnection, Db, Row, bind_all};

use crate::filter::{Condition, parse_filter};
use crate::{
    ModelVersion, NewModelVersion, Page, RegisteredModel, RegistryError, STAGES, Search, Tag,
};

type Result<T> = std::result::Result<T, RegistryError>;

/// The registry service. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    pub(crate) db: Db,
}

fn not_found_model(name: &str) -> RegistryError {
    RegistryError::NotFound(format!("Registered Model with name={name} not found"))
}

fn not_found_version(name: &str, version: i64) -> RegistryError {
    RegistryError::NotFound(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

/// MLflow's rule: names are non-empty; aliases are names that are not
/// `latest` and do not look like a version (`v3`).
pub fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(RegistryError::Invalid(
            "Missing value for required parameter 'name'. See the API docs for more information about request parameters.".into(),
        ));
    }
    if name.contains('/') || name.contains(':') {
        return Err(RegistryError::Invalid(format!(
            "Invalid model name '{name}'. Names cannot contain '/' or ':'."
        )));
    }
    Ok(())
}

pub fn check_alias(alias: &str) -> Result<()> {
    let lower = alias.to_ascii_lowercase();
    let versionish = lower
        .strip_prefix('v')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    if lower == "latest" {
        return Err(RegistryError::Invalid(
            "'latest' alias name (case insensitive) is reserved.".into(),
        ));
    }
    if versionish {
        return Err(RegistryError::Invalid(format!(
            "Version alias name '{alias}' is reserved."
        )));
    }
    if alias.is_empty()
        || !alias
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(RegistryError::Invalid(format!(
            "Invalid alias name: '{alias}'. Aliases may only contain alphanumerics, '_' and '-'."
        )));
    }
    Ok(())
}

impl Registry {
    pub fn new(db: Db) -> Self {
        Registry { db }
    }

    pub async fn create_registered_model(
        &self,
        name: String,
        tags: Vec<Tag>,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        check_name(&name)?;
        let n = name.clone();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    if sqlx::query("SELECT 1 FROM registered_models WHERE name = $1").bind(n.as_str()).fetch_optional(&mut *conn).await?.is_some() {
                        return Err(RegistryError::AlreadyExists(format!("Registered Model (name={n}) already exists.")));
                    }
                    let now = now_millis();
                    sqlx::query("INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp, description) VALUES ($1, $2, $2, $3)")
                        .bind(n.as_str())
                        .bind(now)
                        .bind(description)
                        .execute(&mut *conn)
                        .await?;
                    for t in tags {
                        sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3)")
                            .bind(n.as_str())
                            .bind(t.key)
                            .bind(t.value)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await?;
        self.get_registered_model(&name).await
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let conn = &mut *self.db.reader().acquire().await?;
        load_model(conn, name)
            .await?
            .ok_or_else(|| not_found_model(name))
    }

    pub async fn update_registered_model(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE registered_models SET description = $1, last_updated_timestamp = $2 WHERE name = $3")
                        .bind(description)
                        .bind(now_millis())
                        .bind(n.as_str())
                        .execute(&mut *conn)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(not_found_model(&n));
                    }
                    Ok(())
                })
            })
            .await?;
        self.get_registered_model(name).await
    }

    pub async fn rename_registered_model(
        &self,
        name: &str,
        new_name: String,
    ) -> Result<RegisteredModel> {
        check_name(&new_name)?;
        let (n, nn) = (name.to_owned(), new_name.clone());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    if sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
                        .bind(n.as_str())
                        .fetch_optional(&mut *conn)
                        .await?
                        .is_none()
                    {
                        return Err(not_found_model(&n));
                    }
                    if sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
                        .bind(nn.as_str())
                        .fetch_optional(&mut *conn)
                        .await?
                        .is_some()
                    {
                        return Err(RegistryError::AlreadyExists(format!(
                            "Registered Model (name={nn}) already exists."
                        )));
                    }
                    for table in [
                        "registered_models",
                        "registered_model_tags",
                        "registered_model_aliases",
                        "model_versions",
                        "model_version_tags",
                        "model_version_files",
                        "model_checkpoints",
                        "model_cards",
                        "model_suite_results",
                        "model_alias_history",
                        "retraining_policies",
                    ] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "UPDATE {table} SET name = $1 WHERE name = $2"
                        )))
                        .bind(nn.as_str())
                        .bind(n.as_str())
                        .execute(&mut *conn)
                        .await?;
                    }
                    sqlx::query(
                        "UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2",
                    )
                    .bind(now_millis())
                    .bind(nn.as_str())
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        self.get_registered_model(&new_name).await
    }

    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM registered_models WHERE name = $1")
                        .bind(n.as_str())
                        .execute(&mut *conn)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(not_found_model(&n));
                    }
                    for table in [
                        "registered_model_tags",
                        "registered_model_aliases",
                        "model_versions",
                        "model_version_tags",
                        "model_version_files",
                        "model_checkpoints",
                        "model_cards",
                        "model_suite_results",
                        "model_alias_history",
                        "retraining_policies",
                    ] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE name = $1"
                        )))
                        .bind(n.as_str())
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    pub async fn search_registered_models(&self, search: Search) -> Result<Page<RegisteredModel>> {
        let (sql, binds, offset, limit) = MODEL_SEARCH.query(&search)?;
        let conn = &mut *self.db.reader().acquire().await?;
        let rows = bind_all(sql, &binds).fetch_all(&mut *conn).await?;
        let names = rows
            .iter()
            .take(limit as usize)
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let items = load_models(conn, &names).await?;
        Ok(Page {
            items,
            next_page_token: next_token(rows.len(), offset, limit),
        })
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &n).await?;
                    sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
                        .bind(n.as_str())
                        .bind(tag.key.as_str())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(
                        "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3)",
                    )
                    .bind(n.as_str())
                    .bind(tag.key)
                    .bind(tag.value)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let (n, k) = (name.to_owned(), key.to_owned());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &n).await?;
                    sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
                        .bind(n.as_str())
                        .bind(k.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Points `alias` at `version`; the move is kept in the alias history
    /// with who made it.
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        actor: &str,
    ) -> Result<()> {
        check_alias(alias)?;
        let (n, a, who) = (name.to_owned(), alias.to_owned(), actor.to_owned());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &n).await?;
                    require_version(conn, &n, version).await?;
                    let previous = alias_target(conn, &n, &a).await?;
                    if previous != Some(version) {
                        record_alias_change(conn, &n, alias_move(&a, Some(version), previous), &who).await?;
                    }
                    sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2").bind(n.as_str()).bind(a.as_str()).execute(&mut *conn).await?;
                    sqlx::query("INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3)")
                        .bind(n.as_str())
                        .bind(a.as_str())
                        .bind(version)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn delete_alias(&self, name: &str, alias: &str, actor: &str) -> Result<()> {
        let (n, a, who) = (name.to_owned(), alias.to_owned(), actor.to_owned());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &n).await?;
                    if let Some(previous) = alias_target(conn, &n, &a).await? {
                        record_alias_change(conn, &n, alias_move(&a, None, Some(previous)), &who)
                            .await?;
                    }
                    sqlx::query(
                        "DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2",
                    )
                    .bind(n.as_str())
                    .bind(a.as_str())
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        let conn = &mut *self.db.reader().acquire().await?;
        require_model(conn, name).await?;
        let row = sqlx::query(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| {
            RegistryError::Invalid(format!("Registered model alias {alias} not found."))
        })?;
        let version: i64 = row.try_get(0)?;
        load_version(conn, name, version)
            .await?
            .ok_or_else(|| not_found_version(name, version))
    }

    pub async fn create_model_version(&self, new: NewModelVersion) -> Result<ModelVersion> {
        check_name(&new.name)?;
        let name = new.name.clone();
        let version = self
            .db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_model(conn, &new.name).await?;
                    let row = sqlx::query("SELECT last_version FROM registered_models WHERE name = $1")
                        .bind(new.name.as_str())
                        .fetch_one(&mut *conn)
                        .await?;
                    let version: i64 = row.try_get::<i64, _>(0)? + 1;
                    sqlx::query("UPDATE registered_models SET last_version = $1 WHERE name = $2")
                        .bind(version)
                        .bind(new.name.as_str())
                        .execute(&mut *conn)
                        .await?;
                    let now = now_millis();
                    sqlx::query(
                        "INSERT INTO model_versions (name, version, creation_timestamp, last_updated_timestamp, description, current_stage, \
                         source, run_id, run_link, status, storage_location, model_id, artifact_root, signature, dependencies) \
                         VALUES ($1, $2, $3, $3, $4, 'None', $5, $6, $7, 'READY', $8, $9, $10, $11, $12)",
                    )
                    .bind(new.name.as_str())
                    .bind(version)
                    .bind(now)
                    .bind(new.description)
                    .bind(new.source)
                    .bind(new.run_id)
                    .bind(new.run_link)
                    .bind(new.storage_location)
                    .bind(new.model_id)
                    .bind(new.artifact_root)
                    .bind(new.signature.map(|v| v.to_string()))
                    .bind(new.dependencies.map(|v| v.to_string()))
                    .execute(&mut *conn)
                    .await?;
                    for f in new.files {
                        sqlx::query("INSERT INTO model_version_files (name, version, path, store_path, size, sha256) VALUES ($1, $2, $3, $4, $5, $6)")
                            .bind(new.name.as_str())
                            .bind(version)
                            .bind(f.path)
                            .bind(f.store_path)
                            .bind(f.size)
                            .bind(f.sha256)
                            .execute(&mut *conn)
                            .await?;
                    }
                    for t in new.tags {
                        sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4)")
                            .bind(new.name.as_str())
                            .bind(version)
                            .bind(t.key)
                            .bind(t.value)
                            .execute(&mut *conn)
                            .await?;
                    }
                    sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE name = $2").bind(now).bind(new.name.as_str()).execute(&mut *conn).await?;
                    Ok(version)
                })
            })
            .await?;
        self.get_model_version(&name, version).await
    }

    pub async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let conn = &mut *self.db.reader().acquire().await?;
        load_version(conn, name, version)
            .await?
            .ok_or_else(|| not_found_version(name, version))
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE model_versions SET description = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
                        .bind(description)
                        .bind(now_millis())
                        .bind(n.as_str())
                        .bind(version)
                        .execute(&mut *conn)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(not_found_version(&n, version));
                    }
                    Ok(())
                })
            })
            .await?;
        self.get_model_version(name, version).await
    }

    /// Moves a version to a stage (older clients' workflow); the move, and
    /// the versions it archived, are kept in the history with who made it.
    pub async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: &str,
        archive_existing: bool,
        actor: &str,
    ) -> Result<ModelVersion> {
        let stage = STAGES
            .iter()
            .find(|s| s.eq_ignore_ascii_case(stage))
            .copied()
            .ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "Invalid Model Version stage: {stage}. Value must be one of {}.",
                    STAGES.join(", ")
                ))
            })?;
        let (n, who) = (name.to_owned(), actor.to_owned());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_version(conn, &n, version).await?;
                    let now = now_millis();
                    let from: String = sqlx::query("SELECT current_stage FROM model_versions WHERE name = $1 AND version = $2")
                        .bind(n.as_str())
                        .bind(version)
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get(0)?;
                    let mut note = format!("from {from}");
                    if archive_existing && (stage == "Staging" || stage == "Production") {
                        let archived = sqlx::query("SELECT version FROM model_versions WHERE name = $1 AND current_stage = $2 AND version <> $3 ORDER BY version")
                            .bind(n.as_str())
                            .bind(stage)
                            .bind(version)
                            .fetch_all(&mut *conn)
                            .await?;
                        if !archived.is_empty() {
                            let list: Vec<String> = archived
                                .iter()
                                .map(|r| r.try_get::<i64, _>(0).map(|v| v.to_string()))
                                .collect::<std::result::Result<_, _>>()?;
                            note.push_str(&format!("; archived version(s) {}", list.join(", ")));
                        }
                    }
                    if from != stage {
                        let m = Move { kind: "stage", alias: stage, version: Some(version), previous: None, note };
                        record_alias_change(conn, &n, m, &who).await?;
                    }
                    if archive_existing && (stage == "Staging" || stage == "Production") {
                        sqlx::query("UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = $1 WHERE name = $2 AND current_stage = $3 AND version <> $4")
                            .bind(now)
                            .bind(n.as_str())
                            .bind(stage)
                            .bind(version)
                            .execute(&mut *conn)
                            .await?;
                    }
                    sqlx::query("UPDATE model_versions SET current_stage = $1, last_updated_timestamp = $2 WHERE name = $3 AND version = $4")
                        .bind(stage)
                        .bind(now)
                        .bind(n.as_str())
                        .bind(version)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        self.get_model_version(name, version).await
    }

    pub async fn delete_model_version(&self, name: &str, version: i64, actor: &str) -> Result<()> {
        let (n, who) = (name.to_owned(), actor.to_owned());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    // Aliases on the version go with it; the history says so.
                    let aliases = sqlx::query("SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2")
                        .bind(n.as_str())
                        .bind(version)
                        .fetch_all(&mut *conn)
                        .await?;
                    for row in aliases {
                        let alias: String = row.try_get(0)?;
                        record_alias_change(conn, &n, alias_move(&alias, None, Some(version)), &who).await?;
                    }
                    let done =
                        sqlx::query("DELETE FROM model_versions WHERE name = $1 AND version = $2")
                            .bind(n.as_str())
                            .bind(version)
                            .execute(&mut *conn)
                            .await?;
                    if done.rows_affected() == 0 {
                        return Err(not_found_version(&n, version));
                    }
                    for table in ["model_version_tags", "model_version_files", "model_checkpoints", "model_cards", "model_suite_results"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE name = $1 AND version = $2")))
                            .bind(n.as_str())
                            .bind(version)
                            .execute(&mut *conn)
                            .await?;
                    }
                    sqlx::query(
                        "DELETE FROM registered_model_aliases WHERE name = $1 AND version = $2",
                    )
                    .bind(n.as_str())
                    .bind(version)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn set_model_version_tag(&self, name: &str, version: i64, tag: Tag) -> Result<()> {
        let n = name.to_owned();
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_version(conn, &n, version).await?;
                    put_version_tag(conn, &n, version, &tag.key, &tag.value).await
                })
            })
            .await
    }

    pub async fn delete_model_version_tag(
        &self,
        name: &str,
        version: i64,
        key: &str,
    ) -> Result<()> {
        let (n, k) = (name.to_owned(), key.to_owned());
        self.db
            .write::<_, RegistryError, _>(move |conn| {
                Box::pin(async move {
                    require_version(conn, &n, version).await?;
                    sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
                        .bind(n.as_str())
                        .bind(version)
                        .bind(k.as_str())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn search_model_versions(&self, search: Search) -> Result<Page<ModelVersion>> {
        let (sql, binds, offset, limit) = VERSION_SEARCH.query(&search)?;
        let conn = &mut *self.db.reader().acquire().await?;
        let rows = bind_all(sql, &binds).fetch_all(&mut *conn).await?;
        let keys = rows
            .iter()
            .take(limit as usize)
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect::<Result<Vec<_>>>()?;
        // Search results carry no aliases (as MLflow's).
        let items = load_versions(conn, &keys, false).await?;
        Ok(Page {
            items,
            next_page_token: next_token(rows.len(), offset, limit),
        })
    }
}

/// What differs between the two searches: the table, the filter keys and
/// their columns, the orderings, and where tags live.
struct SearchSpec {
    select: &'static str,
    /// MLflow's page size when none is asked for, and the largest allowed.
    page_default: i64,
    page_max: i64,
    keys: &'static [&'static str],
    columns: &'static [(&'static str, &'static str)],
    order_keys: &'static [(&'static str, &'static str)],
    /// The order without `order_by`, before the tie-breakers.
    default_order: &'static str,
    /// Appended, as MLflow does, for each key the order does not name:
    /// (order key, SQL).
    tie_breakers: &'static [(&'static str, &'static str)],
    tags: &'static str,
}

const MODEL_SEARCH: SearchSpec = SearchSpec {
    select: "SELECT name FROM registered_models m WHERE 1 = 1",
    page_default: 100,
    page_max: 1_000,
    keys: &["name"],
    columns: &[("name", "m.name")],
    order_keys: &[
        ("name", "name"),
        ("timestamp", "last_updated_timestamp"),
        ("last_updated_timestamp", "last_updated_timestamp"),
        ("creation_timestamp", "creation_timestamp"),
    ],
    default_order: "",
    tie_breakers: &[("name", "name ASC")],
    tags: "registered_model_tags t WHERE t.name = m.name",
};

const VERSION_SEARCH: SearchSpec = SearchSpec {
    select: "SELECT name, version FROM model_versions v WHERE 1 = 1",
    page_default: 200_000,
    page_max: 200_000,
    keys: &["name", "run_id", "source_path", "version_number"],
    columns: &[
        ("name", "v.name"),
        ("run_id", "v.run_id"),
        ("source_path", "v.source"),
        ("version_number", "CAST(v.version AS TEXT)"),
    ],
    order_keys: &[
        ("name", "name"),
        ("version_number", "version"),
        ("creation_timestamp", "creation_timestamp"),
        ("last_updated_timestamp", "last_updated_timestamp"),
    ],
    // MLflow's: the newest change first.
    default_order: "last_updated_timestamp DESC",
    tie_breakers: &[("name", "name ASC"), ("version_number", "version DESC")],
    tags: "model_version_tags t WHERE t.name = v.name AND t.version = v.version",
};

impl SearchSpec {
    /// The page's SQL (one row more than the page, to know whether another
    /// follows), its binds, the offset and the page size.
    fn query(&self, search: &Search) -> Result<(String, Vec<SqlValue>, i64, i64)> {
        let conditions = parse_filter(&search.filter, self.keys)?;
        let (offset, limit) = paging(search, self.page_default, self.page_max)?;
        let order = order_clause(
            &search.order_by,
            self.order_keys,
            self.default_order,
            self.tie_breakers,
        )?;
        let mut sql = String::from(self.select);
        let mut binds = Vec::new();
        push_conditions(&mut sql, &mut binds, &conditions, self.tags, |k| {
            self.columns
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, c)| *c)
        });
        sql.push_str(&format!(
            " ORDER BY {order} LIMIT {} OFFSET {offset}",
            limit + 1
        ));
        Ok((sql, binds, offset, limit))
    }
}

fn next_token(rows: usize, offset: i64, limit: i64) -> Option<String> {
    (rows as i64 > limit).then(|| (offset + limit).to_string())
}

fn paging(search: &Search, default: i64, max: i64) -> Result<(i64, i64)> {
    let limit = search.max_results.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(RegistryError::Invalid(format!(
            "Invalid value for max_results: {limit}; it must be between 1 and {max}."
        )));
    }
    let offset = match &search.page_token {
        None => 0,
        Some(t) if t.is_empty() => 0,
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| RegistryError::Invalid(format!("Invalid page token '{t}'.")))?,
    };
    Ok((offset, limit))
}

fn order_clause(
    order_by: &[String],
    columns: &[(&str, &str)],
    default: &str,
    tie_breakers: &[(&str, &str)],
) -> Result<String> {
    let mut parts = Vec::new();
    let mut named = Vec::new();
    if order_by.is_empty() && !default.is_empty() {
        parts.push(default.to_owned());
    }
    for o in order_by {
        let mut words = o.split_whitespace();
        let key = words.next().unwrap_or("");
        let dir = match words.next().map(str::to_ascii_uppercase).as_deref() {
            None | Some("ASC") => "ASC",
            Some("DESC") => "DESC",
            Some(other) => {
                return Err(RegistryError::Invalid(format!(
                    "Invalid order_by clause '{o}': '{other}' is not ASC or DESC."
                )));
            }
        };
        let col = columns
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| *c)
            .ok_or_else(|| RegistryError::Invalid(format!("Invalid order_by key '{key}'.")))?;
        parts.push(format!("{col} {dir}"));
        named.push(col);
    }
    for (key, sql) in tie_breakers {
        let col = columns
            .iter()
            .find(|(k, _)| k == key)
            .map_or(*key, |(_, c)| *c);
        if !named.contains(&col) {
            parts.push((*sql).to_owned());
        }
    }
    Ok(parts.join(", "))
}

fn push_conditions(
    sql: &mut String,
    binds: &mut Vec<SqlValue>,
    conditions: &[Condition],
    tag_from: &str,
    column: impl Fn(&str) -> Option<&'static str>,
) {
    for c in conditions {
        let arg = |v: &str, binds: &mut Vec<SqlValue>| {
            binds.push(SqlValue::Text(v.to_owned()));
            format!("${}", binds.len())
        };
        let (lhs, prefix) = match c.key.strip_prefix("tags.") {
            // `tags.k != 'v'`: no tag k with value v (untagged ones match).
            Some(k) if c.op == "!=" => {
                let key = arg(k, binds);
                let value = arg(&c.values[0], binds);
                sql.push_str(&format!(
                    " AND NOT EXISTS (SELECT 1 FROM {tag_from} AND t.key = {key} AND t.value = {value})"
                ));
                continue;
            }
            Some(k) => {
                let key = arg(k, binds);
                (
                    String::from("t.value"),
                    format!(" AND EXISTS (SELECT 1 FROM {tag_from} AND t.key = {key} AND "),
                )
            }
            None => (
                column(&c.key).unwrap_or("NULL").to_owned(),
                String::from(" AND ("),
            ),
        };
        let cond = match c.op.as_str() {
            "IN" => {
                let list: Vec<String> = c.values.iter().map(|v| arg(v, binds)).collect();
                format!("{lhs} IN ({})", list.join(", "))
            }
            "LIKE" => format!("{lhs} LIKE {}", arg(&c.values[0], binds)),
            "ILIKE" => format!("LOWER({lhs}) LIKE LOWER({})", arg(&c.values[0], binds)),
            op => format!("{lhs} {op} {}", arg(&c.values[0], binds)),
        };
        sql.push_str(&prefix);
        sql.push_str(&cond);
        sql.push(')');
    }
}

async fn alias_target(conn: &mut AnyConnection, name: &str, alias: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?,
    )
}

/// A move of an alias or a stage, for [`record_alias_change`].
struct Move<'a> {
    kind: &'a str,
    alias: &'a str,
    version: Option<i64>,
    previous: Option<i64>,
    note: String,
}

fn alias_move(alias: &str, version: Option<i64>, previous: Option<i64>) -> Move<'_> {
    Move {
        kind: "alias",
        alias,
        version,
        previous,
        note: String::new(),
    }
}

async fn record_alias_change(
    conn: &mut AnyConnection,
    name: &str,
    m: Move<'_>,
    actor: &str,
) -> Result<()> {
    let seq: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM model_alias_history WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
    sqlx::query(
        "INSERT INTO model_alias_history (name, seq, kind, alias, note, version, previous_version, actor, time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(name)
    .bind(seq)
    .bind(m.kind)
    .bind(m.alias)
    .bind(m.note)
    .bind(m.version)
    .bind(m.previous)
    .bind(actor)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn require_model(conn: &mut AnyConnection, name: &str) -> Result<()> {
    sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or_else(|| not_found_model(name))
}

/// Sets (replaces) a model version's tag inside the caller's transaction.
pub(crate) async fn put_version_tag(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
    key: &str,
    value: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
        .bind(name)
        .bind(version)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4)",
    )
    .bind(name)
    .bind(version)
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn require_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
) -> Result<()> {
    sqlx::query("SELECT 1 FROM model_versions WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?
        .map(|_| ())
        .ok_or_else(|| not_found_version(name, version))
}

/// Keys per `IN (…)` list in the batch loaders.
const BATCH: usize = 300;

/// `(name = $1 AND version IN ($2, $3)) OR (name = $4 AND …)`: keys
/// grouped by name, so each group is one index range (a row-value IN list
/// of pairs makes SQLite scan the table).
fn pairs_sql(keys: &[(String, i64)]) -> (String, Vec<SqlValue>) {
    let mut groups: Vec<(&str, Vec<i64>)> = Vec::new();
    for (n, v) in keys {
        match groups.iter_mut().find(|(g, _)| *g == n.as_str()) {
            Some((_, vs)) => vs.push(*v),
            None => groups.push((n.as_str(), vec![*v])),
        }
    }
    let mut sql = String::new();
    let mut binds = Vec::with_capacity(keys.len() + groups.len());
    for (i, (name, versions)) in groups.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        binds.push(SqlValue::Text((*name).to_owned()));
        sql.push_str(&format!("(name = ${} AND version IN (", binds.len()));
        for (j, v) in versions.iter().enumerate() {
            if j > 0 {
                sql.push_str(", ");
            }
            binds.push(SqlValue::Int(*v));
            sql.push_str(&format!("CAST(${} AS BIGINT)", binds.len()));
        }
        sql.push_str("))");
    }
    (sql, binds)
}

fn names_sql(names: &[String]) -> (String, Vec<SqlValue>) {
    let marks: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    (
        marks.join(", "),
        names.iter().map(|n| SqlValue::Text(n.clone())).collect(),
    )
}

async fn load_model(conn: &mut AnyConnection, name: &str) -> Result<Option<RegisteredModel>> {
    Ok(load_models(conn, &[name.to_owned()]).await?.pop())
}

/// Registered models by name, in the order given (unknown names are
/// skipped), with tags, aliases and the newest version per stage: three
/// statements per batch, each answering one JSON row (see
/// [`load_versions`] for why).
async fn load_models(conn: &mut AnyConnection, names: &[String]) -> Result<Vec<RegisteredModel>> {
    let dialect = keel_store::dialect_of(conn);
    let decode = |e: serde_json::Error| RegistryError::from(sqlx::Error::Decode(Box::new(e)));
    let mut by_name: std::collections::HashMap<String, RegisteredModel> =
        std::collections::HashMap::new();
    for chunk in names.chunks(BATCH) {
        let (list, binds) = names_sql(chunk);
        let (models_sql, latest_sql) = match dialect {
            keel_core::sql::Dialect::Sqlite => (
                format!(
                    "SELECT json_group_array(json_array(m.name, m.creation_timestamp, m.last_updated_timestamp, m.description, \
                     json((SELECT json_group_array(json_array(t.key, t.value)) FROM registered_model_tags t WHERE t.name = m.name)), \
                     json((SELECT json_group_array(json_array(a.alias, a.version)) FROM registered_model_aliases a WHERE a.name = m.name)))) \
                     FROM registered_models m WHERE m.name IN ({list})"
                ),
                format!(
                    "SELECT json_group_array(json_array(name, v)) FROM \
                     (SELECT name, MAX(version) AS v FROM model_versions WHERE name IN ({list}) GROUP BY name, current_stage ORDER BY name, current_stage)"
                ),
            ),
            keel_core::sql::Dialect::Postgres => (
                format!(
                    "SELECT CAST(json_agg(json_build_array(m.name, m.creation_timestamp, m.last_updated_timestamp, m.description, \
                     (SELECT json_agg(json_build_array(t.key, t.value) ORDER BY t.key) FROM registered_model_tags t WHERE t.name = m.name), \
                     (SELECT json_agg(json_build_array(a.alias, a.version) ORDER BY a.alias) FROM registered_model_aliases a WHERE a.name = m.name))) AS TEXT) \
                     FROM registered_models m WHERE m.name IN ({list})"
                ),
                format!(
                    "SELECT CAST(json_agg(json_build_array(name, v) ORDER BY name, current_stage) AS TEXT) FROM \
                     (SELECT name, current_stage, MAX(version) AS v FROM model_versions WHERE name IN ({list}) GROUP BY name, current_stage) x"
                ),
            ),
        };
        let text: Option<String> = bind_all(models_sql, &binds)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        type ModelJson = (
            String,
            i64,
            i64,
            Option<String>,
            Option<Vec<(String, Option<String>)>>,
            Option<Vec<(String, i64)>>,
        );
        let models: Vec<ModelJson> =
            serde_json::from_str(text.as_deref().unwrap_or("[]")).map_err(decode)?;
        for (name, created, updated, description, tags, aliases) in models {
            let m = RegisteredModel {
                name,
                creation_timestamp: created,
                last_updated_timestamp: updated,
                description,
                tags: tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| Tag {
                        key,
                        value: value.unwrap_or_default(),
                    })
                    .collect(),
                aliases: aliases.unwrap_or_default(),
                latest_versions: Vec::new(),
            };
            by_name.insert(m.name.clone(), m);
        }
        let text: Option<String> = bind_all(latest_sql, &binds)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let latest: Vec<(String, i64)> =
            serde_json::from_str(text.as_deref().unwrap_or("[]")).map_err(decode)?;
        for v in load_versions(conn, &latest, false).await? {
            if let Some(m) = by_name.get_mut(&v.name) {
                m.latest_versions.push(v);
            }
        }
    }
    Ok(names.iter().filter_map(|n| by_name.remove(n)).collect())
}

async fn load_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
) -> Result<Option<ModelVersion>> {
    Ok(load_versions(conn, &[(name.to_owned(), version)], true)
        .await?
        .pop())
}

/// Versions by (name, version), in the order given (unknown ones are
/// skipped), with their tags and, when asked, their aliases.
///
/// Each batch is ONE statement answering one row: the versions as a JSON
/// array, each with its tags (and aliases) nested. The SQLite driver hands
/// every result row across threads and through `AnyRow`, about 20 µs a
/// row, which for a page of 100 versions and their tags cost ten times
/// the SQL itself.
async fn load_versions(
    conn: &mut AnyConnection,
    keys: &[(String, i64)],
    with_aliases: bool,
) -> Result<Vec<ModelVersion>> {
    let dialect = keel_store::dialect_of(conn);
    let mut found: std::collections::HashMap<(String, i64), ModelVersion> =
        std::collections::HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH) {
        let (pairs, binds) = pairs_sql(chunk);
        let sql = versions_json_sql(dialect, &pairs, with_aliases);
        let row = bind_all(sql, &binds).fetch_one(&mut *conn).await?;
        let text: Option<String> = row.try_get(0)?;
        let rows: Vec<VersionJson> = serde_json::from_str(text.as_deref().unwrap_or("[]"))
            .map_err(|e| RegistryError::from(sqlx::Error::Decode(Box::new(e))))?;
        for r in rows {
            let v = ModelVersion {
                name: r.0,
                version: r.1,
                creation_timestamp: r.2,
                last_updated_timestamp: r.3,
                description: r.4,
                current_stage: r.5,
                source: r.6,
                run_id: r.7,
                run_link: r.8,
                status: r.9,
                storage_location: r.10,
                model_id: r.11,
                tags: r
                    .12
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| Tag {
                        key,
                        value: value.unwrap_or_default(),
                    })
                    .collect(),
                aliases: r.13.unwrap_or_default(),
            };
            found.insert((v.name.clone(), v.version), v);
        }
    }
    Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
}

/// One version as [`versions_json_sql`] writes it.
type VersionJson = (
    String,
    i64,
    i64,
    i64,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<Vec<(String, Option<String>)>>,
    Option<Vec<String>>,
);

fn versions_json_sql(dialect: keel_core::sql::Dialect, pairs: &str, with_aliases: bool) -> String {
    const COLUMNS: &str = "v.name, v.version, v.creation_timestamp, v.last_updated_timestamp, v.description, v.current_stage, \
                           v.source, v.run_id, v.run_link, v.status, v.storage_location, v.model_id";
    let scoped = pairs
        .replace("(name = ", "(v.name = ")
        .replace(" AND version IN", " AND v.version IN");
    match dialect {
        // Rows of the tag and alias primary keys come in key order.
        keel_core::sql::Dialect::Sqlite => {
            let aliases = if with_aliases {
                ", json((SELECT json_group_array(a.alias) FROM registered_model_aliases a WHERE a.name = v.name AND a.version = v.version))"
            } else {
                ", CAST(NULL AS TEXT)"
            };
            format!(
                "SELECT json_group_array(json_array({COLUMNS}, \
                 json((SELECT json_group_array(json_array(t.key, t.value)) FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version)){aliases})) \
                 FROM model_versions v WHERE {scoped}"
            )
        }
        keel_core::sql::Dialect::Postgres => {
            let aliases = if with_aliases {
                ", (SELECT json_agg(a.alias ORDER BY a.alias) FROM registered_model_aliases a WHERE a.name = v.name AND a.version = v.version)"
            } else {
                ", CAST(NULL AS TEXT)"
            };
            format!(
                "SELECT CAST(json_agg(json_build_array({COLUMNS}, \
                 (SELECT json_agg(json_build_array(t.key, t.value) ORDER BY t.key) FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version){aliases})) AS TEXT) \
                 FROM model_versions v WHERE {scoped}"
            )
        }
    }
}
