//! The pure core: a compiled definition ([`Machine`]) and
//! [`Machine::apply`], which moves one instance by one input and returns what
//! must happen next as [`Command`]s. No I/O, no clock, no async: the same
//! inputs give the same instance and commands, which is what makes replay
//! after a crash exact and lets the engine and its tests drive it alike.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::definition::{Definition, MapDef, Mode, RetryPolicy, StateDef, builtin_events};
use crate::expr::{Expr, Scope};

/// Index of a state in a [`Machine`] (top-level and branch states alike).
pub type StateId = u16;

/// Where an action or timer belongs: the instance's own state, or one
/// branch of the parallel state it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeRef {
    Top,
    Branch(u16),
}

/// An armed timer of one instance. A fired timer is applied only if the
/// instance still holds an equal one, so leaving a state cancels its timers
/// without touching the timer queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer {
    pub kind: TimerKind,
    pub scope: ScopeRef,
    /// Unix epoch milliseconds.
    pub at: i64,
    /// The instance's `seq` when the timer was armed.
    pub token: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The state's `timeout` event.
    Timeout,
    /// The state's `schedule` event (cron).
    Schedule,
    /// Start attempt `attempt` of the state's action again.
    Retry { attempt: u16 },
}

/// An action that has been started and whose result has not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningAction {
    pub scope: ScopeRef,
    pub state: StateId,
    pub attempt: u16,
    /// Unique within the instance; the result must quote it.
    pub token: u64,
}

/// The parent of a child lifecycle started by a `map` state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub lifecycle: String,
    pub key: String,
    /// The parent's `seq` when it entered the map state: a child finishing
    /// after the parent left that state is ignored.
    pub token: u64,
}

/// One lifecycle instance's state: small, because a node holds millions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Instance {
    pub state: StateId,
    /// Inputs applied so far; also the source of action and timer tokens.
    pub seq: u64,
    /// When the current top-level state was entered (epoch ms).
    pub entered_at: i64,
    pub context: Option<Box<Value>>,
    /// Everything most waiting instances do not have.
    pub extra: Option<Box<Extra>>,
}

/// Sized for the common case: one timer or one running action is stored
/// inline, so a waiting instance with a timeout costs one small allocation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra {
    /// Current state of each branch while in a parallel state.
    pub branches: Vec<StateId>,
    pub timers: smallvec::SmallVec<[Timer; 1]>,
    pub running: smallvec::SmallVec<[RunningAction; 1]>,
    pub parent: Option<Box<ParentRef>>,
    /// Children of the current map state that have not finished.
    pub pending_children: u32,
    /// The seq at which the current map state was entered.
    pub map_token: u64,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.branches.is_empty()
            && self.timers.is_empty()
            && self.running.is_empty()
            && self.parent.is_none()
            && self.pending_children == 0
    }
}

impl Instance {
    pub fn timers(&self) -> &[Timer] {
        self.extra.as_deref().map_or(&[], |e| &e.timers)
    }
    pub fn running(&self) -> &[RunningAction] {
        self.extra.as_deref().map_or(&[], |e| &e.running)
    }
    pub fn branches(&self) -> &[StateId] {
        self.extra.as_deref().map_or(&[], |e| &e.branches)
    }
    pub fn parent(&self) -> Option<&ParentRef> {
        self.extra.as_deref().and_then(|e| e.parent.as_deref())
    }
    pub fn pending_children(&self) -> u32 {
        self.extra.as_deref().map_or(0, |e| e.pending_children)
    }
    pub fn context_value(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.context.as_deref().unwrap_or(&NULL)
    }
    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }
    fn tidy(&mut self) {
        if self.extra.as_deref().is_some_and(Extra::is_empty) {
            self.extra = None;
        }
    }
}

/// What moves an instance.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A named event from a client, another lifecycle or a domain.
    Event(&'a str),
    /// A timer the engine found due.
    TimerFired(Timer),
    /// An action's result; the data is its output or error.
    ActionFinished { token: u64, ok: bool },
    /// A child of a map state reached a terminal state.
    ChildFinished { token: u64 },
}

/// Why an input was not applied. Nothing is written for it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("event `{event}` is not used by lifecycle `{lifecycle}`; its events are: {known}")]
    UnknownEvent {
        lifecycle: String,
        event: String,
        known: String,
    },
    #[error("state `{state}` has no transition on `{event}`; it handles: {handled}")]
    NotHandled {
        state: String,
        event: String,
        handled: String,
    },
    #[error("the guard `{guard}` of `{event}` in state `{state}` is false")]
    GuardFalse {
        state: String,
        event: String,
        guard: String,
    },
    #[error("the guard of `{event}` in state `{state}` failed: {message}")]
    GuardError {
        state: String,
        event: String,
        message: String,
    },
    #[error("the instance is in terminal state `{state}`")]
    Terminal { state: String },
    /// A timer, action result or child report for a state the instance has
    /// left: dropped silently.
    #[error("stale input")]
    Stale,
}

/// A side effect the engine carries out after the transition is durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start the entry action of `state` (attempt 1, or a retry).
    RunAction(RunningAction),
    /// Put a timer in the queue.
    ArmTimer(Timer),
    /// Start a child lifecycle for one item of a map state.
    StartChild {
        lifecycle: String,
        key: String,
        data: Value,
        parent_token: u64,
    },
    /// Tell the parent that this (child) instance finished.
    NotifyParent {
        parent: ParentRef,
        final_state: String,
    },
}

/// The result of applying one input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// The event as named in the definition (a timer's event,
    /// `action_succeeded`, …).
    pub event: String,
    pub from: StateId,
    pub to: StateId,
    /// Branch states that moved: (branch, from, to).
    pub branch_moves: Vec<(u16, StateId, StateId)>,
    /// What else happened, for the history ("retry 2 of 3 at …").
    pub note: Option<String>,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Transition {
    target: StateId,
    guard: Option<(Expr, String)>,
    assign: Vec<(String, Expr)>,
}

#[derive(Debug, Clone)]
struct CompiledState {
    /// Name as written; branch states are shown as `PARALLEL.BRANCH.NAME`.
    path: Arc<str>,
    terminal: bool,
    on: Vec<(u16, Vec<Transition>)>,
    action: Option<crate::definition::ActionDef>,
    retry: Option<RetryPolicy>,
    catch: Option<StateId>,
    timeout: Option<(i64, u16)>,
    schedule: Option<(crate::cron::Cron, u16)>,
    branches: Vec<StateId>,
    map: Option<MapDef>,
}

/// A definition compiled for fast application: states and events by index.
#[derive(Debug)]
pub struct Machine {
    pub name: Arc<str>,
    pub version: u32,
    pub definition: Definition,
    /// The YAML text as applied.
    pub source: Arc<str>,
    states: Vec<CompiledState>,
    initial: StateId,
    events: HashMap<String, u16>,
    event_names: Vec<String>,
    action_succeeded: Option<u16>,
    action_failed: Option<u16>,
    parallel_done: Option<u16>,
    map_done: Option<u16>,
}

/// At most this many transitions follow one input without another input
/// (entering a parallel state whose branches start terminal, an empty map).
const MAX_CHAIN: usize = 64;

impl Machine {
    /// Compiles a validated definition. The parser has checked every
    /// reference, so compilation cannot fail on a parsed definition; a
    /// hand-built one with dangling names gets an error naming it.
    pub fn compile(
        definition: Definition,
        version: u32,
        source: Arc<str>,
    ) -> Result<Machine, String> {
        let mut m = Machine {
            name: Arc::from(definition.name.as_str()),
            version,
            source,
            states: Vec::new(),
            initial: 0,
            events: HashMap::new(),
            event_names: Vec::new(),
            action_succeeded: None,
            action_failed: None,
            parallel_done: None,
            map_done: None,
            // Filled in once compilation no longer borrows the definition.
            definition: Definition {
                name: String::new(),
                mode: definition.mode,
                description: None,
                initial: String::new(),
                states: Vec::new(),
            },
        };
        let top = m.add_states(&definition.states, "")?;
        m.initial = lookup(&top, &definition.initial)?;
        m.resolve(&definition.states, &top)?;
        m.action_succeeded = m.events.get(builtin_events::ACTION_SUCCEEDED).copied();
        m.action_failed = m.events.get(builtin_events::ACTION_FAILED).copied();
        m.parallel_done = m.events.get(builtin_events::PARALLEL_DONE).copied();
        m.map_done = m.events.get(builtin_events::MAP_DONE).copied();
        m.definition = definition;
        Ok(m)
    }

    /// Adds the states of one machine level (top or a branch) and returns
    /// name → id for resolving its targets.
    fn add_states(
        &mut self,
        states: &[StateDef],
        prefix: &str,
    ) -> Result<HashMap<String, StateId>, String> {
        let mut ids = HashMap::new();
        for s in states {
            let id = StateId::try_from(self.states.len())
                .map_err(|_| "a definition may have at most 65,535 states".to_owned())?;
            ids.insert(s.name.clone(), id);
            self.states.push(CompiledState {
                path: Arc::from(format!("{prefix}{}", s.name)),
                terminal: s.terminal,
                on: Vec::new(),
                action: s.action.clone(),
                retry: s.retry.clone(),
                catch: None,
                timeout: None,
                schedule: None,
                branches: Vec::new(),
                map: s.map.clone(),
            });
        }
        Ok(ids)
    }

    fn event_id(&mut self, name: &str) -> u16 {
        if let Some(&id) = self.events.get(name) {
            return id;
        }
        let id = self.event_names.len() as u16;
        self.events.insert(name.to_owned(), id);
        self.event_names.push(name.to_owned());
        id
    }

    fn resolve(
        &mut self,
        states: &[StateDef],
        ids: &HashMap<String, StateId>,
    ) -> Result<(), String> {
        for s in states {
            let id = ids[&s.name];
            let mut on: Vec<(u16, Vec<Transition>)> = Vec::new();
            for t in &s.on {
                let ev = self.event_id(&t.event);
                let tr = Transition {
                    target: lookup(ids, &t.target)?,
                    guard: t.guard.as_ref().map(|g| (g.expr.clone(), g.source.clone())),
                    assign: t
                        .assign
                        .iter()
                        .map(|(k, g)| (k.clone(), g.expr.clone()))
                        .collect(),
                };
                match on.iter_mut().find(|(e, _)| *e == ev) {
                    Some((_, list)) => list.push(tr),
                    None => on.push((ev, vec![tr])),
                }
            }
            let catch = s.catch.as_deref().map(|c| lookup(ids, c)).transpose()?;
            let timeout = s.timeout.as_ref().map(|t| {
                (
                    i64::try_from(t.after.as_millis()).unwrap_or(i64::MAX),
                    self.event_id(&t.event),
                )
            });
            let schedule = s
                .schedule
                .as_ref()
                .map(|sc| (sc.cron.clone(), self.event_id(&sc.event)));
            let mut branches = Vec::new();
            if let Some(defs) = &s.parallel {
                let prefix = format!("{}.", s.name);
                for b in defs {
                    let sub = self.add_states(&b.states, &format!("{prefix}{}.", b.name))?;
                    branches.push(lookup(&sub, &b.initial)?);
                    self.resolve(&b.states, &sub)?;
                }
            }
            let st = &mut self.states[id as usize];
            st.on = on;
            st.catch = catch;
            st.timeout = timeout;
            st.schedule = schedule;
            st.branches = branches;
        }
        Ok(())
    }

    pub fn initial(&self) -> StateId {
        self.initial
    }
    pub fn mode(&self) -> Mode {
        self.definition.mode
    }
    pub fn state_count(&self) -> usize {
        self.states.len()
    }
    /// Display name of a state (`training`, or `fit.gbdt.running` in a branch).
    pub fn state_name(&self, id: StateId) -> &str {
        self.states.get(id as usize).map_or("?", |s| &*s.path)
    }

    /// The same name, shared (no copy) for reports.
    pub fn state_name_shared(&self, id: StateId) -> Arc<str> {
        self.states
            .get(id as usize)
            .map_or_else(|| Arc::from("?"), |s| s.path.clone())
    }

    pub fn state_id(&self, path: &str) -> Option<StateId> {
        self.states
            .iter()
            .position(|s| &*s.path == path)
            .map(|i| i as StateId)
    }
    pub fn is_terminal(&self, id: StateId) -> bool {
        self.states.get(id as usize).is_some_and(|s| s.terminal)
    }
    /// Whether any state of this machine handles the event.
    pub fn knows_event(&self, event: &str) -> bool {
        self.events.contains_key(event)
    }
    /// Names of the top-level states, in definition order.
    pub fn top_states(&self) -> impl Iterator<Item = &str> {
        self.definition.states.iter().map(|s| s.name.as_str())
    }
    /// The action definition of a state, for the engine to run.
    pub fn action_of(&self, state: StateId) -> Option<&crate::definition::ActionDef> {
        self.states.get(state as usize)?.action.as_ref()
    }

    /// A new instance in the initial state, with `data` as its context.
    pub fn start(&self, data: &Value, now: i64) -> (Instance, Outcome) {
        let mut inst = Instance {
            state: self.initial,
            seq: 1,
            entered_at: now,
            context: (!data.is_null()).then(|| Box::new(data.clone())),
            extra: None,
        };
        let mut out = Outcome {
            event: "start".to_owned(),
            from: self.initial,
            to: self.initial,
            ..Default::default()
        };
        self.enter_top(&mut inst, self.initial, data, now, &mut out);
        self.settle(&mut inst, now, &mut out);
        inst.tidy();
        (inst, out)
    }

    /// Applies one input. On `Err` the instance is unchanged.
    pub fn apply(
        &self,
        inst: &mut Instance,
        input: Input<'_>,
        data: &Value,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        if let Input::Event(_) = input {
            // A named event changes nothing but `seq` before its transition
            // is chosen, so a rejection only has to restore that.
            let seq = inst.seq;
            let result = self.apply_in_place(inst, input, data, now);
            if result.is_err() {
                inst.seq = seq;
            }
            return result;
        }
        let mut work = inst.clone();
        let out = self.apply_in_place(&mut work, input, data, now)?;
        *inst = work;
        Ok(out)
    }

    fn apply_in_place(
        &self,
        inst: &mut Instance,
        input: Input<'_>,
        data: &Value,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        // Every applied input advances seq once; a rejected one is
        // discarded with the working copy.
        inst.seq += 1;
        let from = inst.state;
        let mut out = Outcome {
            from,
            to: from,
            ..Default::default()
        };
        match input {
            Input::Event(name) => {
                let Some(&ev) = self.events.get(name) else {
                    return Err(Rejection::UnknownEvent {
                        lifecycle: self.name.to_string(),
                        event: name.to_owned(),
                        known: self.event_names.join(", "),
                    });
                };
                out.event = name.to_owned();
                self.deliver(inst, ev, data, now, &mut out, None)?;
            }
            Input::TimerFired(timer) => {
                let Some(pos) = inst.timers().iter().position(|t| *t == timer) else {
                    return Err(Rejection::Stale);
                };
                let state_id = self.scope_state(inst, timer.scope);
                let st = &self.states[state_id as usize];
                match timer.kind {
                    TimerKind::Timeout => {
                        inst.extra_mut().timers.remove(pos);
                        let ev = st.timeout.map(|(_, e)| e).ok_or(Rejection::Stale)?;
                        out.event = self.event_names[ev as usize].clone();
                        self.deliver(inst, ev, data, now, &mut out, Some(timer.scope))?;
                    }
                    TimerKind::Schedule => {
                        let (cron, ev) = st.schedule.clone().ok_or(Rejection::Stale)?;
                        // Re-arm first: if the event leaves the state, the
                        // exit clears the new timer with the others.
                        let next = cron.next_after(timer.at);
                        let extra = inst.extra_mut();
                        extra.timers.remove(pos);
                        if let Some(at) = next {
                            let t = Timer {
                                kind: TimerKind::Schedule,
                                scope: ScopeRef::Top,
                                at,
                                token: timer.token,
                            };
                            extra.timers.push(t);
                            out.commands.push(Command::ArmTimer(t));
                        }
                        out.event = self.event_names[ev as usize].clone();
                        match self.deliver(inst, ev, data, now, &mut out, Some(ScopeRef::Top)) {
                            Ok(()) => {}
                            // A cadence the current state does not act on
                            // still counts as fired.
                            Err(Rejection::GuardFalse { .. } | Rejection::GuardError { .. }) => {
                                out.note = Some("schedule fired; guard false".to_owned());
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    TimerKind::Retry { attempt } => {
                        inst.extra_mut().timers.remove(pos);
                        out.event = "retry".to_owned();
                        let action = RunningAction {
                            scope: timer.scope,
                            state: state_id,
                            attempt,
                            token: inst.seq,
                        };
                        inst.extra_mut().running.push(action);
                        out.commands.push(Command::RunAction(action));
                        out.note = Some(format!("attempt {attempt}"));
                    }
                }
            }
            Input::ActionFinished { token, ok } => {
                let Some(pos) = inst.running().iter().position(|r| r.token == token) else {
                    return Err(Rejection::Stale);
                };
                let run = inst.extra_mut().running.remove(pos);
                let st = &self.states[run.state as usize];
                if ok {
                    let ev = self
                        .action_succeeded
                        .ok_or_else(|| self.not_handled(inst, builtin_events::ACTION_SUCCEEDED))?;
                    out.event = builtin_events::ACTION_SUCCEEDED.to_owned();
                    self.deliver(inst, ev, data, now, &mut out, Some(run.scope))?;
                } else {
                    let max = st.retry.as_ref().map_or(1, |r| r.max_attempts.max(1));
                    if u32::from(run.attempt) < max {
                        let wait = backoff_ms(st.retry.as_ref(), run.attempt);
                        let timer = Timer {
                            kind: TimerKind::Retry {
                                attempt: run.attempt + 1,
                            },
                            scope: run.scope,
                            at: now.saturating_add(wait),
                            token: inst.seq,
                        };
                        inst.extra_mut().timers.push(timer);
                        out.commands.push(Command::ArmTimer(timer));
                        out.event = "action_attempt_failed".to_owned();
                        out.note = Some(format!(
                            "attempt {} of {max} failed; retry in {}",
                            run.attempt,
                            crate::duration::format_duration(std::time::Duration::from_millis(
                                wait as u64
                            ))
                        ));
                    } else if let Some(target) = st.catch {
                        out.event = "action_failed".to_owned();
                        out.note = Some(format!("caught after {} attempt(s)", run.attempt));
                        self.take(inst, run.scope, target, data, &[], now, &mut out);
                    } else {
                        let ev = self
                            .action_failed
                            .ok_or_else(|| self.not_handled(inst, builtin_events::ACTION_FAILED))?;
                        out.event = builtin_events::ACTION_FAILED.to_owned();
                        self.deliver(inst, ev, data, now, &mut out, Some(run.scope))?;
                    }
                }
            }
            Input::ChildFinished { token } => {
                let extra = inst.extra.as_deref_mut().ok_or(Rejection::Stale)?;
                if extra.pending_children == 0 || extra.map_token != token {
                    return Err(Rejection::Stale);
                }
                extra.pending_children -= 1;
                out.event = "child_finished".to_owned();
                out.note = Some(format!("{} child(ren) left", inst.pending_children()));
            }
        }
        self.settle(inst, now, &mut out);
        out.to = inst.state;
        inst.tidy();
        Ok(out)
    }

    /// Follows completions that need no further input: a parallel state
    /// whose branches are all terminal, a map state with no child left.
    fn settle(&self, inst: &mut Instance, now: i64, out: &mut Outcome) {
        for _ in 0..MAX_CHAIN {
            let st = &self.states[inst.state as usize];
            let done_event = if !st.branches.is_empty() {
                let all = inst.branches().iter().all(|&b| self.is_terminal(b));
                if all { self.parallel_done } else { None }
            } else if st.map.is_some() && inst.pending_children() == 0 {
                self.map_done
            } else {
                None
            };
            let Some(ev) = done_event else { break };
            if let Some(e) = inst.extra.as_deref_mut() {
                e.branches.clear();
            }
            let name = &self.event_names[ev as usize];
            out.note = Some(match &out.note {
                Some(n) => format!("{n}; then {name}"),
                None => format!("then {name}"),
            });
            if self
                .deliver(inst, ev, &Value::Null, now, out, Some(ScopeRef::Top))
                .is_err()
            {
                break;
            }
        }
        if self.is_terminal(inst.state)
            && let Some(parent) = inst.parent().cloned()
            && !out
                .commands
                .iter()
                .any(|c| matches!(c, Command::NotifyParent { .. }))
        {
            out.commands.push(Command::NotifyParent {
                parent,
                final_state: self.state_name(inst.state).to_owned(),
            });
        }
    }

    fn scope_state(&self, inst: &Instance, scope: ScopeRef) -> StateId {
        match scope {
            ScopeRef::Top => inst.state,
            ScopeRef::Branch(b) => inst
                .branches()
                .get(b as usize)
                .copied()
                .unwrap_or(inst.state),
        }
    }

    fn not_handled(&self, inst: &Instance, event: &str) -> Rejection {
        let st = &self.states[inst.state as usize];
        Rejection::NotHandled {
            state: st.path.to_string(),
            event: event.to_owned(),
            handled: self.handled_events(inst.state).join(", "),
        }
    }

    fn handled_events(&self, state: StateId) -> Vec<&str> {
        self.states[state as usize]
            .on
            .iter()
            .map(|(e, _)| self.event_names[*e as usize].as_str())
            .collect()
    }

    /// Delivers a named event. `only` restricts it to one scope (a branch's
    /// action result or timer); otherwise the top-level state is tried
    /// first and then every branch.
    fn deliver(
        &self,
        inst: &mut Instance,
        ev: u16,
        data: &Value,
        now: i64,
        out: &mut Outcome,
        only: Option<ScopeRef>,
    ) -> Result<(), Rejection> {
        if self.is_terminal(inst.state) {
            return Err(Rejection::Terminal {
                state: self.state_name(inst.state).to_owned(),
            });
        }
        let top_result = if matches!(only, None | Some(ScopeRef::Top)) {
            Some(self.choose(inst, inst.state, ev, data)?)
        } else {
            None
        };
        if let Some(Some(t)) = top_result {
            self.take(inst, ScopeRef::Top, t.target, data, &t.assign, now, out);
            return Ok(());
        }
        // Branches.
        let mut moved = false;
        let mut first_rejection = None;
        let n = inst.branches().len();
        for b in 0..n {
            if let Some(ScopeRef::Branch(x)) = only
                && x as usize != b
            {
                continue;
            }
            let cur = inst.branches()[b];
            if self.is_terminal(cur) {
                continue;
            }
            match self.choose(inst, cur, ev, data) {
                Ok(Some(t)) => {
                    moved = true;
                    self.take(
                        inst,
                        ScopeRef::Branch(b as u16),
                        t.target,
                        data,
                        &t.assign,
                        now,
                        out,
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    first_rejection.get_or_insert(e);
                }
            }
        }
        if moved {
            return Ok(());
        }
        Err(first_rejection.unwrap_or_else(|| {
            let state = self.scope_state(inst, only.unwrap_or(ScopeRef::Top));
            Rejection::NotHandled {
                state: self.state_name(state).to_owned(),
                event: self.event_names[ev as usize].clone(),
                handled: self.handled_events(state).join(", "),
            }
        }))
    }

    /// Picks the transition of `state` for `ev`: `Ok(None)` when the state
    /// does not handle it, an error when every guard is false or fails.
    fn choose(
        &self,
        inst: &Instance,
        state: StateId,
        ev: u16,
        data: &Value,
    ) -> Result<Option<&Transition>, Rejection> {
        let st = &self.states[state as usize];
        let Some((_, list)) = st.on.iter().find(|(e, _)| *e == ev) else {
            return Ok(None);
        };
        let scope = Scope {
            event: data,
            context: inst.context_value(),
            item: None,
            index: None,
        };
        let mut rejection = None;
        for t in list {
            match &t.guard {
                None => return Ok(Some(t)),
                Some((expr, source)) => match expr.eval_bool(&scope) {
                    Ok(true) => return Ok(Some(t)),
                    Ok(false) => {
                        rejection.get_or_insert(Rejection::GuardFalse {
                            state: st.path.to_string(),
                            event: self.event_names[ev as usize].clone(),
                            guard: source.clone(),
                        });
                    }
                    Err(e) => {
                        rejection.get_or_insert(Rejection::GuardError {
                            state: st.path.to_string(),
                            event: self.event_names[ev as usize].clone(),
                            message: e.to_string(),
                        });
                    }
                },
            }
        }
        Err(rejection.unwrap_or(Rejection::Stale))
    }

    /// Takes a transition in `scope` to `target`: assignments, exit of the
    /// old state (its timers and actions are dropped), entry of the new.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        inst: &mut Instance,
        scope: ScopeRef,
        target: StateId,
        data: &Value,
        assign: &[(String, Expr)],
        now: i64,
        out: &mut Outcome,
    ) {
        if !assign.is_empty() {
            let mut ctx = match inst.context.take() {
                Some(b) if b.is_object() => *b,
                _ => Value::Object(Default::default()),
            };
            for (field, expr) in assign {
                let value = {
                    let scope = Scope {
                        event: data,
                        context: &ctx,
                        item: None,
                        index: None,
                    };
                    expr.eval(&scope).unwrap_or(Value::Null)
                };
                if let Value::Object(map) = &mut ctx {
                    map.insert(field.clone(), value);
                }
            }
            inst.context = Some(Box::new(ctx));
        }
        match scope {
            ScopeRef::Top => {
                if let Some(e) = inst.extra.as_deref_mut() {
                    e.timers.clear();
                    e.running.clear();
                    e.branches.clear();
                    e.pending_children = 0;
                }
                self.enter_top(inst, target, data, now, out);
            }
            ScopeRef::Branch(b) => {
                let extra = inst.extra_mut();
                extra.timers.retain(|t| t.scope != scope);
                extra.running.retain(|r| r.scope != scope);
                let from = extra.branches[b as usize];
                extra.branches[b as usize] = target;
                out.branch_moves.push((b, from, target));
                self.enter_inner(inst, scope, target, now, out);
            }
        }
    }

    fn enter_top(
        &self,
        inst: &mut Instance,
        target: StateId,
        data: &Value,
        now: i64,
        out: &mut Outcome,
    ) {
        inst.state = target;
        inst.entered_at = now;
        self.enter_inner(inst, ScopeRef::Top, target, now, out);
        let st = &self.states[target as usize];
        if let Some((cron, _)) = &st.schedule
            && let Some(at) = cron.next_after(now)
        {
            let t = Timer {
                kind: TimerKind::Schedule,
                scope: ScopeRef::Top,
                at,
                token: inst.seq,
            };
            inst.extra_mut().timers.push(t);
            out.commands.push(Command::ArmTimer(t));
        }
        if !st.branches.is_empty() {
            let initials = st.branches.clone();
            inst.extra_mut().branches = initials.clone();
            for (b, s) in initials.into_iter().enumerate() {
                self.enter_inner(inst, ScopeRef::Branch(b as u16), s, now, out);
            }
        }
        if let Some(map) = &st.map {
            self.start_children(inst, map, data, out);
        }
    }

    /// Entry of a state in one scope: its action and its timeout.
    fn enter_inner(
        &self,
        inst: &mut Instance,
        scope: ScopeRef,
        target: StateId,
        now: i64,
        out: &mut Outcome,
    ) {
        let st = &self.states[target as usize];
        if st.action.is_some() {
            let action = RunningAction {
                scope,
                state: target,
                attempt: 1,
                token: inst.seq,
            };
            inst.extra_mut().running.push(action);
            out.commands.push(Command::RunAction(action));
        }
        if let Some((after, _)) = st.timeout {
            let t = Timer {
                kind: TimerKind::Timeout,
                scope,
                at: now.saturating_add(after),
                token: inst.seq,
            };
            inst.extra_mut().timers.push(t);
            out.commands.push(Command::ArmTimer(t));
        }
    }

    fn start_children(&self, inst: &mut Instance, map: &MapDef, data: &Value, out: &mut Outcome) {
        let context = inst.context_value().clone();
        let scope = Scope {
            event: data,
            context: &context,
            item: None,
            index: None,
        };
        let items = match map.items.expr.eval(&scope) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                out.note = Some(format!(
                    "map items `{}` gave {}, not a list; no child started",
                    map.items.source,
                    kind_of(&other)
                ));
                Vec::new()
            }
            Err(e) => {
                out.note = Some(format!(
                    "map items `{}` failed: {e}; no child started",
                    map.items.source
                ));
                Vec::new()
            }
        };
        let token = inst.seq;
        let mut started = 0u32;
        for (index, item) in items.iter().enumerate() {
            let suffix = match &map.key {
                Some(k) => {
                    let scope = Scope {
                        event: data,
                        context: &context,
                        item: Some(item),
                        index: Some(index as u64),
                    };
                    match k.expr.eval(&scope) {
                        Ok(Value::String(s)) => s,
                        Ok(Value::Null) | Err(_) => index.to_string(),
                        Ok(v) => v.to_string(),
                    }
                }
                None => index.to_string(),
            };
            out.commands.push(Command::StartChild {
                lifecycle: map.lifecycle.clone(),
                key: suffix,
                data: item.clone(),
                parent_token: token,
            });
            started += 1;
        }
        let extra = inst.extra_mut();
        extra.pending_children = started;
        extra.map_token = token;
    }
}

fn lookup(ids: &HashMap<String, StateId>, name: &str) -> Result<StateId, String> {
    ids.get(name)
        .copied()
        .ok_or_else(|| format!("unknown state `{name}`"))
}

/// Wait before attempt `failed_attempt + 1`: backoff × multiplier^(n-1),
/// capped by max_backoff.
fn backoff_ms(retry: Option<&RetryPolicy>, failed_attempt: u16) -> i64 {
    let Some(r) = retry else { return 0 };
    let base = r.backoff.as_millis() as f64;
    let factor = r
        .multiplier
        .max(1.0)
        .powi(i32::from(failed_attempt.saturating_sub(1)));
    let mut wait = base * factor;
    if let Some(max) = r.max_backoff {
        wait = wait.min(max.as_millis() as f64);
    }
    if wait.is_finite() {
        wait.min(i64::MAX as f64) as i64
    } else {
        i64::MAX
    }
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine(yaml: &str) -> Machine {
        let def = crate::parse::parse_definition(yaml, &["command", "http", "emit"])
            .unwrap_or_else(|e| panic!("{e}"));
        Machine::compile(def, 1, Arc::from(yaml)).unwrap()
    }

    fn name(m: &Machine, i: &Instance) -> String {
        m.state_name(i.state).to_owned()
    }

    const T0: i64 = 1_764_360_000_000; // 2025-11-28T20:00:00Z, a Friday

    #[test]
    fn a_rejected_event_leaves_the_instance_as_it_was() {
        let m = machine(
            "lifecycle: g\ninitial: a\nstates:\n  a:\n    on:\n      go: {target: b, guard: \"event.x > 1\"}\n  b: {terminal: true}\n",
        );
        let (mut i, _) = m.start(&Value::Null, T0);
        let before = i.clone();
        let r = m.apply(&mut i, Input::Event("go"), &json!({"x": 0}), T0);
        assert!(matches!(r, Err(Rejection::GuardFalse { .. })), "{r:?}");
        let r = m.apply(&mut i, Input::Event("go"), &json!({}), T0);
        assert!(matches!(r, Err(Rejection::GuardError { .. })), "{r:?}");
        assert!(matches!(
            m.apply(&mut i, Input::Event("nope"), &Value::Null, T0),
            Err(Rejection::UnknownEvent { .. })
        ));
        assert_eq!(i, before);
        m.apply(&mut i, Input::Event("go"), &json!({"x": 2}), T0)
            .unwrap();
        assert_eq!(name(&m, &i), "b");
        assert!(matches!(
            m.apply(&mut i, Input::Event("go"), &json!({"x": 2}), T0),
            Err(Rejection::Terminal { .. })
        ));
    }

    #[test]
    fn timeouts_fire_once_and_leaving_the_state_makes_them_stale() {
        let m = machine(
            "lifecycle: t\ninitial: wait\nstates:\n  wait:\n    timeout: {after: 1m, event: late}\n    on: {late: gone, ok: done}\n  gone: {terminal: true}\n  done: {terminal: true}\n",
        );
        let (mut i, out) = m.start(&Value::Null, T0);
        let Command::ArmTimer(t) = out.commands[0] else {
            panic!("{out:?}")
        };
        assert_eq!(t.at, T0 + 60_000);
        let mut other = i.clone();
        m.apply(&mut other, Input::Event("ok"), &Value::Null, T0 + 1)
            .unwrap();
        assert!(other.timers().is_empty());
        assert_eq!(
            m.apply(&mut other, Input::TimerFired(t), &Value::Null, t.at),
            Err(Rejection::Stale)
        );
        let out = m
            .apply(&mut i, Input::TimerFired(t), &Value::Null, t.at)
            .unwrap();
        assert_eq!(
            (out.event.as_str(), name(&m, &i).as_str()),
            ("late", "gone")
        );
        assert_eq!(
            m.apply(&mut i, Input::TimerFired(t), &Value::Null, t.at),
            Err(Rejection::Stale)
        );
    }

    #[test]
    fn a_schedule_rearms_from_its_own_fire_time() {
        let m = machine(
            "lifecycle: s\ninitial: live\nstates:\n  live:\n    schedule: {cron: \"0 3 * * 1\", event: due}\n    on:\n      due: {target: live, guard: \"context.retrain == true\"}\n      stop: done\n  done: {terminal: true}\n",
        );
        let (mut i, out) = m.start(&Value::Null, T0);
        let Command::ArmTimer(t) = out.commands[0] else {
            panic!()
        };
        // Monday 2025-12-01 03:00 UTC.
        assert_eq!(t.at, 1_764_558_000_000);
        // The guard is false: the schedule still fires and re-arms a week on.
        let out = m
            .apply(&mut i, Input::TimerFired(t), &Value::Null, t.at + 5)
            .unwrap();
        assert_eq!(name(&m, &i), "live");
        assert_eq!(i.timers().len(), 1);
        assert_eq!(i.timers()[0].at, t.at + 7 * 86_400_000);
        assert!(out.note.as_deref().unwrap_or("").contains("guard false"));
    }

    #[test]
    fn retries_wait_with_backoff_then_fail_or_catch() {
        let y = "lifecycle: r\ninitial: work\nstates:\n  work:\n    action: {command: x}\n    retry: {max_attempts: 3, backoff: 10s, multiplier: 3, max_backoff: 20s}\n    on: {action_succeeded: ok, action_failed: bad}\n  ok: {terminal: true}\n  bad: {terminal: true}\n";
        let m = machine(y);
        let (mut i, out) = m.start(&Value::Null, T0);
        let Command::RunAction(run) = out.commands[0] else {
            panic!()
        };
        let mut now = T0;
        let mut waits = Vec::new();
        let mut token = run.token;
        for attempt in 1..=3u16 {
            let out = m
                .apply(
                    &mut i,
                    Input::ActionFinished { token, ok: false },
                    &Value::Null,
                    now,
                )
                .unwrap();
            if attempt == 3 {
                assert_eq!(
                    (out.event.as_str(), name(&m, &i).as_str()),
                    ("action_failed", "bad")
                );
                break;
            }
            let Command::ArmTimer(t) = out.commands[0] else {
                panic!("{out:?}")
            };
            waits.push(t.at - now);
            now = t.at;
            let out = m
                .apply(&mut i, Input::TimerFired(t), &Value::Null, now)
                .unwrap();
            let Command::RunAction(run) = out.commands[0] else {
                panic!("{out:?}")
            };
            assert_eq!(run.attempt, attempt + 1);
            token = run.token;
        }
        // 10 s, then 30 s capped at 20 s.
        assert_eq!(waits, [10_000, 20_000]);
        // With catch, the last failure moves to the catch state instead.
        let m = machine(
            &y.replace(
                "    on: {action_succeeded: ok, action_failed: bad}",
                "    catch: bad\n    on: {action_succeeded: ok}",
            )
            .replace("max_attempts: 3", "max_attempts: 1"),
        );
        let (mut i, out) = m.start(&Value::Null, T0);
        let Command::RunAction(run) = out.commands[0] else {
            panic!()
        };
        m.apply(
            &mut i,
            Input::ActionFinished {
                token: run.token,
                ok: false,
            },
            &Value::Null,
            T0,
        )
        .unwrap();
        assert_eq!(name(&m, &i), "bad");
    }

    #[test]
    fn parallel_branches_join_and_an_empty_map_finishes_at_once() {
        let m = machine(
            "lifecycle: p\ninitial: go\nstates:\n  go:\n    parallel:\n      a:\n        initial: a1\n        states:\n          a1: {on: {x: a2}}\n          a2: {terminal: true}\n      b:\n        initial: b1\n        states:\n          b1: {on: {x: b2, y: b2}}\n          b2: {terminal: true}\n    on: {parallel_done: fan}\n  fan:\n    map: {items: \"context.items\", lifecycle: p}\n    on: {map_done: end}\n  end: {terminal: true}\n",
        );
        let (mut i, _) = m.start(&json!({"items": []}), T0);
        assert_eq!(i.branches().len(), 2);
        let out = m
            .apply(&mut i, Input::Event("y"), &Value::Null, T0)
            .unwrap();
        assert_eq!(out.branch_moves.len(), 1);
        assert_eq!(name(&m, &i), "go");
        // `x` moves branch a (b has already finished): both done → join →
        // the map has no item → map_done → end, all on one input.
        m.apply(&mut i, Input::Event("x"), &Value::Null, T0)
            .unwrap();
        assert_eq!(name(&m, &i), "end");
        assert!(i.extra.is_none(), "{i:?}");
    }

    #[test]
    fn a_map_waits_for_every_child_and_ignores_strangers() {
        let m = machine(
            "lifecycle: p\ninitial: fan\nstates:\n  fan:\n    map: {items: \"context.items\", lifecycle: p, key: \"item.id\"}\n    on: {map_done: end}\n  end: {terminal: true}\n",
        );
        let (mut i, out) = m.start(&json!({"items": [{"id": "eu"}, {"id": "us"}]}), T0);
        let keys: Vec<&str> = out
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::StartChild { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(keys, ["eu", "us"]);
        let token = i.extra.as_ref().unwrap().map_token;
        assert_eq!(
            m.apply(
                &mut i,
                Input::ChildFinished { token: token + 7 },
                &Value::Null,
                T0
            ),
            Err(Rejection::Stale)
        );
        m.apply(&mut i, Input::ChildFinished { token }, &Value::Null, T0)
            .unwrap();
        assert_eq!(name(&m, &i), "fan");
        m.apply(&mut i, Input::ChildFinished { token }, &Value::Null, T0)
            .unwrap();
        assert_eq!(name(&m, &i), "end");
    }
}
