//! Robustness checks: seeded perturbations of a copy of the inputs
//! ([`gaussian_noise`], [`missing_values`], [`category_swap`], and [`typo`]
//! for string columns the caller encodes itself), how much the model's
//! answers move ([`flip_rate`], [`mean_abs_change`]), directional
//! expectations ([`directional`]) and minimum-functionality cases
//! ([`minimum_functionality`], CheckList's MFT, Ribeiro et al. 2020).
//!
//! Perturbations touch only the chosen columns and only draw from the
//! caller's [`Rng`], so the same seed gives the same perturbed matrix.

use keel_stats::rng::Rng;
use serde::{Deserialize, Serialize};

use super::{Matrix, Predict, Predictions, call, rate as check_rate, scores};
use crate::{QualityError, Result, invalid, not_finite, paired};

fn checked(m: &Matrix, columns: &[usize]) -> Result<()> {
    m.check_shape("matrix")?;
    m.check_columns("columns", columns)
}

/// A copy of `m` with Gaussian noise added to `columns`: each value gets
/// `N(0, 1) · scale · σ_c`, σ_c the column's population standard deviation
/// over its finite values, so `scale` is in units of the column's spread.
/// Missing values stay missing; a constant column is left as is.
pub fn gaussian_noise(m: &Matrix, columns: &[usize], scale: f64, rng: &mut Rng) -> Result<Matrix> {
    checked(m, columns)?;
    if !scale.is_finite() || scale < 0.0 {
        return Err(invalid(
            "scale",
            format!("is {scale}; it must be a finite number ≥ 0"),
        ));
    }
    let std = m.column_std();
    let mut out = m.clone();
    for row in out.values.chunks_exact_mut(m.cols.max(1)) {
        for &c in columns {
            let sd = std[c] * scale;
            if sd > 0.0 && row[c].is_finite() {
                row[c] += rng.normal() * sd;
            }
        }
    }
    Ok(out)
}

/// A copy of `m` where each value of `columns` is set to NaN (missing)
/// independently with probability `rate`.
pub fn missing_values(m: &Matrix, columns: &[usize], rate: f64, rng: &mut Rng) -> Result<Matrix> {
    checked(m, columns)?;
    let rate = check_rate("rate", rate)?;
    let mut out = m.clone();
    for row in out.values.chunks_exact_mut(m.cols.max(1)) {
        for &c in columns {
            if rng.next_f64() < rate {
                row[c] = f64::NAN;
            }
        }
    }
    Ok(out)
}

/// A copy of `m` where each value of the integer-coded `columns` is, with
/// probability `rate`, replaced by another value seen in that column
/// (uniformly among the other distinct values). Missing values and columns
/// with a single distinct value are left as they are; a non-integer value
/// is an error, since the column is then not categorical.
pub fn category_swap(m: &Matrix, columns: &[usize], rate: f64, rng: &mut Rng) -> Result<Matrix> {
    checked(m, columns)?;
    let rate = check_rate("rate", rate)?;
    let mut out = m.clone();
    for &c in columns {
        let mut seen: Vec<f64> = Vec::new();
        for r in 0..m.rows {
            let x = m.get(r, c);
            if x.is_nan() {
                continue;
            }
            if !x.is_finite() || x.fract() != 0.0 {
                return Err(invalid(
                    &format!("column {c}"),
                    format!("row {r} is {x}; category swap needs integer-coded values"),
                ));
            }
            seen.push(x);
        }
        seen.sort_unstable_by(f64::total_cmp);
        seen.dedup();
        if seen.len() < 2 {
            continue;
        }
        for r in 0..m.rows {
            let x = m.get(r, c);
            if x.is_nan() || rng.next_f64() >= rate {
                continue;
            }
            // Draw among the others: index into `seen` skipping `x`'s slot.
            let own = seen.binary_search_by(|v| v.total_cmp(&x)).unwrap_or(0);
            let mut k = rng.below(seen.len() as u64 - 1) as usize;
            if k >= own {
                k += 1;
            }
            out.values[r * m.cols + c] = seen[k];
        }
    }
    Ok(out)
}

/// One typo in `s`: swap two adjacent characters, drop one, or duplicate
/// one, chosen uniformly (a one-character string is dropped or duplicated;
/// the empty string is returned as is). Works on characters, not bytes.
pub fn typo(s: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let ops = if chars.len() >= 2 { 3 } else { 2 };
    match rng.below(ops) {
        0 => {
            let i = rng.below(chars.len() as u64) as usize;
            chars.remove(i);
        }
        1 => {
            let i = rng.below(chars.len() as u64) as usize;
            chars.insert(i, chars[i]);
        }
        _ => {
            let i = rng.below(chars.len() as u64 - 1) as usize;
            chars.swap(i, i + 1);
        }
    }
    chars.into_iter().collect()
}

/// The fraction of rows whose label changed between two answers for the
/// same rows.
pub fn flip_rate(before: &Predictions, after: &Predictions) -> Result<f64> {
    let n = paired(
        "before.labels",
        before.labels.len(),
        "after.labels",
        after.labels.len(),
    )?;
    let flips = before
        .labels
        .iter()
        .zip(&after.labels)
        .filter(|(a, b)| a != b)
        .count();
    Ok(flips as f64 / n as f64)
}

/// The mean absolute change of the scores between two answers for the
/// same rows (both must have scores, all finite).
pub fn mean_abs_change(before: &Predictions, after: &Predictions) -> Result<f64> {
    let (a, b) = (scores(before, "before")?, scores(after, "after")?);
    let n = paired("before.scores", a.len(), "after.scores", b.len())?;
    let mut sum = crate::Sum::default();
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if !x.is_finite() {
            return Err(not_finite("before.scores", i, x));
        }
        if !y.is_finite() {
            return Err(not_finite("after.scores", i, y));
        }
        sum.add((y - x).abs());
    }
    Ok(sum.value() / n as f64)
}

/// Which way the score should move when a feature is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// Violated where the score drops by more than the tolerance.
    Increase,
    /// Violated where the score rises by more than the tolerance.
    Decrease,
    /// Violated where the score moves by more than the tolerance.
    NoChange,
}

/// What [`directional`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Directional {
    pub rows: u64,
    pub violations: u64,
    pub violation_rate: f64,
}

/// A directional expectation test (CheckList's DIR): raise `column` by
/// `delta` (absolute, in the column's units) in every row and count the
/// rows whose score moved against `expect` by more than `tolerance` (a
/// NaN score, before or after, is a violation). Two batched model calls. Rows where the column is missing are perturbed too
/// (NaN + δ is NaN), so they test only that the model is stable on them.
pub fn directional(
    m: &Matrix,
    column: usize,
    delta: f64,
    expect: Expectation,
    tolerance: f64,
    predict: &mut Predict<'_>,
) -> Result<Directional> {
    checked(m, &[column])?;
    if m.rows == 0 {
        return Err(QualityError::Empty {
            name: "matrix".into(),
        });
    }
    if !delta.is_finite() {
        return Err(not_finite("delta", 0, delta));
    }
    if !tolerance.is_finite() || tolerance < 0.0 {
        return Err(invalid(
            "tolerance",
            format!("is {tolerance}; it must be a finite number ≥ 0"),
        ));
    }
    let before = call(predict, m)?;
    let mut raised = m.clone();
    for row in raised.values.chunks_exact_mut(m.cols) {
        row[column] += delta;
    }
    let after = call(predict, &raised)?;
    let (a, b) = (
        scores(&before, "directional")?,
        scores(&after, "directional")?,
    );
    let violations = a
        .iter()
        .zip(b)
        .filter(|&(&x, &y)| {
            let d = y - x;
            match expect {
                Expectation::Increase => d.is_nan() || d < -tolerance,
                Expectation::Decrease => d.is_nan() || d > tolerance,
                Expectation::NoChange => d.is_nan() || d.abs() > tolerance,
            }
        })
        .count() as u64;
    Ok(Directional {
        rows: m.rows as u64,
        violations,
        violation_rate: violations as f64 / m.rows as f64,
    })
}

/// A failed minimum-functionality case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCase {
    /// The case's row in the inputs.
    pub index: usize,
    pub expected: i64,
    pub predicted: i64,
}

/// What [`minimum_functionality`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinimumFunctionality {
    pub cases: u64,
    pub passed: u64,
    pub pass_rate: f64,
    pub failing: Vec<FailedCase>,
}

/// Runs hand-written cases (one input row and the label it must get per
/// case) in one batched model call.
pub fn minimum_functionality(
    inputs: &Matrix,
    expected: &[i64],
    predict: &mut Predict<'_>,
) -> Result<MinimumFunctionality> {
    inputs.check_shape("inputs")?;
    paired("cases", inputs.rows, "expected", expected.len())?;
    let got = call(predict, inputs)?;
    let failing: Vec<FailedCase> = expected
        .iter()
        .zip(&got.labels)
        .enumerate()
        .filter(|(_, (e, p))| e != p)
        .map(|(index, (&expected, &predicted))| FailedCase {
            index,
            expected,
            predicted,
        })
        .collect();
    let cases = expected.len() as u64;
    let passed = cases - failing.len() as u64;
    Ok(MinimumFunctionality {
        cases,
        passed,
        pass_rate: passed as f64 / cases as f64,
        failing,
    })
}

#[cfg(test)]
mod tests {
    use super::super::toy;
    use super::*;
    use proptest::prelude::{any, prop_assert_eq, proptest};

    fn sample() -> Matrix {
        let mut rng = Rng::from_seed(1);
        let values = (0..300)
            .flat_map(|i| [rng.normal(), (i % 3) as f64, 10.0 * rng.normal()])
            .collect();
        Matrix::new(300, 3, values).unwrap()
    }

    #[test]
    fn noise_is_scaled_and_seeded() {
        let m = sample();
        let a = gaussian_noise(&m, &[2], 0.1, &mut Rng::from_seed(3)).unwrap();
        let b = gaussian_noise(&m, &[2], 0.1, &mut Rng::from_seed(3)).unwrap();
        assert_eq!(a, b);
        let std = m.column_std()[2];
        let diff: Vec<f64> = (0..m.rows).map(|r| a.get(r, 2) - m.get(r, 2)).collect();
        let rms = (diff.iter().map(|d| d * d).sum::<f64>() / m.rows as f64).sqrt();
        assert!((rms / (0.1 * std) - 1.0).abs() < 0.15, "{rms} vs {std}");
        assert!(gaussian_noise(&m, &[3], 0.1, &mut Rng::from_seed(3)).is_err());
        assert!(gaussian_noise(&m, &[0], -1.0, &mut Rng::from_seed(3)).is_err());
    }

    #[test]
    fn missing_at_rate() {
        let m = sample();
        let out = missing_values(&m, &[0], 0.5, &mut Rng::from_seed(4)).unwrap();
        let nan = (0..m.rows).filter(|&r| out.get(r, 0).is_nan()).count();
        assert!((100..200).contains(&nan), "{nan}");
        let none = missing_values(&m, &[0], 0.0, &mut Rng::from_seed(4)).unwrap();
        assert_eq!(none, m);
        assert!(missing_values(&m, &[0], 1.5, &mut Rng::from_seed(4)).is_err());
    }

    #[test]
    fn category_swap_replaces_with_other_seen_values() {
        let m = sample();
        let out = category_swap(&m, &[1], 1.0, &mut Rng::from_seed(5)).unwrap();
        for r in 0..m.rows {
            let (x, y) = (m.get(r, 1), out.get(r, 1));
            assert_ne!(x, y);
            assert!([0.0, 1.0, 2.0].contains(&y));
        }
        assert!(category_swap(&m, &[0], 0.5, &mut Rng::from_seed(5)).is_err());
        let constant = Matrix::new(2, 1, vec![1.0, 1.0]).unwrap();
        assert_eq!(
            category_swap(&constant, &[0], 1.0, &mut Rng::from_seed(5)).unwrap(),
            constant
        );
    }

    #[test]
    fn typos() {
        let mut rng = Rng::from_seed(6);
        for _ in 0..50 {
            let t = typo("héllo", &mut rng);
            let n = t.chars().count();
            assert!((4..=6).contains(&n), "{t}");
        }
        assert_eq!(typo("", &mut rng), "");
        let one = typo("x", &mut rng);
        assert!(one.is_empty() || one == "xx");
    }

    #[test]
    fn flips_and_changes() {
        let p = |labels: Vec<i64>, s: Vec<f64>| Predictions {
            labels,
            scores: Some(s),
        };
        let a = p(vec![0, 1, 1, 0], vec![0.1, 0.9, 0.6, 0.4]);
        let b = p(vec![0, 0, 1, 1], vec![0.2, 0.4, 0.6, 0.6]);
        assert_eq!(flip_rate(&a, &b).unwrap(), 0.5);
        assert!((mean_abs_change(&a, &b).unwrap() - 0.8 / 4.0).abs() < 1e-12);
        let no_scores = Predictions {
            labels: vec![0; 4],
            scores: None,
        };
        assert!(mean_abs_change(&a, &no_scores).is_err());
        assert!(flip_rate(&a, &Predictions::default()).is_err());
    }

    #[test]
    fn directional_expectations() {
        let m = sample();
        let mut model = toy::logistic;
        let up = directional(&m, 0, 0.5, Expectation::Increase, 0.0, &mut model).unwrap();
        assert_eq!((up.rows, up.violations, up.violation_rate), (300, 0, 0.0));
        let down = directional(&m, 0, 0.5, Expectation::Decrease, 0.0, &mut model).unwrap();
        assert_eq!(down.violations, 300);
        let other = directional(&m, 2, 5.0, Expectation::NoChange, 1e-12, &mut model).unwrap();
        assert_eq!(other.violation_rate, 0.0);
        assert!(directional(&m, 0, f64::NAN, Expectation::Increase, 0.0, &mut model).is_err());
        let mut labels_only = |x: &Matrix| {
            Ok(Predictions {
                labels: vec![0; x.rows],
                scores: None,
            })
        };
        assert!(directional(&m, 0, 1.0, Expectation::Increase, 0.0, &mut labels_only).is_err());
    }

    #[test]
    fn minimum_functionality_cases() {
        let inputs = Matrix::new(3, 1, vec![5.0, -5.0, 0.5]).unwrap();
        let r = minimum_functionality(&inputs, &[1, 0, 0], &mut toy::logistic).unwrap();
        assert_eq!((r.cases, r.passed), (3, 2));
        assert!((r.pass_rate - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            r.failing,
            [FailedCase {
                index: 2,
                expected: 0,
                predicted: 1
            }]
        );
        assert!(minimum_functionality(&inputs, &[1], &mut toy::logistic).is_err());
    }

    proptest! {
        #[test]
        fn perturbations_never_touch_unchosen_columns(seed in any::<u64>(), chosen in 0usize..3, rate in 0.0f64..=1.0) {
            let m = sample();
            let mut rng = Rng::from_seed(seed);
            let outs = [
                gaussian_noise(&m, &[chosen], rate, &mut rng).unwrap(),
                missing_values(&m, &[chosen], rate, &mut rng).unwrap(),
            ];
            for out in outs {
                for r in 0..m.rows {
                    for c in (0..3).filter(|&c| c != chosen) {
                        prop_assert_eq!(out.get(r, c).to_bits(), m.get(r, c).to_bits());
                    }
                }
            }
            let swapped = category_swap(&m, &[1], rate, &mut rng).unwrap();
            for r in 0..m.rows {
                prop_assert_eq!(swapped.get(r, 0).to_bits(), m.get(r, 0).to_bits());
                prop_assert_eq!(swapped.get(r, 2).to_bits(), m.get(r, 2).to_bits());
            }
        }
    }
}
