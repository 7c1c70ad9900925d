//! Criterion benchmarks of training on synthetic data: one GBDT iteration
//! (a depth-6 tree on 200,000 × 20, after binning) on one thread and on
//! every core, binning those rows, and a logistic regression fit (Newton to
//! convergence) on 200,000 × 20.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_learn::{Dataset, GbdtParams, GbdtTrainer, LogisticParams, Params, fit};
use keel_stats::Rng;

const ROWS: usize = 200_000;
const COLS: usize = 20;

/// 20 features, 8 of them informative, labels from a logistic model.
fn data() -> Dataset {
    let mut rng = Rng::from_seed(1);
    let mut x = Vec::with_capacity(ROWS * COLS);
    let mut y = Vec::with_capacity(ROWS);
    for _ in 0..ROWS {
        let row: Vec<f64> = (0..COLS).map(|_| rng.normal()).collect();
        let s: f64 = row[..8]
            .iter()
            .enumerate()
            .map(|(i, v)| v * (i as f64 - 3.5) * 0.4)
            .sum::<f64>()
            + 0.5 * row[0] * row[1];
        y.push(f64::from(u8::from(
            rng.next_f64() < 1.0 / (1.0 + (-s).exp()),
        )));
        x.extend(row);
    }
    Dataset::unnamed(COLS, x, y).unwrap()
}

fn bench(c: &mut Criterion) {
    let data = data();
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    for threads in [1, 0] {
        let name = if threads == 1 {
            "gbdt_iteration_200k_x20_depth6_1_thread"
        } else {
            "gbdt_iteration_200k_x20_depth6_all_cores"
        };
        let params = GbdtParams {
            n_estimators: 1_000_000,
            max_depth: 6,
            threads: (threads > 0).then_some(threads),
            ..GbdtParams::default()
        };
        let mut trainer = GbdtTrainer::new(params, &data, None).unwrap();
        group.bench_function(name, |b| b.iter(|| black_box(trainer.step().unwrap())));
    }
    group.bench_function("gbdt_binning_200k_x20", |b| {
        let params = GbdtParams {
            n_estimators: 1,
            ..GbdtParams::default()
        };
        b.iter(|| black_box(GbdtTrainer::new(params.clone(), &data, None).unwrap()))
    });
    group.bench_function("logistic_fit_200k_x20", |b| {
        b.iter(|| black_box(fit(Params::Logistic(LogisticParams::default()), &data, None).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
