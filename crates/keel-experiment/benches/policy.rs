//! Criterion benchmarks of a decision and its reward: the policy core of
//! each strategy family on 5 variants (contextual ones on 10 features), and
//! the whole in-process path through `Deployments` (decision log included,
//! without fsync).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_experiment::policy::PolicyState;
use keel_experiment::strategy::{RewardModel, VariantSpec};
use keel_experiment::{DecideRequest, DeploymentSpec, Deployments, Outcome, Strategy};
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

fn bench_spec() -> DeploymentSpec {
    DeploymentSpec {
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
    }
}

/// Decide + feedback through `Deployments`, the decision log included
/// (written, not fsynced): one caller at a time, 64 concurrent callers on
/// a 2-thread runtime, and batches of 1,000.
fn deployment_pairs(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
    else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(deployments) = Deployments::open(&dir.path().join("decisions.log"), false) else {
        return;
    };
    let deployments = std::sync::Arc::new(deployments);
    if rt.block_on(deployments.create(bench_spec())).is_err() {
        return;
    }
    let pair = |d: std::sync::Arc<Deployments>| async move {
        let decision = d
            .decide("bench", DecideRequest::default())
            .await
            .map_err(|e| e.to_string())?;
        d.feedback(&decision.decision_id, 1.0)
            .await
            .map_err(|e| e.to_string())
    };
    c.bench_function("deployments/decide_and_feedback_logged", |b| {
        b.iter(|| rt.block_on(pair(deployments.clone())))
    });
    let mut group = c.benchmark_group("deployments");
    const CALLERS: u64 = 64;
    group.throughput(criterion::Throughput::Elements(CALLERS));
    group.bench_function("pairs_64_concurrent_callers", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            rt.block_on(async {
                let tasks: Vec<_> = (0..CALLERS)
                    .map(|_| {
                        let d = deployments.clone();
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                let _ = pair(d.clone()).await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
            start.elapsed()
        })
    });
    const BATCH: usize = 1000;
    group.throughput(criterion::Throughput::Elements(BATCH as u64));
    group.bench_function("pairs_in_batches_of_1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let decisions = deployments
                    .decide_many("bench", vec![DecideRequest::default(); BATCH])
                    .await
                    .map_err(|e| e.to_string())?;
                let outcomes = decisions
                    .into_iter()
                    .map(|d| Outcome {
                        decision_id: d.decision_id,
                        reward: Some(1.0),
                        error: false,
                    })
                    .collect();
                deployments
                    .outcomes(outcomes)
                    .await
                    .map_err(|e| e.to_string())
            })
        })
    });
    group.finish();
}

criterion_group!(benches, policy_pairs, deployment_pairs);
criterion_main!(benches);
