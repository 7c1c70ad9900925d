//! Property tests for the numerics: distribution functions are monotone
//! and within [0, 1], quantiles invert cdfs, the incomplete beta function
//! has its reflection symmetry, p-values are probabilities, and no input
//! whatever (NaN, infinities, huge and subnormal numbers) makes anything
//! panic.

use keel_stats::hypothesis::{self, GroupSummary};
use keel_stats::ope::{self, LoggedRecord};
use keel_stats::special;
use proptest::prelude::*;

fn unit(p: f64) -> bool {
    (0.0..=1.0).contains(&p)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normal_cdf_monotone_in_unit_interval(a in -40.0..40.0f64, b in -40.0..40.0f64) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (c_lo, c_hi) = (special::norm_cdf(lo).unwrap(), special::norm_cdf(hi).unwrap());
        prop_assert!(unit(c_lo) && unit(c_hi) && c_lo <= c_hi);
        let s = special::norm_sf(lo).unwrap();
        prop_assert!(unit(s) && (s + c_lo - 1.0).abs() < 1e-15);
    }

    #[test]
    fn t_cdf_monotone_in_unit_interval(a in -1e3..1e3f64, b in -1e3..1e3f64, df in 0.1..1e5f64) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (c_lo, c_hi) = (special::t_cdf(lo, df).unwrap(), special::t_cdf(hi, df).unwrap());
        prop_assert!(unit(c_lo) && unit(c_hi) && c_lo <= c_hi, "{lo} {hi} {df}: {c_lo} {c_hi}");
        prop_assert!((special::t_sf(lo, df).unwrap() - special::t_cdf(-lo, df).unwrap()).abs() < 1e-15);
    }

    #[test]
    fn chi2_sf_decreasing(a in 0.0..500.0f64, b in 0.0..500.0f64, k in 0.5..200.0f64) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (s_lo, s_hi) = (special::chi2_sf(lo, k).unwrap(), special::chi2_sf(hi, k).unwrap());
        prop_assert!(unit(s_lo) && unit(s_hi) && s_hi <= s_lo);
    }

    #[test]
    fn normal_ppf_inverts_cdf(x in -37.0..8.0f64) {
        let back = special::norm_ppf(special::norm_cdf(x).unwrap()).unwrap();
        // Above 0 the cdf is rounded to ~1e-16 absolute near 1, which moves
        // the quantile by up to that over the density.
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let tol = 1e-13 * x.abs().max(1.0) + if x > 0.0 { 2.5e-16 / pdf } else { 0.0 };
        prop_assert!((back - x).abs() <= tol, "{x} -> {back}");
    }

    #[test]
    fn t_ppf_inverts_cdf(x in -200.0..4.0f64, df in 0.5..1e4f64) {
        let p = special::t_cdf(x, df).unwrap();
        // Far enough out the cdf underflows to 0 and the quantile is -inf.
        prop_assume!(p > 1e-290);
        let back = special::t_ppf(p, df).unwrap();
        let tol = if x <= 0.0 { 1e-11 * x.abs().max(1.0) } else { 1e-8 };
        prop_assert!((back - x).abs() <= tol, "{x} df {df} -> {back}");
    }

    #[test]
    fn incomplete_beta_symmetry(a in 0.05..500.0f64, b in 0.05..500.0f64, x in 0.0..=1.0f64) {
        let i = special::regularized_beta(a, b, x).unwrap();
        let j = special::regularized_beta(b, a, 1.0 - x).unwrap();
        prop_assert!(unit(i) && unit(j));
        prop_assert!((i - (1.0 - j)).abs() <= 1e-11, "I={i} 1-J={}", 1.0 - j);
    }

    #[test]
    fn incomplete_gamma_complement(a in 0.05..500.0f64, x in 0.0..1000.0f64) {
        let p = special::regularized_gamma_p(a, x).unwrap();
        let q = special::regularized_gamma_q(a, x).unwrap();
        prop_assert!(unit(p) && unit(q) && (p + q - 1.0).abs() < 1e-12);
    }

    #[test]
    fn erf_odd_and_complementary(x in -30.0..30.0f64) {
        let e = special::erf(x).unwrap();
        prop_assert!((-1.0..=1.0).contains(&e) && e == -special::erf(-x).unwrap());
        prop_assert!((e + special::erfc(x).unwrap() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn p_values_are_probabilities(
        sa in 0u64..10_000, fa in 0u64..10_000, sb in 0u64..10_000, fb in 0u64..10_000,
        ma in -1e6..1e6f64, mb in -1e6..1e6f64, va in 1e-6..1e6f64, vb in 0.0..1e6f64,
        na in 2.0..1e7f64, nb in 2.0..1e7f64,
    ) {
        if sa + fa > 0 && sb + fb > 0 {
            let z = hypothesis::two_proportion_ztest(sa, sa + fa, sb, sb + fb, 0.95).unwrap();
            prop_assert!(unit(z.p_value));
            let ci = hypothesis::proportion_ci(sa, sa + fa, 0.95).unwrap();
            prop_assert!(ci.interval.low >= -1e-15 && ci.interval.high <= 1.0 + 1e-15);
        }
        let w = hypothesis::welch_ttest(
            &GroupSummary { n: na, mean: ma, variance: va },
            &GroupSummary { n: nb, mean: mb, variance: vb },
            0.95,
        ).unwrap();
        prop_assert!(unit(w.p_value) && w.df > 0.0);
        prop_assert!(w.interval.low <= w.difference && w.difference <= w.interval.high);
        let srm = hypothesis::srm_check(&[sa, fa, sb + 1], &[1.0, 2.0, 3.0]).unwrap();
        prop_assert!(unit(srm.p_value));
    }

}

proptest! {
    // Fewer cases: absurd magnitudes (shapes of 1e300) run the continued
    // fractions to their iteration caps.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Anything at all, NaN and infinities included: an `Ok` or an `Err`,
    /// never a panic (nor a hang).
    #[test]
    fn no_panics(a in any::<f64>(), b in any::<f64>(), c in any::<f64>(), k in any::<u64>(), m in any::<u64>()) {
        let _ = special::ln_gamma(a);
        let _ = special::regularized_beta(a, b, c);
        let _ = special::regularized_gamma_p(a, b);
        let _ = special::regularized_gamma_q(a, b);
        let _ = special::erf(a);
        let _ = special::erfc(a);
        let _ = special::norm_cdf(a);
        let _ = special::norm_ppf(a);
        let _ = special::t_cdf(a, b);
        let _ = special::t_ppf(a, b);
        let _ = special::chi2_sf(a, b);
        let _ = hypothesis::proportion_ci(k, m, a);
        let _ = hypothesis::two_proportion_ztest(k, m, m, k, a);
        let g = GroupSummary { n: a, mean: b, variance: c };
        let _ = hypothesis::welch_ttest(&g, &g, 0.95);
        let _ = hypothesis::welch_ttest_samples(&[a, b, c], &[c, b], 0.9);
        let _ = hypothesis::srm_check(&[k, m], &[a, b]);
        let _ = hypothesis::msprt_likelihood_ratio(a, b, c, a, b, c);
        let _ = hypothesis::msprt_sequence(&[(a, b), (b, c), (c, a)], a, b, Some(c), 1);
        let _ = hypothesis::cuped(&[a, b, c], &[c, a, b]);
        let _ = hypothesis::cuped_compare(&[(&[a, b][..], &[b, c][..]), (&[c, a][..], &[a, b][..])], 0.95);
        let _ = hypothesis::beta_bernoulli_best(&[(k % 50, m % 100), (m % 7, 10)], (a, b), 20, k);
        let _ = hypothesis::gaussian_best(&[g, g], 20, k);
        let _ = hypothesis::prob_beta_greater((a, b), (c.clamp(-5.0, 50.0).round(), a));
        let r = LoggedRecord { action: 0, propensity: a, reward: b, target_prob: c, predicted_reward: Some(a), predicted_value: Some(c) };
        let _ = ope::ips(&[r, r], Some(b));
        let _ = ope::snips(&[r, r], None);
        let _ = ope::doubly_robust(&[r, r], None);
        let mut rng = keel_stats::Rng::from_seed(k);
        let _ = rng.gamma(a.clamp(-1.0, 1e6));
        let _ = rng.beta(a.clamp(-1.0, 1e6), b.clamp(-1.0, 1e6));
    }
}
