//! The registry service on the embedded SQLite store and, when
//! `KEEL_TEST_POSTGRES_URL` is set (required when `CI=true`), on PostgreSQL.

use keel_registry::{MIGRATIONS, NewModelVersion, Registry, RegistryError, Search, Tag};
use keel_store::{Db, DbOptions};

async fn registries() -> Vec<(Registry, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_in_dir(dir.path(), MIGRATIONS, DbOptions::default())
        .await
        .unwrap();
    let mut out = vec![(Registry::new(db), Some(dir))];
    match std::env::var("KEEL_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("keel_registry_{}", std::process::id());
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&pool)
            .await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .unwrap();
            let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
            let db = Db::open(&url, MIGRATIONS, DbOptions::default())
                .await
                .unwrap();
            out.push((Registry::new(db), None));
        }
        Err(_) => assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "KEEL_TEST_POSTGRES_URL is required in CI"
        ),
    }
    out
}

fn version(name: &str, source: &str, run_id: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.into(),
        source: source.into(),
        run_id: Some(run_id.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn models_versions_aliases_and_search() {
    for (r, _dir) in registries().await {
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        r.create_registered_model("churn".into(), vec![tag("team", "risk")], Some("d".into()))
            .await
            .unwrap();
        assert!(matches!(
            r.create_registered_model("churn".into(), vec![], None)
                .await,
            Err(RegistryError::AlreadyExists(_))
        ));
        for i in 0..3 {
            r.create_model_version(version("churn", &format!("s3://b/{i}"), &format!("run{i}")))
                .await
                .unwrap();
        }
        r.set_alias("churn", "champion", 2).await.unwrap();
        assert!(matches!(
            r.set_alias("churn", "v3", 1).await,
            Err(RegistryError::Invalid(_))
        ));
        assert!(matches!(
            r.set_alias("churn", "x", 9).await,
            Err(RegistryError::NotFound(_))
        ));
        assert_eq!(
            r.get_model_version_by_alias("churn", "champion")
                .await
                .unwrap()
                .version,
            2
        );
        let staged = r
            .transition_stage("churn", 3, "staging", false)
            .await
            .unwrap();
        assert_eq!(staged.current_stage, "Staging");
        let m = r
            .rename_registered_model("churn", "churn-v2".into())
            .await
            .unwrap();
        assert_eq!(m.aliases, [("champion".to_owned(), 2)]);
        assert_eq!(
            m.latest_versions.len(),
            2,
            "one per stage: None and Staging"
        );
        assert!(matches!(
            r.get_registered_model("churn").await,
            Err(RegistryError::NotFound(_))
        ));
        let found = r
            .search_model_versions(Search {
                filter: "name = 'churn-v2' AND run_id IN ('run0', 'run2')".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            found.items.iter().map(|v| v.version).collect::<Vec<_>>(),
            [2 + 1, 1]
        );
        for i in 0..5 {
            r.create_registered_model(
                format!("m{i}"),
                vec![tag("team", if i % 2 == 0 { "risk" } else { "ops" })],
                None,
            )
            .await
            .unwrap();
        }
        let page = r
            .search_registered_models(Search {
                filter: "name LIKE 'm%' AND tags.team = 'risk'".into(),
                max_results: Some(2),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page.items
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["m0", "m2"]
        );
        let next = r
            .search_registered_models(Search {
                filter: "name LIKE 'm%' AND tags.team = 'risk'".into(),
                max_results: Some(2),
                page_token: page.next_page_token,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            next.items
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["m4"]
        );
        assert!(next.next_page_token.is_none());
        r.delete_model_version("churn-v2", 2).await.unwrap();
        assert!(
            r.get_registered_model("churn-v2")
                .await
                .unwrap()
                .aliases
                .is_empty()
        );
        r.delete_registered_model("churn-v2").await.unwrap();
        assert!(matches!(
            r.get_model_version("churn-v2", 1).await,
            Err(RegistryError::NotFound(_))
        ));
    }
}
