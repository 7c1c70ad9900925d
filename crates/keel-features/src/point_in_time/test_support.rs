//! Generators and helpers shared by the point-in-time and window property
//! tests: time columns of every unit, and nullable one- or two-column keys.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow_schema::TimeUnit;
use proptest::prelude::*;

pub(crate) const UNITS: [TimeUnit; 4] = [
    TimeUnit::Second,
    TimeUnit::Millisecond,
    TimeUnit::Microsecond,
    TimeUnit::Nanosecond,
];

pub(crate) fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

pub(crate) fn time_array(unit: TimeUnit, utc: bool, values: Vec<Option<i64>>) -> ArrayRef {
    let tz = utc.then_some("UTC");
    match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from(values).with_timezone_opt(tz)),
        TimeUnit::Millisecond => {
            Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(tz))
        }
        TimeUnit::Microsecond => {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz))
        }
        TimeUnit::Nanosecond => {
            Arc::new(TimestampNanosecondArray::from(values).with_timezone_opt(tz))
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) id: Option<i64>,
    pub(crate) region: Option<&'static str>,
}

pub(crate) fn key() -> impl Strategy<Value = Key> {
    (
        prop_oneof![1 => Just(None), 9 => (0_i64..3).prop_map(Some)],
        prop_oneof![1 => Just(None), 9 => prop::sample::select(vec!["eu", "us"]).prop_map(Some)],
    )
        .prop_map(|(id, region)| Key { id, region })
}

/// `n` key columns of a and b are all non-null and equal.
pub(crate) fn keys_match(a: &Key, b: &Key, n: usize) -> bool {
    let id = a.id.is_some() && a.id == b.id;
    let region = a.region.is_some() && a.region == b.region;
    match n {
        0 => true,
        1 => id,
        _ => id && region,
    }
}
