//! The scheduling policy, in memory and without I/O: which queued job runs
//! next on the capacity left.
//!
//! - **Weighted fair share between tenants** (dominant resource fairness
//!   over CPUs and memory): the next job comes from the tenant whose
//!   dominant share of what is running, divided by its weight, is lowest.
//!   Ties — frequent when jobs are whole CPUs on a few CPUs — go to the
//!   tenant that has used the least CPU time per weight so far (then to the
//!   oldest submission), so that shares which whole jobs cannot split
//!   exactly (4 CPUs at 1:2) are met on average over time. Tenants that
//!   stay backlogged converge to their weights.
//! - **Within a tenant**: higher priority first, then submission order.
//! - **Quotas**: a tenant never runs more than its `max_cpus` or
//!   `max_jobs` at once, nor starts a job once its monthly budget is spent.
//!   A tenant held by a quota does not hold up the others.
//! - **No starvation of large jobs**: when the fairly chosen job does not
//!   fit the free capacity, nothing else starts until it does (capacity is
//!   held for it rather than back-filled with smaller jobs).
//! - **Backoff**: a job retried after a failure is not eligible before its
//!   `not_before` time.
//!
//! [`TokenBucket`] rate-limits submissions per tenant.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// A job's identifier in the store.
pub type JobId = i64;

/// What a tenant may use, and how much of the machines it gets when
/// everyone wants more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// Relative share under contention (> 0; default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Most CPUs its running jobs may ask for together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpus: Option<f64>,
    /// Most jobs it may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jobs: Option<u32>,
    /// What it may spend per calendar month (UTC), in the price table's
    /// currency; no new job starts once the month's ledger reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_budget: Option<f64>,
    /// Submissions per second allowed on average (token bucket refill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_rate: Option<f64>,
    /// Submissions allowed in a burst (bucket size; default: max(1, rate)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_burst: Option<u32>,
}

fn one() -> f64 {
    1.0
}

impl Default for TenantPolicy {
    fn default() -> Self {
        TenantPolicy {
            weight: 1.0,
            max_cpus: None,
            max_jobs: None,
            monthly_budget: None,
            submit_rate: None,
            submit_burst: None,
        }
    }
}

impl TenantPolicy {
    /// Why the policy cannot be used, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(format!(
                "weight: is {}; it must be a number > 0",
                self.weight
            ));
        }
        if let Some(c) = self.max_cpus
            && !(c.is_finite() && c > 0.0)
        {
            return Err(format!("max_cpus: is {c}; it must be a number > 0"));
        }
        if let Some(b) = self.monthly_budget
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(format!("monthly_budget: is {b}; it must be a number ≥ 0"));
        }
        if let Some(r) = self.submit_rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(format!("submit_rate: is {r}; it must be a number > 0"));
        }
        if self.submit_burst == Some(0) {
            return Err("submit_burst: must be at least 1".into());
        }
        Ok(())
    }
}

/// What the scheduler shares out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub cpus: f64,
    pub memory_bytes: u64,
}

/// A job waiting to run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Queued {
    pub id: JobId,
    pub tenant: String,
    pub priority: i64,
    pub cpus: f64,
    pub memory_bytes: u64,
    /// Submission order (the job id does as well).
    pub seq: i64,
    /// Not eligible before this time (ms since the epoch); 0 for now.
    pub not_before_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    cpus: f64,
    memory_bytes: u64,
    /// When it started (ms), as far as the scheduler knows.
    since_ms: i64,
}

#[derive(Debug, Default)]
struct Tenant {
    policy: TenantPolicy,
    queue: BTreeMap<(Reverse<i64>, i64), Queued>,
    running: HashMap<JobId, Running>,
    running_cpus: f64,
    running_memory: u64,
    over_budget: bool,
    /// CPU-milliseconds of its finished jobs.
    used_cpu_ms: f64,
}

impl Tenant {
    /// CPU time used per weight, running jobs counted up to `now_ms`.
    fn usage_per_weight(&self, now_ms: i64) -> f64 {
        let running: f64 = self
            .running
            .values()
            .map(|r| r.cpus * (now_ms - r.since_ms).max(0) as f64)
            .sum();
        (self.used_cpu_ms + running) / self.policy.weight
    }

    /// The first job in priority order that may start at `now`.
    fn head(&self, now_ms: i64) -> Option<&Queued> {
        self.queue.values().find(|q| q.not_before_ms <= now_ms)
    }

    /// Whether its quotas let `job` start.
    fn quota_allows(&self, job: &Queued) -> bool {
        !self.over_budget
            && self
                .policy
                .max_jobs
                .is_none_or(|m| (self.running.len() as u64) < u64::from(m))
            && self
                .policy
                .max_cpus
                .is_none_or(|m| self.running_cpus + job.cpus <= m + 1e-9)
    }
}

/// One tenant's state, for the API and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantShare {
    pub tenant: String,
    pub weight: f64,
    pub queued: usize,
    pub running: usize,
    pub running_cpus: f64,
    pub running_memory_bytes: u64,
    /// Its dominant share of the capacity, divided by its weight.
    pub weighted_share: f64,
    pub over_budget: bool,
}

/// The scheduling policy's state.
#[derive(Debug)]
pub struct Scheduler {
    capacity: Capacity,
    tenants: HashMap<String, Tenant>,
    /// Running and queued jobs' tenants.
    owner: HashMap<JobId, String>,
    used_cpus: f64,
    used_memory: u64,
}

impl Scheduler {
    pub fn new(capacity: Capacity) -> Self {
        Scheduler {
            capacity,
            tenants: HashMap::new(),
            owner: HashMap::new(),
            used_cpus: 0.0,
            used_memory: 0,
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    fn tenant(&mut self, name: &str) -> &mut Tenant {
        self.tenants.entry(name.to_string()).or_default()
    }

    /// Sets a tenant's policy (a tenant never set has the default one).
    pub fn set_policy(&mut self, tenant: &str, policy: TenantPolicy) {
        self.tenant(tenant).policy = policy;
    }

    pub fn policy(&self, tenant: &str) -> TenantPolicy {
        self.tenants
            .get(tenant)
            .map(|t| t.policy.clone())
            .unwrap_or_default()
    }

    /// Marks a tenant's monthly budget as spent (or not).
    pub fn set_over_budget(&mut self, tenant: &str, over: bool) {
        self.tenant(tenant).over_budget = over;
    }

    /// Whether a job of this size could ever run here.
    pub fn fits_at_all(&self, cpus: f64, memory_bytes: u64) -> bool {
        cpus <= self.capacity.cpus + 1e-9 && memory_bytes <= self.capacity.memory_bytes
    }

    pub fn enqueue(&mut self, job: Queued) {
        self.owner.insert(job.id, job.tenant.clone());
        let key = (Reverse(job.priority), job.seq);
        self.tenant(&job.tenant.clone()).queue.insert(key, job);
    }

    /// Takes a queued job out (cancelled); false if it is not queued.
    pub fn dequeue(&mut self, id: JobId) -> bool {
        let Some(tenant) = self.owner.get(&id).cloned() else {
            return false;
        };
        let t = self.tenant(&tenant);
        let key = t.queue.iter().find(|(_, q)| q.id == id).map(|(k, _)| *k);
        match key {
            Some(k) => {
                t.queue.remove(&k);
                self.owner.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Records a job as running since `now_ms` without choosing it
    /// (recovered after a restart).
    pub fn mark_running(
        &mut self,
        id: JobId,
        tenant: &str,
        cpus: f64,
        memory_bytes: u64,
        now_ms: i64,
    ) {
        self.owner.insert(id, tenant.to_string());
        let t = self.tenant(tenant);
        if t.running
            .insert(
                id,
                Running {
                    cpus,
                    memory_bytes,
                    since_ms: now_ms,
                },
            )
            .is_none()
        {
            t.running_cpus += cpus;
            t.running_memory += memory_bytes;
            self.used_cpus += cpus;
            self.used_memory += memory_bytes;
        }
    }

    /// Frees a running job's resources at `now_ms`, counting its CPU time
    /// to its tenant; false if it was not running.
    pub fn finish(&mut self, id: JobId, now_ms: i64) -> bool {
        let Some(tenant) = self.owner.get(&id).cloned() else {
            return false;
        };
        let t = self.tenant(&tenant);
        let Some(r) = t.running.remove(&id) else {
            return false;
        };
        t.running_cpus = (t.running_cpus - r.cpus).max(0.0);
        t.running_memory = t.running_memory.saturating_sub(r.memory_bytes);
        t.used_cpu_ms += r.cpus * (now_ms - r.since_ms).max(0) as f64;
        self.used_cpus = (self.used_cpus - r.cpus).max(0.0);
        self.used_memory = self.used_memory.saturating_sub(r.memory_bytes);
        self.owner.remove(&id);
        true
    }

    fn weighted_share(&self, t: &Tenant) -> f64 {
        let cpu = t.running_cpus / self.capacity.cpus.max(1e-9);
        let mem = t.running_memory as f64 / (self.capacity.memory_bytes.max(1) as f64);
        cpu.max(mem) / t.policy.weight
    }

    /// The next job to start at `now_ms`, taken off the queue and counted
    /// as running; `None` when nothing may start now.
    pub fn next(&mut self, now_ms: i64) -> Option<Queued> {
        let mut best: Option<(f64, f64, i64, &str)> = None;
        for (name, t) in &self.tenants {
            let Some(head) = t.head(now_ms) else { continue };
            if !t.quota_allows(head) {
                continue;
            }
            let key = (self.weighted_share(t), t.usage_per_weight(now_ms), head.seq);
            let better = match best {
                None => true,
                Some((share, used, seq, _)) => {
                    if (key.0 - share).abs() > 1e-12 {
                        key.0 < share
                    } else if (key.1 - used).abs() > 1e-9 * used.abs().max(1.0) {
                        key.1 < used
                    } else {
                        key.2 < seq
                    }
                }
            };
            if better {
                best = Some((key.0, key.1, key.2, name));
            }
        }
        let (_, _, _, name) = best?;
        let name = name.to_string();
        let free_cpus = self.capacity.cpus - self.used_cpus;
        let free_memory = self.capacity.memory_bytes.saturating_sub(self.used_memory);
        let t = self.tenants.get_mut(&name)?;
        let head = t.head(now_ms)?;
        if head.cpus > free_cpus + 1e-9 || head.memory_bytes > free_memory {
            // Held for the fairly chosen job until enough is free.
            return None;
        }
        let key = (Reverse(head.priority), head.seq);
        let job = t.queue.remove(&key)?;
        self.mark_running(job.id, &name, job.cpus, job.memory_bytes, now_ms);
        Some(job)
    }

    /// Every tenant that has a policy, queued or running jobs.
    pub fn shares(&self) -> Vec<TenantShare> {
        let mut out: Vec<TenantShare> = self
            .tenants
            .iter()
            .map(|(name, t)| TenantShare {
                tenant: name.clone(),
                weight: t.policy.weight,
                queued: t.queue.len(),
                running: t.running.len(),
                running_cpus: t.running_cpus,
                running_memory_bytes: t.running_memory,
                weighted_share: self.weighted_share(t),
                over_budget: t.over_budget,
            })
            .collect();
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }

    /// Jobs queued (all tenants).
    pub fn queued(&self) -> usize {
        self.tenants.values().map(|t| t.queue.len()).sum()
    }

    /// Jobs running (all tenants).
    pub fn running(&self) -> usize {
        self.tenants.values().map(|t| t.running.len()).sum()
    }

    /// The earliest `not_before` of a queued job still in the future.
    pub fn next_wakeup(&self, now_ms: i64) -> Option<i64> {
        self.tenants
            .values()
            .flat_map(|t| t.queue.values())
            .map(|q| q.not_before_ms)
            .filter(|&t| t > now_ms)
            .min()
    }
}

/// A token bucket: `rate` tokens per second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ms: i64,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, now_ms: i64) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Takes a token, or says how many seconds until one is there.
    pub fn take(&mut self, now_ms: i64) -> Result<(), f64> {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last_ms = now_ms.max(self.last_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / self.rate)
        }
    }

    /// Whether the bucket has this shape (else it is rebuilt).
    pub fn is(&self, rate: f64, burst: u32) -> bool {
        self.rate == rate && self.burst == f64::from(burst.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn job(id: JobId, tenant: &str, cpus: f64) -> Queued {
        Queued {
            id,
            tenant: tenant.into(),
            priority: 0,
            cpus,
            memory_bytes: GIB,
            seq: id,
            not_before_ms: 0,
        }
    }

    fn policy(weight: f64) -> TenantPolicy {
        TenantPolicy {
            weight,
            ..TenantPolicy::default()
        }
    }

    /// Runs jobs of one time unit each on `capacity` CPUs; returns the
    /// CPU-units each tenant got.
    fn simulate(s: &mut Scheduler, rounds: usize) -> HashMap<String, f64> {
        let mut got: HashMap<String, f64> = HashMap::new();
        let mut running: Vec<JobId> = Vec::new();
        for round in 0..rounds as i64 {
            while let Some(j) = s.next(round * 1000) {
                running.push(j.id);
                *got.entry(j.tenant.clone()).or_default() += j.cpus;
            }
            for id in running.drain(..) {
                s.finish(id, (round + 1) * 1000);
            }
        }
        got
    }

    #[test]
    fn shares_whole_jobs_cannot_split_are_met_over_time() {
        // Six CPUs; c is capped at 2 by its quota, and a and b share the
        // other four 1:2, which whole jobs can only do on average.
        let mut s = Scheduler::new(Capacity {
            cpus: 6.0,
            memory_bytes: 64 * GIB,
        });
        s.set_policy("a", policy(1.0));
        s.set_policy("b", policy(2.0));
        s.set_policy(
            "c",
            TenantPolicy {
                weight: 3.0,
                max_cpus: Some(2.0),
                ..TenantPolicy::default()
            },
        );
        let mut id = 0;
        for _ in 0..1000 {
            for t in ["a", "b", "c"] {
                id += 1;
                s.enqueue(job(id, t, 1.0));
            }
        }
        let got = simulate(&mut s, 150);
        let total: f64 = got.values().sum();
        for (t, want) in [("a", 4.0 / 18.0), ("b", 8.0 / 18.0), ("c", 6.0 / 18.0)] {
            let share = got[t] / total;
            assert!((share - want).abs() < 0.01, "{t}: {share} (want {want})");
        }
    }

    #[test]
    fn backlogged_tenants_converge_to_their_weights() {
        let mut s = Scheduler::new(Capacity {
            cpus: 12.0,
            memory_bytes: 64 * GIB,
        });
        for (t, w) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
            s.set_policy(t, policy(w));
        }
        let mut id = 0;
        for _ in 0..2000 {
            for t in ["a", "b", "c"] {
                id += 1;
                s.enqueue(job(id, t, 1.0));
            }
        }
        let got = simulate(&mut s, 100);
        let total: f64 = got.values().sum();
        assert_eq!(total, 1200.0);
        for (t, w) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
            let share = got[t] / total;
            assert!((share - w / 6.0).abs() < 0.01, "{t}: {share}");
        }
    }

    #[test]
    fn quotas_are_never_exceeded_and_do_not_block_others() {
        let mut s = Scheduler::new(Capacity {
            cpus: 8.0,
            memory_bytes: 64 * GIB,
        });
        s.set_policy(
            "small",
            TenantPolicy {
                weight: 10.0,
                max_cpus: Some(2.0),
                max_jobs: Some(1),
                ..TenantPolicy::default()
            },
        );
        for i in 0..10 {
            s.enqueue(job(i, "small", 2.0));
            s.enqueue(job(100 + i, "big", 1.0));
        }
        let mut started = Vec::new();
        while let Some(j) = s.next(0) {
            started.push(j);
        }
        let small: Vec<_> = started.iter().filter(|j| j.tenant == "small").collect();
        assert_eq!(small.len(), 1, "max_jobs 1");
        assert_eq!(started.len(), 7, "2 CPUs for small, 6 for big");
        s.set_over_budget("big", true);
        for j in &started {
            s.finish(j.id, 0);
        }
        let next: Vec<_> = std::iter::from_fn(|| s.next(0)).collect();
        assert!(next.iter().all(|j| j.tenant == "small") && next.len() == 1);
    }

    #[test]
    fn priorities_backoff_cancellation_and_held_capacity() {
        let mut s = Scheduler::new(Capacity {
            cpus: 4.0,
            memory_bytes: 64 * GIB,
        });
        let mut low = job(1, "t", 1.0);
        low.priority = -1;
        let mut high = job(2, "t", 1.0);
        high.priority = 5;
        let mut later = job(3, "t", 1.0);
        later.not_before_ms = 1000;
        s.enqueue(low);
        s.enqueue(high);
        s.enqueue(later);
        s.enqueue(job(4, "t", 1.0));
        assert!(s.dequeue(4));
        assert!(!s.dequeue(4));
        assert_eq!(s.next(0).map(|j| j.id), Some(2));
        assert_eq!(s.next(0).map(|j| j.id), Some(1));
        assert_eq!(s.next(0), None, "job 3 backs off until t=1000");
        assert_eq!(s.next_wakeup(0), Some(1000));
        assert_eq!(s.next(1000).map(|j| j.id), Some(3));
        assert!(s.finish(1, 0) && s.finish(2, 0) && s.finish(3, 0));
        assert!(!s.finish(3, 0));

        // A 4-CPU job of the tenant with the lowest share is not starved
        // by a stream of 1-CPU jobs of another tenant.
        s.enqueue(job(10, "other", 1.0));
        s.enqueue(job(11, "other", 1.0));
        assert_eq!(s.next(0).map(|j| j.id), Some(10));
        s.enqueue(job(20, "wide", 4.0));
        assert_eq!(s.next(0), None, "held for the 4-CPU job");
        s.finish(10, 0);
        // Both tenants run nothing: the older submission goes first, then
        // the wide job holds the capacity again.
        assert_eq!(s.next(0).map(|j| j.id), Some(11));
        s.enqueue(job(30, "other", 1.0));
        assert_eq!(s.next(0), None);
        s.finish(11, 0);
        assert_eq!(s.next(0).map(|j| j.id), Some(20));
        assert!(!s.fits_at_all(5.0, GIB) && s.fits_at_all(4.0, GIB));
    }

    #[test]
    fn the_token_bucket_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::new(2.0, 3, 0);
        for _ in 0..3 {
            assert!(b.take(0).is_ok());
        }
        let wait = b.take(0).unwrap_err();
        assert!((wait - 0.5).abs() < 1e-9, "{wait}");
        assert!(b.take(500).is_ok());
        assert!(b.take(500).is_err());
        assert!(b.take(10_000).is_ok());
    }

    #[test]
    fn policies_are_checked() {
        assert!(policy(0.0).check().unwrap_err().starts_with("weight"));
        let p = TenantPolicy {
            submit_burst: Some(0),
            ..TenantPolicy::default()
        };
        assert!(p.check().unwrap_err().starts_with("submit_burst"));
        assert!(TenantPolicy::default().check().is_ok());
    }
}
