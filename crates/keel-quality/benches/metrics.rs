//! Criterion benchmarks of the metrics on 1,000,000 rows: ROC AUC (one
//! sort), average precision, log loss, F1 (binary and macro), the fairness
//! group table over one and two sensitive columns, and the worst-slice
//! search.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_quality::fairness;
use keel_quality::metrics::classification::{self, Average};
use keel_quality::slices::{self, RowOutcome, SliceColumn, SliceSearch};

const ROWS: usize = 1_000_000;

/// SplitMix64: deterministic data without a dependency.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Data {
    y_true: Vec<i64>,
    y_pred: Vec<i64>,
    y_prob: Vec<f64>,
    /// Probabilities rounded to 3 decimals: many ties.
    y_prob_tied: Vec<f64>,
    multiclass_true: Vec<i64>,
    multiclass_pred: Vec<i64>,
    region: Vec<&'static str>,
    segment: Vec<&'static str>,
    age: Vec<f64>,
}

fn data() -> Data {
    let mut rng = Mix(42);
    let regions = ["north", "south", "east", "west", "centre", "islands"];
    let segments = ["consumer", "small business", "enterprise"];
    let mut d = Data {
        y_true: Vec::with_capacity(ROWS),
        y_pred: Vec::with_capacity(ROWS),
        y_prob: Vec::with_capacity(ROWS),
        y_prob_tied: Vec::with_capacity(ROWS),
        multiclass_true: Vec::with_capacity(ROWS),
        multiclass_pred: Vec::with_capacity(ROWS),
        region: Vec::with_capacity(ROWS),
        segment: Vec::with_capacity(ROWS),
        age: Vec::with_capacity(ROWS),
    };
    for _ in 0..ROWS {
        let positive = rng.uniform() < 0.3;
        let p = (if positive { 0.25 } else { 0.0 } + 0.75 * rng.uniform()).min(1.0);
        d.y_true.push(i64::from(positive));
        d.y_pred.push(i64::from(p > 0.5));
        d.y_prob.push(p);
        d.y_prob_tied.push((p * 1000.0).round() / 1000.0);
        let class = (rng.next() % 4) as i64;
        d.multiclass_true.push(class);
        d.multiclass_pred.push(if rng.uniform() < 0.7 {
            class
        } else {
            (rng.next() % 4) as i64
        });
        d.region
            .push(regions[(rng.next() % regions.len() as u64) as usize]);
        d.segment
            .push(segments[(rng.next() % segments.len() as u64) as usize]);
        d.age.push(18.0 + (rng.uniform() * 60.0).floor());
    }
    d
}

fn metrics(c: &mut Criterion) {
    let d = data();
    let mut g = c.benchmark_group("1M_rows");
    g.sample_size(10);
    g.bench_function("roc_auc", |b| {
        b.iter(|| classification::roc_auc(black_box(&d.y_true), black_box(&d.y_prob), 1).unwrap())
    });
    g.bench_function("roc_auc_tied_scores", |b| {
        b.iter(|| {
            classification::roc_auc(black_box(&d.y_true), black_box(&d.y_prob_tied), 1).unwrap()
        })
    });
    g.bench_function("average_precision", |b| {
        b.iter(|| {
            classification::average_precision(black_box(&d.y_true), black_box(&d.y_prob), 1)
                .unwrap()
        })
    });
    g.bench_function("log_loss", |b| {
        b.iter(|| classification::log_loss(black_box(&d.y_true), black_box(&d.y_prob), 1).unwrap())
    });
    g.bench_function("f1_binary", |b| {
        b.iter(|| {
            classification::f1(
                black_box(&d.y_true),
                black_box(&d.y_pred),
                Average::Binary { pos_label: 1 },
            )
            .unwrap()
        })
    });
    g.bench_function("f1_macro_4_classes", |b| {
        b.iter(|| {
            classification::f1(
                black_box(&d.multiclass_true),
                black_box(&d.multiclass_pred),
                Average::Macro,
            )
            .unwrap()
        })
    });
    g.bench_function("fairness_table_1_column", |b| {
        b.iter(|| {
            fairness::group_table(
                black_box(&d.y_true),
                black_box(&d.y_pred),
                1,
                &[&d.region[..]],
            )
            .unwrap()
            .disparities()
        })
    });
    g.bench_function("fairness_table_2_columns", |b| {
        b.iter(|| {
            fairness::group_table(
                black_box(&d.y_true),
                black_box(&d.y_pred),
                1,
                &[&d.region[..], &d.segment[..]],
            )
            .unwrap()
            .disparities()
        })
    });
    let correct: Vec<bool> = d
        .y_true
        .iter()
        .zip(&d.y_pred)
        .map(|(t, p)| t == p)
        .collect();
    g.bench_function("worst_slices_3_columns", |b| {
        b.iter(|| {
            slices::worst_slices(
                &[
                    SliceColumn::Categorical {
                        name: "region",
                        values: &d.region,
                    },
                    SliceColumn::Categorical {
                        name: "segment",
                        values: &d.segment,
                    },
                    SliceColumn::Numeric {
                        name: "age",
                        values: &d.age,
                    },
                ],
                RowOutcome::Correct(black_box(&correct)),
                SliceSearch::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
