//! The feature store over the metadata store (SQLite, and PostgreSQL when
//! `KEEL_TEST_POSTGRES_URL` is set) and real Parquet files: applies with
//! plans, data-level problems reported all at once, and training sets
//! checked row by row against a brute-force reading of the contract.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, TimestampSecondArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use keel_features::definition::{RepoFile, read_repo_files};
use keel_features::store::training::{TrainingSetRequest, manifest_path};
use keel_features::{FeatureError, FeatureStore};
use keel_store::ArtifactStore;

async fn stores() -> Vec<(FeatureStore, tempfile::TempDir, Option<tempfile::TempDir>)> {
    let migrations = [keel_data::MIGRATIONS, keel_features::MIGRATIONS].concat();
    let mut out = Vec::new();
    for (db, dir) in keel_store::testing::databases(&migrations).await {
        let art = tempfile::tempdir().unwrap();
        let catalog =
            keel_data::Catalog::new(db.clone(), ArtifactStore::local(art.path()).unwrap());
        out.push((FeatureStore::new(db, catalog), art, dir));
    }
    out
}

pub(crate) fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), columns.into_iter().map(|c| c.1).collect()).unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn secs(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampSecondArray::from(v).with_timezone("UTC"))
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
    ttl: 100s
    source: activity_src
    features:
      - {name: clicks, dtype: int64}
      - {name: spend, dtype: float64}
on_demand_feature_views:
  - name: ratio
    sources: [activity]
    features:
      - {name: spend_per_click, dtype: float64, expression: \"activity__spend / NULLIF(activity__clicks, 0)\"}
stream_feature_views:
  - name: activity_stream
    entities: [user]
    source: activity_src
    aggregations:
      - {column: clicks, function: sum, window: 200s, slide: 100s, name: clicks_sum}
      - {column: spend, function: count, window: 100s, name: n}
    ttl: 1d
feature_services:
  - name: windows
    features: [activity_stream]
  - name: svc
    features: [activity:spend, ratio]
  - name: clash
    features: [activity:spend, ratio, activity]
";

/// A small repo whose events have same-time ties broken by `created`.
fn repo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("features.yaml"), REPO).unwrap();
    write(
        &dir.path().join("data/activity.parquet"),
        vec![
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 1, 1, 2, 2, 3])) as ArrayRef,
            ),
            ("event_timestamp", secs(vec![100, 200, 200, 150, 400, 50])),
            ("created", secs(vec![100, 300, 250, 150, 400, 50])),
            ("clicks", Arc::new(Int64Array::from(vec![1, 2, 3, 0, 5, 6]))),
            (
                "spend",
                Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0, 5.0, 50.0, 60.0])),
            ),
        ],
    );
    dir
}

fn files(dir: &Path) -> Vec<RepoFile> {
    read_repo_files(dir).unwrap()
}

#[tokio::test]
async fn apply_plans_then_applies_once() {
    for (store, _art, _db) in stores().await {
        let dir = repo_dir();
        let plan = store
            .apply(&files(dir.path()), dir.path(), true, None, None)
            .await
            .unwrap();
        assert!(!plan.applied);
        assert_eq!(plan.version, 0);
        assert_eq!(
            plan.plan.count(keel_features::definition::Action::Create),
            8
        );
        let done = store
            .apply(
                &files(dir.path()),
                dir.path(),
                false,
                Some(0),
                Some("ana".into()),
            )
            .await
            .unwrap();
        assert!(done.applied);
        assert_eq!(done.version, 1);
        // The same files again change nothing.
        let again = store
            .apply(&files(dir.path()), dir.path(), false, None, None)
            .await
            .unwrap();
        assert!(!again.applied);
        assert_eq!(again.version, 1);
        // A plan made against version 0 is stale now.
        let e = store
            .apply(&files(dir.path()), dir.path(), false, Some(0), None)
            .await
            .unwrap_err();
        assert!(matches!(e, FeatureError::Conflict(_)), "{e}");
        let current = store.current().await.unwrap().unwrap();
        assert_eq!(current.actor.as_deref(), Some("ana"));
        assert_eq!(current.repo.feature_views.len(), 1);
    }
}

#[tokio::test]
async fn data_problems_are_all_reported_and_nothing_is_applied() {
    for (store, _art, _db) in stores().await {
        let dir = repo_dir();
        // Parses, but disagrees with the data four times.
        let broken = "
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: activity_src
    path: data/activity.parquet
    timestamp_field: event_timestamp
    created_timestamp_field: created_at
  - name: missing_src
    path: data/nope.parquet
    timestamp_field: ts
feature_views:
  - name: activity
    entities: [user]
    ttl: 100s
    source: activity_src
    features:
      - {name: clicks, dtype: string}
      - {name: spent, dtype: float64}
  - name: ghost
    entities: [user]
    ttl: 1d
    source: missing_src
    features:
      - {name: x, dtype: int64}
";
        std::fs::write(dir.path().join("features.yaml"), broken).unwrap();
        let e = store
            .apply(&files(dir.path()), dir.path(), false, None, None)
            .await
            .unwrap_err();
        let FeatureError::Definitions(problems) = &e else {
            panic!("{e}")
        };
        let text = e.to_string();
        // The created column, the type, the misspelt feature and the
        // missing file: four problems in one answer, each with its line.
        assert_eq!(problems.len(), 4, "{text}");
        assert!(text.contains("created_at"), "{text}");
        assert!(text.contains("clicks"), "{text}");
        assert!(text.contains("spent"), "{text}");
        assert!(text.contains("nope.parquet"), "{text}");
        assert!(
            problems
                .iter()
                .all(|p| p.file == "features.yaml" && p.line > 0)
        );
        assert!(store.current().await.unwrap().is_none());
    }
}

/// The contract, read literally: the latest row with
/// `ts - ttl <= row_ts <= ts`, ties to the larger created.
fn expected_spend(user: i64, at: i64) -> Option<f64> {
    let rows = [
        (1, 100, 100, 10.0),
        (1, 200, 300, 20.0),
        (1, 200, 250, 30.0),
        (2, 150, 150, 5.0),
        (2, 400, 400, 50.0),
        (3, 50, 50, 60.0),
    ];
    rows.iter()
        .filter(|r| r.0 == user && r.1 <= at && r.1 >= at - 100)
        .max_by_key(|r| (r.1, r.2))
        .map(|r| r.3)
}

#[tokio::test]
async fn training_sets_follow_the_contract_and_say_what_they_read() {
    for (store, _art, _db) in stores().await {
        let dir = repo_dir();
        store
            .apply(&files(dir.path()), dir.path(), false, None, None)
            .await
            .unwrap();
        let users = vec![1, 1, 1, 2, 2, 3, 4, 1];
        let times = vec![250, 99, 301, 200, 260, 200, 100, 200];
        let entities = dir.path().join("entities.parquet");
        write(
            &entities,
            vec![
                (
                    "user_id",
                    Arc::new(Int64Array::from(users.clone())) as ArrayRef,
                ),
                ("event_timestamp", secs(times.clone())),
                (
                    "label",
                    Arc::new(Int64Array::from(vec![0, 1, 0, 1, 0, 1, 0, 1])),
                ),
            ],
        );
        let out = dir.path().join("train.parquet");
        let req = TrainingSetRequest {
            service: "svc".into(),
            entities: entities.clone(),
            out: out.clone(),
            short_names: false,
        };
        let manifest = store.training_set(&req).await.unwrap();
        assert_eq!(manifest.output.rows, 8);
        assert_eq!(
            manifest.output.columns,
            [
                "user_id",
                "event_timestamp",
                "label",
                "activity__spend",
                "ratio__spend_per_click"
            ]
        );
        let file = std::fs::File::open(&out).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let batch =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let got_users = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(got_users.values().to_vec(), users, "rows keep their order");
        let spend = batch
            .column(3)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let ratio = batch
            .column(4)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for (i, (&u, &t)) in users.iter().zip(&times).enumerate() {
            let want = expected_spend(u, t);
            let got = (!spend.is_null(i)).then(|| spend.value(i));
            assert_eq!(got, want, "row {i}: user {u} at {t}");
        }
        // user 2 at 200 sees clicks 0: the ratio is null, not infinite.
        assert!(ratio.is_null(3));
        assert_eq!(ratio.value(0), 20.0 / 2.0);

        // The manifest: the repo version and each input's content hash.
        let text = std::fs::read_to_string(manifest_path(&out)).unwrap();
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["feature_repo"]["version"], 1);
        let (_, entity_digest, _) = keel_data::local_digest(&entities).unwrap();
        assert_eq!(m["entities"]["digest"], entity_digest.as_str());
        let (_, out_digest, _) = keel_data::local_digest(&out).unwrap();
        assert_eq!(m["output"]["sha256"], out_digest.as_str());
        assert_eq!(m["views"][0]["name"], "activity");
        assert_eq!(m["views"][0]["file"]["digest"].as_str().unwrap().len(), 64);

        // Stream views: the window that closed last by each row's time.
        let out = dir.path().join("windows.parquet");
        store
            .training_set(&TrainingSetRequest {
                service: "windows".into(),
                entities: entities.clone(),
                out: out.clone(),
                short_names: true,
            })
            .await
            .unwrap();
        let file = std::fs::File::open(&out).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let batch =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let sums = batch.column_by_name("clicks_sum").unwrap();
        let sums = sums.as_any().downcast_ref::<Int64Array>().unwrap();
        let counts = batch.column_by_name("n").unwrap();
        let counts = counts.as_any().downcast_ref::<Int64Array>().unwrap();
        let events = [
            (1, 100, 1),
            (1, 200, 2),
            (1, 200, 3),
            (2, 150, 0),
            (2, 400, 5),
            (3, 50, 6),
        ];
        for (i, (&u, &t)) in users.iter().zip(&times).enumerate() {
            let window = |w: i64, slide: i64| {
                let end = t.div_euclid(slide) * slide;
                events
                    .iter()
                    .filter(move |e| e.0 == u && e.1 > end - w && e.1 <= end)
            };
            let sum: Vec<i64> = window(200, 100).map(|e| e.2).collect();
            let want = (!sum.is_empty()).then(|| sum.iter().sum::<i64>());
            let got = (!sums.is_null(i)).then(|| sums.value(i));
            assert_eq!(got, want, "sum, row {i}: user {u} at {t}");
            assert_eq!(
                counts.value(i),
                window(100, 100).count() as i64,
                "count, row {i}"
            );
        }

        // Short names that collide are refused, and nothing is written.
        let clash = dir.path().join("clash.parquet");
        let e = store
            .training_set(&TrainingSetRequest {
                service: "clash".into(),
                entities: entities.clone(),
                out: clash.clone(),
                short_names: true,
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`spend`"), "{e}");
        assert!(!clash.exists());

        // An entity file without the join key names it.
        let bad = dir.path().join("bad.parquet");
        write(
            &bad,
            vec![
                ("uid", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                ("event_timestamp", secs(vec![1])),
            ],
        );
        let e = store
            .training_set(&TrainingSetRequest {
                service: "svc".into(),
                entities: bad,
                out: dir.path().join("x.parquet"),
                short_names: false,
            })
            .await
            .unwrap_err();
        assert!(matches!(e, FeatureError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("user_id"), "{e}");
        let e = store
            .training_set(&TrainingSetRequest {
                service: "sv".into(),
                entities,
                out: dir.path().join("x.parquet"),
                short_names: false,
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did you mean `svc`"), "{e}");
    }
}
