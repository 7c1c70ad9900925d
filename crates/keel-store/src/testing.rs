//! Databases for a domain's store suite: a fresh SQLite store always, and a
//! fresh PostgreSQL database when `KEEL_TEST_POSTGRES_URL` names a server
//! (required when `CI=true`, so a missing service fails instead of
//! skipping). Test support only: it panics on any setup failure.

use crate::{Db, DbOptions, Migration};

/// One database per backend, migrated with `migrations`; keep the
/// directory alive as long as the SQLite store is used.
pub async fn databases(migrations: &[Migration]) -> Vec<(Db, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Db::open_in_dir(dir.path(), migrations, DbOptions::default())
        .await
        .expect("the SQLite store opens");
    let mut out = vec![(db, Some(dir))];
    match std::env::var("KEEL_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!(
                "keel_{}_{}",
                migrations.first().map_or("suite", |m| m.domain),
                std::process::id()
            );
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin)
                .await
                .expect("the PostgreSQL server answers");
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&pool)
            .await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .expect("a fresh PostgreSQL database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let db = Db::open(&format!("{base}/{name}"), migrations, DbOptions::default())
                .await
                .expect("the PostgreSQL store opens");
            out.push((db, None));
        }
        Err(_) => assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "KEEL_TEST_POSTGRES_URL is required in CI"
        ),
    }
    out
}
