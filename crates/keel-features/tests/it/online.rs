//! The online feature store end to end, on the embedded store and on
//! Redis (`KEEL_TEST_REDIS_URL`; required when `CI=true`): materialization
//! (full, incremental, idempotent), Feast-shaped reads with ttl, pushes
//! (newest event wins, all-or-nothing), and stream windows that equal the
//! training set built from the same pushed events.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMicrosecondArray};
use datafusion::arrow::record_batch::RecordBatch;
use keel_features::definition::read_repo_files;
use keel_features::online::{
    MaterializeRequest, OnlineFeatures, OnlineRequest, PushRequest, WriteRequest,
};
use keel_features::store::training::TrainingSetRequest;
use keel_features::{FeatureError, FeatureStore};
use keel_online::{EmbeddedStore, RedisStore, SharedStore};

use crate::store::write;
use keel_store::ArtifactStore;
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000_000;

/// The temporary folders of a setup: its artifact store's, then the
/// metadata database's (shared).
type Keep = (Vec<tempfile::TempDir>, Arc<Option<tempfile::TempDir>>);

/// Every (name, feature store + online store) pair to test, with what
/// keeps them alive.
async fn setups() -> Vec<(String, OnlineFeatures, Keep)> {
    let migrations = [keel_data::MIGRATIONS, keel_features::MIGRATIONS].concat();
    // One metadata database is enough: the online path only reads the
    // applied repo from it.
    let (db, dbdir) = keel_store::testing::databases(&migrations)
        .await
        .into_iter()
        .next()
        .expect("a test database");
    let dbdir = Arc::new(dbdir);
    let features = |art: &tempfile::TempDir| {
        let catalog =
            keel_data::Catalog::new(db.clone(), ArtifactStore::local(art.path()).unwrap());
        FeatureStore::new(db.clone(), catalog)
    };
    let mut out = Vec::new();
    let art = tempfile::tempdir().unwrap();
    let store: SharedStore =
        Arc::new(EmbeddedStore::open(&art.path().join("online.redb"), None).unwrap());
    out.push((
        "embedded".to_owned(),
        OnlineFeatures::new(features(&art), store),
        (vec![art], dbdir.clone()),
    ));
    if let Some(url) = keel_online::suite::redis_url_from_env() {
        let art = tempfile::tempdir().unwrap();
        let prefix = keel_online::suite::unique_prefix("keel-it");
        let store: SharedStore = Arc::new(RedisStore::open(&url, &prefix).await.unwrap());
        out.push((
            "redis".to_owned(),
            OnlineFeatures::new(features(&art), store),
            (vec![art], dbdir.clone()),
        ));
    }
    out
}

fn now() -> i64 {
    keel_features::online::now_micros()
}

fn micros(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

const REPO: &str = "
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: activity_src
    path: data/activity.parquet
    timestamp_field: event_timestamp
    created_timestamp_field: created
feature_views:
  - name: activity
    entities: [user]
    ttl: 1h
    source: activity_src
    features:
      - {name: clicks, dtype: int64}
      - {name: spend, dtype: float64}
stream_feature_views:
  - name: activity_windows
    entities: [user]
    source: activity_src
    aggregations:
      - {column: spend, function: sum, window: 1d, slide: 1h, name: spend_1d}
      - {column: clicks, function: count, window: 2h, name: events_2h}
      - {column: clicks, function: max, window: 1d, slide: 1h, name: max_clicks_1d}
    ttl: 1d
on_demand_feature_views:
  - name: ratio
    sources: [activity]
    features:
      - {name: spend_per_click, dtype: float64, expression: \"activity__spend / NULLIF(activity__clicks, 0)\"}
feature_services:
  - name: svc
    features: [activity, ratio]
  - name: windows
    features: [activity_windows]
";

/// The repo, with user 1's latest event a tie broken by `created`, user 2
/// older than the ttl, and user 3 in the future of `t0`.
fn repo_dir(t0: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("features.yaml"), REPO).unwrap();
    write_activity(dir.path(), t0, &[]);
    dir
}

fn write_activity(dir: &Path, t0: i64, extra: &[(i64, i64, i64, f64)]) {
    let mut rows = vec![
        // (user, event time, clicks, spend); created = event time + clicks
        (1, t0 - 2 * HOUR, 1, 10.0),
        (1, t0 - HOUR / 2, 2, 20.0),
        (1, t0 - HOUR / 2, 3, 30.0),
        (2, t0 - 3 * HOUR, 4, 40.0),
        (3, t0 + HOUR, 5, 50.0),
    ];
    rows.extend_from_slice(extra);
    write(
        &dir.join("data/activity.parquet"),
        vec![
            (
                "user_id",
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "event_timestamp",
                micros(rows.iter().map(|r| r.1).collect()),
            ),
            ("created", micros(rows.iter().map(|r| r.1 + r.2).collect())),
            (
                "clicks",
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ),
            (
                "spend",
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
            ),
        ],
    );
}

async fn apply(online: &OnlineFeatures, dir: &Path) {
    let files = read_repo_files(dir).unwrap();
    online
        .features()
        .apply(&files, dir, false, None, None)
        .await
        .unwrap();
    online.invalidate();
}

async fn read(online: &OnlineFeatures, body: Value, at: i64) -> Value {
    let req: OnlineRequest = serde_json::from_value(body).unwrap();
    let answer = online.get_online_features_at(&req, at).await.unwrap();
    serde_json::from_slice(&answer.body).unwrap()
}

fn column<'a>(v: &'a Value, name: &str) -> &'a Value {
    let i = v["metadata"]["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no column {name} in {v}"));
    &v["results"][i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialize_then_serve_with_ttl_ties_and_idempotence() {
    for (name, online, _keep) in setups().await {
        let t0 = now();
        let dir = repo_dir(t0);
        apply(&online, dir.path()).await;
        let req = MaterializeRequest {
            end: Some(t0),
            ..Default::default()
        };
        let first = online.materialize(&req, None).await.unwrap();
        let activity = first.views.iter().find(|v| v.name == "activity").unwrap();
        assert_eq!(activity.rows, 4, "{name}: the future row is after end");
        assert_eq!(activity.entities_written, 2, "{name}");
        let v = read(
            &online,
            json!({"entities": {"user_id": [1, 2, 3, 4]}, "feature_service": "svc"}),
            t0,
        )
        .await;
        assert_eq!(
            v["metadata"]["feature_names"],
            json!(["user_id", "clicks", "spend", "spend_per_click"]),
            "{name}"
        );
        let clicks = column(&v, "clicks");
        // User 1: the tie at t0 - 30 min goes to the larger created (3);
        // user 2 is older than the 1 h ttl; 3 and 4 are not online.
        assert_eq!(clicks["values"], json!([3, null, null, null]), "{name}");
        assert_eq!(
            clicks["statuses"],
            json!(["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND", "NOT_FOUND"]),
            "{name}"
        );
        assert_eq!(
            column(&v, "spend_per_click")["values"],
            json!([10.0, null, null, null])
        );
        assert_eq!(
            column(&v, "user_id")["event_timestamps"][0],
            json!("1970-01-01T00:00:00Z")
        );

        // Again: the same values, nothing newer kept.
        let again = online.materialize(&req, None).await.unwrap();
        let a = again.views.iter().find(|v| v.name == "activity").unwrap();
        assert_eq!((a.entities_written, a.kept_newer), (2, 0), "{name}");
        let v2 = read(
            &online,
            json!({"entities": {"user_id": [1, 2, 3, 4]}, "feature_service": "svc"}),
            t0,
        )
        .await;
        assert_eq!(v, v2, "{name}: materialization must be idempotent");

        // Incremental: a new row after the watermark, and user 3 now due.
        write_activity(dir.path(), t0, &[(4, t0 + HOUR / 2, 7, 70.0)]);
        let inc = online
            .materialize(
                &MaterializeRequest {
                    incremental: true,
                    end: Some(t0 + 2 * HOUR),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let a = inc.views.iter().find(|v| v.name == "activity").unwrap();
        assert_eq!(a.start, Some(t0), "{name}: starts at the watermark");
        assert_eq!((a.rows, a.entities_written), (2, 2), "{name}");
        let v = read(
            &online,
            json!({"entities": {"user_id": [3, 4]}, "features": ["activity:clicks"]}),
            t0 + HOUR + 1,
        )
        .await;
        assert_eq!(column(&v, "clicks")["values"], json!([5, 7]), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_keep_the_newest_event_and_write_all_or_nothing() {
    for (name, online, _keep) in setups().await {
        let t0 = now();
        let dir = repo_dir(t0);
        apply(&online, dir.path()).await;
        online
            .materialize(
                &MaterializeRequest {
                    end: Some(t0),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let ts = |us: i64| keel_features::online::rfc3339_micros(us);
        let push = |df: Value| -> PushRequest {
            serde_json::from_value(
                json!({"push_source_name": "activity_src", "df": df, "to": "online"}),
            )
            .unwrap()
        };
        // Newer than what is online: replaces it.
        let r = online
            .push(&push(json!({"user_id": [1], "event_timestamp": [ts(t0 - 60_000_000)], "created": [ts(t0)], "clicks": [9], "spend": [9.5]})))
            .await
            .unwrap();
        assert_eq!(r.rows, 1);
        // Older: kept out (Feast would let it overwrite).
        let r = online
            .push(&push(json!({"user_id": [1], "event_timestamp": [ts(t0 - 10 * HOUR)], "created": [ts(t0)], "clicks": [111], "spend": [1.0]})))
            .await
            .unwrap();
        assert!(r.kept_newer >= 1, "{name}: {r:?}");
        let v = read(&online, json!({"entities": {"user_id": [1]}, "features": ["activity:clicks", "activity:spend"]}), t0).await;
        assert_eq!(column(&v, "clicks")["values"], json!([9]), "{name}");
        assert_eq!(column(&v, "spend")["values"], json!([9.5]), "{name}");

        // A bad value in the second row: nothing of the first is written.
        let e = online
            .push(&push(json!({"user_id": [2, 2], "event_timestamp": [ts(t0), ts(t0)], "clicks": [1, "many"], "spend": [1.0, 2.0]})))
            .await
            .unwrap_err();
        assert!(matches!(e, FeatureError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("df.clicks[1]"), "{e}");
        let v = read(
            &online,
            json!({"entities": {"user_id": [2]}, "features": ["activity:clicks"]}),
            t0,
        )
        .await;
        assert_eq!(
            column(&v, "clicks")["statuses"],
            json!(["OUTSIDE_MAX_AGE"]),
            "{name}"
        );

        // Wrong key kinds, unknown sources and views, ragged columns.
        let bad = [
            json!({"push_source_name": "nope", "df": {}}),
            json!({"push_source_name": "activity_src", "df": {"user_id": ["x"], "event_timestamp": [ts(t0)], "clicks": [1], "spend": [1.0]}}),
            json!({"push_source_name": "activity_src", "df": {"user_id": [1, 2], "event_timestamp": [ts(t0)], "clicks": [1], "spend": [1.0]}}),
            json!({"push_source_name": "activity_src", "df": {"user_id": [1], "event_timestamp": ["yesterday"], "clicks": [1], "spend": [1.0]}}),
            json!({"push_source_name": "activity_src", "df": {"user_id": [1], "event_timestamp": [ts(t0)], "spend": [1.0]}}),
        ];
        for body in bad {
            let req: PushRequest = serde_json::from_value(body.clone()).unwrap();
            let e = online.push(&req).await;
            assert!(e.is_err(), "{name}: {body} was accepted");
        }
        let e = online
            .get_online_features_at(
                &serde_json::from_value(
                    json!({"entities": {"user_id": ["1"]}, "features": ["activity:clicks"]}),
                )
                .unwrap(),
                t0,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("entities.user_id[0]"), "{e}");

        // /write-to-online-store writes one view directly.
        let w: WriteRequest = serde_json::from_value(json!({"feature_view_name": "activity", "df": {"user_id": [5], "event_timestamp": [ts(t0)], "clicks": [50], "spend": [5.0]}})).unwrap();
        online.write_to_online_store(&w).await.unwrap();
        let v = read(
            &online,
            json!({"entities": {"user_id": [5]}, "features": ["activity:clicks"]}),
            t0,
        )
        .await;
        assert_eq!(column(&v, "clicks")["values"], json!([50]), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_events_give_the_same_windows_online_and_in_training_sets() {
    for (name, online, keep) in setups().await {
        let t0 = now();
        let dir = repo_dir(t0);
        apply(&online, dir.path()).await;
        online
            .materialize(
                &MaterializeRequest {
                    end: Some(t0),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let ts = |us: i64| keel_features::online::rfc3339_micros(us);
        // Events over the last day, pushed out of order, some late.
        let mut users = Vec::new();
        let mut times = Vec::new();
        let mut clicks = Vec::new();
        let mut spend = Vec::new();
        for i in 0..60i64 {
            users.push(1 + i % 4);
            times.push(ts(t0
                - ((i * 7919) % 23) * HOUR
                - (i * 104_729 % 3_600) * 1_000_000));
            clicks.push(json!(i % 5));
            spend.push(if i % 9 == 0 {
                json!(null)
            } else {
                json!((i % 11) as f64 + 0.5)
            });
        }
        for chunk in 0..3 {
            let r = |v: &Vec<Value>| v[chunk * 20..(chunk + 1) * 20].to_vec();
            let req: PushRequest = serde_json::from_value(json!({
                "push_source_name": "activity_src",
                "to": "online_and_offline",
                "df": {
                    "user_id": users[chunk * 20..(chunk + 1) * 20],
                    "event_timestamp": times[chunk * 20..(chunk + 1) * 20],
                    "clicks": r(&clicks),
                    "spend": r(&spend),
                },
            }))
            .unwrap();
            let report = online.push(&req).await.unwrap();
            assert_eq!(report.offline_rows, 20, "{name}");
        }
        // Online, read at t0; offline, the training set at t0.
        let v = read(
            &online,
            json!({"entities": {"user_id": [1, 2, 3, 4, 9]}, "feature_service": "windows"}),
            t0,
        )
        .await;
        let ents = keep.0[0].path().join("entities.parquet");
        write(
            &ents,
            vec![
                (
                    "user_id",
                    Arc::new(Int64Array::from(vec![1, 2, 3, 4, 9])) as ArrayRef,
                ),
                ("event_timestamp", micros(vec![t0; 5])),
            ],
        );
        let out = keep.0[0].path().join("train.parquet");
        let manifest = online
            .features()
            .training_set(&TrainingSetRequest {
                service: "windows".into(),
                entities: ents,
                out: out.clone(),
                short_names: true,
            })
            .await
            .unwrap();
        // The manifest pins the three pushed segments it read.
        let log = manifest.views[0]
            .push_log
            .as_ref()
            .expect("push log in the manifest");
        assert_eq!(log.segments, 3, "{name}");
        let file = std::fs::File::open(&out).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let table =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        for feature in ["spend_1d", "events_2h", "max_clicks_1d"] {
            let col = table.column_by_name(feature).unwrap();
            let offline: Vec<Value> = (0..table.num_rows())
                .map(
                    |i| match keel_features::online::convert::cell(col.as_ref(), i) {
                        keel_online::codec::Value::Null => json!(null),
                        keel_online::codec::Value::Int64(x) => json!(x),
                        keel_online::codec::Value::Float64(x) => json!(x),
                        other => panic!("{other:?}"),
                    },
                )
                .collect();
            let mut online_values = column(&v, feature)["values"].as_array().unwrap().clone();
            // User 9 was never seen online: no row (NOT_FOUND, null); the
            // training set has count 0 and nulls for it.
            if feature == "events_2h" {
                online_values[4] = json!(0);
            }
            assert_eq!(online_values, offline, "{name}: {feature}");
        }
        // The two-hour count is not trivially zero.
        assert!(
            column(&v, "events_2h")["values"].as_array().unwrap()[..4]
                .iter()
                .any(|x| x.as_i64().unwrap_or(0) > 0),
            "{name}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skew_finds_values_served_that_the_offline_store_does_not_have() {
    for (name, online, keep) in setups().await {
        let t0 = now() - 60_000_000;
        let dir = repo_dir(t0);
        apply(&online, dir.path()).await;
        online
            .materialize(
                &MaterializeRequest {
                    end: Some(t0),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let req: OnlineRequest = serde_json::from_value(
            json!({"entities": {"user_id": [1, 2, 7]}, "feature_service": "svc"}),
        )
        .unwrap();
        online.get_online_features(&req).await.unwrap();
        // An online-only push: served from now on, unknown offline.
        let ts = keel_features::online::rfc3339_micros(t0 + 1_000_000);
        let push: PushRequest =
            serde_json::from_value(json!({"push_source_name": "activity_src", "to": "online",
            "df": {"user_id": [1], "event_timestamp": [ts], "clicks": [100], "spend": [1.0]}}))
            .unwrap();
        online.push(&push).await.unwrap();
        online.get_online_features(&req).await.unwrap();
        let report = online.skew("svc", 100, keep.0[0].path()).await.unwrap();
        assert_eq!(report.rows, 6, "{name}");
        let clicks = report
            .features
            .iter()
            .find(|f| f.feature == "activity__clicks")
            .unwrap();
        assert_eq!(
            (clicks.compared, clicks.mismatches),
            (6, 1),
            "{name}: {report:?}"
        );
        assert_eq!(
            clicks.max_abs_diff,
            Some(97.0),
            "{name}: served 100, offline 3"
        );
        assert_eq!(clicks.examples[0].served, json!(100));
        let spend = report
            .features
            .iter()
            .find(|f| f.feature == "activity__spend")
            .unwrap();
        assert_eq!(spend.mismatches, 1);
        assert!((report.mismatch_rate - 1.0 / 6.0).abs() < 1e-9, "{name}");
        let html = keel_features::online::render_html(&report);
        assert!(
            html.contains("activity__clicks") && html.contains("16.67%"),
            "{html}"
        );
    }
}
