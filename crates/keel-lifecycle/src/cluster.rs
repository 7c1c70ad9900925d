//! Scale-out: the same engine with PostgreSQL as the log and state store.
//!
//! Lifecycles are partitioned by a hash of their key (all lifecycles of
//! one key share a partition). Each node owns partitions through a lease
//! row (`lifecycle_partitions`: owner, lease_until, epoch) and holds their
//! instances in memory. Any node accepts an event: it is inserted into the
//! partition's inbox (`lifecycle_inbox`) and acknowledged once that insert
//! commits, so an acknowledged event is never lost. The owner applies
//! inbox rows in id order with the pure machine and writes, in ONE
//! transaction: the lease renewal with its epoch as a fence, the new
//! instance rows, history rows, and the inbox rows marked done. A node that
//! lost its lease (its epoch moved on) fails the fence and rolls back, so
//! an event is applied exactly once even when two nodes briefly both think
//! they own a partition. When a node dies, its leases expire and the other
//! nodes take its partitions over, loading their instances from the table.
//!
//! Timers and actions run on the owner; after a takeover the new owner
//! re-arms timers and restarts actions that had not reported back (at
//! least once, as on one node after a crash).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use SqlValue::{Int as I, Text as T};
use base64::Engine as _;
use keel_store::{AnyConnection, Db, Migration, Row, SqlValue, StoreError, WriteFuture};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::actions::ActionRegistry;
use crate::engine::{
    Applied, Batch, DefinitionSummary, Effect, HistoryEntry, InstanceView, LifecycleStats,
    ListPage, ListQuery, RemoteOp, Routing, SendReport, SendRequest, Started, State, StateCount,
    Target, mode_name, partition_of, validate_key, view_of,
};
use crate::error::LifecycleError;
use crate::log::RecordInput;
use crate::machine::{Input, ParentRef};

pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "lifecycle",
    version: 1,
    description: "lifecycle cluster: definitions, partitions, inbox, instances, history",
    sqlite: include_str!("migrations/0001_cluster.sql"),
    postgres: include_str!("migrations/0001_cluster.sql"),
}];

#[derive(Clone)]
pub struct ClusterOptions {
    /// This node's name in the lease table; unique per running node.
    pub node: String,
    /// Number of partitions (fixed when the first node creates them).
    pub partitions: u32,
    /// How long a lease lasts without renewal: the takeover time after a
    /// node dies.
    pub lease: Duration,
    /// How often the inbox is polled when nothing woke the node.
    pub poll: Duration,
    pub actions: ActionRegistry,
    pub runtime: Option<tokio::runtime::Handle>,
    pub max_payload_bytes: usize,
    pub idempotency_ttl: Duration,
    /// Take partitions and apply events (a server). Off, the node only
    /// writes to inboxes and reads tables (a command-line tool).
    pub owner: bool,
}

impl ClusterOptions {
    pub fn new(node: impl Into<String>) -> Self {
        ClusterOptions {
            node: node.into(),
            partitions: 16,
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(25),
            actions: ActionRegistry::default(),
            runtime: None,
            max_payload_bytes: 64 * 1024,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            owner: true,
        }
    }
}

/// One inbox row to insert: partition, lifecycle, key (or prefix or
/// state), op, event, data, idempotency key.
type InboxRow = (i64, String, String, i64, String, Value, Option<String>);

/// How long an applied inbox row (and its result) is kept.
const INBOX_RETENTION_MS: i64 = 3_600_000;

const OP_START: i64 = 1;
const OP_EVENT: i64 = 2;
const OP_PREFIX: i64 = 3;
const OP_STATE: i64 = 4;
const OP_CHILD_START: i64 = 5;
const OP_CHILD_DONE: i64 = 6;

/// What a node holds: the instances of its partitions.
struct Node {
    state: State,
    /// partition → lease epoch.
    owned: HashMap<u32, i64>,
    timers: BinaryHeap<Reverse<(i64, u32)>>,
    /// Action results waiting to be applied: (lifecycle, key, token, ok, data).
    results: Vec<(String, String, u64, bool, Value)>,
}

struct Shared {
    db: Db,
    options: ClusterOptions,
    known_actions: Vec<&'static str>,
    node: Mutex<Node>,
    wake: tokio::sync::Notify,
    committed: tokio::sync::Notify,
    stop: std::sync::atomic::AtomicBool,
    /// Requests for partitions this node owns, taken without the inbox.
    local: std::sync::Mutex<Vec<LocalOp>>,
    /// The partitions owned, readable without the node lock.
    owned_now: std::sync::RwLock<HashSet<u32>>,
}

/// A request this node applies itself, answered when its round commits.
type LocalOp = (InboxRow, tokio::sync::oneshot::Sender<Value>);

/// A lifecycle engine node on PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct ClusterEngine {
    shared: Arc<Shared>,
}

fn store(e: sqlx::Error) -> LifecycleError {
    LifecycleError::Store(StoreError::Database(e))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, LifecycleError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| LifecycleError::Replay(format!("instance body: {e}")))
}

impl ClusterEngine {
    /// Joins the cluster on `db` (PostgreSQL): creates the partitions if
    /// this is the first node, then starts the lease and inbox loop.
    pub async fn open(db: Db, options: ClusterOptions) -> Result<ClusterEngine, LifecycleError> {
        let partitions = options.partitions.max(1);
        for p in 0..partitions {
            sqlx::query("INSERT INTO lifecycle_partitions (partition_id, owner, lease_until, epoch) VALUES ($1, NULL, 0, 0) ON CONFLICT (partition_id) DO NOTHING")
                .bind(i64::from(p))
                .execute(db.reader())
                .await
                .map_err(store)?;
        }
        let existing: i64 = sqlx::query("SELECT COUNT(*) FROM lifecycle_partitions")
            .fetch_one(db.reader())
            .await
            .map_err(store)?
            .try_get(0)
            .map_err(store)?;
        let mut options = options;
        options.partitions = existing as u32;
        let known_actions = options.actions.kinds();
        let engine = ClusterEngine {
            shared: Arc::new(Shared {
                db,
                known_actions,
                node: Mutex::new(Node {
                    state: State::default(),
                    owned: HashMap::new(),
                    timers: BinaryHeap::new(),
                    results: Vec::new(),
                }),
                options,
                wake: tokio::sync::Notify::new(),
                committed: tokio::sync::Notify::new(),
                stop: std::sync::atomic::AtomicBool::new(false),
                local: std::sync::Mutex::new(Vec::new()),
                owned_now: std::sync::RwLock::new(HashSet::new()),
            }),
        };
        {
            let mut node = engine.shared.node.lock().await;
            engine.refresh_definitions(&mut node).await?;
        }
        let rt = engine
            .shared
            .options
            .runtime
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current);
        let e = engine.clone();
        rt.spawn(async move { e.run().await });
        Ok(engine)
    }

    pub fn node_name(&self) -> &str {
        &self.shared.options.node
    }

    /// Stops the loop and gives the leases up so another node takes over
    /// at once.
    pub async fn shutdown(&self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.wake.notify_one();
        let node = self.shared.node.lock().await;
        for (&p, &epoch) in &node.owned {
            let _ = sqlx::query("UPDATE lifecycle_partitions SET owner = NULL, lease_until = 0 WHERE partition_id = $1 AND owner = $2 AND epoch = $3")
                .bind(i64::from(p))
                .bind(self.shared.options.node.clone())
                .bind(epoch)
                .execute(self.shared.db.reader())
                .await;
        }
    }

    async fn run(self) {
        let mut next_lease = std::time::Instant::now();
        while !self.shared.stop.load(std::sync::atomic::Ordering::SeqCst) {
            if std::time::Instant::now() >= next_lease {
                if let Err(e) = self.lease_tick().await {
                    tracing::warn!(error = %e, "lifecycle lease round failed");
                }
                next_lease = std::time::Instant::now() + self.shared.options.lease / 3;
            }
            match self.process_once().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "lifecycle partition round failed; partitions will be reloaded")
                }
            }
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep(self.shared.options.poll) => {}
            }
        }
    }

    /// Loads definition versions other nodes applied: the latest version
    /// per name is compared with what this node has, and only the missing
    /// versions' texts are read, in version order.
    async fn refresh_definitions(&self, node: &mut Node) -> Result<(), LifecycleError> {
        let latest =
            sqlx::query("SELECT name, MAX(version) FROM lifecycle_definitions GROUP BY name")
                .fetch_all(self.shared.db.reader())
                .await
                .map_err(store)?;
        for row in latest {
            let name: String = row.try_get(0).map_err(store)?;
            let max: i64 = row.try_get(1).map_err(store)?;
            let have = node
                .state
                .def_ids
                .get(name.as_str())
                .map_or(0, |&id| node.state.defs[id as usize].versions.len() as i64);
            if max <= have {
                continue;
            }
            let missing = sqlx::query(
                "SELECT version, source FROM lifecycle_definitions WHERE name = $1 AND version > $2 ORDER BY version",
            )
            .bind(name.as_str())
            .bind(have)
            .fetch_all(self.shared.db.reader())
            .await
            .map_err(store)?;
            for r in missing {
                let version: i64 = r.try_get(0).map_err(store)?;
                let source: String = r.try_get(1).map_err(store)?;
                node.state
                    .define_version(&source, &self.shared.known_actions, version as u32)?;
            }
        }
        Ok(())
    }

    /// Heartbeat, renew leases, take free or expired partitions up to a
    /// fair share, give surplus ones back.
    async fn lease_tick(&self) -> Result<(), LifecycleError> {
        let o = &self.shared.options;
        let now = keel_core::time::now_millis();
        let lease_ms = o.lease.as_millis() as i64;
        let db = self.shared.db.reader();
        sqlx::query("INSERT INTO lifecycle_nodes (node, heartbeat) VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET heartbeat = EXCLUDED.heartbeat")
            .bind(o.node.clone())
            .bind(now)
            .execute(db)
            .await
            .map_err(store)?;
        let live: i64 = sqlx::query("SELECT COUNT(*) FROM lifecycle_nodes WHERE heartbeat > $1")
            .bind(now - lease_ms)
            .fetch_one(db)
            .await
            .map_err(store)?
            .try_get(0)
            .map_err(store)?;
        let share = (o.partitions as usize).div_ceil(live.max(1) as usize);
        // Answered inbox rows are kept an hour for callers still polling.
        sqlx::query("DELETE FROM lifecycle_inbox WHERE done = 1 AND created_at < $1")
            .bind(now - INBOX_RETENTION_MS)
            .execute(db)
            .await
            .map_err(store)?;
        let mut node = self.shared.node.lock().await;
        self.refresh_definitions(&mut node).await?;
        // Renew.
        let mut lost = false;
        for (&p, &epoch) in &node.owned {
            let n = sqlx::query("UPDATE lifecycle_partitions SET lease_until = $1 WHERE partition_id = $2 AND owner = $3 AND epoch = $4")
                .bind(now + lease_ms)
                .bind(i64::from(p))
                .bind(o.node.clone())
                .bind(epoch)
                .execute(db)
                .await
                .map_err(store)?
                .rows_affected();
            lost |= n == 0;
        }
        if lost {
            tracing::warn!(node = %o.node, "a lifecycle partition lease was lost; reloading");
            node.owned.clear();
            self.reload(&mut node).await?;
        }
        // Give back surplus partitions (a node joined).
        if node.owned.len() > share {
            let mut mine: Vec<(u32, i64)> = node.owned.iter().map(|(&p, &e)| (p, e)).collect();
            mine.sort_unstable();
            for (p, epoch) in mine.into_iter().skip(share) {
                sqlx::query("UPDATE lifecycle_partitions SET owner = NULL, lease_until = 0 WHERE partition_id = $1 AND owner = $2 AND epoch = $3")
                    .bind(i64::from(p))
                    .bind(o.node.clone())
                    .bind(epoch)
                    .execute(db)
                    .await
                    .map_err(store)?;
                node.owned.remove(&p);
            }
            self.reload(&mut node).await?;
        }
        // Take free or expired partitions.
        if node.owned.len() < share {
            let free = sqlx::query("SELECT partition_id FROM lifecycle_partitions WHERE owner IS NULL OR lease_until < $1 ORDER BY partition_id")
                .bind(now)
                .fetch_all(db)
                .await
                .map_err(store)?;
            let mut gained = false;
            for row in free {
                if node.owned.len() >= share {
                    break;
                }
                let p: i64 = row.try_get(0).map_err(store)?;
                let got = sqlx::query(
                    "UPDATE lifecycle_partitions SET owner = $1, lease_until = $2, epoch = epoch + 1 \
                     WHERE partition_id = $3 AND (owner IS NULL OR lease_until < $4) RETURNING epoch",
                )
                .bind(o.node.clone())
                .bind(now + lease_ms)
                .bind(p)
                .bind(now)
                .fetch_optional(db)
                .await
                .map_err(store)?;
                if let Some(row) = got {
                    let epoch: i64 = row.try_get(0).map_err(store)?;
                    node.owned.insert(p as u32, epoch);
                    gained = true;
                    tracing::info!(node = %o.node, partition = p, epoch, "took lifecycle partition");
                }
            }
            if gained {
                self.reload(&mut node).await?;
            }
        }
        self.mirror_owned(&node);
        Ok(())
    }

    fn mirror_owned(&self, node: &Node) {
        if let Ok(mut o) = self.shared.owned_now.write() {
            *o = node.owned.keys().copied().collect();
        }
    }

    /// Rebuilds the node's state from the store for the partitions it owns:
    /// definitions, instances, idempotency keys; re-arms timers and
    /// restarts unfinished actions.
    async fn reload(&self, node: &mut Node) -> Result<(), LifecycleError> {
        node.state = State::default();
        node.timers.clear();
        self.refresh_definitions(node).await?;
        if node.owned.is_empty() {
            return Ok(());
        }
        let list = owned_list(&node.owned);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT lifecycle, instance_key, version, body FROM lifecycle_instances WHERE partition_id IN ({list}) ORDER BY lifecycle, instance_key"
        )))
        .fetch_all(self.shared.db.reader())
        .await
        .map_err(store)?;
        let mut effects = Vec::new();
        for row in rows {
            let lifecycle: String = row.try_get(0).map_err(store)?;
            let key: String = row.try_get(1).map_err(store)?;
            let version: i64 = row.try_get(2).map_err(store)?;
            let body: String = row.try_get(3).map_err(store)?;
            let inst = crate::snapshot::decode_instance_bytes(&unb64(&body)?)
                .map_err(|e| LifecycleError::Replay(format!("instance {lifecycle}/{key}: {e}")))?;
            let slot = node
                .state
                .insert_loaded(&lifecycle, &key, version as u32, inst)
                .map_err(LifecycleError::Replay)?;
            effects.extend(node.state.resume_effects(slot));
        }
        let idem = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT lifecycle, instance_key, idempotency_key, expires_at FROM lifecycle_idempotency WHERE partition_id IN ({list})"
        )))
        .fetch_all(self.shared.db.reader())
        .await
        .map_err(store)?;
        for row in idem {
            let l: String = row.try_get(0).map_err(store)?;
            let k: String = row.try_get(1).map_err(store)?;
            let i: String = row.try_get(2).map_err(store)?;
            let exp: i64 = row.try_get(3).map_err(store)?;
            node.state
                .remember_idempotency(crate::engine::idempotency_hash(&l, &k, &i), exp);
        }
        self.run_effects(node, effects);
        Ok(())
    }

    /// One round over the owned partitions: inbox rows, due timers, action
    /// results, applied and committed in one fenced transaction. Returns
    /// whether there may be more to do at once.
    async fn process_once(&self) -> Result<bool, LifecycleError> {
        let mut node = self.shared.node.lock().await;
        if node.owned.is_empty() {
            return Ok(false);
        }
        let now = keel_core::time::now_millis();
        let list = owned_list(&node.owned);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, lifecycle, instance_key, op, event, data, idempotency_key, partition_id FROM lifecycle_inbox \
             WHERE done = 0 AND partition_id IN ({list}) ORDER BY id LIMIT 2000"
        )))
        .fetch_all(self.shared.db.reader())
        .await
        .map_err(store)?;
        let mut due = Vec::new();
        while let Some(&Reverse((at, slot))) = node.timers.peek() {
            if at > now {
                break;
            }
            node.timers.pop();
            due.push(slot);
        }
        let results = std::mem::take(&mut node.results);
        let local: Vec<LocalOp> = self
            .shared
            .local
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        if rows.is_empty() && due.is_empty() && results.is_empty() && local.is_empty() {
            return Ok(false);
        }
        if rows.iter().any(|r| {
            let l: String = r.try_get(1).unwrap_or_default();
            !l.is_empty() && !node.state.def_ids.contains_key(l.as_str())
        }) {
            self.refresh_definitions(&mut node).await?;
        }
        let routing = Routing {
            partitions: self.shared.options.partitions,
            owned: node.owned.keys().copied().collect::<HashSet<u32>>(),
        };
        let ttl = self.shared.options.idempotency_ttl.as_millis() as i64;
        let mut batch = Batch::new(now, 0, ttl, Some(routing));
        let mut done: Vec<(i64, String)> = Vec::with_capacity(rows.len());
        let mut idem_rows: Vec<(String, String, String)> = Vec::new();
        let more = rows.len() == 2000;
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(store)?;
            let lifecycle: String = row.try_get(1).map_err(store)?;
            let key: String = row.try_get(2).map_err(store)?;
            let op: i64 = row.try_get(3).map_err(store)?;
            let event: String = row.try_get(4).map_err(store)?;
            let data_text: Option<String> = row.try_get(5).map_err(store)?;
            let idem: Option<String> = row.try_get(6).map_err(store)?;
            let data: Value = data_text
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null);
            let inbox_row = (row_partition(row), lifecycle, key, op, event, data, idem);
            let result = self.apply_op(&mut node, &mut batch, &inbox_row, &mut idem_rows);
            done.push((id, result.to_string()));
        }
        // Requests this node took itself (it owns their partition): applied
        // in this round and answered once it commits.
        let mut local_replies = Vec::with_capacity(local.len());
        for (row, reply) in local {
            if node.owned.contains_key(&(row.0 as u32)) {
                let result = self.apply_op(&mut node, &mut batch, &row, &mut idem_rows);
                local_replies.push((reply, result));
            } else {
                let _ = reply.send(json!({"retry": true}));
            }
        }
        for slot in due {
            let timers: Vec<_> = match node.state.slots.get(slot as usize) {
                Some(s) => s
                    .inst
                    .timers()
                    .iter()
                    .filter(|t| t.at <= now)
                    .copied()
                    .collect(),
                None => continue,
            };
            for t in timers {
                node.state
                    .apply_internal(slot, Input::TimerFired(t), &Value::Null, &mut batch);
            }
        }
        for (lifecycle, key, token, ok, data) in results {
            if let Some(slot) = node.state.find(&lifecycle, &key) {
                node.state.apply_internal(
                    slot,
                    Input::ActionFinished { token, ok },
                    &data,
                    &mut batch,
                );
            }
        }
        // What to write: history from the batch's records, the instances
        // they touched, the inbox rows done, inputs for other partitions.
        let mut history = Vec::new();
        let mut touched: Vec<(String, String)> = Vec::new();
        for r in crate::log::records(&batch.body) {
            let r = r.map_err(|e| LifecycleError::Replay(e.to_string()))?;
            if matches!(r.input, RecordInput::Define { .. }) {
                continue;
            }
            let (kind, ev) = crate::engine::history_kind(&r.input);
            history.push((
                r.lifecycle.to_owned(),
                r.key.to_owned(),
                r.time,
                kind,
                ev,
                r.from.to_owned(),
                r.to.to_owned(),
                r.data.to_string(),
                r.note.to_owned(),
            ));
            touched.push((r.lifecycle.to_owned(), r.key.to_owned()));
        }
        touched.sort();
        touched.dedup();
        let partitions = self.shared.options.partitions;
        let mut instances = Vec::with_capacity(touched.len());
        for (l, k) in &touched {
            if let Some(slot) = node.state.find(l, k) {
                let s = &node.state.slots[slot as usize];
                let m = &node.state.defs[s.def as usize].versions[s.version as usize - 1];
                instances.push((
                    l.clone(),
                    k.clone(),
                    i64::from(partition_of(k, partitions)),
                    i64::from(s.version),
                    m.state_name(s.inst.state).to_owned(),
                    b64(&crate::snapshot::encode_instance_bytes(&s.inst)),
                ));
            }
        }
        let remote: Vec<(i64, String, String, i64, String, String)> = batch
            .remote
            .drain(..)
            .map(|op| match op {
                RemoteOp::Event {
                    lifecycle,
                    key,
                    event,
                    data,
                } => (
                    i64::from(partition_of(&key, partitions)),
                    lifecycle,
                    key,
                    OP_EVENT,
                    event,
                    data.to_string(),
                ),
                RemoteOp::Start {
                    lifecycle,
                    key,
                    data,
                    parent,
                } => (
                    i64::from(partition_of(&key, partitions)),
                    lifecycle,
                    key,
                    OP_CHILD_START,
                    String::new(),
                    json!({"parent": parent_to_json(&parent), "data": data}).to_string(),
                ),
                RemoteOp::Child { parent, data } => (
                    i64::from(partition_of(&parent.key, partitions)),
                    parent.lifecycle.clone(),
                    parent.key.clone(),
                    OP_CHILD_DONE,
                    String::new(),
                    json!({"parent": parent_to_json(&parent), "data": data}).to_string(),
                ),
            })
            .collect();
        let owned: Vec<(u32, i64)> = node.owned.iter().map(|(&p, &e)| (p, e)).collect();
        let me = self.shared.options.node.clone();
        let lease_ms = self.shared.options.lease.as_millis() as i64;
        let expires = now + ttl;
        let written = self
            .shared
            .db
            .write(move |conn: &mut AnyConnection| -> WriteFuture<'_, (), LifecycleError> {
                Box::pin(async move {
                    for (p, epoch) in &owned {
                        let n = sqlx::query("UPDATE lifecycle_partitions SET lease_until = $1 WHERE partition_id = $2 AND owner = $3 AND epoch = $4")
                            .bind(now + lease_ms)
                            .bind(i64::from(*p))
                            .bind(me.clone())
                            .bind(*epoch)
                            .execute(&mut *conn)
                            .await
                            .map_err(store)?
                            .rows_affected();
                        if n != 1 {
                            return Err(LifecycleError::Unavailable(format!("lease of partition {p} lost")));
                        }
                    }
                    // Multi-row statements: a round costs a handful of
                    // round trips to PostgreSQL, not one per row.
                    let rows: Vec<Vec<SqlValue>> = instances
                        .into_iter()
                        .map(|(l, k, p, v, st, body)| vec![T(l), T(k), I(p), I(v), T(st), T(body), I(now)])
                        .collect();
                    insert_rows(
                        conn,
                        "INSERT INTO lifecycle_instances (lifecycle, instance_key, partition_id, version, state, body, updated_at) VALUES ",
                        " ON CONFLICT (lifecycle, instance_key) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state, \
                         body = EXCLUDED.body, updated_at = EXCLUDED.updated_at",
                        rows,
                    )
                    .await?;
                    let rows: Vec<Vec<SqlValue>> = history
                        .into_iter()
                        .map(|(l, k, time, kind, ev, from, to, data, note)| {
                            vec![T(l), T(k), I(time), T(kind.to_owned()), T(ev), T(from), T(to), T(data), T(note)]
                        })
                        .collect();
                    insert_rows(
                        conn,
                        "INSERT INTO lifecycle_history (lifecycle, instance_key, time, kind, event, from_state, to_state, data, note) VALUES ",
                        "",
                        rows,
                    )
                    .await?;
                    let rows: Vec<Vec<SqlValue>> = idem_rows
                        .into_iter()
                        .map(|(l, k, i)| {
                            let p = i64::from(partition_of(&k, partitions));
                            vec![T(l), T(k), T(i), I(p), I(expires)]
                        })
                        .collect();
                    insert_rows(
                        conn,
                        "INSERT INTO lifecycle_idempotency (lifecycle, instance_key, idempotency_key, partition_id, expires_at) VALUES ",
                        " ON CONFLICT DO NOTHING",
                        rows,
                    )
                    .await?;
                    for chunk in done.chunks(ROWS_PER_STATEMENT) {
                        let mut sql = String::from("UPDATE lifecycle_inbox AS i SET done = 1, result = v.result FROM (VALUES ");
                        let mut binds = Vec::with_capacity(chunk.len() * 2);
                        for (n, (id, result)) in chunk.iter().enumerate() {
                            if n > 0 {
                                sql.push_str(", ");
                            }
                            sql.push_str(&format!("(CAST(${} AS BIGINT), CAST(${} AS TEXT))", 2 * n + 1, 2 * n + 2));
                            binds.push(I(*id));
                            binds.push(T(result.clone()));
                        }
                        sql.push_str(") AS v(id, result) WHERE i.id = v.id");
                        keel_store::bind_all(sql, &binds).execute(&mut *conn).await.map_err(store)?;
                    }
                    let rows: Vec<Vec<SqlValue>> = remote
                        .into_iter()
                        .map(|(p, l, k, op, ev, data)| vec![I(p), T(l), T(k), I(op), T(ev), T(data), I(now), I(0)])
                        .collect();
                    insert_rows(
                        conn,
                        "INSERT INTO lifecycle_inbox (partition_id, lifecycle, instance_key, op, event, data, created_at, done) VALUES ",
                        "",
                        rows,
                    )
                    .await?;
                    Ok(())
                })
            })
            .await;
        match written {
            Ok(()) => {
                let effects = std::mem::take(&mut batch.effects);
                self.run_effects(&mut node, effects);
                drop(node);
                for (reply, result) in local_replies {
                    let _ = reply.send(result);
                }
                self.shared.committed.notify_waiters();
                Ok(more)
            }
            Err(e) => {
                // Requests taken locally were not kept: their callers go
                // through the inbox instead.
                for (reply, _) in local_replies {
                    let _ = reply.send(json!({"retry": true}));
                }
                // The memory is ahead of the store: forget it and let the
                // lease round take the partitions again from the store.
                node.owned.clear();
                self.mirror_owned(&node);
                node.state = State::default();
                node.timers.clear();
                Err(e)
            }
        }
    }

    /// Applies one inbox row (or a request this node took itself) and
    /// returns its result as the inbox stores it.
    fn apply_op(
        &self,
        node: &mut Node,
        batch: &mut Batch,
        row: &InboxRow,
        idem_rows: &mut Vec<(String, String, String)>,
    ) -> Value {
        let (partition, lifecycle, key, op, event, data, idem) = row;
        let op = *op;
        let lc = (!lifecycle.is_empty()).then(|| lifecycle.clone());
        let result = match op {
            OP_START => {
                match node
                    .state
                    .start_op(lifecycle, key, data, idem.as_deref(), batch)
                {
                    Ok(s) => json!({"ok": s}),
                    Err(e) => error_json(&e),
                }
            }
            OP_EVENT | OP_PREFIX | OP_STATE => {
                let target = match op {
                    OP_EVENT => Target::Key {
                        lifecycle: lc,
                        key: key.clone(),
                    },
                    OP_PREFIX => Target::Prefix {
                        lifecycle: lifecycle.clone(),
                        prefix: key.clone(),
                    },
                    _ => Target::State {
                        lifecycle: lifecycle.clone(),
                        state: key.clone(),
                    },
                };
                let req = SendRequest {
                    event: event.clone(),
                    target,
                    data: data.clone(),
                    idempotency_key: idem.clone(),
                };
                // A broadcast only reaches this partition's instances.
                let r = node.state.send_filtered(&req, batch, |k| {
                    partition_of(k, self.shared.options.partitions) as i64 == *partition
                });
                match r {
                    Ok(report) => {
                        if let Some(i) = &idem {
                            for m in &report.moved {
                                idem_rows.push((
                                    m.lifecycle.to_string(),
                                    m.key.to_string(),
                                    i.clone(),
                                ));
                            }
                        }
                        json!({"ok": report})
                    }
                    Err(LifecycleError::NotFound { .. }) if op != OP_EVENT => {
                        json!({"ok": SendReport::default()})
                    }
                    Err(e) => error_json(&e),
                }
            }
            OP_CHILD_START => {
                let parent: Option<ParentRef> = data.get("parent").and_then(parent_from_json);
                match parent {
                    Some(p) => match node.state.start_child_op(
                        lifecycle,
                        key,
                        data.get("data").unwrap_or(&Value::Null),
                        p,
                        batch,
                    ) {
                        Ok(()) => json!({"ok": true}),
                        Err(e) => error_json(&e),
                    },
                    None => {
                        json!({"error": {"kind": "invalid", "message": "child start without parent"}})
                    }
                }
            }
            OP_CHILD_DONE => {
                if let Some(p) = data.get("parent").and_then(parent_from_json) {
                    node.state.child_finished_op(
                        &p,
                        data.get("data").unwrap_or(&Value::Null),
                        batch,
                    );
                }
                json!({"ok": true})
            }
            _ => {
                json!({"error": {"kind": "invalid", "message": format!("unknown inbox op {op}")}})
            }
        };
        if op == OP_START
            && let Some(i) = &idem
        {
            idem_rows.push((lifecycle.clone(), key.clone(), i.clone()));
        }
        result
    }

    fn run_effects(&self, node: &mut Node, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Arm { slot, at } => node.timers.push(Reverse((at, slot))),
                Effect::Run {
                    slot,
                    token,
                    request,
                    kind,
                } => {
                    let Some(action) = self.shared.options.actions.get(&kind) else {
                        continue;
                    };
                    let (lifecycle, key) = match node.state.slots.get(slot as usize) {
                        Some(s) => (
                            node.state.defs[s.def as usize].name.to_string(),
                            s.key.to_string(),
                        ),
                        None => continue,
                    };
                    let engine = self.clone();
                    let rt = self
                        .shared
                        .options
                        .runtime
                        .clone()
                        .unwrap_or_else(tokio::runtime::Handle::current);
                    rt.spawn(async move {
                        let (ok, data) = match action.run(request).await {
                            Ok(output) => (true, output),
                            Err(f) => (false, json!({"error": f.message, "output": f.output})),
                        };
                        engine
                            .shared
                            .node
                            .lock()
                            .await
                            .results
                            .push((lifecycle, key, token, ok, data));
                        engine.shared.wake.notify_one();
                    });
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // The API, as the embedded engine has it.

    pub async fn apply_definition(&self, source: &str) -> Result<Applied, LifecycleError> {
        let def = crate::parse::parse_definition(source, &self.shared.known_actions)?;
        let name = def.name.clone();
        {
            let node = self.shared.node.lock().await;
            for s in &def.states {
                if let Some(m) = &s.map
                    && m.lifecycle != def.name
                    && !node.state.def_ids.contains_key(m.lifecycle.as_str())
                {
                    return Err(LifecycleError::Invalid {
                        field: "definition",
                        message: format!(
                            "state `{}` maps over lifecycle `{}`, which does not exist; apply that definition first",
                            s.name, m.lifecycle
                        ),
                    });
                }
            }
        }
        let source = source.to_owned();
        let n2 = name.clone();
        let applied = self
            .shared
            .db
            .write(move |conn: &mut AnyConnection| -> WriteFuture<'_, Applied, LifecycleError> {
                Box::pin(async move {
                    let latest = sqlx::query("SELECT version, source FROM lifecycle_definitions WHERE name = $1 ORDER BY version DESC LIMIT 1")
                        .bind(n2.clone())
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(store)?;
                    let mut version = 1i64;
                    if let Some(row) = latest {
                        let v: i64 = row.try_get(0).map_err(store)?;
                        let s: String = row.try_get(1).map_err(store)?;
                        if s == source {
                            return Ok(Applied {
                                lifecycle: n2,
                                version: v as u32,
                                changed: false,
                            });
                        }
                        version = v + 1;
                    }
                    sqlx::query("INSERT INTO lifecycle_definitions (name, version, source, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(n2.clone())
                        .bind(version)
                        .bind(source)
                        .bind(keel_core::time::now_millis())
                        .execute(&mut *conn)
                        .await
                        .map_err(store)?;
                    Ok(Applied {
                        lifecycle: n2,
                        version: version as u32,
                        changed: true,
                    })
                })
            })
            .await?;
        let mut node = self.shared.node.lock().await;
        self.refresh_definitions(&mut node).await?;
        Ok(applied)
    }

    fn check_payload(&self, data: &Value) -> Result<(), LifecycleError> {
        crate::engine::check_payload(data, self.shared.options.max_payload_bytes)
    }

    async fn known_lifecycle(&self, name: &str) -> Result<(), LifecycleError> {
        let mut node = self.shared.node.lock().await;
        if !node.state.def_ids.contains_key(name) {
            self.refresh_definitions(&mut node).await?;
        }
        if node.state.def_ids.contains_key(name) {
            Ok(())
        } else {
            Err(LifecycleError::NotFound {
                kind: "lifecycle",
                name: name.to_owned(),
            })
        }
    }

    /// Inserts inbox rows (the acknowledgement: committed = durable) and
    /// waits for their owners to apply them.
    async fn submit(&self, rows: Vec<InboxRow>) -> Result<Vec<Value>, LifecycleError> {
        // One request for a partition this node owns: apply it here in the
        // next round, acknowledged when that round commits.
        if self.shared.options.owner
            && rows.len() == 1
            && self
                .shared
                .owned_now
                .read()
                .is_ok_and(|o| o.contains(&(rows[0].0 as u32)))
        {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let row = rows[0].clone();
            if let Ok(mut l) = self.shared.local.lock() {
                l.push((row, tx));
            }
            self.shared.wake.notify_one();
            if let Ok(Ok(result)) = tokio::time::timeout(Duration::from_secs(30), rx).await
                && result.get("retry").is_none()
            {
                return Ok(vec![result]);
            }
        }
        let now = keel_core::time::now_millis();
        let ids = self
            .shared
            .db
            .write(move |conn: &mut AnyConnection| -> WriteFuture<'_, Vec<i64>, LifecycleError> {
                Box::pin(async move {
                    let mut ids = Vec::with_capacity(rows.len());
                    for (p, l, k, op, ev, data, idem) in rows {
                        let row = sqlx::query(
                            "INSERT INTO lifecycle_inbox (partition_id, lifecycle, instance_key, op, event, data, idempotency_key, created_at, done) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) RETURNING id",
                        )
                        .bind(p)
                        .bind(l)
                        .bind(k)
                        .bind(op)
                        .bind(ev)
                        .bind((!data.is_null()).then(|| data.to_string()))
                        .bind(idem)
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(store)?;
                        ids.push(row.try_get::<i64, _>(0).map_err(store)?);
                    }
                    Ok(ids)
                })
            })
            .await?;
        self.shared.wake.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut results = vec![Value::Null; ids.len()];
        loop {
            let waiting = self.shared.committed.notified();
            let mut pending = false;
            for (i, id) in ids.iter().enumerate() {
                if !results[i].is_null() {
                    continue;
                }
                let row = sqlx::query("SELECT done, result FROM lifecycle_inbox WHERE id = $1")
                    .bind(*id)
                    .fetch_one(self.shared.db.reader())
                    .await
                    .map_err(store)?;
                let done: i64 = row.try_get(0).map_err(store)?;
                if done == 1 {
                    let text: Option<String> = row.try_get(1).map_err(store)?;
                    results[i] = text
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or(json!({"ok": null}));
                } else {
                    pending = true;
                }
            }
            if !pending {
                return Ok(results);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LifecycleError::Unavailable(format!(
                    "the event is stored (inbox id {}) but no node applied it within 30 s; it will be applied when a node owns its partition",
                    ids[0]
                )));
            }
            tokio::select! {
                _ = waiting => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    pub async fn start(
        &self,
        lifecycle: &str,
        key: &str,
        data: Value,
        idempotency_key: Option<String>,
    ) -> Result<Started, LifecycleError> {
        validate_key(key)?;
        self.check_payload(&data)?;
        self.known_lifecycle(lifecycle).await?;
        let p = i64::from(partition_of(key, self.shared.options.partitions));
        let r = self
            .submit(vec![(
                p,
                lifecycle.to_owned(),
                key.to_owned(),
                OP_START,
                String::new(),
                data,
                idempotency_key,
            )])
            .await?;
        from_result(&r[0])
    }

    pub async fn send(&self, req: SendRequest) -> Result<SendReport, LifecycleError> {
        crate::parse::check_event_name(&req.event).map_err(|m| LifecycleError::Invalid {
            field: "event",
            message: m,
        })?;
        self.check_payload(&req.data)?;
        let parts = self.shared.options.partitions;
        let rows = match &req.target {
            Target::Key { lifecycle, key } => {
                validate_key(key)?;
                if let Some(l) = lifecycle {
                    self.known_lifecycle(l).await?;
                }
                vec![(
                    i64::from(partition_of(key, parts)),
                    lifecycle.clone().unwrap_or_default(),
                    key.clone(),
                    OP_EVENT,
                    req.event.clone(),
                    req.data.clone(),
                    req.idempotency_key.clone(),
                )]
            }
            Target::Prefix { lifecycle, prefix } => {
                self.known_lifecycle(lifecycle).await?;
                (0..parts)
                    .map(|p| {
                        (
                            i64::from(p),
                            lifecycle.clone(),
                            prefix.clone(),
                            OP_PREFIX,
                            req.event.clone(),
                            req.data.clone(),
                            req.idempotency_key.clone(),
                        )
                    })
                    .collect()
            }
            Target::State { lifecycle, state } => {
                self.known_lifecycle(lifecycle).await?;
                let node = self.shared.node.lock().await;
                let known = node
                    .state
                    .def_ids
                    .get(lifecycle.as_str())
                    .is_some_and(|&d| {
                        node.state.defs[d as usize]
                            .versions
                            .iter()
                            .any(|m| m.state_id(state).is_some())
                    });
                if !known {
                    return Err(LifecycleError::Invalid {
                        field: "state",
                        message: format!("lifecycle `{lifecycle}` has no state `{state}`"),
                    });
                }
                (0..parts)
                    .map(|p| {
                        (
                            i64::from(p),
                            lifecycle.clone(),
                            state.clone(),
                            OP_STATE,
                            req.event.clone(),
                            req.data.clone(),
                            req.idempotency_key.clone(),
                        )
                    })
                    .collect()
            }
        };
        let results = self.submit(rows).await?;
        let mut total = SendReport::default();
        for r in &results {
            let one: SendReport = from_result(r)?;
            total.matched += one.matched;
            total.applied += one.applied;
            total.duplicates += one.duplicates;
            total.moved.extend(one.moved);
            total.rejected.extend(one.rejected);
        }
        total.moved.truncate(crate::engine::REPORT_LIMIT);
        total.rejected.truncate(crate::engine::REPORT_LIMIT);
        Ok(total)
    }

    async fn machine(
        &self,
        lifecycle: &str,
        version: Option<u32>,
    ) -> Result<Arc<crate::machine::Machine>, LifecycleError> {
        self.known_lifecycle(lifecycle).await?;
        let node = self.shared.node.lock().await;
        let d = &node.state.defs[node.state.def_ids[lifecycle] as usize];
        match version {
            None => Ok(d.latest().clone()),
            Some(v) => d
                .versions
                .get((v as usize).wrapping_sub(1))
                .cloned()
                .ok_or_else(|| LifecycleError::NotFound {
                    kind: "definition version",
                    name: format!("{lifecycle} v{v}"),
                }),
        }
    }

    pub async fn definition(
        &self,
        lifecycle: &str,
        version: Option<u32>,
    ) -> Result<Arc<crate::machine::Machine>, LifecycleError> {
        self.machine(lifecycle, version).await
    }

    pub async fn definitions(&self) -> Result<Vec<DefinitionSummary>, LifecycleError> {
        let mut node = self.shared.node.lock().await;
        self.refresh_definitions(&mut node).await?;
        let counts =
            sqlx::query("SELECT lifecycle, COUNT(*) FROM lifecycle_instances GROUP BY lifecycle")
                .fetch_all(self.shared.db.reader())
                .await
                .map_err(store)?;
        let mut by: HashMap<String, i64> = HashMap::new();
        for r in counts {
            by.insert(r.try_get(0).map_err(store)?, r.try_get(1).map_err(store)?);
        }
        Ok(node
            .state
            .defs
            .iter()
            .map(|d| {
                let m = d.latest();
                DefinitionSummary {
                    lifecycle: d.name.to_string(),
                    latest_version: m.version,
                    mode: mode_name(m.mode()),
                    description: m.definition.description.clone(),
                    instances: by.get(&*d.name).copied().unwrap_or(0) as u64,
                }
            })
            .collect())
    }

    fn view_row(
        &self,
        m: &crate::machine::Machine,
        lifecycle: &str,
        key: &str,
        body: &str,
    ) -> Result<InstanceView, LifecycleError> {
        let inst = crate::snapshot::decode_instance_bytes(&unb64(body)?)
            .map_err(|e| LifecycleError::Replay(e.to_string()))?;
        Ok(view_of(m, lifecycle, key, &inst))
    }

    pub async fn get(&self, lifecycle: &str, key: &str) -> Result<InstanceView, LifecycleError> {
        self.known_lifecycle(lifecycle).await?;
        let row = sqlx::query("SELECT version, body FROM lifecycle_instances WHERE lifecycle = $1 AND instance_key = $2")
            .bind(lifecycle.to_owned())
            .bind(key.to_owned())
            .fetch_optional(self.shared.db.reader())
            .await
            .map_err(store)?
            .ok_or_else(|| LifecycleError::NotFound {
                kind: "instance",
                name: format!("{lifecycle}/{key}"),
            })?;
        let version: i64 = row.try_get(0).map_err(store)?;
        let body: String = row.try_get(1).map_err(store)?;
        let m = self.machine(lifecycle, Some(version as u32)).await?;
        self.view_row(&m, lifecycle, key, &body)
    }

    pub async fn list(&self, lifecycle: &str, q: &ListQuery) -> Result<ListPage, LifecycleError> {
        self.known_lifecycle(lifecycle).await?;
        if let Some(s) = &q.state {
            let m = self.machine(lifecycle, None).await?;
            if m.state_id(s).is_none() {
                return Err(LifecycleError::Invalid {
                    field: "state",
                    message: format!("lifecycle `{lifecycle}` has no state `{s}`"),
                });
            }
        }
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(10_000)
        };
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT instance_key, version, body FROM lifecycle_instances WHERE lifecycle = $1 \
             AND substr(instance_key, 1, length($2)) = $2 AND instance_key > $3 AND ($4 = '' OR state = $4) \
             ORDER BY instance_key LIMIT $5",
        )
        .bind(lifecycle.to_owned())
        .bind(prefix)
        .bind(q.after.clone().unwrap_or_default())
        .bind(q.state.clone().unwrap_or_default())
        .bind(limit as i64 + 1)
        .fetch_all(self.shared.db.reader())
        .await
        .map_err(store)?;
        let mut out = Vec::new();
        for row in rows.iter().take(limit) {
            let key: String = row.try_get(0).map_err(store)?;
            let version: i64 = row.try_get(1).map_err(store)?;
            let body: String = row.try_get(2).map_err(store)?;
            let m = self.machine(lifecycle, Some(version as u32)).await?;
            out.push(self.view_row(&m, lifecycle, &key, &body)?);
        }
        let next = (rows.len() > limit)
            .then(|| out.last().map(|v| v.key.clone()))
            .flatten();
        Ok(ListPage {
            instances: out,
            next,
        })
    }

    pub async fn stats(&self, lifecycle: &str) -> Result<LifecycleStats, LifecycleError> {
        let m = self.machine(lifecycle, None).await?;
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM lifecycle_instances WHERE lifecycle = $1 GROUP BY state",
        )
        .bind(lifecycle.to_owned())
        .fetch_all(self.shared.db.reader())
        .await
        .map_err(store)?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        for r in rows {
            let s: String = r.try_get(0).map_err(store)?;
            let n: i64 = r.try_get(1).map_err(store)?;
            counts.insert(s, n as u64);
        }
        let mut states: Vec<StateCount> = m
            .top_states()
            .map(|s| StateCount {
                state: s.to_owned(),
                count: counts.remove(s).unwrap_or(0),
            })
            .collect();
        let mut rest: Vec<_> = counts.into_iter().collect();
        rest.sort();
        states.extend(
            rest.into_iter()
                .map(|(state, count)| StateCount { state, count }),
        );
        Ok(LifecycleStats {
            lifecycle: lifecycle.to_owned(),
            latest_version: m.version,
            mode: mode_name(m.mode()),
            instances: states.iter().map(|s| s.count).sum(),
            states,
        })
    }

    pub async fn history(
        &self,
        lifecycle: &str,
        key: &str,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, LifecycleError> {
        self.get(lifecycle, key).await?;
        let limit = if limit == 0 { i64::MAX } else { limit as i64 };
        let rows = sqlx::query(
            "SELECT time, kind, event, from_state, to_state, data, note FROM lifecycle_history \
             WHERE lifecycle = $1 AND instance_key = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(lifecycle.to_owned())
        .bind(key.to_owned())
        .bind(limit)
        .fetch_all(self.shared.db.reader())
        .await
        .map_err(store)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let kind: String = r.try_get(1).map_err(store)?;
            let data: Option<String> = r.try_get(5).map_err(store)?;
            out.push(HistoryEntry {
                time: r.try_get(0).map_err(store)?,
                kind: crate::engine::static_kind(&kind),
                event: r.try_get(2).map_err(store)?,
                from: r.try_get(3).map_err(store)?,
                to: r.try_get(4).map_err(store)?,
                data: data
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or(Value::Null),
                note: r.try_get(6).map_err(store)?,
            });
        }
        Ok(out)
    }

    /// Partitions this node owns now.
    pub async fn owned_partitions(&self) -> Vec<u32> {
        let node = self.shared.node.lock().await;
        let mut v: Vec<u32> = node.owned.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// Rows per multi-row statement (PostgreSQL takes at most 65,535 binds).
const ROWS_PER_STATEMENT: usize = 500;

/// `head` + `($1, …), (…)` + `tail`, in chunks of [`ROWS_PER_STATEMENT`].
async fn insert_rows(
    conn: &mut AnyConnection,
    head: &str,
    tail: &str,
    rows: Vec<Vec<SqlValue>>,
) -> Result<(), LifecycleError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(head);
        let mut binds = Vec::new();
        for (n, row) in chunk.iter().enumerate() {
            sql.push_str(if n == 0 { "(" } else { ", (" });
            for (c, v) in row.iter().enumerate() {
                if c > 0 {
                    sql.push_str(", ");
                }
                binds.push(v.clone());
                sql.push_str(&format!("${}", binds.len()));
            }
            sql.push(')');
        }
        sql.push_str(tail);
        keel_store::bind_all(sql, &binds)
            .execute(&mut *conn)
            .await
            .map_err(store)?;
    }
    Ok(())
}

fn row_partition(row: &keel_store::AnyRow) -> i64 {
    row.try_get::<i64, _>(7).unwrap_or(-1)
}

fn owned_list(owned: &HashMap<u32, i64>) -> String {
    let mut v: Vec<u32> = owned.keys().copied().collect();
    v.sort_unstable();
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn parent_to_json(p: &ParentRef) -> Value {
    json!({"lifecycle": p.lifecycle, "key": p.key, "token": p.token})
}

fn parent_from_json(v: &Value) -> Option<ParentRef> {
    Some(ParentRef {
        lifecycle: v.get("lifecycle")?.as_str()?.to_owned(),
        key: v.get("key")?.as_str()?.to_owned(),
        token: v.get("token")?.as_u64()?,
    })
}

fn error_json(e: &LifecycleError) -> Value {
    let kind = match e {
        LifecycleError::NotFound { .. } => "not_found",
        LifecycleError::Invalid { .. } => "invalid",
        LifecycleError::Rejected(crate::machine::Rejection::UnknownEvent { .. }) => "unknown_event",
        LifecycleError::Rejected(_) => "rejected",
        _ => "internal",
    };
    json!({"error": {"kind": kind, "message": e.to_string()}})
}

fn from_result<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, LifecycleError> {
    if let Some(err) = v.get("error") {
        let message = err["message"].as_str().unwrap_or("failed").to_owned();
        return Err(match err["kind"].as_str() {
            Some("not_found") => LifecycleError::Remote {
                status: 404,
                message,
            },
            Some("invalid") | Some("unknown_event") => LifecycleError::Remote {
                status: 400,
                message,
            },
            Some("rejected") => LifecycleError::Remote {
                status: 409,
                message,
            },
            _ => LifecycleError::Remote {
                status: 500,
                message,
            },
        });
    }
    serde_json::from_value(v.get("ok").cloned().unwrap_or(Value::Null))
        .map_err(|e| LifecycleError::Replay(format!("inbox result: {e}")))
}
