//! Point-in-time ("as-of") joins: the training-set builder of the offline
//! feature store.
//!
//! A training set must only contain feature values that were known when
//! each label was observed, or the model learns from the future. Given an
//! **entity table** — join key columns and an `event_timestamp` column, one
//! row per label, in any order, duplicates allowed — and for each **feature
//! view** a table of timestamped feature rows and a **ttl**, the join adds to
//! every entity row, for every view, the feature values of the view's row
//! that
//!
//! - has the same join key values (every key column equal; a null key
//!   never matches anything, on either side),
//! - has `row_ts <= event_ts` and, unless the ttl is zero,
//!   `row_ts >= event_ts - ttl` (both bounds inclusive; a zero ttl means no
//!   lower bound), and
//! - is the **latest** such row by event time. Ties on event time go to the
//!   row with the larger created timestamp (a null created timestamp loses
//!   to any value); rows still tied — or all ties of a view without a
//!   created timestamp column — go to the row that came **later in input
//!   order** (batch order, then row order within a batch).
//!
//! Feature rows with a null event timestamp are ignored; an entity row with
//! a null event timestamp matches nothing. This is Feast's
//! `get_historical_features` contract.
//!
//! The output has exactly the entity table's rows in their original order —
//! an entity row without a match keeps its place with nulls in that view's
//! columns — with the entity columns first, unchanged, then each view's
//! feature columns in the order views were added, named `view__feature`
//! ([`FeatureNames::Full`]) or by the bare feature name
//! ([`FeatureNames::Short`]; two output columns with one name are an error,
//! never a silent overwrite).
//!
//! Times may be Arrow `Timestamp` of any unit, with or without a time zone
//! (a timestamp is a UTC instant whatever its zone label), `Date32` or
//! `Date64`. The entity's and a view's times are compared after converting
//! both to the finer of the two units, which is exact. Feature columns may be
//! of any Arrow type.
//!
//! # Streaming and memory
//!
//! [`PointInTimeJoin::add_view`] consumes a view's batches one at a time
//! (from an iterator or an Arrow [`RecordBatchReader`], such as a Parquet
//! reader) and never needs them all at once. While it runs it holds, besides
//! the entity table and the output built so far:
//!
//! - an index of the entity table on this view's join key: about 60 bytes
//!   per entity row (group number, event time, best candidate so far, hash
//!   map slot), plus the encoded key bytes when the key is not a single
//!   integer column;
//! - the feature values of the current best candidates: at most twice the
//!   entity rows plus one merge buffer's worth of rows of the feature
//!   columns (older winners are compacted away);
//! - one **merge buffer** of `max(merge_rows, entity rows)` feature rows (or
//!   one batch, if larger): 24 bytes per row that may match (48 while it is
//!   being merged) plus the buffered batches' feature columns, which are
//!   shared with the batches, not copied.
//!
//! Nothing grows with the number of feature rows, so a view larger than
//! memory joins in one pass. Joining 10,000,000 events of one view (two
//! numeric features, batches of 65,536 rows generated on the fly) to
//! 100,000 entity rows peaks at about 40 MiB of resident memory for the
//! whole process (see the crate's `point_in_time` benchmark). Batches may
//! arrive in any order; when they arrive partitioned by key range (as a
//! Parquet file sorted by key does), each merge only touches the entity rows
//! of the keys it saw.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampSecondArray};
//! use arrow_schema::{DataType, Field, Schema, TimeUnit};
//! use keel_features::point_in_time::{JoinOptions, PointInTimeJoin, ViewSpec};
//!
//! let ts = DataType::Timestamp(TimeUnit::Second, None);
//! let entity = RecordBatch::try_new(
//!     Arc::new(Schema::new(vec![
//!         Field::new("user_id", DataType::Int64, false),
//!         Field::new("event_timestamp", ts.clone(), false),
//!     ])),
//!     vec![
//!         Arc::new(Int64Array::from(vec![1, 1, 2])),
//!         Arc::new(TimestampSecondArray::from(vec![100, 250, 100])),
//!     ],
//! )?;
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("user_id", DataType::Int64, false),
//!     Field::new("ts", ts, false),
//!     Field::new("spend", DataType::Float64, true),
//! ]));
//! let events = RecordBatch::try_new(
//!     schema.clone(),
//!     vec![
//!         Arc::new(Int64Array::from(vec![1, 1, 2])),
//!         Arc::new(TimestampSecondArray::from(vec![90, 200, 150])),
//!         Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
//!     ],
//! )?;
//!
//! let mut join = PointInTimeJoin::new(entity, JoinOptions::default())?;
//! let view = ViewSpec::new("spending", ["user_id"], "ts").ttl(Duration::from_secs(100));
//! join.add_view(&view, &schema, [events])?;
//! let out = join.finish()?;
//!
//! let spend = out.column_by_name("spending__spend").expect("feature column");
//! let spend = spend.as_any().downcast_ref::<Float64Array>().expect("f64");
//! // user 1 at 100 sees the row of 90; at 250 the row of 200;
//! // user 2 at 100 has only a row from the future: null.
//! assert_eq!(spend.iter().collect::<Vec<_>>(), vec![Some(1.0), Some(2.0), None]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod kernel;
mod time;
pub mod window;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Schema};

pub use error::{PointInTimeError, Table};
pub use window::StreamViewSpec;

use kernel::{EntityIndex, KeyEncoder, MAX_ROWS, ViewJoin, ViewLayout};
use time::{Scale, TimeKind, ticks};

/// Feast's name for the entity table's event time column.
pub const DEFAULT_EVENT_TIMESTAMP: &str = "event_timestamp";

/// How feature columns are named in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureNames {
    /// `view__feature`: never collides across views (Feast's
    /// `full_feature_names=True`).
    #[default]
    Full,
    /// The bare feature name; a name that is already taken (by an entity
    /// column or another view's feature) is an error.
    Short,
}

/// Settings of one join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOptions {
    /// The entity table's event time column.
    pub event_timestamp_column: String,
    /// How output feature columns are named.
    pub feature_names: FeatureNames,
    /// Feature rows buffered before a merge; the join uses at least as many
    /// as the entity table has rows, so each merge's walk over the entity
    /// rows is paid for by the feature rows it merges. A larger buffer holds
    /// more batches alive; the default, 262,144 rows, costs about 12 MiB
    /// (6 MiB between merges) plus the buffered batches' feature columns,
    /// and was the fastest of 2^15..2^22 on the benchmark.
    pub merge_rows: usize,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self {
            event_timestamp_column: DEFAULT_EVENT_TIMESTAMP.to_owned(),
            feature_names: FeatureNames::Full,
            merge_rows: 1 << 18,
        }
    }
}

/// What the join needs to know about one feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSpec {
    /// The view's name: the prefix of its full feature names.
    pub name: String,
    /// Columns present in both the entity table and the view, with the same
    /// Arrow type. An empty list joins every entity row with every view row
    /// (Feast's entityless views).
    pub join_keys: Vec<String>,
    /// The view's event time column.
    pub timestamp_column: String,
    /// The column that breaks ties between rows with the same event time:
    /// the larger value wins.
    pub created_timestamp_column: Option<String>,
    /// Feature columns to add, in this order; empty means every column that
    /// is not a join key or one of the two timestamps, in schema order.
    pub features: Vec<String>,
    /// How old a row may be and still count; zero means any age.
    pub ttl: Duration,
}

impl ViewSpec {
    /// A view with every feature column, no created timestamp and no ttl.
    pub fn new<K: Into<String>>(
        name: impl Into<String>,
        join_keys: impl IntoIterator<Item = K>,
        timestamp_column: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            join_keys: join_keys.into_iter().map(Into::into).collect(),
            timestamp_column: timestamp_column.into(),
            created_timestamp_column: None,
            features: Vec::new(),
            ttl: Duration::ZERO,
        }
    }

    /// Only these feature columns, in this order.
    pub fn features<F: Into<String>>(mut self, features: impl IntoIterator<Item = F>) -> Self {
        self.features = features.into_iter().map(Into::into).collect();
        self
    }

    /// Ties on event time go to the larger value of this column.
    pub fn created_timestamp(mut self, column: impl Into<String>) -> Self {
        self.created_timestamp_column = Some(column.into());
        self
    }

    /// Rows older than `ttl` before the entity's event time do not count.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

/// A point-in-time join under construction: the entity table, then one view
/// at a time, then [`PointInTimeJoin::finish`].
///
/// Each `add_view` runs that view's whole join before returning, so the
/// views' batches are never needed at the same time. A failed `add_view`
/// leaves the join as it was.
#[derive(Debug)]
pub struct PointInTimeJoin {
    entity: RecordBatch,
    options: JoinOptions,
    time_index: usize,
    time_kind: TimeKind,
    fields: Vec<FieldRef>,
    columns: Vec<ArrayRef>,
    /// Output name → where it came from, for collision messages.
    names: HashMap<String, String>,
}

impl PointInTimeJoin {
    /// Starts a join of `entity`, whose event time column is
    /// `options.event_timestamp_column`.
    pub fn new(entity: RecordBatch, options: JoinOptions) -> Result<Self, PointInTimeError> {
        if entity.num_rows() > MAX_ROWS {
            return Err(PointInTimeError::TooManyRows {
                table: Table::Entity,
                rows: entity.num_rows(),
                max: MAX_ROWS,
            });
        }
        let schema = entity.schema();
        let column = &options.event_timestamp_column;
        let (time_index, field) =
            schema
                .column_with_name(column)
                .ok_or_else(|| PointInTimeError::MissingColumn {
                    table: Table::Entity,
                    column: column.clone(),
                })?;
        let time_kind = TimeKind::of(&Table::Entity, column, field.data_type())?;
        let mut names = HashMap::new();
        for field in schema.fields() {
            // An entity table with two columns of one name cannot be joined
            // by name; say so rather than guess.
            if names
                .insert(field.name().clone(), "an entity column".to_owned())
                .is_some()
            {
                return Err(PointInTimeError::NameCollision {
                    name: field.name().clone(),
                    first: "an entity column".to_owned(),
                    second: "another entity column".to_owned(),
                });
            }
        }
        Ok(Self {
            fields: schema.fields().iter().cloned().collect(),
            columns: entity.columns().to_vec(),
            entity,
            options,
            time_index,
            time_kind,
            names,
        })
    }

    /// Joins one view whose batches all have `schema` (columns the join does
    /// not use may differ or be absent).
    pub fn add_view(
        &mut self,
        view: &ViewSpec,
        schema: &Schema,
        batches: impl IntoIterator<Item = RecordBatch>,
    ) -> Result<&mut Self, PointInTimeError> {
        self.join_view(view, schema, batches.into_iter().map(Ok))
    }

    /// Joins one view read from an Arrow reader (a Parquet or IPC file
    /// reader, a channel of batches…); a read error ends the join with
    /// [`PointInTimeError::Arrow`].
    pub fn add_view_reader(
        &mut self,
        view: &ViewSpec,
        reader: impl RecordBatchReader,
    ) -> Result<&mut Self, PointInTimeError> {
        let schema = reader.schema();
        self.join_view(view, &schema, reader)
    }

    /// The joined table: entity columns, then every view's features.
    pub fn finish(self) -> Result<RecordBatch, PointInTimeError> {
        let schema =
            Schema::new_with_metadata(self.fields, self.entity.schema().metadata().clone());
        RecordBatch::try_new(Arc::new(schema), self.columns).map_err(|source| {
            PointInTimeError::Arrow {
                table: Table::Entity,
                source,
            }
        })
    }

    /// The entity table's columns for `join_keys` and their types, once
    /// both the entity table and the view's `schema` are known to have each
    /// key with one type.
    fn join_keys(
        &self,
        view: &str,
        join_keys: &[String],
        schema: &Schema,
    ) -> Result<(Vec<DataType>, Vec<ArrayRef>), PointInTimeError> {
        let table = Table::View(view.to_owned());
        let entity_schema = self.entity.schema();
        let mut key_types = Vec::with_capacity(join_keys.len());
        let mut entity_keys = Vec::with_capacity(join_keys.len());
        for key in join_keys {
            let (index, entity_field) = entity_schema.column_with_name(key).ok_or_else(|| {
                PointInTimeError::MissingColumn {
                    table: Table::Entity,
                    column: key.clone(),
                }
            })?;
            let field = view_field(schema, &table, key)?;
            if field.data_type() != entity_field.data_type() {
                return Err(PointInTimeError::JoinKeyType {
                    view: view.to_owned(),
                    column: key.clone(),
                    entity_type: entity_field.data_type().clone(),
                    view_type: field.data_type().clone(),
                });
            }
            key_types.push(field.data_type().clone());
            entity_keys.push(self.entity.column(index).clone());
        }
        Ok((key_types, entity_keys))
    }

    /// The output column name of `feature` of `view` and a description of
    /// where it came from, unless an earlier output or one of `pending`
    /// (the view's own, not yet added) already has that name.
    fn output_name(
        &self,
        view: &str,
        feature: &str,
        pending: &[(String, String)],
    ) -> Result<(String, String), PointInTimeError> {
        let name = match self.options.feature_names {
            FeatureNames::Full => format!("{view}__{feature}"),
            FeatureNames::Short => feature.to_owned(),
        };
        let origin = format!("feature `{feature}` of view `{view}`");
        let taken = self
            .names
            .get(&name)
            .or_else(|| pending.iter().find(|(n, _)| *n == name).map(|(_, o)| o));
        if let Some(first) = taken {
            return Err(PointInTimeError::NameCollision {
                name,
                first: first.clone(),
                second: origin,
            });
        }
        Ok((name, origin))
    }

    fn join_view(
        &mut self,
        view: &ViewSpec,
        schema: &Schema,
        batches: impl Iterator<Item = Result<RecordBatch, ArrowError>>,
    ) -> Result<&mut Self, PointInTimeError> {
        let table = Table::View(view.name.clone());
        let view_field = |column: &str| view_field(schema, &table, column);
        let (key_types, entity_keys) = self.join_keys(&view.name, &view.join_keys, schema)?;

        // Times.
        let time_field = view_field(&view.timestamp_column)?;
        let time_kind = TimeKind::of(&table, &view.timestamp_column, time_field.data_type())?;
        let created = match &view.created_timestamp_column {
            Some(column) => {
                let field = view_field(column)?;
                Some((
                    column.clone(),
                    TimeKind::of(&table, column, field.data_type())?,
                ))
            }
            None => None,
        };

        // Features and their output names.
        let feature_names: Vec<String> = if view.features.is_empty() {
            schema
                .fields()
                .iter()
                .map(|f| f.name())
                .filter(|n| {
                    !view.join_keys.contains(n)
                        && **n != view.timestamp_column
                        && view.created_timestamp_column.as_ref() != Some(n)
                })
                .cloned()
                .collect()
        } else {
            view.features.clone()
        };
        let mut new_names: Vec<(String, String)> = Vec::with_capacity(feature_names.len());
        let mut out_fields = Vec::with_capacity(feature_names.len());
        let mut feature_types = Vec::with_capacity(feature_names.len());
        for feature in &feature_names {
            let field = view_field(feature)?;
            let (name, origin) = self.output_name(&view.name, feature, &new_names)?;
            out_fields.push(Arc::new(
                field.clone().with_name(name.clone()).with_nullable(true),
            ));
            feature_types.push(field.data_type().clone());
            new_names.push((name, origin));
        }

        let mut declared: Vec<(String, DataType)> = view
            .join_keys
            .iter()
            .cloned()
            .zip(key_types.iter().cloned())
            .collect();
        declared.push((
            view.timestamp_column.clone(),
            time_field.data_type().clone(),
        ));
        if let Some((column, _)) = &created {
            declared.push((column.clone(), view_field(column)?.data_type().clone()));
        }
        for (name, data_type) in feature_names.iter().zip(&feature_types) {
            declared.push((name.clone(), data_type.clone()));
        }

        // The entity side, on this view's time scale.
        let scale = Scale::finest(self.time_kind, time_kind);
        let entity_time = self.entity.column(self.time_index);
        let entity_times = ticks(
            entity_time.as_ref(),
            self.time_kind,
            scale,
            &Table::Entity,
            &self.options.event_timestamp_column,
        )?;
        let arrow_err = |table: &Table| {
            let table = table.clone();
            move |source| PointInTimeError::Arrow { table, source }
        };
        let encoder = KeyEncoder::new(&key_types).map_err(arrow_err(&Table::Entity))?;
        let entity_rows = encoder
            .encode(&entity_keys)
            .map_err(arrow_err(&Table::Entity))?;
        let index = EntityIndex::build(
            &entity_rows,
            &entity_keys,
            entity_time.as_ref(),
            &entity_times,
        );
        drop(entity_times);

        let layout = ViewLayout {
            table: table.clone(),
            key_names: view.join_keys.clone(),
            time_name: view.timestamp_column.clone(),
            time_kind,
            created,
            feature_names,
            declared,
            scale,
            ttl_ticks: scale.ttl_ticks(view.ttl),
            // Never fewer than the entity rows: a merge walks the entity rows of
            // the keys it holds, so this keeps that walk within one step per
            // feature row.
            merge_rows: self.options.merge_rows.max(self.entity.num_rows()).max(1),
        };
        let mut join = ViewJoin::new(
            layout,
            index,
            &encoder,
            feature_types,
            self.entity.num_rows(),
        );
        for batch in batches {
            join.push(&batch.map_err(arrow_err(&table))?)?;
        }
        let columns = join.finish()?;

        self.fields.extend(out_fields);
        self.columns.extend(columns);
        self.names.extend(new_names);
        Ok(self)
    }
}

/// The field `column` of a view's `schema`, or the error naming it.
fn view_field<'s>(
    schema: &'s Schema,
    table: &Table,
    column: &str,
) -> Result<&'s Field, PointInTimeError> {
    schema
        .field_with_name(column)
        .map_err(|_| PointInTimeError::MissingColumn {
            table: table.clone(),
            column: column.to_owned(),
        })
}
