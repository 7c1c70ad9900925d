//! Monte Carlo properties, with the crate's own seeded RNG (deterministic):
//! the mSPRT keeps its level under continuous peeking while a peeked
//! fixed-horizon z-test does not, and detects a real effect; the
//! off-policy estimators cover a known true value; hand-computed OPE values.

use keel_stats::hypothesis::{self, Msprt};
use keel_stats::ope::{self, LoggedRecord};
use keel_stats::special;
use keel_stats::{Rng, StatsError};

const EXPERIMENTS: usize = 500;
const HORIZON: usize = 2_000;
const PEEK_EVERY: usize = 50;
const ALPHA: f64 = 0.05;
const TAU2: f64 = 0.01;

/// Simulate `experiments` two-arm experiments with unit-variance normal
/// observations and a true difference `effect` (arm A minus arm B); return
/// (fraction the mSPRT ever rejected, fraction a fixed-horizon z-test
/// peeked at the same times ever rejected).
fn peeking_rejection_rates(seed: u64, experiments: usize, effect: f64) -> (f64, f64) {
    let mut rng = Rng::from_seed(seed);
    let z_crit = -special::norm_ppf(ALPHA / 2.0).unwrap();
    let (mut msprt_rejects, mut z_rejects) = (0, 0);
    for _ in 0..experiments {
        let mut m = Msprt::new(TAU2, ALPHA, Some(1.0)).unwrap();
        let mut z_rejected = false;
        let mut rejected = false;
        for n in 1..=HORIZON {
            m.observe_pair(rng.normal() + effect, rng.normal()).unwrap();
            if n.is_multiple_of(PEEK_EVERY) {
                let state = m.peek().unwrap();
                rejected |= state.rejected;
                let z = state.difference / state.difference_variance.sqrt();
                z_rejected |= z.abs() > z_crit;
            }
        }
        msprt_rejects += usize::from(rejected);
        z_rejects += usize::from(z_rejected);
    }
    (
        msprt_rejects as f64 / experiments as f64,
        z_rejects as f64 / experiments as f64,
    )
}

#[test]
fn msprt_keeps_its_level_under_peeking_and_naive_peeking_does_not() {
    let (msprt, naive) = peeking_rejection_rates(2017, EXPERIMENTS, 0.0);
    // Ville's inequality bounds the mSPRT's type-I error by α whatever the
    // peeking; allow 3 Monte Carlo standard errors of a rate of α.
    let margin = 3.0 * (ALPHA * (1.0 - ALPHA) / EXPERIMENTS as f64).sqrt();
    println!("A/A, {EXPERIMENTS} experiments, 40 peeks: mSPRT {msprt:.3}, naive z {naive:.3}");
    assert!(
        msprt <= ALPHA + margin,
        "mSPRT rejected {msprt} of A/A tests"
    );
    // 40 peeks at a fixed-horizon test inflate its type-I error several-fold
    // (to ~0.25 here; Armitage, McPherson & Rowe 1969).
    assert!(naive >= 3.0 * ALPHA, "naive peeking rejected only {naive}");
    assert!(naive > msprt + 0.1);
}

#[test]
fn msprt_detects_a_real_effect() {
    let (msprt, _) = peeking_rejection_rates(7, 100, 0.15);
    println!("effect 0.15 sd, 100 experiments: mSPRT power {msprt:.3}");
    assert!(msprt >= 0.9, "mSPRT power {msprt}");
}

#[test]
fn msprt_p_values_are_monotone_and_match_the_likelihood_ratio() {
    let mut rng = Rng::from_seed(3);
    let pairs: Vec<(f64, f64)> = (0..500)
        .map(|_| (rng.normal() * 2.0 + 0.3, rng.normal() * 2.0))
        .collect();
    let states = hypothesis::msprt_sequence(&pairs, 0.05, 0.05, None, 25).unwrap();
    assert_eq!(states.len(), 20);
    let mut prev = 1.0;
    for s in &states {
        assert!(s.p_value <= prev && (0.0..=1.0).contains(&s.p_value));
        prev = s.p_value;
    }
    // The last state's LR is the closed form on the running summaries.
    let last = states.last().unwrap();
    let a: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let b: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let (sa, sb) = (
        hypothesis::GroupSummary::from_sample("a", &a).unwrap(),
        hypothesis::GroupSummary::from_sample("b", &b).unwrap(),
    );
    let lr = hypothesis::msprt_likelihood_ratio(
        sa.mean - sb.mean,
        sa.n,
        sb.n,
        sa.variance,
        sb.variance,
        0.05,
    )
    .unwrap();
    assert!((last.likelihood_ratio - lr).abs() <= 1e-9 * lr);
    assert!(
        states
            .iter()
            .all(|s| s.p_value <= (1.0 / s.likelihood_ratio).min(1.0) + 1e-15)
    );
    // Errors, not panics.
    assert!(matches!(
        Msprt::new(0.0, 0.05, None),
        Err(StatsError::OutOfRange { .. })
    ));
    assert!(Msprt::new(1.0, 0.05, None).unwrap().peek().is_err());
    let err = hypothesis::msprt_sequence(&[(1.0, f64::NAN)], 1.0, 0.05, Some(1.0), 1).unwrap_err();
    assert!(err.to_string().contains("pairs[0].b"), "{err}");
}

// ---------------------------------------------------------------------------
// Off-policy evaluation
// ---------------------------------------------------------------------------

const CONTEXTS: usize = 10;
const ACTIONS: usize = 3;

fn true_mean(x: usize, a: usize) -> f64 {
    let x = x as f64 / CONTEXTS as f64;
    match a {
        0 => 0.2 + 0.5 * x,
        1 => 0.7 - 0.4 * x,
        _ => 0.3 + 0.2 * (6.0 * x).sin().abs(),
    }
}

fn logging(x: usize) -> [f64; ACTIONS] {
    if x.is_multiple_of(2) {
        [0.6, 0.3, 0.1]
    } else {
        [0.2, 0.3, 0.5]
    }
}

/// The target policy: 0.8 on the truly best action, 0.1 on the others.
fn target(x: usize) -> [f64; ACTIONS] {
    let best = (0..ACTIONS)
        .max_by(|&a, &b| true_mean(x, a).total_cmp(&true_mean(x, b)))
        .unwrap_or(0);
    let mut p = [0.1; ACTIONS];
    p[best] = 0.8;
    p
}

fn true_value() -> f64 {
    (0..CONTEXTS)
        .map(|x| {
            let pi = target(x);
            (0..ACTIONS).map(|a| pi[a] * true_mean(x, a)).sum::<f64>()
        })
        .sum::<f64>()
        / CONTEXTS as f64
}

/// `n` logged Bernoulli-reward decisions; the reward model is the truth
/// shifted by `model_error` (a good model when small).
fn simulate(rng: &mut Rng, n: usize, model_error: f64) -> Vec<LoggedRecord> {
    (0..n)
        .map(|_| {
            let x = rng.below(CONTEXTS as u64) as usize;
            let mu = logging(x);
            let u = rng.next_f64();
            let mut a = 0;
            let mut acc = mu[0];
            while u >= acc && a + 1 < ACTIONS {
                a += 1;
                acc += mu[a];
            }
            let reward = if rng.next_f64() < true_mean(x, a) {
                1.0
            } else {
                0.0
            };
            let pi = target(x);
            let q = |a: usize| true_mean(x, a) + model_error;
            LoggedRecord {
                action: a,
                propensity: mu[a],
                reward,
                target_prob: pi[a],
                predicted_reward: Some(q(a)),
                predicted_value: Some((0..ACTIONS).map(|b| pi[b] * q(b)).sum()),
            }
        })
        .collect()
}

#[test]
fn ope_estimates_cover_the_true_value_and_dr_beats_ips() {
    let v = true_value();
    let mut rng = Rng::from_seed(99);
    let records = simulate(&mut rng, 5_000, 0.02);
    let ips = ope::ips(&records, None).unwrap();
    let snips = ope::snips(&records, None).unwrap();
    let dr = ope::doubly_robust(&records, None).unwrap();
    for e in [&ips, &snips, &dr] {
        println!(
            "{:?}: {:.4} ± {:.4} (true {v:.4})",
            e.estimator, e.value, e.standard_error
        );
        assert!(e.ci_low <= v && v <= e.ci_high, "{e:?} misses {v}");
    }
    assert!(
        dr.standard_error < 0.85 * ips.standard_error,
        "DR se {} vs IPS se {}",
        dr.standard_error,
        ips.standard_error
    );
    assert!((ips.mean_weight - 1.0).abs() < 0.05);

    // Over repeated datasets, the 95% intervals cover about 95% of the time.
    let reps = 200;
    let mut covered = [0usize; 3];
    for _ in 0..reps {
        let records = simulate(&mut rng, 400, 0.02);
        let est = [
            ope::ips(&records, None).unwrap(),
            ope::snips(&records, None).unwrap(),
            ope::doubly_robust(&records, None).unwrap(),
        ];
        for (c, e) in covered.iter_mut().zip(&est) {
            *c += usize::from(e.ci_low <= v && v <= e.ci_high);
        }
    }
    let rates = covered.map(|c| c as f64 / reps as f64);
    println!("coverage over {reps} datasets (IPS, SNIPS, DR): {rates:?}");
    // 0.95 minus ~4 binomial standard errors (0.015) and a little
    // small-sample slack for the normal approximation.
    assert!(rates.iter().all(|&r| r >= 0.88), "{rates:?}");
}

fn rec(propensity: f64, target_prob: f64, reward: f64, q: f64, v: f64) -> LoggedRecord {
    LoggedRecord {
        action: 0,
        propensity,
        reward,
        target_prob,
        predicted_reward: Some(q),
        predicted_value: Some(v),
    }
}

#[test]
fn ope_hand_computed_values() {
    // Weights 0.5, 2, 2, 0.
    let records = [
        rec(0.5, 0.25, 1.0, 0.8, 0.6),
        rec(0.25, 0.5, 0.0, 0.2, 0.4),
        rec(0.5, 1.0, 2.0, 1.5, 1.5),
        rec(1.0, 0.0, 3.0, 1.0, 0.5),
    ];
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * b.abs().max(1.0);
    // IPS terms 0.5, 0, 4, 0: mean 1.125, Σ(dev²) = 11.1875.
    let ips = ope::ips(&records, None).unwrap();
    assert!(close(ips.value, 1.125));
    assert!(close(ips.standard_error, (11.1875f64 / 3.0 / 4.0).sqrt()));
    assert!(close(
        ips.ci_low,
        1.125 - 1.959_963_984_540_054 * ips.standard_error
    ));
    assert!(close(ips.effective_sample_size, 4.5 * 4.5 / 8.25));
    assert!(close(ips.mean_weight, 1.125));
    // SNIPS: Σwr / Σw = 4.5 / 4.5; se = √(Σ w²(r − 1)²) / Σw = √8 / 4.5.
    let snips = ope::snips(&records, None).unwrap();
    assert!(close(snips.value, 1.0));
    assert!(close(snips.standard_error, 8f64.sqrt() / 4.5));
    // DR terms 0.7, 0, 2.5, 0.5: mean 0.925, Σ(dev²) = 3.5675.
    let dr = ope::doubly_robust(&records, None).unwrap();
    assert!(close(dr.value, 0.925));
    assert!(close(dr.standard_error, (3.5675f64 / 3.0 / 4.0).sqrt()));
    // Clipping at 1.5: weights 0.5, 1.5, 1.5, 0; terms 0.5, 0, 3, 0.
    let clipped = ope::ips(&records, Some(1.5)).unwrap();
    assert!(close(clipped.value, 0.875));
    assert_eq!(clipped.clipped, 2);

    // Bad input is an error naming the record.
    let mut bad = records;
    bad[2].propensity = 0.0;
    let err = ope::ips(&bad, None).unwrap_err();
    assert!(err.to_string().contains("records[2].propensity"), "{err}");
    let mut no_model = records;
    no_model[1].predicted_value = None;
    assert!(ope::ips(&no_model, None).is_ok());
    let err = ope::doubly_robust(&no_model, None).unwrap_err();
    assert!(
        err.to_string().contains("records[1].predicted_value"),
        "{err}"
    );
    assert!(ope::ips(&[], None).is_err());
    let zero = [rec(0.5, 0.0, 1.0, 0.0, 0.0), rec(0.5, 0.0, 1.0, 0.0, 0.0)];
    assert!(ope::snips(&zero, None).is_err());
    assert!(ope::ips(&records, Some(f64::NAN)).is_err());
}
