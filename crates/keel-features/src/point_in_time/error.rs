use std::fmt;

use arrow_schema::{ArrowError, DataType};

use crate::definition::{AggFunction, Interval};

/// Which input a problem is in: the entity table or one feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    /// The entity table (the rows to label with features).
    Entity,
    /// The feature view of this name.
    View(String),
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Table::Entity => f.write_str("the entity table"),
            Table::View(name) => write!(f, "feature view `{name}`"),
        }
    }
}

/// Why a point-in-time join was refused. Every variant names the table and
/// column at fault; none is raised after output has been handed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PointInTimeError {
    /// A join key, timestamp or feature column the join needs is absent.
    #[error(
        "{table} has no column `{column}`; check the view's join keys, timestamp and feature names"
    )]
    MissingColumn { table: Table, column: String },

    /// An event or created timestamp column is neither a timestamp nor a date.
    #[error(
        "column `{column}` of {table} is {data_type}, not a time: cast it to Timestamp (any unit, any time zone), Date32 or Date64"
    )]
    TimestampType {
        table: Table,
        column: String,
        data_type: DataType,
    },

    /// A join key has one type in the entity table and another in the view.
    #[error(
        "join key `{column}` is {entity_type} in the entity table but {view_type} in feature view `{view}`: cast one side so both have the same type"
    )]
    JoinKeyType {
        view: String,
        column: String,
        entity_type: DataType,
        view_type: DataType,
    },

    /// A batch of a view does not have the type its declared schema gives.
    #[error(
        "batch {batch} of feature view `{view}`: column `{column}` is {found}, but the view's schema says {expected}"
    )]
    BatchSchema {
        view: String,
        batch: usize,
        column: String,
        expected: DataType,
        found: DataType,
    },

    /// Two output columns would have the same name.
    #[error(
        "output column `{name}` would appear twice ({first} and {second}): use full feature names, rename the feature or leave one out"
    )]
    NameCollision {
        name: String,
        first: String,
        second: String,
    },

    /// A time does not fit in 64 bits at the finest unit of the comparison
    /// (e.g. a date after the year 2262 compared with nanosecond timestamps).
    #[error(
        "value {value} of column `{column}` of {table} is out of range once converted to the finer unit of the join; use a coarser timestamp unit"
    )]
    TimestampOutOfRange {
        table: Table,
        column: String,
        value: i64,
    },

    /// More rows than the kernel's 32-bit row positions address.
    #[error("{table} has {rows} rows in one batch; split it (at most {max} rows per batch)")]
    TooManyRows {
        table: Table,
        rows: usize,
        max: usize,
    },

    /// A stream view's aggregation function is not defined on its column's
    /// type (a sum of strings, a mean of timestamps).
    #[error(
        "aggregation `{aggregation}` of stream view `{view}`: {function} is not defined on column `{column}` of type {data_type}; {function} takes {accepts}, so cast the column or pick another function"
    )]
    AggregationType {
        view: String,
        aggregation: String,
        function: AggFunction,
        column: String,
        data_type: DataType,
        /// The types the function takes, in words.
        accepts: &'static str,
    },

    /// A stream view's aggregation has a window or slide of zero, or one
    /// that does not fit in 64 bits at the join's time unit.
    #[error("aggregation `{aggregation}` of stream view `{view}` has a {part} of {length}: {fix}")]
    WindowLength {
        view: String,
        aggregation: String,
        /// `window` or `slide`.
        part: &'static str,
        length: Interval,
        fix: String,
    },

    /// An integer sum over one window does not fit in the Int64 output.
    #[error(
        "aggregation `{aggregation}` of stream view `{view}`: the sum of column `{column}` over one window is {sum}, which does not fit in Int64; cast the column to Float64 to sum it as floating point"
    )]
    SumOverflow {
        view: String,
        aggregation: String,
        column: String,
        sum: i128,
    },

    /// An Arrow kernel failed, or the reader of a view's batches did.
    #[error("{table}: {source}")]
    Arrow {
        table: Table,
        #[source]
        source: ArrowError,
    },
}
