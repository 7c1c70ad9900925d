//! The training service: takes submissions (rate-limited per tenant),
//! keeps the queue durable, starts what the [`Scheduler`] picks, follows
//! each attempt to its end, bills it, retries it with backoff or closes
//! it, and on start takes over what a previous server left queued or
//! running.
//!
//! Each attempt is a tracking run in the job's experiment, created before
//! the attempt starts: the job sees `MLFLOW_TRACKING_URI` and
//! `MLFLOW_RUN_ID`, so a script's `mlflow.start_run()` logs into it. When
//! the attempt ends its stdout and stderr are stored as the run's
//! artifacts (`logs/`), its measured usage as metrics (`keel.cpu_seconds`,
//! …) and its status set (FINISHED, FAILED or KILLED).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::time::now_millis;
use keel_store::ArtifactStore;
use keel_tracking::{Metric, NewRun, RunStatus, RunUpdate, Tag, Tracking};
use serde_json::{Value, json};

use crate::TrainError;
use crate::local::{self, JobDir, Report, SupervisorId};
use crate::ray::{self, RayClient};
use crate::scheduler::{Capacity, Queued, Scheduler, TenantPolicy, TenantShare, TokenBucket};
use crate::spec::{Executor, JobSpec, Trainer};
use crate::store::{Job, JobState, JobStore, LedgerEntry, NewJob, Outcome, Prices, month_start};

type Result<T> = std::result::Result<T, TrainError>;

/// How the service runs.
#[derive(Clone)]
pub struct TrainingConfig {
    /// Where jobs' directories live (`DATA/jobs`).
    pub jobs_dir: PathBuf,
    /// What the scheduler shares out.
    pub capacity: Capacity,
    pub prices: Prices,
    /// The tracking server's URL the jobs log to (`MLFLOW_TRACKING_URI`).
    pub tracking_uri: Option<String>,
    /// The program whose `train supervise` runs an attempt (the `keel`
    /// binary).
    pub program: PathBuf,
    /// The first retry waits this long; each further one twice as long,
    /// up to five minutes.
    pub retry_backoff: Duration,
    /// A Ray cluster's Jobs API (`http://HEAD:8265`) for `executor: ray`.
    pub ray_address: Option<String>,
    /// Called when a job whose spec has `notify:` ends (a sweep: when all
    /// its children have), with `job_succeeded` or `job_failed`.
    pub on_end: Option<OnEnd>,
}

/// Where a job's end is reported: `(lifecycle, key, event, data)`.
pub type OnEnd = Arc<
    dyn Fn(
            String,
            String,
            &'static str,
            Value,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Most bytes of code a job may bring (`code:`).
pub const MAX_CODE_BYTES: u64 = 256 << 20;

struct State {
    scheduler: Scheduler,
    buckets: HashMap<String, TokenBucket>,
    /// Spend of the current month per tenant, and that month's start.
    spend: HashMap<String, f64>,
    month: i64,
    /// Running attempts' supervisors, to cancel them.
    supervisors: HashMap<i64, SupervisorId>,
}

struct Inner {
    ray: Option<RayClient>,
    store: JobStore,
    tracking: Tracking,
    artifacts: ArtifactStore,
    config: TrainingConfig,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

/// The training service. Cheap to clone.
#[derive(Clone)]
pub struct Training {
    inner: Arc<Inner>,
}

impl Training {
    /// Opens the service on the store and takes over unfinished jobs: queued
    /// ones are queued again, running ones found again (or, when their
    /// supervisor is gone without a report, failed and retried).
    pub async fn open(
        store: JobStore,
        tracking: Tracking,
        artifacts: ArtifactStore,
        config: TrainingConfig,
    ) -> Result<Training> {
        std::fs::create_dir_all(&config.jobs_dir)?;
        let mut scheduler = Scheduler::new(config.capacity);
        for (name, policy) in store.tenants().await? {
            scheduler.set_policy(&name, policy);
        }
        let month = month_start(now_millis());
        let spend: HashMap<String, f64> = store.spend_since(month).await?.into_iter().collect();
        for (tenant, spent) in &spend {
            let budget = scheduler.policy(tenant).monthly_budget;
            scheduler.set_over_budget(tenant, budget.is_some_and(|b| *spent >= b));
        }
        let ray = config
            .ray_address
            .as_deref()
            .map(RayClient::new)
            .transpose()?;
        let training = Training {
            inner: Arc::new(Inner {
                ray,
                store,
                tracking,
                artifacts,
                config,
                state: Mutex::new(State {
                    scheduler,
                    buckets: HashMap::new(),
                    spend,
                    month,
                    supervisors: HashMap::new(),
                }),
                wake: tokio::sync::Notify::new(),
            }),
        };
        for job in training.inner.store.unfinished().await? {
            match job.state {
                JobState::Queued => training.lock().scheduler.enqueue(queued(&job)),
                _ => {
                    training.lock().scheduler.mark_running(
                        job.id,
                        &job.tenant,
                        job.cpus,
                        job.memory_bytes,
                        job.started_at.unwrap_or_else(now_millis),
                    );
                    let t = training.clone();
                    tokio::spawn(async move { t.reattach(job).await });
                }
            }
        }
        Ok(training)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn store(&self) -> &JobStore {
        &self.inner.store
    }

    pub fn config(&self) -> &TrainingConfig {
        &self.inner.config
    }

    /// Accepts a checked spec: one job, or a sweep's parent and its
    /// children. Refused when the tenant submits faster than its rate,
    /// or the job could never fit this node.
    pub async fn submit(&self, spec: JobSpec) -> Result<Vec<Job>> {
        let cap = self.inner.config.capacity;
        {
            let mut st = self.lock();
            if !st
                .scheduler
                .fits_at_all(spec.resources.cpus, spec.resources.memory_bytes)
            {
                return Err(TrainError::Invalid(format!(
                    "resources: the job asks for {} CPUs and {} bytes of memory; this node schedules at most {} CPUs and {} bytes",
                    spec.resources.cpus, spec.resources.memory_bytes, cap.cpus, cap.memory_bytes
                )));
            }
            let policy = st.scheduler.policy(&spec.tenant);
            if let Some(rate) = policy.submit_rate {
                let burst = policy
                    .submit_burst
                    .unwrap_or_else(|| rate.ceil().max(1.0) as u32);
                let now = now_millis();
                let bucket = st
                    .buckets
                    .entry(spec.tenant.clone())
                    .or_insert_with(|| TokenBucket::new(rate, burst, now));
                if !bucket.is(rate, burst) {
                    *bucket = TokenBucket::new(rate, burst, now);
                }
                if let Err(wait) = bucket.take(now) {
                    return Err(TrainError::RateLimited {
                        tenant: spec.tenant.clone(),
                        rate,
                        retry_after: wait,
                    });
                }
            }
        }
        if spec.executor == Executor::Ray && self.inner.ray.is_none() {
            return Err(TrainError::Invalid(
                "executor: this server knows no Ray cluster; start it with KEEL_RAY_ADDRESS=http://HEAD:8265, or use executor: local".into(),
            ));
        }
        if let Some(code) = &spec.code {
            let path = Path::new(code);
            if !path.is_absolute() || !path.is_dir() {
                return Err(TrainError::Invalid(format!(
                    "code: {code:?} is not a directory this server can read (give an absolute path, or submit with `keel jobs submit`, which resolves it)"
                )));
            }
            // Refused before anything is written.
            tree_size(path, MAX_CODE_BYTES)?;
        }
        let children = spec.sweep_params();
        let mut new = Vec::with_capacity(children.len() + 1);
        if children.is_empty() {
            new.push(NewJob {
                spec: spec.clone(),
                state: JobState::Queued,
            });
        } else {
            new.push(NewJob {
                spec: spec.clone(),
                state: JobState::Sweep,
            });
            for (i, params) in children.into_iter().enumerate() {
                let mut child = spec.clone();
                child.sweep = None;
                child.notify = None;
                child.params = params;
                child.job = format!("{}-{}", spec.job, i + 1);
                child.experiment = Some(spec.experiment_name().to_string());
                new.push(NewJob {
                    spec: child,
                    state: JobState::Queued,
                });
            }
        }
        let jobs = self.inner.store.insert(new).await?;
        for job in &jobs {
            if let Some(code) = &job.spec.code {
                let dir = JobDir::new(&self.inner.config.jobs_dir, job.id);
                if let Err(e) = copy_dir(Path::new(code), &dir.work(), MAX_CODE_BYTES) {
                    // The code changed under us: take the submission back.
                    self.inner.store.cancel(jobs[0].id).await?;
                    return Err(e);
                }
            }
        }
        {
            let mut st = self.lock();
            for job in &jobs {
                if job.state == JobState::Queued {
                    st.scheduler.enqueue(queued(job));
                }
            }
        }
        self.inner.wake.notify_one();
        Ok(jobs)
    }

    /// Cancels a job (and a sweep's children): queued ones at once, running
    /// ones by stopping their process group.
    pub async fn cancel(&self, id: i64) -> Result<Job> {
        let job = self.inner.store.get(id).await?;
        if job.state.is_final() {
            return Err(TrainError::Conflict(format!(
                "job {id} is already {}",
                job.state.name()
            )));
        }
        let job = self.inner.store.cancel(id).await?;
        let mut ids = vec![id];
        if job.state == JobState::Sweep {
            let children = self
                .inner
                .store
                .list(&crate::store::JobFilter {
                    parent: Some(id),
                    ..Default::default()
                })
                .await?;
            ids.extend(children.iter().map(|c| c.id));
        }
        {
            let mut st = self.lock();
            for i in &ids {
                st.scheduler.dequeue(*i);
                if let Some(s) = st.supervisors.get(i) {
                    s.cancel();
                }
            }
        }
        if let Some(client) = &self.inner.ray {
            for i in &ids {
                let j = self.inner.store.get(*i).await?;
                if j.state == JobState::Running && j.executor == Executor::Ray.name() {
                    client
                        .stop(&RayClient::submission_id(j.id, j.attempts))
                        .await?;
                }
            }
        }
        if job.state == JobState::Sweep
            && let Some(closed) = self.inner.store.close_sweep(id).await?
        {
            self.ended(&closed).await;
        }
        let now = self.inner.store.get(id).await?;
        if job.state != JobState::Sweep && now.state == JobState::Cancelled && now.parent.is_none()
        {
            self.ended(&now).await;
        }
        Ok(now)
    }

    /// Sets a tenant's policy; it applies to the next decision.
    pub async fn set_tenant(&self, name: &str, policy: TenantPolicy) -> Result<()> {
        if !crate::spec::valid_name(name) {
            return Err(TrainError::Invalid(format!(
                "tenant: {name:?} is not a name"
            )));
        }
        self.inner
            .store
            .put_tenant(name.to_string(), policy.clone())
            .await?;
        let mut st = self.lock();
        let spent = st.spend.get(name).copied().unwrap_or(0.0);
        st.scheduler
            .set_over_budget(name, policy.monthly_budget.is_some_and(|b| spent >= b));
        st.scheduler.set_policy(name, policy);
        st.buckets.remove(name);
        drop(st);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Each tenant's share, queue and this month's spend.
    pub fn shares(&self) -> (Capacity, Vec<(TenantShare, f64)>) {
        let st = self.lock();
        let shares = st
            .scheduler
            .shares()
            .into_iter()
            .map(|s| {
                let spent = st.spend.get(&s.tenant).copied().unwrap_or(0.0);
                (s, spent)
            })
            .collect();
        (st.scheduler.capacity(), shares)
    }

    /// The scheduling loop: starts whatever may start, then sleeps until a
    /// submission, an ending attempt or a backoff expiry. Runs until the
    /// task is dropped.
    pub async fn run(self) {
        loop {
            let now = now_millis();
            let mut started = Vec::new();
            let wakeup = {
                let mut st = self.lock();
                if month_start(now) != st.month {
                    st.month = month_start(now);
                    st.spend.clear();
                    let tenants: Vec<String> = st
                        .scheduler
                        .shares()
                        .into_iter()
                        .map(|s| s.tenant)
                        .collect();
                    for t in tenants {
                        st.scheduler.set_over_budget(&t, false);
                    }
                }
                while let Some(q) = st.scheduler.next(now) {
                    started.push(q);
                }
                st.scheduler.next_wakeup(now)
            };
            for q in started {
                let t = self.clone();
                tokio::spawn(async move { t.start(q).await });
            }
            let sleep = wakeup
                .map(|w| Duration::from_millis((w - now).clamp(1, 60_000) as u64))
                .unwrap_or(Duration::from_secs(60));
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Starts an attempt of a job the scheduler picked, and follows it.
    async fn start(&self, q: Queued) {
        if let Err(e) = self.start_attempt(q.id).await {
            tracing::error!(job = q.id, error = %e, "training attempt not started");
            // Give the capacity back and record why; a job whose start
            // failed is failed (no retry: the same start would fail again).
            if let Ok(job) = self.inner.store.get(q.id).await
                && matches!(job.state, JobState::Running | JobState::Queued)
            {
                let failed = self
                    .inner
                    .store
                    .finish_attempt(
                        &job,
                        Outcome::Failed { retry_at: None },
                        Some(format!("could not start: {e}")),
                        None,
                        None,
                    )
                    .await;
                if let Ok(job) = failed {
                    self.ended(&job).await;
                }
            }
            self.release(q.id).await;
        }
    }

    async fn start_attempt(&self, id: i64) -> Result<()> {
        let job = self.inner.store.get(id).await?;
        if job.state != JobState::Queued {
            self.release(id).await;
            return Ok(());
        }
        let attempt = job.attempts + 1;
        let run_id = self.create_run(&job, attempt).await?;
        if !self
            .inner
            .store
            .start(id, attempt, Some(run_id.clone()))
            .await?
        {
            // Cancelled between the decision and now.
            self.end_run(&run_id, RunStatus::Killed).await;
            self.release(id).await;
            return Ok(());
        }
        let dir = JobDir::new(&self.inner.config.jobs_dir, id);
        let attempt_dir = dir.attempt(attempt);
        std::fs::create_dir_all(dir.work())?;
        std::fs::create_dir_all(dir.checkpoints())?;
        std::fs::create_dir_all(&attempt_dir)?;
        let env = self.job_env(&job, attempt, &run_id, &dir);
        local::write_json_atomic(&dir.work().join("params.json"), &job.spec.params)?;
        let command = match &job.spec.trainer {
            Trainer::Command(c) => substitute(c, &job.spec.params),
            Trainer::Builtin(_) => {
                local::write_json_atomic(&attempt_dir.join("spec.json"), &job.spec)?;
                format!(
                    "exec {} train builtin {}",
                    shell_quote(&self.inner.config.program.to_string_lossy()),
                    shell_quote(&attempt_dir.join("spec.json").to_string_lossy())
                )
            }
        };
        if job.spec.executor == Executor::Ray {
            return self
                .start_ray(job, attempt, attempt_dir, &dir, env, command)
                .await;
        }
        let mut args = vec![
            "train".to_string(),
            "supervise".into(),
            "--attempt-dir".into(),
            attempt_dir.to_string_lossy().into_owned(),
            "--work-dir".into(),
            dir.work().to_string_lossy().into_owned(),
        ];
        if let Some(ms) = job.spec.timeout_ms {
            args.push("--timeout-ms".into());
            args.push(ms.to_string());
        }
        for (k, v) in &env {
            args.push("--env".into());
            args.push(format!("{k}={v}"));
        }
        args.push("--".into());
        args.push(command);
        let supervisor = local::spawn_supervisor(&self.inner.config.program, &args, &attempt_dir)?;
        self.inner
            .store
            .set_handle(
                id,
                json!({"pid": supervisor.pid, "start_ticks": supervisor.start_ticks, "attempt_dir": attempt_dir}),
            )
            .await?;
        self.lock().supervisors.insert(id, supervisor.clone());
        let job = self.inner.store.get(id).await?;
        self.follow(job, attempt, attempt_dir, Some(supervisor))
            .await;
        Ok(())
    }

    /// Submits an attempt to the Ray cluster and follows it.
    async fn start_ray(
        &self,
        job: Job,
        attempt: u32,
        attempt_dir: PathBuf,
        dir: &JobDir,
        env: Vec<(String, String)>,
        command: String,
    ) -> Result<()> {
        let client = self
            .inner
            .ray
            .clone()
            .ok_or_else(|| TrainError::Executor("no Ray cluster is configured".into()))?;
        let id = RayClient::submission_id(job.id, attempt);
        let env = env.into_iter().collect();
        let work_text = dir.work().to_string_lossy().into_owned();
        client
            .submit(
                &id,
                &command,
                Some(work_text.as_str()),
                &env,
                job.cpus,
                job.memory_bytes,
            )
            .await?;
        self.inner
            .store
            .set_handle(
                job.id,
                json!({"ray_submission_id": id, "attempt_dir": attempt_dir}),
            )
            .await?;
        let job = self.inner.store.get(job.id).await?;
        self.follow_ray(job, attempt, attempt_dir, client).await;
        Ok(())
    }

    /// Polls a Ray attempt to its end (stopping it at its timeout), stores
    /// its driver log as the attempt's stdout, and closes it.
    async fn follow_ray(&self, job: Job, attempt: u32, attempt_dir: PathBuf, client: RayClient) {
        let id = RayClient::submission_id(job.id, attempt);
        let started = job.started_at.unwrap_or_else(now_millis);
        let mut timed_out = false;
        let mut errors = 0;
        let final_state = loop {
            match client.status(&id).await {
                Ok(s) if s.is_final() => break Some(s),
                Ok(_) => errors = 0,
                Err(e) => {
                    errors += 1;
                    if errors >= 600 {
                        tracing::error!(job = job.id, error = %e, "the Ray job cannot be followed");
                        break None;
                    }
                }
            }
            if let Some(t) = job.spec.timeout_ms
                && !timed_out
                && now_millis() - started > t as i64
            {
                timed_out = true;
                let _ = client.stop(&id).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let _ = std::fs::create_dir_all(&attempt_dir);
        if let Ok(logs) = client.logs(&id).await {
            let _ = std::fs::write(attempt_dir.join("stdout.log"), logs);
        }
        let cancelled = self
            .inner
            .store
            .get(job.id)
            .await
            .map(|j| j.cancel_requested)
            .unwrap_or(false);
        let report =
            final_state.map(|s| ray::report(&s, job.cpus, job.memory_bytes, cancelled, timed_out));
        if let Err(e) = self
            .close_attempt(&job, attempt, &attempt_dir, report)
            .await
        {
            tracing::error!(job = job.id, error = %e, "training attempt not closed");
        }
        self.release(job.id).await;
    }

    /// Finds a running attempt again after a restart.
    async fn reattach(&self, job: Job) {
        let attempt = job.attempts.max(1);
        let attempt_dir = JobDir::new(&self.inner.config.jobs_dir, job.id).attempt(attempt);
        if job.executor == Executor::Ray.name()
            && let Some(client) = self.inner.ray.clone()
            && job.handle.is_some()
        {
            tracing::info!(job = job.id, "following a Ray training attempt again");
            if job.cancel_requested {
                let _ = client
                    .stop(&RayClient::submission_id(job.id, attempt))
                    .await;
            }
            self.follow_ray(job, attempt, attempt_dir, client).await;
            return;
        }
        let supervisor = local::read_supervisor(&attempt_dir).filter(SupervisorId::alive);
        if let Some(s) = &supervisor {
            tracing::info!(
                job = job.id,
                pid = s.pid,
                "re-attached to a running training attempt"
            );
            self.lock().supervisors.insert(job.id, s.clone());
            if job.cancel_requested {
                s.cancel();
            }
        }
        self.follow(job, attempt, attempt_dir, supervisor).await;
    }

    /// Waits for the attempt's report, then closes the attempt.
    async fn follow(
        &self,
        job: Job,
        attempt: u32,
        attempt_dir: PathBuf,
        supervisor: Option<SupervisorId>,
    ) {
        let report = loop {
            if let Some(r) = local::read_report(&attempt_dir) {
                break Some(r);
            }
            if !supervisor.as_ref().is_some_and(SupervisorId::alive) {
                // It may have written the report just before ending.
                break local::read_report(&attempt_dir);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if let Err(e) = self
            .close_attempt(&job, attempt, &attempt_dir, report)
            .await
        {
            tracing::error!(job = job.id, error = %e, "training attempt not closed");
        }
        self.lock().supervisors.remove(&job.id);
        self.release(job.id).await;
    }

    async fn close_attempt(
        &self,
        job: &Job,
        attempt: u32,
        attempt_dir: &Path,
        report: Option<Report>,
    ) -> Result<()> {
        let job = self.inner.store.get(job.id).await?;
        let prices = self.inner.config.prices;
        let (outcome, message, result, entry) = match &report {
            Some(r) => {
                let entry = LedgerEntry {
                    job_id: job.id,
                    job: job.name.clone(),
                    attempt,
                    tenant: job.tenant.clone(),
                    executor: job.executor.clone(),
                    usage: r.usage,
                    cpu_hour_price: prices.cpu_hour,
                    gb_hour_price: prices.gb_hour,
                    cost: prices.cost(&r.usage),
                };
                let outcome = if r.succeeded() {
                    Outcome::Succeeded
                } else if r.cancelled || job.cancel_requested {
                    Outcome::Cancelled
                } else {
                    self.failed(&job, attempt)
                };
                let result = json!({
                    "exit_code": r.exit_code, "signal": r.signal, "timed_out": r.timed_out,
                    "attempt": attempt, "usage": r.usage, "cost": entry.cost,
                });
                (outcome, Some(r.describe()), Some(result), Some(entry))
            }
            None if job.cancel_requested => (Outcome::Cancelled, Some("cancelled".into()), None, None),
            None if local::read_supervisor(attempt_dir).is_none() => (
                Outcome::Requeue,
                Some("queued again: the server stopped before the attempt started".into()),
                None,
                None,
            ),
            None => (
                self.failed(&job, attempt),
                Some("the attempt's supervisor ended without a report (the machine or server stopped)".into()),
                None,
                None,
            ),
        };
        let requeue = match &outcome {
            Outcome::Failed { retry_at } => retry_at.is_some(),
            Outcome::Requeue => true,
            _ => false,
        };
        if let Some(run_id) = &job.run_id {
            self.finish_run(run_id, attempt_dir, report.as_ref(), &outcome)
                .await;
        }
        let cost = entry.as_ref().map_or(0.0, |e| e.cost);
        let job = self
            .inner
            .store
            .finish_attempt(&job, outcome, message, result, entry)
            .await?;
        {
            let mut st = self.lock();
            let spent = {
                let s = st.spend.entry(job.tenant.clone()).or_insert(0.0);
                *s += cost;
                *s
            };
            let budget = st.scheduler.policy(&job.tenant).monthly_budget;
            if budget.is_some_and(|b| spent >= b) {
                st.scheduler.set_over_budget(&job.tenant, true);
            }
        }
        if requeue && job.state == JobState::Queued {
            let mut st = self.lock();
            st.scheduler.finish(job.id, now_millis());
            st.scheduler.enqueue(queued(&job));
        }
        if job.state.is_final() {
            self.ended(&job).await;
        }
        if let Some(parent) = job.parent
            && let Some(closed) = self.inner.store.close_sweep(parent).await?
        {
            self.ended(&closed).await;
        }
        Ok(())
    }

    /// Tells the job's lifecycle instance (`notify:`) that it ended.
    async fn ended(&self, job: &Job) {
        let (Some(n), Some(on_end)) = (&job.spec.notify, &self.inner.config.on_end) else {
            return;
        };
        let event = if job.state == JobState::Succeeded {
            "job_succeeded"
        } else {
            "job_failed"
        };
        let data = json!({
            "job_id": job.id, "job": job.name, "state": job.state, "run_id": job.run_id,
            "attempts": job.attempts, "message": job.message, "result": job.result,
        });
        on_end(n.lifecycle.clone(), n.key.clone(), event, data).await;
    }

    fn failed(&self, job: &Job, attempt: u32) -> Outcome {
        if attempt < job.max_attempts {
            let base = self.inner.config.retry_backoff.as_millis() as i64;
            let wait = base
                .saturating_mul(1i64 << (attempt - 1).min(20))
                .min(300_000);
            Outcome::Failed {
                retry_at: Some(now_millis() + wait),
            }
        } else {
            Outcome::Failed { retry_at: None }
        }
    }

    /// Frees a job's capacity and wakes the loop.
    async fn release(&self, id: i64) {
        self.lock().scheduler.finish(id, now_millis());
        self.inner.wake.notify_one();
    }

    fn job_env(
        &self,
        job: &Job,
        attempt: u32,
        run_id: &str,
        dir: &JobDir,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = job
            .spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(uri) = &self.inner.config.tracking_uri {
            env.push(("MLFLOW_TRACKING_URI".into(), uri.clone()));
            env.push(("KEEL_SERVER".into(), uri.clone()));
        }
        env.push(("MLFLOW_RUN_ID".into(), run_id.to_string()));
        env.push(("KEEL_JOB_ID".into(), job.id.to_string()));
        env.push(("KEEL_JOB_NAME".into(), job.name.clone()));
        env.push(("KEEL_JOB_ATTEMPT".into(), attempt.to_string()));
        env.push(("KEEL_TENANT".into(), job.tenant.clone()));
        env.push(("KEEL_RUN_ID".into(), run_id.to_string()));
        env.push((
            "KEEL_PARAMS".into(),
            Value::Object(job.spec.params.clone()).to_string(),
        ));
        env.push((
            "KEEL_CHECKPOINT_DIR".into(),
            dir.checkpoints().to_string_lossy().into_owned(),
        ));
        env.push(("KEEL_CPUS".into(), job.cpus.to_string()));
        env
    }

    async fn create_run(&self, job: &Job, attempt: u32) -> Result<String> {
        let tracking = &self.inner.tracking;
        let name = job.spec.experiment_name().to_string();
        let experiment = match tracking.get_experiment_by_name(&name).await {
            Ok(e) => e.experiment_id,
            Err(keel_tracking::TrackingError::NotFound { .. }) => {
                match tracking
                    .create_experiment(name.clone(), None, Vec::new())
                    .await
                {
                    Ok(id) => id,
                    // Created meanwhile by another attempt.
                    Err(_) => {
                        tracking
                            .get_experiment_by_name(&name)
                            .await
                            .map_err(|e| TrainError::Tracking(e.to_string()))?
                            .experiment_id
                    }
                }
            }
            Err(e) => return Err(TrainError::Tracking(e.to_string())),
        };
        let tag = |k: &str, v: String| Tag {
            key: k.into(),
            value: v,
        };
        let run = tracking
            .create_run(NewRun {
                experiment_id: Some(experiment),
                user_id: Some(job.tenant.clone()),
                run_name: Some(format!("{}-{}-{attempt}", job.name, job.id)),
                start_time: Some(now_millis()),
                tags: vec![
                    tag("keel.job_id", job.id.to_string()),
                    tag("keel.job_name", job.name.clone()),
                    tag("keel.tenant", job.tenant.clone()),
                    tag("keel.attempt", attempt.to_string()),
                    tag("keel.trainer", job.trainer.clone()),
                    tag("keel.executor", job.executor.clone()),
                    tag("keel.version", env!("CARGO_PKG_VERSION").to_string()),
                ],
            })
            .await
            .map_err(|e| TrainError::Tracking(e.to_string()))?;
        let params: Vec<Tag> = job
            .spec
            .params
            .iter()
            .map(|(k, v)| {
                tag(
                    k,
                    match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                )
            })
            .collect();
        if !params.is_empty() {
            tracking
                .log_batch(run.info.run_id.clone(), Vec::new(), params, Vec::new())
                .await
                .map_err(|e| TrainError::Tracking(e.to_string()))?;
        }
        Ok(run.info.run_id)
    }

    async fn end_run(&self, run_id: &str, status: RunStatus) {
        let update = RunUpdate {
            status: Some(status),
            end_time: Some(now_millis()),
            run_name: None,
        };
        if let Err(e) = self
            .inner
            .tracking
            .update_run(run_id.to_string(), update)
            .await
        {
            tracing::warn!(run = run_id, error = %e, "run not closed");
        }
    }

    /// Stores the attempt's logs and usage on its run, and closes the run.
    async fn finish_run(
        &self,
        run_id: &str,
        attempt_dir: &Path,
        report: Option<&Report>,
        outcome: &Outcome,
    ) {
        let tracking = &self.inner.tracking;
        if let Ok(run) = tracking.get_run(run_id).await
            && let Some(rel) = run.info.artifact_uri.strip_prefix("mlflow-artifacts:/")
        {
            let rel = rel.trim_start_matches('/');
            for file in ["stdout.log", "stderr.log"] {
                let Ok(bytes) = tokio::fs::read(attempt_dir.join(file)).await else {
                    continue;
                };
                let body =
                    futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
                if let Err(e) = self
                    .inner
                    .artifacts
                    .put_stream(&format!("{rel}/logs/{file}"), body)
                    .await
                {
                    tracing::warn!(run = run_id, error = %e, "job log not stored");
                }
            }
        }
        if let Some(r) = report {
            let now = now_millis();
            let metric = |k: &str, v: f64| Metric {
                key: k.into(),
                value: v,
                timestamp: now,
                step: 0,
                ..Metric::default()
            };
            let metrics = vec![
                metric("keel.cpu_seconds", r.usage.cpu_seconds),
                metric("keel.wall_seconds", r.usage.wall_seconds),
                metric("keel.memory_gb_seconds", r.usage.memory_gb_seconds),
                metric("keel.max_rss_bytes", r.usage.max_rss_bytes as f64),
            ];
            if let Err(e) = tracking
                .log_batch(run_id.to_string(), metrics, Vec::new(), Vec::new())
                .await
            {
                tracing::warn!(run = run_id, error = %e, "usage not logged on the run");
            }
        }
        let status = match outcome {
            Outcome::Succeeded => RunStatus::Finished,
            Outcome::Cancelled | Outcome::Requeue => RunStatus::Killed,
            Outcome::Failed { .. } => RunStatus::Failed,
        };
        self.end_run(run_id, status).await;
    }
}

fn queued(job: &Job) -> Queued {
    Queued {
        id: job.id,
        tenant: job.tenant.clone(),
        priority: job.priority,
        cpus: job.cpus,
        memory_bytes: job.memory_bytes,
        seq: job.id,
        not_before_ms: job.not_before,
    }
}

/// `{name}` in a command line replaced by the parameter's value (a
/// string as it is, anything else as JSON), for each parameter `name`.
pub fn substitute(command: &str, params: &serde_json::Map<String, Value>) -> String {
    let mut out = command.to_string();
    for (k, v) in params {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("{{{k}}}"), &text);
    }
    out
}

/// `s` as one word for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The bytes of the files under `dir`, refused beyond `limit`.
fn tree_size(dir: &Path, limit: u64) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata()?.len();
                if total > limit {
                    return Err(TrainError::Invalid(format!(
                        "code: {} holds more than {} MiB; keep data out of the code directory",
                        dir.display(),
                        limit >> 20
                    )));
                }
            }
        }
    }
    Ok(total)
}

/// Copies a directory tree (files and folders; symbolic links are left
/// out), refusing more than `limit` bytes.
fn copy_dir(from: &Path, to: &Path, limit: u64) -> Result<()> {
    let mut total = 0u64;
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst)?;
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let target = dst.join(entry.file_name());
            if kind.is_dir() {
                stack.push((entry.path(), target));
            } else if kind.is_file() {
                total += entry.metadata()?.len();
                if total > limit {
                    return Err(TrainError::Invalid(format!(
                        "code: {} holds more than {} MiB; keep data out of the code directory",
                        from.display(),
                        limit >> 20
                    )));
                }
                std::fs::copy(entry.path(), target)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_fill_the_command_line() {
        let params: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"lr": 0.1, "name": "a b", "depth": 3}"#).unwrap();
        assert_eq!(
            substitute(
                "train.py --lr {lr} --depth {depth} --name '{name}' ${HOME} {other}",
                &params
            ),
            "train.py --lr 0.1 --depth 3 --name 'a b' ${HOME} {other}"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
