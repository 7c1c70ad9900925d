//! Windowed aggregations of stream feature views, computed offline: the
//! training-set values of a [`StreamFeatureView`]'s features.
//!
//! [`PointInTimeJoin::add_stream_view`] adds to every row of the entity
//! table (join keys and an event time, any order, duplicates allowed), for
//! every [`Aggregation`] of a stream view, one column computed from the
//! view's events (join keys, an event time, value columns). The online
//! store computes the same features from the live stream; the definition
//! below is the contract both must meet, value for value.
//!
//! # Definition
//!
//! **Windows.** An aggregation has a window length `W` and a slide `S`,
//! whole seconds from the definition; `S = W` when the slide is absent
//! (tumbling windows). Windows end at the multiples of `S` since the Unix
//! epoch (1970-01-01T00:00:00Z); the window that ends at `E` holds the
//! events with
//!
//! ```text
//! E - W < event_ts <= E
//! ```
//!
//! open at its start and closed at its end. (Flink and Spark windows are
//! `[start, end)`; this contract is the other way round, so that an event at
//! exactly a window's end is in it, as a feature row at exactly an entity
//! row's time is in a point-in-time join. An online implementation must
//! follow this contract, not its stream processor's default.)
//!
//! **Which window an entity row sees.** An entity row at time `t` gets the
//! aggregate of the latest window that has ended by `t`:
//!
//! ```text
//! E = floor(t / S) * S        (floor towards minus infinity, also before 1970)
//! ```
//!
//! so an event later than `E` — in particular one later than `t` — never
//! counts, and a row's value only changes when `t` crosses a multiple of
//! `S`. A row at exactly a window end sees the window that ends there.
//!
//! `S` need not divide `W`, and may even exceed it (windows with gaps
//! between them; the definition parser allows `S <= W` only). Note for the
//! online side: windows start at `E - W`, which is a multiple of `S` only
//! when `S` divides `W`; partial aggregates per bucket of `gcd(S, W)`
//! seconds, aligned to the epoch, cover every window exactly.
//!
//! **Times.** Entity and event times may be Arrow `Timestamp`s of any unit
//! and time zone, `Date32` or `Date64`, compared exactly on the finer of the
//! two units (see the [point-in-time join](super)); `W` and `S` are counted
//! in that unit and must fit in 64 bits there (a window of more than 292
//! years at nanoseconds is an error). The view's ttl plays no part: the
//! window bounds which events count.
//!
//! **Keys.** An event counts for an entity row when every join key column
//! is equal and non-null on both sides; with no join keys, every event
//! counts for every row.
//!
//! **Nulls.** Events with a null event time are ignored. Every function
//! ignores events whose value is null (`last` too: it is the last non-null
//! value). An entity row with a null time or a null join key, and a row
//! whose window holds no non-null value, gets a count of 0 and nulls for
//! every other function.
//!
//! **Functions**, over the window's non-null values of `column`:
//!
//! | function | column types | result |
//! |----------|--------------|--------|
//! | `count` | any | `Int64`, never null: how many values |
//! | `sum` | integers | `Int64`: the exact sum; a sum outside `Int64` is an error ([`PointInTimeError::SumOverflow`]), never a wrap |
//! | `sum` | `Float32`, `Float64` | `Float64` |
//! | `mean` | integers, `Float32`, `Float64` | `Float64`: the sum (exact for integers, then rounded to `Float64`) divided by the count |
//! | `min`, `max` | integers, `Float32`, `Float64`, timestamps, dates | the column's type |
//! | `last` | any | the column's type: the value of the event with the greatest event time; events with equal times go to the one later in input order (batch order, then row order) |
//!
//! Integers are `Int8`–`Int64` and `UInt8`–`UInt64`; any other pairing is
//! [`PointInTimeError::AggregationType`]. Floats follow IEEE 754: a sum
//! holding a NaN is NaN, and `min`/`max` use its totalOrder (`-0.0 < 0.0`,
//! NaN above infinity, so a window holding a NaN has a NaN max). Float sums
//! are computed in `Float64` in an unspecified order, so they can differ
//! from another summation order in the last bits; they never lose precision
//! to values outside the window.
//!
//! The output column is named `view__name` ([`FeatureNames::Full`]) or
//! `name` ([`FeatureNames::Short`]), after the aggregation's name, and
//! takes the same place as a point-in-time view's features: after the
//! columns already in the join, in the order of the aggregations.
//!
//! # Algorithm and memory
//!
//! Nothing holds the view's events: the batches stream through once, and
//! memory does not grow with their number. The entity rows are indexed by
//! join key and time, as in the point-in-time kernel. For every aggregation
//! other than `last`, the distinct window ends `E` of each key's rows are
//! *slots*, sorted; an event at `x` belongs to exactly the slots of its key
//! with `x <= E < x + W` — one contiguous run, found by binary search — and
//! is added to that run of a range-update segment tree (count, sum and
//! count, min or max per node; no subtraction, so float sums do not cancel).
//! Each entity row then reads its slot's aggregate. `last` is the
//! point-in-time kernel run on the window ends `E` with a bound of `W`,
//! on the events whose value is not null.
//!
//! Time is O((n + m) log n) for n entity rows and m events, per
//! aggregation. Memory, besides the entity table and the output:
//!
//! - the entity rows' encoded keys and their index by key and time: 24 to
//!   about 70 bytes per entity row (the more distinct keys, the more), plus
//!   the key bytes when the key is not a single integer column;
//! - per aggregation other than `last`, 4 bytes per entity row plus, per
//!   slot (at most one per entity row), 8 bytes and two tree nodes of 8
//!   bytes (`count`), 16 (float `sum`, `mean`, `min`, `max`) or 32
//!   (integer ones);
//! - per `last`, the point-in-time kernel's state: another entity index and
//!   a merge buffer (see the [point-in-time join's memory](super));
//! - the batch being read, and a few vectors of its length.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, TimestampSecondArray};
//! use arrow_schema::{DataType, Field, Schema, TimeUnit};
//! use keel_features::definition::{AggFunction, Aggregation, Interval};
//! use keel_features::point_in_time::{JoinOptions, PointInTimeJoin, StreamViewSpec};
//!
//! let ts = DataType::Timestamp(TimeUnit::Second, None);
//! let entity = RecordBatch::try_new(
//!     Arc::new(Schema::new(vec![
//!         Field::new("user_id", DataType::Int64, false),
//!         Field::new("event_timestamp", ts.clone(), false),
//!     ])),
//!     vec![
//!         Arc::new(Int64Array::from(vec![1, 1, 1])),
//!         Arc::new(TimestampSecondArray::from(vec![59, 60, 179])),
//!     ],
//! )?;
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("user_id", DataType::Int64, false),
//!     Field::new("ts", ts, false),
//!     Field::new("amount", DataType::Float64, true),
//! ]));
//! let events = RecordBatch::try_new(
//!     schema.clone(),
//!     vec![
//!         Arc::new(Int64Array::from(vec![1, 1, 1, 1])),
//!         Arc::new(TimestampSecondArray::from(vec![0, 10, 60, 150])),
//!         Arc::new(Float64Array::from(vec![1.0, 2.0, 4.0, 8.0])),
//!     ],
//! )?;
//!
//! // The sum over two minutes, advancing every minute.
//! let view = StreamViewSpec::new("payments", ["user_id"], "ts").aggregations([Aggregation {
//!     column: "amount".into(),
//!     function: AggFunction::Sum,
//!     window: Interval::from_seconds(120),
//!     slide: Some(Interval::from_seconds(60)),
//!     name: "amount_sum_2m".into(),
//! }]);
//! let mut join = PointInTimeJoin::new(entity, JoinOptions::default())?;
//! join.add_stream_view(&view, &schema, [events])?;
//! let out = join.finish()?;
//!
//! let sum = out.column_by_name("payments__amount_sum_2m").expect("feature column");
//! let sum = sum.as_any().downcast_ref::<Float64Array>().expect("f64");
//! // The latest window that has ended by 59 is (-120, 0]: the event at 0.
//! // By 60 it is (-60, 60]: 0, 10 and 60. By 179 it is (0, 120]: 10 and
//! // 60 (the event at 150 waits for the window that ends at 180).
//! assert_eq!(sum.iter().collect::<Vec<_>>(), vec![Some(1.0), Some(7.0), Some(6.0)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`FeatureNames::Full`]: super::FeatureNames::Full
//! [`FeatureNames::Short`]: super::FeatureNames::Short

mod tree;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, Float32Array, Float64Array, Int64Array, PrimitiveArray,
    RecordBatch, RecordBatchReader,
};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::definition::{AggFunction, Aggregation, Interval, Repo, StreamFeatureView};

use super::kernel::{
    EntityIndex, KeyEncoder, Keys, MAX_ROWS, ViewJoin, ViewLayout, is_valid, valid_rows,
};
use super::time::{Scale, TimeKind, tick_array, ticks};
use super::{PointInTimeError, PointInTimeJoin, Table, view_field};
use tree::{Count, Extreme, Node, RangeTree, Total};

/// What the windowed aggregation needs to know about one stream feature
/// view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamViewSpec {
    /// The view's name: the prefix of its full feature names.
    pub name: String,
    /// Columns present in both the entity table and the view, with the same
    /// Arrow type. An empty list aggregates all of the view's events
    /// together for every entity row.
    pub join_keys: Vec<String>,
    /// The view's event time column.
    pub timestamp_column: String,
    /// One output column each, in this order.
    pub aggregations: Vec<Aggregation>,
}

impl StreamViewSpec {
    /// A view without aggregations yet.
    pub fn new<K: Into<String>>(
        name: impl Into<String>,
        join_keys: impl IntoIterator<Item = K>,
        timestamp_column: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            join_keys: join_keys.into_iter().map(Into::into).collect(),
            timestamp_column: timestamp_column.into(),
            aggregations: Vec::new(),
        }
    }

    /// These aggregations, in this order.
    pub fn aggregations(mut self, aggregations: impl IntoIterator<Item = Aggregation>) -> Self {
        self.aggregations = aggregations.into_iter().collect();
        self
    }

    /// The spec of a stream view of `repo`: its entities' join keys in
    /// order, its timestamp field (else its source's) and all of its
    /// aggregations. `None` when an entity or the source is not in `repo`,
    /// which a validated repo rules out.
    pub fn from_definition(repo: &Repo, view: &StreamFeatureView) -> Option<Self> {
        let mut join_keys = Vec::new();
        for entity in &view.entities {
            join_keys.extend(repo.entity(entity)?.join_keys.iter().cloned());
        }
        let timestamp_column = match &view.timestamp_field {
            Some(field) => field.clone(),
            None => repo.source(&view.source)?.timestamp_field.clone(),
        };
        Some(Self {
            name: view.name.clone(),
            join_keys,
            timestamp_column,
            aggregations: view.aggregations.clone(),
        })
    }
}

impl PointInTimeJoin {
    /// Adds one column per aggregation of a stream view whose batches all
    /// have `schema` (columns the aggregations do not use may differ or be
    /// absent). See the [module docs](self) for what each value is.
    ///
    /// The batches are consumed one at a time and not kept; a view without
    /// aggregations adds no column and reads no batch. A failed call leaves
    /// the join as it was.
    pub fn add_stream_view(
        &mut self,
        view: &StreamViewSpec,
        schema: &Schema,
        batches: impl IntoIterator<Item = RecordBatch>,
    ) -> Result<&mut Self, PointInTimeError> {
        self.aggregate_view(view, schema, batches.into_iter().map(Ok))
    }

    /// [`PointInTimeJoin::add_stream_view`] over an Arrow reader; a read
    /// error ends it with [`PointInTimeError::Arrow`].
    pub fn add_stream_view_reader(
        &mut self,
        view: &StreamViewSpec,
        reader: impl RecordBatchReader,
    ) -> Result<&mut Self, PointInTimeError> {
        let schema = reader.schema();
        self.aggregate_view(view, &schema, reader)
    }

    fn aggregate_view(
        &mut self,
        view: &StreamViewSpec,
        schema: &Schema,
        batches: impl Iterator<Item = Result<RecordBatch, ArrowError>>,
    ) -> Result<&mut Self, PointInTimeError> {
        let table = Table::View(view.name.clone());
        let arrow_err = |table: &Table| {
            let table = table.clone();
            move |source| PointInTimeError::Arrow { table, source }
        };

        // Check everything the batches will need before reading one.
        let (key_types, entity_keys) = self.join_keys(&view.name, &view.join_keys, schema)?;
        let time_field = view_field(schema, &table, &view.timestamp_column)?;
        let time_kind = TimeKind::of(&table, &view.timestamp_column, time_field.data_type())?;
        let scale = Scale::finest(self.time_kind, time_kind);

        let mut declared: Vec<(String, DataType)> = view
            .join_keys
            .iter()
            .cloned()
            .zip(key_types.clone())
            .collect();
        declared.push((
            view.timestamp_column.clone(),
            time_field.data_type().clone(),
        ));
        let mut plans = Vec::with_capacity(view.aggregations.len());
        let mut new_names: Vec<(String, String)> = Vec::with_capacity(view.aggregations.len());
        let mut out_fields = Vec::with_capacity(view.aggregations.len());
        for aggregation in &view.aggregations {
            let input = view_field(schema, &table, &aggregation.column)?.data_type();
            let kind = Kind::of(aggregation.function, input).map_err(|accepts| {
                PointInTimeError::AggregationType {
                    view: view.name.clone(),
                    aggregation: aggregation.name.clone(),
                    function: aggregation.function,
                    column: aggregation.column.clone(),
                    data_type: input.clone(),
                    accepts,
                }
            })?;
            let ticks = |part, length| window_ticks(&view.name, aggregation, part, length, scale);
            let window = ticks("window", aggregation.window)?;
            let slide = ticks("slide", aggregation.slide.unwrap_or(aggregation.window))?;
            let (name, origin) = self.output_name(&view.name, &aggregation.name, &new_names)?;
            out_fields.push(Arc::new(Field::new(
                name.clone(),
                kind.output_type(input),
                kind != Kind::Count,
            )));
            new_names.push((name, origin));
            declared.push((aggregation.column.clone(), input.clone()));
            plans.push(Plan {
                kind,
                input: input.clone(),
                window,
                slide,
            });
        }

        // The entity side, on this view's time scale.
        let entity_rows = self.entity.num_rows();
        let entity_time = self.entity.column(self.time_index);
        let entity_times = ticks(
            entity_time.as_ref(),
            self.time_kind,
            scale,
            &Table::Entity,
            &self.options.event_timestamp_column,
        )?;
        let encoder = KeyEncoder::new(&key_types).map_err(arrow_err(&Table::Entity))?;
        let entity_keys_encoded = encoder
            .encode(&entity_keys)
            .map_err(arrow_err(&Table::Entity))?;
        let index = EntityIndex::build(
            &entity_keys_encoded,
            &entity_keys,
            entity_time.as_ref(),
            &entity_times,
        );
        let entity_time_nulls = entity_time.logical_nulls();
        let mut states = Vec::with_capacity(plans.len());
        for plan in &plans {
            states.push(match plan.kind {
                Kind::Last => {
                    let index = end_index(
                        &entity_keys_encoded,
                        &entity_keys,
                        &entity_times,
                        &entity_time_nulls,
                        plan.slide,
                    );
                    // Never fewer than the entity rows, as for a
                    // point-in-time view.
                    let merge_rows = self.options.merge_rows.max(entity_rows).max(1);
                    let (schema, layout) =
                        latest_layout(&table, &key_types, plan, scale, merge_rows);
                    let input = vec![plan.input.clone()];
                    let join = ViewJoin::new(layout, index, &encoder, input, entity_rows);
                    State::Latest(Box::new(Latest { schema, join }))
                }
                _ => State::Windowed(Windowed::new(plan, &index, entity_rows)),
            });
        }

        drop(entity_times);

        // The events, one batch at a time.
        for (batch_number, batch) in batches.enumerate() {
            if states.is_empty() {
                break;
            }
            let batch = batch.map_err(arrow_err(&table))?;
            let rows = batch.num_rows();
            if rows > MAX_ROWS {
                return Err(PointInTimeError::TooManyRows {
                    table: table.clone(),
                    rows,
                    max: MAX_ROWS,
                });
            }
            let column =
                |name: &str| batch_column(&batch, name, &declared, &view.name, batch_number);
            let key_columns = view
                .join_keys
                .iter()
                .map(|n| column(n))
                .collect::<Result<Vec<_>, _>>()?;
            let time_column = column(&view.timestamp_column)?;
            let values = view
                .aggregations
                .iter()
                .map(|a| column(&a.column))
                .collect::<Result<Vec<_>, _>>()?;
            if rows == 0 || index.group_count() == 0 {
                continue;
            }

            let keys = encoder.encode(&key_columns).map_err(arrow_err(&table))?;
            let valid = valid_rows(&key_columns, time_column.as_ref());
            let times: ScalarBuffer<i64> = ticks(
                time_column.as_ref(),
                time_kind,
                scale,
                &table,
                &view.timestamp_column,
            )?
            .into();
            // The rows that may count, by key then input order: the
            // aggregations then walk their slots and trees in order rather
            // than jumping to a random key at every event.
            let mut order: Vec<u64> = (0..rows)
                .filter(|&i| is_valid(&valid, i))
                .filter_map(|i| {
                    let group = index.group(&keys, i)?;
                    Some(u64::from(group) << 32 | i as u64)
                })
                .collect();
            order.sort_unstable();
            let events = Events {
                order: &order,
                times: &times,
            };
            let time_nulls = time_column.logical_nulls();
            for (state, value) in states.iter_mut().zip(&values) {
                match state {
                    State::Windowed(windowed) => windowed
                        .add(&events, value.as_ref())
                        .map_err(arrow_err(&table))?,
                    State::Latest(latest) => {
                        // The kernel skips rows with a null time: give the
                        // rows with a null value one too.
                        let nulls =
                            NullBuffer::union(time_nulls.as_ref(), value.logical_nulls().as_ref());
                        let mut columns = key_columns.clone();
                        columns.push(tick_array(scale, times.clone(), nulls));
                        columns.push(value.clone());
                        let batch = RecordBatch::try_new(latest.schema.clone(), columns)
                            .map_err(arrow_err(&table))?;
                        latest.join.push(&batch)?;
                    }
                }
            }
        }

        let mut columns = Vec::with_capacity(states.len());
        for ((state, plan), aggregation) in states.into_iter().zip(&plans).zip(&view.aggregations) {
            columns.push(match state {
                State::Windowed(windowed) => windowed
                    .finish(plan)
                    .map_err(|overflow| overflow.into_error(&view.name, aggregation))?,
                State::Latest(latest) => {
                    let mut out = latest.join.finish()?;
                    out.pop().ok_or_else(|| PointInTimeError::Arrow {
                        table: table.clone(),
                        source: ArrowError::ComputeError(
                            "the kernel returned no column for `last`".to_owned(),
                        ),
                    })?
                }
            });
        }

        self.fields.extend(out_fields);
        self.columns.extend(columns);
        self.names.extend(new_names);
        Ok(self)
    }
}

/// Marks an entity row that sees no window.
const NO_SLOT: u32 = u32::MAX;

/// `length` (a window or a slide) in ticks of `scale`.
fn window_ticks(
    view: &str,
    aggregation: &Aggregation,
    part: &'static str,
    length: Interval,
    scale: Scale,
) -> Result<i64, PointInTimeError> {
    let problem = |fix: String| PointInTimeError::WindowLength {
        view: view.to_owned(),
        aggregation: aggregation.name.clone(),
        part,
        length,
        fix,
    };
    if length.is_zero() {
        return Err(problem(format!(
            "a {part} must be longer than 0 (leave the slide out for a tumbling window)"
        )));
    }
    scale.seconds_ticks(length.seconds()).ok_or_else(|| {
        let unit = match scale.unit() {
            TimeUnit::Second => "seconds",
            TimeUnit::Millisecond => "milliseconds",
            TimeUnit::Microsecond => "microseconds",
            TimeUnit::Nanosecond => "nanoseconds",
        };
        problem(format!(
            "it does not fit in 64 bits as {unit}, the join's time unit; shorten it or store coarser timestamps"
        ))
    })
}

/// The latest window end at or before `time`: `floor(time / slide) *
/// slide`, unless that is before the first representable time.
fn window_end(time: i64, slide: i64) -> Option<i64> {
    let slide = i128::from(slide);
    i64::try_from(i128::from(time).div_euclid(slide) * slide).ok()
}

/// A column of a batch, checked against the type the view's schema gave.
fn batch_column(
    batch: &RecordBatch,
    name: &str,
    declared: &[(String, DataType)],
    view: &str,
    batch_number: usize,
) -> Result<ArrayRef, PointInTimeError> {
    let schema = batch.schema_ref();
    let (index, field) =
        schema
            .column_with_name(name)
            .ok_or_else(|| PointInTimeError::MissingColumn {
                table: Table::View(view.to_owned()),
                column: name.to_owned(),
            })?;
    if let Some((_, expected)) = declared.iter().find(|(n, _)| n == name)
        && expected != field.data_type()
    {
        return Err(PointInTimeError::BatchSchema {
            view: view.to_owned(),
            batch: batch_number,
            column: name.to_owned(),
            expected: expected.clone(),
            found: field.data_type().clone(),
        });
    }
    Ok(batch.column(index).clone())
}

/// How an aggregation's values are read: exactly as integers (also times
/// and dates, for min and max) or as floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Int,
    Float,
}

/// An aggregation function resolved against its column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Count,
    Sum(Domain),
    Mean(Domain),
    Min(Domain),
    Max(Domain),
    Last,
}

const NUMBERS: &str = "integer and floating-point columns";
const ORDERED: &str = "integer, floating-point, timestamp and date columns";

impl Kind {
    /// The kind, or the types `function` takes.
    fn of(function: AggFunction, input: &DataType) -> Result<Self, &'static str> {
        let number = match input {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Some(Domain::Int),
            DataType::Float32 | DataType::Float64 => Some(Domain::Float),
            _ => None,
        };
        let ordered = match input {
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => Some(Domain::Int),
            _ => number,
        };
        match function {
            AggFunction::Count => Ok(Kind::Count),
            AggFunction::Last => Ok(Kind::Last),
            AggFunction::Sum => number.map(Kind::Sum).ok_or(NUMBERS),
            AggFunction::Mean => number.map(Kind::Mean).ok_or(NUMBERS),
            AggFunction::Min => ordered.map(Kind::Min).ok_or(ORDERED),
            AggFunction::Max => ordered.map(Kind::Max).ok_or(ORDERED),
        }
    }

    fn output_type(self, input: &DataType) -> DataType {
        match self {
            Kind::Count | Kind::Sum(Domain::Int) => DataType::Int64,
            Kind::Sum(Domain::Float) | Kind::Mean(_) => DataType::Float64,
            Kind::Min(_) | Kind::Max(_) | Kind::Last => input.clone(),
        }
    }
}

/// One aggregation, checked, with its window and slide in ticks.
struct Plan {
    kind: Kind,
    input: DataType,
    window: i64,
    slide: i64,
}

enum State<'a> {
    Windowed(Windowed),
    Latest(Box<Latest<'a>>),
}

/// The rows of one batch that may count.
struct Events<'b> {
    /// `group << 32 | row`, increasing.
    order: &'b [u64],
    /// Every row's event time.
    times: &'b [i64],
}

/// The window ends the entity rows see, per join key.
struct Slots {
    /// Each group's distinct window ends, increasing; groups in order.
    ends: Vec<i64>,
    /// `ends[offsets[g]..offsets[g + 1]]` are group `g`'s.
    offsets: Vec<u32>,
    /// Each entity row's slot, or [`NO_SLOT`].
    row_slot: Vec<u32>,
}

impl Slots {
    fn build(index: &EntityIndex<'_>, entity_rows: usize, slide: i64) -> Self {
        let groups = index.group_count();
        let mut ends = Vec::new();
        let mut offsets = Vec::with_capacity(groups + 1);
        let mut row_slot = vec![NO_SLOT; entity_rows];
        for group in 0..groups as u32 {
            offsets.push(ends.len() as u32);
            let first = ends.len();
            // Members are sorted by time, so their window ends are too.
            for &(time, row) in index.members(group) {
                let Some(end) = window_end(time, slide) else {
                    continue;
                };
                if ends.len() == first || ends.last() != Some(&end) {
                    ends.push(end);
                }
                row_slot[row as usize] = (ends.len() - 1) as u32;
            }
        }
        offsets.push(ends.len() as u32);
        Self {
            ends,
            offsets,
            row_slot,
        }
    }

    /// The slots of `group` whose window holds an event at `time`: those
    /// with `time <= end < time + window`.
    fn covering(&self, group: u32, time: i64, window: i64) -> std::ops::Range<usize> {
        let g = group as usize;
        let first = self.offsets[g] as usize;
        let ends = &self.ends[first..self.offsets[g + 1] as usize];
        let lo = count_below(ends, time);
        let hi = match time.checked_add(window) {
            Some(limit) => count_below(ends, limit),
            // Past the last representable time: every end is below.
            None => ends.len(),
        };
        first + lo..first + hi
    }
}

/// How many of the increasing `ends` are below `bound`. A key usually has
/// a handful of slots: counting them all, without branches, beats a binary
/// search's unpredictable ones.
fn count_below(ends: &[i64], bound: i64) -> usize {
    if ends.len() <= 32 {
        ends.iter().map(|&end| usize::from(end < bound)).sum()
    } else {
        ends.partition_point(|&end| end < bound)
    }
}

/// The state of an aggregation other than `last`: one tree over the slots.
struct Windowed {
    window: i64,
    slots: Slots,
    tree: Tree,
}

enum Tree {
    Count(RangeTree<Count>),
    IntTotal(RangeTree<Total<i128>>),
    FloatTotal(RangeTree<Total<f64>>),
    IntMin(RangeTree<Extreme<i128, false>>),
    IntMax(RangeTree<Extreme<i128, true>>),
    FloatMin(RangeTree<Extreme<f64, false>>),
    FloatMax(RangeTree<Extreme<f64, true>>),
}

/// An integer sum that does not fit in `Int64`, before the error names
/// its view.
struct Overflow(i128);

impl Overflow {
    fn into_error(self, view: &str, aggregation: &Aggregation) -> PointInTimeError {
        PointInTimeError::SumOverflow {
            view: view.to_owned(),
            aggregation: aggregation.name.clone(),
            column: aggregation.column.clone(),
            sum: self.0,
        }
    }
}

impl Windowed {
    fn new(plan: &Plan, index: &EntityIndex<'_>, entity_rows: usize) -> Self {
        let slots = Slots::build(index, entity_rows, plan.slide);
        let n = slots.ends.len();
        let tree = match plan.kind {
            Kind::Sum(Domain::Int) | Kind::Mean(Domain::Int) => Tree::IntTotal(RangeTree::new(n)),
            Kind::Sum(Domain::Float) | Kind::Mean(Domain::Float) => {
                Tree::FloatTotal(RangeTree::new(n))
            }
            Kind::Min(Domain::Int) => Tree::IntMin(RangeTree::new(n)),
            Kind::Max(Domain::Int) => Tree::IntMax(RangeTree::new(n)),
            Kind::Min(Domain::Float) => Tree::FloatMin(RangeTree::new(n)),
            Kind::Max(Domain::Float) => Tree::FloatMax(RangeTree::new(n)),
            // `last` has its own state; a count tree keeps this total.
            Kind::Count | Kind::Last => Tree::Count(RangeTree::new(n)),
        };
        Self {
            window: plan.window,
            slots,
            tree,
        }
    }

    /// Adds one batch's events, with their values in `column`.
    fn add(&mut self, events: &Events<'_>, column: &dyn Array) -> Result<(), ArrowError> {
        let nulls = column.logical_nulls();
        let (slots, window) = (&self.slots, self.window);
        match &mut self.tree {
            Tree::Count(tree) => feed(tree, slots, window, events, &nulls, |_| Count(1)),
            Tree::IntTotal(tree) => {
                let values = int_values(column)?;
                feed(tree, slots, window, events, &nulls, |i| Total {
                    sum: values[i],
                    count: 1,
                });
            }
            Tree::FloatTotal(tree) => {
                let values = float_values(column)?;
                feed(tree, slots, window, events, &nulls, |i| Total {
                    sum: values[i],
                    count: 1,
                });
            }
            Tree::IntMin(tree) => {
                let values = int_values(column)?;
                feed(tree, slots, window, events, &nulls, |i| {
                    Extreme(Some(values[i]))
                });
            }
            Tree::IntMax(tree) => {
                let values = int_values(column)?;
                feed(tree, slots, window, events, &nulls, |i| {
                    Extreme(Some(values[i]))
                });
            }
            Tree::FloatMin(tree) => {
                let values = float_values(column)?;
                feed(tree, slots, window, events, &nulls, |i| {
                    Extreme(Some(values[i]))
                });
            }
            Tree::FloatMax(tree) => {
                let values = float_values(column)?;
                feed(tree, slots, window, events, &nulls, |i| {
                    Extreme(Some(values[i]))
                });
            }
        }
        Ok(())
    }

    /// Every entity row's value, in entity order.
    fn finish(self, plan: &Plan) -> Result<ArrayRef, Overflow> {
        let slots = &self.slots;
        Ok(match (&self.tree, plan.kind) {
            (Tree::Count(tree), _) => Arc::new(Int64Array::from_iter_values(
                per_row(tree, slots).map(|c| c.0),
            )),
            (Tree::IntTotal(tree), Kind::Mean(_)) => Arc::new(Float64Array::from_iter(
                per_row(tree, slots).map(|t| (t.count > 0).then(|| t.sum as f64 / t.count as f64)),
            )),
            (Tree::IntTotal(tree), _) => {
                let sums = per_row(tree, slots)
                    .map(|t| match t.count {
                        0 => Ok(None),
                        _ => i64::try_from(t.sum).map(Some).map_err(|_| Overflow(t.sum)),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(Int64Array::from(sums))
            }
            (Tree::FloatTotal(tree), Kind::Mean(_)) => Arc::new(Float64Array::from_iter(
                per_row(tree, slots).map(|t| (t.count > 0).then(|| t.sum / t.count as f64)),
            )),
            (Tree::FloatTotal(tree), _) => Arc::new(Float64Array::from_iter(
                per_row(tree, slots).map(|t| (t.count > 0).then_some(t.sum)),
            )),
            (Tree::IntMin(tree), _) => narrow(per_row(tree, slots).map(|e| e.0), &plan.input),
            (Tree::IntMax(tree), _) => narrow(per_row(tree, slots).map(|e| e.0), &plan.input),
            (Tree::FloatMin(tree), _) => floats(per_row(tree, slots).map(|e| e.0), &plan.input),
            (Tree::FloatMax(tree), _) => floats(per_row(tree, slots).map(|e| e.0), &plan.input),
        })
    }
}

/// Adds each event with a group and a non-null value to the slots whose
/// windows hold it.
fn feed<N: Node>(
    tree: &mut RangeTree<N>,
    slots: &Slots,
    window: i64,
    events: &Events<'_>,
    nulls: &Option<NullBuffer>,
    value: impl Fn(usize) -> N,
) {
    for &entry in events.order {
        let (group, i) = ((entry >> 32) as u32, entry as u32 as usize);
        if !is_valid(nulls, i) {
            continue;
        }
        let covered = slots.covering(group, events.times[i], window);
        if !covered.is_empty() {
            tree.add(covered, value(i));
        }
    }
}

/// Each entity row's aggregate, in entity order.
fn per_row<'t, N: Node>(tree: &'t RangeTree<N>, slots: &'t Slots) -> impl Iterator<Item = N> + 't {
    slots.row_slot.iter().map(|&slot| match slot {
        NO_SLOT => N::EMPTY,
        slot => tree.get(slot as usize),
    })
}

/// An integer-like column's values (null slots hold anything).
fn int_values(column: &dyn Array) -> Result<Vec<i128>, ArrowError> {
    fn widen<T>(column: &dyn Array) -> Vec<i128>
    where
        T: ArrowPrimitiveType,
        T::Native: Into<i128>,
    {
        let values = column.as_primitive::<T>().values();
        values.iter().map(|&v| v.into()).collect()
    }
    Ok(match column.data_type() {
        DataType::Int8 => widen::<Int8Type>(column),
        DataType::Int16 => widen::<Int16Type>(column),
        DataType::Int32 => widen::<Int32Type>(column),
        DataType::Int64 => widen::<Int64Type>(column),
        DataType::UInt8 => widen::<UInt8Type>(column),
        DataType::UInt16 => widen::<UInt16Type>(column),
        DataType::UInt32 => widen::<UInt32Type>(column),
        DataType::UInt64 => widen::<UInt64Type>(column),
        DataType::Timestamp(TimeUnit::Second, _) => widen::<TimestampSecondType>(column),
        DataType::Timestamp(TimeUnit::Millisecond, _) => widen::<TimestampMillisecondType>(column),
        DataType::Timestamp(TimeUnit::Microsecond, _) => widen::<TimestampMicrosecondType>(column),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => widen::<TimestampNanosecondType>(column),
        DataType::Date32 => widen::<Date32Type>(column),
        DataType::Date64 => widen::<Date64Type>(column),
        other => return Err(unsupported(other)),
    })
}

/// A floating-point column's values (null slots hold anything).
fn float_values(column: &dyn Array) -> Result<Vec<f64>, ArrowError> {
    Ok(match column.data_type() {
        DataType::Float32 => column
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DataType::Float64 => column.as_primitive::<Float64Type>().values().to_vec(),
        other => return Err(unsupported(other)),
    })
}

/// Types are checked before any batch is read; this is the error should
/// that ever be wrong.
fn unsupported(data_type: &DataType) -> ArrowError {
    ArrowError::InvalidArgumentError(format!(
        "a windowed aggregation cannot read a column of type {data_type}"
    ))
}

/// Integer-like results back in the column's own type (each value came
/// from that type, so it fits).
fn narrow(values: impl Iterator<Item = Option<i128>>, data_type: &DataType) -> ArrayRef {
    fn build<T>(values: impl Iterator<Item = Option<i128>>, data_type: &DataType) -> ArrayRef
    where
        T: ArrowPrimitiveType,
        T::Native: TryFrom<i128>,
    {
        let array: PrimitiveArray<T> = values
            .map(|v| v.and_then(|v| T::Native::try_from(v).ok()))
            .collect();
        Arc::new(array.with_data_type(data_type.clone()))
    }
    match data_type {
        DataType::Int8 => build::<Int8Type>(values, data_type),
        DataType::Int16 => build::<Int16Type>(values, data_type),
        DataType::Int32 => build::<Int32Type>(values, data_type),
        DataType::UInt8 => build::<UInt8Type>(values, data_type),
        DataType::UInt16 => build::<UInt16Type>(values, data_type),
        DataType::UInt32 => build::<UInt32Type>(values, data_type),
        DataType::UInt64 => build::<UInt64Type>(values, data_type),
        DataType::Timestamp(TimeUnit::Second, _) => build::<TimestampSecondType>(values, data_type),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            build::<TimestampMillisecondType>(values, data_type)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            build::<TimestampMicrosecondType>(values, data_type)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            build::<TimestampNanosecondType>(values, data_type)
        }
        DataType::Date32 => build::<Date32Type>(values, data_type),
        DataType::Date64 => build::<Date64Type>(values, data_type),
        // Int64 (nothing else reaches here).
        _ => build::<Int64Type>(values, &DataType::Int64),
    }
}

/// Float results back in the column's own type (`Float32` values widened
/// to `Float64` narrow back exactly).
fn floats(values: impl Iterator<Item = Option<f64>>, data_type: &DataType) -> ArrayRef {
    match data_type {
        DataType::Float32 => Arc::new(Float32Array::from_iter(values.map(|v| v.map(|v| v as f32)))),
        _ => Arc::new(Float64Array::from_iter(values)),
    }
}

/// The state of a `last`: the point-in-time kernel, fed each batch's rows
/// re-labelled as `key0…`, `time` (ticks of the join's scale, null where
/// the value is null) and `value`.
struct Latest<'a> {
    schema: SchemaRef,
    join: ViewJoin<'a>,
}

/// The entity rows indexed by join key and window end; rows whose time is
/// null, or whose window end is before the first representable time, see
/// no event.
fn end_index<'k>(
    keys: &'k Keys,
    key_columns: &[ArrayRef],
    times: &[i64],
    time_nulls: &Option<NullBuffer>,
    slide: i64,
) -> EntityIndex<'k> {
    let mut ends = vec![0_i64; times.len()];
    let mut valid = vec![false; times.len()];
    for (row, &time) in times.iter().enumerate() {
        if is_valid(time_nulls, row)
            && let Some(end) = window_end(time, slide)
        {
            ends[row] = end;
            valid[row] = true;
        }
    }
    let end_column = Int64Array::new(
        ScalarBuffer::from(ends.clone()),
        Some(NullBuffer::from(valid)),
    );
    EntityIndex::build(keys, key_columns, &end_column, &ends)
}

/// The schema of the batches a `last` feeds the kernel, and the kernel's
/// layout for them.
fn latest_layout(
    table: &Table,
    key_types: &[DataType],
    plan: &Plan,
    scale: Scale,
    merge_rows: usize,
) -> (SchemaRef, ViewLayout) {
    let key_names: Vec<String> = (0..key_types.len()).map(|i| format!("key{i}")).collect();
    let time_type = DataType::Timestamp(scale.unit(), None);
    let mut declared: Vec<(String, DataType)> = key_names
        .iter()
        .cloned()
        .zip(key_types.iter().cloned())
        .collect();
    declared.push(("time".to_owned(), time_type));
    declared.push(("value".to_owned(), plan.input.clone()));
    let schema = Arc::new(Schema::new(
        declared
            .iter()
            .map(|(name, data_type)| Field::new(name, data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let layout = ViewLayout {
        table: table.clone(),
        key_names,
        time_name: "time".to_owned(),
        time_kind: TimeKind::Timestamp(scale.unit()),
        created: None,
        feature_names: vec!["value".to_owned()],
        declared,
        scale,
        // `ts >= E - (W - 1)` is `ts > E - W` on integer ticks; a window is
        // at least one tick.
        ttl_ticks: Some(plan.window - 1),
        merge_rows,
    };
    (schema, layout)
}
