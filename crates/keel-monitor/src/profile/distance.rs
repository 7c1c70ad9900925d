//! Distances between two numeric profiles, for data too large to compare
//! value by value.
//!
//! Each profile gives a step-function CDF: its exact values in exact mode,
//! or its KLL sketch, whose CDF `F̂` is within ε of the true `F` at every `x`
//! (ε = [`kll::normalized_rank_error`](super::kll::normalized_rank_error),
//! 99% confidence, 0 in exact mode). Hence, with `[minᵢ, maxᵢ]` the range of
//! profile `i` (outside it both `F̂ᵢ` and `Fᵢ` are 0 or 1):
//!
//! * Kolmogorov–Smirnov: `|D̂ − D| ≤ ε_ref + ε_cur`;
//! * 1-Wasserstein: `|Ŵ − W| ≤ W(F̂_ref, F_ref) + W(F̂_cur, F_cur)
//!   ≤ ε_ref·(max_ref − min_ref) + ε_cur·(max_cur − min_cur)`,
//!   by the triangle inequality and `W(F̂, F) = ∫|F̂ − F| dx`.
//!
//! When both profiles are exact the results are the exact statistics of the
//! two samples.

use serde::{Deserialize, Serialize};

use super::float_serde;
use super::kll::Cdf;
use super::{NumericProfile, ProfileError};

/// A distance computed from two profiles, with a bound on its error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistanceEstimate {
    #[serde(with = "float_serde")]
    pub value: f64,
    /// `|value − exact value| ≤ error_bound` (with 99% confidence when a
    /// sketch is involved; 0 when both profiles are exact).
    #[serde(with = "float_serde")]
    pub error_bound: f64,
    /// Both profiles were in exact mode.
    pub exact: bool,
}

/// The 1-Wasserstein (earth mover's) distance `∫₀¹ |Q_ref(q) − Q_cur(q)| dq`
/// between the finite values of two profiles.
pub fn approx_wasserstein(
    reference: &NumericProfile,
    current: &NumericProfile,
) -> Result<DistanceEstimate, ProfileError> {
    let (a, b) = cdfs(reference, current)?;
    let range = |p: &NumericProfile| match (p.min(), p.max()) {
        (Some(min), Some(max)) => max - min,
        _ => 0.0,
    };
    Ok(DistanceEstimate {
        value: wasserstein(&a, &b),
        error_bound: reference.rank_error_bound() * range(reference)
            + current.rank_error_bound() * range(current),
        exact: reference.is_exact() && current.is_exact(),
    })
}

/// The two-sample Kolmogorov–Smirnov statistic `sup_x |F_ref(x) − F_cur(x)|`
/// between the finite values of two profiles.
pub fn approx_ks_statistic(
    reference: &NumericProfile,
    current: &NumericProfile,
) -> Result<DistanceEstimate, ProfileError> {
    let (a, b) = cdfs(reference, current)?;
    Ok(DistanceEstimate {
        value: ks(&a, &b),
        error_bound: reference.rank_error_bound() + current.rank_error_bound(),
        exact: reference.is_exact() && current.is_exact(),
    })
}

fn cdfs<'a>(
    reference: &'a NumericProfile,
    current: &'a NumericProfile,
) -> Result<(Cdf<'a>, Cdf<'a>), ProfileError> {
    let a = reference
        .cdf()
        .ok_or(ProfileError::NoFiniteValues { which: "reference" })?;
    let b = current
        .cdf()
        .ok_or(ProfileError::NoFiniteValues { which: "current" })?;
    Ok((a, b))
}

/// Neumaier's compensated sum.
#[derive(Default)]
struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Sweeps the quantile functions. Positions on the q axis are integers in
/// units of `1/(n_a·n_b)` (cross-multiplied cumulative weights), so segment
/// lengths are exact before their one rounding.
fn wasserstein(a: &Cdf<'_>, b: &Cdf<'_>) -> f64 {
    let (na, nb) = (u128::from(a.total), u128::from(b.total));
    let denominator = (na * nb) as f64;
    let (mut i, mut j) = (0, 0);
    let mut previous = 0u128;
    let mut total = Sum::default();
    while i < a.len() && j < b.len() {
        let ca = u128::from(a.cumulative_at(i)) * nb;
        let cb = u128::from(b.cumulative_at(j)) * na;
        let next = ca.min(cb);
        let length = next.saturating_sub(previous) as f64 / denominator;
        total.add(length * (a.values[i] - b.values[j]).abs());
        previous = next;
        if ca <= cb {
            i += 1;
        }
        if cb <= ca {
            j += 1;
        }
    }
    total.value()
}

/// Evaluates both CDFs at every value of either and keeps the largest gap,
/// compared exactly in integers.
fn ks(a: &Cdf<'_>, b: &Cdf<'_>) -> f64 {
    let (na, nb) = (u128::from(a.total), u128::from(b.total));
    let (mut i, mut j) = (0, 0);
    let (mut ca, mut cb) = (0u128, 0u128);
    let mut largest = 0u128;
    while i < a.len() || j < b.len() {
        let x = match (a.values.get(i), b.values.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) | (None, Some(&x)) => x,
            (None, None) => break,
        };
        while i < a.len() && a.values[i] <= x {
            i += 1;
        }
        while j < b.len() && b.values[j] <= x {
            j += 1;
        }
        if i > 0 {
            ca = u128::from(a.cumulative_at(i - 1)) * nb;
        }
        if j > 0 {
            cb = u128::from(b.cumulative_at(j - 1)) * na;
        }
        largest = largest.max(ca.abs_diff(cb));
    }
    largest as f64 / (na * nb) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::NumericConfig;
    use keel_stats::Rng;

    /// scipy.stats.wasserstein_distance's method: ∫ |F_u − F_v| dx over the
    /// sorted union of the samples.
    fn exact_wasserstein(u: &[f64], v: &[f64]) -> f64 {
        let mut u = u.to_vec();
        let mut v = v.to_vec();
        u.sort_by(f64::total_cmp);
        v.sort_by(f64::total_cmp);
        let mut all: Vec<f64> = u.iter().chain(&v).copied().collect();
        all.sort_by(f64::total_cmp);
        let (nu, nv) = (u.len() as i128, v.len() as i128);
        let mut total = 0.0;
        for w in all.windows(2) {
            let cu = u.partition_point(|&x| x <= w[0]) as i128;
            let cv = v.partition_point(|&x| x <= w[0]) as i128;
            let gap = (cu * nv - cv * nu).abs() as f64 / (nu * nv) as f64;
            total += gap * (w[1] - w[0]);
        }
        total
    }

    /// scipy.stats.ks_2samp's statistic.
    fn exact_ks(u: &[f64], v: &[f64]) -> f64 {
        let mut u = u.to_vec();
        let mut v = v.to_vec();
        u.sort_by(f64::total_cmp);
        v.sort_by(f64::total_cmp);
        let (nu, nv) = (u.len() as f64, v.len() as f64);
        u.iter()
            .chain(&v)
            .map(|&x| {
                let fu = u.partition_point(|&y| y <= x) as f64 / nu;
                let fv = v.partition_point(|&y| y <= x) as f64 / nv;
                (fu - fv).abs()
            })
            .fold(0.0, f64::max)
    }

    fn sample(rng: &mut Rng, n: usize, kind: &str) -> Vec<f64> {
        (0..n)
            .map(|_| match kind {
                "normal" => rng.normal(),
                "shifted" => 0.3 + 1.2 * rng.normal(),
                "exponential" => -(1.0 - rng.next_f64()).ln(),
                "lognormal" => (0.5 * rng.normal()).exp(),
                "uniform" => rng.next_f64(),
                // Integers 0..20: many ties.
                _ => (rng.next_f64() * 20.0).floor(),
            })
            .collect()
    }

    #[test]
    fn exact_mode_equals_the_exact_statistics() {
        let mut rng = Rng::from_seed(11);
        for (n, m, a, b) in [
            (1, 1, "normal", "normal"),
            (1, 5, "normal", "uniform"),
            (500, 700, "normal", "shifted"),
            (2000, 1500, "exponential", "lognormal"),
            (3000, 3000, "ties", "ties"),
            (999, 1000, "uniform", "ties"),
        ] {
            let u = sample(&mut rng, n, a);
            let v = sample(&mut rng, m, b);
            let pu = NumericProfile::from_values(&u);
            let pv = NumericProfile::from_values(&v);
            let w = approx_wasserstein(&pu, &pv).unwrap();
            let want = exact_wasserstein(&u, &v);
            assert!(w.exact && w.error_bound == 0.0);
            assert!(
                (w.value - want).abs() <= 1e-12 * want.abs().max(f64::MIN_POSITIVE),
                "{a} vs {b}: {} vs {want}",
                w.value
            );
            let d = approx_ks_statistic(&pu, &pv).unwrap();
            assert!((d.value - exact_ks(&u, &v)).abs() <= 1e-15, "{a} vs {b}");
        }
        let same = NumericProfile::from_values(&[1.0, 2.0, 2.0]);
        assert_eq!(approx_wasserstein(&same, &same).unwrap().value, 0.0);
        assert_eq!(approx_ks_statistic(&same, &same).unwrap().value, 0.0);
    }

    #[test]
    fn empty_profiles_are_an_error_not_a_panic() {
        let empty = NumericProfile::new();
        let mut nulls = NumericProfile::new();
        nulls.extend(&[f64::NAN, f64::INFINITY]);
        let full = NumericProfile::from_values(&[1.0]);
        for (a, b) in [(&empty, &full), (&full, &nulls), (&empty, &empty)] {
            assert!(matches!(
                approx_wasserstein(a, b),
                Err(ProfileError::NoFiniteValues { .. })
            ));
            assert!(approx_ks_statistic(a, b).is_err());
        }
    }

    /// 1,000,000 values per side from several distributions, sketched:
    /// |approx − exact| stays within the documented bound.
    #[test]
    fn sketched_distances_stay_within_their_bounds() {
        let mut rng = Rng::from_seed(2024);
        let n = 1_000_000;
        for (a, b) in [
            ("normal", "shifted"),
            ("exponential", "lognormal"),
            ("uniform", "uniform"),
        ] {
            let u = sample(&mut rng, n, a);
            let v = sample(&mut rng, n, b);
            let sketch = |values: &[f64], seed| {
                NumericProfile::from_values_with(
                    NumericConfig {
                        seed,
                        ..NumericConfig::default()
                    },
                    values,
                )
                .unwrap()
            };
            let (pu, pv) = (sketch(&u, 1), sketch(&v, 2));
            assert!(!pu.is_exact() && !pv.is_exact());
            let w = approx_wasserstein(&pu, &pv).unwrap();
            let exact_w = exact_wasserstein_equal_sizes(&u, &v);
            assert!(
                (w.value - exact_w).abs() <= w.error_bound,
                "{a}/{b}: W1 {} vs {exact_w}, bound {}",
                w.value,
                w.error_bound
            );
            let d = approx_ks_statistic(&pu, &pv).unwrap();
            let exact_d = exact_ks_sorted(&u, &v);
            assert!(
                (d.value - exact_d).abs() <= d.error_bound,
                "{a}/{b}: KS {} vs {exact_d}, bound {}",
                d.value,
                d.error_bound
            );
            println!(
                "{a}/{b}: W1 {:.6} exact {exact_w:.6} |err| {:.2e} bound {:.2e}; KS {:.6} exact {exact_d:.6} |err| {:.2e} bound {:.2e}",
                w.value,
                (w.value - exact_w).abs(),
                w.error_bound,
                d.value,
                (d.value - exact_d).abs(),
                d.error_bound
            );
        }
    }

    /// For two samples of the same size n, the quantile functions pair the
    /// sorted values: W₁ = Σ|u₍ᵢ₎ − v₍ᵢ₎| / n. Linear after sorting.
    fn exact_wasserstein_equal_sizes(u: &[f64], v: &[f64]) -> f64 {
        assert_eq!(u.len(), v.len());
        let mut u = u.to_vec();
        let mut v = v.to_vec();
        u.sort_by(f64::total_cmp);
        v.sort_by(f64::total_cmp);
        u.iter().zip(&v).map(|(x, y)| (x - y).abs()).sum::<f64>() / u.len() as f64
    }

    /// [`exact_ks`] as one merge of the sorted samples.
    fn exact_ks_sorted(u: &[f64], v: &[f64]) -> f64 {
        let mut u = u.to_vec();
        let mut v = v.to_vec();
        u.sort_by(f64::total_cmp);
        v.sort_by(f64::total_cmp);
        let (nu, nv) = (u.len() as f64, v.len() as f64);
        let (mut i, mut j) = (0, 0);
        let mut d = 0.0f64;
        while i < u.len() || j < v.len() {
            let x = match (u.get(i), v.get(j)) {
                (Some(&x), Some(&y)) => x.min(y),
                (Some(&x), None) | (None, Some(&x)) => x,
                (None, None) => break,
            };
            while u.get(i).is_some_and(|&y| y <= x) {
                i += 1;
            }
            while v.get(j).is_some_and(|&y| y <= x) {
                j += 1;
            }
            d = d.max((i as f64 / nu - j as f64 / nv).abs());
        }
        d
    }

    #[test]
    fn fast_references_agree_with_the_straightforward_ones() {
        let mut rng = Rng::from_seed(5);
        let u = sample(&mut rng, 2000, "ties");
        let v = sample(&mut rng, 2000, "normal");
        let (a, b) = (
            exact_wasserstein(&u, &v),
            exact_wasserstein_equal_sizes(&u, &v),
        );
        assert!((a - b).abs() <= 1e-12 * a);
        assert_eq!(exact_ks(&u, &v), exact_ks_sorted(&u, &v));
    }
}
