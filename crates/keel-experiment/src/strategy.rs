//! What a deployment is: its variants and the strategy that splits traffic
//! between them.

use serde::{Deserialize, Serialize};

use crate::ExperimentError;
use crate::rollout::{Guards, LifecycleLink};

/// A deployment as created: `POST /v1/deployments` takes this body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub name: String,
    pub strategy: Strategy,
    pub variants: Vec<VariantSpec>,
    /// Salt of the sticky assignment hash (`ab`, `canary`); the deployment's
    /// name when absent, so two deployments split the same unit
    /// independently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// A separate policy per segment value given with each decision (the
    /// "many winning versions" case: one bandit per country, device...).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_segment: bool,
    /// Seed of the deployment's random draws, for reproducible simulations
    /// (the draws start again from it after a restart). Absent: seeded from
    /// the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// When the deployment moves on its own: a canary advances step by
    /// step, any deployment rolls back to its first variant, a bandit or
    /// A/B test names its winner (see [`crate::rollout::Guards`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guards: Option<Guards>,
    /// The lifecycle instance that hears the deployment's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleLink>,
}

/// One arm of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    /// The model version this variant serves, e.g. `models:/recs@candidate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Traffic weight for `ab` (relative; equal when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// How traffic is split. The JSON form is tagged by `type`:
/// `{"type": "linucb", "alpha": 1.0}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Every decision goes to the first variant.
    Single,
    /// The first variant is stable, the second the candidate; the candidate
    /// gets `steps[step]` percent of units (sticky by unit id).
    Canary {
        #[serde(default = "default_canary_steps")]
        steps: Vec<f64>,
        #[serde(default)]
        step: usize,
    },
    /// A fixed split by variant weights, sticky by unit id.
    Ab,
    /// The first variant answers; the others see the same requests and are
    /// logged, never returned.
    Shadow,
    /// The best mean reward so far, or with probability `epsilon` a uniform
    /// pick. Untried variants are tried first.
    EpsilonGreedy {
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
    /// Upper confidence bound (Auer et al. 2002): mean + √(2 ln N / nᵢ);
    /// rewards in [0, 1].
    Ucb1,
    /// Thompson sampling: Beta–Bernoulli for rewards in [0, 1], or a normal
    /// posterior on each mean for continuous rewards.
    Thompson {
        #[serde(default)]
        reward: RewardModel,
        /// Posterior draws used to estimate the propensity of the pick.
        #[serde(default = "default_draws")]
        propensity_draws: usize,
    },
    /// Boltzmann exploration: P(i) ∝ exp(meanᵢ / temperature), once every
    /// variant has been tried.
    Softmax {
        #[serde(default = "default_temperature")]
        temperature: f64,
    },
    /// LinUCB with disjoint linear models (Li et al. 2010): θᵢ·x + α√(xᵀAᵢ⁻¹x).
    Linucb {
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// Ridge penalty: Aᵢ starts as λI.
        #[serde(default = "default_lambda")]
        lambda: f64,
    },
    /// Linear Thompson sampling (Agrawal & Goyal 2013): θ̃ᵢ ~ N(θᵢ, v²Aᵢ⁻¹).
    LinearThompson {
        #[serde(default = "default_alpha")]
        v: f64,
        #[serde(default = "default_lambda")]
        lambda: f64,
        #[serde(default = "default_draws")]
        propensity_draws: usize,
    },
    /// Greedy on per-variant online ridge regressions of reward on context,
    /// or with probability `epsilon` a uniform pick.
    CbEpsilonGreedy {
        #[serde(default = "default_epsilon")]
        epsilon: f64,
        #[serde(default = "default_lambda")]
        lambda: f64,
    },
}

/// The reward distribution Thompson sampling assumes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RewardModel {
    #[default]
    Bernoulli,
    Gaussian,
}

fn default_canary_steps() -> Vec<f64> {
    vec![5.0, 25.0, 50.0, 100.0]
}
fn default_epsilon() -> f64 {
    0.1
}
fn default_draws() -> usize {
    100
}
fn default_temperature() -> f64 {
    0.1
}
fn default_alpha() -> f64 {
    1.0
}
fn default_lambda() -> f64 {
    1.0
}

impl Strategy {
    /// The strategy's name as the API spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::Single => "single",
            Strategy::Canary { .. } => "canary",
            Strategy::Ab => "ab",
            Strategy::Shadow => "shadow",
            Strategy::EpsilonGreedy { .. } => "epsilon_greedy",
            Strategy::Ucb1 => "ucb1",
            Strategy::Thompson { .. } => "thompson",
            Strategy::Softmax { .. } => "softmax",
            Strategy::Linucb { .. } => "linucb",
            Strategy::LinearThompson { .. } => "linear_thompson",
            Strategy::CbEpsilonGreedy { .. } => "cb_epsilon_greedy",
        }
    }

    /// Whether decisions need a context vector.
    pub fn contextual(&self) -> bool {
        matches!(
            self,
            Strategy::Linucb { .. }
                | Strategy::LinearThompson { .. }
                | Strategy::CbEpsilonGreedy { .. }
        )
    }

    /// Whether rewards change the policy (bandits) or only the statistics.
    pub fn learns(&self) -> bool {
        !matches!(
            self,
            Strategy::Single | Strategy::Canary { .. } | Strategy::Ab | Strategy::Shadow
        )
    }
}

impl DeploymentSpec {
    /// Checks everything a decision relies on; the error names the field.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |field: &str, why: String| ExperimentError::Invalid {
            field: field.to_string(),
            reason: why,
        };
        if !keel_core::is_plain_name(&self.name) {
            return Err(bad(
                "name",
                format!(
                    "{:?} is not a plain name: use letters, digits, '_', '-' and '.', starting with a letter or digit, at most 128 characters",
                    self.name
                ),
            ));
        }
        if self.variants.is_empty() {
            return Err(bad(
                "variants",
                "a deployment needs at least one variant".into(),
            ));
        }
        for (i, v) in self.variants.iter().enumerate() {
            if !keel_core::is_plain_name(&v.name) {
                return Err(bad(
                    &format!("variants[{i}].name"),
                    format!("{:?} is not a plain name", v.name),
                ));
            }
            if self.variants[..i].iter().any(|o| o.name == v.name) {
                return Err(bad(
                    &format!("variants[{i}].name"),
                    format!("variant {:?} is named twice", v.name),
                ));
            }
            if let Some(w) = v.weight
                && !(w.is_finite() && w >= 0.0)
            {
                return Err(bad(
                    &format!("variants[{i}].weight"),
                    format!("{w} is not a non-negative number"),
                ));
            }
        }
        if matches!(self.strategy, Strategy::Ab)
            && self.variants.iter().all(|v| v.weight == Some(0.0))
        {
            return Err(bad(
                "variants",
                "every weight is 0: no variant could be chosen".into(),
            ));
        }
        let unit = |field: &str, x: f64| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(bad(field, format!("{x} is not within [0, 1]")))
            }
        };
        let positive = |field: &str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(bad(field, format!("{x} is not a positive number")))
            }
        };
        match &self.strategy {
            Strategy::Canary { steps, step } => {
                if self.variants.len() != 2 {
                    return Err(bad(
                        "variants",
                        "a canary has exactly two variants: the stable one first, then the candidate"
                            .into(),
                    ));
                }
                if steps.is_empty() {
                    return Err(bad("strategy.steps", "give at least one percentage".into()));
                }
                for (i, s) in steps.iter().enumerate() {
                    if !(0.0..=100.0).contains(s) {
                        return Err(bad(
                            &format!("strategy.steps[{i}]"),
                            format!("{s} is not a percentage within [0, 100]"),
                        ));
                    }
                    if i > 0 && *s < steps[i - 1] {
                        return Err(bad(
                            &format!("strategy.steps[{i}]"),
                            "steps must not decrease".into(),
                        ));
                    }
                }
                if *step >= steps.len() {
                    return Err(bad(
                        "strategy.step",
                        format!("{step} is past the last of {} steps", steps.len()),
                    ));
                }
            }
            Strategy::Shadow if self.variants.len() < 2 => {
                return Err(bad(
                    "variants",
                    "shadow needs the primary variant and at least one shadow".into(),
                ));
            }
            Strategy::EpsilonGreedy { epsilon } => unit("strategy.epsilon", *epsilon)?,
            Strategy::CbEpsilonGreedy { epsilon, lambda } => {
                unit("strategy.epsilon", *epsilon)?;
                positive("strategy.lambda", *lambda)?;
            }
            Strategy::Softmax { temperature } => positive("strategy.temperature", *temperature)?,
            Strategy::Thompson {
                propensity_draws, ..
            } => draws_ok(*propensity_draws).map_err(|r| bad("strategy.propensity_draws", r))?,
            Strategy::Linucb { alpha, lambda } => {
                if !(alpha.is_finite() && *alpha >= 0.0) {
                    return Err(bad(
                        "strategy.alpha",
                        format!("{alpha} is not a non-negative number"),
                    ));
                }
                positive("strategy.lambda", *lambda)?;
            }
            Strategy::LinearThompson {
                v,
                lambda,
                propensity_draws,
            } => {
                positive("strategy.v", *v)?;
                positive("strategy.lambda", *lambda)?;
                draws_ok(*propensity_draws).map_err(|r| bad("strategy.propensity_draws", r))?;
            }
            _ => {}
        }
        if let Some(g) = &self.guards {
            g.validate()?;
            for (i, suite) in g.required_checks.iter().enumerate() {
                if suite.is_empty() {
                    return Err(bad(
                        &format!("guards.required_checks[{i}]"),
                        "name the check".into(),
                    ));
                }
            }
        }
        if let Some(l) = &self.lifecycle {
            if !keel_core::is_plain_name(&l.name) {
                return Err(bad(
                    "lifecycle.name",
                    format!("{:?} is not a lifecycle name", l.name),
                ));
            }
            if l.key.as_deref().is_some_and(str::is_empty) {
                return Err(bad("lifecycle.key", "give a key or leave it out".into()));
            }
        }
        Ok(())
    }

    /// The sticky-assignment salt.
    pub fn salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(&self.name)
    }
}

fn draws_ok(draws: usize) -> Result<(), String> {
    if (1..=100_000).contains(&draws) {
        Ok(())
    } else {
        Err(format!("{draws} is not within 1..=100000"))
    }
}
