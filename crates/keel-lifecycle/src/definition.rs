//! Lifecycle definitions as the user wrote them, after validation.
//!
//! A definition is parsed from YAML by [`crate::parse`] into these types;
//! every reference (initial state, transition targets, catch targets,
//! guard expressions, cron lines) has been checked by then, so the engine
//! never meets a dangling name.

use std::time::Duration;

use crate::cron::Cron;
use crate::expr::Expr;

/// Events the engine itself sends to an instance.
pub mod builtin_events {
    /// An entry action finished well; its output is the event's data.
    pub const ACTION_SUCCEEDED: &str = "action_succeeded";
    /// An entry action failed after its last retry; the error is the data.
    pub const ACTION_FAILED: &str = "action_failed";
    /// Every branch of a `parallel` state reached a terminal state.
    pub const PARALLEL_DONE: &str = "parallel_done";
    /// Every child lifecycle started by a `map` state reached a terminal state.
    pub const MAP_DONE: &str = "map_done";
}

/// How an instance's transitions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every event is in the log before it is acknowledged; full history;
    /// transitions apply exactly once, across crashes.
    Durable,
    /// Held in memory only: for per-request lifecycles that live seconds.
    /// Lost on restart; at-least-once.
    Ephemeral,
}

/// One lifecycle definition (`lifecycle: NAME` document).
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    pub mode: Mode,
    pub description: Option<String>,
    /// Name of the state a new instance starts in.
    pub initial: String,
    /// States in file order.
    pub states: Vec<StateDef>,
}

/// One state. At most one of `action`, `parallel` and `map` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct StateDef {
    pub name: String,
    pub description: Option<String>,
    /// No transitions leave a terminal state.
    pub terminal: bool,
    /// Outgoing transitions in file order; several may share an event, the
    /// first whose guard holds wins.
    pub on: Vec<TransitionDef>,
    /// Entry action, run each time the state is entered.
    pub action: Option<ActionDef>,
    /// Retries of a failed entry action before `action_failed` (or `catch`).
    pub retry: Option<RetryPolicy>,
    /// State to move to when the entry action fails for the last time,
    /// instead of sending `action_failed`.
    pub catch: Option<String>,
    /// An event sent if the instance is still in this state after a while.
    pub timeout: Option<TimerDef>,
    /// Events sent on a cron schedule while the instance is in this state.
    pub schedule: Option<ScheduleDef>,
    /// Branches run side by side; `parallel_done` when all are terminal.
    pub parallel: Option<Vec<BranchDef>>,
    /// One child lifecycle per item; `map_done` when all are terminal.
    pub map: Option<MapDef>,
}

/// `on: {EVENT: TARGET}` or `on: {EVENT: {target, guard, assign}}`, or a
/// list of those objects under one event.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionDef {
    pub event: String,
    pub target: String,
    /// Source text and parsed form, e.g. `event.auc > 0.8`.
    pub guard: Option<Guard>,
    /// Context fields set when the transition is taken, in file order.
    pub assign: Vec<(String, Guard)>,
}

/// An expression with the text it was parsed from (kept for history and
/// graphs).
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub source: String,
    pub expr: Expr,
}

/// An entry action: the kind (`command`, `http`, `emit`, or one a domain
/// registered) and its settings as written.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDef {
    pub kind: String,
    /// `command: "python train.py"` becomes `{"run": "python train.py"}`;
    /// `http: URL` becomes `{"url": URL}`; objects are kept as written.
    pub config: serde_json::Value,
    /// How long one attempt may take before it counts as failed.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (≥ 1).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub backoff: Duration,
    /// Each later wait is the previous one times this (≥ 1.0; default 2).
    pub multiplier: f64,
    /// Upper bound of a single wait.
    pub max_backoff: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimerDef {
    pub after: Duration,
    pub event: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDef {
    pub cron: Cron,
    pub event: String,
}

/// One branch of a `parallel` state: a small state machine of its own whose
/// states may not themselves be `parallel`, `map` or scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchDef {
    pub name: String,
    pub initial: String,
    pub states: Vec<StateDef>,
}

/// `map: {items: EXPR, lifecycle: DEF, key: EXPR}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MapDef {
    /// Evaluates to an array, over the entering event and the context.
    pub items: Guard,
    /// Definition of the child lifecycles.
    pub lifecycle: String,
    /// Evaluated per item (`item`, `index` in scope) to the child key's
    /// suffix; default: the index. Child key = `PARENT_KEY/SUFFIX`.
    pub key: Option<Guard>,
}
