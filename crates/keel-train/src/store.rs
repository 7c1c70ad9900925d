//! Jobs, the billing ledger and tenants' policies on the metadata store
//! (SQLite or PostgreSQL). Every state change is one transaction: an
//! attempt's ledger entry and the job's new state are written together, so
//! a bill never counts an attempt the job does not show, or the reverse.

use keel_core::time::now_millis;
use keel_store::{AnyRow, Db, Migration, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TrainError;
use crate::scheduler::TenantPolicy;
use crate::spec::JobSpec;

type Result<T> = std::result::Result<T, TrainError>;

/// The training domain's schema steps.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "train",
    version: 1,
    description: "training jobs, billing ledger, tenants",
    sqlite: include_str!("migrations/0001_train.sqlite.sql"),
    postgres: include_str!("migrations/0001_train.postgres.sql"),
}];

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for capacity, a quota, or its retry backoff.
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A sweep's parent: done when its children are.
    Sweep,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Sweep => "sweep",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
            JobState::Sweep,
        ]
        .into_iter()
        .find(|j| j.name() == s)
    }

    /// Whether nothing more will happen to the job.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub name: String,
    pub tenant: String,
    /// The sweep it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
    pub spec: JobSpec,
    pub trainer: String,
    pub executor: String,
    pub state: JobState,
    pub priority: i64,
    pub cpus: f64,
    pub memory_bytes: u64,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// A retried job waits until then (ms since the epoch).
    pub not_before: i64,
    pub submitted_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The tracking run of the current (or last) attempt.
    pub run_id: Option<String>,
    /// How the executor finds the running attempt again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<Value>,
    pub cancel_requested: bool,
    /// The last outcome or error, for people.
    pub message: Option<String>,
    /// The outcome for scripts (exit code, usage, a sweep's counts).
    pub result: Option<Value>,
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub spec: JobSpec,
    /// `Sweep` for a sweep's parent, else `Queued`.
    pub state: JobState,
}

/// What one attempt used, measured by the operating system (or Ray).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub started_at: i64,
    pub finished_at: i64,
    pub wall_seconds: f64,
    /// User + system CPU time of the job's processes.
    pub cpu_seconds: f64,
    /// Resident memory integrated over time (GB = 1e9 bytes).
    pub memory_gb_seconds: f64,
    pub max_rss_bytes: u64,
}

/// Prices per hour, in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub cpu_hour: f64,
    pub gb_hour: f64,
}

impl Default for Prices {
    /// Roughly a general-purpose cloud VM's split of CPU and memory.
    fn default() -> Self {
        Prices {
            cpu_hour: 0.04,
            gb_hour: 0.005,
        }
    }
}

impl Prices {
    pub fn cost(&self, usage: &Usage) -> f64 {
        usage.cpu_seconds / 3600.0 * self.cpu_hour + usage.memory_gb_seconds / 3600.0 * self.gb_hour
    }
}

/// One attempt's line of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    pub job_id: i64,
    pub job: String,
    pub attempt: u32,
    pub tenant: String,
    pub executor: String,
    #[serde(flatten)]
    pub usage: Usage,
    pub cpu_hour_price: f64,
    pub gb_hour_price: f64,
    pub cost: f64,
}

/// A tenant's bill over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BillingReport {
    pub tenant: String,
    /// The period, ms since the epoch, `[from, to)` by attempt end time.
    pub from: i64,
    pub to: i64,
    pub attempts: usize,
    pub cpu_seconds: f64,
    pub memory_gb_seconds: f64,
    pub wall_seconds: f64,
    pub cost: f64,
    pub entries: Vec<LedgerEntry>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Failed; queued again at `retry_at` when attempts remain.
    Failed {
        retry_at: Option<i64>,
    },
    Cancelled,
    /// The attempt never started (the server stopped first): queued again,
    /// not counted as an attempt.
    Requeue,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub tenant: Option<String>,
    pub state: Option<JobState>,
    pub parent: Option<i64>,
    pub limit: Option<u32>,
}

const COLUMNS: &str = "id, name, tenant, parent, spec, trainer, executor, state, priority, cpus, memory_bytes, attempts, max_attempts, not_before, submitted_at, started_at, finished_at, run_id, handle, cancel_requested, message, result";

fn job_from(row: &AnyRow) -> Result<Job> {
    let spec: String = row.try_get(4)?;
    let state: String = row.try_get(7)?;
    let handle: Option<String> = row.try_get(18)?;
    let result: Option<String> = row.try_get(21)?;
    let corrupt = |what: &str| TrainError::Corrupt(format!("job row: {what}"));
    Ok(Job {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        tenant: row.try_get(2)?,
        parent: row.try_get(3)?,
        spec: serde_json::from_str(&spec).map_err(|e| corrupt(&format!("spec: {e}")))?,
        trainer: row.try_get(5)?,
        executor: row.try_get(6)?,
        state: JobState::parse(&state).ok_or_else(|| corrupt(&format!("state {state:?}")))?,
        priority: row.try_get(8)?,
        cpus: row.try_get(9)?,
        memory_bytes: row.try_get::<i64, _>(10)?.max(0) as u64,
        attempts: row.try_get::<i64, _>(11)?.clamp(0, i64::from(u32::MAX)) as u32,
        max_attempts: row.try_get::<i64, _>(12)?.clamp(0, i64::from(u32::MAX)) as u32,
        not_before: row.try_get(13)?,
        submitted_at: row.try_get(14)?,
        started_at: row.try_get(15)?,
        finished_at: row.try_get(16)?,
        run_id: row.try_get(17)?,
        handle: handle.and_then(|h| serde_json::from_str(&h).ok()),
        cancel_requested: row.try_get::<i64, _>(19)? != 0,
        message: row.try_get(20)?,
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
    })
}

/// The training domain's tables. Cheap to clone.
#[derive(Clone)]
pub struct JobStore {
    db: Db,
}

impl JobStore {
    pub fn new(db: Db) -> Self {
        JobStore { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Inserts jobs in one transaction; a sweep's parent comes first and
    /// its children (the rest) point at it.
    pub async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let ids: Vec<i64> = self
            .db
            .write::<_, TrainError, _>(move |conn| {
                Box::pin(async move {
                    let now = now_millis();
                    let mut ids = Vec::with_capacity(jobs.len());
                    let mut parent: Option<i64> = None;
                    for j in jobs {
                        let s = &j.spec;
                        let row = sqlx::query(
                            "INSERT INTO train_jobs (name, tenant, parent, spec, trainer, executor, state, priority, cpus, memory_bytes, attempts, max_attempts, not_before, submitted_at, cancel_requested) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, 0, $12, 0) RETURNING id",
                        )
                        .bind(s.job.as_str())
                        .bind(s.tenant.as_str())
                        .bind(parent)
                        .bind(serde_json::to_string(s).map_err(|e| TrainError::Invalid(e.to_string()))?)
                        .bind(s.trainer.label())
                        .bind(s.executor.name())
                        .bind(j.state.name())
                        .bind(s.priority)
                        .bind(s.resources.cpus)
                        .bind(s.resources.memory_bytes.min(i64::MAX as u64) as i64)
                        .bind(i64::from(s.retries) + 1)
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?;
                        let id: i64 = row.try_get(0)?;
                        if j.state == JobState::Sweep {
                            parent = Some(id);
                        }
                        ids.push(id);
                    }
                    Ok(ids)
                })
            })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get(id).await?);
        }
        Ok(out)
    }

    pub async fn get(&self, id: i64) -> Result<Job> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM train_jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(TrainError::NotFound(id))?;
        job_from(&row)
    }

    /// Jobs, newest first.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut sql = format!("SELECT {COLUMNS} FROM train_jobs WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if filter.tenant.is_some() {
            sql.push_str(&format!(" AND tenant = ${}", next()));
        }
        if filter.state.is_some() {
            sql.push_str(&format!(" AND state = ${}", next()));
        }
        if filter.parent.is_some() {
            sql.push_str(&format!(" AND parent = ${}", next()));
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {}",
            filter.limit.unwrap_or(1000).clamp(1, 100_000)
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(t) = &filter.tenant {
            q = q.bind(t.as_str());
        }
        if let Some(s) = filter.state {
            q = q.bind(s.name());
        }
        if let Some(p) = filter.parent {
            q = q.bind(p);
        }
        let rows = q.fetch_all(self.db.reader()).await?;
        rows.iter().map(job_from).collect()
    }

    /// Queued and running jobs, oldest first: what a starting scheduler
    /// takes over.
    pub async fn unfinished(&self) -> Result<Vec<Job>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM train_jobs WHERE state IN ('queued', 'running') ORDER BY id"
        )))
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(job_from).collect()
    }

    /// Marks a queued job running with its new attempt. False if it was no
    /// longer queued (cancelled meanwhile).
    pub async fn start(&self, id: i64, attempt: u32, run_id: Option<String>) -> Result<bool> {
        self.db
            .write::<_, TrainError, _>(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE train_jobs SET state = 'running', attempts = $1, started_at = $2, finished_at = NULL, run_id = $3, handle = NULL, message = NULL WHERE id = $4 AND state = 'queued'",
                    )
                    .bind(i64::from(attempt))
                    .bind(now_millis())
                    .bind(run_id)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await
    }

    /// Records how the executor finds the running attempt.
    pub async fn set_handle(&self, id: i64, handle: Value) -> Result<()> {
        self.db
            .write::<_, TrainError, _>(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE train_jobs SET handle = $1 WHERE id = $2")
                        .bind(handle.to_string())
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Ends the running attempt: its ledger entry (if it ran) and the job's
    /// new state in one transaction. Recording the same attempt twice keeps
    /// the first entry.
    pub async fn finish_attempt(
        &self,
        job: &Job,
        outcome: Outcome,
        message: Option<String>,
        result: Option<Value>,
        entry: Option<LedgerEntry>,
    ) -> Result<Job> {
        let id = job.id;
        self.db
            .write::<_, TrainError, _>(move |conn| {
                Box::pin(async move {
                    if let Some(e) = entry {
                        sqlx::query(
                            "INSERT INTO train_ledger (job_id, attempt, tenant, executor, started_at, finished_at, wall_seconds, cpu_seconds, memory_gb_seconds, max_rss_bytes, cpu_hour_price, gb_hour_price, cost) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (job_id, attempt) DO NOTHING",
                        )
                        .bind(e.job_id)
                        .bind(i64::from(e.attempt))
                        .bind(e.tenant)
                        .bind(e.executor)
                        .bind(e.usage.started_at)
                        .bind(e.usage.finished_at)
                        .bind(e.usage.wall_seconds)
                        .bind(e.usage.cpu_seconds)
                        .bind(e.usage.memory_gb_seconds)
                        .bind(e.usage.max_rss_bytes.min(i64::MAX as u64) as i64)
                        .bind(e.cpu_hour_price)
                        .bind(e.gb_hour_price)
                        .bind(e.cost)
                        .execute(&mut *conn)
                        .await?;
                    }
                    let now = now_millis();
                    if outcome == Outcome::Requeue {
                        sqlx::query(
                            "UPDATE train_jobs SET state = 'queued', attempts = attempts - 1, not_before = 0, started_at = NULL, handle = NULL, message = $1 WHERE id = $2",
                        )
                        .bind(message)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                        return Ok(());
                    }
                    let (state, not_before, finished) = match outcome {
                        Outcome::Requeue => ("queued", 0, None),
                        Outcome::Succeeded => ("succeeded", 0, Some(now)),
                        Outcome::Cancelled => ("cancelled", 0, Some(now)),
                        Outcome::Failed { retry_at: Some(t) } => ("queued", t, None),
                        Outcome::Failed { retry_at: None } => ("failed", 0, Some(now)),
                    };
                    sqlx::query(
                        "UPDATE train_jobs SET state = $1, not_before = $2, finished_at = $3, handle = NULL, message = $4, result = $5 WHERE id = $6",
                    )
                    .bind(state)
                    .bind(not_before)
                    .bind(finished)
                    .bind(message)
                    .bind(result.map(|r| r.to_string()))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        self.get(id).await
    }

    /// Cancels a job: a queued one at once, a running one by flagging it
    /// for its executor to stop. Returns the job as it now is.
    pub async fn cancel(&self, id: i64) -> Result<Job> {
        self.db
            .write::<_, TrainError, _>(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE train_jobs SET state = 'cancelled', finished_at = $1, message = 'cancelled before it started' WHERE (id = $2 OR parent = $2) AND state = 'queued'",
                    )
                    .bind(now_millis())
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "UPDATE train_jobs SET cancel_requested = 1 WHERE (id = $1 OR parent = $1) AND state = 'running'",
                    )
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        self.get(id).await
    }

    /// Closes a sweep parent whose children are all final: succeeded if
    /// any child did. Returns it when it changed.
    pub async fn close_sweep(&self, parent: i64) -> Result<Option<Job>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM train_jobs WHERE parent = $1 GROUP BY state")
                .bind(parent)
                .fetch_all(self.db.reader())
                .await?;
        let mut counts = serde_json::Map::new();
        let mut open = false;
        for r in &rows {
            let state: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            open |= !JobState::parse(&state).is_some_and(JobState::is_final);
            counts.insert(state, Value::from(n));
        }
        if open || counts.is_empty() {
            return Ok(None);
        }
        let state = if counts.contains_key("succeeded") {
            "succeeded"
        } else if counts.contains_key("failed") {
            "failed"
        } else {
            "cancelled"
        };
        let result = Value::Object(counts).to_string();
        let changed = self
            .db
            .write::<_, TrainError, _>(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE train_jobs SET state = $1, finished_at = $2, result = $3 WHERE id = $4 AND state = 'sweep'",
                    )
                    .bind(state)
                    .bind(now_millis())
                    .bind(result)
                    .bind(parent)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await?;
        if changed {
            Ok(Some(self.get(parent).await?))
        } else {
            Ok(None)
        }
    }

    // ---- tenants -------------------------------------------------------

    pub async fn put_tenant(&self, name: String, policy: TenantPolicy) -> Result<()> {
        policy.check().map_err(TrainError::Invalid)?;
        let text =
            serde_json::to_string(&policy).map_err(|e| TrainError::Invalid(e.to_string()))?;
        self.db
            .write::<_, TrainError, _>(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO train_tenants (name, policy, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                    )
                    .bind(name)
                    .bind(text)
                    .bind(now_millis())
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn tenants(&self) -> Result<Vec<(String, TenantPolicy)>> {
        let rows = sqlx::query("SELECT name, policy FROM train_tenants ORDER BY name")
            .fetch_all(self.db.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0)?;
                let text: String = r.try_get(1)?;
                let policy = serde_json::from_str(&text)
                    .map_err(|e| TrainError::Corrupt(format!("tenant {name}: {e}")))?;
                Ok((name, policy))
            })
            .collect()
    }

    // ---- billing -------------------------------------------------------

    /// The ledger of `tenant` for attempts that ended in `[from, to)`.
    pub async fn report(&self, tenant: &str, from: i64, to: i64) -> Result<BillingReport> {
        let rows = sqlx::query(
            "SELECT l.job_id, j.name, l.attempt, l.tenant, l.executor, l.started_at, l.finished_at, l.wall_seconds, l.cpu_seconds, l.memory_gb_seconds, l.max_rss_bytes, l.cpu_hour_price, l.gb_hour_price, l.cost FROM train_ledger l JOIN train_jobs j ON j.id = l.job_id WHERE l.tenant = $1 AND l.finished_at >= $2 AND l.finished_at < $3 ORDER BY l.finished_at, l.id",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all(self.db.reader())
        .await?;
        let mut report = BillingReport {
            tenant: tenant.to_string(),
            from,
            to,
            attempts: 0,
            cpu_seconds: 0.0,
            memory_gb_seconds: 0.0,
            wall_seconds: 0.0,
            cost: 0.0,
            entries: Vec::with_capacity(rows.len()),
        };
        for r in &rows {
            let e = LedgerEntry {
                job_id: r.try_get(0)?,
                job: r.try_get(1)?,
                attempt: r.try_get::<i64, _>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
                tenant: r.try_get(3)?,
                executor: r.try_get(4)?,
                usage: Usage {
                    started_at: r.try_get(5)?,
                    finished_at: r.try_get(6)?,
                    wall_seconds: r.try_get(7)?,
                    cpu_seconds: r.try_get(8)?,
                    memory_gb_seconds: r.try_get(9)?,
                    max_rss_bytes: r.try_get::<i64, _>(10)?.max(0) as u64,
                },
                cpu_hour_price: r.try_get(11)?,
                gb_hour_price: r.try_get(12)?,
                cost: r.try_get(13)?,
            };
            report.attempts += 1;
            report.cpu_seconds += e.usage.cpu_seconds;
            report.memory_gb_seconds += e.usage.memory_gb_seconds;
            report.wall_seconds += e.usage.wall_seconds;
            report.cost += e.cost;
            report.entries.push(e);
        }
        Ok(report)
    }

    /// What each tenant spent since `from` (ms since the epoch).
    pub async fn spend_since(&self, from: i64) -> Result<Vec<(String, f64)>> {
        let rows = sqlx::query(
            "SELECT tenant, SUM(cost) FROM train_ledger WHERE finished_at >= $1 GROUP BY tenant",
        )
        .bind(from)
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get::<Option<f64>, _>(1)?.unwrap_or(0.0),
                ))
            })
            .collect()
    }
}

/// The first instant of the UTC calendar month holding `ms`.
pub fn month_start(ms: i64) -> i64 {
    let days = ms.div_euclid(86_400_000);
    let (y, m, _) = keel_core::time::civil_from_days(days);
    keel_core::time::days_from_civil(y, m, 1) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(job: &str, tenant: &str) -> JobSpec {
        crate::spec::parse(&format!(
            "job: {job}\ntenant: {tenant}\ncommand: \"true\"\nretries: 1\n"
        ))
        .unwrap()
    }

    fn usage(cpu: f64) -> Usage {
        Usage {
            started_at: 1_000,
            finished_at: 2_000,
            wall_seconds: 1.0,
            cpu_seconds: cpu,
            memory_gb_seconds: 0.5,
            max_rss_bytes: 1 << 20,
        }
    }

    #[tokio::test]
    async fn jobs_attempts_and_the_ledger_on_every_backend() {
        for (db, _dir) in keel_store::testing::databases(MIGRATIONS).await {
            let store = JobStore::new(db);
            let jobs = store
                .insert(vec![NewJob {
                    spec: spec("a", "growth"),
                    state: JobState::Queued,
                }])
                .await
                .unwrap();
            let job = &jobs[0];
            assert_eq!(
                (job.state, job.attempts, job.max_attempts),
                (JobState::Queued, 0, 2)
            );
            assert!(store.start(job.id, 1, Some("run1".into())).await.unwrap());
            assert!(
                !store.start(job.id, 1, None).await.unwrap(),
                "only a queued job starts"
            );
            let prices = Prices {
                cpu_hour: 3.6,
                gb_hour: 0.0,
            };
            let entry = |attempt: u32, cpu: f64| LedgerEntry {
                job_id: job.id,
                job: "a".into(),
                attempt,
                tenant: "growth".into(),
                executor: "local".into(),
                usage: usage(cpu),
                cpu_hour_price: prices.cpu_hour,
                gb_hour_price: prices.gb_hour,
                cost: prices.cost(&usage(cpu)),
            };
            let running = store.get(job.id).await.unwrap();
            let after = store
                .finish_attempt(
                    &running,
                    Outcome::Failed { retry_at: Some(5) },
                    Some("exit 1".into()),
                    None,
                    Some(entry(1, 2.0)),
                )
                .await
                .unwrap();
            assert_eq!((after.state, after.not_before), (JobState::Queued, 5));
            // Recording attempt 1 again keeps the first entry.
            store
                .finish_attempt(
                    &after,
                    Outcome::Failed { retry_at: Some(5) },
                    None,
                    None,
                    Some(entry(1, 99.0)),
                )
                .await
                .unwrap();
            assert!(store.start(job.id, 2, None).await.unwrap());
            let running = store.get(job.id).await.unwrap();
            let done = store
                .finish_attempt(
                    &running,
                    Outcome::Succeeded,
                    None,
                    Some(serde_json::json!({"exit_code": 0})),
                    Some(entry(2, 1.0)),
                )
                .await
                .unwrap();
            assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2));
            let report = store.report("growth", 0, i64::MAX).await.unwrap();
            assert_eq!(report.attempts, 2);
            assert_eq!(report.cpu_seconds, 3.0);
            assert!((report.cost - 0.003).abs() < 1e-12, "{}", report.cost);
            assert_eq!(
                store
                    .report("growth", 2_000, i64::MAX)
                    .await
                    .unwrap()
                    .attempts,
                2
            );
            assert_eq!(store.report("growth", 0, 2_000).await.unwrap().attempts, 0);
            assert_eq!(
                store.spend_since(0).await.unwrap(),
                vec![("growth".to_string(), report.cost)]
            );

            // A sweep: the parent closes when its children are final.
            let mut children = vec![NewJob {
                spec: spec("s", "growth"),
                state: JobState::Sweep,
            }];
            for i in 0..2 {
                children.push(NewJob {
                    spec: spec(&format!("s-{i}"), "growth"),
                    state: JobState::Queued,
                });
            }
            let sweep = store.insert(children).await.unwrap();
            assert!(sweep[1..].iter().all(|c| c.parent == Some(sweep[0].id)));
            assert_eq!(store.close_sweep(sweep[0].id).await.unwrap(), None);
            let cancelled = store.cancel(sweep[0].id).await.unwrap();
            assert_eq!(cancelled.state, JobState::Sweep);
            let closed = store.close_sweep(sweep[0].id).await.unwrap().unwrap();
            assert_eq!(closed.state, JobState::Cancelled);
            assert_eq!(closed.result, Some(serde_json::json!({"cancelled": 2})));
            assert_eq!(store.unfinished().await.unwrap().len(), 0);
            let listed = store
                .list(&JobFilter {
                    tenant: Some("growth".into()),
                    state: Some(JobState::Cancelled),
                    ..JobFilter::default()
                })
                .await
                .unwrap();
            assert_eq!(listed.len(), 3);

            // A never-started attempt is queued again, uncounted.
            let j = store
                .insert(vec![NewJob {
                    spec: spec("r", "growth"),
                    state: JobState::Queued,
                }])
                .await
                .unwrap()
                .remove(0);
            store.start(j.id, 1, None).await.unwrap();
            let j = store.get(j.id).await.unwrap();
            let again = store
                .finish_attempt(&j, Outcome::Requeue, None, None, None)
                .await
                .unwrap();
            assert_eq!((again.state, again.attempts), (JobState::Queued, 0));

            store
                .put_tenant(
                    "growth".into(),
                    TenantPolicy {
                        weight: 2.0,
                        ..TenantPolicy::default()
                    },
                )
                .await
                .unwrap();
            store
                .put_tenant(
                    "growth".into(),
                    TenantPolicy {
                        weight: 3.0,
                        ..TenantPolicy::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(store.tenants().await.unwrap()[0].1.weight, 3.0);
            assert!(
                store
                    .put_tenant(
                        "x".into(),
                        TenantPolicy {
                            weight: 0.0,
                            ..TenantPolicy::default()
                        }
                    )
                    .await
                    .is_err()
            );
            assert!(matches!(
                store.get(999_999).await,
                Err(TrainError::NotFound(_))
            ));
        }
    }

    #[test]
    fn months_start_on_the_first_at_midnight_utc() {
        // 2026-11-29T21:00:00Z → 2026-11-01T00:00:00Z.
        assert_eq!(month_start(1_795_986_000_000), 1_793_491_200_000);
        assert_eq!(month_start(1_793_491_200_000), 1_793_491_200_000);
    }
}
