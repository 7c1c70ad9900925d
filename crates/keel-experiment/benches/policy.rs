//! Criterion benchmarks of a decision and its reward: the policy core of
//! each strategy family on 5 variants (contextual ones on 10 features), and
//! the whole in-process path through `Deployments` (decision log included,
//! without fsync).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_experiment::policy::PolicyState;
use keel_experiment::strategy::{RewardModel, VariantSpec};
use keel_experiment::{DecideRequest, DeploymentSpec, Deployments, Strategy};
use keel_stats::rng::Rng;

const ARMS: usize = 5;
const DIM: usize = 10;
/// Bernoulli reward probabilities of the arms.
const RATES: [f64; ARMS] = [0.2, 0.3, 0.75, 0.4, 0.25];

fn strategies() -> Vec<(&'static str, Strategy)> {
    vec![
        ("epsilon_greedy", Strategy::EpsilonGreedy { epsilon: 0.1 }),
        ("ucb1", Strategy::Ucb1),
        ("softmax", Strategy::Softmax { temperature: 0.1 }),
        (
            "thompson_1_draw",
            Strategy::Thompson {
                reward: RewardModel::Bernoulli,
                propensity_draws: 1,
            },
        ),
        (
            "thompson_100_draws",
            Strategy::Thompson {
                reward: RewardModel::Bernoulli,
                propensity_draws: 100,
            },
        ),
        (
            "linucb_d10",
            Strategy::Linucb {
                alpha: 1.0,
                lambda: 1.0,
            },
        ),
    ]
}

fn policy_pairs(c: &mut Criterion) {
    let weights = [1.0; ARMS];
    for (name, strategy) in strategies() {
        let mut state = PolicyState::new(ARMS);
        let mut rng = Rng::from_seed(1);
        let mut env = Rng::from_seed(2);
        let context: Vec<f64> = if strategy.contextual() {
            (0..DIM).map(|i| (i as f64 * 0.37).sin()).collect()
        } else {
            Vec::new()
        };
        // A warm policy: 10,000 rounds of learning first.
        let mut round = |state: &mut PolicyState, rng: &mut Rng| {
            let choice = state.decide(&strategy, &weights, 0.5, &context, rng);
            state.record_decision(choice.arm);
            let reward = f64::from(env.next_f64() < RATES[choice.arm]);
            state.reward(&strategy, choice.arm, &context, reward);
            choice.arm
        };
        for _ in 0..10_000 {
            round(&mut state, &mut rng);
        }
        c.bench_function(&format!("decide_and_reward/{name}"), |b| {
            b.iter(|| black_box(round(&mut state, &mut rng)))
        });
    }
}

fn deployment_pairs(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(deployments) = Deployments::open(&dir.path().join("decisions.log"), false) else {
        return;
    };
    let spec = DeploymentSpec {
        name: "bench".into(),
        strategy: Strategy::EpsilonGreedy { epsilon: 0.1 },
        variants: (0..ARMS)
            .map(|i| VariantSpec {
                name: format!("v{i}"),
                model: None,
                weight: None,
            })
            .collect(),
        salt: None,
        per_segment: false,
        seed: Some(3),
        guards: None,
        lifecycle: None,
    };
    if rt.block_on(deployments.create(spec)).is_err() {
        return;
    }
    c.bench_function("deployments/decide_and_feedback_logged", |b| {
        b.iter(|| {
            rt.block_on(async {
                let d = deployments
                    .decide("bench", DecideRequest::default())
                    .await
                    .map_err(|e| e.to_string())?;
                deployments
                    .feedback(&d.decision_id, 1.0)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
    });
}

criterion_group!(benches, policy_pairs, deployment_pairs);
criterion_main!(benches);
