//! Off-policy evaluation: how would a candidate policy have done on the
//! traffic a deployment has logged? Judges a new model or strategy before
//! it sees live traffic, from the logged decisions, their propensities and
//! rewards (IPS, self-normalised IPS, doubly robust; see `keel_stats::ope`).
//!
//! A candidate is a fixed variant, a fixed split, or a whole strategy. A
//! strategy is replayed over the log in order: at each rewarded decision
//! its action distribution at the logged context gives π(a|x), and then it
//! learns from the logged action's reward, as it would have online (it
//! never sees the rewards of actions the log did not take).
//!
//! The doubly robust estimate needs a reward model q̂(x, a): a ridge
//! regression (λ = 1, with an intercept) of reward on context per variant
//! when decisions carry contexts, else each variant's mean reward, fitted
//! on the rewarded decisions.

use std::collections::BTreeMap;

use keel_stats::ope::{self, LoggedRecord};
use keel_stats::rng::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ExperimentError;
use crate::deployments::LoggedDecision;
use crate::policy::{LinearArm, PolicyState};
use crate::strategy::{DeploymentSpec, Strategy, VariantSpec};

/// `POST /v1/deployments/{name}/evaluate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    pub candidate: Candidate,
    /// Clip importance weights at this value (bias for less variance).
    #[serde(default)]
    pub max_weight: Option<f64>,
    /// Seed for the Monte-Carlo probabilities of Thompson candidates.
    #[serde(default)]
    pub seed: u64,
}

/// The policy being judged.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Candidate {
    /// Always this variant.
    Variant { variant: String },
    /// A fixed split: variant name → weight (others get none).
    Split { weights: BTreeMap<String, f64> },
    /// A strategy, replayed over the log.
    Strategy { strategy: Strategy },
}

fn invalid(field: &str, reason: String) -> ExperimentError {
    ExperimentError::Invalid {
        field: field.to_string(),
        reason,
    }
}

fn index(spec: &DeploymentSpec, name: &str, field: &str) -> Result<usize, ExperimentError> {
    spec.variants
        .iter()
        .position(|v| v.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = spec.variants.iter().map(|v| v.name.as_str()).collect();
            invalid(
                field,
                format!("no variant {name:?}; the variants are {}", names.join(", ")),
            )
        })
}

/// The reward model of the doubly robust estimate.
enum RewardModel {
    Means(Vec<f64>),
    Linear(Vec<LinearArm>),
}

impl RewardModel {
    fn fit(k: usize, rewarded: &[(&LoggedDecision, f64)]) -> RewardModel {
        let dim = rewarded.first().map_or(0, |(d, _)| d.context.len());
        if dim > 0 && rewarded.iter().all(|(d, _)| d.context.len() == dim) {
            let mut arms: Vec<LinearArm> = (0..k).map(|_| LinearArm::new(dim + 1, 1.0)).collect();
            for (d, r) in rewarded {
                if let Some(m) = arms.get_mut(d.arm) {
                    m.update(&with_intercept(&d.context), *r);
                }
            }
            return RewardModel::Linear(arms);
        }
        let (mut sum, mut n) = (vec![0.0; k], vec![0.0; k]);
        for (d, r) in rewarded {
            if d.arm < k {
                sum[d.arm] += r;
                n[d.arm] += 1.0;
            }
        }
        let overall = sum.iter().sum::<f64>() / n.iter().sum::<f64>().max(1.0);
        RewardModel::Means(
            sum.iter()
                .zip(&n)
                .map(|(s, n)| if *n > 0.0 { s / n } else { overall })
                .collect(),
        )
    }

    fn predict(&self, arm: usize, context: &[f64]) -> f64 {
        match self {
            RewardModel::Means(m) => m.get(arm).copied().unwrap_or(0.0),
            RewardModel::Linear(arms) => arms
                .get(arm)
                .map_or(0.0, |m| m.predict(&with_intercept(context))),
        }
    }
}

fn with_intercept(x: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    v.push(1.0);
    v
}

/// Estimates of the candidate's value on the logged decisions.
pub fn evaluate(
    spec: &DeploymentSpec,
    logged: &[LoggedDecision],
    request: &EvaluateRequest,
) -> Result<Value, ExperimentError> {
    let k = spec.variants.len();
    if let Some(m) = request.max_weight
        && !(m.is_finite() && m > 0.0)
    {
        return Err(invalid(
            "max_weight",
            format!("{m} is not a positive number"),
        ));
    }
    let rewarded: Vec<(&LoggedDecision, f64)> = logged
        .iter()
        .filter_map(|d| d.reward.map(|r| (d, r)))
        .collect();
    if rewarded.is_empty() {
        return Err(invalid(
            "deployment",
            "no decision has a reward yet: send feedback first".into(),
        ));
    }
    let model = RewardModel::fit(k, &rewarded);
    // The candidate's action distribution at each rewarded decision.
    let mut distributions: Vec<Vec<f64>> = Vec::with_capacity(rewarded.len());
    let candidate_kind;
    match &request.candidate {
        Candidate::Variant { variant } => {
            let arm = index(spec, variant, "candidate.variant")?;
            let mut p = vec![0.0; k];
            p[arm] = 1.0;
            distributions.resize(rewarded.len(), p);
            candidate_kind = format!("always {variant}");
        }
        Candidate::Split { weights } => {
            let mut p = vec![0.0; k];
            for (name, w) in weights {
                if !(w.is_finite() && *w >= 0.0) {
                    return Err(invalid(
                        &format!("candidate.weights.{name}"),
                        format!("{w} is not a non-negative number"),
                    ));
                }
                p[index(spec, name, &format!("candidate.weights.{name}"))?] = *w;
            }
            let total: f64 = p.iter().sum();
            if total <= 0.0 {
                return Err(invalid("candidate.weights", "every weight is 0".into()));
            }
            p.iter_mut().for_each(|x| *x /= total);
            distributions.resize(rewarded.len(), p);
            candidate_kind = "fixed split".to_string();
        }
        Candidate::Strategy { strategy } => {
            let candidate_spec = DeploymentSpec {
                name: spec.name.clone(),
                strategy: strategy.clone(),
                variants: spec.variants.clone(),
                salt: None,
                per_segment: spec.per_segment,
                seed: None,
                guards: None,
                lifecycle: None,
            };
            candidate_spec.validate().map_err(|e| match e {
                ExperimentError::Invalid { field, reason } => {
                    invalid(&format!("candidate.{field}"), reason)
                }
                other => other,
            })?;
            if strategy.contextual() && rewarded.iter().any(|(d, _)| d.context.is_empty()) {
                return Err(invalid(
                    "candidate.strategy",
                    format!(
                        "{} needs contexts, and some logged decisions have none",
                        strategy.kind()
                    ),
                ));
            }
            let weights: Vec<f64> = spec
                .variants
                .iter()
                .map(|v: &VariantSpec| v.weight.unwrap_or(1.0))
                .collect();
            let mut rng = Rng::from_seed(request.seed);
            let mut policies: BTreeMap<&str, PolicyState> = BTreeMap::new();
            for (d, r) in &rewarded {
                let policy = policies
                    .entry(d.segment.as_str())
                    .or_insert_with(|| PolicyState::new(k));
                distributions.push(policy.probabilities(strategy, &weights, &d.context, &mut rng));
                policy.reward(strategy, d.arm, &d.context, *r);
            }
            candidate_kind = format!("strategy {}", strategy.kind());
        }
    }
    let records: Vec<LoggedRecord> = rewarded
        .iter()
        .zip(&distributions)
        .map(|((d, r), p)| LoggedRecord {
            action: d.arm,
            propensity: d.propensity,
            reward: *r,
            target_prob: p.get(d.arm).copied().unwrap_or(0.0),
            predicted_reward: Some(model.predict(d.arm, &d.context)),
            predicted_value: Some(
                p.iter()
                    .enumerate()
                    .map(|(a, pa)| pa * model.predict(a, &d.context))
                    .sum(),
            ),
        })
        .collect();
    let stats_err = |e: keel_stats::StatsError| invalid("decisions", e.to_string());
    let ips = ope::ips(&records, request.max_weight).map_err(stats_err)?;
    let snips = ope::snips(&records, request.max_weight).map_err(stats_err)?;
    let dr = ope::doubly_robust(&records, request.max_weight).map_err(stats_err)?;
    let logged_value = rewarded.iter().map(|(_, r)| r).sum::<f64>() / rewarded.len() as f64;
    Ok(json!({
        "deployment": spec.name,
        "candidate": candidate_kind,
        "decisions": logged.len(),
        "rewarded": rewarded.len(),
        "logging_policy_value": logged_value,
        "reward_model": match model {
            RewardModel::Means(_) => "mean reward per variant",
            RewardModel::Linear(_) => "ridge regression on context per variant (λ = 1, intercept)",
        },
        "ips": ips,
        "snips": snips,
        "doubly_robust": dr,
    }))
}
