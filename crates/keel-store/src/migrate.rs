//! Versioned schema migrations, one ordered list per domain, each with a
//! SQLite and a PostgreSQL text. Applied versions are recorded in
//! `keel_migrations`; a migration runs inside one transaction.

use sqlx::{AnyConnection, Connection, Executor};

use crate::metadata::StoreError;
use keel_core::sql::Dialect;

/// One schema step of one domain.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub domain: &'static str,
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS keel_migrations (
    domain TEXT NOT NULL,
    version BIGINT NOT NULL,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (domain, version)
)";

/// An arbitrary constant key for PostgreSQL's advisory lock, so that two
/// nodes starting at once do not both migrate.
const PG_MIGRATION_LOCK: i64 = 0x006b_6565_6c6d_6967;

pub(crate) async fn run(
    conn: &mut AnyConnection,
    dialect: Dialect,
    migrations: &[Migration],
) -> Result<usize, StoreError> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(conn, dialect, migrations).await;
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(
    conn: &mut AnyConnection,
    dialect: Dialect,
    migrations: &[Migration],
) -> Result<usize, StoreError> {
    conn.execute(LEDGER).await?;
    let mut applied = 0;
    for m in migrations {
        let done = sqlx::query("SELECT 1 FROM keel_migrations WHERE domain = $1 AND version = $2")
            .bind(m.domain)
            .bind(m.version)
            .fetch_optional(&mut *conn)
            .await?;
        if done.is_some() {
            continue;
        }
        let sql = match dialect {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        let mut tx = Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration {
                domain: m.domain,
                version: m.version,
                source: e,
            })?;
        sqlx::query(
            "INSERT INTO keel_migrations (domain, version, description, applied_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(m.domain)
        .bind(m.version)
        .bind(m.description)
        .bind(keel_core::time::now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            domain = m.domain,
            version = m.version,
            "applied migration: {}",
            m.description
        );
        applied += 1;
    }
    Ok(applied)
}
