use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    RecordBatchIterator, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampSecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use super::{FeatureNames, JoinOptions, PointInTimeError, PointInTimeJoin, Table, ViewSpec};

fn seconds() -> DataType {
    DataType::Timestamp(TimeUnit::Second, None)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("valid batch")
}

/// Entity table keyed by `user_id` (nullable), times in seconds.
fn entity(users: Vec<Option<i64>>, times: Vec<Option<i64>>) -> RecordBatch {
    batch(
        vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("event_timestamp", seconds(), true),
            Field::new("label", DataType::Int32, false),
        ],
        vec![
            Arc::new(Int64Array::from(users.clone())),
            Arc::new(TimestampSecondArray::from(times)),
            Arc::new(Int32Array::from_iter_values(0..users.len() as i32)),
        ],
    )
}

fn spend_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", seconds(), true),
        Field::new("spend", DataType::Float64, true),
    ]))
}

fn spend(users: Vec<Option<i64>>, times: Vec<Option<i64>>, values: Vec<f64>) -> RecordBatch {
    RecordBatch::try_new(
        spend_schema(),
        vec![
            Arc::new(Int64Array::from(users)),
            Arc::new(TimestampSecondArray::from(times)),
            Arc::new(Float64Array::from(values)),
        ],
    )
    .expect("valid batch")
}

fn f64s(out: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    out.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", out.schema()))
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}

fn join_one(entity: RecordBatch, view: &ViewSpec, batches: Vec<RecordBatch>) -> RecordBatch {
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_view(view, &spend_schema(), batches).expect("view");
    join.finish().expect("finish")
}

#[test]
fn entity_rows_keep_their_order_duplicates_and_misses() {
    let entity = entity(
        vec![Some(2), Some(1), Some(3), Some(1), Some(2), Some(1)],
        vec![Some(50), Some(30), Some(30), Some(5), Some(50), Some(30)],
    );
    let events = spend(
        vec![Some(1), Some(2), Some(1), Some(2)],
        vec![Some(10), Some(40), Some(20), Some(60)],
        vec![1.0, 2.0, 3.0, 4.0],
    );
    let view = ViewSpec::new("spending", ["user_id"], "ts");
    let out = join_one(entity.clone(), &view, vec![events]);

    // Entity columns come first, untouched, in their order.
    assert_eq!(out.num_columns(), 4);
    for (i, column) in entity.columns().iter().enumerate() {
        assert_eq!(out.column(i), column);
        assert_eq!(out.schema().field(i), entity.schema().field(i));
    }
    assert_eq!(
        f64s(&out, "spending__spend"),
        // user 3 has no events; user 1 at 5 only has later ones.
        vec![Some(2.0), Some(3.0), None, None, Some(2.0), Some(3.0)]
    );
    assert!(out.schema().field(3).is_nullable());
}

#[test]
fn ttl_bounds_are_inclusive_and_zero_means_unbounded() {
    let entity = entity(
        vec![Some(1); 4],
        vec![Some(100), Some(109), Some(110), Some(111)],
    );
    let events = spend(vec![Some(1)], vec![Some(100)], vec![7.0]);
    let view = ViewSpec::new("v", ["user_id"], "ts").ttl(Duration::from_secs(10));
    let out = join_one(entity.clone(), &view, vec![events.clone()]);
    assert_eq!(
        f64s(&out, "v__spend"),
        vec![Some(7.0), Some(7.0), Some(7.0), None]
    );

    let unbounded = ViewSpec::new("v", ["user_id"], "ts");
    let out = join_one(entity, &unbounded, vec![events]);
    assert_eq!(f64s(&out, "v__spend"), vec![Some(7.0); 4]);
}

#[test]
fn a_ttl_shorter_than_the_unit_still_bounds() {
    // One nanosecond rounds down to zero seconds: only rows at exactly the
    // event time count, not every older row.
    let entity = entity(vec![Some(1), Some(1)], vec![Some(100), Some(101)]);
    let events = spend(vec![Some(1)], vec![Some(100)], vec![7.0]);
    let view = ViewSpec::new("v", ["user_id"], "ts").ttl(Duration::from_nanos(1));
    let out = join_one(entity, &view, vec![events]);
    assert_eq!(f64s(&out, "v__spend"), vec![Some(7.0), None]);
}

#[test]
fn null_keys_and_null_times_never_match() {
    let entity = entity(
        vec![None, Some(1), Some(1)],
        vec![Some(100), None, Some(100)],
    );
    let events = spend(
        vec![None, Some(1), Some(1)],
        vec![Some(90), Some(95), None],
        vec![1.0, 2.0, 3.0],
    );
    let view = ViewSpec::new("v", ["user_id"], "ts");
    let out = join_one(entity, &view, vec![events]);
    // Row 0: null key (an event with a null key exists, still no match).
    // Row 1: null event time. Row 2: the null-time event is ignored.
    assert_eq!(f64s(&out, "v__spend"), vec![None, None, Some(2.0)]);
}

#[test]
fn ties_go_to_the_larger_created_time_then_to_the_later_row() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", seconds(), true),
        Field::new(
            "created",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("spend", DataType::Float64, true),
    ]));
    let rows = |created: Vec<Option<i64>>, values: Vec<f64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1); values.len()])),
                Arc::new(TimestampSecondArray::from(vec![Some(10); values.len()])),
                Arc::new(TimestampMillisecondArray::from(created)),
                Arc::new(Float64Array::from(values)),
            ],
        )
        .expect("batch")
    };
    let first = rows(vec![Some(5), None, Some(9)], vec![1.0, 2.0, 3.0]);
    let second = rows(vec![Some(9), Some(2)], vec![4.0, 5.0]);

    let run = |view: &ViewSpec| {
        let mut join = PointInTimeJoin::new(
            entity(vec![Some(1)], vec![Some(10)]),
            JoinOptions::default(),
        )
        .expect("entity");
        join.add_view(view, &schema, [first.clone(), second.clone()])
            .expect("view");
        f64s(&join.finish().expect("finish"), "v__spend")
    };
    // Created 9 twice: the later row (second batch) wins.
    let with_created = ViewSpec::new("v", ["user_id"], "ts")
        .created_timestamp("created")
        .features(["spend"]);
    assert_eq!(run(&with_created), vec![Some(4.0)]);
    // Without the created column: the last row in input order.
    let without = ViewSpec::new("v", ["user_id"], "ts").features(["spend"]);
    assert_eq!(run(&without), vec![Some(5.0)]);
}

#[test]
fn short_names_and_their_collisions() {
    let entity = entity(vec![Some(1)], vec![Some(100)]);
    let events = spend(vec![Some(1)], vec![Some(90)], vec![1.5]);
    let options = JoinOptions {
        feature_names: FeatureNames::Short,
        ..JoinOptions::default()
    };
    let mut join = PointInTimeJoin::new(entity.clone(), options.clone()).expect("entity");
    join.add_view(
        &ViewSpec::new("a", ["user_id"], "ts"),
        &spend_schema(),
        [events.clone()],
    )
    .expect("first view");
    let err = join
        .add_view(
            &ViewSpec::new("b", ["user_id"], "ts"),
            &spend_schema(),
            [events.clone()],
        )
        .expect_err("`spend` twice");
    assert!(
        matches!(&err, PointInTimeError::NameCollision { name, .. } if name == "spend"),
        "{err}"
    );
    assert!(err.to_string().contains("view `a`"), "{err}");
    // The failed view left the join as it was.
    let out = join.finish().expect("finish");
    assert_eq!(f64s(&out, "spend"), vec![Some(1.5)]);
    assert_eq!(out.num_columns(), 4);

    // A feature named like an entity column collides too.
    let mut join = PointInTimeJoin::new(entity, options).expect("entity");
    let err = join
        .add_view(
            &ViewSpec::new("a", ["user_id"], "ts").features(["user_id"]),
            &spend_schema(),
            [events],
        )
        .expect_err("entity column");
    assert!(
        matches!(err, PointInTimeError::NameCollision { .. }),
        "{err}"
    );
}

#[test]
fn multi_column_keys_match_on_every_column() {
    let entity = batch(
        vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("merchant", DataType::Utf8, true),
            Field::new("event_timestamp", seconds(), false),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 2, 1])),
            Arc::new(StringArray::from(vec![
                Some("m1"),
                Some("m2"),
                Some("m1"),
                None,
            ])),
            Arc::new(TimestampSecondArray::from(vec![100, 100, 100, 100])),
        ],
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("merchant", DataType::Utf8, true),
        Field::new("ts", seconds(), false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("count", DataType::Int64, false),
    ]));
    let events = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![
                Some("m1"),
                Some("m2"),
                Some("m1"),
                None,
            ])),
            Arc::new(TimestampSecondArray::from(vec![10, 20, 30, 40])),
            Arc::new(Int64Array::from(vec![1, 1, 1, 1])),
            Arc::new(Int64Array::from(vec![11, 12, 13, 14])),
        ],
    )
    .expect("events");
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_view(
        &ViewSpec::new("pair", ["user_id", "merchant"], "ts"),
        &schema,
        [events],
    )
    .expect("view");
    let out = join.finish().expect("finish");
    let counts: Vec<Option<i64>> = out
        .column_by_name("pair__count")
        .expect("count")
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(counts, vec![Some(13), Some(12), None, None]);
}

#[test]
fn milliseconds_with_a_zone_against_microseconds_compare_exactly() {
    let entity = batch(
        vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1, 1])),
            Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000]).with_timezone("UTC")),
        ],
    );
    let zone = "+02:00";
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some(zone.into())),
            false,
        ),
        Field::new("spend", DataType::Float64, false),
    ]));
    let events = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 1])),
            // 1 s exactly; 1 µs after 1 s; 1.5 s.
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_000_000, 1_000_001, 1_500_000])
                    .with_timezone(zone),
            ),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
        ],
    )
    .expect("events");
    // ttl 500 ms: at 2 s the window is [1.5 s, 2 s].
    let view = ViewSpec::new("v", ["user_id"], "ts").ttl(Duration::from_millis(500));
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_view(&view, &schema, [events]).expect("view");
    let out = join.finish().expect("finish");
    assert_eq!(f64s(&out, "v__spend"), vec![Some(1.0), Some(3.0)]);
}

#[test]
fn dates_compare_with_timestamps() {
    let entity = batch(
        vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", DataType::Date32, false),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1, 1])),
            Arc::new(Date32Array::from(vec![1, 2])),
        ],
    );
    // Day 1 is 86,400 s; a row at 86,400 s counts on day 1, one at
    // 86,401 s only from day 2.
    let events = spend(
        vec![Some(1), Some(1)],
        vec![Some(86_400), Some(86_401)],
        vec![1.0, 2.0],
    );
    let out = join_one(entity, &ViewSpec::new("v", ["user_id"], "ts"), vec![events]);
    assert_eq!(f64s(&out, "v__spend"), vec![Some(1.0), Some(2.0)]);
}

#[test]
fn a_view_without_keys_joins_on_time_alone() {
    let entity = entity(vec![Some(1), Some(2)], vec![Some(15), Some(25)]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", seconds(), false),
        Field::new("rate", DataType::Float64, false),
    ]));
    let events = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(TimestampSecondArray::from(vec![10, 20])),
            Arc::new(Float64Array::from(vec![1.1, 1.2])),
        ],
    )
    .expect("events");
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_view(
        &ViewSpec::new("fx", Vec::<String>::new(), "ts"),
        &schema,
        [events],
    )
    .expect("view");
    let out = join.finish().expect("finish");
    assert_eq!(f64s(&out, "fx__rate"), vec![Some(1.1), Some(1.2)]);
}

#[test]
fn a_view_with_no_batches_gives_null_columns_of_its_types() {
    let entity = entity(vec![Some(1)], vec![Some(15)]);
    let out = join_one(entity, &ViewSpec::new("v", ["user_id"], "ts"), vec![]);
    let column = out.column_by_name("v__spend").expect("column");
    assert_eq!(column.data_type(), &DataType::Float64);
    assert_eq!(column.null_count(), 1);
}

#[test]
fn views_stream_from_a_reader_and_report_its_errors() {
    let entity = entity(vec![Some(1)], vec![Some(15)]);
    let good = spend(vec![Some(1)], vec![Some(10)], vec![1.0]);
    let reader = RecordBatchIterator::new(
        [
            Ok(good),
            Err(ArrowError::IoError(
                "disk gone".into(),
                std::io::ErrorKind::Other.into(),
            )),
        ],
        spend_schema(),
    );
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    let err = join
        .add_view_reader(&ViewSpec::new("v", ["user_id"], "ts"), reader)
        .expect_err("read error");
    assert!(
        matches!(&err, PointInTimeError::Arrow { table: Table::View(v), .. } if v == "v"),
        "{err}"
    );
}

#[test]
fn errors_name_the_offending_column() {
    let entity = entity(vec![Some(1)], vec![Some(15)]);
    let mut join = PointInTimeJoin::new(entity.clone(), JoinOptions::default()).expect("entity");

    let err = join
        .add_view(&ViewSpec::new("v", ["account"], "ts"), &spend_schema(), [])
        .expect_err("missing key");
    assert!(
        matches!(&err, PointInTimeError::MissingColumn { table: Table::Entity, column } if column == "account"),
        "{err}"
    );

    let err = join
        .add_view(&ViewSpec::new("v", ["label"], "ts"), &spend_schema(), [])
        .expect_err("key missing from view");
    assert!(
        matches!(&err, PointInTimeError::MissingColumn { table: Table::View(_), column } if column == "label"),
        "{err}"
    );

    let err = join
        .add_view(
            &ViewSpec::new("v", ["user_id"], "spend"),
            &spend_schema(),
            [],
        )
        .expect_err("not a time");
    assert!(
        matches!(&err, PointInTimeError::TimestampType { column, .. } if column == "spend"),
        "{err}"
    );
    assert!(err.to_string().contains("Float64"), "{err}");

    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("ts", seconds(), false),
    ]));
    let err = join
        .add_view(&ViewSpec::new("v", ["user_id"], "ts"), &schema, [])
        .expect_err("key types");
    assert!(
        matches!(&err, PointInTimeError::JoinKeyType { column, .. } if column == "user_id"),
        "{err}"
    );

    // A batch that contradicts the declared schema.
    let wrong = batch(
        vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("spend", DataType::Float64, true),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(TimestampMillisecondArray::from(vec![1])),
            Arc::new(Float64Array::from(vec![1.0])),
        ],
    );
    let err = join
        .add_view(
            &ViewSpec::new("v", ["user_id"], "ts"),
            &spend_schema(),
            [wrong],
        )
        .expect_err("batch schema");
    assert!(
        matches!(&err, PointInTimeError::BatchSchema { column, batch: 0, .. } if column == "ts"),
        "{err}"
    );

    let err = PointInTimeJoin::new(
        entity,
        JoinOptions {
            event_timestamp_column: "label".into(),
            ..JoinOptions::default()
        },
    )
    .expect_err("entity time type");
    assert!(
        matches!(
            err,
            PointInTimeError::TimestampType {
                table: Table::Entity,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn out_of_range_times_are_errors_not_wraps() {
    let entity = batch(
        vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", seconds(), false),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(TimestampSecondArray::from(vec![i64::MAX / 10])),
        ],
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
    ]));
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    let err = join
        .add_view(&ViewSpec::new("v", ["user_id"], "ts"), &schema, [])
        .expect_err("overflow");
    assert!(
        matches!(
            &err,
            PointInTimeError::TimestampOutOfRange {
                table: Table::Entity,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn features_of_nested_types_are_carried() {
    use arrow_array::ListArray;
    use arrow_array::types::Int32Type;
    let entity = entity(vec![Some(1), Some(2)], vec![Some(15), Some(15)]);
    let list =
        ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), Some(2)]), None]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("ts", seconds(), false),
        Field::new("recent", list.data_type().clone(), true),
    ]));
    let events = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(TimestampSecondArray::from(vec![10, 10])),
            Arc::new(list),
        ],
    )
    .expect("events");
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_view(&ViewSpec::new("v", ["user_id"], "ts"), &schema, [events])
        .expect("view");
    let out = join.finish().expect("finish");
    let recent = out
        .column_by_name("v__recent")
        .expect("column")
        .as_list::<i32>();
    assert_eq!(recent.len(), 2);
    assert_eq!(
        recent.value(0).as_primitive::<Int32Type>().values(),
        &[1, 2]
    );
    assert!(recent.is_null(1));
}
