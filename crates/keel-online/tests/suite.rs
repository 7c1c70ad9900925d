//! The online store test suite, on the embedded store and on Redis.
//!
//! Redis: `KEEL_TEST_REDIS_URL` (scripts/test starts a server and sets it).
//! Without it the Redis test is skipped, unless `CI=true`, where a missing
//! server is a failure.

use std::sync::Arc;

use keel_online::{EmbeddedStore, RedisStore, suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("online.redb"), None).unwrap();
    suite::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_suite() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("keel-test-{}-{}:", std::process::id(), nanos());
    let store = RedisStore::open(&url, &prefix).await.unwrap();
    suite::run_all(Arc::new(store)).await;
}

fn redis_url() -> Option<String> {
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

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
