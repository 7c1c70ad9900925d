//! Criterion benchmarks of tracking's hot functions: parsing and compiling
//! a run-search filter, and the store's write and search paths on the
//! embedded SQLite store (in-process, no HTTP).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_core::sql::{Dialect, QueryBuilder};
use keel_store::Db;
use keel_tracking::{MIGRATIONS, Metric, NewRun, RunSearch, Tag, Tracking, search};

const FILTER: &str = "metrics.auc > 0.8 and params.model = 'gbdt' and tags.team LIKE 'ri%' \
                      and attributes.status = 'FINISHED' and (metrics.loss < 0.3 or not params.depth = '3')";

/// MLflow's grammar has AND only: the same filter for both parsers
/// (MLflow's `SearchUtils.parse_search_filter` is timed by `bench/run`).
pub const MLFLOW_FILTER: &str = "metrics.auc > 0.8 and params.model = 'gbdt' and tags.team LIKE 'ri%' \
                      and attributes.status = 'FINISHED' and metrics.loss < 0.3";

fn filters(c: &mut Criterion) {
    c.bench_function("search/parse_filter", |b| {
        b.iter(|| search::parse_filter(black_box(FILTER)))
    });
    c.bench_function("search/parse_filter_mlflow_grammar", |b| {
        b.iter(|| search::parse_filter(black_box(MLFLOW_FILTER)))
    });
    let expr = search::parse_filter(FILTER).ok().flatten();
    c.bench_function("search/compile_filter_postgres", |b| {
        b.iter(|| {
            let mut q = QueryBuilder::new();
            if let Some(e) = &expr {
                search::push_filter(black_box(e), Dialect::Postgres, &mut q);
            }
            q
        })
    });
}

fn store(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let tracking = rt.block_on(async {
        let db = Db::open_in_dir(dir.path(), MIGRATIONS, Default::default()).await?;
        Ok::<_, keel_store::StoreError>(Tracking::new(db))
    });
    let Ok(tracking) = tracking else {
        panic!("open store")
    };
    let Ok(run) = rt.block_on(tracking.create_run(NewRun::default())) else {
        panic!("create run")
    };
    let run_id = run.info.run_id;
    let mut step = 0i64;
    c.bench_function("store/log_batch_500_values", |b| {
        b.iter(|| {
            let metrics: Vec<Metric> = (0..500)
                .map(|i| Metric {
                    key: format!("m{}", i % 5),
                    value: i as f64,
                    timestamp: step,
                    step: step * 100 + i / 5,
                    ..Default::default()
                })
                .collect();
            step += 1;
            rt.block_on(tracking.log_batch(run_id.clone(), metrics, vec![], vec![]))
        })
    });
    c.bench_function("store/log_metric", |b| {
        b.iter(|| {
            step += 1;
            let m = Metric {
                key: "single".into(),
                value: 1.0,
                timestamp: step,
                step,
                ..Default::default()
            };
            rt.block_on(tracking.log_metric(run_id.clone(), m))
        })
    });
    // 2,000 runs to search over.
    rt.block_on(async {
        for i in 0..2000i64 {
            if let Ok(r) = tracking.create_run(NewRun::default()).await {
                let _ = tracking
                    .log_batch(
                        r.info.run_id,
                        vec![Metric {
                            key: "auc".into(),
                            value: (i % 100) as f64 / 100.0,
                            ..Default::default()
                        }],
                        vec![Tag {
                            key: "model".into(),
                            value: if i % 2 == 0 {
                                "gbdt".into()
                            } else {
                                "linear".into()
                            },
                        }],
                        vec![],
                    )
                    .await;
            }
        }
    });
    c.bench_function("store/search_runs_2000_filter_order", |b| {
        b.iter(|| {
            rt.block_on(tracking.search_runs(RunSearch {
                experiment_ids: Some(vec![0]),
                filter: "metrics.auc > 0.5 and params.model = 'gbdt'".into(),
                order_by: vec!["metrics.auc DESC".into()],
                max_results: Some(100),
                ..Default::default()
            }))
        })
    });
}

criterion_group!(benches, filters, store);
criterion_main!(benches);
