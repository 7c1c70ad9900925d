//! The catalog on the embedded SQLite store and, when
//! `KEEL_TEST_POSTGRES_URL` is set (required when `CI=true`), on
//! PostgreSQL: registration, versions by content, schema changes,
//! profiles and SQL.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use keel_data::{Catalog, ChangeKind, DataError, MIGRATIONS};
use keel_store::ArtifactStore;

async fn catalogs() -> Vec<(Catalog, tempfile::TempDir, Option<tempfile::TempDir>)> {
    let mut out = Vec::new();
    for (db, dir) in keel_store::testing::databases(MIGRATIONS).await {
        let art = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(art.path()).unwrap();
        out.push((Catalog::new(db, store), art, dir));
    }
    out
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
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

#[tokio::test]
async fn versions_are_content_addressed_and_schema_changes_classified() {
    for (catalog, _art, _db) in catalogs().await {
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("users.parquet");
        write_parquet(
            &file,
            vec![
                (
                    "user_id",
                    Arc::new(Int32Array::from(vec![1, 2, 3, 4])) as ArrayRef,
                ),
                (
                    "spend",
                    Arc::new(Float64Array::from(vec![
                        Some(1.0),
                        None,
                        Some(3.0),
                        Some(4.0),
                    ])),
                ),
                (
                    "country",
                    Arc::new(StringArray::from(vec!["FR", "DE", "FR", "US"])),
                ),
            ],
        );
        let first = catalog
            .register("users", &file, Some("people".into()), None)
            .await
            .unwrap();
        assert!(first.created);
        let v1 = first.version;
        assert_eq!(v1.version, 1);
        assert_eq!(v1.id.len(), 16);
        assert_eq!(v1.row_count, 4);
        assert_eq!(v1.schema_change.kind, ChangeKind::Initial);
        assert_eq!(v1.lineage_node, format!("dataset:users@{}", v1.id));
        let spend = &v1.profile.columns[1];
        assert_eq!(spend.nulls, 1);
        assert_eq!(spend.mean, Some(8.0 / 3.0));
        assert_eq!(spend.min, Some(serde_json::json!(1.0)));
        assert_eq!(spend.max, Some(serde_json::json!(4.0)));
        let country = &v1.profile.columns[2];
        assert_eq!(country.distinct, Some(3));
        assert_eq!(country.min, Some(serde_json::json!("DE")));

        // The same bytes again: the same version, nothing new.
        let again = catalog.register("users", &file, None, None).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.version.version, 1);

        // A wider id and a new column: compatible.
        write_parquet(
            &file,
            vec![
                (
                    "user_id",
                    Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef,
                ),
                (
                    "spend",
                    Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0, 5.0])),
                ),
                (
                    "country",
                    Arc::new(StringArray::from(vec!["FR", "DE", "FR", "US", "US"])),
                ),
                ("age", Arc::new(Int32Array::from(vec![30, 40, 50, 60, 70]))),
            ],
        );
        let v2 = catalog
            .register("users", &file, None, None)
            .await
            .unwrap()
            .version;
        assert_eq!(v2.version, 2);
        assert_eq!(
            v2.schema_change.kind,
            ChangeKind::Compatible,
            "{:?}",
            v2.schema_change
        );
        assert_eq!(v2.schema_change.from_version, Some(1));

        // A removed column: breaking.
        write_parquet(
            &file,
            vec![("user_id", Arc::new(Int64Array::from(vec![9])) as ArrayRef)],
        );
        let v3 = catalog
            .register("users", &file, None, None)
            .await
            .unwrap()
            .version;
        assert_eq!(v3.schema_change.kind, ChangeKind::Breaking);
        assert_eq!(v3.schema_change.changes.len(), 3);

        // Every version stays readable, by number and by digest prefix.
        let engine = catalog.engine();
        let r = engine
            .query("SELECT count(*) AS n FROM users", 100)
            .await
            .unwrap();
        assert_eq!(r.rows[0]["n"], 1);
        let r = engine
            .query("SELECT sum(spend) AS s FROM \"users@v2\"", 100)
            .await
            .unwrap();
        assert_eq!(r.rows[0]["s"], 15.0);
        let q = format!("SELECT count(*) AS n FROM \"users@{}\"", &v1.id[..8]);
        assert_eq!(engine.query(&q, 100).await.unwrap().rows[0]["n"], 4);
        let r = engine
            .query("SELECT a.user_id FROM \"users@v1\" a JOIN \"users@v2\" b ON a.user_id = b.user_id ORDER BY 1", 2)
            .await
            .unwrap();
        assert_eq!(r.row_count, 2);
        assert!(r.truncated);

        let versions = catalog.versions("users").await.unwrap();
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert_eq!(
            catalog
                .dataset("users")
                .await
                .unwrap()
                .description
                .as_deref(),
            Some("people")
        );
    }
}

#[tokio::test]
async fn folders_of_csv_and_bad_input() {
    for (catalog, _art, _db) in catalogs().await {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("part")).unwrap();
        std::fs::write(src.path().join("a.csv"), "id,score\n1,0.5\n2,1.5\n").unwrap();
        std::fs::write(src.path().join("part/b.csv"), "id,score\n3,2.5\n").unwrap();
        std::fs::write(src.path().join("_SUCCESS"), "").unwrap();
        let v = catalog
            .register("scores", src.path(), None, None)
            .await
            .unwrap()
            .version;
        assert_eq!(v.row_count, 3);
        assert_eq!(v.files.len(), 2);
        assert_eq!(v.files[1].path, "part/b.csv");
        let r = catalog
            .engine()
            .query("SELECT max(score) AS m, count(*) AS n FROM scores", 10)
            .await
            .unwrap();
        assert_eq!(r.rows[0]["m"], 2.5);
        assert_eq!(r.rows[0]["n"], 3);

        // Errors name what is wrong and leave nothing behind.
        let e = catalog
            .register("bad name", src.path(), None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, DataError::Invalid(_)), "{e}");
        let e = catalog
            .register("missing", &src.path().join("nope.parquet"), None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, DataError::Read { .. }), "{e}");
        std::fs::write(src.path().join("notes.txt"), "x").unwrap();
        let e = catalog
            .register("notes", &src.path().join("notes.txt"), None, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is not a Parquet"), "{e}");
        let broken = src.path().join("broken.parquet");
        std::fs::write(&broken, "not parquet at all").unwrap();
        assert!(
            catalog
                .register("broken", &broken, None, None)
                .await
                .is_err()
        );
        assert!(
            catalog
                .artifacts()
                .list_files("datasets/broken")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            catalog.dataset("broken").await,
            Err(DataError::NotFound(_))
        ));

        let e = catalog
            .engine()
            .query("SELECT * FROM scorez", 10)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did you mean `scores`"), "{e}");
        let e = catalog
            .engine()
            .query("DROP TABLE scores", 10)
            .await
            .unwrap_err();
        assert!(matches!(e, DataError::Sql(_)), "{e}");
        let e = catalog.resolve("scores@v9").await.unwrap_err();
        assert!(e.to_string().contains("no version v9"), "{e}");
    }
}
