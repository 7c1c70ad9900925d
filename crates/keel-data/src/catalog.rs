//! Datasets and their versions in the metadata store; the versions' files
//! in the artifact store.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use keel_core::time::now_millis;
use keel_store::{AnyRow, ArtifactStore, Db, Row, StoreError, hex};
use serde::Serialize;
use sha2::Digest;

use crate::schema_change::{SchemaChange, classify};
use crate::sql::Engine;
use crate::{
    Column, DataError, DataFile, Dataset, DatasetVersion, Format, VERSION_ID_LEN, VersionRef,
    check_name, lineage_id, parse_ref, profile,
};

type Result<T> = std::result::Result<T, DataError>;

/// The catalog service. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    db: Db,
    artifacts: ArtifactStore,
}

/// What [`Catalog::register`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub version: DatasetVersion,
    /// False when the same content was already a version of the dataset.
    pub created: bool,
}

/// The data files found at a registered path.
#[derive(Debug, Clone)]
pub struct SourceFiles {
    pub format: Format,
    /// (absolute path, path relative to the registered folder or the
    /// file's name), sorted by the relative path.
    pub files: Vec<(PathBuf, String)>,
}

/// Finds the data files at `path`: the file itself, or every file below
/// the folder whose extension names a format (hidden files and files
/// starting with `_`, like `_SUCCESS`, are skipped). All must share one
/// format.
pub fn data_files(path: &Path) -> Result<SourceFiles> {
    let read_err = |p: &Path, e: std::io::Error| DataError::Read {
        path: p.display().to_string(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(path, e))?;
    if meta.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let format = Format::of_path(&name).ok_or_else(|| {
            DataError::Invalid(format!(
                "path: {} is not a Parquet (.parquet), CSV (.csv) or Arrow IPC (.arrow, .feather) file",
                path.display()
            ))
        })?;
        return Ok(SourceFiles {
            format,
            files: vec![(path.to_path_buf(), name)],
        });
    }
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| read_err(&dir, e))? {
            let entry = entry.map_err(|e| read_err(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| read_err(&p, e))?;
            if ft.is_dir() {
                stack.push(p);
            } else if Format::of_path(&name).is_some() {
                let rel = p
                    .strip_prefix(path)
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
                    .unwrap_or(name);
                found.push((p, rel));
            }
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    let Some(first) = found.first() else {
        return Err(DataError::Invalid(format!(
            "path: {} holds no .parquet, .csv or .arrow files",
            path.display()
        )));
    };
    let format = Format::of_path(&first.1).unwrap_or(Format::Parquet);
    if let Some(other) = found.iter().find(|f| Format::of_path(&f.1) != Some(format)) {
        return Err(DataError::Invalid(format!(
            "path: {} mixes formats ({} and {}); register one format per dataset",
            path.display(),
            first.1,
            other.1
        )));
    }
    Ok(SourceFiles {
        format,
        files: found,
    })
}

/// SHA-256 and size of a local file.
fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex(&hasher.finalize()), size))
}

/// The data files at a local `path`, each hashed, and their content digest
/// (what the version id of registering `path` would be made of). Blocking:
/// it reads every byte.
pub fn local_digest(path: &Path) -> Result<(Format, String, Vec<DataFile>)> {
    let source = data_files(path)?;
    let files = hash_local(&source.files)?;
    Ok((source.format, content_digest(&files), files))
}

/// Each (absolute, relative) file hashed. Blocking.
fn hash_local(files: &[(PathBuf, String)]) -> Result<Vec<DataFile>> {
    files
        .iter()
        .map(|(abs, rel)| {
            let (sha256, size) = hash_file(abs)?;
            Ok(DataFile {
                path: rel.clone(),
                size,
                sha256,
            })
        })
        .collect()
}

/// A SHA-256 fed by the chunks of a stream on their way elsewhere.
#[derive(Clone, Default)]
struct Tee(std::sync::Arc<std::sync::Mutex<sha2::Sha256>>);

impl Tee {
    /// `stream`, hashing every chunk that passes.
    fn pass<S, E>(&self, stream: S) -> impl futures::Stream<Item = std::result::Result<Bytes, E>>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>>,
    {
        use futures::StreamExt;
        let tee = self.clone();
        stream.map(move |chunk| {
            if let (Ok(bytes), Ok(mut h)) = (&chunk, tee.0.lock()) {
                h.update(bytes);
            }
            chunk
        })
    }

    fn hex(&self) -> Result<String> {
        match self.0.lock() {
            Ok(h) => Ok(hex(&h.clone().finalize())),
            Err(_) => Err(DataError::Corrupt("a hash was lost".into())),
        }
    }
}

/// The content digest of a version's files (see the crate docs).
pub fn content_digest(files: &[DataFile]) -> String {
    if let [one] = files {
        return one.sha256.clone();
    }
    let mut hasher = sha2::Sha256::new();
    for f in files {
        hasher.update(f.path.as_bytes());
        hasher.update(b"\t");
        hasher.update(f.sha256.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

const VERSION_COLUMNS: &str = "name, version, digest, format, source, location, columns, row_count, size_bytes, files, profile, schema_change, created_at, actor";

fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, i: usize, what: &str) -> Result<T> {
    let text: String = row.try_get(i)?;
    serde_json::from_str(&text).map_err(|e| DataError::Corrupt(format!("{what}: {e}")))
}

fn version_from_row(row: &AnyRow) -> Result<DatasetVersion> {
    let name: String = row.try_get(0)?;
    let digest: String = row.try_get(2)?;
    let format_text: String = row.try_get(3)?;
    let format: Format = serde_json::from_value(serde_json::Value::String(format_text))
        .map_err(|e| DataError::Corrupt(format!("format: {e}")))?;
    let id = digest.chars().take(VERSION_ID_LEN).collect::<String>();
    Ok(DatasetVersion {
        lineage_node: format!("dataset:{}", lineage_id(&name, &id)),
        name,
        version: row.try_get(1)?,
        id,
        digest,
        format,
        source: row.try_get(4)?,
        location: row.try_get(5)?,
        columns: json_col(row, 6, "columns")?,
        row_count: row.try_get(7)?,
        size_bytes: row.try_get(8)?,
        files: json_col(row, 9, "files")?,
        profile: json_col(row, 10, "profile")?,
        schema_change: json_col(row, 11, "schema_change")?,
        created_at: row.try_get(12)?,
        actor: row.try_get(13)?,
    })
}

fn dataset_from_row(row: &AnyRow) -> Result<Dataset> {
    Ok(Dataset {
        name: row.try_get(0)?,
        description: row.try_get(1)?,
        latest_version: row.try_get(2)?,
        created_at: row.try_get(3)?,
        updated_at: row.try_get(4)?,
    })
}

fn is_unique_violation(e: &StoreError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("unique") || text.contains("duplicate key")
}

impl Catalog {
    pub fn new(db: Db, artifacts: ArtifactStore) -> Self {
        Catalog { db, artifacts }
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The SQL engine over this catalog.
    pub fn engine(&self) -> Engine {
        Engine::new(self.clone())
    }

    /// Registers the file or folder at `path` as a new version of `name`
    /// (creating the dataset), or answers the existing version holding the
    /// same content. The files are copied into the artifact store first;
    /// the version is recorded only once the copy is whole and its schema
    /// and profile are computed, so a failure leaves nothing behind.
    pub async fn register(
        &self,
        name: &str,
        path: &Path,
        description: Option<String>,
        actor: Option<String>,
    ) -> Result<Registered> {
        check_name(name)?;
        let source = data_files(path)?;
        // First pass: the content hash, to find an existing version before
        // copying anything.
        let hashed = {
            let files = source.files.clone();
            tokio::task::spawn_blocking(move || hash_local(&files))
                .await
                .map_err(|e| DataError::Corrupt(format!("hashing stopped: {e}")))??
        };
        let digest = content_digest(&hashed);
        if let Some(existing) = self.by_digest(name, &digest).await? {
            return Ok(Registered {
                version: existing,
                created: false,
            });
        }
        let id: String = digest.chars().take(VERSION_ID_LEN).collect();
        let location = format!("datasets/{name}/{id}");
        if let Err(e) = self.copy_in(&source, &hashed, &location).await {
            let _ = self.artifacts.delete(&location).await;
            return Err(e);
        }
        let source_text = path
            .canonicalize()
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        self.finish(Copied {
            name: name.to_owned(),
            location,
            format: source.format,
            files: hashed,
            digest,
            source: source_text,
            description,
            actor,
        })
        .await
    }

    /// Registers the object or folder at an object-store URL
    /// (`s3://bucket/events.parquet`, `s3://bucket/events/`, `gs://…`,
    /// `az://…`; credentials and endpoint from the environment, as for the
    /// artifact store). Each file is read once: hashed on its way into a
    /// staging folder of the artifact store, then moved under the version's
    /// content hash (or dropped, when that content is already a version).
    pub async fn register_url(
        &self,
        name: &str,
        url: &str,
        description: Option<String>,
        actor: Option<String>,
    ) -> Result<Registered> {
        check_name(name)?;
        let (remote, format, files) = remote_files(url).await?;
        let staging = format!(
            "datasets/{name}/.staging-{}-{}",
            now_millis(),
            STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let copied = self.copy_remote(&remote, &files, &staging).await;
        let hashed = match copied {
            Ok(h) => h,
            Err(e) => {
                let _ = self.artifacts.delete(&staging).await;
                return Err(e);
            }
        };
        let digest = content_digest(&hashed);
        if let Some(existing) = self.by_digest(name, &digest).await? {
            let _ = self.artifacts.delete(&staging).await;
            return Ok(Registered {
                version: existing,
                created: false,
            });
        }
        let id: String = digest.chars().take(VERSION_ID_LEN).collect();
        let location = format!("datasets/{name}/{id}");
        for f in &hashed {
            let moved = self
                .artifacts
                .rename(
                    &format!("{staging}/{}", f.path),
                    &format!("{location}/{}", f.path),
                )
                .await;
            if let Err(e) = moved {
                let _ = self.artifacts.delete(&staging).await;
                let _ = self.artifacts.delete(&location).await;
                return Err(e.into());
            }
        }
        let _ = self.artifacts.delete(&staging).await;
        self.finish(Copied {
            name: name.to_owned(),
            location,
            format,
            files: hashed,
            digest,
            source: url.to_owned(),
            description,
            actor,
        })
        .await
    }

    /// Streams remote files into `staging`, hashing them on the way.
    async fn copy_remote(
        &self,
        remote: &ArtifactStore,
        files: &[String],
        staging: &str,
    ) -> Result<Vec<DataFile>> {
        let mut out = Vec::new();
        for rel in files {
            let (_, stream) = remote.get_stream(rel).await?;
            let tee = Tee::default();
            let size = self
                .artifacts
                .put_stream(&format!("{staging}/{rel}"), Box::pin(tee.pass(stream)))
                .await?;
            let sha256 = tee.hex()?;
            out.push(DataFile {
                path: rel.clone(),
                size,
                sha256,
            });
        }
        Ok(out)
    }

    /// Describes the copied files and records the version; a failure
    /// deletes the copy.
    async fn finish(&self, c: Copied) -> Result<Registered> {
        let (columns, profile) = match self.describe(&c.location, c.format).await {
            Ok(d) => d,
            Err(e) => {
                let _ = self.artifacts.delete(&c.location).await;
                return Err(e);
            }
        };
        let (name, digest, location) = (c.name.clone(), c.digest.clone(), c.location.clone());
        match self.insert(c, columns, profile).await {
            Ok(()) => {}
            Err(DataError::Store(e)) if is_unique_violation(&e) => {
                // A concurrent registration of the same content won; its
                // files are the same bytes at the same place.
            }
            Err(e) => {
                let _ = self.artifacts.delete(&location).await;
                return Err(e);
            }
        }
        match self.by_digest(&name, &digest).await? {
            Some(version) => Ok(Registered {
                version,
                created: true,
            }),
            None => {
                // Another version took this number at the same moment.
                let _ = self.artifacts.delete(&location).await;
                Err(DataError::Conflict(format!(
                    "another version of `{name}` was registered at the same moment; register again"
                )))
            }
        }
    }

    /// Copies the files into `location`, checking each against its hash.
    async fn copy_in(
        &self,
        source: &SourceFiles,
        hashed: &[DataFile],
        location: &str,
    ) -> Result<()> {
        use tokio::io::AsyncReadExt;
        for ((abs, rel), expect) in source.files.iter().zip(hashed) {
            let file = tokio::fs::File::open(abs)
                .await
                .map_err(|e| DataError::Read {
                    path: abs.display().to_string(),
                    source: e,
                })?;
            let stream = futures::stream::unfold(file, |mut f| async move {
                let mut buf = vec![0u8; 1 << 20];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), f))
                    }
                    Err(e) => Some((Err(e), f)),
                }
            });
            let tee = Tee::default();
            let target = format!("{location}/{rel}");
            self.artifacts
                .put_stream(&target, Box::pin(tee.pass(stream)))
                .await?;
            if tee.hex()? != expect.sha256 {
                return Err(DataError::Conflict(format!(
                    "{} changed while it was being registered; register it again once it is written",
                    abs.display()
                )));
            }
        }
        Ok(())
    }

    /// The schema and profile of the files at `location`.
    async fn describe(
        &self,
        location: &str,
        format: Format,
    ) -> Result<(Vec<Column>, crate::Profile)> {
        let engine = self.engine();
        let ctx = engine.session()?;
        let table = engine.location_table(&ctx, location, format).await?;
        let schema = table.schema();
        ctx.register_table("t", table)?;
        let profile = profile::profile(&ctx, "t", &schema).await?;
        Ok((crate::sql::columns_of(&schema), profile))
    }

    async fn insert(&self, v: Copied, columns: Vec<Column>, profile: crate::Profile) -> Result<()> {
        let size_bytes: i64 = v.files.iter().map(|f| f.size as i64).sum();
        self.db
            .write::<_, DataError, _>(move |conn| {
                Box::pin(async move {
                    let now = now_millis();
                    let latest = sqlx::query("SELECT latest_version FROM catalog_datasets WHERE name = $1")
                        .bind(v.name.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                    let previous: Option<i64> = match &latest {
                        Some(row) => Some(row.try_get(0)?),
                        None => None,
                    };
                    let number = previous.unwrap_or(0) + 1;
                    let change = match previous {
                        None => SchemaChange::initial(),
                        Some(p) => {
                            let row = sqlx::query(
                                "SELECT columns FROM catalog_versions WHERE name = $1 AND version = $2",
                            )
                            .bind(v.name.as_str())
                            .bind(p)
                            .fetch_one(&mut *conn)
                            .await?;
                            let old: Vec<Column> = json_col(&row, 0, "columns")?;
                            classify(&old, &columns, p)
                        }
                    };
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO catalog_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                    )))
                    .bind(v.name.as_str())
                    .bind(number)
                    .bind(v.digest.as_str())
                    .bind(v.format.as_str())
                    .bind(v.source.as_str())
                    .bind(v.location.as_str())
                    .bind(json(&columns))
                    .bind(profile.row_count)
                    .bind(size_bytes)
                    .bind(json(&v.files))
                    .bind(json(&profile))
                    .bind(json(&change))
                    .bind(now)
                    .bind(v.actor.clone())
                    .execute(&mut *conn)
                    .await?;
                    if previous.is_some() {
                        sqlx::query("UPDATE catalog_datasets SET latest_version = $1, updated_at = $2, description = COALESCE($3, description) WHERE name = $4")
                            .bind(number)
                            .bind(now)
                            .bind(v.description.clone())
                            .bind(v.name.as_str())
                            .execute(&mut *conn)
                            .await?;
                    } else {
                        sqlx::query("INSERT INTO catalog_datasets (name, description, latest_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
                            .bind(v.name.as_str())
                            .bind(v.description.clone())
                            .bind(number)
                            .bind(now)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn by_digest(&self, name: &str, digest: &str) -> Result<Option<DatasetVersion>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM catalog_versions WHERE name = $1 AND digest = $2"
        )))
        .bind(name)
        .bind(digest)
        .fetch_optional(self.db.reader())
        .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    /// Every dataset, by name.
    pub async fn list(&self) -> Result<Vec<Dataset>> {
        let rows = sqlx::query(
            "SELECT name, description, latest_version, created_at, updated_at FROM catalog_datasets ORDER BY name",
        )
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(dataset_from_row).collect()
    }

    /// One dataset.
    pub async fn dataset(&self, name: &str) -> Result<Dataset> {
        check_name(name)?;
        let row = sqlx::query(
            "SELECT name, description, latest_version, created_at, updated_at FROM catalog_datasets WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db.reader())
        .await?;
        match row {
            Some(r) => dataset_from_row(&r),
            None => Err(self.unknown(name).await),
        }
    }

    /// A dataset's versions, newest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<DatasetVersion>> {
        self.dataset(name).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM catalog_versions WHERE name = $1 ORDER BY version DESC"
        )))
        .bind(name)
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// The version `text` (`NAME[@REF]`) refers to.
    pub async fn resolve(&self, text: &str) -> Result<DatasetVersion> {
        let (name, version) = parse_ref(text)?;
        self.version(&name, &version).await
    }

    /// One version of a dataset.
    pub async fn version(&self, name: &str, version: &VersionRef) -> Result<DatasetVersion> {
        let dataset = self.dataset(name).await?;
        let rows = match version {
            VersionRef::Latest | VersionRef::Number(_) => {
                let n = match version {
                    VersionRef::Number(n) => *n,
                    _ => dataset.latest_version,
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {VERSION_COLUMNS} FROM catalog_versions WHERE name = $1 AND version = $2"
                )))
                .bind(name)
                .bind(n)
                .fetch_all(self.db.reader())
                .await?
            }
            VersionRef::Digest(prefix) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {VERSION_COLUMNS} FROM catalog_versions WHERE name = $1 AND digest LIKE $2 ORDER BY version LIMIT 2"
                )))
                .bind(name)
                .bind(format!("{prefix}%"))
                .fetch_all(self.db.reader())
                .await?
            }
        };
        match rows.as_slice() {
            [one] => version_from_row(one),
            [] => Err(DataError::NotFound(format!(
                "dataset `{name}` has no version {}; its versions are v1…v{} (`keel data show {name}` lists them)",
                describe_ref(version),
                dataset.latest_version
            ))),
            _ => Err(DataError::Invalid(format!(
                "version {} of `{name}` is ambiguous; give more digits",
                describe_ref(version)
            ))),
        }
    }

    async fn unknown(&self, name: &str) -> DataError {
        let names: Vec<String> = self
            .list()
            .await
            .map(|l| l.into_iter().map(|d| d.name).collect())
            .unwrap_or_default();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut budget = keel_core::suggest::BUDGET;
        let hint = keel_core::suggest::closest(name, &refs, &mut budget)
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_else(|| "; `keel data list` shows the registered datasets".into());
        DataError::NotFound(format!("there is no dataset `{name}`{hint}"))
    }
}

fn describe_ref(v: &VersionRef) -> String {
    match v {
        VersionRef::Latest => "latest".into(),
        VersionRef::Number(n) => format!("v{n}"),
        VersionRef::Digest(d) => format!("`{d}`"),
    }
}

/// Staging folder names made by this process.
static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Files copied into a version's folder, not yet described or recorded.
struct Copied {
    name: String,
    location: String,
    format: Format,
    files: Vec<DataFile>,
    digest: String,
    source: String,
    description: Option<String>,
    actor: Option<String>,
}

/// The data files at an object-store URL: the store to read them from,
/// their format, and their paths in it (also their paths in the version).
async fn remote_files(url: &str) -> Result<(ArtifactStore, Format, Vec<String>)> {
    let trimmed = url.trim_end_matches('/');
    let bad = |why: &str| DataError::Invalid(format!("path: `{url}` {why}"));
    let folder = ArtifactStore::open(trimmed).map_err(|e| bad(&e.to_string()))?;
    let visible = |p: &str| {
        !p.split('/')
            .any(|s| s.starts_with('.') || s.starts_with('_'))
    };
    let listed: Vec<String> = folder
        .list_files("")
        .await?
        .into_iter()
        .map(|e| e.path)
        .filter(|p| visible(p) && Format::of_path(p).is_some())
        .collect();
    let (store, files) = if listed.is_empty() {
        let Some((parent, file)) = trimmed
            .rsplit_once('/')
            .filter(|(p, _)| p.contains("://") && !p.ends_with('/'))
        else {
            return Err(bad(
                "names no object: give s3://BUCKET/KEY or a folder of files",
            ));
        };
        if Format::of_path(file).is_none() {
            return Err(bad(
                "is neither a .parquet, .csv or .arrow object nor a folder holding some",
            ));
        }
        let store = ArtifactStore::open(parent).map_err(|e| bad(&e.to_string()))?;
        (store, vec![file.to_owned()])
    } else {
        (folder, listed)
    };
    let format = Format::of_path(&files[0]).unwrap_or(Format::Parquet);
    if let Some(other) = files.iter().find(|f| Format::of_path(f) != Some(format)) {
        return Err(bad(&format!(
            "mixes formats ({} and {other}); register one format per dataset",
            files[0]
        )));
    }
    Ok((store, format, files))
}

/// A catalog record as its JSON column text.
fn json<T: Serialize>(x: &T) -> String {
    serde_json::to_string(x).unwrap_or_else(|_| "null".into())
}
