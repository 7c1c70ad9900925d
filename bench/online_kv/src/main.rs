//! Online-store candidates under the online feature store's access pattern:
//! a bulk materialization, batched point reads of 100 entity keys per
//! request, single-key reads, and pushes of 100 records per commit.
//!
//! One store per process (`online_kv redb`, `online_kv fjall`) so that the
//! peak RSS read from `/proc/self/status` belongs to that store alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const VIEW_PREFIX: &[u8] = b"user_view\x00";
const VALUE_LEN: usize = 128;

/// The operations the online store needs, nothing more.
trait Store: Sync {
    /// Writes `records` in one transaction/batch. `durable` asks for the
    /// store's fsync-on-commit mode; otherwise its relaxed mode.
    fn write(&self, records: &[(Vec<u8>, Vec<u8>)], durable: bool);
    /// Reads `keys` from one consistent view; returns the bytes found.
    fn read(&self, keys: &[Vec<u8>]) -> usize;
    /// Makes everything written so far durable (end of a load).
    fn sync(&self);
    fn describe(&self) -> String;
    /// Waits for background work started by the load (compactions) to end;
    /// returns what it waited for.
    fn settle(&self) -> String {
        "nothing to wait for".into()
    }
}

#[cfg(feature = "redb")]
mod redb_store {
    use redb::{Database, Durability, ReadableDatabase, TableDefinition};

    const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("online");

    pub struct RedbStore {
        db: Database,
        cache_bytes: usize,
    }

    impl RedbStore {
        pub fn create(dir: &std::path::Path, cache_bytes: Option<usize>) -> Self {
            let mut builder = Database::builder();
            // redb's own default, stated so the report can print it.
            let cache_bytes = cache_bytes.unwrap_or(1024 * 1024 * 1024);
            builder.set_cache_size(cache_bytes);
            let db = builder.create(dir.join("online.redb")).expect("create redb");
            let txn = db.begin_write().expect("begin");
            txn.open_table(TABLE).expect("open table");
            txn.commit().expect("commit");
            RedbStore { db, cache_bytes }
        }
    }

    impl super::Store for RedbStore {
        fn write(&self, records: &[(Vec<u8>, Vec<u8>)], durable: bool) {
            let mut txn = self.db.begin_write().expect("begin write");
            let durability = if durable { Durability::Immediate } else { Durability::None };
            txn.set_durability(durability).expect("durability");
            {
                let mut table = txn.open_table(TABLE).expect("open table");
                for (k, v) in records {
                    table.insert(k.as_slice(), v.as_slice()).expect("insert");
                }
            }
            txn.commit().expect("commit");
        }

        fn read(&self, keys: &[Vec<u8>]) -> usize {
            let txn = self.db.begin_read().expect("begin read");
            let table = txn.open_table(TABLE).expect("open table");
            keys.iter()
                .map(|k| table.get(k.as_slice()).expect("get").map_or(0, |v| v.value().len()))
                .sum()
        }

        fn sync(&self) {
            // An empty Immediate commit makes earlier Durability::None commits durable.
            let txn = self.db.begin_write().expect("begin write");
            txn.commit().expect("commit");
        }

        fn describe(&self) -> String {
            format!(
                "redb 4.6.0, cache {} MiB; durable = Durability::Immediate (fsync per commit), \
                 relaxed = Durability::None (no fsync; lost on crash until the next Immediate commit)",
                self.cache_bytes >> 20
            )
        }
    }
}

#[cfg(feature = "fjall")]
mod fjall_store {
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

    pub struct FjallStore {
        db: Database,
        online: Keyspace,
        cache_bytes: u64,
    }

    impl FjallStore {
        pub fn create(dir: &std::path::Path, cache_bytes: Option<usize>) -> Self {
            let mut builder = Database::builder(dir.join("online.fjall"));
            if let Some(bytes) = cache_bytes {
                builder = builder.cache_size(bytes as u64);
            }
            let db = builder.open().expect("open fjall");
            let online = db.keyspace("online", KeyspaceCreateOptions::default).expect("keyspace");
            let cache_bytes = db.cache_capacity();
            FjallStore { db, online, cache_bytes }
        }
    }

    impl super::Store for FjallStore {
        fn write(&self, records: &[(Vec<u8>, Vec<u8>)], durable: bool) {
            let mut batch = self.db.batch();
            if durable {
                batch = batch.durability(Some(PersistMode::SyncAll));
            }
            for (k, v) in records {
                batch.insert(&self.online, k.as_slice(), v.as_slice());
            }
            batch.commit().expect("commit");
        }

        fn read(&self, keys: &[Vec<u8>]) -> usize {
            let snapshot = self.db.snapshot();
            keys.iter()
                .map(|k| snapshot.get(&self.online, k).expect("get").map_or(0, |v| v.len()))
                .sum()
        }

        fn sync(&self) {
            self.db.persist(PersistMode::SyncAll).expect("persist");
        }

        fn settle(&self) -> String {
            let before = (self.online.l0_table_count(), self.online.table_count());
            let t0 = std::time::Instant::now();
            while self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            format!(
                "{:.2} s for flushes and compactions; tables (L0/all) {}/{} -> {}/{}",
                t0.elapsed().as_secs_f64(),
                before.0,
                before.1,
                self.online.l0_table_count(),
                self.online.table_count()
            )
        }

        fn describe(&self) -> String {
            format!(
                "fjall 3.1.13 (lz4 off), cache {} MiB; durable = batch durability SyncAll (fsync per commit), \
                 relaxed = the default PersistMode::Buffer (write(2) to the OS per commit, no fsync; \
                 survives a process crash, not an OS crash or power loss)",
                self.cache_bytes >> 20
            )
        }
    }
}

/// SplitMix64: deterministic, dependency-free, good enough to pick keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(VALUE_LEN);
        while v.len() < VALUE_LEN {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(VALUE_LEN);
        v
    }
}

fn key(entity: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(VIEW_PREFIX.len() + 8);
    k.extend_from_slice(VIEW_PREFIX);
    k.extend_from_slice(&entity.to_be_bytes());
    k
}

struct Latencies {
    requests: usize,
    elapsed: Duration,
    micros: Vec<f64>,
}

impl Latencies {
    fn report(mut self, label: &str) {
        self.micros.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| self.micros[((self.micros.len() as f64 * p) as usize).min(self.micros.len() - 1)];
        println!(
            "{label}: {:.0} req/s, p50 {:.1} us, p99 {:.1} us ({} requests in {:.2} s)",
            self.requests as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            self.requests,
            self.elapsed.as_secs_f64()
        );
    }
}

/// Runs `request` on `threads` threads for `secs` seconds each and collects
/// one latency per request.
fn timed(threads: usize, secs: f64, seed: u64, request: impl Fn(&mut Rng) + Sync) -> Latencies {
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let per_thread: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let request = &request;
                s.spawn(move || {
                    let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                    let mut micros = Vec::with_capacity(1 << 20);
                    let begin = Instant::now();
                    while begin.elapsed() < budget {
                        let t0 = Instant::now();
                        request(&mut rng);
                        micros.push(t0.elapsed().as_secs_f64() * 1e6);
                    }
                    micros
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();
    let micros: Vec<f64> = per_thread.into_iter().flatten().collect();
    Latencies { requests: micros.len(), elapsed, micros }
}

fn dir_size(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    for entry in std::fs::read_dir(path).expect("read dir") {
        let entry = entry.expect("dir entry");
        let meta = entry.metadata().expect("metadata");
        if meta.is_dir() {
            let (a, b) = dir_size(&entry.path());
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    (apparent, allocated)
}

fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .map(|l| l[name.len()..].trim().to_string())
        .unwrap_or_else(|| "n/a".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

struct Args {
    store: String,
    dir: PathBuf,
    entities: u64,
    secs: f64,
    cache_mb: Option<usize>,
    settle: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let store = it.next().ok_or("usage: online_kv <redb|fjall> [--dir D] [--entities N] [--secs S] [--cache-mb M] [--settle]")?;
    let mut args = Args {
        store,
        dir: std::env::temp_dir().join("online_kv"),
        entities: 1_000_000,
        secs: 5.0,
        cache_mb: None,
        settle: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--settle" {
            args.settle = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(&value),
            "--entities" => args.entities = value.parse().map_err(|e| bad(&e))?,
            "--secs" => args.secs = value.parse().map_err(|e| bad(&e))?,
            "--cache-mb" => args.cache_mb = Some(value.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

fn open(args: &Args, dir: &Path) -> Result<Box<dyn Store>, String> {
    let cache = args.cache_mb.map(|m| m << 20);
    match args.store.as_str() {
        #[cfg(feature = "redb")]
        "redb" => Ok(Box::new(redb_store::RedbStore::create(dir, cache))),
        #[cfg(feature = "fjall")]
        "fjall" => Ok(Box::new(fjall_store::FjallStore::create(dir, cache))),
        other => Err(format!("store {other:?} is not compiled in (features: redb, fjall)")),
    }
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let dir = args.dir.join(&args.store);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create dir");
    let store = open(&args, &dir).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let n = args.entities;
    println!("store: {}", store.describe());
    println!("loadavg at start: {}", loadavg());

    // 1. Materialization: every entity once, in a shuffled order (entity ids
    // arrive hashed, not sorted), 10,000 records per transaction, relaxed
    // commits and one durable sync at the end.
    let mut rng = Rng(42);
    let mut order: Vec<u64> = (0..n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let t0 = Instant::now();
    for chunk in order.chunks(10_000) {
        let records: Vec<_> = chunk.iter().map(|&e| (key(e), rng.value())).collect();
        store.write(&records, false);
    }
    store.sync();
    let load = t0.elapsed();
    drop(order);
    println!(
        "load: {} records in {:.2} s = {:.0} records/s (batches of 10,000, relaxed commits + one sync)",
        n,
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64()
    );
    let (apparent, allocated) = dir_size(&dir);
    println!(
        "disk after load: {:.1} MiB apparent, {:.1} MiB allocated (raw key+value bytes {:.1} MiB)",
        apparent as f64 / 1048576.0,
        allocated as f64 / 1048576.0,
        (n as usize * (VIEW_PREFIX.len() + 8 + VALUE_LEN)) as f64 / 1048576.0
    );

    if args.settle {
        println!("settle: {}", store.settle());
    }
    println!("peak RSS after load (VmHWM): {}", status_field("VmHWM:"));

    let store = &*store;
    let expect_batch = 100 * VALUE_LEN;
    for threads in [1, 2] {
        timed(threads, args.secs, 7, |rng| {
            let keys: Vec<_> = (0..100).map(|_| key(rng.below(n))).collect();
            assert_eq!(store.read(&keys), expect_batch, "every key was loaded");
        })
        .report(&format!("batched read 100 keys, {threads} thread(s)"));
    }
    for threads in [1, 2] {
        timed(threads, args.secs, 11, |rng| {
            let keys = [key(rng.below(n))];
            assert_eq!(store.read(&keys), VALUE_LEN, "every key was loaded");
        })
        .report(&format!("single-key read, {threads} thread(s)"));
    }
    for durable in [true, false] {
        timed(1, args.secs, 13, |rng| {
            let records: Vec<_> = (0..100).map(|_| (key(rng.below(n)), rng.value())).collect();
            store.write(&records, durable);
        })
        .report(&format!(
            "push 100 records per commit, {}",
            if durable { "durable (fsync)" } else { "relaxed (no fsync)" }
        ));
    }
    store.sync();
    let (apparent, allocated) = dir_size(&dir);
    println!(
        "disk at end: {:.1} MiB apparent, {:.1} MiB allocated",
        apparent as f64 / 1048576.0,
        allocated as f64 / 1048576.0
    );
    println!("peak RSS (VmHWM): {}", status_field("VmHWM:"));
    println!("loadavg at end: {}", loadavg());
}
