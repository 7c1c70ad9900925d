use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMillisecondType,
    UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    RecordBatchIterator, StringArray, TimestampMillisecondArray, TimestampSecondArray, UInt64Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::definition::{AggFunction, Aggregation, Interval, RepoFile, parse_repo};
use crate::point_in_time::{
    FeatureNames, JoinOptions, PointInTimeError, PointInTimeJoin, StreamViewSpec, Table, ViewSpec,
};

fn seconds() -> DataType {
    DataType::Timestamp(TimeUnit::Second, None)
}

/// Entity table keyed by `user_id` (nullable), times in seconds.
fn entity(users: Vec<Option<i64>>, times: Vec<Option<i64>>) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("event_timestamp", seconds(), true),
        ])),
        vec![
            Arc::new(Int64Array::from(users)),
            Arc::new(TimestampSecondArray::from(times)),
        ],
    )
    .expect("entity batch")
}

/// Entity rows of user 1 at these times.
fn user_one_at(times: &[i64]) -> RecordBatch {
    entity(
        vec![Some(1); times.len()],
        times.iter().copied().map(Some).collect(),
    )
}

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", seconds(), true),
        Field::new("amount", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
        Field::new("label", DataType::Utf8, true),
    ]))
}

/// One event: user, time, value. `amount` is the value, `n` the value as an
/// integer and `label` its text, all null together.
type Event = (Option<i64>, Option<i64>, Option<f64>);

fn events(rows: &[Event]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
        Arc::new(TimestampSecondArray::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.2.map(|v| v as i64)),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.2.map(|v| format!("v{v}"))),
        )),
    ];
    RecordBatch::try_new(events_schema(), columns).expect("events batch")
}

/// User 1's events at these times, each worth its time.
fn user_one_events(times: &[i64]) -> RecordBatch {
    let rows: Vec<Event> = times
        .iter()
        .map(|&t| (Some(1), Some(t), Some(t as f64)))
        .collect();
    events(&rows)
}

/// An aggregation named `column_function`.
fn agg(column: &str, function: AggFunction, window: u64, slide: Option<u64>) -> Aggregation {
    Aggregation {
        column: column.to_owned(),
        function,
        window: Interval::from_seconds(window),
        slide: slide.map(Interval::from_seconds),
        name: format!("{column}_{function}"),
    }
}

fn view(aggregations: impl IntoIterator<Item = Aggregation>) -> StreamViewSpec {
    StreamViewSpec::new("s", ["user_id"], "ts").aggregations(aggregations)
}

fn run(
    entity: RecordBatch,
    view: &StreamViewSpec,
    batches: Vec<RecordBatch>,
) -> Result<RecordBatch, PointInTimeError> {
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default())?;
    join.add_stream_view(view, &events_schema(), batches)?;
    join.finish()
}

fn ok(entity: RecordBatch, view: &StreamViewSpec, batches: Vec<RecordBatch>) -> RecordBatch {
    run(entity, view, batches).expect("aggregates")
}

fn column<'a>(out: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    out.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", out.schema()))
}

fn counts(out: &RecordBatch, name: &str) -> Vec<i64> {
    let counts = column(out, name).as_primitive::<Int64Type>();
    assert_eq!(counts.null_count(), 0, "counts are never null");
    counts.values().to_vec()
}

fn i64s(out: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    column(out, name)
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

fn f64s(out: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    column(out, name)
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}

fn strings(out: &RecordBatch, name: &str) -> Vec<Option<String>> {
    column(out, name)
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

#[test]
fn a_window_holds_its_end_but_not_its_start() {
    // Tumbling windows of 10 s: (-10, 0], (0, 10], (10, 20].
    let out = ok(
        user_one_at(&[9, 10, 19, 20]),
        &view([agg("n", AggFunction::Count, 10, None)]),
        vec![user_one_events(&[0, 1, 10, 11])],
    );
    // 9 sees the window that ends at 0 (the event at 0); 10 and 19 see
    // (0, 10]: 1 and 10, not 0 (= E - W); 20 sees (10, 20]: 11.
    assert_eq!(counts(&out, "s__n_count"), vec![1, 2, 2, 1]);
}

#[test]
fn sliding_windows_end_at_multiples_of_the_slide() {
    // A 10 s window advancing every 4 s (the slide need not divide it).
    let all: Vec<i64> = (1..=12).collect();
    let out = ok(
        user_one_at(&[3, 4, 11, 12, 15]),
        &view([
            Aggregation {
                name: "count".into(),
                ..agg("n", AggFunction::Count, 10, Some(4))
            },
            Aggregation {
                name: "sum".into(),
                ..agg("n", AggFunction::Sum, 10, Some(4))
            },
        ]),
        vec![user_one_events(&all)],
    );
    // 3 -> E = 0: nothing yet. 4 -> (-6, 4]: 1..=4. 11 -> (-2, 8]: 1..=8.
    // 12 and 15 -> (2, 12]: 3..=12.
    assert_eq!(counts(&out, "s__count"), vec![0, 4, 8, 10, 10]);
    assert_eq!(
        i64s(&out, "s__sum"),
        vec![None, Some(10), Some(36), Some(75), Some(75)]
    );
}

#[test]
fn slides_longer_than_the_window_leave_gaps() {
    // Windows (3, 5], (8, 10], …: events in between count for nobody.
    let out = ok(
        user_one_at(&[5, 9, 10]),
        &view([agg("n", AggFunction::Count, 2, Some(5))]),
        vec![user_one_events(&[3, 4, 5, 6, 7, 8, 9, 10])],
    );
    assert_eq!(counts(&out, "s__n_count"), vec![2, 2, 2]);
}

#[test]
fn times_before_1970_floor_towards_minus_infinity() {
    // Slide 60: -1 and -60 see the window ending at -60, (-120, -60].
    let out = ok(
        user_one_at(&[-1, -60, -61, 0]),
        &view([agg("n", AggFunction::Sum, 60, None)]),
        vec![user_one_events(&[-130, -120, -119, -60, -59, -1, 0])],
    );
    assert_eq!(
        i64s(&out, "s__n_sum"),
        // -61 sees (-180, -120]; 0 sees (-60, 0].
        vec![
            Some(-119 - 60),
            Some(-119 - 60),
            Some(-130 - 120),
            Some(-59 - 1)
        ]
    );
}

#[test]
fn every_function_over_one_window() {
    let rows: Vec<Event> = vec![
        (Some(1), Some(1), Some(4.0)),
        (Some(1), Some(2), None),
        (Some(1), Some(3), Some(-2.0)),
        (Some(1), Some(4), Some(7.0)),
        (Some(1), Some(5), None),
        (Some(2), Some(5), Some(100.0)),
    ];
    let functions = [
        AggFunction::Count,
        AggFunction::Sum,
        AggFunction::Mean,
        AggFunction::Min,
        AggFunction::Max,
        AggFunction::Last,
    ];
    let mut aggregations: Vec<Aggregation> = Vec::new();
    for column in ["amount", "n"] {
        aggregations.extend(functions.map(|f| agg(column, f, 10, None)));
    }
    aggregations.push(agg("label", AggFunction::Count, 10, None));
    aggregations.push(agg("label", AggFunction::Last, 10, None));
    // User 1 at 10, user 1 before any event, user 3 without events.
    let entity = entity(
        vec![Some(1), Some(1), Some(3)],
        vec![Some(10), Some(9), Some(10)],
    );
    let out = ok(entity, &view(aggregations), vec![events(&rows)]);

    assert_eq!(counts(&out, "s__amount_count"), vec![3, 0, 0]);
    assert_eq!(f64s(&out, "s__amount_sum"), vec![Some(9.0), None, None]);
    assert_eq!(f64s(&out, "s__amount_mean"), vec![Some(3.0), None, None]);
    assert_eq!(f64s(&out, "s__amount_min"), vec![Some(-2.0), None, None]);
    assert_eq!(f64s(&out, "s__amount_max"), vec![Some(7.0), None, None]);
    // The event at 5 is later but null: `last` skips it.
    assert_eq!(f64s(&out, "s__amount_last"), vec![Some(7.0), None, None]);

    assert_eq!(counts(&out, "s__n_count"), vec![3, 0, 0]);
    assert_eq!(i64s(&out, "s__n_sum"), vec![Some(9), None, None]);
    assert_eq!(f64s(&out, "s__n_mean"), vec![Some(3.0), None, None]);
    assert_eq!(i64s(&out, "s__n_min"), vec![Some(-2), None, None]);
    assert_eq!(i64s(&out, "s__n_max"), vec![Some(7), None, None]);
    assert_eq!(i64s(&out, "s__n_last"), vec![Some(7), None, None]);

    assert_eq!(counts(&out, "s__label_count"), vec![3, 0, 0]);
    assert_eq!(
        strings(&out, "s__label_last"),
        vec![Some("v7".to_owned()), None, None]
    );

    let schema = out.schema();
    let field = |name: &str| schema.field_with_name(name).expect("field").clone();
    assert!(!field("s__n_count").is_nullable());
    assert!(field("s__n_sum").is_nullable());
    assert_eq!(field("s__n_sum").data_type(), &DataType::Int64);
    assert_eq!(field("s__n_mean").data_type(), &DataType::Float64);
    assert_eq!(field("s__label_last").data_type(), &DataType::Utf8);
}

#[test]
fn last_breaks_ties_by_input_order_across_batches() {
    let first = events(&[
        (Some(1), Some(5), Some(1.0)),
        (Some(1), Some(7), Some(2.0)),
        (Some(1), Some(7), Some(3.0)),
    ]);
    let second = events(&[
        (Some(1), Some(7), Some(4.0)),
        (Some(1), Some(7), None),
        (Some(1), Some(6), Some(5.0)),
    ]);
    let view = view([agg("amount", AggFunction::Last, 10, None)]);
    let out = ok(
        user_one_at(&[10]),
        &view,
        vec![first.clone(), second.clone()],
    );
    assert_eq!(f64s(&out, "s__amount_last"), vec![Some(4.0)]);
    // The other order: the first batch's last row at 7 now comes later.
    let out = ok(user_one_at(&[10]), &view, vec![second, first]);
    assert_eq!(f64s(&out, "s__amount_last"), vec![Some(3.0)]);
}

#[test]
fn null_keys_times_and_values_never_count() {
    let rows: Vec<Event> = vec![
        (None, Some(5), Some(1.0)),
        (Some(1), None, Some(2.0)),
        (Some(1), Some(5), None),
        (Some(1), Some(6), Some(4.0)),
    ];
    let entity = entity(vec![None, Some(1), Some(1)], vec![Some(10), None, Some(10)]);
    let aggregations = [
        agg("amount", AggFunction::Count, 10, None),
        agg("amount", AggFunction::Sum, 10, None),
        agg("amount", AggFunction::Last, 10, None),
    ];
    let out = ok(entity, &view(aggregations), vec![events(&rows)]);
    // A null entity key and a null entity time see nothing.
    assert_eq!(counts(&out, "s__amount_count"), vec![0, 0, 1]);
    assert_eq!(f64s(&out, "s__amount_sum"), vec![None, None, Some(4.0)]);
    assert_eq!(f64s(&out, "s__amount_last"), vec![None, None, Some(4.0)]);
}

#[test]
fn min_max_and_last_keep_the_column_type() {
    let ms_utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", seconds(), true),
        Field::new("small", DataType::Int32, true),
        Field::new("big", DataType::UInt64, true),
        Field::new("ratio", DataType::Float32, true),
        Field::new("seen", ms_utc.clone(), true),
        Field::new("day", DataType::Date32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 1])),
            Arc::new(TimestampSecondArray::from(vec![1, 2, 3])),
            Arc::new(Int32Array::from(vec![Some(-3), Some(9), None])),
            Arc::new(UInt64Array::from(vec![u64::MAX, 1, 2])),
            Arc::new(Float32Array::from(vec![0.5, -0.25, f32::NAN])),
            Arc::new(TimestampMillisecondArray::from(vec![30, 10, 20]).with_timezone("UTC")),
            Arc::new(Date32Array::from(vec![7, 3, 5])),
        ],
    )
    .expect("batch");
    let aggregations = [
        agg("small", AggFunction::Min, 10, None),
        agg("small", AggFunction::Last, 10, None),
        agg("big", AggFunction::Max, 10, None),
        agg("big", AggFunction::Mean, 10, None),
        agg("ratio", AggFunction::Min, 10, None),
        agg("ratio", AggFunction::Max, 10, None),
        agg("ratio", AggFunction::Sum, 10, None),
        agg("seen", AggFunction::Max, 10, None),
        agg("day", AggFunction::Min, 10, None),
    ];
    let mut join =
        PointInTimeJoin::new(user_one_at(&[10]), JoinOptions::default()).expect("entity");
    join.add_stream_view(&view(aggregations), &schema, [batch])
        .expect("aggregates");
    let out = join.finish().expect("finish");

    let small = column(&out, "s__small_min");
    assert_eq!(small.data_type(), &DataType::Int32);
    assert_eq!(small.as_primitive::<Int32Type>().value(0), -3);
    // The last non-null value.
    let last = column(&out, "s__small_last").as_primitive::<Int32Type>();
    assert_eq!(last.value(0), 9);
    let big = column(&out, "s__big_max").as_primitive::<UInt64Type>();
    assert_eq!(big.value(0), u64::MAX);
    let mean = f64s(&out, "s__big_mean");
    assert_eq!(mean, vec![Some((u64::MAX as f64 + 3.0) / 3.0)]);
    let ratio = column(&out, "s__ratio_min").as_primitive::<Float32Type>();
    assert_eq!(ratio.value(0), -0.25);
    // NaN is above every number, so it is the max.
    let ratio = column(&out, "s__ratio_max").as_primitive::<Float32Type>();
    assert!(ratio.value(0).is_nan());
    assert!(f64s(&out, "s__ratio_sum")[0].is_some_and(f64::is_nan));
    let seen = column(&out, "s__seen_max");
    assert_eq!(seen.data_type(), &ms_utc);
    assert_eq!(seen.as_primitive::<TimestampMillisecondType>().value(0), 30);
    let day = column(&out, "s__day_min");
    assert_eq!(day.as_primitive::<Date32Type>().value(0), 3);
}

#[test]
fn integer_sums_are_exact_or_an_error() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("ts", seconds(), true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = |values: Vec<i64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1; values.len()])),
                Arc::new(TimestampSecondArray::from(vec![1; values.len()])),
                Arc::new(Int64Array::from(values)),
            ],
        )
        .expect("batch")
    };
    let run = |values: Vec<i64>| {
        let mut join =
            PointInTimeJoin::new(user_one_at(&[10]), JoinOptions::default()).expect("entity");
        join.add_stream_view(
            &view([
                agg("n", AggFunction::Sum, 10, None),
                agg("n", AggFunction::Mean, 10, None),
            ]),
            &schema,
            [batch(values)],
        )?;
        join.finish()
    };
    // The partial sum passes i64::MAX on the way; the total does not.
    let out = run(vec![i64::MAX, 1, -2]).expect("fits");
    assert_eq!(i64s(&out, "s__n_sum"), vec![Some(i64::MAX - 1)]);

    let err = run(vec![i64::MAX, 1]).expect_err("does not fit");
    assert!(
        matches!(
            &err,
            PointInTimeError::SumOverflow { view, aggregation, column, sum }
                if view == "s" && aggregation == "n_sum" && column == "n"
                    && *sum == i128::from(i64::MAX) + 1
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("cast the column to Float64"),
        "{err}"
    );
}

#[test]
fn float_sums_do_not_cancel_against_older_events() {
    // A running sum minus the sum before the window would give 0 here.
    let out = ok(
        user_one_at(&[20]),
        &view([agg("amount", AggFunction::Sum, 10, None)]),
        vec![events(&[
            (Some(1), Some(1), Some(1e20)),
            (Some(1), Some(11), Some(1.0)),
            (Some(1), Some(12), Some(2.0)),
        ])],
    );
    assert_eq!(f64s(&out, "s__amount_sum"), vec![Some(3.0)]);
}

#[test]
fn dates_and_finer_units_compare_exactly() {
    // Entity rows are days; events are milliseconds; one-day windows.
    let entity = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("event_timestamp", DataType::Date32, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 1])),
            Arc::new(Date32Array::from(vec![2, 3])),
        ],
    )
    .expect("entity");
    let day = 86_400_000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            false,
        ),
        Field::new("n", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 1, 1])),
            Arc::new(
                TimestampMillisecondArray::from(vec![day, day + 1, 2 * day, 2 * day + 1])
                    .with_timezone("+02:00"),
            ),
            Arc::new(Int64Array::from(vec![1, 10, 100, 1000])),
        ],
    )
    .expect("batch");
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    join.add_stream_view(
        &view([agg("n", AggFunction::Sum, 86_400, None)]),
        &schema,
        [batch],
    )
    .expect("aggregates");
    let out = join.finish().expect("finish");
    // Day 2 ends its window (1d, 2d]; day 3 sees (2d, 3d].
    assert_eq!(i64s(&out, "s__n_sum"), vec![Some(110), Some(1000)]);
}

#[test]
fn keys_of_several_columns_and_no_keys() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("ts", seconds(), true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 2, 1])),
            Arc::new(StringArray::from(vec![
                Some("eu"),
                Some("us"),
                Some("eu"),
                None,
            ])),
            Arc::new(TimestampSecondArray::from(vec![1, 2, 3, 4])),
            Arc::new(Int64Array::from(vec![1, 10, 100, 1000])),
        ],
    )
    .expect("batch");
    let entity = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("region", DataType::Utf8, true),
            Field::new("event_timestamp", seconds(), true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 1, 2])),
            Arc::new(StringArray::from(vec![Some("eu"), None, Some("eu")])),
            Arc::new(TimestampSecondArray::from(vec![10, 10, 10])),
        ],
    )
    .expect("entity");
    let mut join = PointInTimeJoin::new(entity, JoinOptions::default()).expect("entity");
    let sum = agg("n", AggFunction::Sum, 10, None);
    let keyed =
        StreamViewSpec::new("keyed", ["user_id", "region"], "ts").aggregations([sum.clone()]);
    let global = StreamViewSpec::new("global", Vec::<String>::new(), "ts").aggregations([sum]);
    join.add_stream_view(&keyed, &schema, [batch.clone()])
        .expect("keyed")
        .add_stream_view(&global, &schema, [batch])
        .expect("global");
    let out = join.finish().expect("finish");
    assert_eq!(i64s(&out, "keyed__n_sum"), vec![Some(1), None, Some(100)]);
    assert_eq!(i64s(&out, "global__n_sum"), vec![Some(1111); 3]);
}

#[test]
fn stream_views_join_alongside_point_in_time_views() {
    let entity = user_one_at(&[10, 20]);
    let batch = user_one_events(&[5, 15]);
    let mut join = PointInTimeJoin::new(entity.clone(), JoinOptions::default()).expect("entity");
    join.add_view(
        &ViewSpec::new("latest", ["user_id"], "ts").features(["amount"]),
        &events_schema(),
        [batch.clone()],
    )
    .expect("view");
    join.add_stream_view_reader(
        &view([agg("amount", AggFunction::Max, 10, None)]),
        RecordBatchIterator::new([Ok(batch)], events_schema()),
    )
    .expect("stream view");
    let out = join.finish().expect("finish");
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "user_id",
            "event_timestamp",
            "latest__amount",
            "s__amount_max"
        ]
    );
    assert_eq!(out.column(0), entity.column(0));
    assert_eq!(f64s(&out, "s__amount_max"), vec![Some(5.0), Some(15.0)]);

    // No batches at all: counts of 0, nulls of each output type.
    let out = ok(
        entity,
        &view([
            agg("n", AggFunction::Count, 10, None),
            agg("n", AggFunction::Sum, 10, None),
            agg("label", AggFunction::Last, 10, None),
        ]),
        Vec::new(),
    );
    assert_eq!(counts(&out, "s__n_count"), vec![0, 0]);
    assert_eq!(i64s(&out, "s__n_sum"), vec![None, None]);
    assert_eq!(strings(&out, "s__label_last"), vec![None, None]);
}

#[test]
fn errors_name_the_aggregation_and_column_at_fault() {
    let entity = user_one_at(&[10]);
    let err = |aggregation: Aggregation| {
        run(
            entity.clone(),
            &view([aggregation]),
            vec![user_one_events(&[1])],
        )
        .expect_err("refused")
    };

    let missing = err(agg("price", AggFunction::Sum, 10, None));
    assert!(
        matches!(&missing, PointInTimeError::MissingColumn { table: Table::View(v), column }
            if v == "s" && column == "price"),
        "{missing:?}"
    );

    let text = err(agg("label", AggFunction::Sum, 10, None));
    assert!(
        matches!(&text, PointInTimeError::AggregationType { aggregation, column, data_type, .. }
            if aggregation == "label_sum" && column == "label" && *data_type == DataType::Utf8),
        "{text:?}"
    );
    assert_eq!(
        text.to_string(),
        "aggregation `label_sum` of stream view `s`: sum is not defined on column `label` of type Utf8; sum takes integer and floating-point columns, so cast the column or pick another function"
    );
    let times = err(agg("ts", AggFunction::Mean, 10, None));
    assert!(
        matches!(&times, PointInTimeError::AggregationType { .. }),
        "{times:?}"
    );
    let text = err(agg("label", AggFunction::Max, 10, None));
    assert!(
        text.to_string().contains("timestamp and date columns"),
        "{text}"
    );

    let zero = err(agg("n", AggFunction::Sum, 0, None));
    assert!(
        matches!(&zero, PointInTimeError::WindowLength { part: "window", .. }),
        "{zero:?}"
    );
    let zero = err(agg("n", AggFunction::Sum, 10, Some(0)));
    assert!(
        matches!(&zero, PointInTimeError::WindowLength { part: "slide", .. }),
        "{zero:?}"
    );

    // 300 years do not fit in 64 bits of nanoseconds.
    let nanos = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(arrow_array::TimestampNanosecondArray::from(vec![0])),
        ],
    )
    .expect("entity");
    let long = run(
        nanos,
        &view([agg("n", AggFunction::Sum, 300 * 365 * 86_400, None)]),
        Vec::new(),
    )
    .expect_err("too long");
    assert!(
        long.to_string()
            .contains("has a window of 109500d: it does not fit in 64 bits as nanoseconds"),
        "{long}"
    );

    // A batch that does not match the declared schema.
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("ts", seconds(), true),
            Field::new("n", DataType::Int32, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(TimestampSecondArray::from(vec![1])),
            Arc::new(Int32Array::from(vec![1])),
        ],
    )
    .expect("batch");
    let mismatch = run(
        entity.clone(),
        &view([agg("n", AggFunction::Sum, 10, None)]),
        vec![user_one_events(&[1]), bad],
    )
    .expect_err("refused");
    assert!(
        matches!(&mismatch, PointInTimeError::BatchSchema { batch: 1, column, .. } if column == "n"),
        "{mismatch:?}"
    );

    // A reader's error ends the view.
    let mut join = PointInTimeJoin::new(entity.clone(), JoinOptions::default()).expect("entity");
    let failing = RecordBatchIterator::new(
        [Err(ArrowError::IoError(
            "disk gone".into(),
            std::io::Error::other("disk gone"),
        ))],
        events_schema(),
    );
    let read = join
        .add_stream_view_reader(&view([agg("n", AggFunction::Sum, 10, None)]), failing)
        .expect_err("read error");
    assert!(
        matches!(&read, PointInTimeError::Arrow { table: Table::View(v), .. } if v == "s"),
        "{read:?}"
    );
    // A failed view leaves the join as it was.
    assert_eq!(join.finish().expect("finish").num_columns(), 2);
}

#[test]
fn short_names_collide_with_entity_columns_and_each_other() {
    let options = JoinOptions {
        feature_names: FeatureNames::Short,
        ..JoinOptions::default()
    };
    let mut join = PointInTimeJoin::new(user_one_at(&[10]), options).expect("entity");
    let named = |name: &str| Aggregation {
        name: name.to_owned(),
        ..agg("n", AggFunction::Sum, 10, None)
    };
    let err = join
        .add_stream_view(&view([named("user_id")]), &events_schema(), Vec::new())
        .expect_err("collides with the key");
    assert!(
        matches!(&err, PointInTimeError::NameCollision { name, .. } if name == "user_id"),
        "{err:?}"
    );
    let err = join
        .add_stream_view(
            &view([named("x"), named("x")]),
            &events_schema(),
            Vec::new(),
        )
        .expect_err("collides with itself");
    assert!(
        matches!(&err, PointInTimeError::NameCollision { name, .. } if name == "x"),
        "{err:?}"
    );
    join.add_stream_view(&view([named("x")]), &events_schema(), Vec::new())
        .expect("x is free");
    let out = join.finish().expect("finish");
    assert_eq!(i64s(&out, "x"), vec![None]);
}

#[test]
fn a_spec_comes_from_the_repo_definition() {
    let yaml = r#"
entities:
  - {name: user, join_keys: [user_id]}
  - {name: store, join_keys: [store_id, region]}
sources:
  - {name: clicks, path: clicks.parquet, timestamp_field: clicked_at}
stream_feature_views:
  - name: user_clicks
    entities: [user, store]
    source: clicks
    aggregations:
      - {column: clicks, function: sum, window: 1h, slide: 10m}
    ttl: 1d
"#;
    let repo = parse_repo(&[RepoFile {
        path: "repo.yaml".into(),
        text: yaml.into(),
    }])
    .expect("valid repo");
    let spec =
        StreamViewSpec::from_definition(&repo, &repo.stream_feature_views[0]).expect("resolves");
    assert_eq!(spec.name, "user_clicks");
    assert_eq!(spec.join_keys, ["user_id", "store_id", "region"]);
    assert_eq!(spec.timestamp_column, "clicked_at");
    assert_eq!(spec.aggregations, repo.stream_feature_views[0].aggregations);
    assert_eq!(spec.aggregations[0].name, "clicks_sum_1h");
    assert_eq!(
        spec.aggregations[0].slide,
        Some(Interval::from_seconds(600))
    );
}
