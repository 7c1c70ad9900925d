//! The feature store's state: applied repo versions in the metadata store,
//! their sources read through the dataset catalog's SQL engine, and the
//! training sets built from them ([`training`]).
//!
//! Applying is all or nothing: the files are parsed and checked, then every
//! feature view is checked against the columns its source (or its `sql`)
//! really has, and only a repo with no problem at all becomes the next
//! version. A file source's `path` is relative to the repo folder the
//! definitions were applied from, and is read where the store runs.

mod push_log;
pub mod training;

pub use push_log::log_folder;

use std::path::{Path, PathBuf};

use datafusion::execution::context::SessionContext;
use keel_core::time::now_millis;
use keel_data::Catalog;
use keel_store::{Db, Migration, Row};
use serde::Serialize;
use sha2::Digest;

use crate::FeatureError;
use crate::definition::{
    FeatureView, Location, Plan, Problem, Repo, RepoFile, Source, SourcePath, check_against_schema,
    parse_repo, plan,
};

type Result<T> = std::result::Result<T, FeatureError>;

/// The feature store's schema steps.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "features",
    version: 1,
    description: "applied feature repos",
    sqlite: include_str!("../migrations/0001_feature_repos.sql"),
    postgres: include_str!("../migrations/0001_feature_repos.sql"),
}];

/// One applied version of the repo.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: i64,
    pub repo: Repo,
    /// Where file sources' paths are resolved.
    pub repo_dir: String,
    /// SHA-256 of the repo's canonical JSON.
    pub digest: String,
    pub applied_at: i64,
    pub actor: Option<String>,
}

/// What [`FeatureStore::apply`] answers.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyOutcome {
    pub plan: Plan,
    /// The version now current (0: nothing applied yet).
    pub version: i64,
    /// Whether this call made a new version.
    pub applied: bool,
}

/// The feature store. Cheap to clone.
#[derive(Clone)]
pub struct FeatureStore {
    db: Db,
    catalog: Catalog,
}

/// Where a source's data is.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    File(PathBuf),
    Dataset(Box<keel_data::DatasetVersion>),
}

impl FeatureStore {
    pub fn new(db: Db, catalog: Catalog) -> Self {
        FeatureStore { db, catalog }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The current version, if anything was applied.
    pub async fn current(&self) -> Result<Option<Applied>> {
        let row = sqlx::query(
            "SELECT version, repo, repo_dir, digest, applied_at, actor FROM feature_repos ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(self.db.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get(1)?;
        let repo: Repo =
            serde_json::from_str(&text).map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        Ok(Some(Applied {
            version: row.try_get(0)?,
            repo,
            repo_dir: row.try_get(2)?,
            digest: row.try_get(3)?,
            applied_at: row.try_get(4)?,
            actor: row.try_get(5)?,
        }))
    }

    /// Checks `files` (from the folder `repo_dir`) and, unless `dry_run`,
    /// applies them as the next version when they change anything.
    /// `expected_version`, when given, must be the current version (the one
    /// a shown plan was made against).
    pub async fn apply(
        &self,
        files: &[RepoFile],
        repo_dir: &Path,
        dry_run: bool,
        expected_version: Option<i64>,
        actor: Option<String>,
    ) -> Result<ApplyOutcome> {
        let repo = parse_repo(files).map_err(FeatureError::Definitions)?;
        let problems = self.check_data(&repo, repo_dir).await?;
        if !problems.is_empty() {
            return Err(FeatureError::Definitions(problems));
        }
        let current = self.current().await?;
        let current_version = current.as_ref().map_or(0, |c| c.version);
        if let Some(expected) = expected_version
            && expected != current_version
        {
            return Err(FeatureError::Conflict(format!(
                "the applied repo is version {current_version}, not {expected}: someone applied in between; look at the new plan and apply again"
            )));
        }
        let empty = Repo::default();
        let plan = plan(current.as_ref().map_or(&empty, |c| &c.repo), &repo);
        let repo_dir_text = repo_dir.display().to_string();
        let dir_moved = current
            .as_ref()
            .is_some_and(|c| c.repo_dir != repo_dir_text);
        if dry_run || (!plan.has_changes() && !dir_moved) {
            return Ok(ApplyOutcome {
                plan,
                version: current_version,
                applied: false,
            });
        }
        let json =
            serde_json::to_string(&repo).map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        let digest = keel_store::hex(&sha2::Sha256::digest(json.as_bytes()));
        let plan_json =
            serde_json::to_string(&plan).map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        let next = current_version + 1;
        self.db
            .write::<_, FeatureError, _>(move |conn| {
                Box::pin(async move {
                    let now: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM feature_repos")
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get(0)?;
                    if now != current_version {
                        return Err(FeatureError::Conflict(format!(
                            "the applied repo moved to version {now} while this one was checked; apply again"
                        )));
                    }
                    sqlx::query("INSERT INTO feature_repos (version, repo, repo_dir, digest, plan, applied_at, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                        .bind(next)
                        .bind(json)
                        .bind(repo_dir_text)
                        .bind(digest)
                        .bind(plan_json)
                        .bind(now_millis())
                        .bind(actor)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(ApplyOutcome {
            plan,
            version: next,
            applied: true,
        })
    }

    /// Every problem between the definitions and the data they read.
    async fn check_data(&self, repo: &Repo, repo_dir: &Path) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        let engine = self.catalog.engine();
        for view in &repo.feature_views {
            let Some(source) = repo.source(&view.source) else {
                continue;
            };
            let ctx = engine.session()?;
            let columns = match self.view_columns(&ctx, repo_dir, source, view).await {
                Ok(c) => c,
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            };
            problems.extend(check_against_schema(repo, view, &columns));
        }
        for view in &repo.stream_feature_views {
            let Some(source) = repo.source(&view.source) else {
                continue;
            };
            let ctx = engine.session()?;
            if let Err(p) = self.register_source(&ctx, repo_dir, source).await {
                problems.push(p);
            }
        }
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        problems.dedup();
        Ok(problems)
    }

    /// The (name, type) columns a view reads: its source's, or its SQL's.
    async fn view_columns(
        &self,
        ctx: &SessionContext,
        repo_dir: &Path,
        source: &Source,
        view: &FeatureView,
    ) -> std::result::Result<Vec<(String, String)>, Problem> {
        let (schema, _) = self.register_source(ctx, repo_dir, source).await?;
        let schema = match &view.sql {
            None => schema,
            Some(sql) => match ctx.sql(sql).await {
                Ok(df) => std::sync::Arc::new(df.schema().as_arrow().clone()),
                Err(e) => {
                    return Err(at(
                        &view.location,
                        ".sql",
                        format!(
                            "the SQL does not plan over source `{}`: {}",
                            source.name,
                            keel_data::DataError::from(e)
                        ),
                    ));
                }
            },
        };
        Ok(schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect())
    }

    /// Registers `source` in `ctx` under its name; answers its schema and
    /// where its data is, or the problem that stops it from being read.
    pub(crate) async fn register_source(
        &self,
        ctx: &SessionContext,
        repo_dir: &Path,
        source: &Source,
    ) -> std::result::Result<(datafusion::arrow::datatypes::SchemaRef, Resolved), Problem> {
        let problem = |m: String| at(&source.location, ".path", m);
        let resolved = self
            .resolve_source(repo_dir, source)
            .await
            .map_err(|e| problem(e.to_string()))?;
        let table = match &resolved {
            Resolved::File(path) => keel_data::sql::local_table(ctx, path)
                .await
                .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?,
            Resolved::Dataset(v) => self
                .catalog
                .engine()
                .version_table(ctx, v)
                .await
                .map_err(|e| problem(e.to_string()))?,
        };
        let schema = table.schema();
        ctx.register_table(source.name.as_str(), table)
            .map_err(|e| problem(e.to_string()))?;
        self.union_push_log(ctx, &source.name)
            .await
            .map_err(|e| problem(format!("cannot read the source's push log: {e}")))?;
        Ok((schema, resolved))
    }

    async fn resolve_source(&self, repo_dir: &Path, source: &Source) -> Result<Resolved> {
        match &source.path {
            SourcePath::File(rel) => {
                let path = repo_dir.join(rel);
                if !path.exists() {
                    return Err(FeatureError::Invalid(format!(
                        "{} does not exist (the path is relative to the repo folder {})",
                        path.display(),
                        repo_dir.display()
                    )));
                }
                Ok(Resolved::File(path))
            }
            SourcePath::Url(url) => Err(FeatureError::Invalid(format!(
                "`{url}`: a source on an object store is read as a catalog dataset, so that training sets can name the exact version they read: run `keel data register NAME {url}` and write `path: dataset:NAME`"
            ))),
            SourcePath::Dataset { name, version } => {
                let text = match version {
                    Some(v) => format!("{name}@{v}"),
                    None => name.clone(),
                };
                Ok(Resolved::Dataset(Box::new(
                    self.catalog.resolve(&text).await?,
                )))
            }
        }
    }
}

fn at(location: &Location, suffix: &str, message: String) -> Problem {
    Problem {
        file: location.file.clone(),
        line: location.line,
        column: location.column,
        path: format!("{}{suffix}", location.path),
        message,
    }
}
