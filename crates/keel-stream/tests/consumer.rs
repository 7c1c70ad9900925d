//! The JetStream consumer against a real NATS server
//! (`KEEL_TEST_NATS_URL`; scripts/test starts one, and with `CI=true` its
//! absence is a failure): pushed messages reach the online windows and
//! the push log exactly as `/push` would put them there, a bad message is
//! terminated without stopping the others, and a restarted consumer goes
//! on where the durable consumer left off.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keel_features::FeatureStore;
use keel_features::online::{OnlineFeatures, OnlineRequest};
use keel_online::{EmbeddedStore, SharedStore};
use keel_store::ArtifactStore;
use keel_stream::{ConsumerConfig, ConsumerStats};
use serde_json::json;

const REPO: &str = "
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: clicks
    path: data/clicks.csv
    timestamp_field: ts
stream_feature_views:
  - name: click_windows
    entities: [user]
    source: clicks
    aggregations:
      - {column: amount, function: sum, window: 1d, name: amount_1d}
      - {column: amount, function: count, window: 1d, name: clicks_1d}
    ttl: 1d
";

fn nats_url() -> Option<String> {
    match std::env::var("KEEL_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but KEEL_TEST_NATS_URL is not set: scripts/test starts NATS and sets it"
            )
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_messages_update_windows_and_bad_ones_are_rejected() {
    let Some(url) = nats_url() else { return };
    let migrations = [keel_data::MIGRATIONS, keel_features::MIGRATIONS].concat();
    let (db, _dbdir) = keel_store::testing::databases(&migrations)
        .await
        .into_iter()
        .next()
        .unwrap();
    let art = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir(repo.path().join("data")).unwrap();
    std::fs::write(repo.path().join("features.yaml"), REPO).unwrap();
    std::fs::write(
        repo.path().join("data/clicks.csv"),
        "user_id,ts,amount\n1,2020-01-01T00:00:00Z,1.0\n",
    )
    .unwrap();
    let catalog = keel_data::Catalog::new(db.clone(), ArtifactStore::local(art.path()).unwrap());
    let features = FeatureStore::new(db, catalog);
    let files = keel_features::definition::read_repo_files(repo.path()).unwrap();
    features
        .apply(&files, repo.path(), false, None, None)
        .await
        .unwrap();
    let store: SharedStore =
        Arc::new(EmbeddedStore::open(&art.path().join("online.redb"), None).unwrap());
    let online = OnlineFeatures::new(features, store);

    // A stream and consumer of this test's own.
    let tag = format!("T{}", std::process::id());
    let mut config = ConsumerConfig::new(url.clone());
    config.stream = format!("KEEL_TEST_{tag}");
    config.subject_prefix = format!("keel.test.{tag}");
    config.durable = format!("keel-test-{tag}");

    let client = async_nats_client(&url).await;
    let stats = Arc::new(ConsumerStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(keel_stream::run(
        online.clone(),
        config.clone(),
        stats.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    // The consumer creates the stream; wait for it.
    wait_until(|| async { stream_exists(&client, &config.stream).await }).await;

    let now = keel_features::online::now_micros();
    let at = |back_s: i64| keel_features::online::rfc3339_micros(now - back_s * 1_000_000);
    let subject = format!("{}.clicks", config.subject_prefix);
    let mut want_sum = 0.0;
    for i in 0..20i64 {
        let body = json!({"push_source_name": "clicks", "to": "online_and_offline",
            "df": {"user_id": [1 + i % 2], "ts": [at(60 + i)], "amount": [i as f64]}});
        if i % 2 == 0 {
            want_sum += i as f64;
        }
        publish(&client, &subject, body.to_string()).await;
    }
    // One bad message in the middle of good ones.
    publish(&client, &subject, json!({"push_source_name": "clicks", "df": {"user_id": [1], "ts": ["soon"], "amount": [1.0]}}).to_string()).await;
    publish(&client, &subject, "not json".to_owned()).await;
    wait_until(|| async { stats.messages.load(Ordering::Relaxed) >= 22 }).await;
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 2);
    assert_eq!(stats.rows.load(Ordering::Relaxed), 20);

    // The windows are read at the next day boundary, when the 1-day
    // window ending then holds every event.
    let day = 86_400_000_000i64;
    let read_at = (now.div_euclid(day) + 1) * day;
    let req: OnlineRequest = serde_json::from_value(json!({"entities": {"user_id": [1, 2]}, "features": ["click_windows:amount_1d", "click_windows:clicks_1d"]})).unwrap();
    let v: serde_json::Value = serde_json::from_slice(
        &online
            .get_online_features_at(&req, read_at)
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let earliest = now - 80 * 1_000_000;
    if earliest.div_euclid(day) == now.div_euclid(day) {
        assert_eq!(v["results"][1]["values"][0], json!(want_sum), "{v}");
        assert_eq!(v["results"][2]["values"], json!([10, 10]), "{v}");
    }
    // Every good row is in the push log too.
    let logged = online
        .features()
        .catalog()
        .artifacts()
        .list_files(&keel_features::store::log_folder("clicks"))
        .await
        .unwrap();
    assert!(!logged.is_empty());

    let _ = stop.send(());
    task.await.unwrap().unwrap();

    // A new message while stopped is picked up by the next consumer.
    publish(&client, &subject, json!({"push_source_name": "clicks", "df": {"user_id": [3], "ts": [at(1)], "amount": [7.0]}}).to_string()).await;
    let stats2 = Arc::new(ConsumerStats::default());
    let (stop2, stopped2) = tokio::sync::oneshot::channel::<()>();
    let task2 = tokio::spawn(keel_stream::run(
        online.clone(),
        config.clone(),
        stats2.clone(),
        async {
            let _ = stopped2.await;
        },
    ));
    wait_until(|| async { stats2.messages.load(Ordering::Relaxed) >= 1 }).await;
    assert_eq!(
        stats2.messages.load(Ordering::Relaxed),
        1,
        "only the new message is delivered"
    );
    let _ = stop2.send(());
    task2.await.unwrap().unwrap();
}

async fn async_nats_client(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.unwrap())
}

async fn stream_exists(js: &async_nats::jetstream::Context, name: &str) -> bool {
    js.get_stream(name).await.is_ok()
}

async fn publish(js: &async_nats::jetstream::Context, subject: &str, body: String) {
    js.publish(subject.to_owned(), body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn wait_until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Up to 45 s; success ends the wait at once. A message the server
    // handed to the previous consumer's pull request (still open when that
    // consumer stopped) comes back only after the ack wait, 30 s.
    for _ in 0..900 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting (45 s)");
}
