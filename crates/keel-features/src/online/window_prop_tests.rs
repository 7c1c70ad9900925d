//! The online windows against the offline window kernel: random events
//! pushed one at a time in random order into [`WindowState`]s, then read
//! at instants after the last event, must equal the training-set values
//! [`PointInTimeJoin::add_stream_view`] computes from the same events in
//! the same order, for every function, window and slide.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use keel_online::codec::Value;
use proptest::prelude::*;

use super::convert::cell;
use super::window::{WindowSpec, WindowState};
use crate::definition::{AggFunction, Aggregation, Interval};
use crate::point_in_time::{JoinOptions, PointInTimeJoin, StreamViewSpec};

#[derive(Debug, Clone)]
struct Event {
    key: i64,
    ts: i64,
    int: Option<i64>,
    float: Option<f64>,
    label: Option<String>,
}

fn event() -> impl Strategy<Value = Event> {
    (
        0i64..3,
        -40i64..160,
        proptest::option::weighted(0.9, -50i64..50),
        proptest::option::weighted(
            0.9,
            prop_oneof![
                12 => (-20i64..20).prop_map(|v| v as f64),
                1 => Just(-0.0),
                1 => Just(f64::NAN),
                1 => Just(f64::INFINITY),
            ],
        ),
        proptest::option::weighted(0.9, "[a-c]{1,2}"),
    )
        .prop_map(|(key, ts, int, float, label)| Event {
            key,
            ts,
            int,
            float,
            label,
        })
}

#[derive(Debug, Clone, Copy)]
enum Col {
    Int,
    Float,
    Label,
}

fn aggregation() -> impl Strategy<Value = (Col, Aggregation)> {
    let functions = prop_oneof![
        Just(AggFunction::Count),
        Just(AggFunction::Sum),
        Just(AggFunction::Mean),
        Just(AggFunction::Min),
        Just(AggFunction::Max),
        Just(AggFunction::Last),
    ];
    (
        functions,
        prop_oneof![Just(Col::Int), Just(Col::Float), Just(Col::Label)],
        prop_oneof![Just(5u64), Just(10), Just(12), Just(30), Just(60)],
        proptest::option::of(prop_oneof![Just(1u64), Just(3), Just(5), Just(10)]),
    )
        .prop_map(|(function, col, window, slide)| {
            // Strings only count and last; a slide is at most the window.
            let col = match (function, col) {
                (AggFunction::Count | AggFunction::Last, c) => c,
                (_, Col::Label) => Col::Int,
                (_, c) => c,
            };
            let slide = slide.filter(|s| *s <= window);
            let column = match col {
                Col::Int => "int",
                Col::Float => "float",
                Col::Label => "label",
            };
            (
                col,
                Aggregation {
                    column: column.into(),
                    function,
                    window: Interval::from_seconds(window),
                    slide: slide.map(Interval::from_seconds),
                    name: String::new(),
                },
            )
        })
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float64(x), Value::Float64(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn online_windows_equal_offline_point_in_time_values(
        events in proptest::collection::vec(event(), 0..60),
        aggs in proptest::collection::vec(aggregation(), 1..5),
        reads in proptest::collection::vec(0i64..150, 1..6),
    ) {
        let aggs: Vec<(Col, Aggregation)> = aggs
            .into_iter()
            .enumerate()
            .map(|(i, (c, mut a))| {
                a.name = format!("f{i}");
                (c, a)
            })
            .collect();
        let specs: Vec<WindowSpec> = aggs.iter().map(|(_, a)| WindowSpec::new(a)).collect();
        // Online: one event at a time, in order.
        let mut states: std::collections::BTreeMap<i64, WindowState> = Default::default();
        for e in &events {
            let values: Vec<Value> = aggs
                .iter()
                .map(|(c, _)| match c {
                    Col::Int => e.int.map_or(Value::Null, Value::Int64),
                    Col::Float => e.float.map_or(Value::Null, Value::Float64),
                    Col::Label => e.label.clone().map_or(Value::Null, Value::String),
                })
                .collect();
            states.entry(e.key).or_default().add(&specs, e.ts * 1_000_000, &values);
        }
        // Reads at or after every key's last event.
        let last = events.iter().map(|e| e.ts).max().unwrap_or(0);
        let mut entity_keys = Vec::new();
        let mut entity_times = Vec::new();
        for key in 0..3i64 {
            for r in &reads {
                entity_keys.push(key);
                entity_times.push(last + r);
            }
        }
        // Offline: the window kernel over the same events.
        let ts_type = ArrowType::Timestamp(TimeUnit::Second, Some("UTC".into()));
        let entity = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("user_id", ArrowType::Int64, true),
                Field::new("event_timestamp", ts_type.clone(), true),
            ])),
            vec![
                Arc::new(Int64Array::from(entity_keys.clone())) as ArrayRef,
                Arc::new(TimestampSecondArray::from(entity_times.clone()).with_timezone("UTC")),
            ],
        ).unwrap();
        let schema = Schema::new(vec![
            Field::new("user_id", ArrowType::Int64, true),
            Field::new("ts", ts_type, true),
            Field::new("int", ArrowType::Int64, true),
            Field::new("float", ArrowType::Float64, true),
            Field::new("label", ArrowType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![
                Arc::new(Int64Array::from(events.iter().map(|e| e.key).collect::<Vec<_>>())) as ArrayRef,
                Arc::new(TimestampSecondArray::from(events.iter().map(|e| e.ts).collect::<Vec<_>>()).with_timezone("UTC")),
                Arc::new(Int64Array::from(events.iter().map(|e| e.int).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(events.iter().map(|e| e.float).collect::<Vec<_>>())),
                Arc::new(StringArray::from(events.iter().map(|e| e.label.clone()).collect::<Vec<_>>())),
            ],
        ).unwrap();
        let spec = StreamViewSpec::new("v", ["user_id"], "ts")
            .aggregations(aggs.iter().map(|(_, a)| a.clone()));
        let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).unwrap();
        join.add_stream_view(&spec, &schema, [batch]).unwrap();
        let offline = join.finish().unwrap();
        for (row, (key, t)) in entity_keys.iter().zip(&entity_times).enumerate() {
            let online = states.get(key).map(|s| s.read(&specs, t * 1_000_000));
            for (i, (_, a)) in aggs.iter().enumerate() {
                let col = offline.column_by_name(&format!("v__{}", a.name)).unwrap();
                let want = cell(col.as_ref(), row);
                let got = match &online {
                    Some(values) => values[i].clone(),
                    // A key never seen: count 0, every other function null.
                    None if a.function == AggFunction::Count => Value::Int64(0),
                    None => Value::Null,
                };
                prop_assert!(
                    same(&got, &want),
                    "key {key} at {t}: {:?} of {} over {}s/{:?}: online {got:?}, offline {want:?}",
                    a.function, a.column, a.window.seconds(), a.slide.map(|s| s.seconds())
                );
            }
        }
    }
}
