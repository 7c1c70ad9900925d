//! Deployments as long processes: guards that advance a canary step by
//! step, roll any deployment back to its first variant, or name a bandit's
//! winner, and the events these moves emit for lifecycles.
//!
//! The moves are decided by [`judge`], a pure function of the deployment's
//! counts, its reported checks and metrics, and its [`Rollout`] state. Every
//! move is an [`Event`] written to the decision log before it takes effect,
//! and [`Rollout::apply`] is the one place an event changes the state, live
//! and at replay alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ExperimentError;
use crate::analysis::{default_tau2, msprt, prob_best};
use crate::policy::ArmStats;
use crate::strategy::{DeploymentSpec, Strategy};

/// When a deployment moves on its own (`"guards"` of the spec).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Guards {
    /// Outcomes (rewards or errors) a variant needs before it is judged;
    /// for a canary, outcomes of the candidate at the current step before
    /// the step may advance; for a winner, outcomes per variant.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// Shortest stay at a canary step, in seconds.
    #[serde(default)]
    pub min_step_seconds: f64,
    /// Roll back when a candidate's error rate (errors / outcomes) exceeds this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Roll back when a candidate's mean reward falls below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reward: Option<f64>,
    /// Roll back when a candidate's mean reward is below the first
    /// variant's by more than this fraction of it (0.05 = 5%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reward_drop: Option<f64>,
    /// Roll back when the always-valid sequential test (mSPRT) finds a
    /// candidate worse than the first variant at this significance level;
    /// safe to evaluate after every outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significance: Option<f64>,
    /// Bounds on metrics reported with `POST .../metrics` (latency, cost,
    /// drift): `{"latency_p99_ms": {"max": 50}}`. A candidate's report out
    /// of bounds rolls the deployment back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Bound>,
    /// Checks (test suites) the candidate must have passed, reported with
    /// `POST .../checks`, before a canary leaves its step. A failed check
    /// of severity `error` on a candidate rolls back whether listed or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_checks: Vec<String>,
    /// Advance canary steps when the guards hold (default); `false` leaves
    /// advancing to `POST .../rollout {"action": "advance"}`.
    #[serde(default = "yes")]
    pub auto_advance: bool,
    /// Posterior probability to be best that names a winner (bandits, A/B).
    #[serde(default = "default_winner_probability")]
    pub winner_probability: f64,
    /// What naming a winner does: `report` (an event only) or `promote`
    /// (every decision goes to the winner from then on).
    #[serde(default)]
    pub on_winner: OnWinner,
}

/// A metric's accepted range.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnWinner {
    #[default]
    Report,
    Promote,
}

/// The lifecycle instance that hears a deployment's events (`"lifecycle"`
/// of the spec): each event is sent to it by name (`canary_advanced`,
/// `canary_promoted`, `promoted`, `rolled_back`, `winner_found`, `paused`,
/// `resumed`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleLink {
    /// The lifecycle's name.
    pub name: String,
    /// The instance key (default: the deployment's name); started when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn default_min_samples() -> u64 {
    100
}
fn yes() -> bool {
    true
}
fn default_winner_probability() -> f64 {
    0.95
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            min_samples: default_min_samples(),
            min_step_seconds: 0.0,
            max_error_rate: None,
            min_reward: None,
            max_reward_drop: None,
            significance: None,
            metrics: BTreeMap::new(),
            required_checks: Vec::new(),
            auto_advance: true,
            winner_probability: default_winner_probability(),
            on_winner: OnWinner::Report,
        }
    }
}

impl Guards {
    /// Checks every field, naming the first offender.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |field: &str, reason: String| ExperimentError::Invalid {
            field: format!("guards.{field}"),
            reason,
        };
        if self.min_samples == 0 {
            return Err(bad("min_samples", "give at least 1".into()));
        }
        if !(self.min_step_seconds.is_finite() && self.min_step_seconds >= 0.0) {
            return Err(bad(
                "min_step_seconds",
                format!("{} is not a non-negative number", self.min_step_seconds),
            ));
        }
        for (field, value) in [
            ("max_error_rate", self.max_error_rate),
            ("max_reward_drop", self.max_reward_drop),
        ] {
            if let Some(x) = value
                && !(0.0..=1.0).contains(&x)
            {
                return Err(bad(field, format!("{x} is not within [0, 1]")));
            }
        }
        if let Some(x) = self.significance
            && !(x > 0.0 && x < 1.0)
        {
            return Err(bad("significance", format!("{x} is not within (0, 1)")));
        }
        if let Some(x) = self.min_reward
            && !x.is_finite()
        {
            return Err(bad("min_reward", format!("{x} is not a finite number")));
        }
        if !(self.winner_probability > 0.5 && self.winner_probability < 1.0) {
            return Err(bad(
                "winner_probability",
                format!("{} is not within (0.5, 1)", self.winner_probability),
            ));
        }
        for (name, b) in &self.metrics {
            if b.min.is_none() && b.max.is_none() {
                return Err(bad(
                    &format!("metrics.{name}"),
                    "give \"min\", \"max\" or both".into(),
                ));
            }
            for x in [b.min, b.max].into_iter().flatten() {
                if !x.is_finite() {
                    return Err(bad(
                        &format!("metrics.{name}"),
                        format!("{x} is not a finite number"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Deciding by its strategy (a canary at its current step).
    Running,
    /// Deciding as when it was paused; guards make no moves.
    Paused,
    /// Every decision goes to the first variant.
    RolledBack,
    /// Every decision goes to the promoted variant.
    Promoted,
}

/// What happened to a deployment.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    CanaryAdvanced,
    CanaryPromoted,
    /// A variant of a non-canary deployment promoted by hand.
    Promoted,
    RolledBack,
    WinnerFound,
    Paused,
    Resumed,
}

impl EventKind {
    /// The event's name as lifecycles receive it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::CanaryAdvanced => "canary_advanced",
            EventKind::CanaryPromoted => "canary_promoted",
            EventKind::Promoted => "promoted",
            EventKind::RolledBack => "rolled_back",
            EventKind::WinnerFound => "winner_found",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
        }
    }
}

/// One move of a deployment, as logged and as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub event: EventKind,
    /// The variant concerned: the winner, the promoted or the failing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The canary step after the move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub reason: String,
    /// `guard` when the deployment moved itself, else `api`.
    pub by: String,
    /// Milliseconds since the epoch.
    pub at: i64,
}

/// A deployment's state as a long process.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub phase: Phase,
    /// The canary's current step.
    pub step: usize,
    /// When the current step began (ms).
    pub step_since: i64,
    /// Each variant's outcomes when the current step began.
    pub step_base: Vec<u64>,
    /// The variant every decision goes to when promoted.
    pub promoted: Option<usize>,
    /// The variant named winner, once.
    pub winner: Option<usize>,
    pub events: Vec<Event>,
}

impl Rollout {
    pub fn new(spec: &DeploymentSpec, at: i64) -> Rollout {
        let step = match &spec.strategy {
            Strategy::Canary { step, .. } => *step,
            _ => 0,
        };
        Rollout {
            phase: Phase::Running,
            step,
            step_since: at,
            step_base: vec![0; spec.variants.len()],
            promoted: None,
            winner: None,
            events: Vec::new(),
        }
    }

    /// The variant every decision goes to, if the phase fixes one.
    pub fn fixed_arm(&self) -> Option<usize> {
        match self.phase {
            Phase::RolledBack => Some(0),
            Phase::Promoted => self.promoted,
            Phase::Running | Phase::Paused => None,
        }
    }

    /// Applies a logged event. `outcomes` are each variant's outcomes so
    /// far (the base of a new canary step).
    pub fn apply(&mut self, spec: &DeploymentSpec, event: Event, outcomes: &[u64]) {
        let arm = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| spec.variants.iter().position(|v| &v.name == n))
        };
        match event.event {
            EventKind::CanaryAdvanced => {
                self.step = event.step.unwrap_or(self.step + 1);
                self.step_since = event.at;
                self.step_base = outcomes.to_vec();
            }
            EventKind::CanaryPromoted | EventKind::Promoted => {
                self.phase = Phase::Promoted;
                self.promoted = arm(&event.variant).or(Some(1));
            }
            EventKind::RolledBack => self.phase = Phase::RolledBack,
            EventKind::WinnerFound => {
                self.winner = arm(&event.variant);
                if spec
                    .guards
                    .as_ref()
                    .is_some_and(|g| g.on_winner == OnWinner::Promote)
                {
                    self.phase = Phase::Promoted;
                    self.promoted = self.winner;
                }
            }
            EventKind::Paused => self.phase = Phase::Paused,
            EventKind::Resumed => self.phase = Phase::Running,
        }
        self.events.push(event);
    }
}

/// A reported check (test-suite) result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckReport {
    /// The suite or check's name.
    pub suite: String,
    /// The variant it ran against.
    pub variant: String,
    pub passed: bool,
    /// `error` (the default: a failure on a candidate rolls back) or `warning`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Anything worth keeping with it (the suite's report URI, counts).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

fn default_severity() -> String {
    "error".into()
}

/// A metric of one variant, reported by monitoring or a person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricReport {
    pub variant: String,
    pub name: String,
    pub value: f64,
}

/// Everything the guards look at.
pub struct Evidence<'a> {
    /// Each variant's reward statistics (every segment added up).
    pub arms: &'a [ArmStats],
    /// Each variant's outcomes (rewards and errors) and errors.
    pub outcomes: &'a [u64],
    pub errors: &'a [u64],
    /// The latest check result per (suite, variant).
    pub checks: &'a BTreeMap<(String, usize), CheckReport>,
    /// The latest value per (metric, variant).
    pub metrics: &'a BTreeMap<(String, usize), f64>,
    pub now: i64,
    /// Whether to run the (costlier) winner test this time.
    pub winner_due: bool,
}

/// Draws of the winner test; fixed seed, so a judgement is repeatable.
const WINNER_DRAWS: usize = 4_000;

/// The move the guards call for now, if any.
pub fn judge(
    spec: &DeploymentSpec,
    guards: &Guards,
    rollout: &Rollout,
    e: &Evidence,
) -> Option<Event> {
    if rollout.phase != Phase::Running {
        return None;
    }
    let k = spec.variants.len();
    let event = |kind: EventKind, variant: Option<usize>, step: Option<usize>, reason: String| {
        Some(Event {
            event: kind,
            variant: variant.map(|i| spec.variants[i].name.clone()),
            step,
            reason,
            by: "guard".into(),
            at: e.now,
        })
    };
    // Candidates: every variant but the first (a canary's candidate is the second).
    for i in 1..k {
        let name = &spec.variants[i].name;
        for ((suite, arm), check) in e.checks {
            if *arm == i && !check.passed && check.severity == "error" {
                return event(
                    EventKind::RolledBack,
                    Some(i),
                    None,
                    format!("check {suite:?} failed on {name:?}"),
                );
            }
        }
        for ((metric, arm), value) in e.metrics {
            let Some(bound) = guards.metrics.get(metric) else {
                continue;
            };
            if *arm != i {
                continue;
            }
            if let Some(max) = bound.max
                && *value > max
            {
                return event(
                    EventKind::RolledBack,
                    Some(i),
                    None,
                    format!("{metric} of {name:?} is {value}, above the maximum {max}"),
                );
            }
            if let Some(min) = bound.min
                && *value < min
            {
                return event(
                    EventKind::RolledBack,
                    Some(i),
                    None,
                    format!("{metric} of {name:?} is {value}, below the minimum {min}"),
                );
            }
        }
        if e.outcomes[i] < guards.min_samples {
            continue;
        }
        let error_rate = e.errors[i] as f64 / e.outcomes[i] as f64;
        if let Some(max) = guards.max_error_rate
            && error_rate > max
        {
            return event(
                EventKind::RolledBack,
                Some(i),
                None,
                format!(
                    "error rate of {name:?} is {error_rate:.4} over {} outcomes, above the maximum {max}",
                    e.outcomes[i]
                ),
            );
        }
        let Some(mean) = e.arms[i].mean() else {
            continue;
        };
        if let Some(min) = guards.min_reward
            && mean < min
        {
            return event(
                EventKind::RolledBack,
                Some(i),
                None,
                format!("mean reward of {name:?} is {mean:.6}, below the minimum {min}"),
            );
        }
        let control = &e.arms[0];
        let Some(control_mean) = control
            .mean()
            .filter(|_| e.outcomes[0] >= guards.min_samples)
        else {
            continue;
        };
        if let Some(drop) = guards.max_reward_drop
            && mean < control_mean - drop * control_mean.abs()
        {
            return event(
                EventKind::RolledBack,
                Some(i),
                None,
                format!(
                    "mean reward of {name:?} is {mean:.6}, more than {}% below {:?}'s {control_mean:.6}",
                    drop * 100.0,
                    spec.variants[0].name
                ),
            );
        }
        if let Some(alpha) = guards.significance
            && mean < control_mean
        {
            let binary = e.arms.iter().all(|a| a.non_binary == 0);
            if let Ok((_, p)) = msprt(&e.arms[i], control, binary, default_tau2(e.arms))
                && p < alpha
            {
                return event(
                    EventKind::RolledBack,
                    Some(i),
                    None,
                    format!(
                        "{name:?} is worse than {:?} (mean reward {mean:.6} vs {control_mean:.6}, always-valid p = {p:.4} < {alpha})",
                        spec.variants[0].name
                    ),
                );
            }
        }
    }
    if let Strategy::Canary { steps, .. } = &spec.strategy {
        if !guards.auto_advance || k < 2 {
            return None;
        }
        let at_step = e.outcomes[1].saturating_sub(rollout.step_base.get(1).copied().unwrap_or(0));
        if at_step < guards.min_samples {
            return None;
        }
        if ((e.now - rollout.step_since) as f64) < guards.min_step_seconds * 1000.0 {
            return None;
        }
        let passed = |suite: &String| e.checks.get(&(suite.clone(), 1)).is_some_and(|c| c.passed);
        if !guards.required_checks.iter().all(passed) {
            return None;
        }
        let reason = format!(
            "{at_step} outcomes of {:?} at {}% within the guards",
            spec.variants[1].name,
            steps.get(rollout.step).copied().unwrap_or(0.0)
        );
        return if rollout.step + 1 < steps.len() {
            event(
                EventKind::CanaryAdvanced,
                None,
                Some(rollout.step + 1),
                reason,
            )
        } else {
            event(
                EventKind::CanaryPromoted,
                Some(1),
                Some(rollout.step),
                reason,
            )
        };
    }
    // (A canary returned above: it is promoted, never "won".)
    if !e.winner_due
        || rollout.winner.is_some()
        || k < 2
        || !(spec.strategy.learns() || spec.strategy == Strategy::Ab)
    {
        return None;
    }
    if e.outcomes.iter().any(|n| *n < guards.min_samples) {
        return None;
    }
    let p = prob_best(e.arms, WINNER_DRAWS).ok()?;
    let (best, pb) = p
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    if pb < guards.winner_probability {
        return None;
    }
    let promote = guards.on_winner == OnWinner::Promote;
    event(
        EventKind::WinnerFound,
        Some(best),
        None,
        format!(
            "{:?} is best with probability {pb:.4} ≥ {}{}",
            spec.variants[best].name,
            guards.winner_probability,
            if promote { "; promoted" } else { "" }
        ),
    )
}
