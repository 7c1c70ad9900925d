//! Benchmark program of the lifecycle engine (`harness = false`).
//!
//! ```text
//! cargo bench -p keel-lifecycle --bench lifecycle_bench -- WORKLOAD [options]
//!
//! WORKLOAD   memory | transitions | recovery | timers | latency | all
//! --instances N        instances per workload (default 1,000,000)
//! --events M           events of the pure-core run (default 5,000,000)
//! --seconds S          length of the timed engine runs (default 5)
//! --concurrency C      concurrent senders (default 256)
//! --rate R             open-loop events/s of `latency` and of the timer
//!                      workload's background load (default 20,000)
//! --timer-instances T  instances of the timer-lateness run (default 200,000)
//! --samples S          instances whose timer lateness is read (default 20,000)
//! --tail-events E      events after the snapshot in `recovery` (default 100,000)
//! --json               one JSON object per workload on stdout (the
//!                      human-readable lines go to stderr)
//! ```
//!
//! Every workload prints the parameters it used, then one line per figure,
//! a `goal … met / NOT met` line where the issue states a goal, and last
//! the CPU other processes used meanwhile (the machine's noise). Long
//! phases report progress on stderr. Data lives in temporary directories
//! on the default filesystem. Set-up phases (creating instances to
//! measure something else) run with fsync off; automatic snapshots are
//! off except where `recovery` asks for one. The "6-state definition" is
//! `idle → queued → running → checking → done | failed`, with a timeout
//! on `queued` and a self-loop `tick` on `idle` that counts in the context
//! (`n = context.n + 1`), so every event of the throughput runs is a
//! transition. Keys are `customer-0000123`.
//!
//! - `memory`: N instances of the 6-state definition waiting in their
//!   initial state without context, once in an ephemeral-mode and once in
//!   a durable-mode engine, each in a fresh process and directory, and
//!   once more (durable) with a one-field context `{"n": 0}`. Figure:
//!   bytes of memory per waiting instance = (RSS after − RSS before) / N,
//!   RSS from `/proc/self/statm`, both read after temporaries are dropped
//!   and `malloc_trim`. Durable also reports log bytes per instance.
//! - `transitions`: (a) the pure core, `Machine::apply` of M events
//!   round-robin over N instances in a `Vec` on one thread (also a
//!   context-free ping-pong variant); (b) the engine with an ephemeral
//!   definition, C tokio tasks (2 worker threads) each sending `tick` in a
//!   loop to uniformly random keys for S seconds, acknowledged
//!   transitions/s; (c) the same on a durable definition with fsync on
//!   (acknowledged only after the group commit's fsync), with the average
//!   group-commit size read from the log's frames; (d) the peer: the same
//!   events (same per-sender key sequences and counts as (c)) applied as
//!   `UPDATE instances SET state = ?, n = n + 1 WHERE key = ?` on a SQLite
//!   table (sqlx, WAL, synchronous = FULL), one transaction per batch of
//!   pending requests, each acknowledged after its commit.
//! - `recovery`: N durable instances (N starts and N/2 events) are built,
//!   the engine is closed like a crash (`close(false)`, no snapshot), and a
//!   fresh process measures the seconds until `Engine::open` returns and
//!   until a first send is acknowledged, plus its RSS. Then a snapshot is
//!   written, E more events are added, and it is closed and reopened the
//!   same way (snapshot + tail).
//! - `timers`: memory per pending timer (RSS per instance waiting in a
//!   state with a 1 h timeout, minus the same without one, each in a fresh
//!   process), then lateness: T instances of a definition with a 3 s
//!   timeout started over about 1 s while a background load of R events/s
//!   runs (durable, fsync on); lateness = time the timeout transition was
//!   applied (the newest history entry's `time`, the start of its group
//!   commit, in ms) − (the start entry's `time` + 3 s), over S instances
//!   spread evenly over the T.
//! - `latency`: open-loop load (sends on a fixed schedule, not waiting for
//!   earlier answers) of R events/s to random keys of N instances for S
//!   seconds on a durable engine with fsync on; latency from the send call
//!   to its acknowledgement (and from the scheduled send time),
//!   p50/p99/max, the achieved rate and the average group commit.
//! - `all`: everything above with the given options, then a summary.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use keel_lifecycle::machine::{Input, Instance, Machine};
use keel_lifecycle::parse::parse_definition;
use keel_lifecycle::{Engine, EngineOptions, SendRequest, Target};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const USAGE: &str = "usage: lifecycle_bench WORKLOAD [--instances N] [--events M] [--seconds S] \
[--concurrency C] [--rate R] [--timer-instances T] [--samples S] [--tail-events E] [--json]
WORKLOAD: memory | transitions | recovery | timers | latency | cluster | all
(cluster needs KEEL_BENCH_POSTGRES_URL, an admin URL of a PostgreSQL server; `all` skips it without one)";

/// What a child process prints before its result (one JSON line).
const CHILD_RESULT: &str = "CHILD-RESULT ";

// ---------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    workload: String,
    instances: u64,
    events: u64,
    seconds: f64,
    concurrency: usize,
    rate: f64,
    timer_instances: u64,
    samples: usize,
    tail_events: u64,
    json: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts {
            workload: String::new(),
            instances: 1_000_000,
            events: 5_000_000,
            seconds: 5.0,
            concurrency: 256,
            rate: 20_000.0,
            timer_instances: 200_000,
            samples: 20_000,
            tail_events: 100_000,
            json: false,
        };
        let mut via_cargo_bench = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                _ => (a.as_str(), None),
            };
            let mut value = || -> Result<String> {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}"))
            };
            match name {
                // `cargo bench` passes this to every bench program.
                "--bench" => via_cargo_bench = true,
                "--json" => o.json = true,
                "--instances" => o.instances = number(&value()?)?,
                "--events" => o.events = number(&value()?)?,
                "--seconds" => o.seconds = value()?.parse().context("--seconds")?,
                "--concurrency" => o.concurrency = number(&value()?)? as usize,
                "--rate" => o.rate = number(&value()?)? as f64,
                "--timer-instances" => o.timer_instances = number(&value()?)?,
                "--samples" => o.samples = number(&value()?)? as usize,
                "--tail-events" => o.tail_events = number(&value()?)?,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other if other.starts_with('-') => bail!("unknown option {other}\n{USAGE}"),
                other if o.workload.is_empty() => o.workload = other.to_owned(),
                other => bail!("unexpected argument {other}\n{USAGE}"),
            }
        }
        if o.workload.is_empty() && !via_cargo_bench {
            // `cargo test --benches` runs bench programs without arguments.
            eprintln!("lifecycle_bench: no workload given, nothing to do\n{USAGE}");
            std::process::exit(0);
        }
        if o.workload.is_empty() {
            bail!("no workload given\n{USAGE}");
        }
        if o.instances == 0 || o.concurrency == 0 || o.seconds <= 0.0 || o.rate <= 0.0 {
            bail!("--instances, --concurrency, --seconds and --rate must be positive");
        }
        Ok(o)
    }
}

/// A count, with `_` or `,` allowed as separators (`1_000_000`).
fn number(s: &str) -> Result<u64> {
    s.replace(['_', ','], "")
        .parse()
        .with_context(|| format!("`{s}` is not a count"))
}

// ---------------------------------------------------------------------
// Reports

struct Figure {
    key: String,
    label: String,
    value: f64,
    unit: &'static str,
}

struct Report {
    workload: &'static str,
    params: Map<String, Value>,
    figures: Vec<Figure>,
    goals: Map<String, Value>,
    json: bool,
    cpu: CpuMark,
}

impl Report {
    fn new(workload: &'static str, opts: &Opts) -> Report {
        let r = Report {
            workload,
            params: Map::new(),
            figures: Vec::new(),
            goals: Map::new(),
            json: opts.json,
            cpu: CpuMark::now(),
        };
        r.line(&format!("== {workload}"));
        r
    }

    /// A human-readable line: stdout, or stderr when stdout carries JSON.
    fn line(&self, s: &str) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    fn param(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        let shown = match &value {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
            Value::Number(n) => n.as_i64().map_or_else(|| n.to_string(), fmt_int),
            v => v.to_string(),
        };
        self.line(&format!("   param {key} = {shown}"));
        self.params.insert(key.to_owned(), value);
    }

    fn figure(&mut self, key: &str, label: &str, value: f64, unit: &'static str) {
        self.line(&format!(
            "{:<12} {label:<58} {} {unit}",
            self.workload,
            fmt_num(value)
        ));
        self.figures.push(Figure {
            key: key.to_owned(),
            label: label.to_owned(),
            value,
            unit,
        });
    }

    /// A line comparing a figure with its goal.
    fn goal(&mut self, met: bool, what: &str) {
        let verdict = if met { "met" } else { "NOT met" };
        self.line(&format!("   goal {what}: {verdict}"));
        self.goals.insert(what.to_owned(), Value::Bool(met));
    }

    fn finish(mut self) -> Report {
        let other = self.cpu.other_cores();
        self.figure(
            "other_cpu_cores",
            "CPU used by other processes meanwhile (machine noise)",
            other,
            "cores",
        );
        if self.json {
            let mut figures = Map::new();
            let mut units = Map::new();
            for f in &self.figures {
                figures.insert(f.key.clone(), json!(f.value));
                units.insert(f.key.clone(), json!(f.unit));
            }
            let obj = json!({
                "workload": self.workload,
                "params": self.params,
                "figures": figures,
                "units": units,
                "goals": self.goals,
            });
            println!("{obj}");
        }
        self
    }
}

/// 1234567 → "1,234,567".
fn fmt_int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// 1234567.8 → "1,234,568"; 12.345 → "12.3"; 0.01234 → "0.0123".
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() >= 1000.0 {
        fmt_int(v.round() as i64)
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

// ---------------------------------------------------------------------
// Process memory

#[cfg(target_os = "linux")]
unsafe extern "C" {
    fn sysconf(name: std::ffi::c_int) -> std::ffi::c_long;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

#[cfg(target_os = "linux")]
unsafe extern "C" {
    fn sync();
}

/// Lets the page cache write back what earlier workloads left dirty, so
/// it does not stall this workload's fsyncs.
fn settle_disk() {
    #[cfg(target_os = "linux")]
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe {
        sync();
    }
    std::thread::sleep(Duration::from_secs(1));
}

fn page_size() -> u64 {
    #[cfg(target_os = "linux")]
    {
        const SC_PAGESIZE: std::ffi::c_int = 30;
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        let n = unsafe { sysconf(SC_PAGESIZE) };
        if n > 0 {
            return n as u64;
        }
    }
    4096
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_size())
}

/// Gives freed heap memory back to the system so RSS shows what is live.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's arenas.
    unsafe {
        malloc_trim(0);
    }
}

/// RSS once the allocator has settled (callers drop temporaries first).
fn settled_rss() -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    trim_heap();
    std::thread::sleep(Duration::from_millis(100));
    rss_bytes()
}

/// CPU time of the whole machine and of this process (with its waited-for
/// children), to tell how busy the rest of the machine was.
struct CpuMark {
    at: Instant,
    busy_ticks: u64,
    own_ticks: u64,
}

impl CpuMark {
    fn now() -> CpuMark {
        let busy_ticks = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.to_owned();
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal …
                let total: u64 = v.iter().take(8).sum();
                Some(total - v.get(3)? - v.get(4)?)
            })
            .unwrap_or(0);
        let own_ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1.to_owned();
                let fields: Vec<&str> = rest.split_whitespace().collect();
                // `rest` starts at field 3; fields 14–17 are utime, stime,
                // cutime and cstime.
                let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
                Some(field(14)? + field(15)? + field(16)? + field(17)?)
            })
            .unwrap_or(0);
        CpuMark {
            at: Instant::now(),
            busy_ticks,
            own_ticks,
        }
    }

    /// Cores' worth of CPU that other processes used since this mark.
    fn other_cores(&self) -> f64 {
        let now = CpuMark::now();
        let secs = (now.at - self.at).as_secs_f64().max(1e-9);
        let busy = now.busy_ticks.saturating_sub(self.busy_ticks);
        let own = now.own_ticks.saturating_sub(self.own_ticks);
        busy.saturating_sub(own) as f64 / clock_ticks() / secs
    }
}

fn clock_ticks() -> f64 {
    #[cfg(target_os = "linux")]
    {
        const SC_CLK_TCK: std::ffi::c_int = 2;
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        let n = unsafe { sysconf(SC_CLK_TCK) };
        if n > 0 {
            return n as f64;
        }
    }
    100.0
}

// ---------------------------------------------------------------------
// Definitions, keys, helpers

/// The 6-state definition; `initial_timeout` puts a timeout on `idle`.
fn job_def(name: &str, mode: &str, initial_timeout: Option<&str>) -> String {
    let timeout = initial_timeout.map_or(String::new(), |t| {
        format!("    timeout: {{after: {t}, event: expire}}\n")
    });
    let expire = if initial_timeout.is_some() {
        "      expire: failed\n"
    } else {
        ""
    };
    format!(
        "lifecycle: {name}
mode: {mode}
initial: idle
states:
  idle:
{timeout}    on:
      queue: queued
      tick: {{target: idle, assign: {{n: \"context.n + 1\"}}}}
{expire}  queued:
    timeout: {{after: 1h, event: expire}}
    on: {{run: running, expire: failed}}
  running:
    on: {{check: checking, fail: failed}}
  checking:
    on: {{pass: done, fail: failed, retry: running}}
  done: {{terminal: true}}
  failed: {{terminal: true}}
"
    )
}

const PING_PONG: &str = "lifecycle: pingpong
initial: a
states:
  a:
    on: {ping: b}
  b:
    on: {pong: a}
";

fn key(i: u64) -> String {
    format!("customer-{i:07}")
}

/// splitmix64: the key sequence of a sender, identical for the engine
/// and the SQLite peer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x5EED))
    }
    /// Uniform in 0..n.
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(1);
        ((u128::from(mix(self.0)) * u128::from(n)) >> 64) as u64
    }
}

fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn engine_options(dir: &Path, fsync: bool) -> EngineOptions {
    let mut o = EngineOptions::new(dir);
    o.fsync = fsync;
    // No snapshot in the middle of a measurement (one is written on the
    // writer thread and would stall it); `recovery` asks for its own.
    o.snapshot_bytes = u64::MAX;
    o
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A progress line on stderr every two seconds while a long phase runs.
struct Progress {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn new(label: &str, total: u64) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (done, stop, label) = (done.clone(), stop.clone(), label.to_owned());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut next = Duration::from_secs(2);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if t0.elapsed() >= next {
                        next += Duration::from_secs(2);
                        let d = done.load(Ordering::Relaxed);
                        let secs = t0.elapsed().as_secs_f64();
                        eprintln!(
                            "   [{label}] {} / {} ({}/s, {secs:.0} s)",
                            fmt_int(d as i64),
                            fmt_int(total as i64),
                            fmt_num(d as f64 / secs)
                        );
                    }
                }
            })
        };
        Progress {
            done,
            stop,
            thread: Some(thread),
        }
    }
    fn counter(&self) -> Arc<AtomicU64> {
        self.done.clone()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts instances `keys` with `data`, `concurrency` at a time. Returns
/// the seconds it took.
async fn start_many(
    engine: &Engine,
    lifecycle: &str,
    keys: std::ops::Range<u64>,
    data: Value,
    concurrency: usize,
) -> Result<f64> {
    let progress = Progress::new(&format!("start {lifecycle}"), keys.end - keys.start);
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..concurrency as u64 {
        let (engine, lifecycle, data, done) = (
            engine.clone(),
            lifecycle.to_owned(),
            data.clone(),
            progress.counter(),
        );
        let (lo, hi, step) = (keys.start, keys.end, concurrency as u64);
        set.spawn(async move {
            let mut i = lo + w;
            while i < hi {
                engine
                    .start(&lifecycle, &key(i), data.clone(), None)
                    .await?;
                done.fetch_add(1, Ordering::Relaxed);
                i += step;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(t0.elapsed().as_secs_f64())
}

async fn send_tick(engine: &Engine, lifecycle: &str, key: String) -> Result<()> {
    let report = engine
        .send(SendRequest {
            event: "tick".into(),
            target: Target::Key {
                lifecycle: Some(lifecycle.to_owned()),
                key,
            },
            data: Value::Null,
            idempotency_key: None,
        })
        .await?;
    if report.applied != 1 {
        bail!("a tick was not applied: {report:?}");
    }
    Ok(())
}

/// `events` ticks to uniformly random keys of `0..n`, `concurrency` at a time.
async fn send_many(
    engine: &Engine,
    lifecycle: &str,
    n: u64,
    events: u64,
    concurrency: usize,
    seed: u64,
) -> Result<f64> {
    let progress = Progress::new(&format!("send {lifecycle}"), events);
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    let c = concurrency as u64;
    for w in 0..c {
        let (engine, lifecycle, done) = (engine.clone(), lifecycle.to_owned(), progress.counter());
        let mine = events / c + u64::from(w < events % c);
        set.spawn(async move {
            let mut rng = Rng::new(seed + w);
            for _ in 0..mine {
                send_tick(&engine, &lifecycle, key(rng.below(n))).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Closed loop: each of `concurrency` senders sends a tick to a random
/// key, waits for the acknowledgement, and repeats until `duration` is
/// over. Returns each sender's count and the elapsed seconds.
async fn closed_loop(
    engine: &Engine,
    lifecycle: &str,
    n: u64,
    concurrency: usize,
    duration: Duration,
) -> Result<(Vec<u64>, f64)> {
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let mut set = JoinSet::new();
    for w in 0..concurrency {
        let (engine, lifecycle) = (engine.clone(), lifecycle.to_owned());
        set.spawn(async move {
            let mut rng = Rng::new(w as u64);
            let mut sent = 0u64;
            while Instant::now() < deadline {
                send_tick(&engine, &lifecycle, key(rng.below(n))).await?;
                sent += 1;
            }
            Ok::<(usize, u64), anyhow::Error>((w, sent))
        });
    }
    let mut counts = vec![0; concurrency];
    while let Some(r) = set.join_next().await {
        let (w, c) = r??;
        counts[w] = c;
    }
    Ok((counts, t0.elapsed().as_secs_f64()))
}

/// Closed loop in batches: each of `senders` sends 100 ticks to random
/// keys in one `send_batch` call, waits, and repeats until `duration` is
/// over. Returns the acknowledged events and the elapsed seconds.
async fn batched_loop(
    engine: &Engine,
    lifecycle: &str,
    n: u64,
    senders: usize,
    duration: Duration,
) -> Result<(u64, f64)> {
    let deadline = Instant::now() + duration;
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..senders {
        let (engine, lifecycle) = (engine.clone(), lifecycle.to_owned());
        set.spawn(async move {
            let mut rng = Rng::new(1_000 + w as u64);
            let mut ok = 0u64;
            while Instant::now() < deadline {
                let batch: Vec<SendRequest> = (0..100)
                    .map(|_| SendRequest {
                        event: "tick".into(),
                        target: Target::Key {
                            lifecycle: Some(lifecycle.clone()),
                            key: key(rng.below(n)),
                        },
                        data: Value::Null,
                        idempotency_key: None,
                    })
                    .collect();
                for result in engine.send_batch(batch).await? {
                    if result?.applied == 1 {
                        ok += 1;
                    }
                }
            }
            Ok::<u64, anyhow::Error>(ok)
        });
    }
    let mut total = 0;
    while let Some(x) = set.join_next().await {
        total += x??;
    }
    Ok((total, t0.elapsed().as_secs_f64()))
}

struct OpenLoop {
    scheduled: u64,
    errors: u64,
    first_error: Option<String>,
    /// Send call → acknowledgement, ms, sorted.
    latency_ms: Vec<f64>,
    /// Scheduled send time → acknowledgement, ms, sorted.
    from_schedule_ms: Vec<f64>,
    /// First scheduled send → last acknowledgement.
    secs: f64,
}

impl OpenLoop {
    fn rate(&self) -> f64 {
        self.latency_ms.len() as f64 / self.secs
    }
}

/// Open loop: sends on a fixed schedule of `rate` per second, whatever
/// the answers, for `max` or until `stop` is set.
async fn open_loop(
    engine: Engine,
    lifecycle: String,
    n: u64,
    rate: f64,
    max: Duration,
    stop: Option<Arc<AtomicBool>>,
) -> Result<OpenLoop> {
    type Sample = Result<(f64, f64, Instant), String>;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let t0 = Instant::now();
    let lifecycle: Arc<str> = Arc::from(lifecycle);
    let mut i = 0u64;
    loop {
        let offset = Duration::from_secs_f64(i as f64 / rate);
        if offset >= max || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let due = t0 + offset;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let (engine, lifecycle, tx) = (engine.clone(), lifecycle.clone(), tx.clone());
        let k = key(mix(i) % n);
        tokio::spawn(async move {
            let sent = Instant::now();
            let r = send_tick(&engine, &lifecycle, k).await;
            let acked = Instant::now();
            let _ = tx.send(match r {
                Ok(()) => Ok((
                    (acked - sent).as_secs_f64() * 1e3,
                    (acked - due).as_secs_f64() * 1e3,
                    acked,
                )),
                Err(e) => Err(e.to_string()),
            });
        });
        i += 1;
    }
    drop(tx);
    let mut out = OpenLoop {
        scheduled: i,
        errors: 0,
        first_error: None,
        latency_ms: Vec::with_capacity(i as usize),
        from_schedule_ms: Vec::with_capacity(i as usize),
        secs: 0.0,
    };
    let mut last = t0;
    while let Some(s) = rx.recv().await {
        match s {
            Ok((l, f, at)) => {
                out.latency_ms.push(l);
                out.from_schedule_ms.push(f);
                last = last.max(at);
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out.secs = (last - t0).as_secs_f64().max(1e-9);
    out.latency_ms.sort_by(f64::total_cmp);
    out.from_schedule_ms.sort_by(f64::total_cmp);
    Ok(out)
}

/// Frames (group commits, one fsync each when fsync is on) in the log
/// from `from`, a `log_position` of `engine_stats` ("SSSSSSSS:offset").
fn count_frames(log_dir: &Path, from: &str) -> Result<u64> {
    let (seg, off) = from.split_once(':').context("log position")?;
    let (seg, off) = (u32::from_str_radix(seg, 16)?, u64::from_str_radix(off, 16)?);
    let mut frames = 0;
    for s in keel_lifecycle::log::segments(log_dir)? {
        if s < seg {
            continue;
        }
        let bytes = std::fs::read(log_dir.join(format!("{s:08x}.log")))?;
        let mut at = if s == seg { off as usize } else { 0 };
        while at + 12 <= bytes.len() {
            let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
            if word(at) != 0x3146_4C4B {
                bail!("no frame at {s:08x}:{at:x}");
            }
            at += 12 + word(at + 4) as usize;
            frames += 1;
        }
    }
    Ok(frames)
}

// ---------------------------------------------------------------------
// Child processes: a fresh process per memory or recovery measurement,
// so one phase's heap does not hide in the next one's RSS.

fn run_child(args: &[String]) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .arg("__child")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("child {args:?} failed: {}", out.status);
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(CHILD_RESULT))
        .with_context(|| format!("child {args:?} printed no result"))?;
    Ok(serde_json::from_str(line)?)
}

fn child_main(args: &[String]) -> Result<()> {
    let arg = |i: usize| -> Result<&str> {
        args.get(i)
            .map(String::as_str)
            .with_context(|| format!("child argument {i} missing"))
    };
    let result = match arg(0)? {
        "waiting" => child_waiting(
            arg(1)?,
            match arg(2)? {
                "none" => None,
                t => Some(t),
            },
            serde_json::from_str(arg(3)?)?,
            number(arg(4)?)?,
            number(arg(5)?)? as usize,
        )?,
        "recovery-build" => child_recovery_build(
            Path::new(arg(1)?),
            number(arg(2)?)?,
            number(arg(3)?)? as usize,
        )?,
        "recovery-open" => child_recovery_open(Path::new(arg(1)?))?,
        "recovery-snapshot" => child_recovery_snapshot(
            Path::new(arg(1)?),
            number(arg(2)?)?,
            number(arg(3)?)?,
            number(arg(4)?)? as usize,
        )?,
        other => bail!("unknown child {other}"),
    };
    println!("{CHILD_RESULT}{result}");
    Ok(())
}

/// N instances waiting in `idle` of a fresh engine: RSS before and after.
fn child_waiting(
    mode: &str,
    timeout: Option<&str>,
    data: Value,
    n: u64,
    concurrency: usize,
) -> Result<Value> {
    let rt = runtime()?;
    let dir = tempfile::tempdir()?;
    // fsync off: it changes how fast the instances are created, not their size.
    let engine = Engine::open(engine_options(dir.path(), false))?;
    rt.block_on(engine.apply_definition(&job_def("job", mode, timeout)))?;
    // Wake the runtime's workers and the engine's writer once.
    rt.block_on(async {
        let mut set = JoinSet::new();
        for _ in 0..4 {
            set.spawn(tokio::time::sleep(Duration::from_millis(10)));
        }
        while set.join_next().await.is_some() {}
    });
    let before = settled_rss();
    let secs = rt.block_on(start_many(&engine, "job", 0..n, data, concurrency))?;
    let after = settled_rss();
    let stats = engine.engine_stats()?;
    if stats.instances != n {
        bail!("{} instances, expected {n}", stats.instances);
    }
    let log_bytes = dir_bytes(&dir.path().join("log"));
    engine.close(false);
    Ok(json!({
        "rss_before": before,
        "rss_after": after,
        "log_bytes": log_bytes,
        "pending_timers": stats.pending_timers,
        "create_secs": secs,
    }))
}

fn child_recovery_build(dir: &Path, n: u64, concurrency: usize) -> Result<Value> {
    let rt = runtime()?;
    let t0 = Instant::now();
    // Building is set-up: fsync off. Recovery itself opens with fsync on.
    let engine = Engine::open(engine_options(dir, false))?;
    rt.block_on(engine.apply_definition(&job_def("job", "durable", None)))?;
    rt.block_on(start_many(
        &engine,
        "job",
        0..n,
        json!({"n": 0}),
        concurrency,
    ))?;
    rt.block_on(send_many(&engine, "job", n, n / 2, concurrency, 1_000))?;
    let stats = engine.engine_stats()?;
    engine.close(false);
    Ok(json!({
        "inputs": stats.inputs_applied,
        "log_bytes": dir_bytes(&dir.join("log")),
        "secs": t0.elapsed().as_secs_f64(),
    }))
}

fn child_recovery_open(dir: &Path) -> Result<Value> {
    let rss_start = rss_bytes();
    let rt = runtime()?;
    let t0 = Instant::now();
    let engine = Engine::open(EngineOptions::new(dir))?;
    let open_secs = t0.elapsed().as_secs_f64();
    rt.block_on(send_tick(&engine, "job", key(0)))?;
    let first_ack_secs = t0.elapsed().as_secs_f64();
    let rss = rss_bytes();
    let rss_settled = settled_rss();
    let stats = engine.engine_stats()?;
    engine.close(false);
    Ok(json!({
        "open_secs": open_secs,
        "first_ack_secs": first_ack_secs,
        "recovered_records": stats.recovered_records,
        "recovery_ms": stats.recovery_ms,
        "instances": stats.instances,
        "rss_start": rss_start,
        "rss": rss,
        "rss_settled": rss_settled,
    }))
}

fn child_recovery_snapshot(dir: &Path, n: u64, tail: u64, concurrency: usize) -> Result<Value> {
    let rt = runtime()?;
    let engine = Engine::open(engine_options(dir, true))?;
    let t0 = Instant::now();
    rt.block_on(engine.snapshot())?;
    let snapshot_secs = t0.elapsed().as_secs_f64();
    let snapshot_bytes = dir_bytes(&dir.join("snapshots"));
    rt.block_on(send_many(&engine, "job", n, tail, concurrency, 2_000))?;
    engine.close(false);
    Ok(json!({
        "snapshot_secs": snapshot_secs,
        "snapshot_bytes": snapshot_bytes,
    }))
}

fn f(v: &Value, k: &str) -> Result<f64> {
    v.get(k)
        .and_then(Value::as_f64)
        .with_context(|| format!("child result has no `{k}`: {v}"))
}

// ---------------------------------------------------------------------
// Workloads

fn memory(opts: &Opts) -> Result<Report> {
    let n = opts.instances;
    let mut r = Report::new("memory", opts);
    r.param("instances", n);
    r.param(
        "definition",
        "6 states, waiting in the initial state (no timer)",
    );
    r.param("data", "null (no context)");
    r.param("keys", "customer-NNNNNNN (16 bytes)");
    r.param("creation_concurrency", 512);
    r.param("fsync", false);
    r.param(
        "context_variant",
        "durable, data {\"n\": 0} (a one-field context)",
    );
    for (mode, data) in [
        ("ephemeral", "null"),
        ("durable", "null"),
        ("durable", r#"{"n":0}"#),
    ] {
        let with_context = data != "null";
        let tag = if with_context {
            format!("{mode}_context")
        } else {
            mode.to_owned()
        };
        eprintln!("   starting {n} {mode} instances (data {data}) in a fresh process");
        let c = run_child(&[
            "waiting".into(),
            mode.into(),
            "none".into(),
            data.into(),
            n.to_string(),
            "512".into(),
        ])?;
        let per = (f(&c, "rss_after")? - f(&c, "rss_before")?) / n as f64;
        let what = if with_context {
            format!("{mode}, context {{\"n\": 0}}")
        } else {
            mode.to_owned()
        };
        r.figure(
            &format!("{tag}_bytes_per_instance"),
            &format!("memory per waiting instance, {what}"),
            per,
            "B",
        );
        if with_context {
            continue;
        }
        r.goal(
            per <= 300.0,
            &format!("≤ 300 B per waiting instance ({mode})"),
        );
        if mode == "durable" {
            r.figure(
                "durable_log_bytes_per_instance",
                "log bytes per instance, durable (one start record)",
                f(&c, "log_bytes")? / n as f64,
                "B",
            );
        }
        r.figure(
            &format!("{mode}_starts_per_sec"),
            &format!("starts/s while creating them, {mode}, fsync off"),
            n as f64 / f(&c, "create_secs")?,
            "/s",
        );
    }
    Ok(r.finish())
}

fn transitions(opts: &Opts, rt: &Runtime) -> Result<Report> {
    let n = opts.instances;
    let mut r = Report::new("transitions", opts);
    r.param("instances", n);
    r.param("core_events", opts.events);
    r.param("engine_seconds", opts.seconds);
    r.param("concurrency", opts.concurrency as u64);
    r.param("runtime", "tokio multi-thread, 2 workers");
    r.param("event", "tick: idle → idle, n = context.n + 1");
    r.param(
        "keys",
        "uniform random per sender (splitmix64, seeded by sender)",
    );

    // (a) The pure core.
    {
        let src = job_def("job", "durable", None);
        let machine = Machine::compile(parse_definition(&src, &[])?, 1, Arc::from(src.as_str()))
            .map_err(|e| anyhow!(e))?;
        let now = keel_core::time::now_millis();
        let start = json!({"n": 0});
        let mut insts: Vec<Instance> = (0..n).map(|_| machine.start(&start, now).0).collect();
        let progress = Progress::new("core apply", opts.events);
        let done = progress.counter();
        let t0 = Instant::now();
        let nu = insts.len();
        for e in 0..opts.events {
            let inst = &mut insts[(e % n) as usize];
            let out = machine
                .apply(inst, Input::Event("tick"), &Value::Null, now)
                .map_err(|e| anyhow!("{e}"))?;
            std::hint::black_box(&out);
            if e % 65_536 == 0 {
                done.store(e, Ordering::Relaxed);
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        drop(progress);
        let total: u64 = insts
            .iter()
            .map(|i| i.context_value()["n"].as_u64().unwrap_or(0))
            .sum();
        if total != opts.events {
            bail!("core: counters sum to {total}, expected {}", opts.events);
        }
        r.figure(
            "core_transitions_per_sec",
            &format!("pure core, tick with counter, {nu} instances, 1 thread"),
            opts.events as f64 / secs,
            "/s",
        );
        drop(insts);

        let machine = Machine::compile(parse_definition(PING_PONG, &[])?, 1, Arc::from(PING_PONG))
            .map_err(|e| anyhow!(e))?;
        let mut insts: Vec<Instance> = (0..n).map(|_| machine.start(&Value::Null, now).0).collect();
        let t0 = Instant::now();
        for e in 0..opts.events {
            let ev = if (e / n).is_multiple_of(2) {
                "ping"
            } else {
                "pong"
            };
            let out = machine
                .apply(
                    &mut insts[(e % n) as usize],
                    Input::Event(ev),
                    &Value::Null,
                    now,
                )
                .map_err(|e| anyhow!("{e}"))?;
            std::hint::black_box(&out);
        }
        let secs = t0.elapsed().as_secs_f64();
        r.figure(
            "core_pingpong_transitions_per_sec",
            "pure core, 2-state ping-pong without context",
            opts.events as f64 / secs,
            "/s",
        );
    }

    let duration = Duration::from_secs_f64(opts.seconds);
    let setup_concurrency = opts.concurrency.max(512);

    // (b) Engine, ephemeral definition.
    {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(engine_options(dir.path(), true))?;
        rt.block_on(engine.apply_definition(&job_def("job", "ephemeral", None)))?;
        rt.block_on(start_many(
            &engine,
            "job",
            0..n,
            json!({"n": 0}),
            setup_concurrency,
        ))?;
        let before = engine.engine_stats()?.inputs_applied;
        settle_disk();
        eprintln!("   ephemeral engine: sending for {} s", opts.seconds);
        let (counts, secs) =
            rt.block_on(closed_loop(&engine, "job", n, opts.concurrency, duration))?;
        let acked: u64 = counts.iter().sum();
        let applied = engine.engine_stats()?.inputs_applied - before;
        if applied != acked {
            bail!("ephemeral: {applied} applied, {acked} acknowledged");
        }
        let rate = acked as f64 / secs;
        r.figure(
            "engine_ephemeral_transitions_per_sec",
            "engine in memory (ephemeral), acknowledged",
            rate,
            "/s",
        );
        let senders = (opts.concurrency / 8).max(1);
        eprintln!(
            "   ephemeral engine, batches of 100: {senders} senders for {} s",
            opts.seconds
        );
        let (acked, secs) = rt.block_on(batched_loop(&engine, "job", n, senders, duration))?;
        engine.close(false);
        let batched = acked as f64 / secs;
        r.figure(
            "engine_ephemeral_batched_transitions_per_sec",
            "engine in memory (ephemeral), 100 events a call",
            batched,
            "/s",
        );
        r.goal(
            rate.max(batched) >= 2e6,
            "≥ 2,000,000 in-memory transitions/s",
        );
    }

    // (c) Engine, durable definition, fsync on.
    let counts = {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(engine_options(dir.path(), true))?;
        rt.block_on(engine.apply_definition(&job_def("job", "durable", None)))?;
        rt.block_on(start_many(
            &engine,
            "job",
            0..n,
            json!({"n": 0}),
            setup_concurrency,
        ))?;
        let stats = engine.engine_stats()?;
        settle_disk();
        eprintln!(
            "   durable engine (fsync on): sending for {} s",
            opts.seconds
        );
        let (counts, secs) =
            rt.block_on(closed_loop(&engine, "job", n, opts.concurrency, duration))?;
        let acked: u64 = counts.iter().sum();
        let applied = engine.engine_stats()?.inputs_applied - stats.inputs_applied;
        if applied != acked {
            bail!("durable: {applied} applied, {acked} acknowledged");
        }
        engine.close(false);
        let frames = count_frames(&dir.path().join("log"), &stats.log_position)?;
        let rate = acked as f64 / secs;
        r.figure(
            "engine_durable_transitions_per_sec",
            "engine durable, fsync on, acknowledged after fsync",
            rate,
            "/s",
        );
        r.goal(rate >= 3e5, "≥ 300,000 durable transitions/s");
        r.figure(
            "engine_durable_avg_batch",
            "  events per log frame (one write; the syncer fsyncs one or more)",
            acked as f64 / frames.max(1) as f64,
            "events",
        );
        r.figure(
            "engine_durable_fsyncs_per_sec",
            "  log frames per second",
            frames as f64 / secs,
            "/s",
        );
        counts
    };

    // (e) Engine, durable, fsync on, events sent 100 to a call
    // (`send_batch`, `POST /v1/events/batch`): a stream feeding the engine.
    {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(engine_options(dir.path(), true))?;
        rt.block_on(engine.apply_definition(&job_def("job", "durable", None)))?;
        rt.block_on(start_many(
            &engine,
            "job",
            0..n,
            json!({"n": 0}),
            setup_concurrency,
        ))?;
        settle_disk();
        let senders = (opts.concurrency / 8).max(1);
        eprintln!(
            "   durable engine, batches of 100: {senders} senders for {} s",
            opts.seconds
        );
        let (acked, secs) = rt.block_on(batched_loop(&engine, "job", n, senders, duration))?;
        let rate = acked as f64 / secs;
        engine.close(false);
        r.figure(
            "engine_durable_batched_transitions_per_sec",
            "engine durable, fsync on, 100 events a call",
            rate,
            "/s",
        );
        r.goal(
            rate >= 3e5,
            "≥ 300,000 durable transitions/s (batched calls)",
        );
    }

    // (d) The peer: a row per instance in SQLite.
    {
        let dir = tempfile::tempdir()?;
        let total: u64 = counts.iter().sum();
        eprintln!(
            "   SQLite peer: the same {total} events ({} senders)",
            counts.len()
        );
        let (secs, batches) = rt.block_on(sqlite_peer(&dir.path().join("peer.db"), n, &counts))?;
        r.figure(
            "sqlite_transitions_per_sec",
            "peer: SQLite row per instance (WAL, sync FULL), acknowledged",
            total as f64 / secs,
            "/s",
        );
        r.figure(
            "sqlite_avg_batch",
            "  peer: average transaction (updates per commit)",
            total as f64 / batches.max(1) as f64,
            "events",
        );
    }
    Ok(r.finish())
}

/// The hand-rolled way: `UPDATE … WHERE key = ?` per event, one writer
/// committing whatever requests are pending as one transaction, each
/// request acknowledged after its commit. Sender `w` sends `counts[w]`
/// events with the same key sequence as in the engine run.
async fn sqlite_peer(path: &Path, n: u64, counts: &[u64]) -> Result<(f64, u64)> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection};

    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    sqlx::query(
        "CREATE TABLE instances (key TEXT PRIMARY KEY, state TEXT NOT NULL, n INTEGER NOT NULL) WITHOUT ROWID",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?)
         INSERT INTO instances (key, state, n) SELECT printf('customer-%07d', i), 'idle', 0 FROM seq",
    )
    .bind(n as i64)
    .execute(&mut conn)
    .await?;
    tokio::task::spawn_blocking(settle_disk).await?;

    type Request = (String, tokio::sync::oneshot::Sender<()>);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Request>(counts.len() * 2);
    let writer = tokio::spawn(async move {
        let mut batches = 0u64;
        let mut pending: Vec<Request> = Vec::new();
        while rx.recv_many(&mut pending, 16 * 1024).await > 0 {
            let mut txn = conn.begin().await?;
            for (key, _) in &pending {
                let done = sqlx::query("UPDATE instances SET state = ?, n = n + 1 WHERE key = ?")
                    .bind("idle")
                    .bind(key.as_str())
                    .execute(&mut *txn)
                    .await?;
                if done.rows_affected() != 1 {
                    bail!("no row for {key}");
                }
            }
            txn.commit().await?;
            batches += 1;
            for (_, ack) in pending.drain(..) {
                let _ = ack.send(());
            }
        }
        let sum: i64 = sqlx::query_scalar("SELECT SUM(n) FROM instances")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok::<(u64, i64), anyhow::Error>((batches, sum))
    });

    let total: u64 = counts.iter().sum();
    let progress = Progress::new("sqlite update", total);
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for (w, &count) in counts.iter().enumerate() {
        let (tx, done) = (tx.clone(), progress.counter());
        set.spawn(async move {
            let mut rng = Rng::new(w as u64);
            for _ in 0..count {
                let (ack, acked) = tokio::sync::oneshot::channel();
                tx.send((key(rng.below(n)), ack))
                    .await
                    .map_err(|_| anyhow!("the SQLite writer stopped"))?;
                acked
                    .await
                    .map_err(|_| anyhow!("the SQLite writer stopped"))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    drop(tx);
    while let Some(r) = set.join_next().await {
        r??;
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(progress);
    let (batches, sum) = writer.await??;
    if sum as u64 != total {
        bail!("SQLite counters sum to {sum}, expected {total}");
    }
    Ok((secs, batches))
}

fn recovery(opts: &Opts) -> Result<Report> {
    let n = opts.instances;
    let mut r = Report::new("recovery", opts);
    r.param("instances", n);
    r.param("log", format!("{n} starts + {} tick events", n / 2));
    r.param("tail_events", opts.tail_events);
    r.param("crash", "close(false): no shutdown snapshot");
    r.param("open", "fresh process, EngineOptions::new (fsync on)");
    let dir = tempfile::tempdir()?;
    let d = dir.path().to_string_lossy().into_owned();
    eprintln!("   building {n} durable instances");
    let b = run_child(&[
        "recovery-build".into(),
        d.clone(),
        n.to_string(),
        "512".into(),
    ])?;
    r.figure(
        "log_bytes_per_instance",
        "log bytes per instance",
        f(&b, "log_bytes")? / n as f64,
        "B",
    );
    let report_open = |r: &mut Report, prefix: &str, label: &str, o: &Value| -> Result<()> {
        r.figure(
            &format!("{prefix}_open_secs"),
            &format!("{label}: Engine::open returns"),
            f(o, "open_secs")?,
            "s",
        );
        r.figure(
            &format!("{prefix}_first_ack_secs"),
            &format!("{label}: first send acknowledged"),
            f(o, "first_ack_secs")?,
            "s",
        );
        r.figure(
            &format!("{prefix}_records"),
            &format!("{label}: records replayed"),
            f(o, "recovered_records")?,
            "",
        );
        r.figure(
            &format!("{prefix}_rss_mb"),
            &format!("{label}: process RSS after recovery"),
            f(o, "rss")? / 1e6,
            "MB",
        );
        r.figure(
            &format!("{prefix}_rss_settled_mb"),
            &format!("{label}: process RSS after recovery, heap trimmed"),
            f(o, "rss_settled")? / 1e6,
            "MB",
        );
        if n == 1_000_000 {
            r.goal(
                f(o, "first_ack_secs")? <= 3.0,
                &format!("{label}: accepting events ≤ 3 s after a crash with 1,000,000 instances"),
            );
        }
        if f(o, "instances")? as u64 != n {
            bail!(
                "{label}: {} instances after recovery, expected {n}",
                o["instances"]
            );
        }
        Ok(())
    };
    settle_disk();
    eprintln!("   recovering from the log alone");
    let o = run_child(&["recovery-open".into(), d.clone()])?;
    report_open(&mut r, "log_only", "log only", &o)?;
    eprintln!(
        "   snapshot, then {} more events, then crash",
        opts.tail_events
    );
    let s = run_child(&[
        "recovery-snapshot".into(),
        d.clone(),
        n.to_string(),
        opts.tail_events.to_string(),
        opts.concurrency.to_string(),
    ])?;
    r.figure(
        "snapshot_secs",
        "snapshot() of all instances (writer is blocked meanwhile)",
        f(&s, "snapshot_secs")?,
        "s",
    );
    r.figure(
        "snapshot_bytes_per_instance",
        "snapshot bytes per instance",
        f(&s, "snapshot_bytes")? / n as f64,
        "B",
    );
    settle_disk();
    eprintln!("   recovering from the snapshot and the tail");
    let o = run_child(&["recovery-open".into(), d])?;
    report_open(&mut r, "snapshot_tail", "snapshot + tail", &o)?;
    Ok(r.finish())
}

fn timers(opts: &Opts, rt: &Runtime) -> Result<Report> {
    let n = opts.instances;
    let mut r = Report::new("timers", opts);
    r.param("instances", n);
    r.param(
        "timer_definition",
        "6 states, `idle` has timeout {after: 1h}",
    );
    r.param("baseline", "the same definition without the timeout");
    let mut per = Vec::new();
    for timeout in ["none", "1h"] {
        eprintln!("   {n} durable instances waiting, timeout {timeout}, fresh process");
        let c = run_child(&[
            "waiting".into(),
            "durable".into(),
            timeout.into(),
            "null".into(),
            n.to_string(),
            "512".into(),
        ])?;
        if timeout != "none" && f(&c, "pending_timers")? as u64 != n {
            bail!("{} timers pending, expected {n}", c["pending_timers"]);
        }
        per.push((f(&c, "rss_after")? - f(&c, "rss_before")?) / n as f64);
    }
    r.figure(
        "bytes_per_instance_no_timer",
        "memory per waiting instance, no timer (durable)",
        per[0],
        "B",
    );
    r.figure(
        "bytes_per_instance_with_timer",
        "memory per waiting instance with a pending timeout",
        per[1],
        "B",
    );
    r.figure(
        "bytes_per_pending_timer",
        "memory per pending timer (difference)",
        per[1] - per[0],
        "B",
    );

    // Lateness under load.
    let t = opts.timer_instances;
    let after_ms = 3_000i64;
    let spread = Duration::from_secs(1);
    let load_instances = 10_000u64.min(n);
    r.param("lateness_instances", t);
    r.param("lateness_timeout", "3s");
    r.param("lateness_start_spread_s", 1);
    r.param("background_rate", opts.rate);
    r.param("background_instances", load_instances);
    r.param("samples", opts.samples as u64);
    r.param("fsync", true);
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(engine_options(dir.path(), true))?;
    rt.block_on(engine.apply_definition(&job_def("expiring", "durable", Some("3s"))))?;
    rt.block_on(engine.apply_definition(&job_def("load", "durable", None)))?;
    rt.block_on(start_many(
        &engine,
        "load",
        0..load_instances,
        json!({"n": 0}),
        256,
    ))?;
    settle_disk();
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt.spawn(open_loop(
        engine.clone(),
        "load".into(),
        load_instances,
        opts.rate,
        Duration::from_secs(600),
        Some(stop.clone()),
    ));
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("   starting {t} instances with a 3 s timeout over ~1 s");
    let started_secs = rt.block_on(async {
        let t0 = Instant::now();
        let mut set = JoinSet::new();
        let c = 1024u64;
        for w in 0..c {
            let engine = engine.clone();
            set.spawn(async move {
                let mut i = w;
                while i < t {
                    let due = t0 + spread.mul_f64(i as f64 / t as f64);
                    tokio::time::sleep_until(due.into()).await;
                    engine.start("expiring", &key(i), Value::Null, None).await?;
                    i += c;
                }
                Ok::<(), anyhow::Error>(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        Ok::<f64, anyhow::Error>(t0.elapsed().as_secs_f64())
    })?;
    r.figure(
        "lateness_start_secs",
        "seconds to start them (all acknowledged)",
        started_secs,
        "s",
    );
    let deadline = Instant::now() + Duration::from_secs(120) + Duration::from_millis(3_000);
    let progress = Progress::new("timeouts fired", t);
    let counter = progress.counter();
    loop {
        let stats = engine.stats("expiring")?;
        let fired = stats
            .states
            .iter()
            .find(|s| s.state == "failed")
            .map_or(0, |s| s.count);
        counter.store(fired, Ordering::Relaxed);
        if fired == t {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {fired} of {t} timeouts fired in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(progress);
    stop.store(true, Ordering::Relaxed);
    let load = rt.block_on(load)??;
    let samples = opts.samples.min(t as usize).max(1);
    let mut late = Vec::with_capacity(samples);
    rt.block_on(async {
        for j in 0..samples as u64 {
            let k = key(j * t / samples as u64);
            let h = engine.history("expiring", &k, 2).await?;
            if h.len() != 2 || h[0].kind != "timeout" || h[1].kind != "start" {
                bail!("unexpected history of {k}: {h:?}");
            }
            late.push((h[0].time - (h[1].time + after_ms)) as f64);
        }
        Ok::<(), anyhow::Error>(())
    })?;
    engine.close(false);
    late.sort_by(f64::total_cmp);
    r.figure(
        "lateness_p50_ms",
        "timeout lateness p50",
        percentile(&late, 0.5),
        "ms",
    );
    r.figure(
        "lateness_p99_ms",
        "timeout lateness p99",
        percentile(&late, 0.99),
        "ms",
    );
    r.figure(
        "lateness_max_ms",
        "timeout lateness max",
        percentile(&late, 1.0),
        "ms",
    );
    r.figure(
        "lateness_min_ms",
        "timeout lateness min",
        percentile(&late, 0.0),
        "ms",
    );
    r.figure(
        "background_rate",
        "background load achieved",
        load.rate(),
        "/s",
    );
    r.figure(
        "background_p99_ms",
        "background load latency p99 (send → ack)",
        percentile(&load.latency_ms, 0.99),
        "ms",
    );
    if load.errors > 0 {
        bail!(
            "{} background sends failed: {:?}",
            load.errors,
            load.first_error
        );
    }
    Ok(r.finish())
}

fn latency(opts: &Opts, rt: &Runtime) -> Result<Report> {
    let n = opts.instances;
    let mut r = Report::new("latency", opts);
    r.param("instances", n);
    r.param("rate", opts.rate);
    r.param("seconds", opts.seconds);
    r.param("fsync", true);
    r.param(
        "load",
        "open loop: a send every 1/rate s, each in its own task",
    );
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(engine_options(dir.path(), true))?;
    rt.block_on(engine.apply_definition(&job_def("job", "durable", None)))?;
    rt.block_on(start_many(&engine, "job", 0..n, json!({"n": 0}), 512))?;
    eprintln!(
        "   open loop at {} events/s for {} s",
        opts.rate, opts.seconds
    );
    let stats = engine.engine_stats()?;
    settle_disk();
    let o = rt.block_on(open_loop(
        engine.clone(),
        "job".into(),
        n,
        opts.rate,
        Duration::from_secs_f64(opts.seconds),
        None,
    ))?;
    engine.close(false);
    if o.errors > 0 {
        bail!("{} sends failed: {:?}", o.errors, o.first_error);
    }
    let frames = count_frames(&dir.path().join("log"), &stats.log_position)?;
    r.figure(
        "p50_ms",
        "latency p50 (send → ack)",
        percentile(&o.latency_ms, 0.5),
        "ms",
    );
    r.figure(
        "p99_ms",
        "latency p99 (send → ack)",
        percentile(&o.latency_ms, 0.99),
        "ms",
    );
    r.figure(
        "max_ms",
        "latency max (send → ack)",
        percentile(&o.latency_ms, 1.0),
        "ms",
    );
    r.figure(
        "sched_p99_ms",
        "latency p99 from the scheduled send time",
        percentile(&o.from_schedule_ms, 0.99),
        "ms",
    );
    r.figure(
        "sched_max_ms",
        "latency max from the scheduled send time",
        percentile(&o.from_schedule_ms, 1.0),
        "ms",
    );
    r.figure(
        "achieved_rate",
        "achieved rate (acknowledged)",
        o.rate(),
        "/s",
    );
    r.figure(
        "avg_batch",
        "average group commit (events per fsync)",
        o.scheduled as f64 / frames.max(1) as f64,
        "events",
    );
    Ok(r.finish())
}

/// `cluster`: the durable tick workload on the PostgreSQL cluster engine
/// (one node owning every partition; an event is acknowledged once its
/// inbox row is committed and the owner has applied it), against the peer
/// done by hand: `UPDATE … SET n = n + 1` on a PostgreSQL table, one
/// autocommitted statement per tick, the same number of connections.
async fn cluster(opts: &Opts, admin_url: &str) -> Result<Report> {
    use keel_lifecycle::cluster::{ClusterEngine, ClusterOptions, MIGRATIONS};
    use keel_store::{Db, DbOptions};
    let n = opts.instances.min(5_000);
    let c = opts.concurrency.min(64);
    let mut r = Report::new("cluster", opts);
    r.param("instances", n);
    r.param("concurrency", c as u64);
    r.param("engine_seconds", opts.seconds);
    r.param("event", "tick: idle → idle, n = context.n + 1");
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(admin_url)
        .await
        .context("connect to KEEL_BENCH_POSTGRES_URL")?;
    let dbname = format!("keel_bench_{}", keel_core::time::now_millis());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {dbname}")))
        .execute(&admin)
        .await?;
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{dbname}"),
        None => bail!("KEEL_BENCH_POSTGRES_URL has no database part"),
    };
    let db = Db::open(
        &url,
        MIGRATIONS,
        DbOptions {
            max_connections: 48,
            ..Default::default()
        },
    )
    .await?;
    let mut o = ClusterOptions::new("bench-node");
    o.poll = Duration::from_millis(2);
    let engine = ClusterEngine::open(db, o).await?;
    let t0 = Instant::now();
    while engine.owned_partitions().await.len() < 16 {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the node did not take the partitions");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let src = job_def("job", "durable", None);
    engine.apply_definition(&src).await?;
    let progress = Progress::new("cluster start", n);
    let done = progress.counter();
    let mut set = JoinSet::new();
    for w in 0..c as u64 {
        let (engine, done) = (engine.clone(), done.clone());
        set.spawn(async move {
            let mut i = w;
            while i < n {
                engine.start("job", &key(i), json!({"n": 0}), None).await?;
                done.fetch_add(1, Ordering::Relaxed);
                i += c as u64;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(x) = set.join_next().await {
        x??;
    }
    drop(progress);
    let deadline = Instant::now() + Duration::from_secs_f64(opts.seconds);
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..c {
        let engine = engine.clone();
        set.spawn(async move {
            let mut rng = Rng::new(w as u64);
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let report = engine
                    .send(SendRequest {
                        event: "tick".into(),
                        target: Target::Key {
                            lifecycle: Some("job".into()),
                            key: key(rng.below(n)),
                        },
                        data: Value::Null,
                        idempotency_key: None,
                    })
                    .await?;
                if report.applied != 1 {
                    bail!("a tick was not applied: {report:?}");
                }
                sent += 1;
            }
            Ok::<u64, anyhow::Error>(sent)
        });
    }
    let mut keel_events = 0;
    while let Some(x) = set.join_next().await {
        keel_events += x??;
    }
    let keel_rate = keel_events as f64 / t0.elapsed().as_secs_f64();
    engine.shutdown().await;
    r.figure(
        "cluster_transitions_per_sec",
        "Keel cluster on PostgreSQL, acknowledged ticks",
        keel_rate,
        "/s",
    );

    // The peer: a row per instance, one UPDATE per tick.
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(c as u32)
        .connect(&url)
        .await?;
    sqlx::query("CREATE TABLE peer_instances (key TEXT PRIMARY KEY, state TEXT NOT NULL, n BIGINT NOT NULL)")
        .execute(&pool)
        .await?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("('{}', 'idle', 0)", key(*i)))
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO peer_instances VALUES {}",
            values.join(", ")
        )))
        .execute(&pool)
        .await?;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(opts.seconds);
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..c {
        let pool = pool.clone();
        set.spawn(async move {
            let mut rng = Rng::new(w as u64);
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let done = sqlx::query(
                    "UPDATE peer_instances SET state = 'idle', n = n + 1 WHERE key = $1",
                )
                .bind(key(rng.below(n)))
                .execute(&pool)
                .await?;
                if done.rows_affected() != 1 {
                    bail!("peer update missed");
                }
                sent += 1;
            }
            Ok::<u64, anyhow::Error>(sent)
        });
    }
    let mut peer_events = 0;
    while let Some(x) = set.join_next().await {
        peer_events += x??;
    }
    let peer_rate = peer_events as f64 / t0.elapsed().as_secs_f64();
    pool.close().await;
    r.figure(
        "peer_postgres_updates_per_sec",
        "peer: UPDATE per tick on PostgreSQL, autocommit",
        peer_rate,
        "/s",
    );
    r.figure(
        "cluster_vs_peer",
        "Keel cluster ÷ peer",
        keel_rate / peer_rate,
        "×",
    );
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
    Ok(r.finish())
}

fn summary(reports: &[Report], json: bool) {
    let mut s = String::from("\n== summary\n");
    for r in reports {
        for fig in &r.figures {
            let _ = writeln!(
                s,
                "{:<12} {:<58} {:>14} {}",
                r.workload,
                fig.label.trim(),
                fmt_num(fig.value),
                fig.unit
            );
        }
    }
    if json {
        eprint!("{s}");
    } else {
        print!("{s}");
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__child") {
        return child_main(&args[1..]);
    }
    let opts = Opts::parse(&args)?;
    let rt = runtime()?;
    let mut reports = Vec::new();
    let all = opts.workload == "all";
    let run = |name: &str| {
        let selected = all || opts.workload == name;
        if selected {
            settle_disk();
        }
        selected
    };
    if !all
        && ![
            "memory",
            "transitions",
            "recovery",
            "timers",
            "latency",
            "cluster",
        ]
        .contains(&opts.workload.as_str())
    {
        bail!("unknown workload `{}`\n{USAGE}", opts.workload);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "lifecycle_bench: {cores} CPU cores, page size {} B",
        page_size()
    );
    if run("memory") {
        reports.push(memory(&opts)?);
    }
    if run("transitions") {
        reports.push(transitions(&opts, &rt)?);
    }
    if run("recovery") {
        reports.push(recovery(&opts)?);
    }
    if run("timers") {
        reports.push(timers(&opts, &rt)?);
    }
    if run("latency") {
        reports.push(latency(&opts, &rt)?);
    }
    let pg = std::env::var("KEEL_BENCH_POSTGRES_URL").ok();
    if opts.workload == "cluster" || (all && pg.is_some()) {
        let url =
            pg.ok_or_else(|| anyhow!("the cluster workload needs KEEL_BENCH_POSTGRES_URL"))?;
        settle_disk();
        reports.push(rt.block_on(cluster(&opts, &url))?);
    }
    if all {
        summary(&reports, opts.json);
    }
    Ok(())
}
