//! The statistics of a deployment: per-variant means with confidence
//! intervals, each variant against a control (a fixed-horizon test and an
//! always-valid mSPRT p-value), the sample-ratio-mismatch check for fixed
//! splits, and the Bayesian probability of each variant to be best.
//!
//! Rewards that are all 0 or 1 are conversions: Wilson intervals, the
//! two-proportion z-test and Beta–Bernoulli posteriors. Anything else is a
//! continuous metric: t intervals, Welch's t-test and normal posteriors.
//! A part that cannot be computed yet (too few rewards, no variance) says
//! why in its place instead of failing the whole analysis.

use keel_stats::hypothesis::{self, GroupSummary};
use keel_stats::special::t_ppf;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ExperimentError;
use crate::policy::ArmStats;
use crate::strategy::{DeploymentSpec, Strategy};

/// Query of `GET /v1/deployments/{name}/analysis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisOptions {
    /// The variant the others are compared with (default: the first).
    #[serde(default)]
    pub control: Option<String>,
    /// Confidence level of the intervals (default 0.95); the tests'
    /// significance level is one minus it.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Mixing variance τ² of the mSPRT: the squared scale of the effects
    /// worth detecting (default: 1% of the pooled reward variance, i.e.
    /// effects around a tenth of a standard deviation).
    #[serde(default)]
    pub tau2: Option<f64>,
    /// Monte-Carlo draws for the Bayesian comparison (default 20,000).
    #[serde(default = "default_draws")]
    pub draws: usize,
    /// Analyse one segment's policy only (deployments with `per_segment`).
    #[serde(default)]
    pub segment: Option<String>,
    /// Also compare the variants on CUPED-adjusted rewards, from the
    /// decisions logged with a pre-period `covariate`.
    #[serde(default)]
    pub cuped: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            control: None,
            confidence: default_confidence(),
            tau2: None,
            draws: default_draws(),
            segment: None,
            cuped: false,
        }
    }
}

fn default_confidence() -> f64 {
    0.95
}
fn default_draws() -> usize {
    20_000
}

fn invalid(field: &str, reason: String) -> ExperimentError {
    ExperimentError::Invalid {
        field: field.to_string(),
        reason,
    }
}

/// The index of the control variant (the first unless named).
fn control_index(
    spec: &DeploymentSpec,
    options: &AnalysisOptions,
) -> Result<usize, ExperimentError> {
    match &options.control {
        None => Ok(0),
        Some(name) => spec
            .variants
            .iter()
            .position(|v| &v.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = spec.variants.iter().map(|v| v.name.as_str()).collect();
                invalid(
                    "control",
                    format!("no variant {name:?}; the variants are {}", names.join(", ")),
                )
            }),
    }
}

fn summary(a: &ArmStats) -> GroupSummary {
    GroupSummary {
        n: a.rewards as f64,
        mean: a.mean().unwrap_or(0.0),
        variance: a.variance().unwrap_or(0.0),
    }
}

fn successes(a: &ArmStats) -> u64 {
    a.reward_sum.round().max(0.0) as u64
}

/// The analysis of `arms` (one per variant of `spec`).
pub fn analyse(
    spec: &DeploymentSpec,
    arms: &[ArmStats],
    options: &AnalysisOptions,
) -> Result<Value, ExperimentError> {
    let confidence = options.confidence;
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(invalid(
            "confidence",
            format!("{confidence} is not within (0, 1)"),
        ));
    }
    if !(1..=1_000_000).contains(&options.draws) {
        return Err(invalid(
            "draws",
            format!("{} is not within 1..=1000000", options.draws),
        ));
    }
    if let Some(t) = options.tau2
        && !(t.is_finite() && t > 0.0)
    {
        return Err(invalid("tau2", format!("{t} is not a positive number")));
    }
    let control = control_index(spec, options)?;
    let binary = arms.iter().all(|a| a.non_binary == 0);
    let variants: Vec<Value> = spec
        .variants
        .iter()
        .zip(arms)
        .map(|(v, a)| {
            let interval = if binary {
                hypothesis::proportion_ci(successes(a), a.rewards, confidence)
                    .map(|p| json!([p.interval.low, p.interval.high]))
            } else {
                mean_interval(a, confidence)
            };
            json!({
                "name": v.name,
                "decisions": a.decisions,
                "rewards": a.rewards,
                "mean": a.mean(),
                "variance": a.variance(),
                "interval": interval.unwrap_or_else(|e| json!({ "unavailable": e.to_string() })),
            })
        })
        .collect();
    let tau2 = options.tau2.unwrap_or_else(|| default_tau2(arms));
    let alpha = 1.0 - confidence;
    let c = &arms[control];
    let comparisons: Vec<Value> = arms
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != control)
        .map(|(i, a)| {
            let mut out =
                json!({ "variant": spec.variants[i].name, "control": spec.variants[control].name });
            let fixed = if binary {
                hypothesis::two_proportion_ztest(
                    successes(a),
                    a.rewards,
                    successes(c),
                    c.rewards,
                    confidence,
                )
                .map(|t| {
                    json!({
                        "test": "two_proportion_ztest",
                        "difference": t.difference,
                        "interval": [t.interval.low, t.interval.high],
                        "statistic": t.z,
                        "p_value": t.p_value,
                        "significant": t.p_value < alpha,
                    })
                })
            } else {
                hypothesis::welch_ttest(&summary(a), &summary(c), confidence).map(|t| {
                    json!({
                        "test": "welch_ttest",
                        "difference": t.difference,
                        "interval": [t.interval.low, t.interval.high],
                        "statistic": t.t,
                        "df": t.df,
                        "p_value": t.p_value,
                        "significant": t.p_value < alpha,
                    })
                })
            };
            match fixed {
                Ok(v) => out["fixed_horizon"] = v,
                Err(e) => out["fixed_horizon"] = json!({ "unavailable": e.to_string() }),
            }
            out["sequential"] = sequential(a, c, binary, tau2, alpha);
            out
        })
        .collect();
    let mut result = json!({
        "deployment": spec.name,
        "strategy": spec.strategy.kind(),
        "reward_kind": if binary { "conversion" } else { "continuous" },
        "confidence": confidence,
        "control": spec.variants[control].name,
        "variants": variants,
        "comparisons": comparisons,
        "bayesian": bayesian(arms, binary, options.draws),
    });
    if let Some(s) = &options.segment {
        result["segment"] = json!(s);
    }
    if let Some(weights) = expected_split(spec) {
        let observed: Vec<u64> = arms.iter().map(|a| a.decisions).collect();
        result["sample_ratio"] = match hypothesis::srm_check(&observed, &weights) {
            Ok(s) => json!({
                "observed": observed,
                "expected": s.expected_counts,
                "statistic": s.statistic,
                "df": s.df,
                "p_value": s.p_value,
                // The usual threshold: a mismatch this unlikely means the
                // assignment, not the variants, is broken.
                "mismatch": s.p_value < 0.001,
            }),
            Err(e) => json!({ "unavailable": e.to_string() }),
        };
    }
    Ok(result)
}

/// The CUPED comparison of every variant with the control on rewarded
/// decisions `(arm, reward, covariate)`: one θ from all of them pooled,
/// each variant's adjusted mean and variance reduction, and Welch's test
/// on the adjusted rewards.
pub fn cuped(
    spec: &DeploymentSpec,
    rows: impl Iterator<Item = (usize, f64, f64)>,
    options: &AnalysisOptions,
) -> Result<Value, ExperimentError> {
    let control = control_index(spec, options)?;
    let k = spec.variants.len();
    let mut y: Vec<Vec<f64>> = vec![Vec::new(); k];
    let mut x: Vec<Vec<f64>> = vec![Vec::new(); k];
    for (arm, reward, covariate) in rows {
        if arm < k {
            y[arm].push(reward);
            x[arm].push(covariate);
        }
    }
    // The control first, then the others in their order.
    let order: Vec<usize> = std::iter::once(control)
        .chain((0..k).filter(|i| *i != control))
        .collect();
    let groups: Vec<(&[f64], &[f64])> = order
        .iter()
        .map(|i| (y[*i].as_slice(), x[*i].as_slice()))
        .collect();
    let rows: usize = y.iter().map(Vec::len).sum();
    Ok(
        match hypothesis::cuped_compare(&groups, options.confidence) {
            Ok(c) => {
                let alpha = 1.0 - options.confidence;
                json!({
                    "rows": rows,
                    "theta": c.theta,
                    "covariate_mean": c.covariate_mean,
                    "variants": order.iter().zip(&c.groups).zip(&c.variance_reduction).map(|((i, g), r)| json!({
                        "name": spec.variants[*i].name,
                        "rewards": g.n,
                        "adjusted_mean": g.mean,
                        "adjusted_variance": g.variance,
                        "variance_reduction": r,
                    })).collect::<Vec<_>>(),
                    "comparisons": order[1..].iter().zip(&c.comparisons).map(|(i, t)| json!({
                        "variant": spec.variants[*i].name,
                        "control": spec.variants[control].name,
                        "test": "welch_ttest",
                        "difference": t.difference,
                        "interval": [t.interval.low, t.interval.high],
                        "statistic": t.t,
                        "df": t.df,
                        "p_value": t.p_value,
                        "significant": t.p_value < alpha,
                    })).collect::<Vec<_>>(),
                })
            }
            Err(e) => json!({
                "rows": rows,
                "unavailable": format!("{e}; send each decision's pre-period \"covariate\" with /decide"),
            }),
        },
    )
}

/// t interval of a variant's mean reward.
fn mean_interval(a: &ArmStats, confidence: f64) -> Result<Value, keel_stats::StatsError> {
    let n = a.rewards as f64;
    let (Some(mean), Some(variance)) = (a.mean(), a.variance()) else {
        return Err(keel_stats::StatsError::TooFew {
            name: "rewards".into(),
            min: 2,
            got: a.rewards as usize,
        });
    };
    let half = t_ppf(0.5 + confidence / 2.0, n - 1.0)? * (variance / n).sqrt();
    Ok(json!([mean - half, mean + half]))
}

/// The always-valid p-value of the normal-mixture mSPRT at the current
/// sample sizes: min(1, 1/Λ). (The running minimum over every earlier peek
/// would be smaller still; this one is valid whenever it is read.)
fn sequential(a: &ArmStats, c: &ArmStats, binary: bool, tau2: f64, alpha: f64) -> Value {
    match msprt(a, c, binary, tau2) {
        Ok((lr, p)) => {
            json!({
                "test": "msprt",
                "tau2": tau2,
                "likelihood_ratio": if lr.is_finite() { json!(lr) } else { json!("Infinity") },
                "always_valid_p_value": p,
                "significant": p < alpha,
            })
        }
        Err(e) => json!({ "unavailable": e }),
    }
}

/// The mSPRT's default mixing variance: 1% of the pooled reward variance.
pub(crate) fn default_tau2(arms: &[ArmStats]) -> f64 {
    let (n, sum, sum_sq) = arms.iter().fold((0.0, 0.0, 0.0), |acc, a| {
        (
            acc.0 + a.rewards as f64,
            acc.1 + a.reward_sum,
            acc.2 + a.reward_sum_sq,
        )
    });
    let pooled_variance = if n > 1.0 {
        ((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0)
    } else {
        0.0
    };
    0.01 * pooled_variance
}

/// The mSPRT likelihood ratio of `a` against the control `c` at their
/// current sample sizes, and the always-valid p-value min(1, 1/Λ).
pub(crate) fn msprt(
    a: &ArmStats,
    c: &ArmStats,
    binary: bool,
    tau2: f64,
) -> Result<(f64, f64), String> {
    let variance = |x: &ArmStats| -> Option<f64> {
        if binary {
            let p = x.mean()?;
            Some(p * (1.0 - p))
        } else {
            x.variance()
        }
    };
    let (Some(ma), Some(mc), Some(va), Some(vc)) = (a.mean(), c.mean(), variance(a), variance(c))
    else {
        return Err("both variants need rewards (two for a continuous metric)".into());
    };
    let lr = hypothesis::msprt_likelihood_ratio(
        ma - mc,
        a.rewards as f64,
        c.rewards as f64,
        va,
        vc,
        tau2,
    )
    .map_err(|e| e.to_string())?;
    Ok((lr, if lr > 0.0 { (1.0 / lr).min(1.0) } else { 1.0 }))
}

/// Each variant's posterior probability to be best (Beta–Bernoulli for
/// conversions, normal otherwise), from `draws` draws of a fixed seed.
pub(crate) fn prob_best(arms: &[ArmStats], draws: usize) -> Result<Vec<f64>, String> {
    let binary = arms.iter().all(|a| a.non_binary == 0);
    let best = if binary {
        let counts: Vec<(u64, u64)> = arms.iter().map(|a| (successes(a), a.rewards)).collect();
        hypothesis::beta_bernoulli_best(&counts, (1.0, 1.0), draws, 0)
    } else {
        let summaries: Vec<GroupSummary> = arms.iter().map(summary).collect();
        hypothesis::gaussian_best(&summaries, draws, 0)
    };
    best.map(|b| b.arms.iter().map(|a| a.prob_best).collect())
        .map_err(|e| e.to_string())
}

fn bayesian(arms: &[ArmStats], binary: bool, draws: usize) -> Value {
    let best = if binary {
        let counts: Vec<(u64, u64)> = arms.iter().map(|a| (successes(a), a.rewards)).collect();
        hypothesis::beta_bernoulli_best(&counts, (1.0, 1.0), draws, 0)
    } else {
        let summaries: Vec<GroupSummary> = arms.iter().map(summary).collect();
        hypothesis::gaussian_best(&summaries, draws, 0)
    };
    match best {
        Ok(b) => json!({
            "model": if binary { "beta_bernoulli (prior Beta(1, 1))" } else { "normal" },
            "draws": b.draws,
            "prob_best": b.arms.iter().map(|a| a.prob_best).collect::<Vec<_>>(),
            "expected_loss": b.arms.iter().map(|a| a.expected_loss).collect::<Vec<_>>(),
        }),
        Err(e) => json!({ "unavailable": e.to_string() }),
    }
}

/// The split a strategy promises, for the sample-ratio check.
fn expected_split(spec: &DeploymentSpec) -> Option<Vec<f64>> {
    match &spec.strategy {
        Strategy::Ab => Some(
            spec.variants
                .iter()
                .map(|v| v.weight.unwrap_or(1.0))
                .collect(),
        ),
        Strategy::Canary { steps, step } => {
            let share = steps.get(*step)? / 100.0;
            Some(vec![1.0 - share, share])
        }
        _ => None,
    }
}
