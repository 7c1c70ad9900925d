//! keel-stats against scipy and statsmodels: every function is checked
//! against `reference.json`, which `reference.py` computes (and
//! `tests/python/test_reference_fixtures.py` proves it still computes).
//!
//! Exact computations are held to ~1e-12 relative or tighter (special
//! functions to 1e-14 where double precision allows); Monte Carlo ones to
//! 4.5 of their own standard errors; the two-sample drift statistics to
//! 1e-9 relative (1e-12 absolute near zero), the contract of
//! `keel_stats::twosample`, though most agree to ~1e-13. Run with
//! `--nocapture` to see the worst error of each section.

use keel_stats::hypothesis::{self, GroupSummary};
use keel_stats::ope::{self, LoggedRecord};
use keel_stats::special;
use keel_stats::twosample::{self, AndersonPValue, Correction, PValueMethod};
use serde_json::Value;
use std::collections::BTreeMap;

struct Checker {
    failures: Vec<String>,
    worst: BTreeMap<&'static str, f64>,
}

impl Checker {
    fn new() -> Self {
        Checker {
            failures: Vec::new(),
            worst: BTreeMap::new(),
        }
    }

    /// `|got − want| ≤ rel·|want| + abs`; records the worst relative error.
    fn close(
        &mut self,
        section: &'static str,
        what: String,
        got: f64,
        want: f64,
        rel: f64,
        abs: f64,
    ) {
        let err = (got - want).abs();
        let scaled = if want == 0.0 { err } else { err / want.abs() };
        let w = self.worst.entry(section).or_insert(0.0);
        if scaled > *w || scaled.is_nan() {
            *w = scaled;
        }
        if err.is_nan() || err > rel * want.abs() + abs {
            self.failures.push(format!(
                "{section} {what}: got {got:e}, want {want:e} (rel err {scaled:e}, tol rel {rel:e} abs {abs:e})"
            ));
        }
    }

    fn finish(self) {
        for (k, v) in &self.worst {
            println!("{k:32} worst relative error {v:.3e}");
        }
        assert!(
            self.failures.is_empty(),
            "{} mismatches:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference.json");
    let text = std::fs::read_to_string(path).expect("tests/reference.json is readable");
    serde_json::from_str(&text).expect("tests/reference.json is JSON")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

fn uint(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {v}"))
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn summary(v: &Value) -> GroupSummary {
    GroupSummary {
        n: num(v, "n"),
        mean: num(v, "mean"),
        variance: num(v, "variance"),
    }
}

#[test]
fn special_functions_match_scipy() {
    let r = reference();
    let s = &r["special"];
    let mut c = Checker::new();
    for e in arr(s, "erf") {
        let x = num(e, "x");
        c.close(
            "erf",
            format!("x={x}"),
            special::erf(x).unwrap(),
            num(e, "erf"),
            2e-15,
            0.0,
        );
        c.close(
            "erfc",
            format!("x={x}"),
            special::erfc(x).unwrap(),
            num(e, "erfc"),
            5e-15,
            0.0,
        );
    }
    for e in arr(s, "norm") {
        let x = num(e, "x");
        // Φ(x) = ½ erfc(−x/√2): the rounding of x/√2 costs ~x² ulps in the tail.
        let rel = 1e-15 * (2.0 + x * x);
        c.close(
            "norm cdf/sf",
            format!("cdf {x}"),
            special::norm_cdf(x).unwrap(),
            num(e, "cdf"),
            rel,
            0.0,
        );
        c.close(
            "norm cdf/sf",
            format!("sf {x}"),
            special::norm_sf(x).unwrap(),
            num(e, "sf"),
            rel,
            0.0,
        );
    }
    for e in arr(s, "norm_ppf") {
        let p = num(e, "p");
        c.close(
            "norm ppf",
            format!("p={p}"),
            special::norm_ppf(p).unwrap(),
            num(e, "ppf"),
            1e-14,
            0.0,
        );
    }
    for e in arr(s, "t") {
        let (t, df) = (num(e, "t"), num(e, "df"));
        let what = format!("t={t} df={df}");
        // With 1 df (Cauchy) the exact closed form is the reference: scipy's
        // stdtr is 1.4e-11 off near t = 0 there (reference.py).
        let (cdf, sf) = if e.get("cauchy_cdf").is_some() {
            (num(e, "cauchy_cdf"), num(e, "cauchy_sf"))
        } else {
            (num(e, "cdf"), num(e, "sf"))
        };
        // Above 1e6 df the crate uses a normal approximation accurate to
        // O(t⁴/df²): ~1e-9 relative.
        let (section, rel) = if df > 1e6 {
            ("t cdf/sf (df > 1e6)", 1e-9)
        } else {
            ("t cdf/sf", 1e-11)
        };
        let got = special::t_cdf(t, df).unwrap();
        c.close(section, what.clone(), got, cdf, rel, 0.0);
        c.close(section, what, special::t_sf(t, df).unwrap(), sf, rel, 0.0);
    }
    for e in arr(s, "t_ppf") {
        let (p, df) = (num(e, "p"), num(e, "df"));
        c.close(
            "t ppf",
            format!("p={p} df={df}"),
            special::t_ppf(p, df).unwrap(),
            num(e, "ppf"),
            1e-12,
            1e-15,
        );
    }
    for e in arr(s, "chi2_sf") {
        let (x, k) = (num(e, "x"), num(e, "k"));
        c.close(
            "chi2 sf",
            format!("x={x} k={k}"),
            special::chi2_sf(x, k).unwrap(),
            num(e, "sf"),
            1e-13,
            0.0,
        );
    }
    for e in arr(s, "beta_inc") {
        let (a, b, x) = (num(e, "a"), num(e, "b"), num(e, "x"));
        c.close(
            "incomplete beta",
            format!("a={a} b={b} x={x}"),
            special::regularized_beta(a, b, x).unwrap(),
            num(e, "value"),
            // ~1e-13: exp of a ~500-magnitude log prefactor for tiny values.
            5e-13,
            1e-300,
        );
    }
    for e in arr(s, "gamma_inc") {
        let (a, x) = (num(e, "a"), num(e, "x"));
        let what = format!("a={a} x={x}");
        c.close(
            "incomplete gamma",
            what.clone(),
            special::regularized_gamma_p(a, x).unwrap(),
            num(e, "p"),
            // ~1e-13: exp of a ~500-magnitude log prefactor for tiny values.
            5e-13,
            1e-300,
        );
        c.close(
            "incomplete gamma",
            what,
            special::regularized_gamma_q(a, x).unwrap(),
            num(e, "q"),
            // ~1e-13: exp of a ~500-magnitude log prefactor for tiny values.
            5e-13,
            1e-300,
        );
    }
    for e in arr(s, "ln_gamma") {
        let x = num(e, "x");
        c.close(
            "ln gamma",
            format!("x={x}"),
            special::ln_gamma(x).unwrap(),
            num(e, "value"),
            1e-14,
            1e-15,
        );
    }
    c.finish();
}

#[test]
fn proportions_match_statsmodels() {
    let r = reference();
    let mut c = Checker::new();
    for e in arr(&r["proportions"], "wilson") {
        let (s, n, conf) = (
            uint(e, "successes"),
            uint(e, "trials"),
            num(e, "confidence"),
        );
        let got = hypothesis::proportion_ci(s, n, conf).unwrap();
        let what = format!("{s}/{n}");
        c.close(
            "wilson",
            what.clone(),
            got.interval.low,
            num(e, "low"),
            1e-13,
            1e-16,
        );
        c.close(
            "wilson",
            what,
            got.interval.high,
            num(e, "high"),
            1e-13,
            1e-16,
        );
    }
    for e in arr(&r["proportions"], "two_proportion") {
        let got = hypothesis::two_proportion_ztest(
            uint(e, "successes_a"),
            uint(e, "n_a"),
            uint(e, "successes_b"),
            uint(e, "n_b"),
            num(e, "confidence"),
        )
        .unwrap();
        let what = format!("{e}");
        c.close(
            "two-proportion z",
            what.clone(),
            got.z,
            num(e, "z"),
            1e-13,
            0.0,
        );
        c.close(
            "two-proportion p",
            what.clone(),
            got.p_value,
            num(e, "p_value"),
            1e-12,
            0.0,
        );
        c.close(
            "two-proportion ci",
            what.clone(),
            got.interval.low,
            num(e, "low"),
            1e-12,
            1e-16,
        );
        c.close(
            "two-proportion ci",
            what,
            got.interval.high,
            num(e, "high"),
            1e-12,
            1e-16,
        );
    }
    c.finish();
}

#[test]
fn welch_matches_scipy() {
    let r = reference();
    let mut c = Checker::new();
    let check = |c: &mut Checker, what: String, got: hypothesis::WelchTest, e: &Value| {
        c.close("welch t", what.clone(), got.t, num(e, "t"), 1e-12, 0.0);
        c.close("welch df", what.clone(), got.df, num(e, "df"), 1e-12, 0.0);
        c.close(
            "welch p",
            what.clone(),
            got.p_value,
            num(e, "p_value"),
            1e-10,
            0.0,
        );
        // The ends diff ∓ t_crit·se may cancel: hold them to 1e-11 of the width.
        let width = num(e, "high") - num(e, "low");
        let (low, high) = (got.interval.low, got.interval.high);
        c.close(
            "welch ci",
            what.clone(),
            low,
            num(e, "low"),
            0.0,
            1e-11 * width,
        );
        c.close("welch ci", what, high, num(e, "high"), 0.0, 1e-11 * width);
    };
    for (i, e) in arr(&r["welch"], "samples").iter().enumerate() {
        let got = hypothesis::welch_ttest_samples(
            &floats(&e["a"]),
            &floats(&e["b"]),
            num(e, "confidence"),
        )
        .unwrap();
        check(&mut c, format!("samples[{i}]"), got, e);
    }
    for (i, e) in arr(&r["welch"], "summaries").iter().enumerate() {
        let got =
            hypothesis::welch_ttest(&summary(&e["a"]), &summary(&e["b"]), num(e, "confidence"))
                .unwrap();
        check(&mut c, format!("summaries[{i}]"), got, e);
    }
    c.finish();
}

#[test]
fn srm_matches_scipy_chisquare() {
    let r = reference();
    let mut c = Checker::new();
    for e in r["srm"].as_array().unwrap() {
        let obs: Vec<u64> = arr(e, "observed")
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let got = hypothesis::srm_check(&obs, &floats(&e["weights"])).unwrap();
        assert_eq!(got.df as u64, uint(e, "df"));
        c.close(
            "srm statistic",
            format!("{obs:?}"),
            got.statistic,
            num(e, "statistic"),
            1e-12,
            0.0,
        );
        c.close(
            "srm p",
            format!("{obs:?}"),
            got.p_value,
            num(e, "p_value"),
            1e-12,
            0.0,
        );
    }
    c.finish();
}

#[test]
fn msprt_likelihood_ratio_matches_numerical_integration() {
    let r = reference();
    let mut c = Checker::new();
    for e in r["msprt"].as_array().unwrap() {
        let got = hypothesis::msprt_likelihood_ratio(
            num(e, "diff"),
            num(e, "n_a"),
            num(e, "n_b"),
            num(e, "variance_a"),
            num(e, "variance_b"),
            num(e, "tau2"),
        )
        .unwrap();
        // quad's own error estimate is ≤ 1e-14 relative; allow 1e-12.
        c.close(
            "msprt LR vs scipy quad",
            format!("{e}"),
            got,
            num(e, "quad"),
            1e-12,
            0.0,
        );
    }
    c.finish();
}

#[test]
fn cuped_matches_numpy() {
    let r = reference();
    let mut c = Checker::new();
    let s = &r["cuped"]["single"];
    let got = hypothesis::cuped(&floats(&s["y"]), &floats(&s["x"])).unwrap();
    c.close(
        "cuped",
        "theta".into(),
        got.theta,
        num(s, "theta"),
        1e-12,
        0.0,
    );
    c.close(
        "cuped",
        "mean".into(),
        got.adjusted_mean,
        num(s, "adjusted_mean"),
        1e-12,
        0.0,
    );
    c.close(
        "cuped",
        "var".into(),
        got.adjusted_variance,
        num(s, "adjusted_variance"),
        1e-12,
        0.0,
    );
    c.close(
        "cuped",
        "orig var".into(),
        got.original_variance,
        num(s, "original_variance"),
        1e-12,
        0.0,
    );
    c.close(
        "cuped",
        "reduction".into(),
        got.variance_reduction,
        num(s, "variance_reduction"),
        1e-12,
        0.0,
    );

    let cmp = &r["cuped"]["compare"];
    let data: Vec<(Vec<f64>, Vec<f64>)> = arr(cmp, "groups")
        .iter()
        .map(|g| (floats(&g["y"]), floats(&g["x"])))
        .collect();
    let groups: Vec<(&[f64], &[f64])> = data.iter().map(|(y, x)| (&y[..], &x[..])).collect();
    let got = hypothesis::cuped_compare(&groups, 0.95).unwrap();
    c.close(
        "cuped_compare",
        "theta".into(),
        got.theta,
        num(cmp, "theta"),
        1e-12,
        0.0,
    );
    for (k, (g, (m, v))) in got
        .groups
        .iter()
        .zip(
            floats(&cmp["adjusted_means"])
                .into_iter()
                .zip(floats(&cmp["adjusted_variances"])),
        )
        .enumerate()
    {
        c.close("cuped_compare", format!("mean[{k}]"), g.mean, m, 1e-12, 0.0);
        c.close(
            "cuped_compare",
            format!("var[{k}]"),
            g.variance,
            v,
            1e-12,
            0.0,
        );
    }
    for (k, (w, e)) in got
        .comparisons
        .iter()
        .zip(arr(cmp, "comparisons"))
        .enumerate()
    {
        c.close(
            "cuped_compare welch",
            format!("t[{k}]"),
            w.t,
            num(e, "t"),
            1e-11,
            0.0,
        );
        c.close(
            "cuped_compare welch",
            format!("df[{k}]"),
            w.df,
            num(e, "df"),
            1e-11,
            0.0,
        );
        c.close(
            "cuped_compare welch",
            format!("p[{k}]"),
            w.p_value,
            num(e, "p_value"),
            1e-10,
            0.0,
        );
        c.close(
            "cuped_compare welch",
            format!("low[{k}]"),
            w.interval.low,
            num(e, "low"),
            1e-11,
            0.0,
        );
        c.close(
            "cuped_compare welch",
            format!("high[{k}]"),
            w.interval.high,
            num(e, "high"),
            1e-11,
            0.0,
        );
    }
    c.finish();
}

/// Monte Carlo estimates within `K_SE` of their standard errors of the
/// integrals scipy's `quad` computes (plus `quad`'s own ~1e-11).
const K_SE: f64 = 4.5;
const DRAWS: usize = 200_000;

#[test]
fn bayesian_best_arm_matches_quadrature() {
    let r = reference();
    let mut c = Checker::new();
    let mut worst_z: f64 = 0.0;
    let mut mc = |c: &mut Checker, what: String, got: f64, se: f64, want: f64| {
        worst_z = worst_z.max((got - want).abs() / se.max(1e-300));
        c.close("bayes MC vs quad", what, got, want, 0.0, K_SE * se + 1e-9);
    };
    for (i, e) in arr(&r["bayes"], "beta").iter().enumerate() {
        let arms: Vec<(u64, u64)> = arr(e, "arms")
            .iter()
            .map(|a| (a[0].as_u64().unwrap(), a[1].as_u64().unwrap()))
            .collect();
        let prior = floats(&e["prior"]);
        let got =
            hypothesis::beta_bernoulli_best(&arms, (prior[0], prior[1]), DRAWS, 11 + i as u64)
                .unwrap();
        for (k, (arm, (p, l))) in got
            .arms
            .iter()
            .zip(
                floats(&e["prob_best"])
                    .into_iter()
                    .zip(floats(&e["expected_loss"])),
            )
            .enumerate()
        {
            mc(
                &mut c,
                format!("beta[{i}] prob_best[{k}]"),
                arm.prob_best,
                arm.prob_best_se,
                p,
            );
            mc(
                &mut c,
                format!("beta[{i}] loss[{k}]"),
                arm.expected_loss,
                arm.expected_loss_se,
                l,
            );
        }
        if let Some(m) = e.get("miller_b_beats_a") {
            let m = m.as_f64().unwrap();
            let a = (
                prior[0] + arms[0].0 as f64,
                prior[1] + (arms[0].1 - arms[0].0) as f64,
            );
            let b = (
                prior[0] + arms[1].0 as f64,
                prior[1] + (arms[1].1 - arms[1].0) as f64,
            );
            c.close(
                "beta closed form (Miller)",
                format!("beta[{i}]"),
                hypothesis::prob_beta_greater(a, b).unwrap(),
                m,
                1e-12,
                0.0,
            );
            // The quadrature agrees with the closed form, too.
            c.close(
                "quad vs Miller (python side)",
                format!("beta[{i}]"),
                floats(&e["prob_best"])[1],
                m,
                1e-9,
                0.0,
            );
            mc(
                &mut c,
                format!("beta[{i}] MC vs Miller"),
                got.arms[1].prob_best,
                got.arms[1].prob_best_se,
                m,
            );
        }
    }
    for (i, e) in arr(&r["bayes"], "gaussian").iter().enumerate() {
        let arms: Vec<GroupSummary> = arr(e, "arms").iter().map(summary).collect();
        let got = hypothesis::gaussian_best(&arms, DRAWS, 101 + i as u64).unwrap();
        for (k, (arm, (p, l))) in got
            .arms
            .iter()
            .zip(
                floats(&e["prob_best"])
                    .into_iter()
                    .zip(floats(&e["expected_loss"])),
            )
            .enumerate()
        {
            mc(
                &mut c,
                format!("gauss[{i}] prob_best[{k}]"),
                arm.prob_best,
                arm.prob_best_se,
                p,
            );
            mc(
                &mut c,
                format!("gauss[{i}] loss[{k}]"),
                arm.expected_loss,
                arm.expected_loss_se,
                l,
            );
        }
        if let Some(l) = e.get("closed_loss_a") {
            mc(
                &mut c,
                format!("gauss[{i}] closed loss a"),
                got.arms[0].expected_loss,
                got.arms[0].expected_loss_se,
                l.as_f64().unwrap(),
            );
        }
    }
    println!("bayes: worst |MC − quad| = {worst_z:.2} standard errors");
    c.finish();
}

#[test]
fn ope_matches_numpy() {
    let r = reference();
    let o = &r["ope"];
    let records: Vec<LoggedRecord> = arr(o, "records")
        .iter()
        .map(|e| LoggedRecord {
            action: uint(e, "action") as usize,
            propensity: num(e, "propensity"),
            reward: num(e, "reward"),
            target_prob: num(e, "target_prob"),
            predicted_reward: Some(num(e, "predicted_reward")),
            predicted_value: Some(num(e, "predicted_value")),
        })
        .collect();
    let mut c = Checker::new();
    let pairs = [
        ("ips", ope::ips(&records, None).unwrap()),
        ("snips", ope::snips(&records, None).unwrap()),
        ("doubly_robust", ope::doubly_robust(&records, None).unwrap()),
        ("ips_clipped_at_2", ope::ips(&records, Some(2.0)).unwrap()),
    ];
    for (name, got) in pairs {
        let e = &o[name];
        c.close(
            "ope",
            format!("{name} value"),
            got.value,
            num(e, "value"),
            1e-12,
            0.0,
        );
        c.close(
            "ope",
            format!("{name} se"),
            got.standard_error,
            num(e, "standard_error"),
            1e-12,
            0.0,
        );
        if name == "ips" {
            c.close(
                "ope",
                "ess".into(),
                got.effective_sample_size,
                num(o, "effective_sample_size"),
                1e-12,
                0.0,
            );
        }
    }
    c.finish();
}

#[test]
fn versions_are_recorded() {
    let r = reference();
    for lib in ["numpy", "scipy", "statsmodels"] {
        assert!(r["versions"][lib].is_string(), "{lib} version missing");
    }
}

// ---------------------------------------------------------------------------
// Two-sample drift statistics (reference.py's `twosample`)

/// The two-sample contract: 1e-9 relative, 1e-12 absolute near zero.
const REL: f64 = 1e-9;
const ABS: f64 = 1e-12;

/// reference.py's `splitmix_uniform`: the k-th uniform is the top 53 bits
/// of SplitMix64's mix of `seed + k·golden`.
fn splitmix_uniform(seed: u64, count: usize) -> Vec<f64> {
    (1..=count as u64)
        .map(|k| {
            let mut z = seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 * 2f64.powi(-53)
        })
        .collect()
}

/// reference.py's `generated`: Irwin–Hall(4), shifted, scaled, floored.
fn generated(spec: &Value) -> Vec<f64> {
    let n = uint(spec, "n") as usize;
    let u = splitmix_uniform(uint(spec, "seed"), 4 * n);
    let (loc, scale) = (num(spec, "loc"), num(spec, "scale"));
    let step = spec.get("step").and_then(Value::as_f64);
    u.chunks_exact(4)
        .map(|c| {
            let v = (((c[0] + c[1]) + c[2]) + c[3] - 2.0) * scale + loc;
            match step {
                Some(s) => (v / s).floor() * s,
                None => v,
            }
        })
        .collect()
}

/// The named samples of the fixture, each sorted once.
fn datasets(t: &Value) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    for (name, d) in t["datasets"].as_object().expect("datasets") {
        let values = if let Some(spec) = d.get("generated") {
            let v = generated(spec);
            assert_eq!(v.len() as u64, uint(d, "len"), "{name}: length");
            assert_eq!(&v[..4], &floats(&d["head"])[..], "{name}: first values");
            let sum: f64 = v.iter().sum();
            assert!(
                (sum - num(d, "sum")).abs() <= 1e-12 * v.len() as f64,
                "{name}: sum {sum} vs {}",
                num(d, "sum")
            );
            v
        } else {
            floats(&d["values"])
        };
        out.insert(name.clone(), twosample::sorted(&values));
    }
    out
}

fn pair<'a>(data: &'a BTreeMap<String, Vec<f64>>, e: &Value) -> (&'a [f64], &'a [f64], String) {
    let (a, b) = (e["a"].as_str().unwrap(), e["b"].as_str().unwrap());
    (&data[a][..], &data[b][..], format!("{a} vs {b}"))
}

fn method(v: &Value) -> PValueMethod {
    match v.as_str() {
        Some("exact") => PValueMethod::Exact,
        Some("asymptotic") => PValueMethod::Asymptotic,
        other => panic!("unknown method {other:?}"),
    }
}

#[test]
fn ks_2samp_matches_scipy() {
    let r = reference();
    let t = &r["twosample"];
    let data = datasets(t);
    let mut c = Checker::new();
    for e in arr(t, "ks_2samp") {
        let (a, b, what) = pair(&data, e);
        let got = twosample::ks_2samp(a, b).unwrap();
        assert_eq!(got.method, method(&e["method"]), "{what}");
        c.close(
            "ks_2samp statistic",
            what.clone(),
            got.statistic,
            num(e, "statistic"),
            1e-13,
            0.0,
        );
        let section = match got.method {
            PValueMethod::Exact => "ks_2samp p (exact)",
            PValueMethod::Asymptotic => "ks_2samp p (asymptotic)",
        };
        c.close(
            section,
            what.clone(),
            got.p_value,
            num(e, "p_value"),
            REL,
            ABS,
        );
        // The statistic and p-value do not depend on which sample is first.
        let swapped = twosample::ks_2samp(b, a).unwrap();
        assert_eq!(swapped.statistic, got.statistic, "{what}");
        assert_eq!(swapped.p_value, got.p_value, "{what}");
    }
    for e in arr(t, "kstwo_sf") {
        let (n, d) = (uint(e, "n"), num(e, "d"));
        c.close(
            "kstwo sf",
            format!("n={n} d={d}"),
            twosample::kstwo_sf(n, d).unwrap(),
            num(e, "sf"),
            REL,
            // scipy's own values below ~1e-300 are subnormal noise.
            1e-300,
        );
    }
    c.finish();
}

#[test]
fn cdf_distances_match_scipy() {
    let r = reference();
    let t = &r["twosample"];
    let data = datasets(t);
    let mut c = Checker::new();
    for e in arr(t, "cdf_distances") {
        let (a, b, what) = pair(&data, e);
        let w = twosample::wasserstein_distance(a, b).unwrap();
        c.close(
            "wasserstein",
            what.clone(),
            w,
            num(e, "wasserstein"),
            REL,
            ABS,
        );
        c.close(
            "wasserstein",
            what.clone(),
            w,
            num(e, "wasserstein_ba"),
            REL,
            ABS,
        );
        let en = twosample::energy_distance(a, b).unwrap();
        c.close("energy", what, en, num(e, "energy"), REL, ABS);
    }
    c.finish();
}

#[test]
fn anderson_ksamp_matches_scipy() {
    let r = reference();
    let t = &r["twosample"];
    let data = datasets(t);
    let mut c = Checker::new();
    let mut kinds = std::collections::BTreeSet::new();
    for e in arr(t, "anderson_ksamp") {
        let (a, b, what) = pair(&data, e);
        let got = twosample::anderson_ksamp(a, b).unwrap();
        c.close(
            "anderson statistic",
            what.clone(),
            got.statistic,
            num(e, "statistic"),
            REL,
            ABS,
        );
        c.close(
            "anderson p",
            what.clone(),
            got.p_value,
            num(e, "p_value"),
            REL,
            ABS,
        );
        for (g, w) in got
            .critical_values
            .iter()
            .zip(floats(&e["critical_values"]))
        {
            c.close("anderson critical values", what.clone(), *g, w, 1e-15, 0.0);
        }
        let want_p = num(e, "p_value");
        let kind = if want_p == 0.25 {
            AndersonPValue::Capped
        } else if want_p == 0.001 {
            AndersonPValue::Floored
        } else {
            AndersonPValue::Interpolated
        };
        assert_eq!(got.p_value_kind, kind, "{what}");
        kinds.insert(format!("{kind:?}"));
    }
    assert_eq!(
        kinds.len(),
        3,
        "the fixture covers capped, floored and interpolated p-values"
    );
    c.finish();
}

#[test]
fn cramervonmises_2samp_matches_scipy() {
    let r = reference();
    let t = &r["twosample"];
    let data = datasets(t);
    let mut c = Checker::new();
    for e in arr(t, "cramervonmises_2samp") {
        let (a, b, what) = pair(&data, e);
        let got = twosample::cramervonmises_2samp(a, b).unwrap();
        assert_eq!(got.method, method(&e["method"]), "{what}");
        c.close(
            "cvm statistic",
            what.clone(),
            got.statistic,
            num(e, "statistic"),
            REL,
            ABS,
        );
        let section = match got.method {
            PValueMethod::Exact => "cvm p (exact)",
            PValueMethod::Asymptotic => "cvm p (asymptotic)",
        };
        c.close(section, what, got.p_value, num(e, "p_value"), REL, ABS);
    }
    c.finish();
}

#[test]
fn chi_square_tests_match_scipy() {
    let r = reference();
    let t = &r["twosample"];
    let mut c = Checker::new();
    for e in arr(t, "chisquare") {
        let (obs, exp) = (floats(&e["f_obs"]), floats(&e["f_exp"]));
        let got = twosample::chisquare(&obs, &exp).unwrap();
        assert_eq!(got.dof as u64, uint(e, "dof"));
        c.close(
            "chisquare statistic",
            format!("{obs:?}"),
            got.statistic,
            num(e, "statistic"),
            REL,
            ABS,
        );
        c.close(
            "chisquare p",
            format!("{obs:?}"),
            got.p_value,
            num(e, "p_value"),
            REL,
            ABS,
        );
    }
    for e in arr(t, "chi2_contingency") {
        let table: Vec<Vec<f64>> = arr(e, "table").iter().map(floats).collect();
        let correction = if e["correction"].as_bool().unwrap() {
            Correction::Yates
        } else {
            Correction::Off
        };
        let what = format!("{table:?} {correction:?}");
        let got = twosample::chi2_contingency(&table, correction).unwrap();
        assert_eq!(got.dof as u64, uint(e, "dof"), "{what}");
        c.close(
            "chi2_contingency statistic",
            what.clone(),
            got.statistic,
            num(e, "statistic"),
            REL,
            ABS,
        );
        c.close(
            "chi2_contingency p",
            what.clone(),
            got.p_value,
            num(e, "p_value"),
            REL,
            ABS,
        );
        for (grow, wrow) in got.expected.iter().zip(arr(e, "expected")) {
            for (g, w) in grow.iter().zip(floats(wrow)) {
                c.close("chi2_contingency expected", what.clone(), *g, w, 1e-15, 0.0);
            }
        }
    }
    for e in arr(t, "jensenshannon") {
        let (p, q) = (floats(&e["p"]), floats(&e["q"]));
        let base = e["base"].as_f64();
        let got = twosample::jensenshannon(&p, &q, base).unwrap();
        c.close(
            "jensenshannon",
            format!("{p:?} {q:?} {base:?}"),
            got,
            num(e, "distance"),
            REL,
            ABS,
        );
    }
    c.finish();
}

#[test]
fn evidently_scores_match_their_definitions() {
    let r = reference();
    let ev = &r["twosample"]["evidently"];
    let mut c = Checker::new();
    for e in arr(ev, "histograms") {
        let what = format!("{} {} vs {}", e["kind"], e["a"], e["b"]);
        let (rp, cp) = (floats(&e["ref_percents"]), floats(&e["cur_percents"]));
        let rf = twosample::fill_zero_percents(&rp).unwrap();
        let cf = twosample::fill_zero_percents(&cp).unwrap();
        for (g, w) in rf.iter().chain(&cf).zip(
            floats(&e["ref_filled"])
                .into_iter()
                .chain(floats(&e["cur_filled"])),
        ) {
            c.close(
                "evidently fill_zero_percents",
                what.clone(),
                *g,
                w,
                0.0,
                0.0,
            );
        }
        c.close(
            "evidently psi",
            what.clone(),
            twosample::psi(&rf, &cf).unwrap(),
            num(e, "psi"),
            REL,
            ABS,
        );
        c.close(
            "evidently kl_div",
            what.clone(),
            twosample::kl_div(&rf, &cf).unwrap(),
            num(e, "kl_div"),
            REL,
            ABS,
        );
        c.close(
            "evidently jensenshannon",
            what.clone(),
            twosample::jensenshannon(&rp, &cp, None).unwrap(),
            num(e, "jensenshannon"),
            REL,
            ABS,
        );
        let (hr, hc) = (
            floats(&e["hellinger_ref_percents"]),
            floats(&e["hellinger_cur_percents"]),
        );
        c.close(
            "evidently hellinger",
            what,
            twosample::hellinger(&hr, &hc).unwrap(),
            num(e, "hellinger"),
            REL,
            ABS,
        );
    }
    for e in arr(ev, "z_test") {
        let what = format!("{e}");
        let got = twosample::proportions_z_test(
            uint(e, "ref_ones"),
            uint(e, "ref_n"),
            uint(e, "cur_ones"),
            uint(e, "cur_n"),
        )
        .unwrap();
        match e["z"].as_f64() {
            Some(z) => c.close("evidently z", what.clone(), got.z, z, 1e-13, 0.0),
            None => assert_eq!(got.z, 0.0, "{what}"),
        }
        c.close(
            "evidently z p",
            what,
            got.p_value,
            num(e, "p_value"),
            REL,
            ABS,
        );
    }
    c.finish();
}
