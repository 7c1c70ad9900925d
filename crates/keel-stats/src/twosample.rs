//! Two-sample distribution statistics for model-drift monitoring: is the
//! current window of a feature (or of the model's scores) distributed like
//! the reference window?
//!
//! | question | function | equals |
//! | --- | --- | --- |
//! | largest gap between the two empirical cdfs, and its p-value | [`ks_2samp`] | `scipy.stats.ks_2samp(a, b)` |
//! | ... its large-sample null distribution | [`kstwo_sf`] | `scipy.stats.kstwo.sf(d, n)` |
//! | how far must mass move to turn one sample into the other? | [`wasserstein_distance`] | `scipy.stats.wasserstein_distance(u, v)` |
//! | L2 distance between the cdfs (Székely's energy distance) | [`energy_distance`] | `scipy.stats.energy_distance(u, v)` |
//! | tail-weighted cdf distance, and its p-value | [`anderson_ksamp`] | `scipy.stats.anderson_ksamp([a, b])` |
//! | rank-based integrated cdf distance, and its p-value | [`cramervonmises_2samp`] | `scipy.stats.cramervonmises_2samp(a, b)` |
//! | do observed category counts fit the expected ones? | [`chisquare`] | `scipy.stats.chisquare(f_obs, f_exp)` |
//! | are two categorical variables independent? | [`chi2_contingency`] | `scipy.stats.chi2_contingency(table, correction)` |
//! | divergence between two histograms | [`jensenshannon`] | `scipy.spatial.distance.jensenshannon(p, q, base)` |
//! | Evidently's histogram scores | [`psi`], [`kl_div`], [`hellinger`], [`fill_zero_percents`] | Evidently 0.7 legacy stattests |
//! | Evidently's two-proportion z-test | [`proportions_z_test`] | Evidently's `z` stattest |
//!
//! Every function equals its reference to 1e-9 relative, or 1e-12 absolute
//! for values near zero — in practice to ~1e-12 relative or better (see
//! `tests/reference.rs`). The Kolmogorov and Cramér–von Mises null
//! distributions follow scipy's own algorithms and switch between them
//! where scipy does, so the p-values are scipy's rather than a different
//! approximation of the same quantity.
//!
//! **Sorted inputs.** The sample-based statistics take each sample already
//! sorted ascending (`a_sorted`, `u_sorted`, ...): a drift check computes
//! several statistics on the same two columns, so the caller sorts each
//! column once (with [`sorted`], or any sort that orders like
//! [`f64::total_cmp`]) and every statistic is then a single `O(n1 + n2)`
//! merge of the two columns, allocating nothing per element. The
//! order is checked (also `O(n)`), and an unsorted or non-finite input is an
//! error naming it. `-0.0` and `0.0` count as tied, as in numpy.

mod cvm;
mod kolmogorov;

use crate::special::{chi2_sf_raw, norm_cdf_raw};
use crate::{Result, StatsError};
use serde::Serialize;

/// A sorted copy of `values` (ascending by [`f64::total_cmp`]), ready for
/// the sample-based statistics of this module. Sort each column once and
/// reuse it for every statistic.
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    out.sort_unstable_by(f64::total_cmp);
    out
}

/// How a p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PValueMethod {
    /// From the exact permutation distribution of the statistic.
    Exact,
    /// From the statistic's limiting distribution.
    Asymptotic,
}

/// A finite, ascending, non-empty sample of at least `min` values.
fn sorted_sample(name: &str, values: &[f64], min: usize) -> Result<()> {
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
    // Fast path: a branch-free scan the compiler can vectorise.
    let bad = values.iter().fold(false, |bad, v| bad | !v.is_finite())
        | values
            .iter()
            .zip(&values[1..])
            .fold(false, |bad, (x, y)| bad | (x > y));
    if !bad {
        return Ok(());
    }
    let mut prev = f64::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(StatsError::NotFinite {
                name: format!("{name}[{i}]"),
                value: v,
            });
        }
        if v < prev {
            return Err(StatsError::Invalid {
                name: name.to_string(),
                reason: format!(
                    "must be sorted ascending (see twosample::sorted), but {name}[{}] = {prev} > {name}[{i}] = {v}",
                    i - 1
                ),
            });
        }
        prev = v;
    }
    Ok(())
}

/// `n1 · n2` fits comfortably in `i64` (so do all the walks' integers).
fn sizes(a: &[f64], b: &[f64]) -> Result<(i64, i64)> {
    let (n1, n2) = (a.len() as i64, b.len() as i64);
    match n1.checked_mul(n2) {
        Some(p) if p < (1i64 << 60) => Ok((n1, n2)),
        _ => Err(StatsError::Invalid {
            name: "a, b".into(),
            reason: format!("samples of {n1} and {n2} values are too large to compare"),
        }),
    }
}

/// Walks two sorted samples in merged order, calling `f(z, fa, fb)` once
/// per distinct value `z` with its multiplicity in each sample.
///
/// One element is taken per step without branching on which sample it
/// comes from (on random data that branch is a coin flip the CPU keeps
/// mispredicting); a run of equal values is emitted when the next merged
/// value differs, which on continuous data is every step and so
/// predictable. ~4 ns an element, ties or not.
#[inline(always)]
fn for_each_distinct(a: &[f64], b: &[f64], mut f: impl FnMut(f64, usize, usize)) {
    let mut prev = match (a.first(), b.first()) {
        (Some(&x), Some(&y)) => x.min(y),
        (Some(&x), None) => x,
        (None, Some(&y)) => y,
        (None, None) => return,
    };
    let (mut i, mut j) = (0usize, 0usize);
    let (mut gi, mut gj) = (0usize, 0usize);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        let take_a = x <= y;
        let z = if take_a { x } else { y };
        if z != prev {
            f(prev, i - gi, j - gj);
            (gi, gj, prev) = (i, j, z);
        }
        i += usize::from(take_a);
        j += usize::from(!take_a);
    }
    // At most one sample has values left; the run in progress may go on.
    for &z in &a[i..] {
        if z != prev {
            f(prev, i - gi, j - gj);
            (gi, gj, prev) = (i, j, z);
        }
        i += 1;
    }
    for &z in &b[j..] {
        if z != prev {
            f(prev, i - gi, j - gj);
            (gi, gj, prev) = (i, j, z);
        }
        j += 1;
    }
    f(prev, i - gi, j - gj);
}

// ---------------------------------------------------------------------------
// Kolmogorov–Smirnov

/// The result of [`ks_2samp`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KsTest {
    /// `D = sup_x |F_a(x) − F_b(x)|`.
    pub statistic: f64,
    /// Two-sided p-value `P(D ≥ d)` under H0 (same distribution).
    pub p_value: f64,
    /// Whether the p-value is exact or from the limiting distribution.
    pub method: PValueMethod,
}

/// The two-sample Kolmogorov–Smirnov test, two-sided: the largest vertical
/// gap between the two empirical cdfs, and how surprising it is if both
/// samples come from one continuous distribution.
///
/// Equals `scipy.stats.ks_2samp(a, b)` (defaults: `alternative='two-sided'`,
/// `method='auto'`), including scipy's choice of p-value:
///
/// * when `max(n1, n2) ≤ 10 000` the exact p-value, by counting the
///   lattice paths that leave the band `|i/n1 − j/n2| < D` (Hodges 1958):
///   `O(n)` for equal sizes, `O(n1 · min(n2, 2·D·n2))` otherwise — at most
///   `n1·n2 ≤ 10⁸` steps (~0.5 s, as long as scipy takes) when `D` is near
///   1, ~50 ms at `D = 0.05` for 10 000 values each; completely separated
///   samples (`D = 1`) take the closed form `2/C(n1+n2, n1)` instead;
/// * otherwise (or if the exact computation fails, which for equal sizes
///   happens when rounding puts it a hair above 1, as scipy also does)
///   `kstwo.sf(D, round(n1·n2/(n1+n2)))`, the exact distribution of the
///   *one-sample* statistic at the effective size, with scipy's own
///   algorithms (see `kolmogorov.rs`).
///
/// Both inputs must be sorted ascending; ties are allowed (the cdfs are
/// evaluated after each distinct value). This is Evidently's `ks` stattest,
/// which reports this p-value (drift when `p ≤ threshold`, default 0.05).
pub fn ks_2samp(a_sorted: &[f64], b_sorted: &[f64]) -> Result<KsTest> {
    sorted_sample("a_sorted", a_sorted, 1)?;
    sorted_sample("b_sorted", b_sorted, 1)?;
    let (n1, n2) = sizes(a_sorted, b_sorted)?;
    // D·n1·n2 = max |i·n2 − j·n1| over the merged order, exactly.
    let (mut i, mut j) = (0i64, 0i64);
    let mut best = 0i64;
    let mut at = (0i64, 0i64);
    for_each_distinct(a_sorted, b_sorted, |_, fa, fb| {
        i += fa as i64;
        j += fb as i64;
        let gap = (i * n2 - j * n1).abs();
        if gap > best {
            best = gap;
            at = (i, j);
        }
    });
    let g = cvm::gcd(n1 as u64, n2 as u64);
    let lcm = (n1 as u64 / g) * n2 as u64;
    let mut d = ((at.0 as f64 / n1 as f64) - (at.1 as f64 / n2 as f64)).abs();
    if n1.max(n2) <= 10_000 {
        let h = best as u64 / g;
        d = h as f64 / lcm as f64;
        let p = if h == 0 {
            1.0
        } else if n1 == n2 {
            kolmogorov::prob_outside_square(n1 as u64, h)
        } else if h == lcm {
            kolmogorov::prob_disjoint(n1 as u64, n2 as u64)
        } else {
            kolmogorov::prob_outside_band(n1 as u64, n2 as u64, g, h)
        };
        if (0.0..=1.0).contains(&p) {
            return Ok(KsTest {
                statistic: d,
                p_value: p,
                method: PValueMethod::Exact,
            });
        }
    }
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    let p = kolmogorov::kstwo_sf(en.max(1.0) as u64, d);
    Ok(KsTest {
        statistic: d,
        p_value: p.clamp(0.0, 1.0),
        method: PValueMethod::Asymptotic,
    })
}

/// The survival function of the two-sided one-sample Kolmogorov–Smirnov
/// statistic, `P(D_n ≥ d)` for a sample of `n ≥ 1` values from a
/// continuous distribution: the null distribution [`ks_2samp`] falls back on
/// (at `n = round(n1·n2/(n1+n2))`) when the samples are large.
///
/// Equals `scipy.stats.kstwo.sf(d, n)`, with scipy's choice of algorithm
/// (Simard & L'Ecuyer 2011) for each `(n, d)`: Ruben–Gambino closed forms
/// near the ends of the support, the Durbin matrix or Pomeranz's recursion
/// for small `n·d²`, the Pelz–Good series for large `n` and moderate
/// `n·d²`, and twice the one-sided Smirnov tail otherwise (an `O(n)` sum up
/// to `n = 10⁶`, then cephes' closed-form approximation). `d` outside
/// `(1/2n, 1)` gives 1 or 0.
pub fn kstwo_sf(n: u64, d: f64) -> Result<f64> {
    if n == 0 {
        return Err(StatsError::OutOfRange {
            name: "n".into(),
            value: 0.0,
            range: "[1, inf)",
        });
    }
    crate::finite("d", d)?;
    Ok(kolmogorov::kstwo_sf(n, d))
}

// ---------------------------------------------------------------------------
// Distances between empirical cdfs

/// The first Wasserstein (earth mover's) distance between the empirical
/// distributions of two samples: `∫ |F_u(x) − F_v(x)| dx`, the average
/// distance mass must travel to turn one sample into the other, in the
/// units of the data.
///
/// Equals `scipy.stats.wasserstein_distance(u, v)` (unweighted). Both
/// inputs sorted ascending; one `O(n1 + n2)` merge. Evidently's `wasserstein`
/// stattest divides this by the reference's population standard deviation
/// (at least 0.001) and reports drift when that is `≥ 0.1`.
pub fn wasserstein_distance(u_sorted: &[f64], v_sorted: &[f64]) -> Result<f64> {
    sorted_sample("u_sorted", u_sorted, 1)?;
    sorted_sample("v_sorted", v_sorted, 1)?;
    let (n1, n2) = sizes(u_sorted, v_sorted)?;
    let (mut gap, mut prev_gap, mut prev_z) = (0i64, 0i64, f64::NAN);
    let mut acc = 0.0;
    for_each_distinct(u_sorted, v_sorted, |z, fu, fv| {
        if prev_gap != 0 {
            acc += prev_gap.unsigned_abs() as f64 * (z - prev_z);
        }
        gap += fu as i64 * n2 - fv as i64 * n1;
        prev_gap = gap;
        prev_z = z;
    });
    Ok(acc / (n1 as f64 * n2 as f64))
}

/// The energy distance between the empirical distributions of two
/// samples, `√2 · (∫ (F_u(x) − F_v(x))² dx)^{1/2}` — equivalently
/// `(2E|X−Y| − E|X−X'| − E|Y−Y'|)^{1/2}` (Székely 2002), zero exactly when
/// the distributions agree.
///
/// Equals `scipy.stats.energy_distance(u, v)` (unweighted). Both inputs
/// sorted ascending; one `O(n1 + n2)` merge. This is Evidently's `ed`
/// stattest, which reports the distance itself (drift when `> 0.1`).
pub fn energy_distance(u_sorted: &[f64], v_sorted: &[f64]) -> Result<f64> {
    sorted_sample("u_sorted", u_sorted, 1)?;
    sorted_sample("v_sorted", v_sorted, 1)?;
    let (n1, n2) = sizes(u_sorted, v_sorted)?;
    let (mut gap, mut prev_gap, mut prev_z) = (0i64, 0i64, f64::NAN);
    let mut acc = 0.0;
    for_each_distinct(u_sorted, v_sorted, |z, fu, fv| {
        if prev_gap != 0 {
            let g = prev_gap as f64;
            acc += g * g * (z - prev_z);
        }
        gap += fu as i64 * n2 - fv as i64 * n1;
        prev_gap = gap;
        prev_z = z;
    });
    Ok(std::f64::consts::SQRT_2 * acc.sqrt() / (n1 as f64 * n2 as f64))
}

// ---------------------------------------------------------------------------
// Anderson–Darling

/// Where [`anderson_ksamp`]'s p-value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AndersonPValue {
    /// Interpolated from Scholz & Stephens' table (quadratic in the
    /// statistic, fitted to the log significance levels).
    Interpolated,
    /// The statistic is below the table: the true p-value is larger than
    /// the reported 0.25.
    Capped,
    /// The statistic is above the table: the true p-value is smaller than
    /// the reported 0.001.
    Floored,
}

/// The result of [`anderson_ksamp`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AndersonKsamp {
    /// The standardised statistic `(A²akN − (k−1)) / σ_N`.
    pub statistic: f64,
    /// Critical values at significance 25%, 10%, 5%, 2.5%, 1%, 0.5%, 0.1%.
    pub critical_values: [f64; 7],
    /// The p-value scipy reports: within `[0.001, 0.25]`.
    pub p_value: f64,
    /// Whether `p_value` is interpolated, or a cap/floor of the table.
    pub p_value_kind: AndersonPValue,
}

/// Significance levels of Scholz & Stephens' Table 2 and its interpolation
/// coefficients `b0 + b1/√m + b2/m` (`m = k − 1`).
const AD_SIG: [f64; 7] = [0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001];
const AD_B0: [f64; 7] = [0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085];
const AD_B1: [f64; 7] = [-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615];
const AD_B2: [f64; 7] = [-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154];

/// The k-sample Anderson–Darling test (Scholz & Stephens 1987) for two
/// samples, in its midrank form (valid with ties, eq. 7 there): like the
/// Cramér–von Mises statistic but weighting cdf gaps by `1/(F(1−F))`, so
/// differences in the tails count more.
///
/// Equals `scipy.stats.anderson_ksamp([a, b])` with scipy 1.17's defaults
/// (midrank; the statistic, critical values and p-value). The p-value is
/// interpolated from a table and scipy **caps it at 0.25 and floors it at
/// 0.001** (with a warning): `p_value_kind` says when that happened. Both
/// inputs sorted ascending, together at least 4 values with at least 2
/// distinct (scipy returns NaN below 4); `O(n1 + n2)`. This is Evidently's
/// `anderson` stattest, which reports this capped p-value (drift when
/// `p < threshold`, default 0.1: a floored 0.001 always drifts, a capped
/// 0.25 never does, whatever the true p-value).
pub fn anderson_ksamp(a_sorted: &[f64], b_sorted: &[f64]) -> Result<AndersonKsamp> {
    sorted_sample("a_sorted", a_sorted, 1)?;
    sorted_sample("b_sorted", b_sorted, 1)?;
    let (n1, n2) = sizes(a_sorted, b_sorted)?;
    let total = n1 + n2;
    if total < 4 {
        return Err(StatsError::TooFew {
            name: "a_sorted + b_sorted".into(),
            min: 4,
            got: total as usize,
        });
    }
    let nf = total as f64;
    let (mut i, mut below) = (0i64, 0i64);
    let mut distinct = 0usize;
    let mut acc = Neumaier::default();
    for_each_distinct(a_sorted, b_sorted, |_, fa, fb| {
        let lj = (fa + fb) as f64;
        let bj = below as f64 + lj / 2.0;
        let mij = (i + fa as i64) as f64 - fa as f64 / 2.0;
        let num = nf * mij - bj * n1 as f64;
        acc.add(lj * (num * num) / (nf * (bj * (nf - bj) - nf * lj / 4.0)));
        i += fa as i64;
        below += (fa + fb) as i64;
        distinct += 1;
    });
    if distinct < 2 {
        return Err(StatsError::Invalid {
            name: "a_sorted, b_sorted".into(),
            reason: "all values are equal: the test needs at least two distinct observations"
                .into(),
        });
    }
    // Both samples contribute the same sum (their numerators only differ
    // in sign), divided by their own size.
    let s = acc.sum();
    let a2kn = (s / n1 as f64 + s / n2 as f64) * ((nf - 1.0) / nf);

    // σ²_N, Scholz & Stephens eq. 4, with scipy's order of operations.
    let k = 2.0f64;
    let hh = 1.0 / n1 as f64 + 1.0 / n2 as f64;
    let (h, g) = harmonic_sums(total as u64);
    let a = (4.0 * g - 6.0) * (k - 1.0) + (10.0 - 6.0 * g) * hh;
    let b = (2.0 * g - 4.0) * k * k + 8.0 * h * k + (2.0 * g - 14.0 * h - 4.0) * hh - 8.0 * h
        + 4.0 * g
        - 6.0;
    let c = (6.0 * h + 2.0 * g - 2.0) * k * k
        + (4.0 * h - 4.0 * g + 6.0) * k
        + (2.0 * h - 6.0) * hh
        + 4.0 * h;
    let d = (2.0 * h + 6.0) * k * k - 4.0 * h * k;
    let big = total as u128;
    let (n3, n2f) = ((big * big * big) as f64, (big * big) as f64);
    let sigmasq = (a * n3 + b * n2f + c * nf + d) / ((nf - 1.0) * (nf - 2.0) * (nf - 3.0));
    let m = k - 1.0;
    let statistic = (a2kn - m) / sigmasq.sqrt();

    let mut critical = [0.0; 7];
    for (idx, c) in critical.iter_mut().enumerate() {
        *c = AD_B0[idx] + AD_B1[idx] / m.sqrt() + AD_B2[idx] / m;
    }
    let (p_value, kind) = if statistic < critical[0] {
        (AD_SIG[0], AndersonPValue::Capped)
    } else if statistic > critical[6] {
        (AD_SIG[6], AndersonPValue::Floored)
    } else {
        let logs = AD_SIG.map(f64::ln);
        (
            quadratic_fit_at(&critical, &logs, statistic).exp(),
            AndersonPValue::Interpolated,
        )
    };
    Ok(AndersonKsamp {
        statistic,
        critical_values: critical,
        p_value,
        p_value_kind: kind,
    })
}

/// `(h, g)` of Scholz & Stephens for a pooled size `N`:
/// `h = Σ_{i<N} 1/i` and `g = Σ_{i=1}^{N−2} Σ_{j=i+1}^{N−1} 1/((N−i) j)`.
/// scipy sums both term by term (`O(N)`, two divisions a term); the
/// identity `Σ_{k<n} H_{n−k}/k = H_n² − H_n⁽²⁾` collapses the double sum to
/// `g = H⁽²⁾_{N−1} − 2 H_{N−1}/N`, and for `N > 1000` the harmonic numbers
/// come from their asymptotic series (truncation error < 1e-24), so this
/// is `O(1)` and agrees with scipy's sums to their rounding (~1e-15).
fn harmonic_sums(n: u64) -> (f64, f64) {
    let m = n.saturating_sub(1);
    let (h, h2) = if m <= 1000 {
        // Smallest terms first.
        (1..=m).rev().fold((0.0, 0.0), |(h, h2), i| {
            let x = 1.0 / i as f64;
            (h + x, h2 + x * x)
        })
    } else {
        const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
        const ZETA2: f64 = std::f64::consts::PI * std::f64::consts::PI / 6.0;
        let x = 1.0 / m as f64;
        let x2 = x * x;
        let h = (m as f64).ln() + EULER_GAMMA + x / 2.0
            - x2 * (1.0 / 12.0 - x2 * (1.0 / 120.0 - x2 * (1.0 / 252.0 - x2 / 240.0)));
        // ζ(2) − H⁽²⁾_m = ψ′(m + 1) = 1/m − 1/2m² + 1/6m³ − 1/30m⁵ + 1/42m⁷ − 1/30m⁹.
        let tail =
            x - x2 / 2.0 + x * x2 * (1.0 / 6.0 - x2 * (1.0 / 30.0 - x2 * (1.0 / 42.0 - x2 / 30.0)));
        (h, ZETA2 - tail)
    };
    (h, h2 - 2.0 * h / n as f64)
}

/// The least-squares quadratic through `(x, y)` (numpy's `polyfit(x, y,
/// 2)`), evaluated at `at`. Solved by modified Gram–Schmidt on a centred,
/// scaled basis, so it is accurate to a few ulps.
fn quadratic_fit_at(x: &[f64; 7], y: &[f64; 7], at: f64) -> f64 {
    let mean = x.iter().sum::<f64>() / 7.0;
    let scale = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
    let t = x.map(|v| (v - mean) / scale);
    let mut q = [[1.0; 7], t, t.map(|v| v * v)];
    let mut r = [[0.0f64; 3]; 3];
    for col in 0..3 {
        for prev in 0..col {
            let basis = q[prev];
            let dot: f64 = basis.iter().zip(&q[col]).map(|(b, v)| b * v).sum();
            r[prev][col] = dot;
            for (v, b) in q[col].iter_mut().zip(basis) {
                *v -= dot * b;
            }
        }
        let norm = q[col].iter().map(|v| v * v).sum::<f64>().sqrt();
        r[col][col] = norm;
        for v in q[col].iter_mut() {
            *v /= norm;
        }
    }
    let qty = q.map(|basis| basis.iter().zip(y).map(|(b, v)| b * v).sum::<f64>());
    let mut beta = [0.0; 3];
    for row in (0..3).rev() {
        let mut s = qty[row];
        for col in (row + 1)..3 {
            s -= r[row][col] * beta[col];
        }
        beta[row] = s / r[row][row];
    }
    let ta = (at - mean) / scale;
    beta[0] + beta[1] * ta + beta[2] * ta * ta
}

// ---------------------------------------------------------------------------
// Cramér–von Mises

/// The result of [`cramervonmises_2samp`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CramerVonMises {
    /// Anderson's (1962) `T = U/(mnN) − (4mn − 1)/(6N)`.
    pub statistic: f64,
    pub p_value: f64,
    pub method: PValueMethod,
}

/// The two-sample Cramér–von Mises test (Anderson 1962): the mean squared
/// gap between the two empirical cdfs over the pooled sample, from the
/// ranks (midranks with ties).
///
/// Equals `scipy.stats.cramervonmises_2samp(a, b)` with `method='auto'`:
/// the exact p-value when both samples have at most 20 values (counting
/// rank configurations, Xiao et al. 2006), otherwise the limiting
/// distribution of the normalised statistic (Csörgő & Faraway 1996), which
/// scipy reports as exactly 1 when the normalised statistic is below 0.003.
/// Each sample needs at least 2 values; both sorted ascending. The ranks
/// come from the merge, so this is `O(n1 + n2)`, and `U` is accumulated in
/// exact integer arithmetic (scipy's floating-point sum loses digits to
/// cancellation in `T` for millions of values; this does not).
///
/// This is Evidently's `cramer_von_mises` stattest, whose own copy of this
/// code gives the same p-value, which Evidently reports (drift when
/// `p ≤ threshold`, default 0.1).
pub fn cramervonmises_2samp(a_sorted: &[f64], b_sorted: &[f64]) -> Result<CramerVonMises> {
    sorted_sample("a_sorted", a_sorted, 2)?;
    sorted_sample("b_sorted", b_sorted, 2)?;
    let (nx, ny) = sizes(a_sorted, b_sorted)?;
    // Σ (2·rank − 2·index)² per sample, exactly (ranks are multiples of ½).
    let (mut sx, mut sy) = (0u128, 0u128);
    let (mut i, mut j) = (0i64, 0i64);
    for_each_distinct(a_sorted, b_sorted, |_, fa, fb| {
        let (fa, fb) = (fa as i64, fb as i64);
        let two_rank = 2 * (i + j) + fa + fb + 1;
        if fa + fb == 1 {
            // No tie (the common case): one value, from one sample, with
            // rank i + j + 1; no branch on which sample it came from.
            let (dx, dy) = (two_rank - 2 * i - 2, two_rank - 2 * j - 2);
            sx += (fa * dx * dx) as u128;
            sy += (fb * dy * dy) as u128;
        } else {
            sx += sum_sq_gaps(two_rank - 2 * i, fa);
            sy += sum_sq_gaps(two_rank - 2 * j, fb);
        }
        i += fa;
        j += fb;
    });
    let (nxu, nyu) = (nx as u128, ny as u128);
    let four_u = nxu * sx + nyu * sy;
    let k = nx as i128 * ny as i128;
    let big_n = (nx + ny) as i128;
    let num = 6 * four_u as i128 - 4 * k * (4 * k - 1);
    let statistic = num as f64 / (24 * k * big_n) as f64;

    if nx.max(ny) <= 20 {
        return Ok(CramerVonMises {
            statistic,
            p_value: cvm::exact_pvalue(four_u, nx as u64, ny as u64),
            method: PValueMethod::Exact,
        });
    }
    // Mean and variance of T (Anderson 1962, eqs. 11 and 14), normalised
    // statistic (eq. 15), referred to the one-sample limiting law.
    let nf = big_n as f64;
    let et = (1.0 + 1.0 / nf) / 6.0;
    // The bracket exactly (it cancels); the outer products in f64, which
    // cannot overflow.
    let bracket = 4 * k * big_n - 3 * (nx as i128 * nx as i128 + ny as i128 * ny as i128) - 2 * k;
    let vt = (nf + 1.0) * bracket as f64 / (45.0 * nf * nf * 4.0 * k as f64);
    let tn = 1.0 / 6.0 + (statistic - et) / (45.0 * vt).sqrt();
    let p_value = if tn < 0.003 {
        1.0
    } else {
        (1.0 - cvm::cdf_cvm_inf(tn)).max(0.0)
    };
    Ok(CramerVonMises {
        statistic,
        p_value,
        method: PValueMethod::Asymptotic,
    })
}

/// `Σ_{t=1}^{f} (c − 2t)²` for a run of `f` tied values (`c` is twice the
/// run's midrank minus twice the sample index before it).
#[inline]
fn sum_sq_gaps(c: i64, f: i64) -> u128 {
    match f {
        0 => 0,
        1 => {
            let d = (c - 2).unsigned_abs();
            (d * d) as u128
        }
        _ => {
            let (c, f) = (c as i128, f as i128);
            (f * c * c - 2 * c * f * (f + 1) + 2 * f * (f + 1) * (2 * f + 1) / 3) as u128
        }
    }
}

// ---------------------------------------------------------------------------
// Chi-square tests

/// The result of [`chisquare`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChiSquareTest {
    /// Pearson's `Σ (O − E)²/E`.
    pub statistic: f64,
    pub p_value: f64,
    /// Degrees of freedom: categories − 1.
    pub dof: usize,
}

/// Pearson's chi-square goodness-of-fit test of observed category counts
/// against expected ones.
///
/// Equals `scipy.stats.chisquare(f_obs, f_exp)`: at least 2 categories,
/// `f_obs ≥ 0`, `f_exp > 0`, and, as scipy requires, both summing to the
/// same total within a relative `√ε ≈ 1.5e-8`. Evidently's `chisquare`
/// stattest calls it with `f_exp` = the reference counts scaled to the
/// current total, and reports the p-value (drift when `p < threshold`).
pub fn chisquare(f_obs: &[f64], f_exp: &[f64]) -> Result<ChiSquareTest> {
    counts("f_obs", f_obs, 2)?;
    counts("f_exp", f_exp, 2)?;
    same_len("f_obs", f_obs, "f_exp", f_exp)?;
    if let Some(i) = f_exp.iter().position(|&e| e <= 0.0) {
        return Err(StatsError::OutOfRange {
            name: format!("f_exp[{i}]"),
            value: f_exp[i],
            range: "(0, inf)",
        });
    }
    let (so, se) = (f_obs.iter().sum::<f64>(), f_exp.iter().sum::<f64>());
    let rel = (so - se).abs() / so.min(se);
    if rel > f64::EPSILON.sqrt() {
        return Err(StatsError::Invalid {
            name: "f_obs, f_exp".into(),
            reason: format!(
                "observed counts sum to {so} but expected counts to {se}; they must agree (relative tolerance 1.5e-8)"
            ),
        });
    }
    let statistic: f64 = f_obs
        .iter()
        .zip(f_exp)
        .map(|(&o, &e)| (o - e) * (o - e) / e)
        .sum();
    let dof = f_obs.len() - 1;
    Ok(ChiSquareTest {
        statistic,
        p_value: chi2_sf_raw(statistic, dof as f64),
        dof,
    })
}

/// Whether [`chi2_contingency`] applies Yates' continuity correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Move each observed count up to ½ towards its expected count, but
    /// only when the table has one degree of freedom (scipy's default,
    /// `correction=True`).
    Yates,
    /// No correction (`correction=False`).
    Off,
}

/// The result of [`chi2_contingency`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContingencyTest {
    pub statistic: f64,
    pub p_value: f64,
    /// `(rows − 1)(columns − 1)`.
    pub dof: usize,
    /// The expected counts under independence: row total × column total /
    /// grand total.
    pub expected: Vec<Vec<f64>>,
}

/// The chi-square test of independence of the two variables of a
/// contingency table (rows × columns of non-negative counts).
///
/// Equals `scipy.stats.chi2_contingency(table, correction=...)`: expected
/// counts from the margins, Pearson's statistic with `(r−1)(c−1)` degrees
/// of freedom, Yates' correction only when that is 1 (a 2×2 table) and
/// asked for, and statistic 0 with p-value 1 when it is 0 (one row or one
/// column). A row or column summing to zero is an error, as in scipy.
pub fn chi2_contingency<R: AsRef<[f64]>>(
    table: &[R],
    correction: Correction,
) -> Result<ContingencyTest> {
    if table.is_empty() || table[0].as_ref().is_empty() {
        return Err(StatsError::Empty {
            name: "table".into(),
        });
    }
    let cols = table[0].as_ref().len();
    for (r, row) in table.iter().enumerate() {
        let row = row.as_ref();
        if row.len() != cols {
            return Err(StatsError::LengthMismatch {
                a: "table[0]".into(),
                len_a: cols,
                b: format!("table[{r}]"),
                len_b: row.len(),
            });
        }
        for (c, &v) in row.iter().enumerate() {
            crate::non_negative(&format!("table[{r}][{c}]"), v)?;
        }
    }
    let rows = table.len();
    let row_sums: Vec<f64> = table.iter().map(|r| r.as_ref().iter().sum()).collect();
    let col_sums: Vec<f64> = (0..cols)
        .map(|c| table.iter().map(|r| r.as_ref()[c]).sum())
        .collect();
    let total: f64 = table.iter().flat_map(|r| r.as_ref().iter()).sum();
    if let Some(r) = row_sums.iter().position(|&s| s == 0.0) {
        return Err(StatsError::Invalid {
            name: format!("table[{r}]"),
            reason: "the row is all zeros, so its expected counts are zero; drop it".into(),
        });
    }
    if let Some(c) = col_sums.iter().position(|&s| s == 0.0) {
        return Err(StatsError::Invalid {
            name: format!("table[..][{c}]"),
            reason: "the column is all zeros, so its expected counts are zero; drop it".into(),
        });
    }
    let expected: Vec<Vec<f64>> = row_sums
        .iter()
        .map(|&rs| col_sums.iter().map(|&cs| rs * cs / total).collect())
        .collect();
    let dof = (rows - 1) * (cols - 1);
    if dof == 0 {
        return Ok(ContingencyTest {
            statistic: 0.0,
            p_value: 1.0,
            dof,
            expected,
        });
    }
    let yates = dof == 1 && correction == Correction::Yates;
    let mut statistic = 0.0;
    for (row, erow) in table.iter().zip(&expected) {
        for (&o, &e) in row.as_ref().iter().zip(erow) {
            // Yates: towards the expected count by at most ½ (gh-13875).
            let diff = e - o;
            let o = if !yates || diff == 0.0 {
                o
            } else if diff > 0.0 {
                o + diff.min(0.5)
            } else {
                o - (-diff).min(0.5)
            };
            statistic += (o - e) * (o - e) / e;
        }
    }
    Ok(ContingencyTest {
        statistic,
        p_value: chi2_sf_raw(statistic, dof as f64),
        dof,
        expected,
    })
}

// ---------------------------------------------------------------------------
// Histogram divergences

/// The Jensen–Shannon distance between two histograms `p` and `q` (each
/// normalised to sum to 1 first): `√((KL(p‖m) + KL(q‖m))/2)` with
/// `m = (p+q)/2`, in nats, or in the units of `base` (2 gives a distance in
/// `[0, 1]`).
///
/// Equals `scipy.spatial.distance.jensenshannon(p, q, base)`, except that
/// where rounding makes the divergence a hair negative for two identical
/// histograms (scipy then returns NaN) this returns 0. Entries must be
/// finite and `≥ 0`, each histogram with a positive sum; `base > 0`,
/// `≠ 1`. Evidently's `jensenshannon` stattest applies it to the bin
/// proportions *without* filling empty bins, and reports the distance
/// (drift when `≥ 0.1`).
pub fn jensenshannon(p: &[f64], q: &[f64], base: Option<f64>) -> Result<f64> {
    counts("p", p, 1)?;
    counts("q", q, 1)?;
    same_len("p", p, "q", q)?;
    let sp = positive_sum("p", p)?;
    let sq = positive_sum("q", q)?;
    let (mut left, mut right) = (0.0, 0.0);
    for (&pi, &qi) in p.iter().zip(q) {
        let (pi, qi) = (pi / sp, qi / sq);
        let m = (pi + qi) / 2.0;
        left += rel_entr(pi, m);
        right += rel_entr(qi, m);
    }
    let mut js = left + right;
    if let Some(b) = base {
        crate::positive("base", b)?;
        if b == 1.0 {
            return Err(StatsError::OutOfRange {
                name: "base".into(),
                value: b,
                range: "(0, 1) or (1, inf)",
            });
        }
        js /= b.ln();
    }
    Ok((js / 2.0).max(0.0).sqrt())
}

/// `x ln(x/y)` with `0 ln 0 = 0` (`scipy.special.rel_entr`); the callers
/// guarantee `y > 0` wherever `x > 0`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Evidently's population stability index between the bin proportions of
/// the reference and the current window:
/// `Σ (ref_i − cur_i) · ln(ref_i / cur_i)`.
///
/// Equals Evidently 0.7's `psi` stattest given the proportions it forms
/// (`get_binned_data`: Sturges-rule histogram bins over both windows for a
/// numerical column with more than 20 distinct reference values, else one
/// bin per category; each count divided by its window's size; empty bins
/// filled by [`fill_zero_percents`]). The proportions are not renormalised.
/// Every entry must be finite and `> 0` — fill empty bins first. Evidently
/// reports the index itself (drift when `≥ 0.1`).
pub fn psi(ref_percents: &[f64], cur_percents: &[f64]) -> Result<f64> {
    strictly_positive("ref_percents", ref_percents)?;
    strictly_positive("cur_percents", cur_percents)?;
    same_len("ref_percents", ref_percents, "cur_percents", cur_percents)?;
    Ok(ref_percents
        .iter()
        .zip(cur_percents)
        .map(|(&r, &c)| (r - c) * (r / c).ln())
        .sum())
}

/// Evidently's Kullback–Leibler divergence of the current window's bin
/// proportions from the reference's, `KL(ref ‖ cur)` in nats, after
/// normalising both to sum to 1 (Evidently calls
/// `scipy.stats.entropy(ref_percents, cur_percents)`, which normalises).
///
/// Equals Evidently 0.7's `kl_div` stattest given the proportions it forms
/// (the same binning and empty-bin filling as [`psi`]). Entries must be
/// finite and `≥ 0` with positive sums; a reference bin that is non-empty
/// where the current one is empty makes the divergence infinite, which is
/// an error here (fill empty bins first, as Evidently does). Evidently
/// reports the divergence (drift when `≥ 0.1`).
pub fn kl_div(ref_percents: &[f64], cur_percents: &[f64]) -> Result<f64> {
    counts("ref_percents", ref_percents, 1)?;
    counts("cur_percents", cur_percents, 1)?;
    same_len("ref_percents", ref_percents, "cur_percents", cur_percents)?;
    let sr = positive_sum("ref_percents", ref_percents)?;
    let sc = positive_sum("cur_percents", cur_percents)?;
    let mut total = 0.0;
    for (i, (&r, &c)) in ref_percents.iter().zip(cur_percents).enumerate() {
        if r > 0.0 && c == 0.0 {
            return Err(StatsError::Invalid {
                name: format!("cur_percents[{i}]"),
                reason: format!(
                    "is 0 where ref_percents[{i}] = {r}: the divergence is infinite; fill empty bins first (fill_zero_percents)"
                ),
            });
        }
        total += rel_entr(r / sr, c / sc);
    }
    Ok(total)
}

/// Evidently's Hellinger distance between two sets of bin proportions,
/// `√(1 − BC)` with the Bhattacharyya coefficient
/// `BC = Σ √(ref_i · cur_i)` clipped to `[0, 1]`; 0 for identical
/// histograms, 1 for disjoint ones.
///
/// Equals Evidently 0.7's `hellinger` stattest given the proportions it
/// uses: value counts over each window's size for a categorical column;
/// for a numerical column, density histograms on Sturges-rule bins over
/// the distinct values of both windows, times the bin width (the same
/// numbers up to rounding). No renormalising and no empty-bin filling.
/// Entries must be finite and `≥ 0`. Evidently reports the distance
/// (drift when `≥ 0.1`).
pub fn hellinger(ref_percents: &[f64], cur_percents: &[f64]) -> Result<f64> {
    counts("ref_percents", ref_percents, 1)?;
    counts("cur_percents", cur_percents, 1)?;
    same_len("ref_percents", ref_percents, "cur_percents", cur_percents)?;
    let bc: f64 = ref_percents
        .iter()
        .zip(cur_percents)
        .map(|(&r, &c)| (r * c).sqrt())
        .sum();
    Ok((1.0 - bc.clamp(0.0, 1.0)).sqrt())
}

/// Evidently's replacement for empty bins before [`psi`] and [`kl_div`]
/// (`get_binned_data(..., feel_zeroes=True)`): every zero proportion
/// becomes the smallest non-zero one divided by 10⁶ if that is at most
/// 10⁻⁴, and 10⁻⁴ otherwise. Apply it to each window's proportions
/// separately. Entries must be finite and `≥ 0`, at least one positive.
pub fn fill_zero_percents(percents: &[f64]) -> Result<Vec<f64>> {
    counts("percents", percents, 1)?;
    let min_nonzero = percents
        .iter()
        .copied()
        .filter(|&p| p != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !min_nonzero.is_finite() {
        return Err(StatsError::Invalid {
            name: "percents".into(),
            reason: "every bin is empty".into(),
        });
    }
    let fill = if min_nonzero <= 0.0001 {
        min_nonzero / 1e6
    } else {
        0.0001
    };
    Ok(percents
        .iter()
        .map(|&p| if p == 0.0 { fill } else { p })
        .collect())
}

/// The result of [`proportions_z_test`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProportionsZTest {
    /// `(p_ref − p_cur) / √(p̄(1−p̄)(1/n_ref + 1/n_cur))`, pooled `p̄`.
    pub z: f64,
    /// `2 (1 − Φ(|z|))`.
    pub p_value: f64,
}

/// Evidently's two-proportion z-test for a binary categorical column:
/// `z` with the pooled proportion `p̄ = (ones_ref + ones_cur)/(n_ref +
/// n_cur)` and the two-sided p-value `2·(1 − Φ(|z|))`.
///
/// Equals Evidently 0.7's `z` stattest, where "ones" are the rows whose
/// value is not the first of the sorted distinct values. When every row of
/// both windows has the same value (`p̄` is 0 or 1) Evidently short-cuts to
/// `p = 1`, and so does this (with `z = 0`). Note the p-value is computed
/// as `1 − Φ`, as Evidently does, so it bottoms out at ~1e-16 and is
/// exactly 0 beyond `|z| ≈ 8.3`; [`crate::hypothesis::two_proportion_ztest`]
/// computes the same test with a full-precision tail. Evidently reports the
/// p-value (drift when `p < threshold`, default 0.05).
pub fn proportions_z_test(
    ref_ones: u64,
    ref_n: u64,
    cur_ones: u64,
    cur_n: u64,
) -> Result<ProportionsZTest> {
    for (ones, n, on, nn) in [
        (ref_ones, ref_n, "ref_ones", "ref_n"),
        (cur_ones, cur_n, "cur_ones", "cur_n"),
    ] {
        if n == 0 {
            return Err(StatsError::OutOfRange {
                name: nn.into(),
                value: 0.0,
                range: "[1, inf)",
            });
        }
        if ones > n {
            return Err(StatsError::Invalid {
                name: on.into(),
                reason: format!("{ones} exceeds the {n} rows of {nn}"),
            });
        }
    }
    let (n1, n2) = (ref_n as f64, cur_n as f64);
    let p1 = ref_ones as f64 / n1;
    let p2 = cur_ones as f64 / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    if var.is_nan() || var <= 0.0 {
        return Ok(ProportionsZTest {
            z: 0.0,
            p_value: 1.0,
        });
    }
    let z = (p1 - p2) / var.sqrt();
    Ok(ProportionsZTest {
        z,
        p_value: 2.0 * (1.0 - norm_cdf_raw(z.abs())),
    })
}

// ---------------------------------------------------------------------------
// Small shared pieces

/// Non-empty (at least `min`), finite, non-negative values.
fn counts(name: &str, values: &[f64], min: usize) -> Result<()> {
    crate::sample(name, values, min)?;
    if let Some(i) = values.iter().position(|&v| v < 0.0) {
        return Err(StatsError::OutOfRange {
            name: format!("{name}[{i}]"),
            value: values[i],
            range: "[0, inf)",
        });
    }
    Ok(())
}

fn strictly_positive(name: &str, values: &[f64]) -> Result<()> {
    counts(name, values, 1)?;
    if let Some(i) = values.iter().position(|&v| v == 0.0) {
        return Err(StatsError::Invalid {
            name: format!("{name}[{i}]"),
            reason: "is 0: fill empty bins first (fill_zero_percents), as Evidently does".into(),
        });
    }
    Ok(())
}

fn positive_sum(name: &str, values: &[f64]) -> Result<f64> {
    let s: f64 = values.iter().sum();
    if s > 0.0 && s.is_finite() {
        Ok(s)
    } else {
        Err(StatsError::Invalid {
            name: name.to_string(),
            reason: format!("must have a positive, finite sum to normalise, got {s}"),
        })
    }
}

fn same_len(a: &str, va: &[f64], b: &str, vb: &[f64]) -> Result<()> {
    if va.len() != vb.len() {
        return Err(StatsError::LengthMismatch {
            a: a.to_string(),
            len_a: va.len(),
            b: b.to_string(),
            len_b: vb.len(),
        });
    }
    Ok(())
}

/// Neumaier's compensated sum: the rounding error of each addition is
/// carried along, so the result is as if summed in twice the precision.
#[derive(Default)]
struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    #[inline]
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn sum(&self) -> f64 {
        self.sum + self.comp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsorted_or_non_finite_input_is_named() {
        let err = ks_2samp(&[1.0, 0.5], &[1.0]).unwrap_err();
        assert!(err.to_string().contains("a_sorted"), "{err}");
        let err = wasserstein_distance(&[1.0], &[f64::NAN]).unwrap_err();
        assert!(err.to_string().contains("v_sorted[0]"), "{err}");
        assert!(energy_distance(&[], &[1.0]).is_err());
        assert!(cramervonmises_2samp(&[1.0], &[1.0, 2.0]).is_err());
        assert!(anderson_ksamp(&[1.0, 1.0], &[1.0, 1.0]).is_err());
    }

    #[test]
    fn known_values() {
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0
        assert_eq!(
            wasserstein_distance(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]).unwrap(),
            5.0
        );
        // scipy.stats.energy_distance([0], [2]) == 2.0000000000000004
        assert!((energy_distance(&[0.0], &[2.0]).unwrap() - 2.0).abs() < 1e-15);
        // Disjoint samples of sizes 3 and 3: D = 1, p = 2/C(6,3) = 0.1.
        let ks = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(ks.statistic, 1.0);
        assert!((ks.p_value - 0.1).abs() < 1e-15);
    }

    #[test]
    fn quadratic_fit_reproduces_a_parabola() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = x.map(|v| 1.0 - 2.0 * v + 0.5 * v * v);
        assert!((quadratic_fit_at(&x, &y, 2.5) - (1.0 - 5.0 + 3.125)).abs() < 1e-14);
    }

    #[test]
    fn sum_sq_gaps_matches_the_loop() {
        for c in -5..40i64 {
            for f in 0..6i64 {
                let direct: i64 = (1..=f).map(|t| (c - 2 * t) * (c - 2 * t)).sum();
                assert_eq!(sum_sq_gaps(c, f), direct as u128, "c={c} f={f}");
            }
        }
    }
}
