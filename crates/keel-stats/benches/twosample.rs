//! Criterion benchmarks of the two-sample drift statistics on a reference
//! and a current column of 1,000,000 sorted values each: the statistics
//! themselves (one merge of the two columns each), and, for scale, the
//! sort they assume was done once per column.
//!
//! "same" compares two samples of one distribution; "shifted" moves the
//! current one by 0.01 sd, small enough that the KS p-value falls in the
//! range where scipy's algorithm sums ~10⁵–10⁶ Smirnov terms (the slowest
//! case of `ks_2samp` at this size), "far" by 0.5 sd (p-value 0 at once).
//! A rounded column adds ties.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_stats::twosample;

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

    /// A bell-shaped draw (Irwin–Hall of 12 uniforms: mean 0, sd 1).
    fn bell(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

fn column(seed: u64, shift: f64) -> Vec<f64> {
    let mut rng = Mix(seed);
    (0..ROWS).map(|_| rng.bell() + shift).collect()
}

fn bench(c: &mut Criterion) {
    let reference_raw = column(1, 0.0);
    let reference = twosample::sorted(&reference_raw);
    let same = twosample::sorted(&column(2, 0.0));
    let shifted = twosample::sorted(&column(3, 0.01));
    let far = twosample::sorted(&column(4, 0.5));
    let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| (x * 100.0).round() / 100.0).collect() };
    let (ref_tied, cur_tied) = (round(&reference), round(&shifted));

    let mut g = c.benchmark_group("twosample_1m");
    g.sample_size(10);
    g.bench_function("sorted (one column)", |b| {
        b.iter(|| twosample::sorted(black_box(&reference_raw)))
    });
    for (name, cur) in [("same", &same), ("shifted", &shifted), ("far", &far)] {
        g.bench_function(format!("ks_2samp {name}"), |b| {
            b.iter(|| twosample::ks_2samp(black_box(&reference), black_box(cur)))
        });
    }
    g.bench_function("ks_2samp tied", |b| {
        b.iter(|| twosample::ks_2samp(black_box(&ref_tied), black_box(&cur_tied)))
    });
    g.bench_function("wasserstein_distance", |b| {
        b.iter(|| twosample::wasserstein_distance(black_box(&reference), black_box(&shifted)))
    });
    g.bench_function("energy_distance", |b| {
        b.iter(|| twosample::energy_distance(black_box(&reference), black_box(&shifted)))
    });
    g.bench_function("anderson_ksamp", |b| {
        b.iter(|| twosample::anderson_ksamp(black_box(&reference), black_box(&shifted)))
    });
    g.bench_function("anderson_ksamp tied", |b| {
        b.iter(|| twosample::anderson_ksamp(black_box(&ref_tied), black_box(&cur_tied)))
    });
    g.bench_function("cramervonmises_2samp", |b| {
        b.iter(|| twosample::cramervonmises_2samp(black_box(&reference), black_box(&shifted)))
    });
    g.bench_function("cramervonmises_2samp tied", |b| {
        b.iter(|| twosample::cramervonmises_2samp(black_box(&ref_tied), black_box(&cur_tied)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
