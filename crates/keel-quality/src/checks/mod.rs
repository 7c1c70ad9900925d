//! Pure primitives behind the suite's non-metric check kinds: privacy
//! ([`privacy`]: PII scanning, k-anonymity, membership inference),
//! robustness ([`robustness`]: seeded perturbations, flip rates,
//! directional expectations, minimum functionality) and security
//! ([`security`]: black-box evasion under a query budget, hostile inputs).
//!
//! The model under test is never named here: it is a closure
//! `&mut dyn FnMut(&Matrix) -> Result<Predictions>` that answers a batch of
//! rows, so the same primitives serve an in-process model, a served
//! endpoint or a toy in a test. Every random choice comes from a
//! [`keel_stats::rng::Rng`] seeded by the caller, so a check run twice on
//! the same data gives the same report.

pub mod privacy;
pub mod robustness;
pub mod security;

use crate::{QualityError, Result, invalid};

/// A dense batch of model inputs: `rows × cols` numbers, row-major, NaN for
/// a missing value. Categorical columns are integer-coded by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    /// `values[r * cols + c]` is row `r`, column `c`.
    pub values: Vec<f64>,
}

impl Matrix {
    /// A matrix whose `values` length is checked against its shape.
    pub fn new(rows: usize, cols: usize, values: Vec<f64>) -> Result<Self> {
        let expected = rows.checked_mul(cols).ok_or_else(|| {
            invalid(
                "matrix",
                format!("{rows} rows × {cols} columns overflows usize"),
            )
        })?;
        if values.len() != expected {
            return Err(invalid(
                "matrix",
                format!(
                    "{rows} rows × {cols} columns needs {expected} values, got {}",
                    values.len()
                ),
            ));
        }
        Ok(Matrix { rows, cols, values })
    }

    /// Row `r` (panics if out of range: an internal invariant).
    pub fn row(&self, r: usize) -> &[f64] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }

    /// The value at row `r`, column `c`.
    pub fn get(&self, r: usize, c: usize) -> f64 {
        self.values[r * self.cols + c]
    }

    /// Fails unless `values.len() == rows * cols`: the fields are public, so
    /// a hand-built matrix is checked before it is indexed.
    pub(crate) fn check_shape(&self, name: &str) -> Result<()> {
        if self.rows.checked_mul(self.cols) != Some(self.values.len()) {
            return Err(invalid(
                name,
                format!(
                    "{} rows × {} columns does not match {} values",
                    self.rows,
                    self.cols,
                    self.values.len()
                ),
            ));
        }
        Ok(())
    }

    /// Fails if a column index is not below `cols`.
    pub(crate) fn check_columns(&self, name: &str, columns: &[usize]) -> Result<()> {
        if let Some(&c) = columns.iter().find(|&&c| c >= self.cols) {
            return Err(invalid(
                name,
                format!(
                    "column {c} does not exist; the matrix has {} columns",
                    self.cols
                ),
            ));
        }
        Ok(())
    }

    /// The population standard deviation of every column over its non-NaN
    /// values (0 for a column with fewer than one finite value), in one
    /// pass by Welford's update.
    pub fn column_std(&self) -> Vec<f64> {
        let mut n = vec![0u64; self.cols];
        let mut mean = vec![0.0; self.cols];
        let mut m2 = vec![0.0; self.cols];
        for row in self.values.chunks_exact(self.cols.max(1)) {
            for (c, &x) in row.iter().enumerate() {
                if !x.is_finite() {
                    continue;
                }
                n[c] += 1;
                let d = x - mean[c];
                mean[c] += d / n[c] as f64;
                m2[c] += d * (x - mean[c]);
            }
        }
        (0..self.cols)
            .map(|c| {
                if n[c] == 0 {
                    0.0
                } else {
                    (m2[c] / n[c] as f64).sqrt()
                }
            })
            .collect()
    }
}

/// What the model answered for a batch: one label per row and, when the
/// model has them, one score per row — the positive-class probability of a
/// binary classifier or the output of a regressor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Predictions {
    pub labels: Vec<i64>,
    pub scores: Option<Vec<f64>>,
}

/// The model under test: answers a batch, or refuses it with an error.
pub type Predict<'a> = dyn FnMut(&Matrix) -> Result<Predictions> + 'a;

/// Calls the model and checks it answered one label (and score) per row.
pub(crate) fn call(predict: &mut Predict<'_>, batch: &Matrix) -> Result<Predictions> {
    let out = predict(batch)?;
    if out.labels.len() != batch.rows {
        return Err(QualityError::LengthMismatch {
            a: "the batch".into(),
            len_a: batch.rows,
            b: "the model's labels".into(),
            len_b: out.labels.len(),
        });
    }
    if let Some(s) = &out.scores
        && s.len() != batch.rows
    {
        return Err(QualityError::LengthMismatch {
            a: "the batch".into(),
            len_a: batch.rows,
            b: "the model's scores".into(),
            len_b: s.len(),
        });
    }
    Ok(out)
}

/// The scores of a model answer, or an error saying the check needs them.
pub(crate) fn scores<'p>(p: &'p Predictions, check: &str) -> Result<&'p [f64]> {
    p.scores
        .as_deref()
        .ok_or_else(|| invalid(check, "the model returned no scores; this check needs them"))
}

/// A rate in `[0, 1]`, or an error naming it.
pub(crate) fn rate(name: &str, value: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&value) {
        return Err(crate::bad_probability(name, 0, value));
    }
    Ok(value)
}

#[cfg(test)]
pub(crate) mod toy {
    //! A toy model for the tests: a logistic score on column 0.
    use super::{Matrix, Predictions};
    use crate::Result;

    /// `p = σ(x₀)`, label `p ≥ 0.5`; NaN in column 0 counts as 0.
    pub fn logistic(m: &Matrix) -> Result<Predictions> {
        let mut labels = Vec::with_capacity(m.rows);
        let mut scores = Vec::with_capacity(m.rows);
        for r in 0..m.rows {
            let x = m.get(r, 0);
            let x = if x.is_nan() { 0.0 } else { x };
            let p = 1.0 / (1.0 + (-x).exp());
            labels.push(i64::from(p >= 0.5));
            scores.push(p);
        }
        Ok(Predictions {
            labels,
            scores: Some(scores),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_shape_is_checked() {
        assert!(Matrix::new(2, 3, vec![0.0; 6]).is_ok());
        assert!(Matrix::new(2, 3, vec![0.0; 5]).is_err());
        let m = Matrix {
            rows: 2,
            cols: 2,
            values: vec![1.0],
        };
        assert!(m.check_shape("m").is_err());
        assert!(m.check_columns("m", &[2]).is_err());
    }

    #[test]
    fn column_std_skips_missing_values() {
        let m = Matrix::new(4, 2, vec![1.0, 5.0, 3.0, f64::NAN, 1.0, 5.0, 3.0, 5.0]).unwrap();
        let s = m.column_std();
        assert!((s[0] - 1.0).abs() < 1e-12);
        assert_eq!(s[1], 0.0);
        assert_eq!(m.row(1)[0], 3.0);
    }

    #[test]
    fn call_checks_the_answer_length() {
        let m = Matrix::new(2, 1, vec![0.0, 1.0]).unwrap();
        let mut short = |_: &Matrix| {
            Ok(Predictions {
                labels: vec![0],
                scores: None,
            })
        };
        assert!(call(&mut short, &m).is_err());
        let out = call(&mut toy::logistic, &m).unwrap();
        assert_eq!(out.labels, [1, 1]);
        assert!(scores(&out, "x").is_ok());
        assert!(rate("r", 1.5).is_err());
    }
}
