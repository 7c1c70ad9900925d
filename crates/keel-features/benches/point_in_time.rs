//! Benchmark program of the point-in-time join (`harness = false`).
//!
//! ```text
//! cargo bench -p keel-features --bench point_in_time
//! ```
//!
//! - `point_in_time/100k_entities_2_views_500k_events` (criterion): 100,000
//!   entity rows (10,000 users, event times uniform over 30 days,
//!   nanoseconds UTC, as pandas writes them) joined with two views of
//!   500,000 events each (microseconds UTC, as Parquet stores them, in random
//!   order, in batches of 65,536 rows): `transactions` (ttl 7 days, created
//!   timestamp, two numeric features) and `profile` (no ttl, a numeric and a
//!   string feature). The inputs are built once; each iteration joins them.
//! - `point_in_time/100k_entities_stream_view_500k_events_3_windows`
//!   (criterion): the same entity table, and one stream view of 500,000 raw
//!   payments (microseconds UTC, random order, batches of 65,536 rows)
//!   aggregated three ways: the sum of `amount` over 7 days sliding by 1
//!   day, the count over 1 day sliding by 1 hour, the max over 1 hour
//!   (tumbling).
//! - `10m_events` (one timed run, not criterion): the same entity table
//!   joined with one view of 10,000,000 events, generated batch by batch
//!   while the join consumes them, so the events are never all in memory.
//!   Prints the time of generating the batches alone, the time of
//!   generating and joining them, and the process's peak resident memory
//!   (`VmHWM` of `/proc/self/status`, reset through `/proc/self/clear_refs`
//!   just before the run) next to its resident memory before the run.
//! - `10m_events_stream_view` (one timed run): the same, for the stream
//!   view's three aggregations over 10,000,000 generated payments. It runs
//!   second and may reuse the heap the first run freed, so its peak is the
//!   figure to read, not peak − before (run alone, the process peaked at
//!   24.5 MiB, 16.5 MiB above its resident memory before the run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampNanosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use criterion::Criterion;
use keel_features::definition::{AggFunction, Aggregation, Interval};
use keel_features::point_in_time::{JoinOptions, PointInTimeJoin, StreamViewSpec, ViewSpec};

const USERS: u64 = 10_000;
const ENTITY_ROWS: usize = 100_000;
const DAYS: u64 = 30;
const BATCH_ROWS: usize = 65_536;
const SECOND_US: i64 = 1_000_000;
/// 2026-01-01T00:00:00Z in microseconds.
const START_US: i64 = 1_767_225_600 * SECOND_US;
const SPAN_US: u64 = DAYS * 86_400 * 1_000_000;

/// SplitMix64: a small, good, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn time_us(&mut self) -> i64 {
        START_US + self.below(SPAN_US) as i64
    }
}

fn utc(unit: TimeUnit) -> DataType {
    DataType::Timestamp(unit, Some("UTC".into()))
}

fn entity(rng: &mut Rng) -> RecordBatch {
    let users: Vec<i64> = (0..ENTITY_ROWS).map(|_| rng.below(USERS) as i64).collect();
    let times: Vec<i64> = (0..ENTITY_ROWS).map(|_| rng.time_us() * 1_000).collect();
    let labels: Vec<f64> = (0..ENTITY_ROWS).map(|_| rng.below(2) as f64).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", utc(TimeUnit::Nanosecond), false),
            Field::new("label", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Int64Array::from(users)),
            Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
            Arc::new(Float64Array::from(labels)),
        ],
    )
    .expect("entity batch")
}

fn transactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("event_ts", utc(TimeUnit::Microsecond), false),
        Field::new("created_ts", utc(TimeUnit::Microsecond), false),
        Field::new("amount_sum_7d", DataType::Float64, true),
        Field::new("txn_count_7d", DataType::Int64, true),
    ]))
}

fn transactions_batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    let users: Vec<i64> = (0..rows).map(|_| rng.below(USERS) as i64).collect();
    let times: Vec<i64> = (0..rows).map(|_| rng.time_us()).collect();
    let created: Vec<i64> = times
        .iter()
        .map(|t| t + rng.below(3_600) as i64 * SECOND_US)
        .collect();
    let amounts: Vec<f64> = (0..rows)
        .map(|_| rng.below(100_000) as f64 / 100.0)
        .collect();
    let counts: Vec<i64> = (0..rows).map(|_| rng.below(50) as i64).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(users)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC")),
        Arc::new(Float64Array::from(amounts)),
        Arc::new(Int64Array::from(counts)),
    ];
    RecordBatch::try_new(transactions_schema(), columns).expect("transactions batch")
}

fn profile_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("event_ts", utc(TimeUnit::Microsecond), false),
        Field::new("age_days", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
    ]))
}

fn profile_batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    const COUNTRIES: [&str; 6] = ["DE", "FR", "US", "BR", "IN", "JP"];
    let users: Vec<i64> = (0..rows).map(|_| rng.below(USERS) as i64).collect();
    let times: Vec<i64> = (0..rows).map(|_| rng.time_us()).collect();
    let ages: Vec<i64> = (0..rows).map(|_| rng.below(3_650) as i64).collect();
    let countries: Vec<&str> = (0..rows)
        .map(|_| COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize])
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(users)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        Arc::new(Int64Array::from(ages)),
        Arc::new(StringArray::from(countries)),
    ];
    RecordBatch::try_new(profile_schema(), columns).expect("profile batch")
}

fn batches(
    rows: usize,
    rng: &mut Rng,
    make: fn(&mut Rng, usize) -> RecordBatch,
) -> Vec<RecordBatch> {
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| make(rng, BATCH_ROWS.min(rows - start)))
        .collect()
}

fn transactions_view() -> ViewSpec {
    ViewSpec::new("transactions", ["user_id"], "event_ts")
        .created_timestamp("created_ts")
        .features(["amount_sum_7d", "txn_count_7d"])
        .ttl(Duration::from_secs(7 * 86_400))
}

fn profile_view() -> ViewSpec {
    ViewSpec::new("profile", ["user_id"], "event_ts")
}

fn two_views(c: &mut Criterion) {
    let mut rng = Rng(42);
    let entity = entity(&mut rng);
    let transactions = batches(500_000, &mut rng, transactions_batch);
    let profile = batches(500_000, &mut rng, profile_batch);
    let (tv, pv) = (transactions_view(), profile_view());
    let (ts, ps) = (transactions_schema(), profile_schema());

    let join = || {
        let mut join =
            PointInTimeJoin::new(entity.clone(), JoinOptions::default()).expect("entity");
        join.add_view(&tv, &ts, transactions.iter().cloned())
            .expect("transactions");
        join.add_view(&pv, &ps, profile.iter().cloned())
            .expect("profile");
        join.finish().expect("finish")
    };
    let out = join();
    let matched = |name: &str| {
        let column = out.column_by_name(name).expect("feature column");
        column.len() - column.null_count()
    };
    eprintln!(
        "100k_entities_2_views_500k_events: {} rows x {} columns; matched: transactions {}, profile {}",
        out.num_rows(),
        out.num_columns(),
        matched("transactions__amount_sum_7d"),
        matched("profile__age_days"),
    );
    c.bench_function("point_in_time/100k_entities_2_views_500k_events", |b| {
        b.iter(|| black_box(join()))
    });
}

fn payments_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("event_ts", utc(TimeUnit::Microsecond), false),
        Field::new("amount", DataType::Float64, true),
    ]))
}

fn payments_batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    let users: Vec<i64> = (0..rows).map(|_| rng.below(USERS) as i64).collect();
    let times: Vec<i64> = (0..rows).map(|_| rng.time_us()).collect();
    let amounts: Vec<f64> = (0..rows)
        .map(|_| rng.below(100_000) as f64 / 100.0)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(users)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        Arc::new(Float64Array::from(amounts)),
    ];
    RecordBatch::try_new(payments_schema(), columns).expect("payments batch")
}

fn payments_view() -> StreamViewSpec {
    const HOUR: u64 = 3_600;
    let aggregation = |function, window, slide: Option<u64>, name: &str| Aggregation {
        column: "amount".to_owned(),
        function,
        window: Interval::from_seconds(window),
        slide: slide.map(Interval::from_seconds),
        name: name.to_owned(),
    };
    StreamViewSpec::new("payments", ["user_id"], "event_ts").aggregations([
        aggregation(
            AggFunction::Sum,
            7 * 24 * HOUR,
            Some(24 * HOUR),
            "amount_sum_7d",
        ),
        aggregation(AggFunction::Count, 24 * HOUR, Some(HOUR), "amount_count_1d"),
        aggregation(AggFunction::Max, HOUR, None, "amount_max_1h"),
    ])
}

fn stream_view(c: &mut Criterion) {
    let mut rng = Rng(42);
    let entity = entity(&mut rng);
    let payments = batches(500_000, &mut rng, payments_batch);
    let (view, schema) = (payments_view(), payments_schema());

    let join = || {
        let mut join =
            PointInTimeJoin::new(entity.clone(), JoinOptions::default()).expect("entity");
        join.add_stream_view(&view, &schema, payments.iter().cloned())
            .expect("payments");
        join.finish().expect("finish")
    };
    let out = join();
    let non_null = |name: &str| {
        let column = out.column_by_name(name).expect("feature column");
        column.len() - column.null_count()
    };
    eprintln!(
        "100k_entities_stream_view_500k_events_3_windows: {} rows x {} columns; non-null: sum_7d {}, max_1h {}",
        out.num_rows(),
        out.num_columns(),
        non_null("payments__amount_sum_7d"),
        non_null("payments__amount_max_1h"),
    );
    c.bench_function(
        "point_in_time/100k_entities_stream_view_500k_events_3_windows",
        |b| b.iter(|| black_box(join())),
    );
}

/// (resident now, peak since the last reset), in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reset_peak() {
    // Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn ten_million_events() {
    const EVENTS: usize = 10_000_000;
    let mut rng = Rng(7);
    let entity = entity(&mut rng);
    let view = transactions_view();
    let schema = transactions_schema();
    let stream = |seed: u64| {
        let mut rng = Rng(seed);
        (0..EVENTS)
            .step_by(BATCH_ROWS)
            .map(move |start| transactions_batch(&mut rng, BATCH_ROWS.min(EVENTS - start)))
    };

    let started = Instant::now();
    let rows: usize = stream(11).map(|b| black_box(b).num_rows()).sum();
    let generate = started.elapsed();

    let (before, _) = memory_kib();
    reset_peak();
    let started = Instant::now();
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_view(&view, &schema, stream(11)).expect("view");
    let out = join.finish().expect("finish");
    let total = started.elapsed();
    let (_, peak) = memory_kib();

    let column = out
        .column_by_name("transactions__amount_sum_7d")
        .expect("column");
    println!(
        "10m_events: {rows} events in batches of {BATCH_ROWS}, {} entity rows ({} matched)",
        out.num_rows(),
        column.len() - column.null_count()
    );
    println!(
        "10m_events: generating the batches alone {:.2} s; generating + joining {:.2} s; join ≈ {:.2} s ({:.1} M events/s)",
        generate.as_secs_f64(),
        total.as_secs_f64(),
        (total.saturating_sub(generate)).as_secs_f64(),
        rows as f64 / total.saturating_sub(generate).as_secs_f64().max(1e-9) / 1e6
    );
    println!(
        "10m_events: resident before {:.1} MiB, peak during the join {:.1} MiB (VmHWM; peak − before = {:.1} MiB)",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );
}

fn ten_million_stream_events() {
    const EVENTS: usize = 10_000_000;
    let mut rng = Rng(7);
    let entity = entity(&mut rng);
    let (view, schema) = (payments_view(), payments_schema());
    let stream = |seed: u64| {
        let mut rng = Rng(seed);
        (0..EVENTS)
            .step_by(BATCH_ROWS)
            .map(move |start| payments_batch(&mut rng, BATCH_ROWS.min(EVENTS - start)))
    };

    let started = Instant::now();
    let rows: usize = stream(13).map(|b| black_box(b).num_rows()).sum();
    let generate = started.elapsed();

    let (before, _) = memory_kib();
    reset_peak();
    let started = Instant::now();
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_stream_view(&view, &schema, stream(13))
        .expect("view");
    let out = join.finish().expect("finish");
    let total = started.elapsed();
    let (_, peak) = memory_kib();

    let column = out
        .column_by_name("payments__amount_sum_7d")
        .expect("column");
    println!(
        "10m_events_stream_view: {rows} events, {} entity rows ({} with a 7-day sum)",
        out.num_rows(),
        column.len() - column.null_count()
    );
    println!(
        "10m_events_stream_view: generating the batches alone {:.2} s; generating + aggregating {:.2} s; aggregating ≈ {:.2} s",
        generate.as_secs_f64(),
        total.as_secs_f64(),
        (total.saturating_sub(generate)).as_secs_f64(),
    );
    println!(
        "10m_events_stream_view: resident before {:.1} MiB, peak during the run {:.1} MiB (VmHWM; peak − before = {:.1} MiB)",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    // The 10M run first, so the peak it reports is not inflated by the
    // allocator's memory from the criterion runs.
    ten_million_events();
    ten_million_stream_events();
    two_views(&mut criterion);
    stream_view(&mut criterion);
    criterion.final_summary();
}
