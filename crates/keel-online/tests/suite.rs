//! The online store test suite, on the embedded store and on Redis.
//!
//! Redis: see [`suite::redis_url_from_env`].

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
    let Some(url) = suite::redis_url_from_env() else {
        return;
    };
    let prefix = suite::unique_prefix("keel-test");
    let store = RedisStore::open(&url, &prefix).await.unwrap();
    suite::run_all(Arc::new(store)).await;
}
