//! `keel-online` holds the feature store's online values: the latest
//! feature row of every entity of every view, and the window state of
//! stream feature views, behind one trait with two implementations.
//!
//! * [`EmbeddedStore`] — one [`redb`] file in the data directory, the
//!   default (chosen by `bench/online_kv`; see BENCHMARKS.md);
//! * [`RedisStore`] — a Redis server, for several Keel nodes or a store
//!   larger than one machine's disk cache.
//!
//! The store knows tables of keys and opaque values, each value stamped
//! with its event time (microseconds since the epoch). Its one rule is the
//! online store's: [`OnlineStore::write_newest`] never replaces a value with
//! one of an older event time, whatever order writes arrive in (an equal
//! time replaces: the later write wins). What the bytes mean is in
//! [`codec`]; which tables exist is the feature store's business.
//!
//! Both stores pass the same test suite ([`suite`]).

pub mod codec;
mod embedded;
mod redis_store;
pub mod suite;

pub use embedded::EmbeddedStore;
pub use redis_store::RedisStore;

use std::sync::Arc;

/// What the online stores fail with.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The embedded store's file is held by another process.
    #[error(
        "the online store {path} is open in another process (a running `keel server`?): stop it, or send the command to that server with --server URL"
    )]
    Locked { path: String },
    #[error("online store: {0}")]
    Embedded(String),
    #[error("Redis online store: {0}")]
    Redis(String),
    #[error("the online store holds a damaged value: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

/// How safe an acknowledged write must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the call returns (an fsync on the embedded store).
    Durable,
    /// In the store's memory; made durable by the next durable write or
    /// [`OnlineStore::sync`]. Materialization writes this way and syncs
    /// once, with its watermark, at the end.
    Buffered,
}

/// One value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    /// Microseconds since the epoch.
    pub event_ts: i64,
    pub value: Vec<u8>,
}

/// One value read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub event_ts: i64,
    pub value: Vec<u8>,
}

/// Keys to read from one table.
#[derive(Debug, Clone, Copy)]
pub struct TableKeys<'a> {
    pub table: &'a str,
    pub keys: &'a [Vec<u8>],
}

/// An online store.
#[async_trait::async_trait]
pub trait OnlineStore: Send + Sync + 'static {
    /// Where the values are, for messages: a path or a redacted URL.
    fn describe(&self) -> String;

    /// The stored values of every key of every table, in order (`None`:
    /// absent), in one round trip.
    async fn read(&self, reads: &[TableKeys<'_>]) -> Result<Vec<Vec<Option<Stored>>>, OnlineError>;

    /// Writes every entry whose event time is not older than the stored
    /// value's; answers how many were written (the rest kept a newer
    /// value). Entries of one call with the same key apply in order.
    async fn write_newest(
        &self,
        table: &str,
        entries: Vec<Entry>,
        durability: Durability,
    ) -> Result<u64, OnlineError>;

    /// Writes every entry, whatever is stored (window state, watermarks).
    async fn put(
        &self,
        table: &str,
        entries: Vec<Entry>,
        durability: Durability,
    ) -> Result<(), OnlineError>;

    /// Makes every earlier write durable.
    async fn sync(&self) -> Result<(), OnlineError>;
}

/// A shared online store.
pub type SharedStore = Arc<dyn OnlineStore>;

/// Opens the store a setting names: `redb` or empty for the embedded store
/// at `embedded_path`, `redis://…` (or `rediss://…`) for Redis with keys
/// under `keel:`.
pub async fn open(
    setting: &str,
    embedded_path: &std::path::Path,
) -> Result<SharedStore, OnlineError> {
    match setting {
        "" | "redb" | "embedded" => Ok(Arc::new(EmbeddedStore::open(embedded_path, None)?)),
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            Ok(Arc::new(RedisStore::open(url, "keel:").await?))
        }
        other => Err(OnlineError::Invalid(format!(
            "online_store `{other}`: write `redb` (the embedded store, the default) or a redis://HOST:PORT/DB URL"
        ))),
    }
}
