//! The deployments of one Keel server: create, decide, reward, describe;
//! backed by the decision log.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use keel_stats::rng::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ExperimentError;
use crate::log::{DecisionLog, Done, durable};
use crate::policy::{ArmStats, Choice, PolicyState, bucket, fnv1a};
use crate::rollout::{
    CheckReport, Event, EventKind, Evidence, LifecycleLink, MetricReport, Phase, Rollout, judge,
};
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
    /// The unit's value of the metric before the experiment (CUPED's
    /// pre-period covariate), logged with the decision.
    #[serde(default)]
    pub covariate: Option<f64>,
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
    /// The shadows' model references, in the order of `shadows`.
    #[serde(skip)]
    pub shadow_models: Vec<Option<String>>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        covariate: Option<f64>,
        at: i64,
    },
    Reward {
        deployment: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reward: Option<f64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        error: bool,
        at: i64,
    },
    /// A move of the deployment as a long process.
    Event {
        deployment: String,
        event: Event,
    },
    Check {
        deployment: String,
        report: CheckReport,
        at: i64,
    },
    Metric {
        deployment: String,
        report: MetricReport,
        at: i64,
    },
}

/// [`Record::Decision`] borrowed, written in the binary form.
struct DecisionRecord<'a> {
    deployment: &'a str,
    seq: u64,
    arm: usize,
    propensity: f64,
    unit: Option<&'a str>,
    segment: &'a str,
    context: &'a [f64],
    shadows: &'a [usize],
    covariate: Option<f64>,
    at: i64,
}

/// [`Record::Reward`] borrowed, written in the binary form.
struct RewardRecord<'a> {
    deployment: &'a str,
    seq: u64,
    reward: Option<f64>,
    error: bool,
    at: i64,
}

// Decisions and rewards, the bulk of the log, are written in a binary form
// (JSON cost a quarter of the batch path); deployments and moves stay JSON,
// and JSON decisions and rewards of older logs still read. A body starting
// with `{` is JSON; otherwise its first byte is the tag:
//
// decision  [TAG_DECISION][str deployment][u64 seq][u32 arm][f64 propensity]
//           [i64 at][u8 flags: 1 unit, 2 covariate][str unit]?[str segment]
//           [u32 n][f64 × n context][u32 m][u32 × m shadows][f64 covariate]?
// reward    [TAG_REWARD][str deployment][u64 seq][u8 flags: 1 reward, 2 error]
//           [f64 reward]?[i64 at]
//
// `str` is [u32 length][UTF-8 bytes]; every number is little-endian.
const TAG_DECISION: u8 = 1;
const TAG_REWARD: u8 = 2;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl DecisionRecord<'_> {
    fn frame(&self, frames: &mut Vec<u8>) {
        crate::log::frame_with(frames, |out| {
            out.push(TAG_DECISION);
            put_str(out, self.deployment);
            out.extend_from_slice(&self.seq.to_le_bytes());
            out.extend_from_slice(&(self.arm as u32).to_le_bytes());
            out.extend_from_slice(&self.propensity.to_le_bytes());
            out.extend_from_slice(&self.at.to_le_bytes());
            out.push(u8::from(self.unit.is_some()) | (u8::from(self.covariate.is_some()) << 1));
            if let Some(unit) = self.unit {
                put_str(out, unit);
            }
            put_str(out, self.segment);
            out.extend_from_slice(&(self.context.len() as u32).to_le_bytes());
            for x in self.context {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(&(self.shadows.len() as u32).to_le_bytes());
            for i in self.shadows {
                out.extend_from_slice(&(*i as u32).to_le_bytes());
            }
            if let Some(x) = self.covariate {
                out.extend_from_slice(&x.to_le_bytes());
            }
        });
    }
}

impl RewardRecord<'_> {
    fn frame(&self, frames: &mut Vec<u8>) {
        crate::log::frame_with(frames, |out| {
            out.push(TAG_REWARD);
            put_str(out, self.deployment);
            out.extend_from_slice(&self.seq.to_le_bytes());
            out.push(u8::from(self.reward.is_some()) | (u8::from(self.error) << 1));
            if let Some(r) = self.reward {
                out.extend_from_slice(&r.to_le_bytes());
            }
            out.extend_from_slice(&self.at.to_le_bytes());
        });
    }
}

/// Reads the binary forms back; a short or malformed body is corruption.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ExperimentError> {
        if self.0.len() < n {
            return Err(corrupt("a binary record ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ExperimentError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ExperimentError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ExperimentError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ExperimentError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, ExperimentError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, ExperimentError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<String, ExperimentError> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(corrupt)
    }
    /// A count of `width`-byte items that must fit in what is left.
    fn count(&mut self, width: usize) -> Result<usize, ExperimentError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(width) > self.0.len() {
            return Err(corrupt("a binary record's count exceeds its length"));
        }
        Ok(n)
    }
}

/// One record of the decision log, JSON or binary.
fn decode(body: &[u8]) -> Result<Record, ExperimentError> {
    let mut b = Bytes(body);
    let record = match body.first() {
        Some(b'{') => return serde_json::from_slice(body).map_err(corrupt),
        Some(&TAG_DECISION) => {
            b.u8()?;
            let deployment = b.str()?;
            let seq = b.u64()?;
            let arm = b.u32()? as usize;
            let propensity = b.f64()?;
            let at = b.i64()?;
            let flags = b.u8()?;
            let unit = if flags & 1 != 0 { Some(b.str()?) } else { None };
            let segment = b.str()?;
            let n = b.count(8)?;
            let context = (0..n).map(|_| b.f64()).collect::<Result<_, _>>()?;
            let m = b.count(4)?;
            let shadows = (0..m)
                .map(|_| b.u32().map(|i| i as usize))
                .collect::<Result<_, _>>()?;
            let covariate = if flags & 2 != 0 { Some(b.f64()?) } else { None };
            Record::Decision {
                deployment,
                seq,
                arm,
                propensity,
                unit,
                segment,
                context,
                shadows,
                covariate,
                at,
            }
        }
        Some(&TAG_REWARD) => {
            b.u8()?;
            let deployment = b.str()?;
            let seq = b.u64()?;
            let flags = b.u8()?;
            let reward = if flags & 1 != 0 { Some(b.f64()?) } else { None };
            let at = b.i64()?;
            Record::Reward {
                deployment,
                seq,
                reward,
                error: flags & 2 != 0,
                at,
            }
        }
        _ => return Err(corrupt("a record of unknown form")),
    };
    if !b.0.is_empty() {
        return Err(corrupt("a binary record has trailing bytes"));
    }
    Ok(record)
}

/// One decision's outcome, as `POST /v1/feedback` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub decision_id: String,
    /// The reward; may be left out when `error` is true.
    #[serde(default)]
    pub reward: Option<f64>,
    /// The request failed: counts in the variant's error rate.
    #[serde(default)]
    pub error: bool,
}

/// A deployment's move, for the lifecycle that follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentEvent {
    pub deployment: String,
    pub lifecycle: LifecycleLink,
    /// The event's position in the deployment's history (from 1): with the
    /// deployment's name, an idempotency key.
    pub index: usize,
    pub event: Event,
}

/// `POST /v1/deployments/{name}/rollout`: a person or a pipeline moves the
/// deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// `pause`, `resume`, `advance` (a canary's next step), `promote` (all
    /// traffic to `variant`, a canary's candidate by default) or `rollback`
    /// (all traffic to the first variant).
    pub action: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covariate: Option<f64>,
    pub decided_at: String,
    pub reward: Option<f64>,
    /// Milliseconds since the epoch (for plots over time).
    #[serde(skip)]
    pub at: i64,
    /// Whether the request failed (feedback with `"error": true`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
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
    rollout: Rollout,
    /// Per variant: feedbacks received (rewards or errors), and errors.
    outcomes: Vec<u64>,
    errors: Vec<u64>,
    /// The latest check per (suite, variant) and metric per (name, variant).
    checks: BTreeMap<(String, usize), CheckReport>,
    metrics: BTreeMap<(String, usize), f64>,
    /// Rewards since the winner test last ran.
    since_winner_test: u64,
}

impl Deployment {
    fn new(spec: DeploymentSpec, created_at: i64, seed: u64) -> Deployment {
        let weights = spec
            .variants
            .iter()
            .map(|v| v.weight.unwrap_or(1.0))
            .collect();
        let k = spec.variants.len();
        Deployment {
            weights,
            created_at,
            policies: HashMap::new(),
            pending: BTreeMap::new(),
            next_seq: 1,
            rewards: 0,
            rng: Rng::from_seed(spec.seed.unwrap_or(seed ^ fnv1a(spec.name.bytes()))),
            rollout: Rollout::new(&spec, created_at),
            outcomes: vec![0; k],
            errors: vec![0; k],
            checks: BTreeMap::new(),
            metrics: BTreeMap::new(),
            since_winner_test: 0,
            spec,
        }
    }

    fn arm_of(&self, field: &str, name: &str) -> Result<usize, ExperimentError> {
        self.spec
            .variants
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.spec.variants.iter().map(|v| v.name.as_str()).collect();
                invalid(
                    field,
                    format!("no variant {name:?}; the variants are {}", names.join(", ")),
                )
            })
    }

    /// The strategy deciding now: a canary at its current step.
    fn current_strategy(&self) -> Strategy {
        match &self.spec.strategy {
            Strategy::Canary { steps, .. } => Strategy::Canary {
                steps: steps.clone(),
                step: self.rollout.step,
            },
            other => other.clone(),
        }
    }

    /// The share of decisions the canary's candidate gets now.
    fn candidate_percent(&self) -> Option<f64> {
        let Strategy::Canary { steps, .. } = &self.spec.strategy else {
            return None;
        };
        Some(match self.rollout.phase {
            Phase::RolledBack => 0.0,
            Phase::Promoted => 100.0,
            _ => steps.get(self.rollout.step).copied().unwrap_or(0.0),
        })
    }

    fn apply_event(&mut self, event: Event) {
        let outcomes = self.outcomes.clone();
        self.rollout.apply(&self.spec, event, &outcomes);
    }

    /// The move the guards call for now, if the deployment has guards.
    fn judge(&mut self, now: i64) -> Option<Event> {
        let guards = self.spec.guards.as_ref()?;
        let arms = total_arms(self);
        // The winner test draws from posteriors: run it every 100 rewards.
        let winner_due = self.since_winner_test >= 100;
        if winner_due {
            self.since_winner_test = 0;
        }
        judge(
            &self.spec,
            guards,
            &self.rollout,
            &Evidence {
                arms: &arms,
                outcomes: &self.outcomes,
                errors: &self.errors,
                checks: &self.checks,
                metrics: &self.metrics,
                now,
                winner_due,
            },
        )
    }

    fn policy(&mut self, segment: &str) -> &mut PolicyState {
        if !self.policies.contains_key(segment) {
            let arms = self.spec.variants.len();
            self.policies
                .insert(segment.to_string(), PolicyState::new(arms));
        }
        self.policies
            .get_mut(segment)
            .expect("the segment's policy was just inserted")
    }

    fn remember(&mut self, seq: u64, pending: Pending) {
        self.pending.insert(seq, pending);
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
        self.next_seq = self.next_seq.max(seq + 1);
    }

    fn apply_reward(&mut self, seq: u64, reward: Option<f64>, error: bool) -> bool {
        let Some(p) = self.pending.remove(&seq) else {
            return false;
        };
        self.outcomes[p.arm] += 1;
        if error {
            self.errors[p.arm] += 1;
        }
        if let Some(reward) = reward {
            let strategy = self.spec.strategy.clone();
            self.policy(&p.segment)
                .reward(&strategy, p.arm, &p.context, reward);
            self.rewards += 1;
            self.since_winner_test += 1;
        }
        true
    }
}

/// Every deployment, with its policies, behind the decision log.
pub struct Deployments {
    all: RwLock<BTreeMap<String, Arc<Mutex<Deployment>>>>,
    log: DecisionLog,
    events: Mutex<Option<tokio::sync::mpsc::UnboundedSender<DeploymentEvent>>>,
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
            let record = decode(body)?;
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
                    error,
                    ..
                } => {
                    if let Some(d) = all.get_mut(&deployment) {
                        d.apply_reward(seq, reward, error);
                    }
                }
                Record::Event { deployment, event } => {
                    if let Some(d) = all.get_mut(&deployment) {
                        d.apply_event(event);
                    }
                }
                Record::Check {
                    deployment, report, ..
                } => {
                    if let Some(d) = all.get_mut(&deployment)
                        && let Ok(arm) = d.arm_of("variant", &report.variant)
                    {
                        d.checks.insert((report.suite.clone(), arm), report);
                    }
                }
                Record::Metric {
                    deployment, report, ..
                } => {
                    if let Some(d) = all.get_mut(&deployment)
                        && let Ok(arm) = d.arm_of("variant", &report.variant)
                    {
                        d.metrics.insert((report.name, arm), report.value);
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
            events: Mutex::new(None),
        })
    }

    /// The deployments' moves from now on, for those with a lifecycle.
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<DeploymentEvent> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.events.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Logs and applies a move; tells the lifecycle once it is durable.
    fn record_event(
        &self,
        d: &mut Deployment,
        event: Event,
    ) -> Result<(Done, Option<DeploymentEvent>), ExperimentError> {
        let record = serde_json::to_vec(&Record::Event {
            deployment: d.spec.name.clone(),
            event: event.clone(),
        })
        .map_err(|e| ExperimentError::Io(e.to_string()))?;
        let done = self.log.append(&record)?;
        tracing::info!(deployment = %d.spec.name, event = event.event.name(), reason = %event.reason, "deployment moved");
        d.apply_event(event.clone());
        let notice = d.spec.lifecycle.clone().map(|lifecycle| DeploymentEvent {
            deployment: d.spec.name.clone(),
            lifecycle,
            index: d.rollout.events.len(),
            event,
        });
        Ok((done, notice))
    }

    /// Runs the guards and logs the move they call for.
    fn guard(
        &self,
        d: &mut Deployment,
    ) -> Result<Option<(Done, Option<DeploymentEvent>)>, ExperimentError> {
        match d.judge(keel_core::time::now_millis()) {
            Some(event) => self.record_event(d, event).map(Some),
            None => Ok(None),
        }
    }

    /// Waits for a move to be durable, then hands it to the subscriber.
    async fn publish(
        &self,
        moved: Option<(Done, Option<DeploymentEvent>)>,
    ) -> Result<(), ExperimentError> {
        if let Some((done, notice)) = moved {
            durable(done).await?;
            if let Some(n) = notice
                && let Some(tx) = self
                    .events
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
            {
                let _ = tx.send(n);
            }
        }
        Ok(())
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
        let mut decisions = self.decide_many(name, vec![request]).await?;
        decisions
            .pop()
            .ok_or_else(|| ExperimentError::Io("no decision was made".into()))
    }

    /// Picks a variant for each request, in order, under one lock and with
    /// one append to the decision log: the fast path for many decisions.
    /// Every request is checked first; one bad request refuses the batch
    /// (its field is named with its index) and nothing is decided.
    pub async fn decide_many(
        &self,
        name: &str,
        requests: Vec<DecideRequest>,
    ) -> Result<Vec<Decision>, ExperimentError> {
        let deployment = self.get(name)?;
        let batch = requests.len() > 1;
        let field = |i: usize, f: &str| {
            if batch {
                format!("requests[{i}].{f}")
            } else {
                f.to_string()
            }
        };
        for (i, r) in requests.iter().enumerate() {
            let context = r.context.as_deref().unwrap_or_default();
            if context.len() > MAX_CONTEXT {
                return Err(invalid(
                    &field(i, "context"),
                    format!("{} numbers; at most {MAX_CONTEXT}", context.len()),
                ));
            }
            if let Some(x) = r.covariate
                && !x.is_finite()
            {
                return Err(invalid(
                    &field(i, "covariate"),
                    format!("{x} is not a finite number"),
                ));
            }
            if let Some(j) = context.iter().position(|x| !x.is_finite()) {
                return Err(invalid(
                    &field(i, "context"),
                    format!("element {j} is not a finite number"),
                ));
            }
        }
        let (decisions, done) = {
            let mut d = deployment.lock().unwrap_or_else(|e| e.into_inner());
            let strategy = d.current_strategy();
            if strategy.contextual() {
                // The first context fixes the dimension of a new deployment.
                let mut dim = d.policies.values().find_map(PolicyState::dim);
                for (i, r) in requests.iter().enumerate() {
                    let n = r.context.as_ref().map_or(0, Vec::len);
                    if n == 0 {
                        return Err(invalid(
                            &field(i, "context"),
                            format!(
                                "{} decides on a context: send \"context\": [numbers]",
                                strategy.kind()
                            ),
                        ));
                    }
                    match dim {
                        Some(dim) if dim != n => {
                            return Err(invalid(
                                &field(i, "context"),
                                format!("{n} numbers, but this deployment's contexts have {dim}"),
                            ));
                        }
                        _ => dim = Some(n),
                    }
                }
            }
            let fixed = d.rollout.fixed_arm();
            let weights = d.weights.clone();
            let at = keel_core::time::now_millis();
            let mut frames = Vec::with_capacity(requests.len() * 160);
            let mut decisions = Vec::with_capacity(requests.len());
            for request in requests {
                let segment = match (d.spec.per_segment, request.segment) {
                    (true, Some(s)) => s,
                    _ => String::new(),
                };
                let context = request.context.unwrap_or_default();
                let bucket = match &request.unit_id {
                    Some(unit) => bucket(d.spec.salt(), unit),
                    None => d.rng.next_f64(),
                };
                let mut rng = d.rng.clone();
                let policy = d.policy(&segment);
                let choice = match fixed {
                    Some(arm) => Choice {
                        arm,
                        propensity: 1.0,
                        shadows: Vec::new(),
                    },
                    None => policy.decide(&strategy, &weights, bucket, &context, &mut rng),
                };
                policy.record_decision(choice.arm);
                d.rng = rng;
                let seq = d.next_seq;
                let record = DecisionRecord {
                    deployment: name,
                    seq,
                    arm: choice.arm,
                    propensity: choice.propensity,
                    unit: request.unit_id.as_deref(),
                    segment: &segment,
                    context: &context,
                    shadows: &choice.shadows,
                    covariate: request.covariate,
                    at,
                };
                record.frame(&mut frames);
                d.remember(
                    seq,
                    Pending {
                        arm: choice.arm,
                        segment,
                        context,
                    },
                );
                let variant = &d.spec.variants[choice.arm];
                let (shadows, shadow_models) = choice
                    .shadows
                    .iter()
                    .map(|i| {
                        let v = &d.spec.variants[*i];
                        (v.name.clone(), v.model.clone())
                    })
                    .unzip();
                decisions.push(Decision {
                    decision_id: format!("{name}.{seq}"),
                    variant: variant.name.clone(),
                    propensity: choice.propensity,
                    model: variant.model.clone(),
                    shadows,
                    shadow_models,
                });
            }
            (decisions, self.log.append_frames(frames)?)
        };
        durable(done).await?;
        Ok(decisions)
    }

    /// Records the reward of a decision and updates its policy.
    pub async fn feedback(&self, decision_id: &str, reward: f64) -> Result<(), ExperimentError> {
        self.outcome(decision_id, Some(reward), false).await
    }

    /// Records a decision's outcome: its reward, and whether the request
    /// failed (counted in the variant's error rate); updates the policy
    /// and runs the deployment's guards.
    pub async fn outcome(
        &self,
        decision_id: &str,
        reward: Option<f64>,
        error: bool,
    ) -> Result<(), ExperimentError> {
        let item = Outcome {
            decision_id: decision_id.to_string(),
            reward,
            error,
        };
        match self.outcomes(vec![item]).await?.pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Records many outcomes: one lock, one log append and one run of the
    /// guards per deployment. A malformed item refuses the whole batch
    /// (naming its index); unknown or already rewarded decisions are
    /// answered per item, as `(index, error)`, and the rest are recorded.
    pub async fn outcomes(
        &self,
        items: Vec<Outcome>,
    ) -> Result<Vec<(usize, ExperimentError)>, ExperimentError> {
        let batch = items.len() > 1;
        let field = |i: usize| {
            if batch {
                format!("feedback[{i}].reward")
            } else {
                "reward".to_string()
            }
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(reward) = item.reward
                && !reward.is_finite()
            {
                return Err(invalid(
                    &field(i),
                    format!("{reward} is not a finite number"),
                ));
            }
            if item.reward.is_none() && !item.error {
                return Err(invalid(
                    &field(i),
                    "send the reward, or \"error\": true for a failed request".into(),
                ));
            }
        }
        let mut rejected = Vec::new();
        // Items by deployment, in order.
        let mut groups: BTreeMap<&str, Vec<(usize, u64)>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            match item
                .decision_id
                .rsplit_once('.')
                .and_then(|(name, seq)| Some((name, seq.parse::<u64>().ok()?)))
            {
                Some((name, seq)) => groups.entry(name).or_default().push((i, seq)),
                None => rejected.push((
                    i,
                    ExperimentError::UnknownDecision(item.decision_id.clone()),
                )),
            }
        }
        let at = keel_core::time::now_millis();
        let mut waits = Vec::with_capacity(groups.len());
        for (name, group) in groups {
            let Ok(deployment) = self.get(name) else {
                for (i, _) in group {
                    rejected.push((
                        i,
                        ExperimentError::UnknownDecision(items[i].decision_id.clone()),
                    ));
                }
                continue;
            };
            let mut d = deployment.lock().unwrap_or_else(|e| e.into_inner());
            let mut frames = Vec::with_capacity(group.len() * 96);
            for (i, seq) in group {
                let item = &items[i];
                if !d.pending.contains_key(&seq) {
                    let id = item.decision_id.clone();
                    rejected.push((
                        i,
                        if seq < d.next_seq {
                            ExperimentError::AlreadyRewarded(id)
                        } else {
                            ExperimentError::UnknownDecision(id)
                        },
                    ));
                    continue;
                }
                RewardRecord {
                    deployment: name,
                    seq,
                    reward: item.reward,
                    error: item.error,
                    at,
                }
                .frame(&mut frames);
                d.apply_reward(seq, item.reward, item.error);
            }
            if !frames.is_empty() {
                let done = self.log.append_frames(frames)?;
                waits.push((done, self.guard(&mut d)?));
            }
        }
        for (done, moved) in waits {
            durable(done).await?;
            self.publish(moved).await?;
        }
        rejected.sort_by_key(|(i, _)| *i);
        Ok(rejected)
    }

    /// Records a check (test-suite) result against one variant and runs
    /// the guards: a failed `error` check on a candidate rolls back, and a
    /// canary's required checks must have passed before it advances.
    pub async fn report_check(
        &self,
        name: &str,
        report: CheckReport,
    ) -> Result<Value, ExperimentError> {
        if report.suite.is_empty() {
            return Err(invalid("suite", "name the check or suite".into()));
        }
        if !matches!(report.severity.as_str(), "error" | "warning") {
            return Err(invalid(
                "severity",
                format!("{:?} is neither \"error\" nor \"warning\"", report.severity),
            ));
        }
        let deployment = self.get(name)?;
        let (done, moved) = {
            let mut d = deployment.lock().unwrap_or_else(|e| e.into_inner());
            let arm = d.arm_of("variant", &report.variant)?;
            let record = serde_json::to_vec(&Record::Check {
                deployment: name.to_string(),
                report: report.clone(),
                at: keel_core::time::now_millis(),
            })
            .map_err(|e| ExperimentError::Io(e.to_string()))?;
            let done = self.log.append(&record)?;
            d.checks.insert((report.suite.clone(), arm), report);
            (done, self.guard(&mut d)?)
        };
        durable(done).await?;
        self.publish(moved).await?;
        self.describe(name)
    }

    /// Records a metric of one variant (latency, cost, drift...) and runs
    /// the guards on it.
    pub async fn report_metric(
        &self,
        name: &str,
        report: MetricReport,
    ) -> Result<Value, ExperimentError> {
        if report.name.is_empty() {
            return Err(invalid("name", "name the metric".into()));
        }
        if !report.value.is_finite() {
            return Err(invalid(
                "value",
                format!("{} is not a finite number", report.value),
            ));
        }
        let deployment = self.get(name)?;
        let (done, moved) = {
            let mut d = deployment.lock().unwrap_or_else(|e| e.into_inner());
            let arm = d.arm_of("variant", &report.variant)?;
            let record = serde_json::to_vec(&Record::Metric {
                deployment: name.to_string(),
                report: report.clone(),
                at: keel_core::time::now_millis(),
            })
            .map_err(|e| ExperimentError::Io(e.to_string()))?;
            let done = self.log.append(&record)?;
            d.metrics.insert((report.name, arm), report.value);
            (done, self.guard(&mut d)?)
        };
        durable(done).await?;
        self.publish(moved).await?;
        self.describe(name)
    }

    /// Moves a deployment by hand: pause, resume, advance, promote, rollback.
    pub async fn control(
        &self,
        name: &str,
        request: ControlRequest,
    ) -> Result<Value, ExperimentError> {
        let deployment = self.get(name)?;
        let moved = {
            let mut d = deployment.lock().unwrap_or_else(|e| e.into_inner());
            let phase = d.rollout.phase;
            let conflict = |what: String| Err(ExperimentError::Conflict(what));
            let steps = match &d.spec.strategy {
                Strategy::Canary { steps, .. } => Some(steps.len()),
                _ => None,
            };
            let live = matches!(phase, Phase::Running | Phase::Paused);
            let (kind, variant, step) = match request.action.as_str() {
                "pause" if phase == Phase::Running => (EventKind::Paused, None, None),
                "resume" if phase == Phase::Paused => (EventKind::Resumed, None, None),
                "pause" | "resume" => {
                    return conflict(format!(
                        "deployment {name:?} is {}; cannot {}",
                        phase_name(phase),
                        request.action
                    ));
                }
                "advance" => {
                    let Some(n) = steps else {
                        return conflict(format!(
                            "deployment {name:?} is not a canary; only canaries advance"
                        ));
                    };
                    if !live {
                        return conflict(format!(
                            "deployment {name:?} is {}; nothing to advance",
                            phase_name(phase)
                        ));
                    }
                    if d.rollout.step + 1 < n {
                        (EventKind::CanaryAdvanced, None, Some(d.rollout.step + 1))
                    } else {
                        (EventKind::CanaryPromoted, Some(1), Some(d.rollout.step))
                    }
                }
                "promote" => {
                    if !live {
                        return conflict(format!(
                            "deployment {name:?} is {}; nothing to promote",
                            phase_name(phase)
                        ));
                    }
                    let arm = match (&request.variant, steps) {
                        (Some(v), _) => d.arm_of("variant", v)?,
                        (None, Some(_)) => 1,
                        (None, None) => {
                            return Err(invalid("variant", "name the variant to promote".into()));
                        }
                    };
                    let kind = if steps.is_some() {
                        EventKind::CanaryPromoted
                    } else {
                        EventKind::Promoted
                    };
                    (kind, Some(arm), None)
                }
                "rollback" if phase != Phase::RolledBack => (EventKind::RolledBack, None, None),
                "rollback" => {
                    return conflict(format!("deployment {name:?} is already rolled back"));
                }
                other => {
                    return Err(invalid(
                        "action",
                        format!(
                            "unknown action {other:?}; expected pause, resume, advance, promote or rollback"
                        ),
                    ));
                }
            };
            let event = Event {
                event: kind,
                variant: variant.map(|i| d.spec.variants[i].name.clone()),
                step,
                reason: request
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("{} by request", request.action)),
                by: "api".into(),
                at: keel_core::time::now_millis(),
            };
            self.record_event(&mut d, event)?
        };
        self.publish(Some(moved)).await?;
        self.describe(name)
    }

    /// The SVG of the deployment's traffic shares and mean rewards over
    /// `bins` time bins, with its moves marked (see [`crate::plot`]).
    pub fn plot(&self, name: &str, bins: usize) -> Result<String, ExperimentError> {
        let events = self.events(name)?;
        let (spec, logged) = self.logged(name)?;
        Ok(crate::plot::svg(&spec, &logged, &events, bins))
    }

    /// A deployment's moves, oldest first.
    pub fn events(&self, name: &str) -> Result<Vec<Event>, ExperimentError> {
        let deployment = self.get(name)?;
        let d = deployment.lock().unwrap_or_else(|e| e.into_inner());
        Ok(d.rollout.events.clone())
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
            let record = decode(body)?;
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
                    covariate,
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
                        covariate,
                        decided_at: keel_core::time::rfc3339_millis(at),
                        reward: None,
                        at,
                        error: false,
                    });
                }
                Record::Reward {
                    deployment,
                    seq,
                    reward,
                    error,
                    ..
                } if created && deployment == name => {
                    if let Some(i) = by_seq.get(&seq) {
                        decisions[*i].reward = reward;
                        decisions[*i].error = error;
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
        let spec = d.spec.clone();
        drop(d);
        let mut result = crate::analysis::analyse(&spec, &arms, options)?;
        if options.cuped {
            let (_, logged) = self.logged(name)?;
            let rows = logged
                .iter()
                .filter(|r| options.segment.as_ref().is_none_or(|s| &r.segment == s))
                .filter_map(|r| Some((r.arm, r.reward?, r.covariate?)));
            result["cuped"] = crate::analysis::cuped(&spec, rows, options)?;
        }
        Ok(result)
    }

    /// The strategy of a deployment, if it exists.
    pub fn strategy(&self, name: &str) -> Option<Strategy> {
        let deployment = self.get(name).ok()?;
        let d = deployment.lock().unwrap_or_else(|e| e.into_inner());
        Some(d.spec.strategy.clone())
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
        let variants = |arms: &[ArmStats], overall: bool| -> Vec<Value> {
            let decisions: u64 = arms.iter().map(|a| a.decisions).sum();
            d.spec
                .variants
                .iter()
                .zip(arms)
                .enumerate()
                .map(|(i, (v, a))| {
                    let mut out = json!({
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
                    });
                    if overall && d.errors[i] > 0 {
                        out["errors"] = json!(d.errors[i]);
                        out["error_rate"] = json!(d.errors[i] as f64 / d.outcomes[i] as f64);
                    }
                    out
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
            "variants": variants(&total, true),
        });
        if d.spec.per_segment {
            let mut segments: Vec<(&String, &PolicyState)> = d.policies.iter().collect();
            segments.sort_by(|a, b| a.0.cmp(b.0));
            out["segments"] = segments
                .into_iter()
                .map(|(s, p)| json!({ "segment": s, "variants": variants(&p.arms, false) }))
                .collect();
        }
        if let Some(percent) = d.candidate_percent() {
            out["canary"] = json!({ "step": d.rollout.step, "candidate_percent": percent });
        }
        let r = &d.rollout;
        out["rollout"] = json!({
            "phase": phase_name(r.phase),
            "promoted": r.promoted.map(|i| &d.spec.variants[i].name),
            "winner": r.winner.map(|i| &d.spec.variants[i].name),
            "events": r.events.len(),
            "last_event": r.events.last(),
        });
        if let Some(g) = &d.spec.guards {
            out["guards"] = json!(g);
            if !d.checks.is_empty() {
                out["checks"] = d
                    .checks
                    .iter()
                    .map(|((suite, arm), c)| {
                        json!({"suite": suite, "variant": d.spec.variants[*arm].name,
                               "passed": c.passed, "severity": c.severity})
                    })
                    .collect();
            }
            if !d.metrics.is_empty() {
                out["metrics"] = d
                    .metrics
                    .iter()
                    .map(|((metric, arm), v)| {
                        json!({"name": metric, "variant": d.spec.variants[*arm].name, "value": v})
                    })
                    .collect();
            }
        }
        if let Some(l) = &d.spec.lifecycle {
            out["lifecycle"] = json!(l);
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

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Running => "running",
        Phase::Paused => "paused",
        Phase::RolledBack => "rolled_back",
        Phase::Promoted => "promoted",
    }
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
    use crate::rollout::Guards;
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
            guards: None,
            lifecycle: None,
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

    fn guarded(name: &str, strategy: Strategy, arms: usize, guards: Guards) -> DeploymentSpec {
        let mut s = spec(name, strategy, arms);
        s.guards = Some(guards);
        s.seed = Some(7);
        s.lifecycle = Some(LifecycleLink {
            name: "rollout".into(),
            key: None,
        });
        s
    }

    /// Decides `n` times, rewarding each variant with `reward(variant)` or
    /// an error where `error(variant)`.
    async fn traffic(
        d: &Deployments,
        name: &str,
        n: usize,
        reward: impl Fn(&str, usize) -> f64,
        error: impl Fn(&str, usize) -> bool,
    ) {
        for i in 0..n {
            let c = d
                .decide(
                    name,
                    DecideRequest {
                        unit_id: Some(format!("u{i}")),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let failed = error(&c.variant, i);
            d.outcome(
                &c.decision_id,
                (!failed).then(|| reward(&c.variant, i)),
                failed,
            )
            .await
            .unwrap();
        }
    }

    #[tokio::test]
    async fn a_canary_advances_step_by_step_and_is_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        let d = Deployments::open(&path, false).unwrap();
        let mut events = d.subscribe();
        let guards = Guards {
            min_samples: 20,
            max_error_rate: Some(0.2),
            required_checks: vec!["quality".into()],
            ..Guards::default()
        };
        d.create(guarded(
            "c",
            Strategy::Canary {
                steps: vec![10.0, 50.0, 100.0],
                step: 0,
            },
            2,
            guards,
        ))
        .await
        .unwrap();
        // Without the required check passed, the canary stays at 10%.
        traffic(&d, "c", 600, |_, i| f64::from(i % 2 == 0), |_, _| false).await;
        assert_eq!(d.describe("c").unwrap()["canary"]["step"], 0);
        d.report_check(
            "c",
            CheckReport {
                suite: "quality".into(),
                variant: "v1".into(),
                passed: true,
                severity: "error".into(),
                details: Value::Null,
            },
        )
        .await
        .unwrap();
        traffic(&d, "c", 2000, |_, i| f64::from(i % 2 == 0), |_, _| false).await;
        let described = d.describe("c").unwrap();
        assert_eq!(described["rollout"]["phase"], "promoted");
        assert_eq!(described["canary"]["candidate_percent"], 100.0);
        let kinds: Vec<EventKind> = d.events("c").unwrap().iter().map(|e| e.event).collect();
        assert_eq!(
            kinds,
            [
                EventKind::CanaryAdvanced,
                EventKind::CanaryAdvanced,
                EventKind::CanaryPromoted
            ]
        );
        // Promoted: every decision goes to the candidate.
        let c = d.decide("c", DecideRequest::default()).await.unwrap();
        assert_eq!((c.variant.as_str(), c.propensity), ("v1", 1.0));
        // The lifecycle hears each move once, in order, with its index.
        for (i, kind) in kinds.iter().enumerate() {
            let e = events.try_recv().unwrap();
            assert_eq!((e.index, e.event.event), (i + 1, *kind));
            assert_eq!(e.lifecycle.name, "rollout");
        }
        // The moves survive a restart.
        let before = d.describe("c").unwrap();
        drop(d);
        let d = Deployments::open(&path, false).unwrap();
        assert_eq!(d.describe("c").unwrap(), before);
    }

    #[tokio::test]
    async fn guards_roll_back_on_errors_failed_checks_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployments::open(&dir.path().join("decisions.log"), false).unwrap();
        let guards = Guards {
            min_samples: 30,
            max_error_rate: Some(0.1),
            metrics: [(
                "latency_p99_ms".to_string(),
                crate::rollout::Bound {
                    min: None,
                    max: Some(50.0),
                },
            )]
            .into(),
            ..Guards::default()
        };
        let canary = Strategy::Canary {
            steps: vec![50.0, 100.0],
            step: 0,
        };
        // 1. The candidate fails a third of its requests.
        d.create(guarded("errs", canary.clone(), 2, guards.clone()))
            .await
            .unwrap();
        traffic(&d, "errs", 400, |_, _| 1.0, |v, i| v == "v1" && i % 3 == 0).await;
        let events = d.events("errs").unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].event, EventKind::RolledBack);
        assert!(
            events[0].reason.contains("error rate"),
            "{}",
            events[0].reason
        );
        let c = d.decide("errs", DecideRequest::default()).await.unwrap();
        assert_eq!((c.variant.as_str(), c.propensity), ("v0", 1.0));
        // 2. A failed check rolls back at once.
        d.create(guarded("chk", canary.clone(), 2, guards.clone()))
            .await
            .unwrap();
        let described = d
            .report_check(
                "chk",
                CheckReport {
                    suite: "fairness".into(),
                    variant: "v1".into(),
                    passed: false,
                    severity: "error".into(),
                    details: Value::Null,
                },
            )
            .await
            .unwrap();
        assert_eq!(described["rollout"]["phase"], "rolled_back");
        // 3. A metric above its bound rolls back; one within does not.
        d.create(guarded("lat", canary, 2, guards)).await.unwrap();
        let report = |value| MetricReport {
            variant: "v1".into(),
            name: "latency_p99_ms".into(),
            value,
        };
        let described = d.report_metric("lat", report(20.0)).await.unwrap();
        assert_eq!(described["rollout"]["phase"], "running");
        let described = d.report_metric("lat", report(80.0)).await.unwrap();
        assert_eq!(described["rollout"]["phase"], "rolled_back");
        // A rolled-back deployment cannot be rolled back again, nor resumed.
        for action in ["rollback", "resume"] {
            let err = d
                .control(
                    "lat",
                    ControlRequest {
                        action: action.into(),
                        variant: None,
                        reason: None,
                    },
                )
                .await
                .unwrap_err();
            assert!(matches!(err, ExperimentError::Conflict(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn a_bandit_names_its_winner_and_a_pause_stops_moves() {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployments::open(&dir.path().join("decisions.log"), false).unwrap();
        let guards = Guards {
            min_samples: 50,
            on_winner: crate::rollout::OnWinner::Promote,
            ..Guards::default()
        };
        let rates = [0.2, 0.8, 0.3];
        let mut env = Rng::from_seed(11);
        let rewards: Vec<f64> = (0..20_000).map(|_| env.next_f64()).collect();
        let reward = |v: &str, i: usize| {
            let arm: usize = v[1..].parse().unwrap();
            f64::from(rewards[i] < rates[arm])
        };
        d.create(guarded(
            "paused",
            Strategy::EpsilonGreedy { epsilon: 0.5 },
            3,
            guards.clone(),
        ))
        .await
        .unwrap();
        let pause = ControlRequest {
            action: "pause".into(),
            variant: None,
            reason: Some("holiday traffic".into()),
        };
        d.control("paused", pause).await.unwrap();
        traffic(&d, "paused", 2000, reward, |_, _| false).await;
        let events = d.events("paused").unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (
                events[0].event,
                events[0].reason.as_str(),
                events[0].by.as_str()
            ),
            (EventKind::Paused, "holiday traffic", "api")
        );

        d.create(guarded(
            "eg",
            Strategy::EpsilonGreedy { epsilon: 0.5 },
            3,
            guards,
        ))
        .await
        .unwrap();
        traffic(&d, "eg", 3000, reward, |_, _| false).await;
        let events = d.events("eg").unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].event, EventKind::WinnerFound);
        assert_eq!(events[0].variant.as_deref(), Some("v1"));
        let described = d.describe("eg").unwrap();
        assert_eq!(described["rollout"]["winner"], "v1");
        assert_eq!(described["rollout"]["phase"], "promoted");
        let c = d.decide("eg", DecideRequest::default()).await.unwrap();
        assert_eq!((c.variant.as_str(), c.propensity), ("v1", 1.0));
        // The plot shows both variants' lines and the winner's marker.
        let svg = d.plot("eg", 20).unwrap();
        assert!(svg.contains("winner_found"));
    }

    #[test]
    fn binary_records_round_trip_and_json_ones_still_read() {
        let mut frames = Vec::new();
        DecisionRecord {
            deployment: "recs.v2",
            seq: 42,
            arm: 3,
            propensity: 0.125,
            unit: Some("user-é"),
            segment: "eu",
            context: &[0.5, -1.25, f64::MIN_POSITIVE],
            shadows: &[1, 2],
            covariate: Some(-3.5),
            at: 1_700_000_000_123,
        }
        .frame(&mut frames);
        RewardRecord {
            deployment: "recs.v2",
            seq: 42,
            reward: None,
            error: true,
            at: 7,
        }
        .frame(&mut frames);
        let mut bodies = Vec::new();
        crate::log::frames(&frames, &mut |b| {
            bodies.push(b.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(bodies.len(), 2);
        match decode(&bodies[0]).unwrap() {
            Record::Decision {
                deployment,
                seq,
                arm,
                propensity,
                unit,
                segment,
                context,
                shadows,
                covariate,
                at,
            } => {
                assert_eq!(
                    (deployment.as_str(), seq, arm, propensity),
                    ("recs.v2", 42, 3, 0.125)
                );
                assert_eq!((unit.as_deref(), segment.as_str()), (Some("user-é"), "eu"));
                assert_eq!(context, [0.5, -1.25, f64::MIN_POSITIVE]);
                assert_eq!(
                    (shadows, covariate, at),
                    (vec![1, 2], Some(-3.5), 1_700_000_000_123)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&bodies[1]).unwrap(),
            Record::Reward {
                reward: None,
                error: true,
                at: 7,
                seq: 42,
                ..
            }
        ));
        // Every truncation is corruption, never a panic.
        for cut in 0..bodies[0].len() {
            assert!(decode(&bodies[0][..cut]).is_err(), "cut at {cut}");
        }
        // The JSON form of older logs still reads.
        let old = br#"{"kind":"reward","deployment":"d","seq":3,"reward":1.0,"at":5}"#;
        assert!(matches!(
            decode(old).unwrap(),
            Record::Reward {
                reward: Some(1.0),
                ..
            }
        ));
    }
}
