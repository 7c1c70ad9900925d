//! Statistics for A/B tests: intervals, tests, sequential monitoring,
//! variance reduction, and Bayesian decision quantities.
//!
//! | question | function | reference implementation |
//! | --- | --- | --- |
//! | interval for one conversion rate | [`proportion_ci`] (Wilson) | `statsmodels` `proportion_confint(method="wilson")` |
//! | do two conversion rates differ? | [`two_proportion_ztest`] | `statsmodels` `proportions_ztest` + `confint_proportions_2indep(method="wald")` |
//! | do two means differ? | [`welch_ttest`], [`welch_ttest_samples`] | `scipy.stats.ttest_ind(equal_var=False)` |
//! | is the traffic split what we configured? | [`srm_check`] | `scipy.stats.chisquare` |
//! | may I stop early? | [`msprt_likelihood_ratio`], [`Msprt`] | Johari, Pekelis & Walsh (2017) |
//! | can I use pre-period data to shrink variance? | [`cuped`], [`cuped_compare`] | Deng, Xu, Kohavi & Walker (2013) |
//! | which arm is best, and what do I lose picking it? | [`beta_bernoulli_best`], [`gaussian_best`] | numerical integration |
//!
//! Differences are always first group minus second (`a − b`); every
//! p-value is two-sided.

use crate::rng::Rng;
use crate::special::{norm_ppf_raw, norm_sf_raw, t_ppf_raw, t_sf_raw};
use crate::{
    Result, StatsError, confidence_level, finite, mean_var, non_negative, positive, sample,
};
use serde::Serialize;

/// A two-sided interval `[low, high]` at `confidence`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    pub confidence: f64,
}

/// The two-sided normal critical value `z_{1−α/2}` for a confidence level.
fn z_crit(confidence: f64) -> f64 {
    -norm_ppf_raw(0.5 * (1.0 - confidence))
}

fn check_count(successes: u64, trials: u64, s_name: &str, n_name: &str) -> Result<()> {
    if trials == 0 {
        return Err(StatsError::OutOfRange {
            name: n_name.to_string(),
            value: 0.0,
            range: "[1, inf)",
        });
    }
    if successes > trials {
        return Err(StatsError::Invalid {
            name: s_name.to_string(),
            reason: format!("{successes} successes exceed the {trials} trials of {n_name}"),
        });
    }
    Ok(())
}

/// A proportion with its Wilson score interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProportionInterval {
    pub successes: u64,
    pub trials: u64,
    /// `successes / trials`.
    pub proportion: f64,
    /// The Wilson score interval.
    pub interval: Interval,
}

/// The Wilson score interval for a binomial proportion (Wilson 1927):
/// the set of `p` that a two-sided score test at level `1 − confidence`
/// does not reject,
///
/// `(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`.
///
/// Unlike the Wald interval `p̂ ± z√(p̂(1−p̂)/n)` it stays inside `[0, 1]`
/// and keeps close to nominal coverage for small `n` or rates near 0 or 1
/// (Brown, Cai & DasGupta 2001), so it is the one to use for conversion
/// rates. Equals `statsmodels`' `proportion_confint(method="wilson")`.
pub fn proportion_ci(successes: u64, trials: u64, confidence: f64) -> Result<ProportionInterval> {
    check_count(successes, trials, "successes", "trials")?;
    confidence_level("confidence", confidence)?;
    let n = trials as f64;
    let p = successes as f64 / n;
    let z = z_crit(confidence);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let dist = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Ok(ProportionInterval {
        successes,
        trials,
        proportion: p,
        interval: Interval {
            low: center - dist,
            high: center + dist,
            confidence,
        },
    })
}

/// The result of [`two_proportion_ztest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TwoProportionTest {
    pub proportion_a: f64,
    pub proportion_b: f64,
    /// `proportion_a − proportion_b`.
    pub difference: f64,
    /// The z statistic with the pooled-variance standard error.
    pub z: f64,
    /// Two-sided p-value `2 (1 − Φ(|z|))`.
    pub p_value: f64,
    /// Unpooled (Wald) standard error of the difference,
    /// `√(p_a(1−p_a)/n_a + p_b(1−p_b)/n_b)`.
    pub standard_error: f64,
    /// `difference ± z_{1−α/2} · standard_error`.
    pub interval: Interval,
}

/// The two-sided z-test that two binomial proportions are equal.
///
/// Under H0 both groups share one rate, estimated by pooling:
/// `p̄ = (s_a + s_b)/(n_a + n_b)`, and `z = (p̂_a − p̂_b) / √(p̄(1−p̄)(1/n_a + 1/n_b))`
/// (equals `statsmodels.stats.proportion.proportions_ztest`). The
/// interval for the difference does not assume H0, so it uses the
/// unpooled standard error (`confint_proportions_2indep(method="wald")`).
/// The normal approximation wants roughly ≥ 10 successes and failures per
/// group; below that prefer an exact test. If both groups have a rate of
/// exactly 0 (or 1) there is no evidence of a difference: `z = 0`, `p = 1`.
pub fn two_proportion_ztest(
    successes_a: u64,
    n_a: u64,
    successes_b: u64,
    n_b: u64,
    confidence: f64,
) -> Result<TwoProportionTest> {
    check_count(successes_a, n_a, "successes_a", "n_a")?;
    check_count(successes_b, n_b, "successes_b", "n_b")?;
    confidence_level("confidence", confidence)?;
    let (na, nb) = (n_a as f64, n_b as f64);
    let pa = successes_a as f64 / na;
    let pb = successes_b as f64 / nb;
    let pooled = (successes_a as f64 + successes_b as f64) / (na + nb);
    let var0 = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb);
    let diff = pa - pb;
    let z = if var0 > 0.0 { diff / var0.sqrt() } else { 0.0 };
    let se = (pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb).sqrt();
    let zc = z_crit(confidence);
    Ok(TwoProportionTest {
        proportion_a: pa,
        proportion_b: pb,
        difference: diff,
        z,
        p_value: (2.0 * norm_sf_raw(z.abs())).min(1.0),
        standard_error: se,
        interval: Interval {
            low: diff - zc * se,
            high: diff + zc * se,
            confidence,
        },
    })
}

/// Summary statistics of one group: size, mean and sample variance
/// (`n − 1` denominator).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupSummary {
    pub n: f64,
    pub mean: f64,
    pub variance: f64,
}

impl GroupSummary {
    /// The summary of a sample (at least 2 finite values).
    pub fn from_sample(name: &str, values: &[f64]) -> Result<Self> {
        sample(name, values, 2)?;
        let (mean, variance) = mean_var(values);
        Ok(GroupSummary {
            n: values.len() as f64,
            mean,
            variance,
        })
    }

    fn check(&self, name: &str) -> Result<()> {
        finite(&format!("{name}.n"), self.n)?;
        if self.n < 2.0 {
            return Err(StatsError::OutOfRange {
                name: format!("{name}.n"),
                value: self.n,
                range: "[2, inf)",
            });
        }
        finite(&format!("{name}.mean"), self.mean)?;
        non_negative(&format!("{name}.variance"), self.variance)?;
        Ok(())
    }
}

/// The result of Welch's t-test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WelchTest {
    pub mean_a: f64,
    pub mean_b: f64,
    /// `mean_a − mean_b`.
    pub difference: f64,
    /// `√(s_a²/n_a + s_b²/n_b)`.
    pub standard_error: f64,
    /// `difference / standard_error`.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value from Student's t with `df` degrees of freedom.
    pub p_value: f64,
    /// `difference ± t_{1−α/2, df} · standard_error`.
    pub interval: Interval,
}

/// Welch's unequal-variance t-test from summary statistics (Welch 1947).
///
/// `t = (x̄_a − x̄_b) / √(s_a²/n_a + s_b²/n_b)`, with the Welch–Satterthwaite
/// degrees of freedom
/// `ν = (s_a²/n_a + s_b²/n_b)² / [(s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1)]`.
/// It is the default two-sample test for A/B metrics: it does not assume
/// equal variances and loses almost nothing when they are. Equals
/// `scipy.stats.ttest_ind_from_stats(..., equal_var=False)` and its
/// confidence interval. When both variances are 0 the test is undefined
/// and an error is returned.
pub fn welch_ttest(a: &GroupSummary, b: &GroupSummary, confidence: f64) -> Result<WelchTest> {
    a.check("a")?;
    b.check("b")?;
    confidence_level("confidence", confidence)?;
    let va = a.variance / a.n;
    let vb = b.variance / b.n;
    let var = va + vb;
    if var <= 0.0 || !var.is_finite() {
        return Err(StatsError::Invalid {
            name: "a, b".into(),
            reason: "both groups have zero variance: the t statistic is undefined".into(),
        });
    }
    let se = var.sqrt();
    let diff = a.mean - b.mean;
    let t = diff / se;
    let df = var * var / (va * va / (a.n - 1.0) + vb * vb / (b.n - 1.0));
    let tc = -t_ppf_raw(0.5 * (1.0 - confidence), df);
    Ok(WelchTest {
        mean_a: a.mean,
        mean_b: b.mean,
        difference: diff,
        standard_error: se,
        t,
        df,
        p_value: (2.0 * t_sf_raw(t.abs(), df)).min(1.0),
        interval: Interval {
            low: diff - tc * se,
            high: diff + tc * se,
            confidence,
        },
    })
}

/// [`welch_ttest`] on two raw samples (each at least 2 finite values);
/// equals `scipy.stats.ttest_ind(a, b, equal_var=False)`.
pub fn welch_ttest_samples(a: &[f64], b: &[f64], confidence: f64) -> Result<WelchTest> {
    let sa = GroupSummary::from_sample("a", a)?;
    let sb = GroupSummary::from_sample("b", b)?;
    welch_ttest(&sa, &sb, confidence)
}

/// The result of [`srm_check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SrmCheck {
    /// The counts each group should have had: `total · weight / Σ weights`.
    pub expected_counts: Vec<f64>,
    /// Pearson's `Σ (O − E)² / E`.
    pub statistic: f64,
    /// `groups − 1`.
    pub df: usize,
    pub p_value: f64,
}

/// The sample-ratio-mismatch check: Pearson's chi-square goodness-of-fit
/// test of observed group sizes against the configured traffic split.
///
/// `expected_weights` are relative (e.g. `[1, 1]` or `[0.9, 0.1]`) and are
/// normalised; `χ² = Σ (O_i − E_i)² / E_i` with `k − 1` degrees of freedom.
/// A tiny p-value (the usual alarm threshold is 0.001, not 0.05, since the
/// check runs on every experiment) means assignment or logging is broken
/// and the experiment's results should not be trusted (Fabijan et al.
/// 2019). Equals `scipy.stats.chisquare(observed, expected_counts)`.
pub fn srm_check(observed_counts: &[u64], expected_weights: &[f64]) -> Result<SrmCheck> {
    if observed_counts.is_empty() {
        return Err(StatsError::Empty {
            name: "observed_counts".into(),
        });
    }
    if observed_counts.len() != expected_weights.len() {
        return Err(StatsError::LengthMismatch {
            a: "observed_counts".into(),
            len_a: observed_counts.len(),
            b: "expected_weights".into(),
            len_b: expected_weights.len(),
        });
    }
    if observed_counts.len() < 2 {
        return Err(StatsError::TooFew {
            name: "observed_counts".into(),
            min: 2,
            got: 1,
        });
    }
    for (i, &w) in expected_weights.iter().enumerate() {
        positive(&format!("expected_weights[{i}]"), w)?;
    }
    let total: f64 = observed_counts.iter().map(|&c| c as f64).sum();
    if total == 0.0 {
        return Err(StatsError::Invalid {
            name: "observed_counts".into(),
            reason: "all counts are 0".into(),
        });
    }
    let wsum: f64 = expected_weights.iter().sum();
    let expected: Vec<f64> = expected_weights.iter().map(|w| total * w / wsum).collect();
    let statistic: f64 = observed_counts
        .iter()
        .zip(&expected)
        .map(|(&o, &e)| {
            let d = o as f64 - e;
            d * d / e
        })
        .sum();
    let df = observed_counts.len() - 1;
    Ok(SrmCheck {
        expected_counts: expected,
        statistic,
        df,
        p_value: crate::special::chi2_sf_raw(statistic, df as f64),
    })
}

// ---------------------------------------------------------------------------
// mSPRT: always-valid p-values
// ---------------------------------------------------------------------------

/// `ln Λ` of the normal-mixture SPRT for a difference estimate `diff` with
/// sampling variance `s2` and mixing variance `tau2`.
fn msprt_ln_lr(diff: f64, s2: f64, tau2: f64) -> f64 {
    0.5 * (s2 / (s2 + tau2)).ln() + tau2 * diff * diff / (2.0 * s2 * (s2 + tau2))
}

/// The mixture likelihood ratio of the normal-mixture mSPRT for a
/// difference of two means (Johari, Pekelis & Walsh 2017, "Always Valid
/// Inference: Bringing Sequential Analysis to A/B Testing").
///
/// With `n_a`, `n_b` observations of arms whose observations have variances
/// `variance_a`, `variance_b`, the difference of means `diff = ȳ_a − ȳ_b` is
/// `N(θ, s²)` with `s² = σ_a²/n_a + σ_b²/n_b`. Mixing the alternative over
/// `θ ~ N(0, τ²)` gives
///
/// `Λ = ∫ φ(diff; θ, s²) φ(θ; 0, τ²) dθ / φ(diff; 0, s²)
///    = √(s² / (s² + τ²)) · exp(τ² diff² / (2 s² (s² + τ²)))`
///
/// (for equal allocation `n` per arm and common σ², `s² = 2σ²/n` and this
/// is JPW's `√(V/(V+nτ²)) exp(n²τ² diff² / (2V(V+nτ²)))` with `V = 2σ²`).
/// `Λ_n` is a nonnegative martingale under H0: θ = 0, so by Ville's
/// inequality `P(sup_n Λ_n ≥ 1/α) ≤ α`: stopping the first time
/// `Λ ≥ 1/α` is a level-α test however often one peeks.
///
/// `tau2` should be on the scale of the effects you hope to detect
/// (squared); a value near the prior variance of true effects is best.
/// Returns `+∞` if `Λ` overflows (overwhelming evidence).
pub fn msprt_likelihood_ratio(
    diff: f64,
    n_a: f64,
    n_b: f64,
    variance_a: f64,
    variance_b: f64,
    tau2: f64,
) -> Result<f64> {
    finite("diff", diff)?;
    positive("n_a", n_a)?;
    positive("n_b", n_b)?;
    positive("variance_a", variance_a)?;
    positive("variance_b", variance_b)?;
    positive("tau2", tau2)?;
    let s2 = variance_a / n_a + variance_b / n_b;
    Ok(msprt_ln_lr(diff, s2, tau2).exp())
}

/// Running mean and `n − 1` variance (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    fn variance(&self) -> f64 {
        if self.n > 1 {
            self.m2 / (self.n - 1) as f64
        } else {
            0.0
        }
    }
}

/// Where an [`Msprt`] stands after a peek.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MsprtState {
    pub n_a: u64,
    pub n_b: u64,
    /// `mean_a − mean_b`.
    pub difference: f64,
    /// The variance of `difference` used, `σ_a²/n_a + σ_b²/n_b`.
    pub difference_variance: f64,
    /// `Λ_n` of [`msprt_likelihood_ratio`] (`+∞` on overflow).
    pub likelihood_ratio: f64,
    /// The always-valid p-value `p_n = min(p_{n−1}, 1/Λ_n)`.
    pub p_value: f64,
    /// Whether `p_value ≤ alpha` has happened (it never un-happens).
    pub rejected: bool,
}

/// A sequential mSPRT monitor for the difference of two means: feed it
/// observations as they arrive, [`peek`](Msprt::peek) whenever you like,
/// and stop as soon as `rejected` (see [`msprt_likelihood_ratio`] for the
/// statistic and its guarantee).
///
/// The always-valid p-value `p_n = min(p_{n−1}, 1/Λ_n)` is non-increasing
/// and `P(∃n: p_n ≤ α) ≤ α` under H0, whatever the peeking schedule (a
/// monitor that peeks less often only sees a subset of the `Λ_n`, which
/// keeps the guarantee). The observation variances are either known
/// (`Some(σ²)`, the setting of the theorem) or, with `None`, estimated from
/// the data at each peek — the usual plug-in practice, valid
/// asymptotically; peeks before each arm has 2 observations then return an
/// error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Msprt {
    tau2: f64,
    alpha: f64,
    known_variance: Option<f64>,
    a: Moments,
    b: Moments,
    p_value: f64,
}

impl Msprt {
    /// A monitor with mixing variance `tau2 > 0`, level `alpha` in (0, 1),
    /// and the per-observation variance (`None`: estimate it).
    pub fn new(tau2: f64, alpha: f64, known_variance: Option<f64>) -> Result<Self> {
        positive("tau2", tau2)?;
        confidence_level("alpha", alpha)?;
        if let Some(v) = known_variance {
            positive("known_variance", v)?;
        }
        Ok(Msprt {
            tau2,
            alpha,
            known_variance,
            a: Moments::default(),
            b: Moments::default(),
            p_value: 1.0,
        })
    }

    /// Record one observation of arm A.
    pub fn observe_a(&mut self, x: f64) -> Result<()> {
        self.a.push(finite("x", x)?);
        Ok(())
    }

    /// Record one observation of arm B.
    pub fn observe_b(&mut self, x: f64) -> Result<()> {
        self.b.push(finite("x", x)?);
        Ok(())
    }

    /// Record one observation of each arm.
    pub fn observe_pair(&mut self, a: f64, b: f64) -> Result<()> {
        finite("a", a)?;
        finite("b", b)?;
        self.a.push(a);
        self.b.push(b);
        Ok(())
    }

    /// The current always-valid p-value (1 before any peek).
    pub fn p_value(&self) -> f64 {
        self.p_value
    }

    /// Compute `Λ_n` on everything observed so far and update the
    /// always-valid p-value.
    pub fn peek(&mut self) -> Result<MsprtState> {
        let (va, vb) = match self.known_variance {
            Some(v) => {
                for (name, m) in [("arm a", &self.a), ("arm b", &self.b)] {
                    if m.n == 0 {
                        return Err(StatsError::Empty { name: name.into() });
                    }
                }
                (v, v)
            }
            None => {
                for (name, m) in [("arm a", &self.a), ("arm b", &self.b)] {
                    if m.n < 2 {
                        return Err(StatsError::TooFew {
                            name: name.into(),
                            min: 2,
                            got: m.n as usize,
                        });
                    }
                }
                (self.a.variance(), self.b.variance())
            }
        };
        let s2 = va / self.a.n as f64 + vb / self.b.n as f64;
        if s2 <= 0.0 || !s2.is_finite() {
            return Err(StatsError::Invalid {
                name: "observations".into(),
                reason: "both arms have zero variance so far".into(),
            });
        }
        let diff = self.a.mean - self.b.mean;
        let ln_lr = msprt_ln_lr(diff, s2, self.tau2);
        self.p_value = self.p_value.min((-ln_lr).exp()).min(1.0);
        Ok(MsprtState {
            n_a: self.a.n,
            n_b: self.b.n,
            difference: diff,
            difference_variance: s2,
            likelihood_ratio: ln_lr.exp(),
            p_value: self.p_value,
            rejected: self.p_value <= self.alpha,
        })
    }
}

/// Run an [`Msprt`] over paired observations `(a_i, b_i)`, peeking after
/// every `peek_every` pairs (and after the last), and return the state at
/// each peek. `alpha` only sets the `rejected` flags.
pub fn msprt_sequence(
    pairs: &[(f64, f64)],
    tau2: f64,
    alpha: f64,
    known_variance: Option<f64>,
    peek_every: usize,
) -> Result<Vec<MsprtState>> {
    if pairs.is_empty() {
        return Err(StatsError::Empty {
            name: "pairs".into(),
        });
    }
    if peek_every == 0 {
        return Err(StatsError::OutOfRange {
            name: "peek_every".into(),
            value: 0.0,
            range: "[1, inf)",
        });
    }
    let mut m = Msprt::new(tau2, alpha, known_variance)?;
    let mut out = Vec::with_capacity(pairs.len() / peek_every + 1);
    let min_n = if known_variance.is_some() { 1 } else { 2 };
    for (i, &(a, b)) in pairs.iter().enumerate() {
        m.observe_pair(a, b).map_err(|e| match e {
            StatsError::NotFinite { name, value } => StatsError::NotFinite {
                name: format!("pairs[{i}].{name}"),
                value,
            },
            other => other,
        })?;
        let n = i + 1;
        if n >= min_n && (n.is_multiple_of(peek_every) || n == pairs.len()) {
            out.push(m.peek()?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// CUPED
// ---------------------------------------------------------------------------

/// The result of [`cuped`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cuped {
    /// `θ = cov(y, x) / var(x)`.
    pub theta: f64,
    /// The mean of the covariate that was subtracted.
    pub covariate_mean: f64,
    /// `y_i − θ (x_i − x̄)`.
    pub adjusted: Vec<f64>,
    /// Mean of `adjusted` (equals the mean of `y`).
    pub adjusted_mean: f64,
    /// Sample variance of `adjusted`.
    pub adjusted_variance: f64,
    /// Sample variance of `y`.
    pub original_variance: f64,
    /// `1 − adjusted_variance / original_variance` (= corr(y, x)²).
    pub variance_reduction: f64,
}

fn check_paired(y: &[f64], x: &[f64], y_name: &str, x_name: &str) -> Result<()> {
    sample(y_name, y, 2)?;
    sample(x_name, x, 2)?;
    if y.len() != x.len() {
        return Err(StatsError::LengthMismatch {
            a: y_name.into(),
            len_a: y.len(),
            b: x_name.into(),
            len_b: x.len(),
        });
    }
    Ok(())
}

/// `(x̄, ȳ, cov(y, x), var(x))`, `n − 1` denominators, two passes.
fn cov_stats<'a>(pairs: impl Iterator<Item = (&'a f64, &'a f64)> + Clone) -> (f64, f64, f64, f64) {
    let mut n = 0.0;
    let (mut sy, mut sx) = (0.0, 0.0);
    for (y, x) in pairs.clone() {
        n += 1.0;
        sy += y;
        sx += x;
    }
    let (my, mx) = (sy / n, sx / n);
    let (mut cxy, mut cxx) = (0.0, 0.0);
    for (y, x) in pairs {
        cxy += (y - my) * (x - mx);
        cxx += (x - mx) * (x - mx);
    }
    (mx, my, cxy / (n - 1.0), cxx / (n - 1.0))
}

fn adjust(y: &[f64], x: &[f64], theta: f64, mean_x: f64) -> Vec<f64> {
    y.iter()
        .zip(x)
        .map(|(&yi, &xi)| yi - theta * (xi - mean_x))
        .collect()
}

/// CUPED (Controlled-experiment Using Pre-Experiment Data; Deng, Xu,
/// Kohavi & Walker 2013): adjust a metric `y` by a pre-experiment
/// covariate `x_pre` (typically the same metric before the experiment),
/// `y_i − θ (x_i − x̄)` with `θ = cov(y, x)/var(x)`, the OLS slope that
/// minimises the adjusted variance `var(y)(1 − ρ²)`.
///
/// The adjusted mean is unbiased for the treatment effect because `x` is
/// measured before assignment. `y` and `x_pre` must pair up (same length,
/// ≥ 2 values); a constant `x_pre` is an error (θ undefined).
pub fn cuped(y: &[f64], x_pre: &[f64]) -> Result<Cuped> {
    check_paired(y, x_pre, "y", "x_pre")?;
    let (mx, _, cxy, vx) = cov_stats(y.iter().zip(x_pre));
    if vx <= 0.0 {
        return Err(StatsError::Invalid {
            name: "x_pre".into(),
            reason: "constant covariate: theta = cov/var is undefined".into(),
        });
    }
    let theta = cxy / vx;
    let adjusted = adjust(y, x_pre, theta, mx);
    let (adjusted_mean, adjusted_variance) = mean_var(&adjusted);
    let (_, original_variance) = mean_var(y);
    Ok(Cuped {
        theta,
        covariate_mean: mx,
        adjusted,
        adjusted_mean,
        adjusted_variance,
        original_variance,
        variance_reduction: if original_variance > 0.0 {
            1.0 - adjusted_variance / original_variance
        } else {
            0.0
        },
    })
}

/// The result of [`cuped_compare`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CupedComparison {
    /// θ estimated once on all groups' data pooled together.
    pub theta: f64,
    /// The pooled covariate mean that was subtracted.
    pub covariate_mean: f64,
    /// Size, adjusted mean and adjusted variance of each group.
    pub groups: Vec<GroupSummary>,
    /// Per group, `1 − adjusted variance / unadjusted variance`.
    pub variance_reduction: Vec<f64>,
    /// Welch's test of each group `k ≥ 1` against group 0 (the control),
    /// on the adjusted metric: `comparisons[k − 1]` has
    /// `difference = mean_k − mean_0`.
    pub comparisons: Vec<WelchTest>,
}

/// CUPED for an experiment: `groups[k] = (y, x_pre)` per arm, group 0 the
/// control. One θ is estimated on the concatenation of all groups
/// (`cov(y, x)/var(x)` around the pooled means, as Deng et al.
/// recommend: a per-group θ would bias the comparison), every group is
/// adjusted with it around the pooled covariate mean, and each treatment
/// is compared with the control by [`welch_ttest`] on the adjusted values.
pub fn cuped_compare(groups: &[(&[f64], &[f64])], confidence: f64) -> Result<CupedComparison> {
    if groups.len() < 2 {
        return Err(StatsError::TooFew {
            name: "groups".into(),
            min: 2,
            got: groups.len(),
        });
    }
    confidence_level("confidence", confidence)?;
    for (k, (y, x)) in groups.iter().enumerate() {
        check_paired(
            y,
            x,
            &format!("groups[{k}].y"),
            &format!("groups[{k}].x_pre"),
        )?;
    }
    let all = groups.iter().flat_map(|(y, x)| y.iter().zip(x.iter()));
    let (mx, _, cxy, vx) = cov_stats(all);
    if vx <= 0.0 {
        return Err(StatsError::Invalid {
            name: "x_pre".into(),
            reason: "constant covariate across all groups: theta is undefined".into(),
        });
    }
    let theta = cxy / vx;
    let mut summaries = Vec::with_capacity(groups.len());
    let mut reductions = Vec::with_capacity(groups.len());
    for (k, (y, x)) in groups.iter().enumerate() {
        let adj = adjust(y, x, theta, mx);
        let s = GroupSummary::from_sample(&format!("groups[{k}]"), &adj)?;
        let (_, vy) = mean_var(y);
        reductions.push(if vy > 0.0 { 1.0 - s.variance / vy } else { 0.0 });
        summaries.push(s);
    }
    let comparisons = summaries[1..]
        .iter()
        .map(|s| welch_ttest(s, &summaries[0], confidence))
        .collect::<Result<Vec<_>>>()?;
    Ok(CupedComparison {
        theta,
        covariate_mean: mx,
        groups: summaries,
        variance_reduction: reductions,
        comparisons,
    })
}

// ---------------------------------------------------------------------------
// Bayesian: probability to be best, expected loss
// ---------------------------------------------------------------------------

/// Per-arm Monte Carlo decision quantities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmPosterior {
    /// Posterior mean of the arm's rate or mean.
    pub posterior_mean: f64,
    /// `P(this arm has the highest true value | data)`.
    pub prob_best: f64,
    /// Monte Carlo standard error of `prob_best`, `√(p(1−p)/draws)`.
    pub prob_best_se: f64,
    /// `E[max_j θ_j − θ_this]`: what choosing this arm costs, in the
    /// metric's units, relative to an oracle that knows the best arm.
    pub expected_loss: f64,
    /// Monte Carlo standard error of `expected_loss`.
    pub expected_loss_se: f64,
}

/// The result of [`beta_bernoulli_best`] and [`gaussian_best`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestArm {
    pub arms: Vec<ArmPosterior>,
    pub draws: usize,
    pub seed: u64,
}

/// Monte Carlo over joint posterior draws: `sample(rng, k)` draws arm `k`.
fn monte_carlo_best(
    k: usize,
    means: Vec<f64>,
    draws: usize,
    seed: u64,
    mut sample: impl FnMut(&mut Rng, usize) -> f64,
) -> BestArm {
    let mut rng = Rng::from_seed(seed);
    let mut wins = vec![0u64; k];
    let mut loss_sum = vec![0.0; k];
    let mut loss_sq = vec![0.0; k];
    let mut theta = vec![0.0; k];
    for _ in 0..draws {
        let mut best = 0;
        for (j, t) in theta.iter_mut().enumerate() {
            *t = sample(&mut rng, j);
        }
        for j in 1..k {
            if theta[j] > theta[best] {
                best = j;
            }
        }
        wins[best] += 1;
        let max = theta[best];
        for j in 0..k {
            let l = max - theta[j];
            loss_sum[j] += l;
            loss_sq[j] += l * l;
        }
    }
    let d = draws as f64;
    let arms = (0..k)
        .map(|j| {
            let p = wins[j] as f64 / d;
            let mean_loss = loss_sum[j] / d;
            let var_loss = if draws > 1 {
                ((loss_sq[j] - d * mean_loss * mean_loss) / (d - 1.0)).max(0.0)
            } else {
                0.0
            };
            ArmPosterior {
                posterior_mean: means[j],
                prob_best: p,
                prob_best_se: (p * (1.0 - p) / d).sqrt(),
                expected_loss: mean_loss,
                expected_loss_se: (var_loss / d).sqrt(),
            }
        })
        .collect();
    BestArm { arms, draws, seed }
}

fn check_draws(draws: usize) -> Result<()> {
    if draws == 0 {
        return Err(StatsError::OutOfRange {
            name: "draws".into(),
            value: 0.0,
            range: "[1, inf)",
        });
    }
    Ok(())
}

/// Bayesian comparison of conversion rates: arm `k` has `arms[k] =
/// (successes, trials)` and a Beta(`prior.0`, `prior.1`) prior, so its
/// posterior is Beta(a + s, b + n − s). Returns, per arm, the posterior
/// probability to be the best arm and the expected loss
/// `E[max_j p_j − p_k]`, by Monte Carlo with `draws` joint posterior draws
/// from [`Rng::from_seed`]`(seed)` (deterministic for a seed; the standard
/// errors say how far from the exact integrals the estimates may be).
///
/// A common stopping rule is "ship the arm whose expected loss is below a
/// threshold of caring" (Stucchio 2015). For two arms the probability has
/// a closed form, [`prob_beta_greater`].
pub fn beta_bernoulli_best(
    arms: &[(u64, u64)],
    prior: (f64, f64),
    draws: usize,
    seed: u64,
) -> Result<BestArm> {
    if arms.is_empty() {
        return Err(StatsError::Empty {
            name: "arms".into(),
        });
    }
    positive("prior.0", prior.0)?;
    positive("prior.1", prior.1)?;
    check_draws(draws)?;
    let mut params = Vec::with_capacity(arms.len());
    for (k, &(s, n)) in arms.iter().enumerate() {
        if s > n {
            return Err(StatsError::Invalid {
                name: format!("arms[{k}]"),
                reason: format!("{s} successes exceed {n} trials"),
            });
        }
        params.push((prior.0 + s as f64, prior.1 + (n - s) as f64));
    }
    let means = params.iter().map(|(a, b)| a / (a + b)).collect();
    Ok(monte_carlo_best(
        arms.len(),
        means,
        draws,
        seed,
        |rng, j| rng.beta_raw(params[j].0, params[j].1),
    ))
}

/// Bayesian comparison of continuous metrics: arm `k` is summarised by
/// `arms[k]` (n, sample mean, variance of one observation), and the
/// posterior of its mean is `N(mean, variance / n)` — exact for a known
/// variance under a flat prior, and the large-sample approximation when
/// the variance is estimated (the exact Jeffreys posterior is a t with
/// `n − 1` df, indistinguishable for the n of an A/B test). Returns the
/// probability to be best and expected loss per arm, as
/// [`beta_bernoulli_best`].
pub fn gaussian_best(arms: &[GroupSummary], draws: usize, seed: u64) -> Result<BestArm> {
    if arms.is_empty() {
        return Err(StatsError::Empty {
            name: "arms".into(),
        });
    }
    check_draws(draws)?;
    let mut params = Vec::with_capacity(arms.len());
    for (k, a) in arms.iter().enumerate() {
        positive(&format!("arms[{k}].n"), a.n)?;
        finite(&format!("arms[{k}].mean"), a.mean)?;
        non_negative(&format!("arms[{k}].variance"), a.variance)?;
        params.push((a.mean, (a.variance / a.n).sqrt()));
    }
    let means = params.iter().map(|p| p.0).collect();
    Ok(monte_carlo_best(
        arms.len(),
        means,
        draws,
        seed,
        |rng, j| params[j].0 + params[j].1 * rng.normal(),
    ))
}

/// `P(X_b > X_a)` for independent `X_a ~ Beta(a.0, a.1)` and
/// `X_b ~ Beta(b.0, b.1)`, exactly, by Evan Miller's closed form
/// ("Formulas for Bayesian A/B Testing", 2014):
///
/// `Σ_{i=0}^{α_b−1} B(α_a + i, β_a + β_b) / ((β_b + i) B(1 + i, β_b) B(α_a, β_a))`.
///
/// `b.0` (α_b) must be a positive integer — true for a Beta(1, 1) or any
/// integer prior updated with counts; the sum has `α_b` terms, so keep it
/// below ~10⁷.
pub fn prob_beta_greater(a: (f64, f64), b: (f64, f64)) -> Result<f64> {
    positive("a.0", a.0)?;
    positive("a.1", a.1)?;
    positive("b.0", b.0)?;
    positive("b.1", b.1)?;
    if b.0.fract() != 0.0 || b.0 > 1e7 {
        return Err(StatsError::Invalid {
            name: "b.0".into(),
            reason: format!(
                "must be an integer up to 1e7 for the closed form, got {}",
                b.0
            ),
        });
    }
    let (aa, ba) = a;
    let (ab, bb) = b;
    let base = crate::special::ln_beta(aa, ba)?;
    let mut total = 0.0;
    let mut i = 0.0;
    while i < ab {
        total += (crate::special::ln_beta(aa + i, ba + bb)?
            - (bb + i).ln()
            - crate::special::ln_beta(1.0 + i, bb)?
            - base)
            .exp();
        i += 1.0;
    }
    Ok(total.clamp(0.0, 1.0))
}
