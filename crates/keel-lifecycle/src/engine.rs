//! The embedded engine: every instance in memory, one writer thread that
//! applies inputs in batches and makes each batch durable with one frame
//! and one fsync (group commit), a timer thread, and actions on the tokio
//! runtime.
//!
//! Flow of one batch: the writer takes every queued operation, applies them
//! to the in-memory state under the write lock (the pure
//! [`Machine::apply`]), encodes a log record per applied input, releases
//! the lock, writes and fsyncs the frame, publishes the new durable
//! position, and only then answers the callers, arms timers and starts
//! actions. Inputs an input causes (an `emit`, a map's children, a child's
//! report to its parent) are applied in the same batch, so they are in the
//! same frame as their cause: all durable or none.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::actions::{ActionRegistry, ActionRequest, EMIT};
use crate::definition::Mode;
use crate::error::LifecycleError;
use crate::log::{self, LogPos, LogWriter, Record, RecordInput};
use crate::machine::{
    Command, Input, Instance, Machine, Outcome, ParentRef, Rejection, RunningAction, Timer,
};
use crate::snapshot;

/// Engine settings.
#[derive(Clone)]
pub struct EngineOptions {
    /// Directory of the log, snapshots and archive.
    pub dir: PathBuf,
    /// fsync each group commit (default). Off, an acknowledged event
    /// survives a crash of the process but not of the machine.
    pub fsync: bool,
    /// Write a snapshot once this many log bytes follow the last one.
    pub snapshot_bytes: u64,
    /// Start a new log segment past this size.
    pub segment_bytes: u64,
    /// Timer-queue entries (stale ones included) tolerated before the
    /// queue is rebuilt from the instances' timers; then twice the live
    /// count, at least this.
    pub timer_compaction: usize,
    /// Largest `data` of one event or start, in bytes of JSON.
    pub max_payload_bytes: usize,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
    pub actions: ActionRegistry,
    /// Where actions run.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Fire timers and run actions (a server). Off for a command-line
    /// tool that opens the store for one request: what is due waits for
    /// the server.
    pub background: bool,
}

impl EngineOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EngineOptions {
            dir: dir.into(),
            fsync: true,
            snapshot_bytes: 64 << 20,
            segment_bytes: log::SEGMENT_BYTES,
            timer_compaction: 1 << 20,
            max_payload_bytes: 64 * 1024,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            actions: ActionRegistry::default(),
            runtime: None,
            background: true,
        }
    }
}

/// Which instances an event goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// One key: in one lifecycle, or in every lifecycle that has an
    /// instance with this key and uses the event.
    Key {
        lifecycle: Option<String>,
        key: String,
    },
    /// Every instance of a lifecycle whose key starts with the prefix.
    Prefix { lifecycle: String, prefix: String },
    /// Every instance of a lifecycle in the given state.
    State { lifecycle: String, state: String },
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub event: String,
    pub target: Target,
    pub data: Value,
    pub idempotency_key: Option<String>,
}

/// One instance's move.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moved {
    pub lifecycle: Arc<str>,
    pub key: Arc<str>,
    pub from: Arc<str>,
    pub to: Arc<str>,
}

/// What a send did. Lists are capped at [`REPORT_LIMIT`] entries.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SendReport {
    pub matched: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub moved: Vec<Moved>,
    pub rejected: Vec<RejectedSend>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RejectedSend {
    pub lifecycle: String,
    pub key: String,
    pub reason: String,
}

pub const REPORT_LIMIT: usize = 100;

/// A started (or already running) instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Started {
    pub created: bool,
    pub instance: InstanceView,
}

/// An applied definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Applied {
    pub lifecycle: String,
    pub version: u32,
    /// False when the text equals the latest version's.
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimerView {
    pub kind: String,
    pub at: i64,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceView {
    pub lifecycle: String,
    pub key: String,
    pub version: u32,
    pub state: String,
    pub terminal: bool,
    pub branches: Vec<String>,
    pub context: Value,
    /// Inputs applied so far.
    pub seq: u64,
    pub entered_at: i64,
    pub timers: Vec<TimerView>,
    pub running_actions: Vec<String>,
    pub pending_children: u32,
    pub parent: Option<String>,
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    pub time: i64,
    pub kind: &'static str,
    pub event: String,
    pub from: String,
    pub to: String,
    pub data: Value,
    pub note: String,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub state: Option<String>,
    pub prefix: Option<String>,
    pub limit: usize,
    /// Keys after this one (the previous page's `next`).
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListPage {
    pub instances: Vec<InstanceView>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LifecycleStats {
    pub lifecycle: String,
    pub latest_version: u32,
    pub mode: &'static str,
    pub instances: u64,
    /// Instances per state (all versions), in definition order.
    pub states: Vec<StateCount>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StateCount {
    pub state: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EngineStats {
    pub lifecycles: usize,
    pub instances: u64,
    pub pending_timers: usize,
    pub inputs_applied: u64,
    pub log_position: String,
    pub log_segment_bytes: u64,
    pub snapshots_written: u64,
    pub recovered_records: u64,
    pub recovery_ms: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DefinitionSummary {
    pub lifecycle: String,
    pub latest_version: u32,
    pub mode: &'static str,
    pub description: Option<String>,
    pub instances: u64,
}

// ---------------------------------------------------------------------
// State

pub(crate) struct DefSlot {
    pub name: Arc<str>,
    pub versions: Vec<Arc<Machine>>,
    /// key → slot. A hash map: point lookups are the hot path (every
    /// event); ordered listings scan and sort the matching keys instead.
    pub keys: HashMap<Arc<str>, u32>,
    /// counts[version - 1][state id]
    pub counts: Vec<Vec<u64>>,
}

impl DefSlot {
    /// The (version, state id) pairs a state name has across this
    /// lifecycle's versions; an error naming the states when none has it.
    pub(crate) fn state_ids(&self, state: &str) -> Result<Vec<(u32, u16)>, LifecycleError> {
        let ids: Vec<(u32, u16)> = self
            .versions
            .iter()
            .filter_map(|m| m.state_id(state).map(|id| (m.version, id)))
            .collect();
        if ids.is_empty() {
            return Err(LifecycleError::invalid(
                "state",
                format!(
                    "lifecycle `{}` has no state `{state}`; its states are: {}",
                    self.name,
                    self.latest().top_states().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(ids)
    }

    /// Slots whose key starts with `prefix` (and sorts after `after`), in
    /// key order.
    pub(crate) fn keys_with_prefix(&self, prefix: &str, after: Option<&str>) -> Vec<(&str, u32)> {
        let mut found: Vec<(&str, u32)> = self
            .keys
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| &***k > a))
            .map(|(k, &s)| (&**k, s))
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(b.0));
        found
    }

    pub fn latest(&self) -> &Arc<Machine> {
        // A slot is only created with its first version.
        &self.versions[self.versions.len() - 1]
    }
}

pub(crate) struct Slot {
    pub def: u32,
    pub version: u32,
    pub key: Arc<str>,
    pub last_pos: LogPos,
    pub inst: Instance,
}

#[derive(Default)]
pub(crate) struct IdempotencyTable {
    pub seen: HashMap<u128, i64>,
    pub order: VecDeque<(i64, u128)>,
}

impl IdempotencyTable {
    fn insert(&mut self, h: u128, expires: i64) {
        if self.seen.insert(h, expires).is_none() {
            self.order.push_back((expires, h));
        }
    }
    fn expire(&mut self, now: i64) {
        while let Some(&(at, h)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&h) == Some(&at) {
                self.seen.remove(&h);
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub defs: Vec<DefSlot>,
    pub def_ids: HashMap<Arc<str>, u32>,
    pub slots: Vec<Slot>,
    pub idem: IdempotencyTable,
    pub inputs_applied: u64,
}

/// 128-bit FNV-1a of an instance and an idempotency key: fixed, so the
/// table survives restarts through the log and snapshots.
pub(crate) fn idempotency_hash(lifecycle: &str, key: &str, idem: &str) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for part in [
        lifecycle.as_bytes(),
        &[0],
        key.as_bytes(),
        &[0],
        idem.as_bytes(),
    ] {
        for &b in part {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// How an input reaches an instance: live (logged, with effects) or replay
/// (already in the log).
enum Pass {
    Live,
    Replay(LogPos),
}

enum Internal {
    Emit {
        source: u32,
        token: u64,
        config: Value,
    },
    StartChild {
        lifecycle: String,
        key: String,
        data: Value,
        parent: ParentRef,
    },
    NotifyParent {
        parent: ParentRef,
        child_key: String,
        final_state: String,
    },
}

pub(crate) enum Effect {
    Arm {
        slot: u32,
        at: i64,
    },
    Run {
        slot: u32,
        token: u64,
        request: ActionRequest,
        kind: String,
    },
}

/// One group commit in the making.
pub(crate) struct Batch {
    pub now: i64,
    pub base: LogPos,
    pub body: Vec<u8>,
    pub effects: Vec<Effect>,
    internal: VecDeque<Internal>,
    pub idem_ttl: i64,
    /// In a cluster: which keys this node owns. Inputs for other keys go
    /// to `remote` (the owner's inbox) instead of being applied here.
    pub routing: Option<Routing>,
    pub remote: Vec<RemoteOp>,
    /// Why the input being applied happened, when another lifecycle caused
    /// it (an emit, a map, a child): kept in the history note.
    cause: Option<String>,
}

/// The partitions a cluster node owns.
#[derive(Debug, Clone)]
pub(crate) struct Routing {
    pub partitions: u32,
    pub owned: std::collections::HashSet<u32>,
}

impl Routing {
    pub fn is_local(&self, key: &str) -> bool {
        self.owned.contains(&partition_of(key, self.partitions))
    }
}

/// The partition of a key: every lifecycle of one key lives in the same
/// partition, so an event sent to a key needs one owner.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

/// An input for an instance another node owns.
#[derive(Debug, Clone)]
pub(crate) enum RemoteOp {
    Event {
        lifecycle: String,
        key: String,
        event: String,
        data: Value,
    },
    Start {
        lifecycle: String,
        key: String,
        data: Value,
        parent: ParentRef,
    },
    Child {
        parent: ParentRef,
        data: Value,
    },
}

impl Batch {
    pub(crate) fn new(now: i64, base: LogPos, idem_ttl: i64, routing: Option<Routing>) -> Batch {
        Batch {
            now,
            base,
            body: Vec::new(),
            effects: Vec::new(),
            internal: VecDeque::new(),
            idem_ttl,
            routing,
            remote: Vec::new(),
            cause: None,
        }
    }

    fn is_remote(&self, key: &str) -> bool {
        self.routing.as_ref().is_some_and(|r| !r.is_local(key))
    }
}

impl Batch {
    fn record(&mut self, r: &Record<'_>) -> LogPos {
        let p = self.base + self.body.len() as u64;
        match self.cause.as_deref() {
            Some(cause) => {
                let note = if r.note.is_empty() {
                    cause.to_owned()
                } else {
                    format!("{cause}; {}", r.note)
                };
                log::encode(
                    &mut self.body,
                    &Record {
                        note: &note,
                        ..r.clone()
                    },
                );
            }
            None => log::encode(&mut self.body, r),
        }
        p
    }
}

impl State {
    fn def_id(&self, name: &str) -> Option<u32> {
        self.def_ids.get(name).copied()
    }

    fn machine(&self, slot: &Slot) -> &Arc<Machine> {
        &self.defs[slot.def as usize].versions[slot.version as usize - 1]
    }

    pub(crate) fn find(&self, lifecycle: &str, key: &str) -> Option<u32> {
        let def = self.def_id(lifecycle)?;
        self.defs[def as usize].keys.get(key).copied()
    }

    /// Applies a definition's text; a new version when it differs.
    fn define(
        &mut self,
        source: &str,
        known_actions: &[&str],
        batch: Option<&mut Batch>,
        replay_version: Option<u32>,
    ) -> Result<Applied, LifecycleError> {
        let def = crate::parse::parse_definition(source, known_actions)?;
        // A replayed version was checked when it was applied; replay order
        // (a cluster node loading definitions by name) need not be the
        // order they were applied in.
        if replay_version.is_none()
            && let Some(map_child) = first_unknown_map_child(&def, |n| self.def_ids.contains_key(n))
        {
            return Err(LifecycleError::invalid(
                "definition",
                format!(
                    "state `{}` maps over lifecycle `{}`, which does not exist; apply that definition first",
                    map_child.0, map_child.1
                ),
            ));
        }
        let name: Arc<str> = Arc::from(def.name.as_str());
        let existing = self.def_id(&name);
        if let Some(id) = existing {
            let latest = self.defs[id as usize].latest();
            if replay_version.is_none() && &*latest.source == source {
                return Ok(Applied {
                    lifecycle: name.to_string(),
                    version: latest.version,
                    changed: false,
                });
            }
        }
        let version = match existing {
            Some(id) => self.defs[id as usize].versions.len() as u32 + 1,
            None => 1,
        };
        if let Some(v) = replay_version
            && v != version
        {
            return Err(LifecycleError::Replay(format!(
                "definition `{name}` version {v} replayed as version {version}"
            )));
        }
        let machine = Arc::new(
            Machine::compile(def, version, Arc::from(source))
                .map_err(|m| LifecycleError::invalid("definition", m))?,
        );
        let states = machine.state_count();
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.defs.len() as u32;
                self.defs.push(DefSlot {
                    name: name.clone(),
                    versions: Vec::new(),
                    keys: HashMap::new(),
                    counts: Vec::new(),
                });
                self.def_ids.insert(name.clone(), id);
                id
            }
        };
        let slot = &mut self.defs[id as usize];
        slot.versions.push(machine);
        slot.counts.push(vec![0; states]);
        if let Some(batch) = batch {
            batch.record(&Record {
                time: batch.now,
                lifecycle: &name,
                key: "",
                prev: 0,
                idempotency: None,
                input: RecordInput::Define { version, source },
                data: std::borrow::Cow::Owned(Value::Null),
                from: "",
                to: "",
                note: "",
            });
        }
        Ok(Applied {
            lifecycle: name.to_string(),
            version,
            changed: true,
        })
    }

    /// Starts an instance on the latest version (live) or the logged one
    /// (replay). Returns the slot and whether it is new.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        def: u32,
        key: &str,
        data: &Value,
        parent: Option<ParentRef>,
        idempotency: Option<u128>,
        pass: Pass,
        batch: &mut Batch,
        replay_version: Option<u32>,
    ) -> Result<(u32, bool), LifecycleError> {
        let dslot = &self.defs[def as usize];
        if let Some(&slot) = dslot.keys.get(key) {
            return Ok((slot, false));
        }
        let machine = match replay_version {
            Some(v) => dslot.versions.get(v as usize - 1).cloned().ok_or_else(|| {
                LifecycleError::Replay(format!("start of `{}` on unknown version {v}", dslot.name))
            })?,
            None => dslot.latest().clone(),
        };
        let (mut inst, out) = machine.start(data, batch.now);
        if let Some(p) = parent.clone() {
            inst.extra.get_or_insert_with(Default::default).parent = Some(Box::new(p));
        }
        let key: Arc<str> = Arc::from(key);
        let slot_id = self.slots.len() as u32;
        let durable = machine.mode() == Mode::Durable;
        let last_pos = match pass {
            Pass::Replay(p) => p,
            Pass::Live if durable => batch.record(&Record {
                time: batch.now,
                lifecycle: &dslot.name,
                key: &key,
                prev: 0,
                idempotency,
                input: RecordInput::Start {
                    version: machine.version,
                    parent,
                },
                data: std::borrow::Cow::Borrowed(data),
                from: "",
                to: machine.state_name(inst.state),
                note: out.note.as_deref().unwrap_or(""),
            }),
            Pass::Live => 0,
        };
        let dslot = &mut self.defs[def as usize];
        dslot.keys.insert(key.clone(), slot_id);
        dslot.counts[machine.version as usize - 1][inst.state as usize] += 1;
        self.slots.push(Slot {
            def,
            version: machine.version,
            key,
            last_pos,
            inst,
        });
        if let Some(h) = idempotency {
            self.idem.insert(h, batch.now + batch.idem_ttl);
        }
        self.inputs_applied += 1;
        if matches!(pass, Pass::Live) {
            self.follow_up(slot_id, &machine, out.commands, batch);
        }
        Ok((slot_id, true))
    }

    /// Applies one input to one instance.
    fn apply(
        &mut self,
        slot_id: u32,
        input: Input<'_>,
        data: &Value,
        idempotency: Option<u128>,
        pass: Pass,
        batch: &mut Batch,
    ) -> Result<Outcome, Rejection> {
        let slot = &self.slots[slot_id as usize];
        let machine = self.machine(slot).clone();
        let slot = &mut self.slots[slot_id as usize];
        let out = machine.apply(&mut slot.inst, input, data, batch.now)?;
        let durable = machine.mode() == Mode::Durable;
        match pass {
            Pass::Replay(p) => slot.last_pos = p,
            Pass::Live if durable => {
                let dname = &self.defs[slot.def as usize].name;
                let rinput = match input {
                    Input::Event(name) => RecordInput::Event { name },
                    Input::TimerFired(t) => RecordInput::Timer(t),
                    Input::ActionFinished { token, ok } => RecordInput::Action { token, ok },
                    Input::ChildFinished { token } => RecordInput::Child { token },
                };
                slot.last_pos = batch.record(&Record {
                    time: batch.now,
                    lifecycle: dname,
                    key: &slot.key,
                    prev: slot.last_pos,
                    idempotency,
                    input: rinput,
                    data: std::borrow::Cow::Borrowed(data),
                    from: machine.state_name(out.from),
                    to: machine.state_name(out.to),
                    note: out.note.as_deref().unwrap_or(""),
                });
            }
            Pass::Live => {}
        }
        if out.from != out.to {
            let counts = &mut self.defs[slot.def as usize].counts[slot.version as usize - 1];
            counts[out.from as usize] -= 1;
            counts[out.to as usize] += 1;
        }
        if let Some(h) = idempotency {
            self.idem.insert(h, batch.now + batch.idem_ttl);
        }
        self.inputs_applied += 1;
        let mut out = out;
        if matches!(pass, Pass::Live) {
            let commands = std::mem::take(&mut out.commands);
            self.follow_up(slot_id, &machine, commands, batch);
        }
        Ok(out)
    }

    /// Turns an outcome's commands into effects (after the commit) and
    /// internal inputs (in this batch).
    fn follow_up(
        &mut self,
        slot_id: u32,
        machine: &Machine,
        commands: Vec<Command>,
        batch: &mut Batch,
    ) {
        let slot = &self.slots[slot_id as usize];
        for cmd in commands {
            match cmd {
                Command::ArmTimer(t) => batch.effects.push(Effect::Arm {
                    slot: slot_id,
                    at: t.at,
                }),
                Command::RunAction(run) => {
                    let Some(action) = machine.action_of(run.state) else {
                        continue;
                    };
                    if action.kind == EMIT {
                        batch.internal.push_back(Internal::Emit {
                            source: slot_id,
                            token: run.token,
                            config: action.config.clone(),
                        });
                    } else {
                        batch.effects.push(Effect::Run {
                            slot: slot_id,
                            token: run.token,
                            kind: action.kind.clone(),
                            request: action_request(
                                machine,
                                &self.defs[slot.def as usize].name,
                                slot,
                                run,
                                action,
                            ),
                        });
                    }
                }
                Command::StartChild {
                    lifecycle,
                    key,
                    data,
                    parent_token,
                } => batch.internal.push_back(Internal::StartChild {
                    lifecycle,
                    key: format!("{}/{key}", slot.key),
                    data,
                    parent: ParentRef {
                        lifecycle: self.defs[slot.def as usize].name.to_string(),
                        key: slot.key.to_string(),
                        token: parent_token,
                    },
                }),
                Command::NotifyParent {
                    parent,
                    final_state,
                } => batch.internal.push_back(Internal::NotifyParent {
                    parent,
                    child_key: slot.key.to_string(),
                    final_state,
                }),
            }
        }
    }

    /// Runs the inputs that inputs of this batch caused, until none is left.
    fn drain_internal(&mut self, batch: &mut Batch) {
        while let Some(item) = batch.internal.pop_front() {
            match item {
                Internal::Emit {
                    source,
                    token,
                    config,
                } => {
                    let result = self.emit(source, &config, batch);
                    let (ok, data) = match result {
                        Ok(report) => (true, json!({"delivered": report})),
                        Err(message) => (false, json!({"error": message})),
                    };
                    let _ = self.apply(
                        source,
                        Input::ActionFinished { token, ok },
                        &data,
                        None,
                        Pass::Live,
                        batch,
                    );
                }
                Internal::StartChild {
                    lifecycle,
                    key,
                    data,
                    parent,
                } => {
                    if batch.is_remote(&key) {
                        batch.remote.push(RemoteOp::Start {
                            lifecycle,
                            key,
                            data,
                            parent,
                        });
                        continue;
                    }
                    let Some(def) = self.def_id(&lifecycle) else {
                        continue;
                    };
                    let previous = batch.cause.replace(format!(
                        "started by the map of {}/{}",
                        parent.lifecycle, parent.key
                    ));
                    let started = self.start(
                        def,
                        &key,
                        &data,
                        Some(parent.clone()),
                        None,
                        Pass::Live,
                        batch,
                        None,
                    );
                    batch.cause = previous;
                    if let Ok((slot, created)) = started
                        && !created
                    {
                        // Already there (a repeated item or a restart of the
                        // map): if it finished, tell the parent now.
                        let s = &self.slots[slot as usize];
                        let m = self.machine(s);
                        if m.is_terminal(s.inst.state) {
                            batch.internal.push_back(Internal::NotifyParent {
                                parent,
                                child_key: key,
                                final_state: m.state_name(s.inst.state).to_owned(),
                            });
                        }
                    }
                }
                Internal::NotifyParent {
                    parent,
                    child_key,
                    final_state,
                } => {
                    let data = json!({"child": child_key, "state": final_state});
                    if batch.is_remote(&parent.key) {
                        batch.remote.push(RemoteOp::Child { parent, data });
                        continue;
                    }
                    if let Some(p) = self.find(&parent.lifecycle, &parent.key) {
                        let _ = self.apply(
                            p,
                            Input::ChildFinished {
                                token: parent.token,
                            },
                            &data,
                            None,
                            Pass::Live,
                            batch,
                        );
                    }
                }
            }
        }
    }

    fn emit(&mut self, source: u32, config: &Value, batch: &mut Batch) -> Result<Value, String> {
        let slot = &self.slots[source as usize];
        let event = config
            .get("event")
            .and_then(Value::as_str)
            .ok_or("emit has no `event`")?
            .to_owned();
        let lifecycle = config.get("lifecycle").and_then(Value::as_str).map_or_else(
            || self.defs[slot.def as usize].name.to_string(),
            str::to_owned,
        );
        let key = config
            .get("key")
            .and_then(Value::as_str)
            .map_or_else(|| slot.key.to_string(), str::to_owned);
        let data = config.get("data").cloned().unwrap_or(Value::Null);
        if batch.is_remote(&key) {
            // Another node owns the target: the event goes to its inbox in
            // this batch's transaction and is applied there.
            batch.remote.push(RemoteOp::Event {
                lifecycle: lifecycle.clone(),
                key: key.clone(),
                event: event.clone(),
                data,
            });
            return Ok(json!({"lifecycle": lifecycle, "key": key, "event": event, "queued": true}));
        }
        let target = self
            .find(&lifecycle, &key)
            .ok_or_else(|| format!("no instance `{key}` of lifecycle `{lifecycle}`"))?;
        let cause = format!(
            "emitted by {}/{}",
            self.defs[self.slots[source as usize].def as usize].name,
            self.slots[source as usize].key
        );
        let previous = batch.cause.replace(cause);
        let applied = self.apply(target, Input::Event(&event), &data, None, Pass::Live, batch);
        batch.cause = previous;
        match applied {
            Ok(out) => {
                let m = self.machine(&self.slots[target as usize]);
                Ok(
                    json!({"lifecycle": lifecycle, "key": key, "event": event, "from": m.state_name(out.from), "to": m.state_name(out.to)}),
                )
            }
            Err(r) => Err(format!("{lifecycle}/{key}: {r}")),
        }
    }

    /// Applies an event to the instances a target names.
    pub(crate) fn send(
        &mut self,
        req: &SendRequest,
        batch: &mut Batch,
    ) -> Result<SendReport, LifecycleError> {
        self.send_filtered(req, batch, |_| true)
    }

    /// Like [`State::send`], only to instances whose key passes `keep`
    /// (a cluster node applies a broadcast to its own partition).
    pub(crate) fn send_filtered(
        &mut self,
        req: &SendRequest,
        batch: &mut Batch,
        keep: impl Fn(&str) -> bool,
    ) -> Result<SendReport, LifecycleError> {
        let state = self;
        let slots: Vec<u32> = match &req.target {
            Target::Key {
                lifecycle: Some(l),
                key,
            } => {
                if state.def_id(l).is_none() {
                    return Err(LifecycleError::not_found("lifecycle", l));
                }
                let slot = state
                    .find(l, key)
                    .ok_or_else(|| LifecycleError::not_found("instance", &format!("{l}/{key}")))?;
                vec![slot]
            }
            Target::Key {
                lifecycle: None,
                key,
            } => {
                let found: Vec<u32> = state
                    .defs
                    .iter()
                    .filter_map(|d| d.keys.get(key.as_str()).copied())
                    .filter(|&s| {
                        state
                            .machine(&state.slots[s as usize])
                            .knows_event(&req.event)
                    })
                    .collect();
                if found.is_empty() {
                    return Err(LifecycleError::not_found(
                        "instance",
                        &format!(
                            "with key `{key}` in a lifecycle that uses event `{}`",
                            req.event
                        ),
                    ));
                }
                found
            }
            Target::Prefix { lifecycle, prefix } => {
                let def = state
                    .def_id(lifecycle)
                    .ok_or_else(|| LifecycleError::not_found("lifecycle", lifecycle))?;
                state.defs[def as usize]
                    .keys_with_prefix(prefix, None)
                    .into_iter()
                    .map(|(_, s)| s)
                    .collect()
            }
            Target::State {
                lifecycle,
                state: wanted,
            } => {
                let def = state
                    .def_id(lifecycle)
                    .ok_or_else(|| LifecycleError::not_found("lifecycle", lifecycle))?;
                let d = &state.defs[def as usize];
                let ids = d.state_ids(wanted)?;
                d.keys
                    .values()
                    .copied()
                    .filter(|&s| {
                        let sl = &state.slots[s as usize];
                        ids.contains(&(sl.version, sl.inst.state))
                    })
                    .collect()
            }
        };
        let mut report = SendReport::default();
        for slot in slots {
            if !keep(&state.slots[slot as usize].key) {
                continue;
            }
            report.matched += 1;
            let (lifecycle, key) = {
                let s = &state.slots[slot as usize];
                (state.defs[s.def as usize].name.clone(), s.key.clone())
            };
            let idem = req
                .idempotency_key
                .as_deref()
                .map(|k| idempotency_hash(&lifecycle, &key, k));
            if let Some(h) = idem
                && state.idem.seen.contains_key(&h)
            {
                report.duplicates += 1;
                continue;
            }
            match state.apply(
                slot,
                Input::Event(&req.event),
                &req.data,
                idem,
                Pass::Live,
                batch,
            ) {
                Ok(out) => {
                    report.applied += 1;
                    if report.moved.len() < REPORT_LIMIT {
                        let m = state.machine(&state.slots[slot as usize]);
                        report.moved.push(Moved {
                            lifecycle,
                            key,
                            from: m.state_name_shared(out.from),
                            to: m.state_name_shared(out.to),
                        });
                    }
                }
                Err(r)
                    if matches!(
                        req.target,
                        Target::Key {
                            lifecycle: Some(_),
                            ..
                        }
                    ) =>
                {
                    // One named instance: the caller gets the reason as an
                    // error; nothing was written.
                    return Err(LifecycleError::Rejected(r));
                }
                Err(r) => {
                    if report.rejected.len() < REPORT_LIMIT {
                        report.rejected.push(RejectedSend {
                            lifecycle: lifecycle.to_string(),
                            key: key.to_string(),
                            reason: r.to_string(),
                        });
                    }
                }
            }
            state.drain_internal(batch);
        }
        Ok(report)
    }

    /// Starts an instance for a client (the latest version).
    pub(crate) fn start_op(
        &mut self,
        lifecycle: &str,
        key: &str,
        data: &Value,
        idempotency_key: Option<&str>,
        batch: &mut Batch,
    ) -> Result<Started, LifecycleError> {
        let def = self
            .def_id(lifecycle)
            .ok_or_else(|| LifecycleError::not_found("lifecycle", lifecycle))?;
        let idem = idempotency_key.map(|k| idempotency_hash(lifecycle, key, k));
        let (slot, created) = self.start(def, key, data, None, idem, Pass::Live, batch, None)?;
        let instance = self.view(slot);
        // What entering the initial state caused (map children, emits).
        self.drain_internal(batch);
        Ok(Started { created, instance })
    }

    /// Starts a child for a parent on another node (cluster inbox).
    pub(crate) fn start_child_op(
        &mut self,
        lifecycle: &str,
        key: &str,
        data: &Value,
        parent: ParentRef,
        batch: &mut Batch,
    ) -> Result<(), LifecycleError> {
        let def = self
            .def_id(lifecycle)
            .ok_or_else(|| LifecycleError::not_found("lifecycle", lifecycle))?;
        let (slot, created) = self.start(
            def,
            key,
            data,
            Some(parent.clone()),
            None,
            Pass::Live,
            batch,
            None,
        )?;
        if !created {
            let s = &self.slots[slot as usize];
            let m = self.machine(s);
            if m.is_terminal(s.inst.state) {
                batch.internal.push_back(Internal::NotifyParent {
                    parent,
                    child_key: key.to_owned(),
                    final_state: m.state_name(s.inst.state).to_owned(),
                });
            }
        }
        self.drain_internal(batch);
        Ok(())
    }

    /// A child on another node finished (cluster inbox).
    pub(crate) fn child_finished_op(
        &mut self,
        parent: &ParentRef,
        data: &Value,
        batch: &mut Batch,
    ) {
        if let Some(p) = self.find(&parent.lifecycle, &parent.key) {
            let _ = self.apply(
                p,
                Input::ChildFinished {
                    token: parent.token,
                },
                data,
                None,
                Pass::Live,
                batch,
            );
            self.drain_internal(batch);
        }
    }

    /// Applies a due timer or an action result to an instance by slot.
    pub(crate) fn apply_internal(
        &mut self,
        slot: u32,
        input: Input<'_>,
        data: &Value,
        batch: &mut Batch,
    ) {
        let _ = self.apply(slot, input, data, None, Pass::Live, batch);
        self.drain_internal(batch);
    }

    /// Adds an instance read from a store (a cluster partition).
    pub(crate) fn insert_loaded(
        &mut self,
        lifecycle: &str,
        key: &str,
        version: u32,
        inst: Instance,
    ) -> Result<u32, String> {
        let def = self
            .def_id(lifecycle)
            .ok_or_else(|| format!("instance of unknown lifecycle `{lifecycle}`"))?;
        let d = &mut self.defs[def as usize];
        let counts = d
            .counts
            .get_mut((version as usize).wrapping_sub(1))
            .ok_or_else(|| format!("`{lifecycle}` has no version {version}"))?;
        *counts
            .get_mut(inst.state as usize)
            .ok_or("instance in an unknown state")? += 1;
        let key: Arc<str> = Arc::from(key);
        let id = self.slots.len() as u32;
        d.keys.insert(key.clone(), id);
        self.slots.push(Slot {
            def,
            version,
            key,
            last_pos: 0,
            inst,
        });
        Ok(id)
    }

    /// What a loaded instance needs to continue: its timers armed again and
    /// its unfinished actions started again.
    pub(crate) fn resume_effects(&self, slot_id: u32) -> Vec<Effect> {
        let slot = &self.slots[slot_id as usize];
        let mut out: Vec<Effect> = slot
            .inst
            .timers()
            .iter()
            .map(|t| Effect::Arm {
                slot: slot_id,
                at: t.at,
            })
            .collect();
        let m = self.machine(slot);
        for run in slot.inst.running() {
            if let Some(action) = m.action_of(run.state)
                && action.kind != EMIT
            {
                out.push(Effect::Run {
                    slot: slot_id,
                    token: run.token,
                    kind: action.kind.clone(),
                    request: action_request(
                        m,
                        &self.defs[slot.def as usize].name,
                        slot,
                        *run,
                        action,
                    ),
                });
            }
        }
        out
    }

    pub(crate) fn remember_idempotency(&mut self, hash: u128, expires: i64) {
        self.idem.insert(hash, expires);
    }

    /// Applies a definition text (cluster: the versions in the store).
    pub(crate) fn define_version(
        &mut self,
        source: &str,
        known_actions: &[&str],
        version: u32,
    ) -> Result<(), LifecycleError> {
        self.define(source, known_actions, None, Some(version))
            .map(|_| ())
    }

    pub(crate) fn view(&self, slot_id: u32) -> InstanceView {
        let slot = &self.slots[slot_id as usize];
        view_of(
            self.machine(slot),
            &self.defs[slot.def as usize].name,
            &slot.key,
            &slot.inst,
        )
    }
}

/// What a client sees of an instance.
pub(crate) fn view_of(m: &Machine, lifecycle: &str, key: &str, inst: &Instance) -> InstanceView {
    {
        InstanceView {
            lifecycle: lifecycle.to_owned(),
            key: key.to_owned(),
            version: m.version,
            state: m.state_name(inst.state).to_owned(),
            terminal: m.is_terminal(inst.state),
            branches: inst
                .branches()
                .iter()
                .map(|&b| m.state_name(b).to_owned())
                .collect(),
            context: inst.context_value().clone(),
            seq: inst.seq,
            entered_at: inst.entered_at,
            timers: inst
                .timers()
                .iter()
                .map(|t| TimerView {
                    kind: match t.kind {
                        crate::machine::TimerKind::Timeout => "timeout",
                        crate::machine::TimerKind::Schedule => "schedule",
                        crate::machine::TimerKind::Retry { .. } => "retry",
                    }
                    .to_owned(),
                    at: t.at,
                    state: m.state_name(scope_state(inst, t.scope)).to_owned(),
                })
                .collect(),
            running_actions: inst
                .running()
                .iter()
                .map(|r| m.state_name(r.state).to_owned())
                .collect(),
            pending_children: inst.pending_children(),
            parent: inst.parent().map(|p| format!("{}/{}", p.lifecycle, p.key)),
            mode: mode_name(m.mode()).to_owned(),
        }
    }
}

fn scope_state(inst: &Instance, scope: crate::machine::ScopeRef) -> crate::machine::StateId {
    match scope {
        crate::machine::ScopeRef::Top => inst.state,
        crate::machine::ScopeRef::Branch(b) => inst
            .branches()
            .get(b as usize)
            .copied()
            .unwrap_or(inst.state),
    }
}

pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Durable => "durable",
        Mode::Ephemeral => "ephemeral",
    }
}

fn action_request(
    machine: &Machine,
    lifecycle: &str,
    slot: &Slot,
    run: RunningAction,
    action: &crate::definition::ActionDef,
) -> ActionRequest {
    ActionRequest {
        lifecycle: lifecycle.to_owned(),
        key: slot.key.to_string(),
        state: machine.state_name(run.state).to_owned(),
        attempt: run.attempt,
        config: action.config.clone(),
        context: slot.inst.context_value().clone(),
        timeout: action.timeout.unwrap_or(Duration::from_secs(3600)),
    }
}

fn first_unknown_map_child(
    def: &crate::definition::Definition,
    exists: impl Fn(&str) -> bool,
) -> Option<(String, String)> {
    for s in &def.states {
        if let Some(m) = &s.map
            && m.lifecycle != def.name
            && !exists(&m.lifecycle)
        {
            return Some((s.name.clone(), m.lifecycle.clone()));
        }
    }
    None
}

// ---------------------------------------------------------------------
// Operations and the writer thread

enum Op {
    Define {
        source: String,
        reply: oneshot::Sender<Result<Applied, LifecycleError>>,
    },
    Start {
        lifecycle: String,
        key: String,
        data: Value,
        idempotency_key: Option<String>,
        reply: oneshot::Sender<Result<Started, LifecycleError>>,
    },
    Send {
        request: SendRequest,
        reply: oneshot::Sender<Result<SendReport, LifecycleError>>,
    },
    SendBatch {
        requests: Vec<SendRequest>,
        reply: oneshot::Sender<Result<Vec<Result<SendReport, LifecycleError>>, LifecycleError>>,
    },
    TimersDue(Vec<u32>),
    ActionDone {
        slot: u32,
        token: u64,
        ok: bool,
        data: Value,
    },
    Snapshot {
        reply: oneshot::Sender<Result<LogPos, LifecycleError>>,
    },
    Stop {
        snapshot: bool,
    },
}

enum Reply {
    Define(
        oneshot::Sender<Result<Applied, LifecycleError>>,
        Result<Applied, LifecycleError>,
    ),
    Start(
        oneshot::Sender<Result<Started, LifecycleError>>,
        Result<Started, LifecycleError>,
    ),
    Send(
        oneshot::Sender<Result<SendReport, LifecycleError>>,
        Result<SendReport, LifecycleError>,
    ),
    SendBatch(
        oneshot::Sender<Result<Vec<Result<SendReport, LifecycleError>>, LifecycleError>>,
        Vec<Result<SendReport, LifecycleError>>,
    ),
}

/// A written batch on its way to the disk.
struct SyncJob {
    /// None when the batch wrote nothing durable (or fsync is off).
    sync: Option<crate::log::SyncHandle>,
    end: LogPos,
    replies: Vec<Reply>,
    effects: Vec<Effect>,
}

/// Pending timers: a min-heap of (due time, instance slot). Leaving a
/// state does not remove its entries; a due entry is checked against the
/// instance's armed timers and dropped if stale.
pub(crate) struct TimerQueue {
    heap: Mutex<BinaryHeap<Reverse<(i64, u32)>>>,
    wake: Condvar,
    /// Heap size above which [`TimerQueue::compact_if_needed`] rebuilds.
    compact_at: std::sync::atomic::AtomicUsize,
    floor: usize,
    stop: AtomicBool,
}

impl TimerQueue {
    fn push(&self, at: i64, slot: u32) {
        let Ok(mut heap) = self.heap.lock() else {
            return;
        };
        let earliest = heap.peek().map(|Reverse((a, _))| *a);
        heap.push(Reverse((at, slot)));
        if earliest.is_none_or(|e| at < e) {
            self.wake.notify_one();
        }
    }
    fn len(&self) -> usize {
        self.heap.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Leaving a state leaves its timer's entry in the heap until it comes
    /// due. When entries pile up (long timeouts cancelled often), the heap
    /// is rebuilt from the timers the instances actually hold.
    fn compact_if_needed(&self, state: &RwLock<State>) {
        let threshold = self.compact_at.load(Ordering::Relaxed);
        if self.len() <= threshold {
            return;
        }
        let live: Vec<Reverse<(i64, u32)>> = match state.read() {
            Ok(st) => st
                .slots
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    s.inst
                        .timers()
                        .iter()
                        .map(move |t| Reverse((t.at, i as u32)))
                })
                .collect(),
            Err(_) => return,
        };
        let kept = live.len();
        if let Ok(mut heap) = self.heap.lock() {
            *heap = BinaryHeap::from(live);
        }
        self.compact_at
            .store((2 * kept).max(self.floor), Ordering::Relaxed);
        self.wake.notify_one();
    }
}

struct Shared {
    state: RwLock<State>,
    ops: Sender<Op>,
    /// End of the durable log: readers wait on it so they never show a
    /// transition a crash could still undo.
    durable: tokio::sync::watch::Sender<LogPos>,
    /// The same position for threads that block (the writer before a
    /// snapshot).
    durable_mark: Mutex<LogPos>,
    durable_cv: Condvar,
    timers: Arc<TimerQueue>,
    failed: Mutex<Option<String>>,
    /// Set with `failed`, read without a lock on every submission.
    has_failed: AtomicBool,
    options: EngineOptions,
    known_actions: Vec<&'static str>,
    snapshots_written: AtomicU64,
    recovered_records: u64,
    recovery_ms: u64,
    log_dir: PathBuf,
    archive_dir: PathBuf,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    timer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held while the engine is open: one process writes a log.
    _lock: std::fs::File,
}

/// The lifecycle engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

/// Operations taken into one batch at most.
const MAX_BATCH: usize = 16 * 1024;

impl Engine {
    /// Opens (or creates) the engine in `options.dir`: loads the latest
    /// snapshot, replays the log after it, cuts a torn tail, then re-arms
    /// every timer and restarts every action that had not reported back.
    pub fn open(options: EngineOptions) -> Result<Engine, LifecycleError> {
        let started = std::time::Instant::now();
        let dir = options.dir.clone();
        let log_dir = dir.join("log");
        let archive_dir = dir.join("archive");
        let snap_dir = dir.join("snapshots");
        for d in [&dir, &log_dir, &snap_dir] {
            std::fs::create_dir_all(d).map_err(|e| LifecycleError::io(d, e))?;
        }
        let lock = take_lock(&dir)?;
        let known_actions = options.actions.kinds();
        let (mut state, from) = match snapshot::load_latest(&snap_dir, &known_actions)? {
            Some((s, p)) => (s, p),
            None => (State::default(), 0),
        };
        let mut replayed = 0u64;
        let mut batch = Batch::new(0, 0, options.idempotency_ttl.as_millis() as i64, None);
        let end = log::scan(&log_dir, from, |p, record| {
            replayed += 1;
            batch.now = record.time;
            replay(&mut state, p, &record, &known_actions, &mut batch)
        })?;
        let writer = LogWriter::open_with(
            &log_dir,
            end.segment,
            end.offset,
            options.fsync,
            options.segment_bytes,
        )?;
        if end.truncated > 0 {
            tracing::warn!(
                bytes = end.truncated,
                "lifecycle log: cut a torn write off the end"
            );
        }
        let now = keel_core::time::now_millis();
        state.idem.expire(now);
        let timers = Arc::new(TimerQueue {
            heap: Mutex::new(BinaryHeap::new()),
            wake: Condvar::new(),
            compact_at: std::sync::atomic::AtomicUsize::new(options.timer_compaction),
            floor: options.timer_compaction,
            stop: AtomicBool::new(false),
        });
        // Re-arm timers and collect actions to restart.
        let mut effects = Vec::new();
        for i in 0..state.slots.len() as u32 {
            effects.extend(state.resume_effects(i));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let end_pos = writer.end_pos();
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            ops: tx,
            durable: tokio::sync::watch::Sender::new(end_pos),
            durable_mark: Mutex::new(end_pos),
            durable_cv: Condvar::new(),
            timers,
            failed: Mutex::new(None),
            has_failed: AtomicBool::new(false),
            known_actions,
            snapshots_written: AtomicU64::new(0),
            recovered_records: replayed,
            recovery_ms: started.elapsed().as_millis() as u64,
            log_dir,
            archive_dir,
            options,
            writer_thread: Mutex::new(None),
            timer_thread: Mutex::new(None),
            _lock: lock,
        });
        let engine = Engine {
            shared: shared.clone(),
        };
        let w = {
            let engine = engine.clone();
            std::thread::Builder::new()
                .name("keel-lifecycle-writer".into())
                .spawn(move || engine.writer_loop(rx, writer))
                .map_err(|e| LifecycleError::io(&dir, e))?
        };
        let t = if shared.options.background {
            let engine = engine.clone();
            Some(
                std::thread::Builder::new()
                    .name("keel-lifecycle-timers".into())
                    .spawn(move || engine.timer_loop())
                    .map_err(|e| LifecycleError::io(&dir, e))?,
            )
        } else {
            None
        };
        if let Ok(mut g) = shared.writer_thread.lock() {
            *g = Some(w);
        }
        if let Ok(mut g) = shared.timer_thread.lock() {
            *g = t;
        }
        engine.run_effects(effects);
        tracing::info!(
            records = replayed,
            ms = shared.recovery_ms,
            "lifecycle engine recovered"
        );
        Ok(engine)
    }

    fn submit(&self, op: Op) -> Result<(), LifecycleError> {
        if self.shared.has_failed.load(Ordering::Acquire)
            && let Some(msg) = self.failure()
        {
            return Err(LifecycleError::Unavailable(msg));
        }
        self.shared
            .ops
            .send(op)
            .map_err(|_| LifecycleError::Unavailable("the lifecycle engine has stopped".into()))
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, LifecycleError>>) -> Op,
    ) -> Result<T, LifecycleError> {
        let (tx, rx) = oneshot::channel();
        self.submit(make(tx))?;
        rx.await.map_err(|_| {
            LifecycleError::Unavailable(
                self.failure()
                    .unwrap_or_else(|| "the lifecycle engine has stopped".into()),
            )
        })?
    }

    fn failure(&self) -> Option<String> {
        self.shared.failed.lock().ok().and_then(|f| f.clone())
    }

    /// Validates and applies a definition (a new version if it changed).
    pub async fn apply_definition(&self, source: &str) -> Result<Applied, LifecycleError> {
        // Validate here so a bad definition never reaches the writer.
        crate::parse::parse_definition(source, &self.shared.known_actions)?;
        let source = source.to_owned();
        self.ask(|reply| Op::Define { source, reply }).await
    }

    /// Starts an instance; starting one that exists returns it unchanged.
    pub async fn start(
        &self,
        lifecycle: &str,
        key: &str,
        data: Value,
        idempotency_key: Option<String>,
    ) -> Result<Started, LifecycleError> {
        validate_key(key)?;
        self.check_payload(&data)?;
        let (lifecycle, key) = (lifecycle.to_owned(), key.to_owned());
        self.ask(|reply| Op::Start {
            lifecycle,
            key,
            data,
            idempotency_key,
            reply,
        })
        .await
    }

    /// Sends an event to one key, a key prefix or a state's instances.
    pub async fn send(&self, request: SendRequest) -> Result<SendReport, LifecycleError> {
        if let Target::Key { key, .. } = &request.target {
            validate_key(key)?;
        }
        crate::parse::check_event_name(&request.event)
            .map_err(|m| LifecycleError::invalid("event", m))?;
        self.check_payload(&request.data)?;
        self.ask(|reply| Op::Send { request, reply }).await
    }

    /// Sends many events in one operation: one queue entry and one answer
    /// for the lot, so a client feeding a stream of events does not pay a
    /// round trip per event. Each event succeeds or fails on its own.
    pub async fn send_batch(
        &self,
        requests: Vec<SendRequest>,
    ) -> Result<Vec<Result<SendReport, LifecycleError>>, LifecycleError> {
        let mut early: Vec<Option<LifecycleError>> = Vec::with_capacity(requests.len());
        let mut to_send: Vec<SendRequest> = Vec::with_capacity(requests.len());
        for r in requests {
            let problem = match &r.target {
                Target::Key { key, .. } => validate_key(key).err(),
                _ => None,
            }
            .or_else(|| {
                crate::parse::check_event_name(&r.event)
                    .err()
                    .map(|m| LifecycleError::invalid("event", m))
            })
            .or_else(|| self.check_payload(&r.data).err());
            if problem.is_none() {
                to_send.push(r);
            }
            early.push(problem);
        }
        let mut sent = if to_send.is_empty() {
            Vec::new()
        } else {
            self.ask(|reply| Op::SendBatch {
                requests: to_send,
                reply,
            })
            .await?
        }
        .into_iter();
        Ok(early
            .into_iter()
            .map(|e| match e {
                Some(err) => Err(err),
                None => sent.next().unwrap_or_else(|| {
                    Err(LifecycleError::Unavailable("missing batch result".into()))
                }),
            })
            .collect())
    }

    /// Writes a snapshot now and archives the segments it covers.
    pub async fn snapshot(&self) -> Result<LogPos, LifecycleError> {
        self.ask(|reply| Op::Snapshot { reply }).await
    }

    fn check_payload(&self, data: &Value) -> Result<(), LifecycleError> {
        check_payload(data, self.shared.options.max_payload_bytes)
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, State>, LifecycleError> {
        self.shared.state.read().map_err(|_| {
            LifecycleError::Unavailable(
                "the lifecycle state lock is poisoned; restart the server".into(),
            )
        })
    }

    /// Waits until the record at `pos` is durable (it was applied in a
    /// batch whose fsync is under way).
    async fn wait_durable(&self, pos: LogPos) {
        let mut rx = self.shared.durable.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&d| d > pos)).await;
    }

    pub async fn get(&self, lifecycle: &str, key: &str) -> Result<InstanceView, LifecycleError> {
        let (view, pos) = {
            let state = self.read()?;
            if state.def_id(lifecycle).is_none() {
                return Err(LifecycleError::not_found("lifecycle", lifecycle));
            }
            let slot = state.find(lifecycle, key).ok_or_else(|| {
                LifecycleError::not_found("instance", &format!("{lifecycle}/{key}"))
            })?;
            (state.view(slot), state.slots[slot as usize].last_pos)
        };
        if pos > 0 {
            self.wait_durable(pos).await;
        }
        Ok(view)
    }

    pub fn list(&self, lifecycle: &str, q: &ListQuery) -> Result<ListPage, LifecycleError> {
        let state = self.read()?;
        let def = state
            .def_id(lifecycle)
            .ok_or_else(|| LifecycleError::not_found("lifecycle", lifecycle))?;
        let dslot = &state.defs[def as usize];
        let wanted = q.state.as_deref().map(|s| dslot.state_ids(s)).transpose()?;
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(10_000)
        };
        let prefix = q.prefix.as_deref().unwrap_or("");
        let mut out = Vec::new();
        let mut next = None;
        for (_, slot) in dslot.keys_with_prefix(prefix, q.after.as_deref()) {
            let s = &state.slots[slot as usize];
            if let Some(w) = &wanted
                && !w.contains(&(s.version, s.inst.state))
            {
                continue;
            }
            if out.len() == limit {
                next = out.last().map(|v: &InstanceView| v.key.clone());
                break;
            }
            out.push(state.view(slot));
        }
        Ok(ListPage {
            instances: out,
            next,
        })
    }

    pub fn stats(&self, lifecycle: &str) -> Result<LifecycleStats, LifecycleError> {
        let state = self.read()?;
        let def = state
            .def_id(lifecycle)
            .ok_or_else(|| LifecycleError::not_found("lifecycle", lifecycle))?;
        Ok(lifecycle_stats(&state.defs[def as usize]))
    }

    pub fn engine_stats(&self) -> Result<EngineStats, LifecycleError> {
        let (lifecycles, instances, inputs) = {
            let state = self.read()?;
            (
                state.defs.len(),
                state.slots.len() as u64,
                state.inputs_applied,
            )
        };
        let durable = *self.shared.durable.borrow();
        Ok(EngineStats {
            lifecycles,
            instances,
            pending_timers: self.shared.timers.len(),
            inputs_applied: inputs,
            log_position: format!(
                "{:08x}:{:x}",
                log::segment_of(durable),
                durable & 0xFFFF_FFFF
            ),
            log_segment_bytes: durable & 0xFFFF_FFFF,
            snapshots_written: self.shared.snapshots_written.load(Ordering::Relaxed),
            recovered_records: self.shared.recovered_records,
            recovery_ms: self.shared.recovery_ms,
        })
    }

    pub fn definitions(&self) -> Result<Vec<DefinitionSummary>, LifecycleError> {
        let state = self.read()?;
        Ok(state
            .defs
            .iter()
            .map(|d| {
                let m = d.latest();
                DefinitionSummary {
                    lifecycle: d.name.to_string(),
                    latest_version: m.version,
                    mode: mode_name(m.mode()),
                    description: m.definition.description.clone(),
                    instances: d.keys.len() as u64,
                }
            })
            .collect())
    }

    /// A definition version (latest when `version` is None).
    pub fn definition(
        &self,
        lifecycle: &str,
        version: Option<u32>,
    ) -> Result<Arc<Machine>, LifecycleError> {
        let state = self.read()?;
        let def = state
            .def_id(lifecycle)
            .ok_or_else(|| LifecycleError::not_found("lifecycle", lifecycle))?;
        let d = &state.defs[def as usize];
        match version {
            None => Ok(d.latest().clone()),
            Some(v) => d
                .versions
                .get((v as usize).wrapping_sub(1))
                .cloned()
                .ok_or_else(|| {
                    LifecycleError::not_found("definition version", &format!("{lifecycle} v{v}"))
                }),
        }
    }

    /// An instance's history, newest first, following the log's per-instance
    /// chain (into the archive for compacted segments).
    pub async fn history(
        &self,
        lifecycle: &str,
        key: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, LifecycleError> {
        let mut pos = {
            let state = self.read()?;
            let slot = state.find(lifecycle, key).ok_or_else(|| {
                LifecycleError::not_found("instance", &format!("{lifecycle}/{key}"))
            })?;
            state.slots[slot as usize].last_pos
        };
        if pos > 0 {
            self.wait_durable(pos).await;
        }
        let dirs = [
            self.shared.log_dir.as_path(),
            self.shared.archive_dir.as_path(),
        ];
        let mut out = Vec::new();
        let limit = if limit == 0 { usize::MAX } else { limit };
        while pos != 0 && out.len() < limit {
            let Some(body) = log::read_at(&dirs, pos)? else {
                break;
            };
            let r = log::decode(&body)
                .map_err(|e| LifecycleError::Replay(format!("history record at {pos:x}: {e}")))?;
            let (kind, event) = history_kind(&r.input);
            out.push(HistoryEntry {
                time: r.time,
                kind,
                event,
                from: r.from.to_owned(),
                to: r.to.to_owned(),
                data: r.data.into_owned(),
                note: r.note.to_owned(),
            });
            pos = r.prev;
        }
        Ok(out)
    }

    /// Stops the threads after the queued operations; writes a snapshot so
    /// the next start replays little.
    pub fn shutdown(&self) {
        self.close(true);
    }

    /// Stops like [`Engine::shutdown`]; without the snapshot the next open
    /// recovers from the log alone, as after a crash.
    pub fn close(&self, snapshot: bool) {
        let _ = self.submit(Op::Stop { snapshot });
        self.shared.timers.stop.store(true, Ordering::SeqCst);
        self.shared.timers.wake.notify_all();
        for h in [&self.shared.writer_thread, &self.shared.timer_thread] {
            let handle = h.lock().ok().and_then(|mut g| g.take());
            if let Some(handle) = handle {
                let _ = handle.join();
            }
        }
    }

    // -----------------------------------------------------------------

    fn fail(&self, message: String) {
        tracing::error!(%message, "lifecycle engine stopped");
        if let Ok(mut f) = self.shared.failed.lock() {
            f.get_or_insert(message);
        }
        self.shared.has_failed.store(true, Ordering::Release);
    }

    fn writer_loop(self, rx: Receiver<Op>, mut writer: LogWriter) {
        // Log bytes written since the last snapshot.
        let mut since_snapshot: u64 = 0;
        let (syncer, sync_rx) = std::sync::mpsc::channel::<SyncJob>();
        let sync_thread = {
            let engine = self.clone();
            match std::thread::Builder::new()
                .name("keel-lifecycle-sync".into())
                .spawn(move || engine.sync_loop(sync_rx))
            {
                Ok(h) => h,
                Err(e) => {
                    self.fail(format!("cannot start the log syncer thread: {e}"));
                    return;
                }
            }
        };
        let mut ops = Vec::with_capacity(1024);
        loop {
            let Ok(first) = rx.recv() else { return };
            ops.push(first);
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            if let Err(e) = writer.roll_if_full() {
                self.fail(format!("could not start a new log segment: {e}"));
                return;
            }
            let stop = ops.iter().find_map(|o| match o {
                Op::Stop { snapshot } => Some(*snapshot),
                _ => None,
            });
            // Snapshot requests are answered after this batch is durable.
            let mut snapshot_replies = Vec::new();
            let mut work = Vec::with_capacity(ops.len());
            for op in ops.drain(..) {
                match op {
                    Op::Snapshot { reply } => snapshot_replies.push(reply),
                    other => work.push(other),
                }
            }
            let want_snapshot = !snapshot_replies.is_empty();
            let mut batch = Batch::new(
                keel_core::time::now_millis(),
                writer.next_record_pos(),
                self.shared.options.idempotency_ttl.as_millis() as i64,
                None,
            );
            let mut replies = Vec::with_capacity(work.len());
            {
                let Ok(mut state) = self.shared.state.write() else {
                    self.fail("the lifecycle state lock is poisoned".into());
                    return;
                };
                state.idem.expire(batch.now);
                for op in work {
                    self.process(&mut state, op, &mut batch, &mut replies);
                    state.drain_internal(&mut batch);
                }
            }
            let mut end = writer.end_pos();
            if !batch.body.is_empty() {
                since_snapshot += batch.body.len() as u64;
                match writer.write(&batch.body) {
                    Ok(e) => end = e,
                    Err(e) => {
                        // The in-memory state is ahead of the log: refuse
                        // everything until a restart replays the log.
                        self.fail(format!(
                            "writing the lifecycle log failed ({e}); restart the server"
                        ));
                        return;
                    }
                }
            }
            let sync = writer.sync_handle().filter(|_| !batch.body.is_empty());
            // The fsync, the answers and the effects happen on the syncer
            // thread while this one builds the next batch.
            let job = SyncJob {
                sync,
                end,
                replies,
                effects: std::mem::take(&mut batch.effects),
            };
            if syncer.send(job).is_err() {
                return;
            }
            self.shared.timers.compact_if_needed(&self.shared.state);
            if want_snapshot
                || stop == Some(true)
                || since_snapshot >= self.shared.options.snapshot_bytes
            {
                // A snapshot may only cover what the log has made durable.
                self.wait_durable_blocking(end);
                let result = self.write_snapshot(end);
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "lifecycle snapshot failed; the log still has everything");
                } else {
                    since_snapshot = 0;
                }
                for tx in snapshot_replies.drain(..) {
                    let _ = tx.send(match &result {
                        Ok(()) => Ok(end),
                        Err(e) => Err(LifecycleError::Unavailable(format!("snapshot failed: {e}"))),
                    });
                }
            }
            if stop.is_some() {
                // Later operations get "stopped" from their dropped reply.
                drop(syncer);
                let _ = sync_thread.join();
                return;
            }
        }
    }

    /// The syncer: fsyncs what the writer wrote (one fsync for every job
    /// waiting), publishes the durable position, then answers and starts
    /// effects, in the writer's order.
    fn sync_loop(self, rx: Receiver<SyncJob>) {
        let mut jobs: Vec<SyncJob> = Vec::new();
        while let Ok(first) = rx.recv() {
            jobs.push(first);
            while let Ok(job) = rx.try_recv() {
                jobs.push(job);
            }
            // One fsync per segment touched, oldest first.
            let mut handles: Vec<&crate::log::SyncHandle> = Vec::new();
            for j in &jobs {
                if let Some(h) = &j.sync
                    && handles.last().is_none_or(|l| l.segment != h.segment)
                {
                    handles.push(h);
                }
            }
            for h in handles {
                if let Err(e) = h.sync() {
                    self.fail(format!(
                        "fsync of the lifecycle log failed ({e}); restart the server"
                    ));
                    return;
                }
            }
            let end = jobs.iter().map(|j| j.end).max().unwrap_or(0);
            self.publish_durable(end);
            for job in jobs.drain(..) {
                for r in job.replies {
                    match r {
                        Reply::Define(tx, v) => {
                            let _ = tx.send(v);
                        }
                        Reply::Start(tx, v) => {
                            let _ = tx.send(v);
                        }
                        Reply::Send(tx, v) => {
                            let _ = tx.send(v);
                        }
                        Reply::SendBatch(tx, v) => {
                            let _ = tx.send(Ok(v));
                        }
                    }
                }
                self.run_effects(job.effects);
            }
        }
    }

    fn publish_durable(&self, end: LogPos) {
        self.shared.durable.send_if_modified(|d| {
            if end > *d {
                *d = end;
                true
            } else {
                false
            }
        });
        if let Ok(mut d) = self.shared.durable_mark.lock() {
            *d = (*d).max(end);
        }
        self.shared.durable_cv.notify_all();
    }

    fn wait_durable_blocking(&self, pos: LogPos) {
        let Ok(mut d) = self.shared.durable_mark.lock() else {
            return;
        };
        while *d < pos && self.failure().is_none() {
            match self
                .shared
                .durable_cv
                .wait_timeout(d, Duration::from_millis(100))
            {
                Ok((g, _)) => d = g,
                Err(_) => return,
            }
        }
    }

    fn process(&self, state: &mut State, op: Op, batch: &mut Batch, replies: &mut Vec<Reply>) {
        match op {
            Op::Define { source, reply } => {
                let r = state.define(&source, &self.shared.known_actions, Some(batch), None);
                replies.push(Reply::Define(reply, r));
            }
            Op::Start {
                lifecycle,
                key,
                data,
                idempotency_key,
                reply,
            } => {
                let r = state.start_op(&lifecycle, &key, &data, idempotency_key.as_deref(), batch);
                replies.push(Reply::Start(reply, r));
            }
            Op::Send { request, reply } => {
                let r = state.send(&request, batch);
                replies.push(Reply::Send(reply, r));
            }
            Op::SendBatch { requests, reply } => {
                let mut results = Vec::with_capacity(requests.len());
                for request in &requests {
                    results.push(state.send(request, batch));
                    state.drain_internal(batch);
                }
                replies.push(Reply::SendBatch(reply, results));
            }
            Op::TimersDue(slots) => {
                for slot in slots {
                    let Some(s) = state.slots.get(slot as usize) else {
                        continue;
                    };
                    let mut due: Vec<Timer> = s
                        .inst
                        .timers()
                        .iter()
                        .filter(|t| t.at <= batch.now)
                        .copied()
                        .collect();
                    due.sort_by_key(|t| t.at);
                    for t in due {
                        let _ = state.apply(
                            slot,
                            Input::TimerFired(t),
                            &Value::Null,
                            None,
                            Pass::Live,
                            batch,
                        );
                        state.drain_internal(batch);
                    }
                }
            }
            Op::ActionDone {
                slot,
                token,
                ok,
                data,
            } => {
                let _ = state.apply(
                    slot,
                    Input::ActionFinished { token, ok },
                    &data,
                    None,
                    Pass::Live,
                    batch,
                );
            }
            // Taken out of the batch by the writer loop.
            Op::Snapshot { .. } | Op::Stop { .. } => {}
        }
    }

    fn run_effects(&self, effects: Vec<Effect>) {
        if !self.shared.options.background {
            return;
        }
        for e in effects {
            match e {
                Effect::Arm { slot, at } => self.shared.timers.push(at, slot),
                Effect::Run {
                    slot,
                    token,
                    request,
                    kind,
                } => {
                    let Some(action) = self.shared.options.actions.get(&kind) else {
                        let _ = self.submit(Op::ActionDone {
                            slot,
                            token,
                            ok: false,
                            data: json!({"error": format!("no action of kind `{kind}` is registered")}),
                        });
                        continue;
                    };
                    let Some(rt) = self
                        .shared
                        .options
                        .runtime
                        .clone()
                        .or_else(|| tokio::runtime::Handle::try_current().ok())
                    else {
                        self.fail("no tokio runtime to run actions on".into());
                        continue;
                    };
                    let engine = self.clone();
                    rt.spawn(async move {
                        let (ok, data) = match action.run(request).await {
                            Ok(output) => (true, output),
                            Err(f) => (false, json!({"error": f.message, "output": f.output})),
                        };
                        let _ = engine.submit(Op::ActionDone {
                            slot,
                            token,
                            ok,
                            data,
                        });
                    });
                }
            }
        }
    }

    fn timer_loop(self) {
        let q = self.shared.timers.clone();
        loop {
            if q.stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(mut heap) = q.heap.lock() else { return };
            let now = keel_core::time::now_millis();
            let mut due = Vec::new();
            while let Some(&Reverse((at, slot))) = heap.peek() {
                if at > now || due.len() >= 65_536 {
                    break;
                }
                heap.pop();
                if due.last() != Some(&slot) {
                    due.push(slot);
                }
            }
            if !due.is_empty() {
                drop(heap);
                due.sort_unstable();
                due.dedup();
                if self.submit(Op::TimersDue(due)).is_err() {
                    return;
                }
                continue;
            }
            let wait = match heap.peek() {
                Some(&Reverse((at, _))) => Duration::from_millis((at - now).clamp(1, 1000) as u64),
                None => Duration::from_millis(1000),
            };
            let _ = q.wake.wait_timeout(heap, wait);
        }
    }

    fn write_snapshot(&self, at: LogPos) -> Result<(), LifecycleError> {
        let bytes = {
            let state = self.read()?;
            snapshot::encode(&state, at)
        };
        let snap_dir = self.shared.options.dir.join("snapshots");
        // Archive only what the older of the two kept snapshots no longer
        // needs, so falling back to it still finds its log.
        let oldest_kept = snapshot::write(&snap_dir, at, &bytes)?;
        self.shared
            .snapshots_written
            .fetch_add(1, Ordering::Relaxed);
        archive_segments(
            &self.shared.log_dir,
            &self.shared.archive_dir,
            log::segment_of(oldest_kept),
        )?;
        Ok(())
    }
}

/// Moves segments wholly before `keep_from` out of the log directory: the
/// live log stays bounded, history stays readable.
fn archive_segments(
    log_dir: &Path,
    archive_dir: &Path,
    keep_from: u32,
) -> Result<(), LifecycleError> {
    let segs = log::segments(log_dir)?;
    let old: Vec<u32> = segs.into_iter().filter(|&s| s < keep_from).collect();
    if old.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(archive_dir).map_err(|e| LifecycleError::io(archive_dir, e))?;
    for s in old {
        let name = format!("{s:08x}.log");
        std::fs::rename(log_dir.join(&name), archive_dir.join(&name))
            .map_err(|e| LifecycleError::io(log_dir, e))?;
    }
    log::sync_dir(archive_dir)?;
    log::sync_dir(log_dir)?;
    Ok(())
}

pub(crate) fn lifecycle_stats(d: &DefSlot) -> LifecycleStats {
    let latest = d.latest();
    let mut by_name: Vec<(String, u64)> = latest.top_states().map(|s| (s.to_owned(), 0)).collect();
    for (vi, counts) in d.counts.iter().enumerate() {
        let m = &d.versions[vi];
        for (sid, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let name = m.state_name(sid as u16);
            match by_name.iter_mut().find(|(s, _)| s == name) {
                Some((_, c)) => *c += n,
                None => by_name.push((name.to_owned(), n)),
            }
        }
    }
    LifecycleStats {
        lifecycle: d.name.to_string(),
        latest_version: latest.version,
        mode: mode_name(latest.mode()),
        instances: d.keys.len() as u64,
        states: by_name
            .into_iter()
            .map(|(state, count)| StateCount { state, count })
            .collect(),
    }
}

/// Re-applies one logged record during recovery.
fn replay(
    state: &mut State,
    p: LogPos,
    r: &Record<'_>,
    known_actions: &[&str],
    batch: &mut Batch,
) -> Result<(), String> {
    match &r.input {
        RecordInput::Define { version, source } => {
            state
                .define(source, known_actions, None, Some(*version))
                .map_err(|e| format!("definition `{}`: {e}", r.lifecycle))?;
        }
        RecordInput::Start { version, parent } => {
            let def = state
                .def_id(r.lifecycle)
                .ok_or_else(|| format!("start of unknown lifecycle `{}`", r.lifecycle))?;
            state
                .start(
                    def,
                    r.key,
                    &r.data,
                    parent.clone(),
                    r.idempotency,
                    Pass::Replay(p),
                    batch,
                    Some(*version),
                )
                .map_err(|e| e.to_string())?;
        }
        other => {
            let slot = state
                .find(r.lifecycle, r.key)
                .ok_or_else(|| format!("input for unknown instance `{}/{}`", r.lifecycle, r.key))?;
            let input = match other {
                RecordInput::Event { name } => Input::Event(name),
                RecordInput::Timer(t) => Input::TimerFired(*t),
                RecordInput::Action { token, ok } => Input::ActionFinished {
                    token: *token,
                    ok: *ok,
                },
                RecordInput::Child { token } => Input::ChildFinished { token: *token },
                RecordInput::Define { .. } | RecordInput::Start { .. } => {
                    unreachable!("handled above")
                }
            };
            let out = state
                .apply(slot, input, &r.data, r.idempotency, Pass::Replay(p), batch)
                .map_err(|e| format!("replaying `{}/{}`: {e}", r.lifecycle, r.key))?;
            let m = state.machine(&state.slots[slot as usize]);
            if m.state_name(out.to) != r.to {
                return Err(format!(
                    "replaying `{}/{}` reached `{}` where the log says `{}`",
                    r.lifecycle,
                    r.key,
                    m.state_name(out.to),
                    r.to
                ));
            }
        }
    }
    Ok(())
}

fn take_lock(dir: &Path) -> Result<std::fs::File, LifecycleError> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LifecycleError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LifecycleError::Unavailable(format!(
            "the lifecycle store in {} is in use by another process (a running `keel server`?); pass --server URL to go through it",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(LifecycleError::io(&path, e)),
    }
}

/// A history entry's kind and event name for a logged input.
pub(crate) fn history_kind(input: &RecordInput<'_>) -> (&'static str, String) {
    match input {
        RecordInput::Define { .. } => ("define", String::new()),
        RecordInput::Start { .. } => ("start", "start".to_owned()),
        RecordInput::Event { name } => ("event", (*name).to_owned()),
        RecordInput::Timer(t) => (
            match t.kind {
                crate::machine::TimerKind::Timeout => "timeout",
                crate::machine::TimerKind::Schedule => "schedule",
                crate::machine::TimerKind::Retry { .. } => "retry",
            },
            String::new(),
        ),
        RecordInput::Action { ok, .. } => (
            "action",
            if *ok {
                "action_succeeded"
            } else {
                "action_failed"
            }
            .to_owned(),
        ),
        RecordInput::Child { .. } => ("child", "child_finished".to_owned()),
    }
}

/// The static name of a history kind read back from a store.
pub(crate) fn static_kind(kind: &str) -> &'static str {
    [
        "define", "start", "event", "timeout", "schedule", "retry", "action", "child",
    ]
    .into_iter()
    .find(|k| *k == kind)
    .unwrap_or("event")
}

/// Event and start data are bounded: large payloads go by reference (an
/// artifact URI), never inline in the log.
pub(crate) fn check_payload(data: &Value, limit: usize) -> Result<(), LifecycleError> {
    if data.is_null() {
        return Ok(());
    }
    let size = serde_json::to_vec(data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limit {
        return Err(LifecycleError::PayloadTooLarge { size, limit });
    }
    Ok(())
}

pub(crate) fn validate_key(key: &str) -> Result<(), LifecycleError> {
    if key.is_empty() || key.len() > 512 {
        return Err(LifecycleError::invalid(
            "key",
            "a key must be 1 to 512 bytes long".to_owned(),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(LifecycleError::invalid(
            "key",
            "a key may not contain control characters".to_owned(),
        ));
    }
    Ok(())
}
