//! `keel-store` owns where Keel keeps things: the metadata store (SQLite by
//! default, PostgreSQL by URL) with its versioned migrations and single
//! batching writer, and the artifact store (a local directory by default, any
//! `object_store` backend by URL).
//!
//! It knows nothing about any domain's tables or about HTTP: domains hand it
//! their migrations and their write closures.

pub mod artifacts;
pub mod metadata;
mod migrate;
#[cfg(feature = "testing")]
pub mod testing;

pub use artifacts::{ArtifactEntry, ArtifactError, ArtifactStore, FileDigest, hex};
pub use keel_core::sql::{Dialect, QueryBuilder, SqlValue};
pub use metadata::{Db, DbOptions, Durability, StoreError, WriteFuture, redact_password};
pub use migrate::Migration;
pub use sqlx::{AnyConnection, Row, any::AnyRow};

/// The dialect of a connection of the metadata store.
pub fn dialect_of(conn: &AnyConnection) -> Dialect {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        Dialect::Postgres
    } else {
        Dialect::Sqlite
    }
}

/// A query from [`QueryBuilder`] text with its values bound. The text is
/// built only from literals; every user value arrives through `binds`.
pub fn bind_all(
    sql: String,
    binds: &[SqlValue],
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            SqlValue::Null => query.bind(Option::<String>::None),
            SqlValue::Bool(v) => query.bind(*v),
            SqlValue::Int(v) => query.bind(*v),
            SqlValue::Real(v) => query.bind(*v),
            SqlValue::Text(v) => query.bind(v.as_str()),
        };
    }
    query
}
