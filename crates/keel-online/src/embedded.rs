//! The embedded online store: one redb file.
//!
//! A table of the store is a redb table of byte keys to values laid out as
//! the event time (8 bytes, little-endian) followed by the value's bytes.
//! Reads run on the caller's thread in one read transaction (they take
//! microseconds and never wait for writers: redb readers see the last
//! committed snapshot); writes run on tokio's blocking pool, one write
//! transaction per call. `Durability::Buffered` commits without an fsync
//! (redb's `Durability::None`): such commits survive a crash of Keel but
//! not of the machine until the next durable commit, which makes them all
//! durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use crate::{Durability, Entry, OnlineError, OnlineStore, Stored, TableKeys};

/// The default page cache: the hot set of a feature server should fit.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// The embedded online store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

fn err(e: impl std::fmt::Display) -> OnlineError {
    OnlineError::Embedded(e.to_string())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path, cache_bytes: Option<usize>) -> Result<Self, OnlineError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut builder = Database::builder();
        builder.set_cache_size(cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES));
        let db = builder.create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OnlineError::Locked {
                path: path.display().to_string(),
            },
            other => err(format!("cannot open {}: {other}", path.display())),
        })?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
        })
    }

    fn write_blocking(
        &self,
        name: &str,
        entries: &[Entry],
        durability: Durability,
        newest_only: bool,
    ) -> Result<u64, OnlineError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(match durability {
            Durability::Durable => redb::Durability::Immediate,
            Durability::Buffered => redb::Durability::None,
        })
        .map_err(err)?;
        let mut written = 0;
        {
            let mut t = txn.open_table(table(name)).map_err(err)?;
            let mut buf = Vec::new();
            for entry in entries {
                if newest_only
                    && let Some(old) = t.get(entry.key.as_slice()).map_err(err)?
                    && stored_ts(old.value())? > entry.event_ts
                {
                    continue;
                }
                buf.clear();
                buf.extend_from_slice(&entry.event_ts.to_le_bytes());
                buf.extend_from_slice(&entry.value);
                t.insert(entry.key.as_slice(), buf.as_slice())
                    .map_err(err)?;
                written += 1;
            }
        }
        txn.commit().map_err(err)?;
        Ok(written)
    }

    async fn write(
        &self,
        name: &str,
        entries: Vec<Entry>,
        durability: Durability,
        newest_only: bool,
    ) -> Result<u64, OnlineError> {
        if entries.is_empty() && durability == Durability::Buffered {
            return Ok(0);
        }
        let store = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            store.write_blocking(&name, &entries, durability, newest_only)
        })
        .await
        .map_err(err)?
    }
}

fn stored_ts(bytes: &[u8]) -> Result<i64, OnlineError> {
    let head: [u8; 8] = bytes
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| OnlineError::Corrupt(format!("a value of {} bytes", bytes.len())))?;
    Ok(i64::from_le_bytes(head))
}

#[async_trait::async_trait]
impl OnlineStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("redb file {}", self.path.display())
    }

    async fn read(&self, reads: &[TableKeys<'_>]) -> Result<Vec<Vec<Option<Stored>>>, OnlineError> {
        let txn = self.db.begin_read().map_err(err)?;
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            let t = match txn.open_table(table(read.table)) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => {
                    out.push(vec![None; read.keys.len()]);
                    continue;
                }
                Err(e) => return Err(err(e)),
            };
            let mut values = Vec::with_capacity(read.keys.len());
            for key in read.keys {
                values.push(match t.get(key.as_slice()).map_err(err)? {
                    None => None,
                    Some(v) => {
                        let bytes = v.value();
                        Some(Stored {
                            event_ts: stored_ts(bytes)?,
                            value: bytes[8..].to_vec(),
                        })
                    }
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    async fn write_newest(
        &self,
        table: &str,
        entries: Vec<Entry>,
        durability: Durability,
    ) -> Result<u64, OnlineError> {
        self.write(table, entries, durability, true).await
    }

    async fn put(
        &self,
        table: &str,
        entries: Vec<Entry>,
        durability: Durability,
    ) -> Result<(), OnlineError> {
        self.write(table, entries, durability, false)
            .await
            .map(|_| ())
    }

    async fn sync(&self) -> Result<(), OnlineError> {
        // An empty durable commit makes every earlier commit durable.
        self.write("keel_sync", Vec::new(), Durability::Durable, false)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_open_of_the_same_file_says_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("online.redb");
        let _first = EmbeddedStore::open(&path, None).unwrap();
        let second = EmbeddedStore::open(&path, None).err().unwrap();
        assert!(matches!(second, OnlineError::Locked { .. }), "{second}");
        assert!(second.to_string().contains("--server"), "{second}");
    }

    #[tokio::test]
    async fn buffered_writes_survive_a_reopen_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("online.redb");
        {
            let store = EmbeddedStore::open(&path, None).unwrap();
            let e = Entry {
                key: b"k".to_vec(),
                event_ts: 5,
                value: b"v".to_vec(),
            };
            store.put("t", vec![e], Durability::Buffered).await.unwrap();
            store.sync().await.unwrap();
        }
        let store = EmbeddedStore::open(&path, None).unwrap();
        let got = store
            .read(&[TableKeys {
                table: "t",
                keys: &[b"k".to_vec()],
            }])
            .await
            .unwrap();
        assert_eq!(got[0][0].as_ref().unwrap().event_ts, 5);
    }
}
