//! The registry service on the embedded SQLite store and, when
//! `KEEL_TEST_POSTGRES_URL` is set (required when `CI=true`), on PostgreSQL.

use keel_registry::{MIGRATIONS, NewModelVersion, Registry, RegistryError, Search, Tag};

mod inspect;

async fn registries() -> Vec<(Registry, Option<tempfile::TempDir>)> {
    keel_store::testing::databases(MIGRATIONS)
        .await
        .into_iter()
        .map(|(db, dir)| (Registry::new(db), dir))
        .collect()
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
        r.set_alias("churn", "champion", 2, "ana").await.unwrap();
        assert!(matches!(
            r.set_alias("churn", "v3", 1, "ana").await,
            Err(RegistryError::Invalid(_))
        ));
        assert!(matches!(
            r.set_alias("churn", "x", 9, "ana").await,
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
            .transition_stage("churn", 3, "staging", false, "ana")
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
        r.delete_model_version("churn-v2", 2, "ana").await.unwrap();
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

#[tokio::test]
async fn model_store_records_files_history_checkpoints_cards_and_retraining() {
    use keel_registry::{Checkpoint, RetrainingPolicy, RetrainingTrigger, VersionFile};
    for (r, _dir) in registries().await {
        r.create_registered_model("fraud".into(), vec![], None)
            .await
            .unwrap();
        let file = |p: &str| VersionFile {
            path: p.into(),
            store_path: format!("1/models/m-1/artifacts/{p}"),
            size: 3,
            sha256: "ab".repeat(32),
        };
        r.create_model_version(NewModelVersion {
            name: "fraud".into(),
            source: "models:/m-1".into(),
            artifact_root: Some("1/models/m-1/artifacts".into()),
            files: vec![file("MLmodel"), file("model.pkl")],
            signature: Some(serde_json::json!({"inputs": [{"name": "x", "type": "double"}]})),
            ..Default::default()
        })
        .await
        .unwrap();
        let found = r
            .registered_file("1/models/m-1/artifacts/model.pkl")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.name.as_str(), found.version), ("fraud", 1));
        assert!(
            r.registered_file("1/models/m-1/artifacts/x")
                .await
                .unwrap()
                .is_none()
        );
        // Below, at and above the root are all frozen; a sibling is not.
        for p in [
            "1/models/m-1/artifacts/model.pkl",
            "1/models/m-1/artifacts",
            "1/models",
        ] {
            assert_eq!(
                r.immutable_owner(p, true).await.unwrap(),
                Some(("fraud".to_string(), 1)),
                "{p}"
            );
        }
        assert_eq!(
            r.immutable_owner("1/models/m-2/artifacts/a", true)
                .await
                .unwrap(),
            None
        );
        assert_eq!(r.immutable_owner("1/models/m_1", true).await.unwrap(), None);
        let extras = r.version_extras("fraud", 1).await.unwrap();
        assert_eq!(extras.files.len(), 2);
        assert_eq!(extras.signature.unwrap()["inputs"][0]["name"], "x");

        // Alias history.
        r.create_model_version(version("fraud", "s3://b/2", "r2"))
            .await
            .unwrap();
        r.set_alias("fraud", "prod", 1, "ana").await.unwrap();
        r.set_alias("fraud", "prod", 1, "ana").await.unwrap();
        r.set_alias("fraud", "prod", 2, "bo").await.unwrap();
        r.delete_model_version("fraud", 2, "cy").await.unwrap();
        let h: Vec<_> = r
            .alias_history("fraud")
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.version, c.previous_version, c.actor))
            .collect();
        assert_eq!(
            h,
            [
                (Some(1), None, "ana".to_string()),
                (Some(2), Some(1), "bo".to_string()),
                (None, Some(2), "cy".to_string())
            ]
        );

        // Checkpoints: same step replaces, bad metrics are refused.
        let cp = |step: i64, loss: f64| Checkpoint {
            step,
            metrics: serde_json::json!({"loss": loss})
                .as_object()
                .unwrap()
                .clone(),
            artifact_uri: None,
            created_at: 0,
        };
        r.add_checkpoint("fraud", 1, cp(10, 0.5)).await.unwrap();
        r.add_checkpoint("fraud", 1, cp(10, 0.4)).await.unwrap();
        r.add_checkpoint("fraud", 1, cp(5, 0.7)).await.unwrap();
        let cps = r.checkpoints("fraud", 1).await.unwrap();
        assert_eq!(cps.iter().map(|c| c.step).collect::<Vec<_>>(), [5, 10]);
        assert_eq!(cps[1].metrics["loss"], 0.4);
        let mut bad = cp(1, 0.0);
        bad.metrics.insert("loss".into(), serde_json::json!("low"));
        assert!(matches!(
            r.add_checkpoint("fraud", 1, bad).await,
            Err(RegistryError::Invalid(_))
        ));

        // Cards merge edits; null removes.
        let edit = |v: serde_json::Value| v.as_object().unwrap().clone();
        r.edit_model_card(
            "fraud",
            1,
            edit(serde_json::json!({"fairness": "f", "limitations": "l"})),
            "ana",
        )
        .await
        .unwrap();
        let card = r
            .edit_model_card(
                "fraud",
                1,
                edit(serde_json::json!({"limitations": null})),
                "bo",
            )
            .await
            .unwrap();
        assert_eq!(card.fields.len(), 1);
        assert_eq!(
            r.model_card("fraud", 1).await.unwrap().unwrap().updated_by,
            "bo"
        );

        // Retraining: due schedules are listed until fired.
        let policy = RetrainingPolicy {
            schedule: Some("0 3 * * *".into()),
            triggers: vec![RetrainingTrigger {
                kind: "drift".into(),
                on: None,
                threshold: Some(0.2),
            }],
            lifecycle: "retrain".into(),
            key: None,
            event: "retrain".into(),
        };
        r.set_retraining("fraud", &policy, Some(1_000))
            .await
            .unwrap();
        let due = r.due_retrainings(2_000).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, policy);
        assert!(r.due_retrainings(500).await.unwrap().is_empty());
        r.retraining_fired("fraud", 2_000, Some(90_000))
            .await
            .unwrap();
        assert!(r.due_retrainings(2_000).await.unwrap().is_empty());
        let (_, next, fired) = r.retraining("fraud").await.unwrap().unwrap();
        assert_eq!((next, fired), (Some(90_000), Some(2_000)));
        let mut bad = policy.clone();
        bad.triggers[0].threshold = None;
        assert!(r.set_retraining("fraud", &bad, None).await.is_err());

        // Stage transitions go into the same history.
        r.transition_stage("fraud", 1, "production", true, "dee")
            .await
            .unwrap();
        r.transition_stage("fraud", 1, "Production", true, "dee")
            .await
            .unwrap();
        let last = r.alias_history("fraud").await.unwrap().pop().unwrap();
        assert_eq!(
            (
                last.kind.as_str(),
                last.alias.as_str(),
                last.version,
                last.note.as_str(),
                last.actor.as_str()
            ),
            ("stage", "Production", Some(1), "from None", "dee")
        );

        // A rename carries everything along.
        r.rename_registered_model("fraud", "fraud-v2".into())
            .await
            .unwrap();
        assert_eq!(r.alias_history("fraud-v2").await.unwrap().len(), 4);
        assert_eq!(r.checkpoints("fraud-v2", 1).await.unwrap().len(), 2);
        assert!(r.retraining("fraud-v2").await.unwrap().is_some());
        r.delete_registered_model("fraud-v2").await.unwrap();
        assert_eq!(
            r.immutable_owner("1/models/m-1/artifacts", true)
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn suite_results_attach_to_a_version_with_a_verdict_tag() {
    use serde_json::json;
    for (r, _dir) in registries().await {
        r.create_registered_model("credit".into(), vec![], None)
            .await
            .unwrap();
        r.create_model_version(version("credit", "models:/m-1", "r1"))
            .await
            .unwrap();
        let failed = json!({"suite": "candidate", "passed": false, "checks": [{"name": "a"}]});
        let stored = r.set_suite_result("credit", 1, failed, "ci").await.unwrap();
        assert!(!stored.passed);
        let passed = json!({"suite": "candidate", "passed": true, "checks": []});
        r.set_suite_result("credit", 1, passed.clone(), "ci")
            .await
            .unwrap();
        r.set_suite_result(
            "credit",
            1,
            json!({"suite": "fairness", "passed": false, "checks": []}),
            "ci",
        )
        .await
        .unwrap();
        // The latest result per suite, by name.
        let results = r.suite_results("credit", 1).await.unwrap();
        let names: Vec<(&str, bool)> = results
            .iter()
            .map(|s| (s.suite.as_str(), s.passed))
            .collect();
        assert_eq!(names, [("candidate", true), ("fairness", false)]);
        assert_eq!(results[0].result, passed);
        assert_eq!(results[0].created_by, "ci");
        let tags = r.get_model_version("credit", 1).await.unwrap().tags;
        let tag = |k: &str| tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
        assert_eq!(tag("keel.suite.candidate").as_deref(), Some("passed"));
        assert_eq!(tag("keel.suite.fairness").as_deref(), Some("failed"));
        // Bad results and unknown versions write nothing.
        for bad in [
            json!({"passed": true, "checks": []}),
            json!({"suite": "x", "checks": []}),
            json!({"suite": "x", "passed": true}),
        ] {
            assert!(matches!(
                r.set_suite_result("credit", 1, bad, "ci").await,
                Err(RegistryError::Invalid(_))
            ));
        }
        assert!(r.set_suite_result("credit", 9, passed, "ci").await.is_err());
        assert_eq!(r.suite_results("credit", 1).await.unwrap().len(), 2);
        // Deleting the version deletes its results.
        r.delete_model_version("credit", 1, "ci").await.unwrap();
        r.create_model_version(version("credit", "models:/m-2", "r2"))
            .await
            .unwrap();
        assert!(r.suite_results("credit", 2).await.unwrap().is_empty());
    }
}
