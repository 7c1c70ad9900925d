//! Runs Keel's bandit policies on a simulated environment, for
//! `bench/bandits_bench.py` (issue 8: Keel against Vowpal Wabbit).
//!
//! ```text
//! bandit_sim --env bench/bandits/contextual.json --stream STREAM.bin \
//!     --strategy '{"type": "linucb", "alpha": 0.5}' [--strategy JSON]... \
//!     [--seed 1] [--checkpoint 10000] [--rounds N]
//! ```
//!
//! The environment file gives the arms' reward probabilities: `rates[a]`
//! (kind `bernoulli`), or `p_a(x) = clip(bias[a] + weights[a]·x, clip)`
//! (kind `contextual`). The stream file, written by the driver, holds every
//! round's context and two uniforms: `u0` decides the reward
//! (`u0 < p_chosen(x)`), the same for every policy (common random numbers);
//! `u1` is the peer's action draw, unused here. Layout, little-endian:
//! `b"KEELBND1"`, rounds (u64), dim (u64), then per round `dim + 2` f64s.
//!
//! Each `--strategy` is the `strategy` of a deployment spec, as
//! `POST /v1/deployments` takes it, validated the same way. Each runs on a
//! fresh `PolicyState` through the calls `Deployments::decide` and
//! `Deployments::feedback` make, in the same order, with one seeded `Rng`:
//! a bucket draw (a decision without a unit id), `decide`,
//! `record_decision`, then `reward` with the decision's context. Contextual
//! strategies get `[1, x…]`: the disjoint linear models have no intercept
//! of their own, so the constant feature is the client's job.
//!
//! Timed: the decide + reward loop only (the reward is looked up from
//! probabilities computed before it). Printed on stdout: one JSON
//! document with, per strategy, the cumulative expected regret
//! `Σ_t max_a p_a(x_t) − p_chosen(x_t)`, the realized reward, rounds/s and
//! the regret every `--checkpoint` rounds.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use keel_experiment::policy::PolicyState;
use keel_experiment::{DeploymentSpec, Strategy};
use keel_stats::rng::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const MAGIC: &[u8; 8] = b"KEELBND1";

const USAGE: &str = "usage: bandit_sim --env ENV.json --stream STREAM.bin --strategy JSON \
[--strategy JSON]... [--seed N] [--checkpoint N] [--rounds N]";

/// The environment file (`bench/bandits/*.json`); `description`, `seed`
/// and the like are the driver's.
#[derive(Debug, Deserialize)]
struct Env {
    kind: String,
    arms: usize,
    #[serde(default)]
    dim: usize,
    #[serde(default)]
    rates: Vec<f64>,
    #[serde(default)]
    bias: Vec<f64>,
    #[serde(default)]
    weights: Vec<Vec<f64>>,
    #[serde(default)]
    clip: Option<[f64; 2]>,
}

impl Env {
    /// Every problem with the file at once, each naming its field.
    fn validate(&self) -> std::result::Result<(), String> {
        let mut problems = Vec::new();
        if self.arms < 2 {
            problems.push(format!("arms: {} (a bandit needs at least 2)", self.arms));
        }
        let prob = |x: f64| (0.0..=1.0).contains(&x);
        match self.kind.as_str() {
            "bernoulli" => {
                if self.rates.len() != self.arms {
                    problems.push(format!(
                        "rates: {} values for {} arms",
                        self.rates.len(),
                        self.arms
                    ));
                }
                for (i, r) in self.rates.iter().enumerate() {
                    if !prob(*r) {
                        problems.push(format!("rates[{i}]: {r} is not within [0, 1]"));
                    }
                }
            }
            "contextual" => {
                if self.dim == 0 {
                    problems.push("dim: a contextual environment needs dim >= 1".into());
                }
                if self.bias.len() != self.arms {
                    problems.push(format!(
                        "bias: {} values for {} arms",
                        self.bias.len(),
                        self.arms
                    ));
                }
                if self.weights.len() != self.arms {
                    problems.push(format!(
                        "weights: {} rows for {} arms",
                        self.weights.len(),
                        self.arms
                    ));
                }
                for (i, w) in self.weights.iter().enumerate() {
                    if w.len() != self.dim {
                        problems.push(format!(
                            "weights[{i}]: {} values, dim is {}",
                            w.len(),
                            self.dim
                        ));
                    }
                }
                match self.clip {
                    Some([lo, hi]) if prob(lo) && prob(hi) && lo <= hi => {}
                    Some(c) => problems.push(format!("clip: {c:?} is not [lo, hi] within [0, 1]")),
                    None => problems.push("clip: missing ([lo, hi])".into()),
                }
            }
            other => problems.push(format!(
                "kind: {other:?} (expected \"bernoulli\" or \"contextual\")"
            )),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Every arm's reward probability at `x`.
    fn probabilities(&self, x: &[f64], out: &mut [f64]) {
        if self.kind == "bernoulli" {
            out.copy_from_slice(&self.rates);
            return;
        }
        let [lo, hi] = self.clip.unwrap_or([0.0, 1.0]);
        for (a, p) in out.iter_mut().enumerate() {
            let lin: f64 = self.bias[a]
                + self.weights[a]
                    .iter()
                    .zip(x)
                    .map(|(w, xi)| w * xi)
                    .sum::<f64>();
            *p = lin.clamp(lo, hi);
        }
    }
}

/// The stream file: `rounds` rows of `dim` context values and two uniforms.
struct Stream {
    rounds: usize,
    dim: usize,
    values: Vec<f64>,
}

impl Stream {
    fn read(path: &PathBuf) -> Result<Stream> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bad = |why: String| format!("{}: {why}", path.display());
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(bad("not a stream file (no KEELBND1 header)".into()).into());
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            b
        };
        let rounds = usize::try_from(u64::from_le_bytes(word(8)))?;
        let dim = usize::try_from(u64::from_le_bytes(word(16)))?;
        let count = rounds
            .checked_mul(dim + 2)
            .ok_or_else(|| bad(format!("{rounds} rounds x {dim} is too large")))?;
        if bytes.len() != 24 + count * 8 {
            return Err(bad(format!(
                "{} bytes, but {rounds} rounds of dim {dim} need {}",
                bytes.len(),
                24 + count * 8
            ))
            .into());
        }
        let values = bytes[24..]
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b)
            })
            .collect();
        Ok(Stream {
            rounds,
            dim,
            values,
        })
    }

    fn row(&self, t: usize) -> &[f64] {
        let w = self.dim + 2;
        &self.values[t * w..(t + 1) * w]
    }
}

struct Args {
    env: PathBuf,
    stream: PathBuf,
    strategies: Vec<Value>,
    seed: u64,
    checkpoint: usize,
    rounds: Option<usize>,
}

fn parse_args() -> Result<Args> {
    let mut env = None;
    let mut stream = None;
    let mut strategies = Vec::new();
    let mut seed = 1;
    let mut checkpoint = 10_000;
    let mut rounds = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a non-negative integer"))
        };
        match flag.as_str() {
            "--env" => env = Some(PathBuf::from(value)),
            "--stream" => stream = Some(PathBuf::from(value)),
            "--strategy" => strategies.push(
                serde_json::from_str(&value)
                    .map_err(|e| format!("--strategy {value:?}: not JSON: {e}"))?,
            ),
            "--seed" => seed = number(&value)?,
            "--checkpoint" => checkpoint = usize::try_from(number(&value)?)?.max(1),
            "--rounds" => rounds = Some(usize::try_from(number(&value)?)?),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
    }
    let (Some(env), Some(stream)) = (env, stream) else {
        return Err(format!("--env and --stream are required\n{USAGE}").into());
    };
    if strategies.is_empty() {
        return Err(format!("give at least one --strategy\n{USAGE}").into());
    }
    Ok(Args {
        env,
        stream,
        strategies,
        seed,
        checkpoint,
        rounds,
    })
}

/// The strategy as a deployment would hold it, validated as
/// `POST /v1/deployments` validates it.
fn strategy(value: &Value, arms: usize) -> Result<Strategy> {
    // Built from JSON, as the API receives it, so fields the spec gains
    // later take their defaults here too.
    let variants: Vec<Value> = (0..arms)
        .map(|i| json!({"name": format!("arm{i}")}))
        .collect();
    let spec: DeploymentSpec = serde_json::from_value(json!({
        "name": "sim",
        "strategy": value,
        "variants": variants,
    }))
    .map_err(|e| format!("--strategy {value}: {e}"))?;
    spec.validate()
        .map_err(|e| format!("--strategy {value}: {e}"))?;
    if !spec.strategy.learns() {
        return Err(format!(
            "--strategy {value}: {} does not learn",
            spec.strategy.kind()
        )
        .into());
    }
    Ok(spec.strategy)
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let text =
        std::fs::read_to_string(&args.env).map_err(|e| format!("{}: {e}", args.env.display()))?;
    let env: Env =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.env.display()))?;
    env.validate()
        .map_err(|e| format!("{}: {e}", args.env.display()))?;
    let stream = Stream::read(&args.stream)?;
    if stream.dim != env.dim {
        return Err(format!(
            "{}: contexts of dim {}, but {} says dim {}",
            args.stream.display(),
            stream.dim,
            args.env.display(),
            env.dim
        )
        .into());
    }
    let rounds = args.rounds.unwrap_or(stream.rounds);
    if rounds > stream.rounds {
        return Err(format!(
            "--rounds {rounds}: the stream has only {} rounds",
            stream.rounds
        )
        .into());
    }
    let strategies = args
        .strategies
        .iter()
        .map(|v| strategy(v, env.arms))
        .collect::<Result<Vec<_>>>()?;

    // Everything the loop looks up, computed before it: each round's
    // context as Keel gets it, each arm's probability, the reward draw.
    let k = env.arms;
    let mut contexts = Vec::with_capacity(rounds * (env.dim + 1));
    let mut probs = vec![0.0; rounds * k];
    let mut draws = Vec::with_capacity(rounds);
    let mut best = Vec::with_capacity(rounds);
    for t in 0..rounds {
        let row = stream.row(t);
        let x = &row[..env.dim];
        // Deployments::decide refuses such contexts; so does the simulation.
        if let Some(i) = row.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "{}: round {t}, value {i} is not a finite number",
                args.stream.display()
            )
            .into());
        }
        if env.dim > 0 {
            contexts.push(1.0);
            contexts.extend_from_slice(x);
        }
        let p = &mut probs[t * k..(t + 1) * k];
        env.probabilities(x, p);
        best.push(p.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        draws.push(row[env.dim]);
    }
    let oracle: f64 = best.iter().sum();
    let width = if env.dim > 0 { env.dim + 1 } else { 0 };

    let mut results = Vec::new();
    for (value, strategy) in args.strategies.iter().zip(&strategies) {
        let mut state = PolicyState::new(k);
        let mut rng = Rng::from_seed(args.seed);
        let weights = vec![1.0; k];
        let mut regret = vec![0.0; rounds];
        let mut chosen = vec![0u32; rounds];
        let mut propensity_sum = 0.0;
        let start = Instant::now();
        for t in 0..rounds {
            let context = &contexts[t * width..(t + 1) * width];
            let bucket = rng.next_f64();
            let choice = state.decide(strategy, &weights, bucket, context, &mut rng);
            state.record_decision(choice.arm);
            let p = probs[t * k + choice.arm];
            let reward = f64::from(draws[t] < p);
            state.reward(strategy, choice.arm, context, reward);
            regret[t] = best[t] - p;
            chosen[t] = choice.arm as u32;
            propensity_sum += choice.propensity;
        }
        let seconds = start.elapsed().as_secs_f64();

        let mut arm_counts = vec![0u64; k];
        let mut cumulative = 0.0;
        let mut expected_reward = 0.0;
        let mut reward = 0u64;
        let mut curve = Vec::new();
        for t in 0..rounds {
            let a = chosen[t] as usize;
            arm_counts[a] += 1;
            cumulative += regret[t];
            let p = probs[t * k + a];
            expected_reward += p;
            reward += u64::from(draws[t] < p);
            if (t + 1) % args.checkpoint == 0 || t + 1 == rounds {
                curve.push(json!({"round": t + 1, "regret": cumulative, "reward": reward}));
            }
        }
        results.push(json!({
            "strategy": value,
            "kind": strategy.kind(),
            "cumulative_regret": cumulative,
            "reward": reward,
            "expected_reward": expected_reward,
            "seconds": seconds,
            "rounds_per_s": rounds as f64 / seconds,
            "mean_propensity": propensity_sum / rounds.max(1) as f64,
            "arm_counts": arm_counts,
            "checkpoints": curve,
        }));
    }
    let out = json!({
        "env": args.env.display().to_string(),
        "kind": env.kind,
        "arms": k,
        "dim": env.dim,
        "context_given_to_keel": if env.dim > 0 { "[1, x...]: a constant, then the dim features" } else { "none" },
        "rounds": rounds,
        "seed": args.seed,
        "checkpoint": args.checkpoint,
        "oracle_expected_reward": oracle,
        "results": results,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bandit_sim: {e}");
        std::process::exit(2);
    }
}
