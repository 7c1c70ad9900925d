//! Windowed aggregations against a brute-force reference on random inputs:
//! few keys (so many rows share one), times before and after the epoch
//! with repeats and off-by-one-tick neighbours of window bounds, mixed time
//! units, nulls in keys, times and values, float specials (`-0.0`, NaN,
//! infinities), windows and slides that do and do not divide each other
//! (slides longer than the window too), batches of random sizes and merge
//! buffers small enough to make `last` merge many times.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use proptest::prelude::*;

use crate::definition::{AggFunction, Aggregation, Interval};
use crate::point_in_time::{JoinOptions, PointInTimeJoin, StreamViewSpec};

use crate::point_in_time::test_support::{Key, UNITS, key, keys_match, per_second, time_array};

/// A time: whole seconds, then a nudge of one tick of its column's unit
/// (when that unit is finer than seconds) to either side of the second.
#[derive(Debug, Clone, Copy)]
struct Time {
    seconds: i64,
    nudge: i64,
}

impl Time {
    /// The raw value of a column of `unit`.
    fn raw(self, unit: TimeUnit) -> i64 {
        let nudge = if per_second(unit) > 1 { self.nudge } else { 0 };
        self.seconds * per_second(unit) + nudge
    }

    /// Ticks of `finest` per second, from a column of `unit`.
    fn ticks(self, unit: TimeUnit, finest: i64) -> i64 {
        self.raw(unit) * (finest / per_second(unit))
    }
}

fn opt_time() -> impl Strategy<Value = Option<Time>> {
    let time = (
        -8_i64..24,
        prop_oneof![6 => Just(0_i64), 1 => Just(1), 1 => Just(-1)],
    )
        .prop_map(|(seconds, nudge)| Time { seconds, nudge });
    prop_oneof![1 => Just(None), 12 => time.prop_map(Some)]
}

fn float() -> impl Strategy<Value = f64> {
    // Sums of these are exact in any order, so the reference may add them
    // in input order and still expect the same bits.
    prop_oneof![
        12 => (-20_i64..20).prop_map(|v| v as f64),
        1 => Just(-0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

#[derive(Debug, Clone)]
struct Event {
    key: Key,
    time: Option<Time>,
    int: Option<i64>,
    float: Option<f64>,
    /// Whether the event's label (a text column) is null.
    label_null: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Int,
    Float,
    Label,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Int => "n",
            Column::Float => "x",
            Column::Label => "label",
        }
    }
}

#[derive(Debug, Clone)]
struct Agg {
    column: Column,
    function: AggFunction,
    window: u64,
    slide: Option<u64>,
}

fn aggregation() -> impl Strategy<Value = Agg> {
    let numeric = (
        prop::sample::select(vec![Column::Int, Column::Float]),
        prop::sample::select(AggFunction::ALL.to_vec()),
    );
    let text = (
        Just(Column::Label),
        prop::sample::select(vec![AggFunction::Count, AggFunction::Last]),
    );
    (
        prop_oneof![4 => numeric, 1 => text],
        1_u64..7,
        prop_oneof![1 => Just(None), 2 => (1_u64..9).prop_map(Some)],
    )
        .prop_map(|((column, function), window, slide)| Agg {
            column,
            function,
            window,
            slide,
        })
}

#[derive(Debug, Clone)]
struct Case {
    entity: Vec<(Key, Option<Time>)>,
    entity_unit: TimeUnit,
    events: Vec<Event>,
    view_unit: TimeUnit,
    utc: bool,
    key_columns: usize,
    aggregations: Vec<Agg>,
    /// Batch sizes, cycled over the events.
    splits: Vec<usize>,
    merge_rows: usize,
}

fn case() -> impl Strategy<Value = Case> {
    let event = (
        key(),
        opt_time(),
        prop_oneof![1 => Just(None), 6 => (-20_i64..20).prop_map(Some)],
        prop_oneof![1 => Just(None), 6 => float().prop_map(Some)],
        prop::bool::weighted(0.15),
    )
        .prop_map(|(key, time, int, float, label_null)| Event {
            key,
            time,
            int,
            float,
            label_null,
        });
    (
        prop::collection::vec((key(), opt_time()), 0..25),
        prop::sample::select(UNITS.to_vec()),
        prop::collection::vec(event, 0..80),
        prop::sample::select(UNITS.to_vec()),
        any::<bool>(),
        prop_oneof![1 => Just(0_usize), 4 => Just(1), 4 => Just(2)],
        prop::collection::vec(aggregation(), 1..5),
        prop::collection::vec(1_usize..9, 1..4),
        prop_oneof![1 => 1_usize..4, 1 => 4_usize..64],
    )
        .prop_map(
            |(
                entity,
                entity_unit,
                events,
                view_unit,
                utc,
                key_columns,
                aggregations,
                splits,
                merge_rows,
            )| Case {
                entity,
                entity_unit,
                events,
                view_unit,
                utc,
                key_columns,
                aggregations,
                splits,
                merge_rows,
            },
        )
}

/// What one aggregation gives one entity row.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Float(Option<Bits>),
    Text(Option<String>),
}

/// A float compared by its bits (`-0.0 != 0.0`), with every NaN equal.
#[derive(Debug, Clone, Copy)]
struct Bits(f64);

impl PartialEq for Bits {
    fn eq(&self, other: &Self) -> bool {
        (self.0.is_nan() && other.0.is_nan()) || self.0.to_bits() == other.0.to_bits()
    }
}

fn label(i: usize) -> String {
    format!("e{i}")
}

/// The definition, applied literally: every event against every entity
/// row, in input order.
fn reference(case: &Case, agg: &Agg, key: &Key, time: Option<Time>) -> Value {
    let finest = per_second(case.entity_unit).max(per_second(case.view_unit));
    let window = agg.window as i64 * finest;
    let slide = agg.slide.unwrap_or(agg.window) as i64 * finest;
    // (input position, event) in the row's window, with a non-null value.
    let mut held: Vec<(usize, &Event)> = Vec::new();
    if let Some(time) = time {
        let t = time.ticks(case.entity_unit, finest);
        let end = t.div_euclid(slide) * slide;
        for (i, event) in case.events.iter().enumerate() {
            let Some(at) = event.time else { continue };
            let at = at.ticks(case.view_unit, finest);
            let has_value = match agg.column {
                Column::Int => event.int.is_some(),
                Column::Float => event.float.is_some(),
                Column::Label => !event.label_null,
            };
            if keys_match(key, &event.key, case.key_columns)
                && end - window < at
                && at <= end
                && has_value
            {
                held.push((i, event));
            }
        }
    }
    let ints = || held.iter().filter_map(|(_, e)| e.int);
    let floats = || held.iter().filter_map(|(_, e)| e.float);
    let total_order_min = |a: f64, b: f64| if b.total_cmp(&a).is_lt() { b } else { a };
    let total_order_max = |a: f64, b: f64| if b.total_cmp(&a).is_gt() { b } else { a };
    let some = !held.is_empty();
    let count = held.len() as i64;
    let last = held
        .iter()
        .max_by_key(|(i, e)| (e.time.map(|t| t.ticks(case.view_unit, finest)), *i))
        .copied();
    match (agg.function, agg.column) {
        (AggFunction::Count, _) => Value::Int(Some(count)),
        (AggFunction::Sum, Column::Int) => Value::Int(some.then(|| ints().sum())),
        (AggFunction::Sum, _) => {
            Value::Float(some.then(|| Bits(floats().fold(-0.0, |a, b| a + b))))
        }
        (AggFunction::Mean, Column::Int) => {
            Value::Float(some.then(|| Bits(ints().sum::<i64>() as f64 / count as f64)))
        }
        (AggFunction::Mean, _) => {
            Value::Float(some.then(|| Bits(floats().fold(-0.0, |a, b| a + b) / count as f64)))
        }
        (AggFunction::Min, Column::Int) => Value::Int(ints().min()),
        (AggFunction::Max, Column::Int) => Value::Int(ints().max()),
        (AggFunction::Min, _) => Value::Float(floats().reduce(total_order_min).map(Bits)),
        (AggFunction::Max, _) => Value::Float(floats().reduce(total_order_max).map(Bits)),
        (AggFunction::Last, Column::Int) => Value::Int(last.and_then(|(_, e)| e.int)),
        (AggFunction::Last, Column::Float) => {
            Value::Float(last.and_then(|(_, e)| e.float).map(Bits))
        }
        (AggFunction::Last, Column::Label) => Value::Text(last.map(|(i, _)| label(i))),
    }
}

/// What the implementation gave row `row` of `column`.
fn got(column: &ArrayRef, row: usize) -> Value {
    match column.data_type() {
        DataType::Int64 => {
            let values = column.as_primitive::<Int64Type>();
            Value::Int(values.is_valid(row).then(|| values.value(row)))
        }
        DataType::Float64 => {
            let values = column.as_primitive::<Float64Type>();
            Value::Float(values.is_valid(row).then(|| Bits(values.value(row))))
        }
        _ => {
            let values = column.as_string::<i32>();
            Value::Text(values.is_valid(row).then(|| values.value(row).to_owned()))
        }
    }
}

fn key_fields(n: usize) -> Vec<Field> {
    [
        Field::new("id", DataType::Int64, true),
        Field::new("region", DataType::Utf8, true),
    ]
    .into_iter()
    .take(n)
    .collect()
}

fn key_columns(keys: &[&Key], n: usize) -> Vec<ArrayRef> {
    let ids: ArrayRef = Arc::new(Int64Array::from(
        keys.iter().map(|k| k.id).collect::<Vec<_>>(),
    ));
    let regions: ArrayRef = Arc::new(StringArray::from(
        keys.iter().map(|k| k.region).collect::<Vec<_>>(),
    ));
    [ids, regions].into_iter().take(n).collect()
}

fn run(case: &Case) -> RecordBatch {
    let mut fields = key_fields(case.key_columns);
    fields.push(Field::new(
        "event_timestamp",
        DataType::Timestamp(case.entity_unit, None),
        true,
    ));
    let keys: Vec<&Key> = case.entity.iter().map(|(k, _)| k).collect();
    let mut columns = key_columns(&keys, case.key_columns);
    columns.push(time_array(
        case.entity_unit,
        false,
        case.entity
            .iter()
            .map(|(_, t)| t.map(|t| t.raw(case.entity_unit)))
            .collect(),
    ));
    let entity = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("entity");

    let mut fields = key_fields(case.key_columns);
    let time_type = DataType::Timestamp(case.view_unit, case.utc.then(|| "UTC".into()));
    fields.push(Field::new("ts", time_type, true));
    fields.push(Field::new("n", DataType::Int64, true));
    fields.push(Field::new("x", DataType::Float64, true));
    fields.push(Field::new("label", DataType::Utf8, true));
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    let mut start = 0;
    let mut split = 0;
    while start < case.events.len() {
        let len = case.splits[split % case.splits.len()].min(case.events.len() - start);
        split += 1;
        let events = &case.events[start..start + len];
        let keys: Vec<&Key> = events.iter().map(|e| &e.key).collect();
        let mut columns = key_columns(&keys, case.key_columns);
        columns.push(time_array(
            case.view_unit,
            case.utc,
            events
                .iter()
                .map(|e| e.time.map(|t| t.raw(case.view_unit)))
                .collect(),
        ));
        columns.push(Arc::new(Int64Array::from_iter(
            events.iter().map(|e| e.int),
        )));
        columns.push(Arc::new(Float64Array::from_iter(
            events.iter().map(|e| e.float),
        )));
        columns.push(Arc::new(StringArray::from_iter(
            events
                .iter()
                .enumerate()
                .map(|(i, e)| (!e.label_null).then(|| label(start + i))),
        )));
        batches.push(RecordBatch::try_new(schema.clone(), columns).expect("batch"));
        start += len;
    }

    let aggregations = case
        .aggregations
        .iter()
        .enumerate()
        .map(|(i, a)| Aggregation {
            column: a.column.name().to_owned(),
            function: a.function,
            window: Interval::from_seconds(a.window),
            slide: a.slide.map(Interval::from_seconds),
            name: format!("a{i}"),
        });
    let view = StreamViewSpec::new(
        "w",
        ["id", "region"].into_iter().take(case.key_columns),
        "ts",
    )
    .aggregations(aggregations);
    let options = JoinOptions {
        merge_rows: case.merge_rows,
        ..JoinOptions::default()
    };
    let mut join = PointInTimeJoin::new(entity, options).expect("entity accepted");
    join.add_stream_view(&view, &schema, batches)
        .expect("view aggregates");
    join.finish().expect("finish")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn windows_match_the_brute_force_reference(case in case()) {
        let out = run(&case);
        prop_assert_eq!(out.num_rows(), case.entity.len());
        for (a, agg) in case.aggregations.iter().enumerate() {
            let column = out.column_by_name(&format!("w__a{a}")).expect("output column");
            for (row, (key, time)) in case.entity.iter().enumerate() {
                let want = reference(&case, agg, key, *time);
                prop_assert_eq!(got(column, row), want, "aggregation {} {:?}, entity row {}", a, agg, row);
            }
        }
    }
}
