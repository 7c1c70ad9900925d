//! The behaviour every online store must have, as one test suite that
//! `tests/suite.rs` runs on the embedded store and on a real Redis server.
//!
//! Each check takes an empty store (a fresh file, or a fresh key prefix)
//! and panics with a message on the first difference.

use std::sync::Arc;

use crate::{Durability, Entry, OnlineStore, Stored, TableKeys};

fn entry(key: &[u8], ts: i64, value: &[u8]) -> Entry {
    Entry {
        key: key.to_vec(),
        event_ts: ts,
        value: value.to_vec(),
    }
}

async fn get(store: &dyn OnlineStore, table: &str, key: &[u8]) -> Option<Stored> {
    let keys = [key.to_vec()];
    let mut got = store
        .read(&[TableKeys { table, keys: &keys }])
        .await
        .expect("read");
    got.remove(0).remove(0)
}

/// The Redis to test against: `KEEL_TEST_REDIS_URL` (scripts/test starts
/// a server and sets it). `None` skips the Redis tests, except with
/// `CI=true`, where a missing server is a failure.
pub fn redis_url_from_env() -> Option<String> {
    match std::env::var("KEEL_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but KEEL_TEST_REDIS_URL is not set: scripts/test starts Redis and sets it"
            )
        }
        _ => None,
    }
}

/// A key prefix no other test run uses.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag}-{}-{nanos}:", std::process::id())
}

/// Every check, in order.
pub async fn run_all(store: Arc<dyn OnlineStore>) {
    absent_keys_and_tables_read_as_none(&*store).await;
    newest_event_wins_whatever_the_write_order(&*store).await;
    one_call_applies_its_entries_in_order(&*store).await;
    reads_keep_the_order_of_tables_and_keys(&*store).await;
    put_overwrites_whatever_is_stored(&*store).await;
    binary_keys_and_empty_values_round_trip(&*store).await;
    large_batches_round_trip(&*store).await;
    concurrent_writers_keep_the_newest(store.clone()).await;
    store.sync().await.expect("sync");
}

pub async fn absent_keys_and_tables_read_as_none(store: &dyn OnlineStore) {
    assert_eq!(get(store, "never_written", b"k").await, None);
    store
        .write_newest("absent", vec![entry(b"a", 1, b"x")], Durability::Durable)
        .await
        .expect("write");
    assert_eq!(get(store, "absent", b"b").await, None);
    assert_eq!(
        get(store, "absent", b"a").await.map(|s| s.value),
        Some(b"x".to_vec())
    );
}

pub async fn newest_event_wins_whatever_the_write_order(store: &dyn OnlineStore) {
    let t = "newest";
    let n = store
        .write_newest(t, vec![entry(b"k", 100, b"v100")], Durability::Durable)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = store
        .write_newest(t, vec![entry(b"k", 50, b"v50")], Durability::Durable)
        .await
        .unwrap();
    assert_eq!(n, 0, "an older event must not be written");
    let got = get(store, t, b"k").await.expect("value");
    assert_eq!(
        (got.event_ts, got.value.as_slice()),
        (100, b"v100".as_slice())
    );
    let n = store
        .write_newest(t, vec![entry(b"k", 100, b"again")], Durability::Buffered)
        .await
        .unwrap();
    assert_eq!(n, 1, "an equal event time replaces (the later write wins)");
    store
        .write_newest(t, vec![entry(b"k", 101, b"v101")], Durability::Buffered)
        .await
        .unwrap();
    let got = get(store, t, b"k").await.expect("value");
    assert_eq!(
        (got.event_ts, got.value.as_slice()),
        (101, b"v101".as_slice())
    );
    // Times before 1970 order below later ones.
    store
        .write_newest(
            t,
            vec![entry(b"old", -10, b"a"), entry(b"old", -20, b"b")],
            Durability::Buffered,
        )
        .await
        .unwrap();
    assert_eq!(
        get(store, t, b"old").await.map(|s| s.value),
        Some(b"a".to_vec())
    );
}

pub async fn one_call_applies_its_entries_in_order(store: &dyn OnlineStore) {
    let t = "in_order";
    let n = store
        .write_newest(
            t,
            vec![
                entry(b"k", 5, b"first"),
                entry(b"k", 7, b"second"),
                entry(b"k", 6, b"third"),
            ],
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        get(store, t, b"k").await.map(|s| s.value),
        Some(b"second".to_vec())
    );
}

pub async fn reads_keep_the_order_of_tables_and_keys(store: &dyn OnlineStore) {
    store
        .write_newest(
            "order_a",
            vec![entry(b"1", 1, b"a1"), entry(b"2", 2, b"a2")],
            Durability::Buffered,
        )
        .await
        .unwrap();
    store
        .write_newest("order_b", vec![entry(b"1", 3, b"b1")], Durability::Buffered)
        .await
        .unwrap();
    let ka = [b"2".to_vec(), b"9".to_vec(), b"1".to_vec(), b"2".to_vec()];
    let kb = [b"1".to_vec(), b"2".to_vec()];
    let got = store
        .read(&[
            TableKeys {
                table: "order_a",
                keys: &ka,
            },
            TableKeys {
                table: "order_b",
                keys: &kb,
            },
            TableKeys {
                table: "order_none",
                keys: &[],
            },
        ])
        .await
        .unwrap();
    let values = |v: &Vec<Option<Stored>>| {
        v.iter()
            .map(|s| s.as_ref().map(|s| s.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(got.len(), 3);
    assert_eq!(
        values(&got[0]),
        vec![
            Some(b"a2".to_vec()),
            None,
            Some(b"a1".to_vec()),
            Some(b"a2".to_vec())
        ]
    );
    assert_eq!(values(&got[1]), vec![Some(b"b1".to_vec()), None]);
    assert!(got[2].is_empty());
    assert_eq!(got[1][0].as_ref().map(|s| s.event_ts), Some(3));
}

pub async fn put_overwrites_whatever_is_stored(store: &dyn OnlineStore) {
    let t = "put";
    store
        .write_newest(t, vec![entry(b"k", 100, b"new")], Durability::Buffered)
        .await
        .unwrap();
    store
        .put(t, vec![entry(b"k", 1, b"state")], Durability::Durable)
        .await
        .unwrap();
    let got = get(store, t, b"k").await.expect("value");
    assert_eq!(
        (got.event_ts, got.value.as_slice()),
        (1, b"state".as_slice())
    );
}

pub async fn binary_keys_and_empty_values_round_trip(store: &dyn OnlineStore) {
    let t = "binary";
    let key = [0u8, b':', 255, 0, b'*', b'\n'];
    store
        .write_newest(
            t,
            vec![entry(&key, 0, b""), entry(b"", 1, &[0, 0, 1])],
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(get(store, t, &key).await.map(|s| s.value), Some(Vec::new()));
    assert_eq!(
        get(store, t, b"").await.map(|s| s.value),
        Some(vec![0, 0, 1])
    );
    // A table whose name is another's prefix keeps its own keys.
    assert_eq!(get(store, "binar", &key).await, None);
}

pub async fn large_batches_round_trip(store: &dyn OnlineStore) {
    let t = "large";
    let entries: Vec<Entry> = (0..5000u32)
        .map(|i| {
            entry(
                &i.to_be_bytes(),
                i64::from(i),
                format!("value-{i}").as_bytes(),
            )
        })
        .collect();
    let n = store
        .write_newest(t, entries, Durability::Buffered)
        .await
        .unwrap();
    assert_eq!(n, 5000);
    let keys: Vec<Vec<u8>> = (0..5000u32)
        .rev()
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    let got = store
        .read(&[TableKeys {
            table: t,
            keys: &keys,
        }])
        .await
        .unwrap();
    for (i, v) in (0..5000u32).rev().zip(&got[0]) {
        let v = v.as_ref().unwrap_or_else(|| panic!("key {i} missing"));
        assert_eq!(v.value, format!("value-{i}").as_bytes());
        assert_eq!(v.event_ts, i64::from(i));
    }
}

pub async fn concurrent_writers_keep_the_newest(store: Arc<dyn OnlineStore>) {
    let t = "concurrent";
    let mut tasks = Vec::new();
    for writer in 0..4i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..25i64 {
                // Each writer walks the times in its own order.
                let ts = (round * 7 + writer * 13) % 100;
                let entries = (0..20u8)
                    .map(|k| entry(&[k], ts, format!("{ts}").as_bytes()))
                    .collect();
                store
                    .write_newest(t, entries, Durability::Buffered)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let keys: Vec<Vec<u8>> = (0..20u8).map(|k| vec![k]).collect();
    let max = (0..4i64)
        .flat_map(|w| (0..25i64).map(move |r| (r * 7 + w * 13) % 100))
        .max()
        .unwrap();
    let got = store
        .read(&[TableKeys {
            table: t,
            keys: &keys,
        }])
        .await
        .unwrap();
    for v in &got[0] {
        let v = v.as_ref().expect("value");
        assert_eq!(v.event_ts, max);
        assert_eq!(v.value, format!("{max}").as_bytes());
    }
}
