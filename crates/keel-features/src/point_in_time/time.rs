//! Event times as plain `i64` ticks on one scale per feature view.
//!
//! Arrow stores a timestamp as an integer count of seconds, milliseconds,
//! microseconds or nanoseconds since the Unix epoch (the time zone is only a
//! label for display: the count is always UTC), a `Date32` as days and a
//! `Date64` as milliseconds. Two columns compare after both are brought to
//! the finer of their two units, which loses nothing; a value that does not
//! fit in 64 bits at that unit is an error rather than a silent wrap.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, TimeUnit};

use super::error::{PointInTimeError, Table};

const SECONDS_PER_DAY: i64 = 86_400;

/// How a column stores time: its ticks per second, and for `Date32` the extra
/// factor that turns days into seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeKind {
    Timestamp(TimeUnit),
    Date32,
    Date64,
}

impl TimeKind {
    /// The kind of a column of `data_type`, or the error naming it.
    pub(crate) fn of(
        table: &Table,
        column: &str,
        data_type: &DataType,
    ) -> Result<Self, PointInTimeError> {
        match data_type {
            DataType::Timestamp(unit, _) => Ok(TimeKind::Timestamp(*unit)),
            DataType::Date32 => Ok(TimeKind::Date32),
            DataType::Date64 => Ok(TimeKind::Date64),
            other => Err(PointInTimeError::TimestampType {
                table: table.clone(),
                column: column.to_owned(),
                data_type: other.clone(),
            }),
        }
    }

    /// Ticks per second of the column's own unit (days count as seconds;
    /// [`TimeKind::factor_to`] adds the day factor).
    fn ticks_per_second(self) -> i64 {
        match self {
            TimeKind::Timestamp(TimeUnit::Second) | TimeKind::Date32 => 1,
            TimeKind::Timestamp(TimeUnit::Millisecond) | TimeKind::Date64 => 1_000,
            TimeKind::Timestamp(TimeUnit::Microsecond) => 1_000_000,
            TimeKind::Timestamp(TimeUnit::Nanosecond) => 1_000_000_000,
        }
    }

    /// What a raw value of this column is multiplied by to become a tick of
    /// `scale`. Exact: every unit divides every finer one.
    fn factor_to(self, scale: Scale) -> i64 {
        let per_unit = scale.0 / self.ticks_per_second();
        match self {
            TimeKind::Date32 => per_unit * SECONDS_PER_DAY,
            _ => per_unit,
        }
    }
}

/// A common time scale: ticks per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scale(i64);

impl Scale {
    /// The finer of the two columns' units.
    pub(crate) fn finest(a: TimeKind, b: TimeKind) -> Self {
        Scale(a.ticks_per_second().max(b.ticks_per_second()))
    }

    /// The scale of one column alone (for created timestamps, which are only
    /// compared with each other).
    pub(crate) fn native(kind: TimeKind) -> Self {
        Scale(kind.ticks_per_second())
    }

    /// The Arrow unit of this scale's ticks.
    pub(crate) fn unit(self) -> TimeUnit {
        match self.0 {
            1 => TimeUnit::Second,
            1_000 => TimeUnit::Millisecond,
            1_000_000 => TimeUnit::Microsecond,
            _ => TimeUnit::Nanosecond,
        }
    }

    /// `seconds` in ticks, if that fits in 64 bits.
    pub(crate) fn seconds_ticks(self, seconds: u64) -> Option<i64> {
        i64::try_from(seconds).ok()?.checked_mul(self.0)
    }

    /// `ttl` in ticks, rounded down (exact for the inclusive bound on integer
    /// ticks: `t >= e - 1.5` holds exactly when `t >= e - 1`), saturating at
    /// `i64::MAX`. `None` for a zero ttl, which means "no lower bound" even
    /// when a nonzero ttl would round down to zero ticks.
    pub(crate) fn ttl_ticks(self, ttl: Duration) -> Option<i64> {
        if ttl.is_zero() {
            return None;
        }
        // Both factors are powers of ten, `1_000_000_000 / self.0 >= 1`.
        let nanos_per_tick = 1_000_000_000_u128 / self.0.max(1) as u128;
        let ticks = ttl.as_nanos() / nanos_per_tick.max(1);
        Some(i64::try_from(ticks).unwrap_or(i64::MAX))
    }
}

/// A column's values as ticks of one scale. Null slots hold 0; the caller
/// reads validity from the array itself.
pub(crate) fn ticks(
    array: &dyn Array,
    kind: TimeKind,
    scale: Scale,
    table: &Table,
    column: &str,
) -> Result<Vec<i64>, PointInTimeError> {
    let factor = kind.factor_to(scale);
    let out_of_range = |value: i64| PointInTimeError::TimestampOutOfRange {
        table: table.clone(),
        column: column.to_owned(),
        value,
    };
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            scaled::<TimestampSecondType>(array, factor, out_of_range)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scaled::<TimestampMillisecondType>(array, factor, out_of_range)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scaled::<TimestampMicrosecondType>(array, factor, out_of_range)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            scaled::<TimestampNanosecondType>(array, factor, out_of_range)
        }
        DataType::Date32 => scaled::<Date32Type>(array, factor, out_of_range),
        DataType::Date64 => scaled::<Date64Type>(array, factor, out_of_range),
        other => Err(PointInTimeError::TimestampType {
            table: table.clone(),
            column: column.to_owned(),
            data_type: other.clone(),
        }),
    }
}

/// Ticks of `scale` as an Arrow timestamp array of the scale's unit (no
/// time zone), so they can be read back with a factor of one.
pub(crate) fn tick_array(
    scale: Scale,
    values: ScalarBuffer<i64>,
    nulls: Option<NullBuffer>,
) -> ArrayRef {
    match scale.unit() {
        TimeUnit::Second => Arc::new(TimestampSecondArray::new(values, nulls)),
        TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::new(values, nulls)),
        TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::new(values, nulls)),
        TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::new(values, nulls)),
    }
}

fn scaled<T>(
    array: &dyn Array,
    factor: i64,
    out_of_range: impl Fn(i64) -> PointInTimeError,
) -> Result<Vec<i64>, PointInTimeError>
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    let array = array.as_primitive::<T>();
    let values = array.values();
    let nulls = array.nulls();
    let mut out = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let value: i64 = (*value).into();
        if nulls.is_some_and(|n| n.is_null(i)) {
            out.push(0);
        } else if factor == 1 {
            out.push(value);
        } else {
            out.push(
                value
                    .checked_mul(factor)
                    .ok_or_else(|| out_of_range(value))?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finer_unit_wins_and_days_become_seconds() {
        let ms = TimeKind::Timestamp(TimeUnit::Millisecond);
        let us = TimeKind::Timestamp(TimeUnit::Microsecond);
        assert_eq!(Scale::finest(ms, us), Scale(1_000_000));
        assert_eq!(ms.factor_to(Scale(1_000_000)), 1_000);
        assert_eq!(TimeKind::Date32.factor_to(Scale(1_000)), 86_400_000);
        assert_eq!(TimeKind::Date64.factor_to(Scale(1_000)), 1);
    }

    #[test]
    fn ttl_rounds_down_and_zero_means_unbounded() {
        assert_eq!(Scale(1).ttl_ticks(Duration::ZERO), None);
        assert_eq!(Scale(1).ttl_ticks(Duration::from_millis(1_500)), Some(1));
        assert_eq!(Scale(1).ttl_ticks(Duration::from_nanos(1)), Some(0));
        assert_eq!(
            Scale(1_000_000_000).ttl_ticks(Duration::from_secs(u64::MAX)),
            Some(i64::MAX)
        );
    }
}
