//! The deployments of one Keel server: create, decide, reward, describe;
//! backed by the decision log.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use keel_stats::rng::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ExperimentError;
use crate::log::{DecisionLog, durable};
use crate::policy::{ArmStats, PolicyState, bucket, fnv1a};
use crate::strategy::{DeploymentSpec, Strategy};

/// Decisions awaiting a reward, per deployment; the oldest are forgotten
/// beyond this (their feedback is then refused as unknown).
pub const MAX_PENDING: usize = 1_000_000;
/// The longest context vector accepted.
pub const MAX_CONTEXT: usize = 4096;

/// `POST /v1/deployments/{name}/decide`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Who the decision is for: the sticky key of `ab` and `canary`.
    #[serde(default)]
    pub unit_id: Option<String>,
    /// Features of the request, for contextual strategies (logged for all).
    #[serde(default)]
    pub context: Option<Vec<f64>>,
    /// The segment whose policy decides, with `per_segment`.
    #[serde(default)]
    pub segment: Option<String>,
}

/// The answer to a decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    pub decision_id: String,
    pub variant: String,
    pub propensity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Variants that also see this request (shadow deployments).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<String>,
}

/// One record of the decision log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Deployment {
        spec: DeploymentSpec,
        at: i64,
    },
    Decision {
        deployment: String,
        seq: u64,
        arm: usize,
        propensity: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        segment: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        context: Vec<f64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shadows: Vec<usize>,
        at: i64,
    },
    Reward {
        deployment: String,
        seq: u64,
        reward: f64,
        at: i64,
    },
}

/// A logged decision with its reward, as `GET .../decisions` lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoggedDecision {
    pub decision_id: String,
    pub variant: String,
    /// The variant's index in the deployment.
    pub arm: usize,
    pub propensity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub segment: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<f64>,
    pub decided_at: String,
    pub reward: Option<f64>,
}

struct Pending {
    arm: usize,
    segment: String,
    context: Vec<f64>,
}

struct Deployment {
    spec: DeploymentSpec,
    weights: Vec<f64>,
    created_at: i64,
    /// Keyed by segment ("" without `per_segment`).
    policies: HashMap<String, PolicyState>,
    pending: BTreeMap<u64, Pending>,
    next_seq: u64,
    rewards: u64,
    rng: Rng,
}

impl Deployment {
    fn new(spec: DeploymentSpec, created_at: i64, seed: u64) -> Deployment {
        let weights = spec
            .variants
            .iter()
            .map(|v| v.weight.unwrap_or(1.0))
            .collect();
        Deployment {
            weights,
            created_at,
            policies: HashMap::new(),
            pending: BTreeMap::new(),
            next_seq: 1,
            rewards: 0,
            rng: Rng::from_seed(spec.seed.unwrap_or(seed ^ fnv1a(spec.name.bytes()))),
            spec,
        }
    }

    fn policy(&mut self, segment: &str) -> &mut PolicyState {
        let arms = self.spec.variants.len();
        self.policies
            .entry(segment.to_string())
            .or_insert_with(|| PolicyState::new(arms))
    }

    fn remember(&mut self, seq: u64, pending: Pending) {
        self.pending.insert(seq, pending);
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
        self.next_seq = self.next_seq.max(seq + 1);
    }

    fn apply_reward(&mut self, seq: u64, reward: f64) -> bool {
        let Some(p) = self.pending.remove(&seq) else {
            return false;
        };
        let strategy = self.spec.strategy.clone();
        self.policy(&p.segment)
            .reward(&strategy, p.arm, &p.context, reward);
        self.rewards += 1;
        true
    }
}

/// Every deployment, with its policies, behind the decision log.
pub struct Deployments {
    all: RwLock<BTreeMap<String, Arc<Mutex<Deployment>>>>,
    log: DecisionLog,
}

fn corrupt(e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Corrupt(e.to_string())
}

impl Deployments {
    /// Opens the decision log at `path` and rebuilds every deployment and
    /// policy from it.
    pub fn open(path: &Path, fsync: bool) -> Result<Deployments, ExperimentError> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut all: BTreeMap<String, Deployment> = BTreeMap::new();
        let log = DecisionLog::open(path, fsync, |body| {
            let record: Record = serde_json::from_slice(body).map_err(corrupt)?;
            match record {
                Record::Deployment { spec, at } => {
                    all.insert(spec.name.clone(), Deployment::new(spec, at, seed));
                }
                Record::Decision {
                    deployment,
                    seq,
                    arm,
                    segment,
                    context,
                    ..
                } => {
                    let d = all
                        .get_mut(&deployment)
                        .ok_or_else(|| corrupt(format!("a decision of unknown {deployment:?}")))?;
                    d.policy(&segment).record_decision(arm);
                    d.remember(
                        seq,
                        Pending {
                            arm,
                            segment,
                            context,
                        },
                    );
                }
                Record::Reward {
                    deployment,
                    seq,
                    reward,
                    ..
                } => {
                    if let Some(d) = all.get_mut(&deployment) {
                        d.apply_reward(seq, reward);
                    }
                }
            }
            Ok(())
        })?;
        Ok(Deployments {
            all: RwLock::new(
                all.into_iter()
                    .map(|(k, v)| (k, Arc::new(Mutex::new(v))))
                    .collect(),
            ),
            log,
        })
    }

    fn get(&self, name: &str) -> Result<Arc<Mutex<Deployment>>, ExperimentError> {
        self.all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| ExperimentError::UnknownDeployment(name.to_string()))
    }

    /// Creates a deployment; the answer is its description.
    pub async fn create(&self, spec: DeploymentSpec) -> Result<Value, ExperimentError> {
        spec.validate()?;
        let at = keel_core::time::now_millis();
        let record = serde_json::to_vec(&Record::Deployment {
            spec: spec.clone(),
            at,
        })
        .map_err(|e| ExperimentError::Io(e.to_string()))?;
        let name = spec.name.clone();
        let done = {
            let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
            if all.contains_key(&name) {
                return Err(ExperimentError::DeploymentExists(name));
            }
            let done = self.log.append(&record)?;
            let seed = at as u64;
            all.insert(
                name.clone(),
                Arc::new(Mutex::new(Deployment::new(spec, at, seed))),
            );
            done
        };
        durable(done).await?;
        self.describe(&name)
    }

    /// Picks a variant for one request.
    pub async fn decide(
        &self,
        name: &str,
        request: DecideRequest,
    ) -> Result<Decision, ExperimentError> {
        let deployment = self.get(name)?;
        let context = request.context.unwrap_or_default();
        if context.len() > MAX_CONTEXT {
            return Err(invalid(
                "context",
                format!("{} numbers; at most {MAX_CONTEXT}", context.len()),
            ));
        }
        if let Some(i) = context.iter().position(|x| !x.is_finite()) {
            return Err(invalid(
                "context",
                format!("element {i} is not a finite number"),
            ));
        }
        let (decision, done) = {
            let mut d = deployment.lock().unwrap_or_else(|e| e.into_inner());
            let segment = if d.spec.per_segment {
                request.segment.clone().unwrap_or_default()
            } else {
                String::new()
            };
            let strategy = d.spec.strategy.clone();
            if strategy.contextual() {
                if context.is_empty() {
                    return Err(invalid(
                        "context",
                        format!(
                            "{} decides on a context: send \"context\": [numbers]",
                            strategy.kind()
                        ),
                    ));
                }
                let fixed = d.policies.values().find_map(PolicyState::dim);
                if let Some(dim) = fixed
                    && dim != context.len()
                {
                    return Err(invalid(
                        "context",
                        format!(
                            "{} numbers, but this deployment's contexts have {dim}",
                            context.len()
                        ),
                    ));
                }
            }
            let bucket = match &request.unit_id {
                Some(unit) => bucket(d.spec.salt(), unit),
                None => d.rng.next_f64(),
            };
            let weights = d.weights.clone();
            let mut rng = d.rng.clone();
            let policy = d.policy(&segment);
            let choice = policy.decide(&strategy, &weights, bucket, &context, &mut rng);
            policy.record_decision(choice.arm);
            d.rng = rng;
            let seq = d.next_seq;
            let record = serde_json::to_vec(&Record::Decision {
                deployment: name.to_string(),
                seq,
                arm: choice.arm,
                propensity: choice.propensity,
                unit: request.unit_id.clone(),
                segment: segment.clone(),
                context: context.clone(),
                shadows: choice.shadows.clone(),
                at: keel_core::time::now_millis(),
            })
            .map_err(|e| ExperimentError::Io(e.to_string()))?;
            let done = self.log.append(&record)?;
            d.remember(
                seq,
                Pending {
                    arm: choice.arm,
                    segment,
                    context,
                },
            );
            let variant = &d.spec.variants[choice.arm];
            let decision = Decision {
                decision_id: format!("{name}.{seq}"),
                variant: variant.name.clone(),
                propensity: choice.propensity,
                model: variant.model.clone(),
                shadows: choice
                    .shadows
                    .iter()
                    .map(|i| d.spec.variants[*i].name.clone())
                    .collect(),
            };
            (decision, done)
        };
        durable(done).await?;
        Ok(decision)
    }

    /// Records the reward of a decision and updates its policy.
    pub async fn feedback(&self, decision_id: &str, reward: f64) -> Result<(), ExperimentError> {
        if !reward.is_finite() {
            return Err(invalid(
                "reward",
                format!("{reward} is not a finite number"),
            ));
        }
        let unknown = || ExperimentError::UnknownDecision(decision_id.to_string());
        let (name, seq) = decision_id.rsplit_once('.').ok_or_else(unknown)?;
        let seq: u64 = seq.parse().map_err(|_| unknown())?;
        let deployment = self.get(name).map_err(|_| unknown())?;
        let done = {
            let mut d = deployment.lock().unwrap_or_else(|e| e.into_inner());
            if !d.pending.contains_key(&seq) {
                return Err(if seq < d.next_seq {
                    ExperimentError::AlreadyRewarded(decision_id.to_string())
                } else {
                    unknown()
                });
            }
            let record = serde_json::to_vec(&Record::Reward {
                deployment: name.to_string(),
                seq,
                reward,
                at: keel_core::time::now_millis(),
            })
            .map_err(|e| ExperimentError::Io(e.to_string()))?;
            let done = self.log.append(&record)?;
            d.apply_reward(seq, reward);
            done
        };
        durable(done).await
    }

    /// The deployment's decisions in order, each with its reward if one
    /// came, read back from the decision log.
    pub fn logged(
        &self,
        name: &str,
    ) -> Result<(DeploymentSpec, Vec<LoggedDecision>), ExperimentError> {
        let spec = self
            .get(name)?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spec
            .clone();
        let mut decisions: Vec<LoggedDecision> = Vec::new();
        let mut by_seq: HashMap<u64, usize> = HashMap::new();
        let mut created = false;
        self.log.read(|body| {
            // Only this deployment's records are decoded in full.
            let record: Record = serde_json::from_slice(body).map_err(corrupt)?;
            match record {
                Record::Deployment { spec: s, .. } if s.name == name => created = true,
                Record::Decision {
                    deployment,
                    seq,
                    arm,
                    propensity,
                    unit,
                    segment,
                    context,
                    at,
                    ..
                } if created && deployment == name => {
                    by_seq.insert(seq, decisions.len());
                    decisions.push(LoggedDecision {
                        decision_id: format!("{name}.{seq}"),
                        variant: spec
                            .variants
                            .get(arm)
                            .map(|v| v.name.clone())
                            .unwrap_or_default(),
                        arm,
                        propensity,
                        unit_id: unit,
                        segment,
                        context,
                        decided_at: keel_core::time::rfc3339_millis(at),
                        reward: None,
                    });
                }
                Record::Reward {
                    deployment,
                    seq,
                    reward,
                    ..
                } if created && deployment == name => {
                    if let Some(i) = by_seq.get(&seq) {
                        decisions[*i].reward = Some(reward);
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok((spec, decisions))
    }

    /// Off-policy estimates of a candidate (see [`crate::evaluate`]).
    pub fn evaluate(
        &self,
        name: &str,
        request: &crate::evaluate::EvaluateRequest,
    ) -> Result<Value, ExperimentError> {
        let (spec, logged) = self.logged(name)?;
        crate::evaluate::evaluate(&spec, &logged, request)
    }

    /// The deployment's statistics (see [`crate::analysis`]).
    pub fn analysis(
        &self,
        name: &str,
        options: &crate::analysis::AnalysisOptions,
    ) -> Result<Value, ExperimentError> {
        let deployment = self.get(name)?;
        let d = deployment.lock().unwrap_or_else(|e| e.into_inner());
        let k = d.spec.variants.len();
        let arms = match &options.segment {
            Some(segment) => {
                if !d.spec.per_segment {
                    return Err(invalid(
                        "segment",
                        format!("deployment {name:?} has one policy for all segments"),
                    ));
                }
                d.policies
                    .get(segment)
                    .map(|p| p.arms.clone())
                    .unwrap_or_else(|| vec![ArmStats::default(); k])
            }
            None => total_arms(&d),
        };
        crate::analysis::analyse(&d.spec, &arms, options)
    }

    /// Names of every deployment.
    pub fn names(&self) -> Vec<String> {
        self.all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// A deployment with its variants' counts, mean rewards and traffic
    /// shares (overall, and per segment with `per_segment`).
    pub fn describe(&self, name: &str) -> Result<Value, ExperimentError> {
        let deployment = self.get(name)?;
        let d = deployment.lock().unwrap_or_else(|e| e.into_inner());
        let total = total_arms(&d);
        let variants = |arms: &[ArmStats]| -> Vec<Value> {
            let decisions: u64 = arms.iter().map(|a| a.decisions).sum();
            d.spec
                .variants
                .iter()
                .zip(arms)
                .map(|(v, a)| {
                    json!({
                        "name": v.name,
                        "model": v.model,
                        "decisions": a.decisions,
                        "rewards": a.rewards,
                        "mean_reward": a.mean(),
                        "traffic_share": if decisions > 0 {
                            a.decisions as f64 / decisions as f64
                        } else {
                            0.0
                        },
                    })
                })
                .collect()
        };
        let decisions: u64 = total.iter().map(|a| a.decisions).sum();
        let mut out = json!({
            "name": d.spec.name,
            "strategy": d.spec.strategy,
            "per_segment": d.spec.per_segment,
            "created_at": keel_core::time::rfc3339_millis(d.created_at),
            "decisions": decisions,
            "rewards": d.rewards,
            "awaiting_reward": d.pending.len(),
            "variants": variants(&total),
        });
        if d.spec.per_segment {
            let mut segments: Vec<(&String, &PolicyState)> = d.policies.iter().collect();
            segments.sort_by(|a, b| a.0.cmp(b.0));
            out["segments"] = segments
                .into_iter()
                .map(|(s, p)| json!({ "segment": s, "variants": variants(&p.arms) }))
                .collect();
        }
        if let Strategy::Canary { steps, step } = &d.spec.strategy {
            out["canary"] = json!({ "step": step, "candidate_percent": steps.get(*step) });
        }
        Ok(out)
    }
}

/// Every segment's counts added up.
fn total_arms(d: &Deployment) -> Vec<ArmStats> {
    let mut total = vec![ArmStats::default(); d.spec.variants.len()];
    for policy in d.policies.values() {
        for (t, a) in total.iter_mut().zip(&policy.arms) {
            t.decisions += a.decisions;
            t.rewards += a.rewards;
            t.reward_sum += a.reward_sum;
            t.reward_sum_sq += a.reward_sum_sq;
            t.non_binary += a.non_binary;
        }
    }
    total
}

fn invalid(field: &str, reason: String) -> ExperimentError {
    ExperimentError::Invalid {
        field: field.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::VariantSpec;

    fn spec(name: &str, strategy: Strategy, arms: usize) -> DeploymentSpec {
        DeploymentSpec {
            name: name.into(),
            strategy,
            variants: (0..arms)
                .map(|i| VariantSpec {
                    name: format!("v{i}"),
                    model: None,
                    weight: None,
                })
                .collect(),
            salt: None,
            per_segment: false,
            seed: None,
        }
    }

    #[tokio::test]
    async fn a_seed_makes_decisions_reproducible() {
        let mut runs = Vec::new();
        for _ in 0..2 {
            let dir = tempfile::tempdir().unwrap();
            let d = Deployments::open(&dir.path().join("decisions.log"), false).unwrap();
            let mut s = spec("ts", Strategy::Softmax { temperature: 0.2 }, 4);
            s.seed = Some(42);
            d.create(s).await.unwrap();
            let mut picks = Vec::new();
            for i in 0..200 {
                let c = d.decide("ts", DecideRequest::default()).await.unwrap();
                d.feedback(&c.decision_id, f64::from(i % 3 == 0))
                    .await
                    .unwrap();
                picks.push(c.variant);
            }
            // Softmax tries every variant once before it weighs them.
            assert_eq!(picks[..4], ["v0", "v1", "v2", "v3"]);
            runs.push(picks);
        }
        assert_eq!(runs[0], runs[1]);
    }

    #[tokio::test]
    async fn a_reopened_log_rebuilds_every_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        let d = Deployments::open(&path, false).unwrap();
        d.create(spec(
            "lin",
            Strategy::Linucb {
                alpha: 1.0,
                lambda: 1.0,
            },
            3,
        ))
        .await
        .unwrap();
        d.create(spec("eg", Strategy::EpsilonGreedy { epsilon: 0.1 }, 2))
            .await
            .unwrap();
        let mut open_ids = Vec::new();
        for i in 0..200 {
            let x = vec![(i % 3) as f64, 1.0, -0.5];
            let a = d
                .decide(
                    "lin",
                    DecideRequest {
                        context: Some(x),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let b = d.decide("eg", DecideRequest::default()).await.unwrap();
            if i % 4 == 0 {
                open_ids.push(a.decision_id);
            } else {
                d.feedback(&a.decision_id, (i % 2) as f64).await.unwrap();
            }
            d.feedback(&b.decision_id, if b.variant == "v1" { 1.0 } else { 0.0 })
                .await
                .unwrap();
        }
        let before = (d.describe("lin").unwrap(), d.describe("eg").unwrap());
        let policy = |d: &Deployments| {
            let dep = d.get("lin").unwrap();
            let g = dep.lock().unwrap();
            (g.policies[""].clone(), g.next_seq)
        };
        let state = policy(&d);
        drop(d);
        let d = Deployments::open(&path, false).unwrap();
        assert_eq!(
            (d.describe("lin").unwrap(), d.describe("eg").unwrap()),
            before
        );
        assert_eq!(policy(&d), state);
        // Pending decisions take their reward after the restart, once.
        d.feedback(&open_ids[0], 1.0).await.unwrap();
        assert!(matches!(
            d.feedback(&open_ids[0], 1.0).await,
            Err(ExperimentError::AlreadyRewarded(_))
        ));
        assert!(matches!(
            d.feedback("lin.100000", 1.0).await,
            Err(ExperimentError::UnknownDecision(_))
        ));
        assert!(matches!(
            d.create(spec("eg", Strategy::Single, 1)).await,
            Err(ExperimentError::DeploymentExists(_))
        ));
        // A context of another dimension is refused, naming the field.
        let err = d
            .decide(
                "lin",
                DecideRequest {
                    context: Some(vec![1.0]),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ExperimentError::Invalid { ref field, .. } if field == "context"));
    }
}
