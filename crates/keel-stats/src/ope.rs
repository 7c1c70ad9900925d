//! Off-policy evaluation: estimate how a *target* policy π would have done
//! from bandit data logged under another (*logging*) policy μ.
//!
//! Each [`LoggedRecord`] is one logged decision: the action `a` that μ took
//! in context `x` with propensity `μ(a|x) > 0`, the observed reward `r`,
//! and the target policy's probability `π(a|x)` of that same action. The
//! importance weight is `w = π(a|x) / μ(a|x)`.
//!
//! * [`ips`] — inverse propensity scoring (Horvitz & Thompson 1952):
//!   `V̂ = (1/n) Σ wᵢ rᵢ`. Unbiased when μ > 0 wherever π > 0, but its
//!   variance grows with the weights.
//! * [`snips`] — self-normalised IPS (Swaminathan & Joachims 2015):
//!   `V̂ = Σ wᵢ rᵢ / Σ wᵢ`. Slightly biased, consistent, much more stable
//!   when weights are large; invariant to adding a constant to rewards.
//! * [`doubly_robust`] — (Dudík, Langford & Li 2011):
//!   `V̂ = (1/n) Σ [v̂(xᵢ) + wᵢ (rᵢ − q̂(xᵢ, aᵢ))]` with a reward model `q̂`
//!   and `v̂(x) = Σ_a π(a|x) q̂(x, a)`. Unbiased if either the propensities
//!   or the reward model are right, and lower-variance than IPS when `q̂`
//!   is good.
//!
//! Each returns an [`OpeEstimate`] with a standard error and a normal 95%
//! interval. IPS and DR use the sample standard deviation of their
//! per-record terms over `√n`; SNIPS the delta-method
//! `√(Σ wᵢ² (rᵢ − V̂)²) / Σ wᵢ`.
//!
//! **Weight clipping.** With `max_weight = Some(M)` every weight is
//! replaced by `min(w, M)` before estimating (Ionides 2008; Bottou et al.
//! 2013). This trades a downward bias (for nonnegative rewards) for bounded
//! variance; the estimate is then of a "clipped" value and its interval
//! no longer covers the true value exactly. `clipped` reports how many
//! records were affected. Use it when the effective sample size is a small
//! fraction of `n`.

use crate::{Result, StatsError, finite, positive};
use serde::Serialize;

/// The normal 97.5% quantile, for 95% intervals.
const Z_95: f64 = 1.959_963_984_540_054;

/// One logged bandit decision (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoggedRecord {
    /// The action the logging policy took (kept for bookkeeping; the
    /// estimators only need the probabilities below).
    pub action: usize,
    /// `μ(a|x)`: the logging policy's probability of `action`, in (0, 1].
    pub propensity: f64,
    /// The observed reward.
    pub reward: f64,
    /// `π(a|x)`: the target policy's probability of `action`, in [0, 1].
    pub target_prob: f64,
    /// For doubly robust only: the reward model's prediction `q̂(x, a)` for
    /// the logged action.
    pub predicted_reward: Option<f64>,
    /// For doubly robust only: `v̂(x) = Σ_a π(a|x) q̂(x, a)`, the model's
    /// value of the target policy in this context.
    pub predicted_value: Option<f64>,
}

/// Which estimator produced an [`OpeEstimate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpeEstimator {
    Ips,
    Snips,
    DoublyRobust,
}

/// An off-policy value estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpeEstimate {
    pub estimator: OpeEstimator,
    /// The estimated value of the target policy (mean reward per decision).
    pub value: f64,
    pub standard_error: f64,
    /// `value − 1.96 · standard_error`.
    pub ci_low: f64,
    /// `value + 1.96 · standard_error`.
    pub ci_high: f64,
    /// Number of records.
    pub n: usize,
    /// Mean importance weight (after clipping); ≈ 1 when the propensities
    /// are right and nothing is clipped — far from 1 is a warning sign.
    pub mean_weight: f64,
    /// Kish's effective sample size `(Σw)² / Σw²` (after clipping).
    pub effective_sample_size: f64,
    /// How many weights `max_weight` clipped.
    pub clipped: usize,
}

fn record_weights(records: &[LoggedRecord], max_weight: Option<f64>) -> Result<(Vec<f64>, usize)> {
    if records.is_empty() {
        return Err(StatsError::Empty {
            name: "records".into(),
        });
    }
    if records.len() < 2 {
        return Err(StatsError::TooFew {
            name: "records".into(),
            min: 2,
            got: 1,
        });
    }
    if let Some(m) = max_weight {
        positive("max_weight", m)?;
    }
    let mut clipped = 0;
    let mut weights = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let p = r.propensity;
        if p.is_nan() || p <= 0.0 || p > 1.0 {
            return Err(StatsError::OutOfRange {
                name: format!("records[{i}].propensity"),
                value: p,
                range: "(0, 1]",
            });
        }
        let t = r.target_prob;
        if t.is_nan() || !(0.0..=1.0).contains(&t) {
            return Err(StatsError::OutOfRange {
                name: format!("records[{i}].target_prob"),
                value: t,
                range: "[0, 1]",
            });
        }
        finite(&format!("records[{i}].reward"), r.reward)?;
        let mut w = t / p;
        if let Some(m) = max_weight
            && w > m
        {
            w = m;
            clipped += 1;
        }
        weights.push(w);
    }
    Ok((weights, clipped))
}

fn estimate(
    estimator: OpeEstimator,
    value: f64,
    se: f64,
    weights: &[f64],
    clipped: usize,
) -> OpeEstimate {
    let sw: f64 = weights.iter().sum();
    let sw2: f64 = weights.iter().map(|w| w * w).sum();
    OpeEstimate {
        estimator,
        value,
        standard_error: se,
        ci_low: value - Z_95 * se,
        ci_high: value + Z_95 * se,
        n: weights.len(),
        mean_weight: sw / weights.len() as f64,
        effective_sample_size: if sw2 > 0.0 { sw * sw / sw2 } else { 0.0 },
        clipped,
    }
}

/// Mean and standard error (`sd / √n`, `n − 1` denominator) of terms.
fn mean_se(terms: &[f64]) -> (f64, f64) {
    let (m, v) = crate::mean_var(terms);
    (m, (v / terms.len() as f64).sqrt())
}

/// The inverse-propensity-scoring estimate `(1/n) Σ wᵢ rᵢ` (see the
/// [module docs](self); `max_weight` clips weights).
pub fn ips(records: &[LoggedRecord], max_weight: Option<f64>) -> Result<OpeEstimate> {
    let (w, clipped) = record_weights(records, max_weight)?;
    let terms: Vec<f64> = records.iter().zip(&w).map(|(r, w)| w * r.reward).collect();
    let (v, se) = mean_se(&terms);
    Ok(estimate(OpeEstimator::Ips, v, se, &w, clipped))
}

/// The self-normalised IPS estimate `Σ wᵢ rᵢ / Σ wᵢ` with the delta-method
/// standard error `√(Σ wᵢ² (rᵢ − V̂)²) / Σ wᵢ`. All weights 0 (the target
/// never takes a logged action) is an error.
pub fn snips(records: &[LoggedRecord], max_weight: Option<f64>) -> Result<OpeEstimate> {
    let (w, clipped) = record_weights(records, max_weight)?;
    let sw: f64 = w.iter().sum();
    if sw <= 0.0 {
        return Err(StatsError::Invalid {
            name: "records".into(),
            reason: "every importance weight is 0: the target policy never takes a logged action"
                .into(),
        });
    }
    let v = records
        .iter()
        .zip(&w)
        .map(|(r, w)| w * r.reward)
        .sum::<f64>()
        / sw;
    let num: f64 = records
        .iter()
        .zip(&w)
        .map(|(r, w)| {
            let d = w * (r.reward - v);
            d * d
        })
        .sum();
    Ok(estimate(
        OpeEstimator::Snips,
        v,
        num.sqrt() / sw,
        &w,
        clipped,
    ))
}

/// The doubly robust estimate `(1/n) Σ [v̂ᵢ + wᵢ (rᵢ − q̂ᵢ)]`; every record
/// needs `predicted_reward` and `predicted_value` (see the
/// [module docs](self)).
pub fn doubly_robust(records: &[LoggedRecord], max_weight: Option<f64>) -> Result<OpeEstimate> {
    let (w, clipped) = record_weights(records, max_weight)?;
    let mut terms = Vec::with_capacity(records.len());
    for (i, (r, w)) in records.iter().zip(&w).enumerate() {
        let q = r.predicted_reward.ok_or_else(|| StatsError::Invalid {
            name: format!("records[{i}].predicted_reward"),
            reason: "doubly robust needs the reward model's prediction".into(),
        })?;
        let v = r.predicted_value.ok_or_else(|| StatsError::Invalid {
            name: format!("records[{i}].predicted_value"),
            reason: "doubly robust needs the reward model's value of the target policy".into(),
        })?;
        finite(&format!("records[{i}].predicted_reward"), q)?;
        finite(&format!("records[{i}].predicted_value"), v)?;
        terms.push(v + w * (r.reward - q));
    }
    let (v, se) = mean_se(&terms);
    Ok(estimate(OpeEstimator::DoublyRobust, v, se, &w, clipped))
}
