//! Criterion benchmarks of column profiling on 1,000,000 values: a numeric
//! profile through the batch path (`from_values`, with and without a
//! histogram) and one value at a time, the merge of 16 partial profiles,
//! a categorical profile, and the sketch-based distances.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_monitor::profile::{
    CategoricalProfile, NumericProfile, approx_ks_statistic, approx_wasserstein,
};

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

    /// A standard normal draw (Box–Muller, one of the pair).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn numeric(c: &mut Criterion) {
    let mut mix = Mix(1);
    let values: Vec<f64> = (0..ROWS).map(|_| mix.normal()).collect();
    let shifted: Vec<f64> = (0..ROWS).map(|_| 0.2 + mix.normal()).collect();
    let edges: Vec<f64> = (0..=20).map(|i| -5.0 + 0.5 * f64::from(i)).collect();

    c.bench_function("numeric_from_values_1m", |b| {
        b.iter(|| NumericProfile::from_values(black_box(&values)))
    });
    c.bench_function("numeric_from_values_1m_histogram_20_bins", |b| {
        b.iter(|| {
            let mut profile = NumericProfile::with_edges(edges.clone()).expect("valid edges");
            profile.extend(black_box(&values));
            profile
        })
    });
    c.bench_function("numeric_update_1m", |b| {
        b.iter(|| {
            let mut profile = NumericProfile::new();
            for &x in black_box(&values) {
                profile.update(x);
            }
            profile
        })
    });
    let parts: Vec<NumericProfile> = values
        .chunks(ROWS / 16)
        .map(NumericProfile::from_values)
        .collect();
    c.bench_function("numeric_merge_16_parts_of_62500", |b| {
        b.iter(|| {
            let mut merged = NumericProfile::new();
            for part in black_box(&parts) {
                merged.merge(part).expect("same configuration");
            }
            merged
        })
    });
    let reference = NumericProfile::from_values(&values);
    let current = NumericProfile::from_values(&shifted);
    c.bench_function("approx_wasserstein_and_ks_sketched_1m", |b| {
        b.iter(|| {
            let w = approx_wasserstein(black_box(&reference), black_box(&current));
            let d = approx_ks_statistic(black_box(&reference), black_box(&current));
            (w, d)
        })
    });
}

fn categorical(c: &mut Criterion) {
    let mut mix = Mix(2);
    // Zipf-ish: 5,000 distinct values, a few of them frequent.
    let strings: Vec<String> = (0..ROWS)
        .map(|_| {
            let u = mix.uniform();
            format!("value-{}", (5000.0 * u * u * u) as u32)
        })
        .collect();
    c.bench_function("categorical_from_values_1m_5000_distinct", |b| {
        b.iter(|| CategoricalProfile::from_values(black_box(&strings)))
    });
}

criterion_group!(benches, numeric, categorical);
criterion_main!(benches);
