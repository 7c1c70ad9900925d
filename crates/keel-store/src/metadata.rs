//! The metadata store: one SQL database reached through `sqlx`'s `Any`
//! driver so that every domain writes its queries once for SQLite and
//! PostgreSQL.
//!
//! Writes go through [`Db::write`]. On SQLite a single writer task owns the
//! only writing connection and commits queued writes in batches (group
//! commit: one transaction and one fsync for many requests, each request in
//! its own savepoint), so concurrent clients never see "database is locked".
//! Reads use a pool of WAL readers. On PostgreSQL each write is its own
//! transaction on the pool.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

use crate::migrate::{self, Migration};
use keel_core::sql::Dialect;

/// The future a write closure returns, borrowing the connection it runs on.
pub type WriteFuture<'c, T, E> = BoxFuture<'c, Result<T, E>>;

/// What can go wrong in the metadata store itself (domain errors travel
/// through [`Db::write`] in the caller's own error type).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL '{0}': use sqlite://PATH (default: a file in the data directory) or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {domain} v{version} failed: {source}")]
    Migration {
        domain: &'static str,
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("the write was not committed: {0}")]
    CommitFailed(String),
    #[error("the metadata writer stopped before confirming the write; check the server log")]
    WriterGone,
    #[error("cannot prepare the data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Most writes one group commit takes; bounds the latency a write can add
/// to the others in its batch.
const MAX_BATCH: usize = 256;
/// Queued writes before callers wait (back-pressure instead of unbounded
/// memory).
const WRITE_QUEUE: usize = 4096;

/// Hands a write's result to its caller once the batch's commit is known
/// (`Some(message)` if the commit failed).
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;

struct Outcome {
    ok: bool,
    deliver: Deliver,
}

type Job = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Outcome> + Send>;

/// A handle to the metadata store; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    dialect: Dialect,
    url: String,
    writer: Option<mpsc::Sender<Job>>,
}

/// When an acknowledged SQLite write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A write is acknowledged once its group commit is in the write-ahead
    /// log: it survives any crash of the process (`kill -9`), and the log is
    /// synced to disk at checkpoints. An operating-system crash or power
    /// loss can lose the last moments of writes.
    #[default]
    Process,
    /// Every group commit is synced to disk before its writes are
    /// acknowledged: they survive power loss too, at one fsync (a few ms
    /// here) per batch.
    Disk,
}

impl Durability {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "process" => Some(Durability::Process),
            "disk" => Some(Durability::Disk),
            _ => None,
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Connections in the read pool (and the write pool on PostgreSQL).
    pub max_connections: u32,
    /// SQLite only; PostgreSQL's own settings decide there.
    pub durability: Durability,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            durability: Durability::default(),
        }
    }
}

impl Db {
    /// Opens (creating if needed) the database at `url` and applies
    /// `migrations` that have not run yet.
    pub async fn open(
        url: &str,
        migrations: &[Migration],
        options: DbOptions,
    ) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = normalise_url(url)?;
        match dialect {
            Dialect::Sqlite => Self::open_sqlite(url, migrations, options).await,
            Dialect::Postgres => Self::open_postgres(url, migrations, options).await,
        }
    }

    /// A SQLite store in `dir/keel.db`, the embedded default.
    pub async fn open_in_dir(
        dir: &Path,
        migrations: &[Migration],
        options: DbOptions,
    ) -> Result<Db, StoreError> {
        std::fs::create_dir_all(dir)?;
        let url = format!("sqlite://{}", dir.join("keel.db").display());
        Self::open(&url, migrations, options).await
    }

    async fn open_sqlite(
        url: String,
        migrations: &[Migration],
        options: DbOptions,
    ) -> Result<Db, StoreError> {
        if let Some(parent) = sqlite_path(&url).and_then(|p| Path::new(p).parent())
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut writer = AnyConnection::connect(&url).await?;
        writer.execute("PRAGMA journal_mode = WAL").await?;
        configure_sqlite(&mut writer).await?;
        // Only the writer commits, so only its sync level matters.
        writer
            .execute(match options.durability {
                Durability::Process => "PRAGMA synchronous = NORMAL",
                Durability::Disk => "PRAGMA synchronous = FULL",
            })
            .await?;
        migrate::run(&mut writer, Dialect::Sqlite, migrations).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            // A local file cannot drop the connection: skip the ping per acquire.
            .test_before_acquire(false)
            .after_connect(|conn, _meta| Box::pin(async move { configure_sqlite(conn).await }))
            .connect(&url)
            .await?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(writer_loop(writer, rx));
        Ok(Db {
            inner: Arc::new(Inner {
                pool,
                dialect: Dialect::Sqlite,
                url,
                writer: Some(tx),
            }),
        })
    }

    async fn open_postgres(
        url: String,
        migrations: &[Migration],
        options: DbOptions,
    ) -> Result<Db, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .connect(&url)
            .await?;
        let mut conn = pool.acquire().await?;
        migrate::run(&mut conn, Dialect::Postgres, migrations).await?;
        drop(conn);
        Ok(Db {
            inner: Arc::new(Inner {
                pool,
                dialect: Dialect::Postgres,
                url,
                writer: None,
            }),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The URL the store was opened with (with any password removed).
    pub fn display_url(&self) -> String {
        redact_password(&self.inner.url)
    }

    /// The pool for reads. Never write through it: use [`Db::write`].
    pub fn reader(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Runs `f` inside a transaction and returns its result once committed.
    /// If `f` fails, nothing it wrote is kept.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut AnyConnection) -> WriteFuture<'c, T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &self.inner.writer {
            Some(writer) => {
                let (tx, rx) = oneshot::channel::<Result<T, E>>();
                let job: Job = Box::new(move |conn| {
                    Box::pin(async move {
                        let result = f(conn).await;
                        Outcome {
                            ok: result.is_ok(),
                            deliver: Box::new(move |commit_error| {
                                let answer = match (commit_error, result) {
                                    (Some(msg), Ok(_)) => {
                                        Err(E::from(StoreError::CommitFailed(msg.to_owned())))
                                    }
                                    (_, result) => result,
                                };
                                let _ = tx.send(answer);
                            }),
                        }
                    })
                });
                writer
                    .send(job)
                    .await
                    .map_err(|_| E::from(StoreError::WriterGone))?;
                rx.await.map_err(|_| E::from(StoreError::WriterGone))?
            }
            None => {
                let mut tx = self
                    .inner
                    .pool
                    .begin()
                    .await
                    .map_err(|e| E::from(e.into()))?;
                match f(&mut tx).await {
                    Ok(v) => {
                        tx.commit().await.map_err(|e| E::from(e.into()))?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Closes the pool; queued writes already acknowledged are on disk.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

async fn configure_sqlite(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    conn.execute("PRAGMA case_sensitive_like = OFF").await?;
    Ok(())
}

async fn writer_loop(mut conn: AnyConnection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = rx.recv().await {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut batch).await;
    }
}

async fn run_batch(conn: &mut AnyConnection, batch: &mut Vec<Job>) {
    if batch.len() == 1
        && let Some(job) = batch.pop()
    {
        return run_alone(conn, job).await;
    }
    let mut tx = match Connection::begin(conn).await {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction; dropping {} writes", batch.len());
            batch.clear();
            return;
        }
    };
    let mut delivers = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        let mut savepoint = match Connection::begin(&mut *tx).await {
            Ok(sp) => sp,
            Err(e) => {
                tracing::error!(error = %e, "cannot open a savepoint; dropping a write");
                continue;
            }
        };
        let outcome = AssertUnwindSafe(job(&mut savepoint)).catch_unwind().await;
        match outcome {
            Ok(outcome) => {
                let kept = if outcome.ok {
                    savepoint.commit().await
                } else {
                    savepoint.rollback().await
                };
                match kept {
                    Ok(()) => delivers.push(outcome.deliver),
                    Err(e) => (outcome.deliver)(Some(&e.to_string())),
                }
            }
            Err(_) => {
                tracing::error!("a write panicked; it was rolled back");
                let _ = savepoint.rollback().await;
            }
        }
    }
    match tx.commit().await {
        Ok(()) => delivers.into_iter().for_each(|d| d(None)),
        Err(e) => {
            let msg = e.to_string();
            tracing::error!(error = %msg, "group commit failed");
            delivers.into_iter().for_each(|d| d(Some(&msg)));
        }
    }
}

/// A batch of one needs no savepoint: the transaction is the write's own.
/// (Two fewer statements on the path every lone request takes.)
async fn run_alone(conn: &mut AnyConnection, job: Job) {
    let mut tx = match Connection::begin(conn).await {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction; dropping a write");
            return;
        }
    };
    match AssertUnwindSafe(job(&mut tx)).catch_unwind().await {
        Ok(outcome) if outcome.ok => match tx.commit().await {
            Ok(()) => (outcome.deliver)(None),
            Err(e) => (outcome.deliver)(Some(&e.to_string())),
        },
        Ok(outcome) => {
            let _ = tx.rollback().await;
            (outcome.deliver)(None);
        }
        Err(_) => {
            tracing::error!("a write panicked; it was rolled back");
            let _ = tx.rollback().await;
        }
    }
}

fn normalise_url(url: &str) -> Result<(Dialect, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Dialect::Postgres, url.to_owned()));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let mut url = format!("sqlite:{rest}");
        if !url.contains("mode=") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        return Ok((Dialect::Sqlite, url));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// `url` with any password replaced by `***`, for logs and messages.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_dialect() {
        assert_eq!(
            normalise_url("postgres://u@h/db").unwrap().0,
            Dialect::Postgres
        );
        let (d, u) = normalise_url("sqlite:///tmp/x.db").unwrap();
        assert_eq!(d, Dialect::Sqlite);
        assert_eq!(u, "sqlite:///tmp/x.db?mode=rwc");
        assert!(matches!(
            normalise_url("mysql://x"),
            Err(StoreError::UnsupportedUrl(_))
        ));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
    }
}
