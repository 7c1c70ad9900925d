//! Regression metrics, as scikit-learn 1.9 defines them, all from one pass
//! over `(y_true, y_pred)`. Every value must be finite.

use serde::{Deserialize, Serialize};

use crate::{Result, Sum, not_finite, paired};

/// MAPE's floor on `|y_true|`: scikit-learn's `np.finfo(np.float64).eps`,
/// so a zero target with a non-zero error gives a huge but finite term.
pub const MAPE_EPS: f64 = f64::EPSILON;

/// The four regression metrics of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Root mean squared error (`root_mean_squared_error`).
    pub rmse: f64,
    /// Mean absolute error (`mean_absolute_error`).
    pub mae: f64,
    /// Coefficient of determination (`r2_score`), see [`r2`].
    pub r2: f64,
    /// Mean absolute percentage error as a fraction, not a percentage
    /// (`mean_absolute_percentage_error`), see [`mape`].
    pub mape: f64,
}

/// RMSE, MAE, R² and MAPE in one pass (Welford's update for the variance of
/// `y_true`, compensated sums for the rest).
pub fn regression_metrics(y_true: &[f64], y_pred: &[f64]) -> Result<RegressionMetrics> {
    let n = paired("y_true", y_true.len(), "y_pred", y_pred.len())?;
    let (mut squared, mut absolute, mut percentage) =
        (Sum::default(), Sum::default(), Sum::default());
    // Welford's update on `y_true − y_true[0]`: the shift keeps a large
    // common offset (1e6 ± 3) out of the running mean.
    let shift = y_true[0];
    let (mut mean, mut m2) = (0.0, 0.0);
    for (i, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
        if !t.is_finite() {
            return Err(not_finite("y_true", i, t));
        }
        if !p.is_finite() {
            return Err(not_finite("y_pred", i, p));
        }
        let e = t - p;
        squared.add(e * e);
        absolute.add(e.abs());
        percentage.add(e.abs() / t.abs().max(MAPE_EPS));
        let x = t - shift;
        let d = x - mean;
        mean += d / (i as f64 + 1.0);
        m2 += d * (x - mean);
    }
    let n = n as f64;
    let residual = squared.value();
    let r2 = if m2 == 0.0 {
        if residual == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - residual / m2
    };
    Ok(RegressionMetrics {
        rmse: (residual / n).sqrt(),
        mae: absolute.value() / n,
        r2,
        mape: percentage.value() / n,
    })
}

/// Root mean squared error, `√(Σ(y − ŷ)²/n)`.
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    Ok(regression_metrics(y_true, y_pred)?.rmse)
}

/// Mean absolute error, `Σ|y − ŷ|/n`.
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    Ok(regression_metrics(y_true, y_pred)?.mae)
}

/// R², `1 − Σ(y − ŷ)² / Σ(y − ȳ)²`, as scikit-learn's `r2_score` with its
/// default `force_finite=True`: when `y_true` is constant the ratio is
/// undefined and R² is 1 for a perfect prediction, 0 otherwise. (The
/// variance here is Welford's, exactly 0 for a constant column; scikit-learn
/// subtracts a mean that can be one ulp off, so for a constant such as 0.1
/// it returns ≈ −1e31 instead of its documented 0.)
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    Ok(regression_metrics(y_true, y_pred)?.r2)
}

/// Mean absolute percentage error, `Σ |y − ŷ| / max(|y|, ε) / n` with
/// ε = [`MAPE_EPS`], as scikit-learn's `mean_absolute_percentage_error`: a
/// fraction (0.1 is 10 %), huge wherever `y_true` is 0 and the prediction
/// is not.
pub fn mape(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    Ok(regression_metrics(y_true, y_pred)?.mape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QualityError;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // scikit-learn's docstring examples.
        let t = [3.0, -0.5, 2.0, 7.0];
        let p = [2.5, 0.0, 2.0, 8.0];
        let m = regression_metrics(&t, &p).unwrap();
        assert!((m.mae - 0.5).abs() < 1e-15);
        assert!((m.rmse - 0.6123724356957945).abs() < 1e-15);
        assert!((m.r2 - 0.9486081370449679).abs() < 1e-15);
        assert!((m.mape - 0.3273809523809524).abs() < 1e-15);
        assert_eq!(r2(&[0.1; 3], &[0.1; 3]).unwrap(), 1.0);
        assert_eq!(r2(&[0.1; 3], &[0.1, 0.2, 0.1]).unwrap(), 0.0);
        assert!(mape(&[0.0], &[1.0]).unwrap() > 1e15);
        assert_eq!(mape(&[0.0], &[0.0]).unwrap(), 0.0);
    }

    #[test]
    fn bad_input_is_named() {
        let e = rmse(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap_err();
        assert!(matches!(&e, QualityError::NotFinite { name, index: 1, .. } if name == "y_true"));
        let e = rmse(&[1.0, 2.0], &[1.0, f64::INFINITY]).unwrap_err();
        assert!(matches!(&e, QualityError::NotFinite { name, index: 1, .. } if name == "y_pred"));
        assert!(matches!(mae(&[], &[]), Err(QualityError::Empty { .. })));
        assert!(matches!(
            mae(&[1.0], &[1.0, 2.0]),
            Err(QualityError::LengthMismatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn metrics_are_consistent(
            rows in proptest::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 1..200),
        ) {
            let (t, p): (Vec<f64>, Vec<f64>) = rows.into_iter().unzip();
            let m = regression_metrics(&t, &p).unwrap();
            prop_assert!(m.rmse >= m.mae * (1.0 - 1e-12));
            prop_assert!(m.r2 <= 1.0);
            prop_assert!(m.mape >= 0.0);
            let perfect = regression_metrics(&t, &t).unwrap();
            prop_assert_eq!(perfect.rmse, 0.0);
            prop_assert_eq!(perfect.r2, 1.0);
            // The mean as prediction has R² = 0 (up to rounding).
            let mean = t.iter().sum::<f64>() / t.len() as f64;
            let flat = vec![mean; t.len()];
            let r2_mean = regression_metrics(&t, &flat).unwrap().r2;
            prop_assert!(r2_mean.abs() < 1e-9 || t.iter().all(|&x| x == t[0]), "{}", r2_mean);
        }
    }
}
