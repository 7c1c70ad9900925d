//! The kernel against a brute-force reference on random inputs: few keys
//! (so many rows share one), repeated event times and created times, nulls
//! everywhere they may appear, mixed time units, ttl zero or not, batches
//! of random sizes and merge buffers small enough to force many merges and
//! compactions.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use proptest::prelude::*;

use super::{FeatureNames, JoinOptions, PointInTimeJoin, ViewSpec};

use crate::point_in_time::test_support::{Key, UNITS, key, keys_match, per_second, time_array};

fn opt_time() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 12 => (0_i64..20).prop_map(Some)]
}

#[derive(Debug, Clone)]
struct EntityRow {
    key: Key,
    time: Option<i64>,
}

#[derive(Debug, Clone)]
struct Event {
    key: Key,
    time: Option<i64>,
    created: Option<i64>,
    /// Some rows carry a null feature value, which must come out as null
    /// even though the row matched.
    label_null: bool,
}

#[derive(Debug, Clone)]
struct View {
    events: Vec<Event>,
    /// Batch sizes, cycled over the events.
    splits: Vec<usize>,
    ttl: i64,
    has_created: bool,
    unit: TimeUnit,
    utc: bool,
}

fn view() -> impl Strategy<Value = View> {
    let event = (
        key(),
        opt_time(),
        prop_oneof![1 => Just(None), 6 => (0_i64..3).prop_map(Some)],
        prop::bool::weighted(0.1),
    )
        .prop_map(|(key, time, created, label_null)| Event {
            key,
            time,
            created,
            label_null,
        });
    (
        prop::collection::vec(event, 0..80),
        prop::collection::vec(1_usize..9, 1..4),
        prop_oneof![2 => Just(0_i64), 3 => 1_i64..8],
        any::<bool>(),
        prop::sample::select(UNITS.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(events, splits, ttl, has_created, unit, utc)| View {
            events,
            splits,
            ttl,
            has_created,
            unit,
            utc,
        })
}

#[derive(Debug, Clone)]
struct Case {
    entity: Vec<EntityRow>,
    entity_unit: TimeUnit,
    key_columns: usize,
    views: Vec<View>,
    merge_rows: usize,
}

fn case() -> impl Strategy<Value = Case> {
    let row = (key(), opt_time()).prop_map(|(key, time)| EntityRow { key, time });
    (
        prop::collection::vec(row, 0..25),
        prop::sample::select(UNITS.to_vec()),
        prop_oneof![1 => Just(0_usize), 4 => Just(1), 4 => Just(2)],
        prop::collection::vec(view(), 1..3),
        prop_oneof![1 => 1_usize..4, 1 => 4_usize..64],
    )
        .prop_map(
            |(entity, entity_unit, key_columns, views, merge_rows)| Case {
                entity,
                entity_unit,
                key_columns,
                views,
                merge_rows,
            },
        )
}

/// The plain definition: every event of the view against every entity row.
fn reference(case: &Case, view: &View) -> Vec<Option<usize>> {
    let created = |e: &Event| {
        if view.has_created {
            e.created.unwrap_or(i64::MIN)
        } else {
            0
        }
    };
    case.entity
        .iter()
        .map(|row| {
            let mut best: Option<usize> = None;
            for (i, event) in view.events.iter().enumerate() {
                let (Some(at), Some(t)) = (row.time, event.time) else {
                    continue;
                };
                if !keys_match(&row.key, &event.key, case.key_columns) {
                    continue;
                }
                if t > at || (view.ttl > 0 && t < at - view.ttl) {
                    continue;
                }
                // `>=`: a later event wins a full tie.
                let wins = best.is_none_or(|b| {
                    let b = &view.events[b];
                    (t, created(event)) >= (b.time.unwrap_or(i64::MIN), created(b))
                });
                if wins {
                    best = Some(i);
                }
            }
            best
        })
        .collect()
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
    let keys: Vec<&Key> = case.entity.iter().map(|r| &r.key).collect();
    let mut columns = key_columns(&keys, case.key_columns);

    let units: Vec<TimeUnit> = case.views.iter().map(|v| v.unit).collect();
    // The entity's times must be exact in every view's coarse unit: use the
    // coarsest unit of all.
    let tick = units
        .iter()
        .fold(per_second(case.entity_unit), |m, u| m.min(per_second(*u)));
    let scale = per_second(case.entity_unit) / tick;
    columns.push(time_array(
        case.entity_unit,
        false,
        case.entity
            .iter()
            .map(|r| r.time.map(|t| t * scale))
            .collect(),
    ));
    let entity = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("entity");

    let options = JoinOptions {
        merge_rows: case.merge_rows,
        feature_names: FeatureNames::Full,
        ..JoinOptions::default()
    };
    let mut join = PointInTimeJoin::new(entity, options).expect("entity accepted");
    for (v, view) in case.views.iter().enumerate() {
        let scale = per_second(view.unit) / tick;
        let mut fields = key_fields(case.key_columns);
        let time_type = DataType::Timestamp(view.unit, view.utc.then(|| "UTC".into()));
        fields.push(Field::new("ts", time_type, true));
        fields.push(Field::new(
            "created",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ));
        fields.push(Field::new("row", DataType::Int64, false));
        fields.push(Field::new("label", DataType::Utf8, true));
        let schema = Arc::new(Schema::new(fields));

        let mut batches = Vec::new();
        let mut start = 0;
        let mut split = 0;
        while start < view.events.len() {
            let len = view.splits[split % view.splits.len()].min(view.events.len() - start);
            split += 1;
            let events = &view.events[start..start + len];
            let keys: Vec<&Key> = events.iter().map(|e| &e.key).collect();
            let mut columns = key_columns(&keys, case.key_columns);
            columns.push(time_array(
                view.unit,
                view.utc,
                events.iter().map(|e| e.time.map(|t| t * scale)).collect(),
            ));
            columns.push(time_array(
                TimeUnit::Millisecond,
                false,
                events.iter().map(|e| e.created).collect(),
            ));
            columns.push(Arc::new(Int64Array::from_iter_values(
                (start..start + len).map(|i| i as i64),
            )));
            columns.push(Arc::new(StringArray::from(
                events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (!e.label_null).then(|| format!("e{}", start + i)))
                    .collect::<Vec<_>>(),
            )));
            batches.push(RecordBatch::try_new(schema.clone(), columns).expect("batch"));
            start += len;
        }

        let mut spec = ViewSpec::new(
            format!("v{v}"),
            ["id", "region"].into_iter().take(case.key_columns),
            "ts",
        )
        .features(["row", "label"])
        // One tick is 1 / `tick` seconds.
        .ttl(Duration::from_nanos(
            view.ttl.unsigned_abs() * (1_000_000_000 / tick.unsigned_abs()),
        ));
        if view.has_created {
            spec = spec.created_timestamp("created");
        }
        join.add_view(&spec, &schema, batches).expect("view joins");
    }
    join.finish().expect("finish")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn kernel_matches_the_brute_force_reference(case in case()) {
        let out = run(&case);
        prop_assert_eq!(out.num_rows(), case.entity.len());
        for (v, view) in case.views.iter().enumerate() {
            let expected = reference(&case, view);
            let rows = out
                .column_by_name(&format!("v{v}__row"))
                .expect("row column")
                .as_primitive::<Int64Type>();
            let labels = out
                .column_by_name(&format!("v{v}__label"))
                .expect("label column")
                .as_string::<i32>();
            for (i, want) in expected.iter().enumerate() {
                let got = rows.is_valid(i).then(|| rows.value(i) as usize);
                prop_assert_eq!(got, *want, "view {} entity row {}", v, i);
                let label = labels.is_valid(i).then(|| labels.value(i).to_owned());
                let want_label = want
                    .filter(|&e| !view.events[e].label_null)
                    .map(|e| format!("e{e}"));
                prop_assert_eq!(label, want_label, "label of view {} entity row {}", v, i);
            }
        }
    }
}
