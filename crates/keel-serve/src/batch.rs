//! Adaptive batching: concurrent requests for one model version are
//! coalesced along the batch dimension, run on a worker pool shared by all
//! models and sized to the cores (two plans per core, see
//! [`default_workers`]), and split back.
//!
//! A batch closes when it holds `max_batch_size` rows, when `max_delay` has
//! passed since its first request, or — with no delay set — when the queue is
//! empty. Requests also pile up while every worker is busy, so batches grow
//! with load on their own and a lone request never waits.
//!
//! With no delay set, a request runs on its own thread when nothing is
//! queued for its model and a worker is free: the hand-off to the
//! dispatcher and the blocking pool costs a few context switches (about
//! 0.1 ms) and cold caches. A plan whose compiled latency is tiny runs as a
//! plain call (no longer than a network read blocks the runtime); a longer
//! one under `block_in_place`, which moves the thread's other tasks to
//! another worker first. Requests that find the queue busy or every worker
//! taken queue up and are batched as above.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::ServeError;
use crate::plan::Plan;
use crate::tensor::NamedTensor;

/// Per-model batching settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Rows per batch at most; 1 turns batching off.
    pub max_batch_size: usize,
    /// How long a batch's first request may wait for company.
    pub max_delay: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_batch_size: 64,
            max_delay: Duration::ZERO,
        }
    }
}

/// Plans whose compiled latency at the sample batch is at most this run
/// inline as plain calls (with no `max_delay` set and a worker free);
/// longer ones run inline under `block_in_place`.
pub const INLINE_LATENCY_US: f64 = 250.0;

type Reply = oneshot::Sender<Result<Vec<NamedTensor>, ServeError>>;

struct Job {
    inputs: Vec<NamedTensor>,
    rows: usize,
    reply: Reply,
}

impl Job {
    /// Requests batch together when their inputs agree beyond the first axis.
    fn fits_with(&self, other: &Job) -> bool {
        self.inputs
            .iter()
            .zip(&other.inputs)
            .all(|(a, b)| a.shape.get(1..) == b.shape.get(1..))
    }
}

/// The queue in front of one model version.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
    stats: Arc<BatchStats>,
    /// Set for plans cheap enough to run on the caller's thread.
    inline: Option<Inline>,
}

#[derive(Clone)]
struct Inline {
    plan: Arc<Plan>,
    workers: Arc<Semaphore>,
    /// Compiled latency within [`INLINE_LATENCY_US`]: runs on the runtime
    /// thread as is; larger plans run there under `block_in_place`.
    tiny: bool,
    /// Tiny plans' requests with more rows than the timed sample batch
    /// take the other way.
    max_rows: usize,
}

/// What the batcher has run: how well requests were coalesced.
#[derive(Debug, Default)]
pub struct BatchStats {
    pub requests: AtomicU64,
    pub batches: AtomicU64,
    pub rows: AtomicU64,
    /// Requests that ran on their own thread (also counted in the others).
    pub inline: AtomicU64,
}

impl BatchStats {
    /// (requests, batches, rows) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
        )
    }
}

/// Plans that may run at once, by default: two per core. A plan that
/// leaves the runtime thread (`block_in_place`, or the blocking pool for a
/// queued batch) hands its thread over on the way in and out, and a core
/// sits idle for that hand-off unless a second plan is ready to take it.
/// Measured on 2 cores with a 0.6 ms forest at 8 connections: one plan per
/// core left 20% of the CPU idle and served 69% of the in-process rate; two
/// per core, no idle and 97%. Tiny plans run on the runtime's own threads,
/// which bound them to one per core whatever the pool's size.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        * 2
}

/// Workers shared by every model: [`default_workers`].
pub fn worker_pool() -> Arc<Semaphore> {
    worker_pool_of(default_workers())
}

/// A worker pool of `n` plans at once (at least one).
pub fn worker_pool_of(n: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(n.max(1)))
}

impl Batcher {
    /// Starts the dispatcher for `plan`; it ends when the last `Batcher`
    /// clone is dropped and the queue drains.
    pub fn start(plan: Arc<Plan>, settings: BatchSettings, workers: Arc<Semaphore>) -> Batcher {
        let (queue, jobs) = mpsc::channel(4096);
        let stats = Arc::new(BatchStats::default());
        let inline = settings.max_delay.is_zero().then(|| Inline {
            plan: plan.clone(),
            workers: workers.clone(),
            tiny: plan.report.latency_after_us <= INLINE_LATENCY_US,
            max_rows: plan.report.sample_batch.max(1),
        });
        tokio::spawn(dispatch(plan, settings, workers, jobs, stats.clone()));
        Batcher {
            queue,
            stats,
            inline,
        }
    }

    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Runs checked inputs (signature order) with `rows` rows.
    pub async fn infer(
        &self,
        inputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<Vec<NamedTensor>, ServeError> {
        let multi_thread = || {
            tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        };
        if let Some(inline) = &self.inline
            && (if inline.tiny {
                rows <= inline.max_rows
            } else {
                multi_thread()
            })
            && self.queue.capacity() == self.queue.max_capacity()
            && let Ok(permit) = inline.workers.try_acquire()
        {
            for counter in [
                &self.stats.requests,
                &self.stats.batches,
                &self.stats.inline,
            ] {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            self.stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
            let outputs = if inline.tiny {
                inline.plan.run(&inputs)
            } else {
                // The runtime hands this thread's other tasks to another
                // worker; the plan runs here, with no hand-off and warm
                // caches.
                tokio::task::block_in_place(|| inline.plan.run(&inputs))
            };
            drop(permit);
            // A caller that loops on inline answers must still give way to
            // the runtime's other tasks now and then.
            tokio::task::consume_budget().await;
            return outputs;
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                inputs,
                rows,
                reply,
            })
            .await
            .map_err(|_| {
                ServeError::Internal("the model was unloaded while the request waited".into())
            })?;
        answer.await.map_err(|_| {
            ServeError::Internal("the model's worker stopped before answering".into())
        })?
    }
}

async fn dispatch(
    plan: Arc<Plan>,
    settings: BatchSettings,
    workers: Arc<Semaphore>,
    mut jobs: mpsc::Receiver<Job>,
    stats: Arc<BatchStats>,
) {
    let batching = plan.signature.batched && settings.max_batch_size > 1;
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut rows = batch[0].rows;
        if batching {
            let deadline = tokio::time::Instant::now() + settings.max_delay;
            while rows < settings.max_batch_size {
                let next = match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::error::TryRecvError::Empty) if !settings.max_delay.is_zero() => {
                        tokio::time::timeout_at(deadline, jobs.recv())
                            .await
                            .unwrap_or_default()
                    }
                    Err(_) => None,
                };
                let Some(job) = next else { break };
                if rows + job.rows > settings.max_batch_size || !batch[0].fits_with(&job) {
                    held = Some(job);
                    break;
                }
                rows += job.rows;
                batch.push(job);
            }
        }
        let Ok(permit) = workers.clone().acquire_owned().await else {
            return;
        };
        // Requests that queued while every worker was busy join this batch.
        while batching && held.is_none() && rows < settings.max_batch_size {
            let Ok(job) = jobs.try_recv() else { break };
            if rows + job.rows > settings.max_batch_size || !batch[0].fits_with(&job) {
                held = Some(job);
                break;
            }
            rows += job.rows;
            batch.push(job);
        }
        stats
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
        let plan = plan.clone();
        tokio::task::spawn_blocking(move || {
            run_batch(&plan, batch, rows);
            drop(permit);
        });
    }
}

fn run_batch(plan: &Plan, mut batch: Vec<Job>, rows: usize) {
    if batch.len() == 1 {
        let job = batch.pop().expect("one job");
        let _ = job.reply.send(plan.run(&job.inputs));
        return;
    }
    let mut inputs: Vec<NamedTensor> = batch[0].inputs.clone();
    for input in inputs.iter_mut() {
        if let Some(n) = input.shape.first_mut() {
            *n = rows;
        }
    }
    for job in &batch[1..] {
        for (joined, part) in inputs.iter_mut().zip(&job.inputs) {
            joined.data.extend(&part.data);
        }
    }
    match plan.run(&inputs) {
        Ok(outputs) => {
            let mut start = 0;
            for job in batch {
                let parts = outputs
                    .iter()
                    .map(|out| {
                        let per_row = out.data.len() / rows.max(1);
                        let mut shape = out.shape.clone();
                        if let Some(n) = shape.first_mut() {
                            *n = job.rows;
                        }
                        let data = out
                            .data
                            .slice(start * per_row, (start + job.rows) * per_row);
                        NamedTensor {
                            name: out.name.clone(),
                            shape,
                            data,
                        }
                    })
                    .collect();
                start += job.rows;
                let _ = job.reply.send(Ok(parts));
            }
        }
        Err(e) => {
            // One bad row must not fail its neighbours: run each alone.
            tracing::debug!(error = %e, "batch failed; running its requests one by one");
            for job in batch {
                let _ = job.reply.send(plan.run(&job.inputs));
            }
        }
    }
}
