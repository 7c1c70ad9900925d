//! The tracking store suite, run against every backend: SQLite always,
//! PostgreSQL whenever `KEEL_TEST_POSTGRES_URL` is set (and required when
//! `CI=true`).

use std::collections::HashSet;

use keel_store::Db;
use keel_tracking::*;

async fn backends() -> Vec<(&'static str, Tracking, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Db::open_in_dir(dir.path(), MIGRATIONS, Default::default())
        .await
        .expect("open sqlite");
    let mut out = vec![("sqlite", Tracking::new(sqlite), Some(dir))];
    match std::env::var("KEEL_TEST_POSTGRES_URL") {
        Ok(base) => {
            let url = fresh_postgres_database(&base).await;
            let pg = Db::open(&url, MIGRATIONS, Default::default())
                .await
                .expect("open postgres");
            out.push(("postgres", Tracking::new(pg), None));
        }
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but KEEL_TEST_POSTGRES_URL is not set: the PostgreSQL suite cannot run")
        }
        Err(_) => eprintln!("KEEL_TEST_POSTGRES_URL not set: PostgreSQL half of the suite not run"),
    }
    out
}

async fn fresh_postgres_database(base: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("keel_it_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(base)
        .await
        .expect("connect to postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("postgres URL has a database path");
    format!("{prefix}/{name}")
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

fn metric(k: &str, value: f64, step: i64, timestamp: i64) -> Metric {
    Metric {
        key: k.into(),
        value,
        timestamp,
        step,
        ..Default::default()
    }
}

#[tokio::test]
async fn experiments_lifecycle_and_name_reuse() {
    for (backend, t, _dir) in backends().await {
        let id = t
            .create_experiment("churn".into(), None, vec![tag("team", "growth")])
            .await
            .unwrap();
        let e = t.get_experiment(id).await.unwrap();
        assert_eq!(e.name, "churn", "{backend}");
        assert_eq!(e.artifact_location, format!("mlflow-artifacts:/{id}"));
        assert_eq!(e.tags, vec![tag("team", "growth")]);
        assert_eq!(
            t.get_experiment_by_name("churn")
                .await
                .unwrap()
                .experiment_id,
            id
        );
        assert!(matches!(
            t.create_experiment("churn".into(), None, vec![]).await,
            Err(TrackingError::AlreadyExists(_))
        ));
        t.rename_experiment(id, "churn-v2".into()).await.unwrap();
        assert_eq!(t.get_experiment(id).await.unwrap().name, "churn-v2");
        t.delete_experiment(id).await.unwrap();
        assert_eq!(
            t.get_experiment(id).await.unwrap().lifecycle_stage,
            LifecycleStage::Deleted
        );
        // A soft-deleted name stays taken, as in MLflow...
        assert!(matches!(
            t.create_experiment("churn-v2".into(), None, vec![]).await,
            Err(TrackingError::AlreadyExists(_))
        ));
        t.restore_experiment(id).await.unwrap();
        // ...and a purged one is free at once.
        t.purge_experiment(id).await.unwrap();
        assert!(matches!(
            t.get_experiment(id).await,
            Err(TrackingError::NotFound { .. })
        ));
        let again = t
            .create_experiment("churn-v2".into(), None, vec![])
            .await
            .unwrap();
        assert_ne!(again, id, "{backend}");
        assert_eq!(t.get_experiment(0).await.unwrap().name, "Default");
    }
}

#[tokio::test]
async fn logging_keeps_latest_metric_and_rejects_param_changes() {
    for (backend, t, _dir) in backends().await {
        let run = t
            .create_run(NewRun {
                run_name: Some("first".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let id = run.info.run_id.clone();
        assert_eq!(run.info.run_name, "first");
        assert_eq!(run.info.status, RunStatus::Running);
        assert_eq!(
            run.info.artifact_uri,
            format!("mlflow-artifacts:/0/{id}/artifacts")
        );
        t.log_batch(
            id.clone(),
            vec![
                metric("loss", 0.9, 0, 10),
                metric("loss", 0.5, 2, 5),
                metric("loss", 0.7, 1, 30),
                metric("acc", f64::NAN, 0, 1),
            ],
            vec![tag("lr", "0.1")],
            vec![tag("team", "x")],
        )
        .await
        .unwrap();
        // Same value again is fine; another value is refused and nothing of the batch lands.
        t.log_param(id.clone(), tag("lr", "0.1")).await.unwrap();
        let err = t
            .log_batch(
                id.clone(),
                vec![metric("loss", 0.0, 99, 1)],
                vec![tag("lr", "0.2")],
                vec![],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, TrackingError::InvalidParameter(_)),
            "{backend}: {err}"
        );
        let got = t.get_run(&id).await.unwrap();
        let data = got.data.unwrap();
        let loss = data.metrics.iter().find(|m| m.key == "loss").unwrap();
        assert_eq!(
            (loss.value, loss.step),
            (0.5, 2),
            "{backend}: latest = highest step"
        );
        assert!(
            data.metrics
                .iter()
                .find(|m| m.key == "acc")
                .unwrap()
                .value
                .is_nan()
        );
        assert_eq!(data.params, vec![tag("lr", "0.1")]);
        assert!(data.tags.contains(&tag("team", "x")));
        assert!(data.tags.contains(&tag("mlflow.runName", "first")));
        let history = t.metric_history(&id, "loss", None, None).await.unwrap();
        assert_eq!(
            history.items.len(),
            3,
            "{backend}: the failed batch left nothing"
        );
        // Renaming through the tag keeps the column in step.
        t.set_tag(id.clone(), tag("mlflow.runName", "renamed"))
            .await
            .unwrap();
        assert_eq!(t.get_run(&id).await.unwrap().info.run_name, "renamed");
        // Deleted runs refuse writes; restore brings them back.
        t.delete_run(id.clone()).await.unwrap();
        assert!(
            t.log_metric(id.clone(), metric("x", 1.0, 0, 0))
                .await
                .is_err()
        );
        t.restore_run(id.clone()).await.unwrap();
        t.log_metric(id.clone(), metric("x", 1.0, 0, 0))
            .await
            .unwrap();
        t.purge_run(id.clone()).await.unwrap();
        assert!(matches!(
            t.get_run(&id).await,
            Err(TrackingError::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn metric_history_pages_in_order() {
    for (backend, t, _dir) in backends().await {
        let id = t.create_run(NewRun::default()).await.unwrap().info.run_id;
        for chunk in (0..2500).collect::<Vec<i64>>().chunks(1000) {
            let ms = chunk
                .iter()
                .map(|i| metric("m", *i as f64, *i, 1000 + i))
                .collect();
            t.log_batch(id.clone(), ms, vec![], vec![]).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = t
                .metric_history(&id, "m", Some(1000), token.as_deref())
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|m| m.step));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen, (0..2500).collect::<Vec<_>>(), "{backend}");
    }
}

/// Which of the 30 runs (by index) a filter should return.
type Predicate = Box<dyn Fn(i64) -> bool>;

#[tokio::test]
async fn search_filters_orders_and_pages() {
    for (backend, t, _dir) in backends().await {
        let exp = t
            .create_experiment("search".into(), None, vec![])
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..30i64 {
            let run = t
                .create_run(NewRun {
                    experiment_id: Some(exp),
                    start_time: Some(1_000 + i),
                    run_name: Some(format!("run-{i:02}")),
                    ..Default::default()
                })
                .await
                .unwrap();
            let id = run.info.run_id;
            let mut metrics = vec![metric("auc", i as f64 / 30.0, 0, 0)];
            if i % 5 == 0 {
                metrics.clear();
            }
            let model = if i % 2 == 0 { "gbdt" } else { "linear" };
            let team = if i % 3 == 0 { "Growth" } else { "risk" };
            t.log_batch(
                id.clone(),
                metrics,
                vec![tag("model", model)],
                vec![tag("team", team)],
            )
            .await
            .unwrap();
            ids.push(id);
        }
        let search = |filter: &str| RunSearch {
            experiment_ids: Some(vec![exp]),
            filter: filter.into(),
            ..Default::default()
        };
        let names = |page: &Page<Run>| -> Vec<String> {
            page.items.iter().map(|r| r.info.run_name.clone()).collect()
        };
        let expect = |pred: &dyn Fn(i64) -> bool| -> HashSet<String> {
            (0..30)
                .filter(|i| pred(*i))
                .map(|i| format!("run-{i:02}"))
                .collect()
        };
        let auc = |i: i64| {
            if i % 5 == 0 {
                None
            } else {
                Some(i as f64 / 30.0)
            }
        };
        let cases: Vec<(&str, Predicate)> = vec![
            (
                "metrics.auc > 0.5",
                Box::new(move |i| auc(i).is_some_and(|a| a > 0.5)),
            ),
            (
                "params.model = 'gbdt' and metrics.auc <= 0.2",
                Box::new(move |i| i % 2 == 0 && auc(i).is_some_and(|a| a <= 0.2)),
            ),
            (
                "(metrics.auc > 0.9 OR params.model = 'gbdt') AND NOT tags.team = 'risk'",
                Box::new(move |i| (auc(i).is_some_and(|a| a > 0.9) || i % 2 == 0) && i % 3 == 0),
            ),
            ("tags.team LIKE 'G%'", Box::new(|i| i % 3 == 0)),
            ("tags.team LIKE 'g%'", Box::new(|_| false)),
            ("tags.team ILIKE 'g%'", Box::new(|i| i % 3 == 0)),
            ("attributes.run_name = 'run-07'", Box::new(|i| i == 7)),
            ("attributes.start_time >= 1025", Box::new(|i| i >= 25)),
        ];
        for (filter, pred) in cases {
            let page = t.search_runs(search(filter)).await.unwrap();
            let got: HashSet<String> = names(&page).into_iter().collect();
            assert_eq!(got, expect(&*pred), "{backend}: {filter}");
        }
        // Default order: newest first. Metric order puts runs without the metric last.
        let page = t.search_runs(search("")).await.unwrap();
        assert_eq!(names(&page)[0], "run-29");
        let mut s = search("");
        s.order_by = vec!["metrics.auc DESC".into()];
        let page = t.search_runs(s).await.unwrap();
        let ordered = names(&page);
        assert_eq!(ordered[0], "run-29", "{backend}");
        assert!(
            ordered[24..].iter().all(|n| {
                let i: i64 = n[4..].parse().unwrap();
                i % 5 == 0
            }),
            "{backend}: runs lacking auc sort last: {ordered:?}"
        );
        // Paging: every run exactly once.
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let mut s = search("");
            s.max_results = Some(7);
            s.page_token = token;
            let page = t.search_runs(s).await.unwrap();
            seen.extend(page.items.into_iter().map(|r| r.info.run_id));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 30, "{backend}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 30, "{backend}");
        // Across all experiments, and the light mode.
        let mut all = search("params.model = 'linear'");
        all.experiment_ids = None;
        all.info_only = true;
        let page = t.search_runs(all).await.unwrap();
        assert_eq!(page.items.len(), 15, "{backend}");
        assert!(page.items.iter().all(|r| r.data.is_none()));
        // A bad filter names the offending token.
        let err = t
            .search_runs(search("metrics.auc LIKE 'x'"))
            .await
            .unwrap_err();
        assert!(matches!(err, TrackingError::Filter(_)), "{backend}: {err}");
    }
}

#[tokio::test]
async fn concurrent_writers_lose_nothing() {
    for (backend, t, _dir) in backends().await {
        let run = t.create_run(NewRun::default()).await.unwrap().info.run_id;
        let mut tasks = Vec::new();
        for w in 0..16i64 {
            let t = t.clone();
            let run = run.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50i64 {
                    t.log_metric(run.clone(), metric(&format!("w{w}"), i as f64, i, i))
                        .await?;
                    if i % 10 == 0 {
                        // A write that fails inside a group commit must not spoil the others.
                        let _ = t
                            .log_param(run.clone(), tag("shared", &format!("{w}-{i}")))
                            .await;
                    }
                }
                Ok::<_, TrackingError>(())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for w in 0..16 {
            let h = t
                .metric_history(&run, &format!("w{w}"), None, None)
                .await
                .unwrap();
            assert_eq!(h.items.len(), 50, "{backend}: writer {w}");
        }
        let data = t.get_run(&run).await.unwrap().data.unwrap();
        assert_eq!(
            data.params.len(),
            1,
            "{backend}: exactly one param value won"
        );
    }
}

/// Enough runs that SQLite's search takes its scan-in-order plans (lists
/// longer than the driving limit, the metric-index walk for metric order),
/// checked against an in-test oracle, pages included.
#[tokio::test]
async fn large_searches_take_fast_plans_and_stay_exact() {
    const N: i64 = 4200;
    let auc = |i: i64| -> Option<f64> {
        if i % 10 == 0 {
            None
        } else if i % 97 == 0 {
            Some(f64::NAN)
        } else {
            Some(((i * 7919) % 1000) as f64 / 1000.0)
        }
    };
    for (backend, t, _dir) in backends().await {
        let exp = t
            .create_experiment("large".into(), None, vec![])
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for w in 0..8i64 {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while i < N {
                    let run = t
                        .create_run(NewRun {
                            experiment_id: Some(exp),
                            start_time: Some(10_000 + i),
                            run_name: Some(format!("r{i}")),
                            ..Default::default()
                        })
                        .await?;
                    let metrics = auc(i).map(|v| metric("auc", v, 0, 0)).into_iter().collect();
                    let model = if i % 2 == 0 { "gbdt" } else { "linear" };
                    t.log_batch(run.info.run_id, metrics, vec![tag("model", model)], vec![])
                        .await?;
                    i += 8;
                }
                Ok::<_, TrackingError>(())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let index = |r: &Run| -> i64 { r.info.run_name[1..].parse().unwrap() };
        let search = |filter: &str, order: &str, max: i64, token: Option<String>| RunSearch {
            experiment_ids: Some(vec![exp]),
            filter: filter.into(),
            order_by: if order.is_empty() {
                vec![]
            } else {
                vec![order.into()]
            },
            max_results: Some(max),
            page_token: token,
            info_only: true,
            ..Default::default()
        };
        // Oracle: metric order puts numbers first (by value, then newest
        // first), then NaN, then runs without the metric, newest first.
        let oracle = |keep: &dyn Fn(i64) -> bool, ascending: bool| -> Vec<i64> {
            let mut ids: Vec<i64> = (0..N).filter(|i| keep(*i)).collect();
            ids.sort_by(|a, b| {
                let class = |i: i64| match auc(i) {
                    Some(v) if !v.is_nan() => 0,
                    Some(_) => 1,
                    None => 2,
                };
                class(*a).cmp(&class(*b)).then_with(|| {
                    let (va, vb) = (auc(*a).unwrap_or(0.0), auc(*b).unwrap_or(0.0));
                    let by_value = if class(*a) == 0 {
                        if ascending {
                            va.total_cmp(&vb)
                        } else {
                            vb.total_cmp(&va)
                        }
                    } else {
                        std::cmp::Ordering::Equal
                    };
                    by_value.then_with(|| b.cmp(a))
                })
            });
            ids
        };
        // A long list (2,100 gbdt runs) with the default order.
        let page = t
            .search_runs(search("params.model = 'gbdt'", "", 100, None))
            .await
            .unwrap();
        let got: Vec<i64> = page.items.iter().map(index).collect();
        let want: Vec<i64> = (0..N).rev().filter(|i| i % 2 == 0).take(100).collect();
        assert_eq!(got, want, "{backend}: long list, default order");
        // Metric order, with and without a filter, paged to the end.
        for (filter, keep, ascending) in [
            ("", (|_| true) as fn(i64) -> bool, false),
            (
                "params.model = 'gbdt'",
                (|i| i % 2 == 0) as fn(i64) -> bool,
                true,
            ),
        ] {
            let order = if ascending {
                "metrics.auc ASC"
            } else {
                "metrics.auc DESC"
            };
            let mut got = Vec::new();
            let mut token = None;
            loop {
                let page = t
                    .search_runs(search(filter, order, 700, token))
                    .await
                    .unwrap();
                got.extend(page.items.iter().map(index));
                token = page.next_page_token;
                if token.is_none() {
                    break;
                }
            }
            assert_eq!(
                got,
                oracle(&keep, ascending),
                "{backend}: {filter} / {order}"
            );
        }
    }
}
