//! Criterion benchmarks of the lifecycle engine's hot functions: one
//! transition of the pure core, a guard, the next fire time of a cron
//! line, and parsing a definition. Whole-engine workloads (memory per
//! instance, durable throughput, recovery, timers) are in `lifecycle_bench`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_lifecycle::cron::Cron;
use keel_lifecycle::expr::{self, Scope};
use keel_lifecycle::machine::{Input, Machine};
use keel_lifecycle::parse::parse_definition;
use serde_json::{Value, json};

const CONTRACT: &str = include_str!("../../../examples/lifecycles/churn-model.yaml");

const PING_PONG: &str =
    "lifecycle: pp\ninitial: ping\nstates:\n  ping: {on: {hit: pong}}\n  pong: {on: {hit: ping}}\n";

fn core(c: &mut Criterion) {
    let known = ["command", "http", "emit"];
    c.bench_function("parse/contract_definition", |b| {
        b.iter(|| parse_definition(black_box(CONTRACT), &known))
    });
    let m = Machine::compile(
        parse_definition(PING_PONG, &known).expect("parses"),
        1,
        Arc::from(PING_PONG),
    )
    .expect("compiles");
    let (mut inst, _) = m.start(&Value::Null, 0);
    c.bench_function("machine/apply_transition", |b| {
        b.iter(|| m.apply(black_box(&mut inst), Input::Event("hit"), &Value::Null, 1))
    });
    let m = Machine::compile(
        parse_definition(CONTRACT, &known).expect("parses"),
        1,
        Arc::from(CONTRACT),
    )
    .expect("compiles");
    let data = json!({"auc": 0.91});
    c.bench_function("machine/apply_guarded_transition_with_timer", |b| {
        b.iter(|| {
            let (mut i, _) = m.start(&Value::Null, 0);
            let _ = m.apply(&mut i, Input::Event("data_arrived"), &Value::Null, 1);
            let _ = m.apply(
                &mut i,
                Input::ActionFinished { token: 2, ok: true },
                &Value::Null,
                2,
            );
            m.apply(
                black_box(&mut i),
                Input::Event("suite_passed"),
                black_box(&data),
                3,
            )
        })
    });
    let guard = expr::parse(
        "event.auc > 0.8 && context.model == 'churn'",
        &["event", "context"],
    )
    .expect("parses");
    let ctx = json!({"model": "churn"});
    c.bench_function("expr/eval_guard", |b| {
        b.iter(|| {
            guard.eval_bool(&Scope {
                event: black_box(&data),
                context: &ctx,
                item: None,
                index: None,
            })
        })
    });
    let cron = Cron::parse("0 3 * * 1").expect("parses");
    c.bench_function("cron/next_after", |b| {
        b.iter(|| cron.next_after(black_box(1_764_360_000_000)))
    });
}

criterion_group!(benches, core);
criterion_main!(benches);
