//! keel-learn's integration tests: the cross-check against scikit-learn and
//! LightGBM, ONNX exports run by keel-serve, checkpoint/resume identity,
//! determinism, error reporting, and properties over random data.

mod checkpoint;
mod determinism;
mod errors;
mod onnx;
mod properties;
mod reference;

use keel_learn::Dataset;
use keel_stats::Rng;

/// A seeded binary dataset: `cols` features (normal, one uniform integer
/// feature with ties, some on large scales), labels from a nonlinear
/// logistic model; `missing` is the share of NaN in features 0 and 2.
pub fn binary_data(rows: usize, cols: usize, seed: u64, missing: f64) -> Dataset {
    let mut rng = Rng::from_seed(seed);
    let mut x = Vec::with_capacity(rows * cols);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..cols)
            .map(|c| match c % 4 {
                1 => rng.below(6) as f64,
                3 => 100.0 * rng.normal(),
                _ => rng.normal(),
            })
            .collect();
        let s = 1.2 * row[0] - 0.8 * row[1.min(cols - 1)]
            + 0.5 * row[0] * row[cols - 1]
            + 0.01 * row[3.min(cols - 1)];
        let p = 1.0 / (1.0 + (-s).exp());
        y.push(f64::from(u8::from(rng.next_f64() < p)));
        for (c, v) in row.into_iter().enumerate() {
            let hide = (c == 0 || c == 2) && rng.next_f64() < missing;
            x.push(if hide { f64::NAN } else { v });
        }
    }
    Dataset::unnamed(cols, x, y).unwrap()
}

/// A seeded regression dataset: `y = 3·x0 − 2·x1² + noise`.
pub fn regression_data(rows: usize, cols: usize, seed: u64, missing: f64) -> Dataset {
    let mut rng = Rng::from_seed(seed);
    let mut x = Vec::with_capacity(rows * cols);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
        y.push(3.0 * row[0] - 2.0 * row[1.min(cols - 1)].powi(2) + 0.3 * rng.normal());
        for (c, v) in row.into_iter().enumerate() {
            let hide = c == 0 && rng.next_f64() < missing;
            x.push(if hide { f64::NAN } else { v });
        }
    }
    Dataset::unnamed(cols, x, y).unwrap()
}
