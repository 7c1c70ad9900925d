//! The lineage store on the embedded SQLite store and, when
//! `KEEL_TEST_POSTGRES_URL` is set (required when `CI=true`), on PostgreSQL.

use keel_lineage::{Direction, Edge, Lineage, LineageError, MIGRATIONS, NewNode};
use serde_json::json;

async fn stores() -> Vec<(Lineage, Option<tempfile::TempDir>)> {
    keel_store::testing::databases(MIGRATIONS)
        .await
        .into_iter()
        .map(|(db, dir)| (Lineage::new(db), dir))
        .collect()
}

fn edge(from: &str, to: &str, relation: &str) -> Edge {
    Edge {
        from: from.into(),
        to: to.into(),
        relation: relation.into(),
    }
}

#[tokio::test]
async fn a_chain_walks_both_ways_and_follows_a_rename() {
    for (l, _dir) in stores().await {
        // dataset → run → logged model → version → deployment, plus a
        // second run of the same dataset that nothing was registered from.
        l.record(
            vec![
                NewNode::new("dataset", "events@d1")
                    .named("events")
                    .with_attrs(json!({"digest": "d1"})),
                NewNode::new("run", "r1").named("train-1"),
                NewNode::new("run", "r2"),
                NewNode::new("logged_model", "m-1"),
                NewNode::new("model_version", "churn/1"),
            ],
            vec![
                edge("dataset:events@d1", "run:r1", "input"),
                edge("dataset:events@d1", "run:r2", "input"),
                edge("run:r1", "logged_model:m-1", "produced"),
                edge("logged_model:m-1", "model_version:churn/1", "registered_as"),
            ],
        )
        .await
        .unwrap();
        // Edges may point at nodes recorded earlier; recording twice is a no-op.
        l.record(
            vec![NewNode::new("deployment", "churn-prod").with_attrs(json!({"traffic": 100}))],
            vec![
                edge(
                    "model_version:churn/1",
                    "deployment:churn-prod",
                    "deployed_as",
                ),
                edge(
                    "model_version:churn/1",
                    "deployment:churn-prod",
                    "deployed_as",
                ),
            ],
        )
        .await
        .unwrap();

        let up = l
            .walk("model_version:churn/1", Direction::Upstream, 10)
            .await
            .unwrap();
        let keys: Vec<&str> = up.nodes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "model_version:churn/1",
                "logged_model:m-1",
                "run:r1",
                "dataset:events@d1"
            ]
        );
        assert_eq!(up.edges.len(), 3);
        assert!(!up.truncated);
        assert_eq!(up.nodes[3].name, "events");
        assert_eq!(up.nodes[3].attrs["digest"], "d1");

        let down = l
            .walk("dataset:events@d1", Direction::Downstream, 10)
            .await
            .unwrap();
        let mut keys: Vec<&str> = down.nodes.iter().map(|n| n.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "dataset:events@d1",
                "deployment:churn-prod",
                "logged_model:m-1",
                "model_version:churn/1",
                "run:r1",
                "run:r2"
            ]
        );
        let one = l
            .walk("dataset:events@d1", Direction::Downstream, 1)
            .await
            .unwrap();
        assert_eq!(one.nodes.len(), 3);
        assert!(one.truncated);
        let both = l.walk("run:r1", Direction::Both, 10).await.unwrap();
        assert_eq!(both.nodes.len(), 5, "{:?}", both.nodes);

        // A registered model renamed: its versions' nodes and edges follow.
        l.rename("model_version", "churn/", "attrition/")
            .await
            .unwrap();
        let up = l
            .walk("model_version:attrition/1", Direction::Upstream, 10)
            .await
            .unwrap();
        assert_eq!(up.nodes.len(), 4);
        assert_eq!(up.nodes[0].name, "attrition/1");
        assert!(matches!(
            l.walk("model_version:churn/1", Direction::Upstream, 10)
                .await,
            Err(LineageError::NotFound(_))
        ));
        let down = l
            .walk("model_version:attrition/1", Direction::Downstream, 10)
            .await
            .unwrap();
        assert_eq!(down.nodes.len(), 2);

        // Bad input names the field and writes nothing.
        let err = l
            .record(
                vec![NewNode::new("run", "r9")],
                vec![edge("run:r9", "dataset:nope", "input")],
            )
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("edges[0].to:"), "{err}");
        assert!(l.node("run:r9").await.unwrap().is_none());
        let err = l
            .record(vec![NewNode::new("Run", "x")], vec![])
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("nodes[0].kind:"), "{err}");
        assert!(l.walk("churn/1", Direction::Upstream, 3).await.is_err());
    }
}
