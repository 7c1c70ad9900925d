//! Scheduler throughput: how many trivial jobs per second are submitted
//! (durably inserted) and scheduled (chosen by the fair-share policy and
//! durably marked running), on the embedded SQLite store, with 10 tenants
//! of different weights contending. Process start-up is not included: it
//! is the executor's cost, not the scheduler's.
//!
//!   cargo run --release -p keel-train --example scheduler_bench -- [JOBS]
//!
//! Prints one JSON line.

use std::time::Instant;

use keel_store::{Db, DbOptions};
use keel_train::scheduler::{Capacity, Queued, Scheduler, TenantPolicy};
use keel_train::spec;
use keel_train::store::{JobState, JobStore, NewJob};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let db = Db::open_in_dir(dir.path(), keel_train::MIGRATIONS, DbOptions::default()).await?;
    let store = JobStore::new(db);
    let tenants: Vec<String> = (0..10).map(|i| format!("team{i}")).collect();

    // Submissions: concurrent clients, each insert its own transaction
    // (the store's writer commits them in groups).
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..64 {
        let store = store.clone();
        let tenants = tenants.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (c..jobs).step_by(64) {
                let text = format!(
                    "job: trivial-{i}\ntenant: {}\ncommand: \"true\"\npriority: {}\n",
                    tenants[i % tenants.len()],
                    i % 3
                );
                let s = spec::parse(&text).map_err(|e| e.to_string())?;
                let job = store
                    .insert(vec![NewJob {
                        spec: s,
                        state: JobState::Queued,
                    }])
                    .await
                    .map_err(|e| e.to_string())?;
                ids.push((job[0].id, job[0].tenant.clone(), job[0].priority));
            }
            Ok::<_, String>(ids)
        }));
    }
    let mut queued = Vec::with_capacity(jobs);
    for t in tasks {
        queued.extend(t.await??);
    }
    let submit_s = started.elapsed().as_secs_f64();

    let mut scheduler = Scheduler::new(Capacity {
        cpus: jobs as f64,
        memory_bytes: u64::MAX / 4,
    });
    for (i, t) in tenants.iter().enumerate() {
        scheduler.set_policy(
            t,
            TenantPolicy {
                weight: 1.0 + i as f64,
                ..TenantPolicy::default()
            },
        );
    }
    for (id, tenant, priority) in &queued {
        scheduler.enqueue(Queued {
            id: *id,
            tenant: tenant.clone(),
            priority: *priority,
            cpus: 1.0,
            memory_bytes: 1 << 20,
            seq: *id,
            not_before_ms: 0,
        });
    }
    // Decisions alone (in memory).
    let started = Instant::now();
    let mut chosen = Vec::with_capacity(jobs);
    while let Some(q) = scheduler.next(0) {
        chosen.push(q.id);
    }
    let decide_s = started.elapsed().as_secs_f64();
    // Decisions made durable: each chosen job marked running, concurrently.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chosen.chunks(chosen.len().div_ceil(64).max(1)) {
        let store = store.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                store.start(id, 1, None).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let start_s = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "jobs": jobs,
            "submitted_per_s": jobs as f64 / submit_s,
            "decisions_per_s": chosen.len() as f64 / decide_s,
            "scheduled_per_s": chosen.len() as f64 / (decide_s + start_s),
            "decision_us": decide_s / chosen.len() as f64 * 1e6,
        })
    );
    Ok(())
}
