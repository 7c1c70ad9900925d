//! `keel-stats` is the statistics behind Keel's online experiments and
//! off-policy evaluation, with no dependencies beyond `serde` and
//! `thiserror`:
//!
//! * [`special`] — the special functions the tests stand on: log-gamma,
//!   regularized incomplete beta and gamma, `erf`/`erfc` to ~1e-15, and the
//!   normal, Student t and chi-square distributions (cdf, sf, quantiles);
//! * [`rng`] — a small, seeded, serialisable PRNG (xoshiro256\*\* seeded by
//!   SplitMix64) with normal, gamma and beta draws, for Monte Carlo and
//!   Thompson sampling;
//! * [`hypothesis`] — A/B test statistics: Wilson intervals, the two-
//!   proportion z-test, Welch's t-test, the sample-ratio-mismatch check,
//!   always-valid p-values (mSPRT), CUPED variance reduction, and Bayesian
//!   probability-to-be-best;
//! * [`ope`] — off-policy evaluation of a target policy from logged bandit
//!   data: IPS, self-normalised IPS and doubly robust estimates;
//! * [`twosample`] — two-sample distribution statistics for drift
//!   monitoring: Kolmogorov–Smirnov, Wasserstein, energy distance,
//!   Anderson–Darling, Cramér–von Mises, chi-square tests, Jensen–Shannon,
//!   and Evidently's PSI, KL divergence, Hellinger distance and z-test, on
//!   pre-sorted columns in `O(n)`.
//!
//! Every function validates its input and returns a [`StatsError`] naming
//! the offending argument instead of panicking; results are plain
//! `Serialize` structs. The frequentist functions are cross-checked against
//! scipy and statsmodels, and Evidently's drift scores against their
//! definitions evaluated with numpy (`tests/reference.py`,
//! `tests/reference.json`).
//!
//! Conventions: a "difference" between two groups is always `a − b` (first
//! argument minus second), as in `scipy.stats.ttest_ind(a, b)` and
//! `statsmodels`' `proportions_ztest`; variances of samples use the `n − 1`
//! denominator; two-sided p-values throughout.

pub mod hypothesis;
pub mod ope;
pub mod rng;
pub mod special;
pub mod twosample;

pub use rng::Rng;

/// What the statistics functions fail with: always bad input, named.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// An input sample or list was empty.
    #[error("{name} is empty")]
    Empty { name: String },
    /// An input had fewer values than the computation needs.
    #[error("{name} needs at least {min} values, got {got}")]
    TooFew {
        name: String,
        min: usize,
        got: usize,
    },
    /// Two inputs that must pair up have different lengths.
    #[error("{a} has {len_a} values but {b} has {len_b}; they must have the same length")]
    LengthMismatch {
        a: String,
        len_a: usize,
        b: String,
        len_b: usize,
    },
    /// A number was NaN or infinite.
    #[error("{name} must be finite, got {value}")]
    NotFinite { name: String, value: f64 },
    /// A number was outside the range the argument allows.
    #[error("{name} must be in {range}, got {value}")]
    OutOfRange {
        name: String,
        value: f64,
        range: &'static str,
    },
    /// Anything else wrong with an argument.
    #[error("{name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, StatsError>;

pub(crate) fn finite(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(StatsError::NotFinite {
            name: name.to_string(),
            value,
        })
    }
}

/// `value` finite and `> 0`.
pub(crate) fn positive(name: &str, value: f64) -> Result<f64> {
    finite(name, value)?;
    if value > 0.0 {
        Ok(value)
    } else {
        Err(StatsError::OutOfRange {
            name: name.to_string(),
            value,
            range: "(0, inf)",
        })
    }
}

/// `value` finite and `>= 0`.
pub(crate) fn non_negative(name: &str, value: f64) -> Result<f64> {
    finite(name, value)?;
    if value >= 0.0 {
        Ok(value)
    } else {
        Err(StatsError::OutOfRange {
            name: name.to_string(),
            value,
            range: "[0, inf)",
        })
    }
}

/// A probability in the closed interval `[0, 1]`.
pub(crate) fn probability(name: &str, value: f64) -> Result<f64> {
    if value.is_nan() || !(0.0..=1.0).contains(&value) {
        return Err(StatsError::OutOfRange {
            name: name.to_string(),
            value,
            range: "[0, 1]",
        });
    }
    Ok(value)
}

/// A confidence level in the open interval `(0, 1)`.
pub(crate) fn confidence_level(name: &str, value: f64) -> Result<f64> {
    if value.is_nan() || value <= 0.0 || value >= 1.0 {
        return Err(StatsError::OutOfRange {
            name: name.to_string(),
            value,
            range: "(0, 1)",
        });
    }
    Ok(value)
}

/// Every value of a sample finite, and at least `min` of them.
pub(crate) fn sample(name: &str, values: &[f64], min: usize) -> Result<()> {
    if values.is_empty() {
        return Err(StatsError::Empty {
            name: name.to_string(),
        });
    }
    if values.len() < min {
        return Err(StatsError::TooFew {
            name: name.to_string(),
            min,
            got: values.len(),
        });
    }
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(StatsError::NotFinite {
                name: format!("{name}[{i}]"),
                value: v,
            });
        }
    }
    Ok(())
}

/// Mean and `n − 1` variance of a sample (Welford's update, stable for
/// large offsets). The caller has checked `values` is non-empty.
pub(crate) fn mean_var(values: &[f64]) -> (f64, f64) {
    let mut mean = 0.0;
    let mut m2 = 0.0;
    for (i, &v) in values.iter().enumerate() {
        let d = v - mean;
        mean += d / (i as f64 + 1.0);
        m2 += d * (v - mean);
    }
    let var = if values.len() > 1 {
        m2 / (values.len() as f64 - 1.0)
    } else {
        0.0
    };
    (mean, var)
}
