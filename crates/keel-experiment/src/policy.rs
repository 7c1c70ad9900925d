//! Policies: how a strategy picks a variant from what it has learnt, with
//! the probability it had of picking it (the propensity, which off-policy
//! evaluation needs), and how a reward updates it.

use keel_stats::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::strategy::{RewardModel, Strategy};

/// What one variant has seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ArmStats {
    /// Decisions that chose it.
    pub decisions: u64,
    /// Rewards received.
    pub rewards: u64,
    pub reward_sum: f64,
    pub reward_sum_sq: f64,
    /// Rewards other than 0 and 1 (none: the rewards are conversions).
    #[serde(default)]
    pub non_binary: u64,
}

impl ArmStats {
    pub fn mean(&self) -> Option<f64> {
        (self.rewards > 0).then(|| self.reward_sum / self.rewards as f64)
    }

    /// Sample variance of the rewards (n − 1).
    pub fn variance(&self) -> Option<f64> {
        (self.rewards > 1).then(|| {
            let n = self.rewards as f64;
            ((self.reward_sum_sq - self.reward_sum * self.reward_sum / n) / (n - 1.0)).max(0.0)
        })
    }
}

/// A ridge regression of reward on context, kept as A⁻¹ and b.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinearArm {
    /// A⁻¹, d × d row-major, updated by Sherman–Morrison.
    pub a_inv: Vec<f64>,
    pub b: Vec<f64>,
    /// θ = A⁻¹ b.
    pub theta: Vec<f64>,
}

impl LinearArm {
    pub(crate) fn new(dim: usize, lambda: f64) -> LinearArm {
        let mut a_inv = vec![0.0; dim * dim];
        for i in 0..dim {
            a_inv[i * dim + i] = 1.0 / lambda;
        }
        LinearArm {
            a_inv,
            b: vec![0.0; dim],
            theta: vec![0.0; dim],
        }
    }

    fn dim(&self) -> usize {
        self.b.len()
    }

    /// A⁻¹x.
    fn a_inv_x(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim();
        (0..d)
            .map(|i| dot(&self.a_inv[i * d..(i + 1) * d], x))
            .collect()
    }

    pub(crate) fn predict(&self, x: &[f64]) -> f64 {
        dot(&self.theta, x)
    }

    /// xᵀA⁻¹x: the variance factor of the prediction at x.
    fn width(&self, x: &[f64]) -> f64 {
        dot(x, &self.a_inv_x(x)).max(0.0)
    }

    pub(crate) fn update(&mut self, x: &[f64], reward: f64) {
        let d = self.dim();
        let u = self.a_inv_x(x);
        let denom = 1.0 + dot(x, &u);
        for i in 0..d {
            for j in 0..d {
                self.a_inv[i * d + j] -= u[i] * u[j] / denom;
            }
        }
        for (b, xi) in self.b.iter_mut().zip(x) {
            *b += reward * xi;
        }
        self.theta = self.a_inv_x(&self.b);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A policy's learnt state (one per segment with `per_segment`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyState {
    pub arms: Vec<ArmStats>,
    /// Per-variant linear models of contextual strategies, created at the
    /// first context (which fixes the dimension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linear: Vec<LinearArm>,
}

/// A decision: the variant served, its propensity, and the shadows that
/// also see the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub arm: usize,
    pub propensity: f64,
    pub shadows: Vec<usize>,
}

impl PolicyState {
    pub fn new(arms: usize) -> PolicyState {
        PolicyState {
            arms: vec![ArmStats::default(); arms],
            linear: Vec::new(),
        }
    }

    /// The context dimension fixed by the first contextual decision.
    pub fn dim(&self) -> Option<usize> {
        self.linear.first().map(LinearArm::dim)
    }

    /// Picks a variant. `bucket` is the unit's sticky position in [0, 1)
    /// (ab, canary), `weights` the variants' traffic weights (ab), and
    /// `context` has been checked against [`PolicyState::dim`].
    pub fn decide(
        &mut self,
        strategy: &Strategy,
        weights: &[f64],
        bucket: f64,
        context: &[f64],
        rng: &mut Rng,
    ) -> Choice {
        let k = self.arms.len();
        let only = |arm: usize| Choice {
            arm,
            propensity: 1.0,
            shadows: Vec::new(),
        };
        match strategy {
            Strategy::Single => only(0),
            Strategy::Shadow => Choice {
                arm: 0,
                propensity: 1.0,
                shadows: (1..k).collect(),
            },
            Strategy::Canary { steps, step } => {
                let share = steps.get(*step).copied().unwrap_or(0.0) / 100.0;
                if bucket < share {
                    Choice {
                        arm: 1,
                        propensity: share,
                        shadows: Vec::new(),
                    }
                } else {
                    Choice {
                        arm: 0,
                        propensity: 1.0 - share,
                        shadows: Vec::new(),
                    }
                }
            }
            Strategy::Ab => {
                let total: f64 = weights.iter().sum();
                let mut edge = 0.0;
                let mut arm = weights.iter().rposition(|w| *w > 0.0).unwrap_or(0);
                for (i, w) in weights.iter().enumerate() {
                    edge += w / total;
                    if *w > 0.0 && bucket < edge {
                        arm = i;
                        break;
                    }
                }
                Choice {
                    arm,
                    propensity: weights[arm] / total,
                    shadows: Vec::new(),
                }
            }
            Strategy::EpsilonGreedy { epsilon } => {
                let greedy = self.untried().unwrap_or_else(|| self.best_mean());
                self.epsilon_pick(greedy, *epsilon, rng)
            }
            Strategy::Ucb1 => match self.untried() {
                Some(arm) => only(arm),
                None => {
                    let n: f64 = self.arms.iter().map(|a| a.rewards as f64).sum();
                    only(argmax((0..k).map(|i| {
                        let a = &self.arms[i];
                        a.mean().unwrap_or(0.0) + (2.0 * n.ln() / a.rewards as f64).sqrt()
                    })))
                }
            },
            Strategy::Softmax { .. } if self.untried().is_some() => {
                only(self.untried().unwrap_or(0))
            }
            Strategy::Softmax { temperature } => {
                let p = self.softmax(*temperature);
                let mut u = rng.next_f64();
                let mut arm = k - 1;
                for (i, pi) in p.iter().enumerate() {
                    if u < *pi {
                        arm = i;
                        break;
                    }
                    u -= pi;
                }
                Choice {
                    arm,
                    propensity: p[arm],
                    shadows: Vec::new(),
                }
            }
            Strategy::Thompson {
                reward,
                propensity_draws,
            } => {
                let arm = self.thompson_draw(*reward, rng);
                let wins = (0..*propensity_draws)
                    .filter(|_| self.thompson_draw(*reward, rng) == arm)
                    .count();
                Choice {
                    arm,
                    propensity: propensity_estimate(wins, *propensity_draws),
                    shadows: Vec::new(),
                }
            }
            // Contextual strategies try every variant once first, as the
            // others do: an untried variant's model knows nothing yet.
            Strategy::Linucb { .. } | Strategy::LinearThompson { .. }
                if self.untried().is_some() =>
            {
                only(self.untried().unwrap_or(0))
            }
            Strategy::Linucb { alpha, lambda } => {
                self.ensure_linear(context.len(), *lambda);
                only(argmax(self.linear.iter().map(|m| {
                    m.predict(context) + alpha * m.width(context).sqrt()
                })))
            }
            Strategy::LinearThompson {
                v,
                lambda,
                propensity_draws,
            } => {
                self.ensure_linear(context.len(), *lambda);
                let scores = self.linear_scores(*v, context);
                let arm = linear_thompson_draw(&scores, rng);
                let wins = (0..*propensity_draws)
                    .filter(|_| linear_thompson_draw(&scores, rng) == arm)
                    .count();
                Choice {
                    arm,
                    propensity: propensity_estimate(wins, *propensity_draws),
                    shadows: Vec::new(),
                }
            }
            Strategy::CbEpsilonGreedy { epsilon, lambda } => {
                self.ensure_linear(context.len(), *lambda);
                let greedy = self
                    .untried()
                    .unwrap_or_else(|| argmax(self.linear.iter().map(|m| m.predict(context))));
                self.epsilon_pick(greedy, *epsilon, rng)
            }
        }
    }

    /// The whole action distribution the strategy would use at `context`
    /// (for a unit drawn at random, for the sticky strategies): what
    /// off-policy evaluation needs of a candidate. Exact where the rule
    /// gives it, the frequency over `draws` picks for the Thompson ones.
    pub fn probabilities(
        &mut self,
        strategy: &Strategy,
        weights: &[f64],
        context: &[f64],
        rng: &mut Rng,
    ) -> Vec<f64> {
        let k = self.arms.len();
        let mut p = vec![0.0; k];
        match strategy {
            Strategy::Ab => {
                let total: f64 = weights.iter().sum();
                for (pi, w) in p.iter_mut().zip(weights) {
                    *pi = w / total;
                }
            }
            Strategy::Canary { steps, step } => {
                let share = steps.get(*step).copied().unwrap_or(0.0) / 100.0;
                p[0] = 1.0 - share;
                if k > 1 {
                    p[1] = share;
                }
            }
            Strategy::EpsilonGreedy { epsilon } | Strategy::CbEpsilonGreedy { epsilon, .. } => {
                let greedy = match strategy {
                    Strategy::CbEpsilonGreedy { lambda, .. } => {
                        self.ensure_linear(context.len(), *lambda);
                        self.untried().unwrap_or_else(|| {
                            argmax(self.linear.iter().map(|m| m.predict(context)))
                        })
                    }
                    _ => self.untried().unwrap_or_else(|| self.best_mean()),
                };
                for pi in p.iter_mut() {
                    *pi = epsilon / k as f64;
                }
                p[greedy] += 1.0 - epsilon;
            }
            Strategy::Softmax { .. }
            | Strategy::Linucb { .. }
            | Strategy::LinearThompson { .. }
                if self.untried().is_some() =>
            {
                p[self.untried().unwrap_or(0)] = 1.0;
            }
            Strategy::Softmax { temperature } => p = self.softmax(*temperature),
            Strategy::Thompson {
                reward,
                propensity_draws,
            } => {
                let draws = (*propensity_draws).max(1);
                for _ in 0..draws {
                    p[self.thompson_draw(*reward, rng)] += 1.0 / draws as f64;
                }
            }
            Strategy::LinearThompson {
                v,
                lambda,
                propensity_draws,
            } => {
                self.ensure_linear(context.len(), *lambda);
                let scores = self.linear_scores(*v, context);
                let draws = (*propensity_draws).max(1);
                for _ in 0..draws {
                    p[linear_thompson_draw(&scores, rng)] += 1.0 / draws as f64;
                }
            }
            Strategy::Single | Strategy::Shadow | Strategy::Ucb1 | Strategy::Linucb { .. } => {
                let arm = self.decide(strategy, weights, 0.0, context, rng).arm;
                p[arm] = 1.0;
            }
        }
        p
    }

    /// Counts a decision for `arm`.
    pub fn record_decision(&mut self, arm: usize) {
        if let Some(a) = self.arms.get_mut(arm) {
            a.decisions += 1;
        }
    }

    /// Applies a reward for `arm`, decided with `context`.
    pub fn reward(&mut self, strategy: &Strategy, arm: usize, context: &[f64], reward: f64) {
        if let Some(a) = self.arms.get_mut(arm) {
            a.rewards += 1;
            a.reward_sum += reward;
            a.reward_sum_sq += reward * reward;
            if reward != 0.0 && reward != 1.0 {
                a.non_binary += 1;
            }
        }
        if strategy.contextual() {
            let lambda = match strategy {
                Strategy::Linucb { lambda, .. }
                | Strategy::LinearThompson { lambda, .. }
                | Strategy::CbEpsilonGreedy { lambda, .. } => *lambda,
                _ => 1.0,
            };
            self.ensure_linear(context.len(), lambda);
            if let Some(m) = self.linear.get_mut(arm)
                && m.dim() == context.len()
            {
                m.update(context, reward);
            }
        }
    }

    fn ensure_linear(&mut self, dim: usize, lambda: f64) {
        if self.linear.is_empty() {
            self.linear = (0..self.arms.len())
                .map(|_| LinearArm::new(dim, lambda))
                .collect();
        }
    }

    /// P(i) ∝ exp(meanᵢ / temperature), untried variants at mean 0.
    fn softmax(&self, temperature: f64) -> Vec<f64> {
        let scaled: Vec<f64> = self
            .arms
            .iter()
            .map(|a| a.mean().unwrap_or(0.0) / temperature)
            .collect();
        let top = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scaled.iter().map(|m| (m - top).exp()).collect();
        let total: f64 = e.iter().sum();
        e.into_iter().map(|x| x / total).collect()
    }

    fn untried(&self) -> Option<usize> {
        self.arms.iter().position(|a| a.rewards == 0)
    }

    fn best_mean(&self) -> usize {
        argmax(self.arms.iter().map(|a| a.mean().unwrap_or(0.0)))
    }

    fn epsilon_pick(&self, greedy: usize, epsilon: f64, rng: &mut Rng) -> Choice {
        let k = self.arms.len();
        let arm = if rng.next_f64() < epsilon {
            ((rng.next_f64() * k as f64) as usize).min(k - 1)
        } else {
            greedy
        };
        let uniform = epsilon / k as f64;
        Choice {
            arm,
            propensity: if arm == greedy {
                1.0 - epsilon + uniform
            } else {
                uniform
            },
            shadows: Vec::new(),
        }
    }

    fn thompson_draw(&self, reward: RewardModel, rng: &mut Rng) -> usize {
        match reward {
            RewardModel::Bernoulli => argmax(self.arms.iter().map(|a| {
                let successes = a.reward_sum.clamp(0.0, a.rewards as f64);
                // Both shapes are at least 1, which `beta` always accepts.
                rng.beta(1.0 + successes, 1.0 + a.rewards as f64 - successes)
                    .unwrap_or(0.0)
            })),
            RewardModel::Gaussian => {
                // Arms with fewer than two rewards draw from a wide prior
                // around the pooled mean, so each gets tried.
                let (n, sum, sum_sq) = self.arms.iter().fold((0.0, 0.0, 0.0), |acc, a| {
                    (
                        acc.0 + a.rewards as f64,
                        acc.1 + a.reward_sum,
                        acc.2 + a.reward_sum_sq,
                    )
                });
                let pooled_mean = if n > 0.0 { sum / n } else { 0.0 };
                let pooled_var = if n > 1.0 {
                    ((sum_sq - sum * sum / n) / (n - 1.0)).max(1e-12)
                } else {
                    1.0
                };
                argmax(self.arms.iter().map(|a| match (a.mean(), a.variance()) {
                    (Some(m), Some(v)) => {
                        m + rng.normal() * (v.max(1e-12) / a.rewards as f64).sqrt()
                    }
                    _ => pooled_mean + rng.normal() * (100.0 * pooled_var).sqrt(),
                }))
            }
        }
    }

    /// Each variant's posterior score at `context` under θ̃ ~ N(θ, v²A⁻¹):
    /// θ̃·x is normal with mean θ·x and standard deviation v√(xᵀA⁻¹x), so a
    /// draw of the scores needs one normal per variant, not a d-dimensional
    /// sample and a Cholesky factor.
    fn linear_scores(&self, v: f64, context: &[f64]) -> Vec<(f64, f64)> {
        self.linear
            .iter()
            .map(|m| (m.predict(context), v * m.width(context).sqrt()))
            .collect()
    }
}

/// One linear-Thompson pick from the variants' (mean, sd) scores.
fn linear_thompson_draw(scores: &[(f64, f64)], rng: &mut Rng) -> usize {
    argmax(scores.iter().map(|(mean, sd)| mean + sd * rng.normal()))
}

/// wins/draws, never 0: the pick itself happened, so its probability is at
/// least about one draw's worth.
fn propensity_estimate(wins: usize, draws: usize) -> f64 {
    ((wins as f64 + 1.0) / (draws as f64 + 1.0)).min(1.0)
}

/// The first index of the largest value (NaN never wins).
fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A unit's sticky position in [0, 1): FNV-1a over salt and unit id, then a
/// SplitMix64 finaliser so that nearby ids spread evenly. Stable across
/// releases: changing it would reshuffle every running experiment.
pub fn bucket(salt: &str, unit_id: &str) -> f64 {
    let mut h = fnv1a(salt.bytes().chain([0u8]).chain(unit_id.bytes()));
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sherman_morrison_matches_the_ridge_solution() {
        // Two observations in 2-D: A = I + x1x1ᵀ + x2x2ᵀ, b = r1x1 + r2x2.
        let mut m = LinearArm::new(2, 1.0);
        m.update(&[1.0, 0.0], 1.0);
        m.update(&[1.0, 1.0], 2.0);
        // A = [[3, 1], [1, 2]], b = [3, 2]; θ = A⁻¹b = [0.8, 0.6].
        assert!((m.theta[0] - 0.8).abs() < 1e-12 && (m.theta[1] - 0.6).abs() < 1e-12);
        // A⁻¹ = [[0.4, -0.2], [-0.2, 0.6]].
        for (got, want) in m.a_inv.iter().zip([0.4, -0.2, -0.2, 0.6]) {
            assert!((got - want).abs() < 1e-12);
        }
        // The posterior sd of θ̃·x is √(xᵀA⁻¹x): at x = (1, 1), √0.6.
        assert!((m.width(&[1.0, 1.0]) - 0.6).abs() < 1e-12);
    }

    #[test]
    fn linear_thompson_scores_have_the_posterior_mean_and_spread() {
        let s = Strategy::LinearThompson {
            v: 0.5,
            lambda: 1.0,
            propensity_draws: 100,
        };
        let mut p = PolicyState::new(2);
        let mut rng = Rng::from_seed(9);
        let x = [1.0, 0.5];
        // Every variant is tried once first.
        for want in 0..2 {
            let c = p.decide(&s, &[1.0, 1.0], 0.0, &x, &mut rng);
            assert_eq!((c.arm, c.propensity), (want, 1.0));
            p.reward(&s, c.arm, &x, if want == 0 { 1.0 } else { 0.0 });
        }
        let scores = p.linear_scores(0.5, &x);
        for (m, (mean, sd)) in p.linear.iter().zip(&scores) {
            assert!((mean - m.predict(&x)).abs() < 1e-15);
            assert!((sd - 0.5 * m.width(&x).sqrt()).abs() < 1e-15);
        }
        // The decision's propensity estimates P(arm) = P(score_arm is the largest).
        let (m0, s0) = scores[0];
        let (m1, s1) = scores[1];
        let exact = keel_stats::special::norm_cdf((m0 - m1) / (s0 * s0 + s1 * s1).sqrt()).unwrap();
        let probabilities = p.probabilities(
            &Strategy::LinearThompson {
                v: 0.5,
                lambda: 1.0,
                propensity_draws: 20_000,
            },
            &[1.0, 1.0],
            &x,
            &mut rng,
        );
        assert!(
            (probabilities[0] - exact).abs() < 0.015,
            "{probabilities:?} vs {exact}"
        );
    }

    #[test]
    fn buckets_are_uniform_and_sticky() {
        let n = 100_000;
        let mut bins = [0u32; 10];
        for i in 0..n {
            let b = bucket("salt", &format!("user-{i}"));
            assert!((0.0..1.0).contains(&b));
            bins[(b * 10.0) as usize] += 1;
        }
        // Chi-square with 9 degrees of freedom: 27.9 is its 0.999 quantile.
        let expected = n as f64 / 10.0;
        let chi2: f64 = bins
            .iter()
            .map(|c| (*c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 27.9, "{bins:?}");
        assert_eq!(bucket("salt", "u1"), bucket("salt", "u1"));
        assert_ne!(bucket("salt", "u1"), bucket("other", "u1"));
    }

    #[test]
    fn epsilon_greedy_propensities_sum_to_one() {
        let s = Strategy::EpsilonGreedy { epsilon: 0.2 };
        let mut p = PolicyState::new(4);
        let mut rng = Rng::from_seed(1);
        for arm in 0..4 {
            p.reward(&s, arm, &[], arm as f64 / 4.0);
        }
        let mut seen = [0.0; 4];
        for _ in 0..10_000 {
            let c = p.decide(&s, &[], 0.0, &[], &mut rng);
            seen[c.arm] = c.propensity;
        }
        assert!((seen.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{seen:?}");
        assert!((seen[3] - 0.85).abs() < 1e-12);
    }
}
