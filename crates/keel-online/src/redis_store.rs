//! The Redis online store.
//!
//! Layout: one Redis string per (table, entity key), named
//! `PREFIX TABLE : KEY-BYTES` (keys are binary-safe), holding the event
//! time as 20 decimal digits (`ts + 2^63`, zero-padded, so that byte order
//! is time order) followed by the value's bytes. A read of any number of
//! keys over any number of tables is one `MGET`: one round trip however
//! many entities and views a request names. `write_newest` is a Lua
//! script that compares the stored digits with the new ones and writes
//! only when the new event is not older, so concurrent writers (several
//! Keel nodes) never let an old event overwrite a newer one; batches of
//! scripts go out in one pipeline.
//!
//! Durability is Redis's own (`appendonly`, `appendfsync`): the store
//! cannot make Redis fsync, so [`Durability`] is not consulted.

use redis::aio::MultiplexedConnection;

use crate::{Durability, Entry, OnlineError, OnlineStore, Stored, TableKeys};

const WRITE_NEWEST: &str = r"
local n = 0
for i = 1, #KEYS do
  local v = ARGV[i]
  local old = redis.call('GETRANGE', KEYS[i], 0, 19)
  if old == '' or old <= string.sub(v, 1, 20) then
    redis.call('SET', KEYS[i], v)
    n = n + 1
  end
end
return n
";

/// Entries per script call and per `MSET`.
const CHUNK: usize = 512;

/// The Redis online store. Cheap to clone: one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: MultiplexedConnection,
    prefix: String,
    url: String,
    script: redis::Script,
}

fn err(e: redis::RedisError) -> OnlineError {
    OnlineError::Redis(e.to_string())
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`); every key starts with
    /// `prefix`.
    pub async fn open(url: &str, prefix: &str) -> Result<Self, OnlineError> {
        let shown = redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| OnlineError::Invalid(format!("online_store {shown}: {e}")))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| {
                OnlineError::Redis(format!(
                    "cannot connect to {shown}: {e}; is redis-server running there?"
                ))
            })?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_string(),
            url: shown,
            script: redis::Script::new(WRITE_NEWEST),
        })
    }

    fn key(&self, table: &str, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + table.len() + 1 + key.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(table.as_bytes());
        out.push(b':');
        out.extend_from_slice(key);
        out
    }
}

fn stamped(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + entry.value.len());
    let shifted = (entry.event_ts as u64) ^ (1 << 63);
    out.extend_from_slice(format!("{shifted:020}").as_bytes());
    out.extend_from_slice(&entry.value);
    out
}

fn unstamp(bytes: Vec<u8>) -> Result<Stored, OnlineError> {
    let digits = bytes
        .get(..20)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| OnlineError::Corrupt(format!("a Redis value of {} bytes", bytes.len())))?;
    Ok(Stored {
        event_ts: (digits ^ (1 << 63)) as i64,
        value: bytes[20..].to_vec(),
    })
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[async_trait::async_trait]
impl OnlineStore for RedisStore {
    fn describe(&self) -> String {
        format!("Redis {} (keys {}*)", self.url, self.prefix)
    }

    async fn read(&self, reads: &[TableKeys<'_>]) -> Result<Vec<Vec<Option<Stored>>>, OnlineError> {
        let keys: Vec<Vec<u8>> = reads
            .iter()
            .flat_map(|r| r.keys.iter().map(|k| self.key(r.table, k)))
            .collect();
        if keys.is_empty() {
            return Ok(reads.iter().map(|_| Vec::new()).collect());
        }
        let mut conn = self.conn.clone();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        if values.len() != keys.len() {
            return Err(OnlineError::Redis(format!(
                "MGET of {} keys answered {} values",
                keys.len(),
                values.len()
            )));
        }
        let mut values = values.into_iter();
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            let mut table = Vec::with_capacity(read.keys.len());
            for v in values.by_ref().take(read.keys.len()) {
                table.push(v.map(unstamp).transpose()?);
            }
            out.push(table);
        }
        Ok(out)
    }

    async fn write_newest(
        &self,
        table: &str,
        entries: Vec<Entry>,
        _durability: Durability,
    ) -> Result<u64, OnlineError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        // Loads the script once per connection's server (a restarted Redis
        // forgets it; the next call loads it again).
        let hash: String = self
            .script
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .map_err(err)?;
        let mut pipe = redis::pipe();
        for chunk in entries.chunks(CHUNK) {
            let cmd = pipe.cmd("EVALSHA").arg(&hash).arg(chunk.len());
            for e in chunk {
                cmd.arg(self.key(table, &e.key));
            }
            for e in chunk {
                cmd.arg(stamped(e));
            }
        }
        let counts: Vec<u64> = pipe.query_async(&mut conn).await.map_err(err)?;
        Ok(counts.iter().sum())
    }

    async fn put(
        &self,
        table: &str,
        entries: Vec<Entry>,
        _durability: Durability,
    ) -> Result<(), OnlineError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for chunk in entries.chunks(CHUNK) {
            let cmd = pipe.cmd("MSET");
            for e in chunk {
                cmd.arg(self.key(table, &e.key)).arg(stamped(e));
            }
            cmd.ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(err)
    }

    async fn sync(&self) -> Result<(), OnlineError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_like_times_and_round_trip() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000_000, i64::MAX];
        let stamps: Vec<Vec<u8>> = times
            .iter()
            .map(|&t| {
                stamped(&Entry {
                    key: vec![],
                    event_ts: t,
                    value: b"x".to_vec(),
                })
            })
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]));
        for (t, s) in times.iter().zip(stamps) {
            let back = unstamp(s).unwrap();
            assert_eq!(back.event_ts, *t);
            assert_eq!(back.value, b"x");
        }
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
