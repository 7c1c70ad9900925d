//! Windowed aggregations kept online, one event at a time, with the values
//! of the offline window kernel ([`crate::point_in_time::window`]): for an
//! aggregation of window `W` and slide `S`, a read at time `t` answers the
//! window `(E - W, E]` with `E = floor(t / S) * S`.
//!
//! **Tiles.** Each aggregation keeps partial aggregates per bucket of
//! `g = gcd(W, S)` (every window start and end is a multiple of `g`), the
//! bucket `b` holding the events with `(b - 1) g < ts <= b g`. A window is
//! the combination of its `W / g` buckets, so no event is ever stored: an
//! event is one update of one bucket, and a read combines at most `W / g`
//! partials (7 for a 7-day window sliding by a day, 1 for a tumbling one).
//!
//! **Retention.** A key's state remembers its latest event time `M` and
//! keeps only the buckets a read at `t >= M - S` can need: ending after
//! `floor(M / S) * S - S - W`. An event older than that is dropped (no such
//! read would count it). So a key's state never holds more than
//! `(W + 2S) / g + 1` buckets per aggregation, whatever the event rate.
//! Reads at earlier times than `M - S` are not answered exactly: online
//! reads happen now, after the events.
//!
//! **Functions** as offline: nulls are ignored; `count` is never null;
//! integer sums are exact (a sum outside `Int64` reads as null, where the
//! offline kernel refuses); `mean` divides the sum by the count; `min` and
//! `max` use IEEE totalOrder for floats; `last` is the value of the latest
//! event, the later arrival winning a tie (as later input order wins
//! offline).

use std::cmp::Ordering;

use keel_online::OnlineError;
use keel_online::codec::{Value, decode_value, encode_value};

use crate::definition::{AggFunction, Aggregation};

/// One aggregation's window, in microseconds.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    pub function: AggFunction,
    window: i64,
    slide: i64,
    bucket: i64,
}

impl WindowSpec {
    pub fn new(agg: &Aggregation) -> Self {
        let us = |s: u64| i64::try_from(s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        let window = us(agg.window.seconds()).max(1);
        let slide = agg.slide.map_or(window, |s| us(s.seconds()).max(1));
        WindowSpec {
            function: agg.function,
            window,
            slide,
            bucket: gcd(window, slide),
        }
    }

    /// How far before a key's latest event its state reaches
    /// (microseconds): the events a read at `t >= max_ts - S` can count.
    pub fn lookback(&self) -> i64 {
        self.window.saturating_add(self.slide.saturating_mul(2))
    }

    /// The buckets `[lo, hi]` of the window a read at `t` answers.
    fn range(&self, t: i64) -> (i64, i64) {
        let end = t.div_euclid(self.slide).saturating_mul(self.slide);
        (
            end.saturating_sub(self.window).div_euclid(self.bucket) + 1,
            end.div_euclid(self.bucket),
        )
    }

    /// The bucket holding an event at `ts`: `ceil(ts / g)`.
    fn bucket_of(&self, ts: i64) -> i64 {
        let b = ts.div_euclid(self.bucket);
        if ts.rem_euclid(self.bucket) == 0 {
            b
        } else {
            b + 1
        }
    }

    /// The oldest bucket kept for a key whose latest event is at `max_ts`.
    fn floor(&self, max_ts: i64) -> i64 {
        let (lo, _) = self.range(max_ts.saturating_sub(self.slide));
        lo
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A bucket's partial aggregate.
#[derive(Debug, Clone, PartialEq)]
enum Partial {
    Count(i64),
    SumInt { sum: i128, n: i64 },
    SumFloat { sum: f64, n: i64 },
    Min(Value),
    Max(Value),
    Last { ts: i64, value: Value },
}

/// Every aggregation's buckets for one entity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowState {
    /// The latest event time seen (microseconds).
    pub max_ts: i64,
    /// Per aggregation, `(bucket, partial)` sorted by bucket.
    aggs: Vec<Vec<(i64, Partial)>>,
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int32(x) => Some(f64::from(*x)),
        Value::Int64(x) => Some(*x as f64),
        Value::Float32(x) => Some(f64::from(*x)),
        Value::Float64(x) => Some(*x),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int32(x) => Some(i64::from(*x)),
        Value::Int64(x) | Value::Timestamp(x) => Some(*x),
        _ => None,
    }
}

/// Total order within one type (floats by IEEE totalOrder).
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Float32(x), Value::Float32(y)) => x.total_cmp(y),
        (Value::Float64(x), Value::Float64(y)) => x.total_cmp(y),
        _ => match (as_int(a), as_int(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

impl Partial {
    fn first(function: AggFunction, ts: i64, v: &Value) -> Partial {
        let mut p = match function {
            AggFunction::Count => Partial::Count(0),
            AggFunction::Sum | AggFunction::Mean => match v {
                // -0.0 is the identity of IEEE addition (0.0 would turn a lone
                // -0.0 into 0.0).
                Value::Float32(_) | Value::Float64(_) => Partial::SumFloat { sum: -0.0, n: 0 },
                _ => Partial::SumInt { sum: 0, n: 0 },
            },
            AggFunction::Min => Partial::Min(v.clone()),
            AggFunction::Max => Partial::Max(v.clone()),
            AggFunction::Last => Partial::Last {
                ts,
                value: v.clone(),
            },
        };
        if matches!(
            function,
            AggFunction::Count | AggFunction::Sum | AggFunction::Mean
        ) {
            p.add(ts, v);
        }
        p
    }

    fn add(&mut self, ts: i64, v: &Value) {
        match self {
            Partial::Count(n) => *n += 1,
            Partial::SumInt { sum, n } => {
                *sum += i128::from(as_int(v).unwrap_or(0));
                *n += 1;
            }
            Partial::SumFloat { sum, n } => {
                *sum += as_f64(v).unwrap_or(0.0);
                *n += 1;
            }
            Partial::Min(m) => {
                if compare(v, m) == Ordering::Less {
                    *m = v.clone();
                }
            }
            Partial::Max(m) => {
                if compare(v, m) == Ordering::Greater {
                    *m = v.clone();
                }
            }
            Partial::Last { ts: at, value } => {
                if ts >= *at {
                    *at = ts;
                    *value = v.clone();
                }
            }
        }
    }
}

impl WindowState {
    /// Adds one event: `values[i]` is the value of aggregation `i`'s
    /// column. Answers false when the event is older than anything a read
    /// could still count, and was dropped.
    pub fn add(&mut self, specs: &[WindowSpec], ts: i64, values: &[Value]) -> bool {
        if self.aggs.len() != specs.len() {
            self.aggs = vec![Vec::new(); specs.len()];
            self.max_ts = i64::MIN;
        }
        self.max_ts = self.max_ts.max(ts);
        let mut kept = false;
        for ((spec, buckets), v) in specs.iter().zip(&mut self.aggs).zip(values) {
            let floor = spec.floor(self.max_ts);
            let drop = buckets.partition_point(|(b, _)| *b < floor);
            buckets.drain(..drop);
            let b = spec.bucket_of(ts);
            if b < floor {
                continue;
            }
            kept = true;
            if matches!(v, Value::Null) {
                continue;
            }
            match buckets.binary_search_by_key(&b, |(k, _)| *k) {
                Ok(i) => buckets[i].1.add(ts, v),
                Err(i) => buckets.insert(i, (b, Partial::first(spec.function, ts, v))),
            }
        }
        kept
    }

    /// Every aggregation's value for a read at `t` (microseconds).
    pub fn read(&self, specs: &[WindowSpec], t: i64) -> Vec<Value> {
        specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let buckets = self.aggs.get(i).map_or(&[][..], Vec::as_slice);
                let (lo, hi) = spec.range(t);
                let start = buckets.partition_point(|(b, _)| *b < lo);
                let end = buckets.partition_point(|(b, _)| *b <= hi);
                combine(spec.function, &buckets[start..end])
            })
            .collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.max_ts.to_le_bytes());
        out.extend_from_slice(&(self.aggs.len() as u16).to_le_bytes());
        for buckets in &self.aggs {
            out.extend_from_slice(&(buckets.len() as u32).to_le_bytes());
            for (b, p) in buckets {
                out.extend_from_slice(&b.to_le_bytes());
                match p {
                    Partial::Count(n) => {
                        out.push(0);
                        out.extend_from_slice(&n.to_le_bytes());
                    }
                    Partial::SumInt { sum, n } => {
                        out.push(1);
                        out.extend_from_slice(&sum.to_le_bytes());
                        out.extend_from_slice(&n.to_le_bytes());
                    }
                    Partial::SumFloat { sum, n } => {
                        out.push(2);
                        out.extend_from_slice(&sum.to_le_bytes());
                        out.extend_from_slice(&n.to_le_bytes());
                    }
                    Partial::Min(v) => {
                        out.push(3);
                        encode_value(v, &mut out);
                    }
                    Partial::Max(v) => {
                        out.push(4);
                        encode_value(v, &mut out);
                    }
                    Partial::Last { ts, value } => {
                        out.push(5);
                        out.extend_from_slice(&ts.to_le_bytes());
                        encode_value(value, &mut out);
                    }
                }
            }
        }
        out
    }

    pub fn decode(mut bytes: &[u8]) -> Result<Self, OnlineError> {
        let b = &mut bytes;
        let max_ts = i64::from_le_bytes(take(b)?);
        let n = u16::from_le_bytes(take(b)?) as usize;
        let mut aggs = Vec::with_capacity(n);
        for _ in 0..n {
            let count = u32::from_le_bytes(take(b)?) as usize;
            let mut buckets = Vec::with_capacity(count.min(4096));
            for _ in 0..count {
                let idx = i64::from_le_bytes(take(b)?);
                let tag = take::<1>(b)?[0];
                let p = match tag {
                    0 => Partial::Count(i64::from_le_bytes(take(b)?)),
                    1 => Partial::SumInt {
                        sum: i128::from_le_bytes(take(b)?),
                        n: i64::from_le_bytes(take(b)?),
                    },
                    2 => Partial::SumFloat {
                        sum: f64::from_le_bytes(take(b)?),
                        n: i64::from_le_bytes(take(b)?),
                    },
                    3 => Partial::Min(decode_value(b, 0)?),
                    4 => Partial::Max(decode_value(b, 0)?),
                    5 => Partial::Last {
                        ts: i64::from_le_bytes(take(b)?),
                        value: decode_value(b, 0)?,
                    },
                    other => {
                        return Err(OnlineError::Corrupt(format!("window partial tag {other}")));
                    }
                };
                buckets.push((idx, p));
            }
            aggs.push(buckets);
        }
        Ok(WindowState { max_ts, aggs })
    }
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], OnlineError> {
    if bytes.len() < N {
        return Err(OnlineError::Corrupt("a truncated window state".into()));
    }
    let (head, rest) = bytes.split_at(N);
    *bytes = rest;
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok(out)
}

fn combine(function: AggFunction, buckets: &[(i64, Partial)]) -> Value {
    match function {
        AggFunction::Count => Value::Int64(
            buckets
                .iter()
                .map(|(_, p)| if let Partial::Count(n) = p { *n } else { 0 })
                .sum(),
        ),
        AggFunction::Sum | AggFunction::Mean => {
            let (mut int, mut float, mut n, mut is_float) = (0i128, -0.0f64, 0i64, false);
            for (_, p) in buckets {
                match p {
                    Partial::SumInt { sum, n: k } => {
                        int += sum;
                        n += k;
                    }
                    Partial::SumFloat { sum, n: k } => {
                        float += sum;
                        n += k;
                        is_float = true;
                    }
                    _ => {}
                }
            }
            if n == 0 {
                return Value::Null;
            }
            match (function, is_float) {
                (AggFunction::Sum, true) => Value::Float64(float),
                (AggFunction::Sum, false) => i64::try_from(int).map_or(Value::Null, Value::Int64),
                (_, true) => Value::Float64(float / n as f64),
                (_, false) => Value::Float64(int as f64 / n as f64),
            }
        }
        AggFunction::Min | AggFunction::Max => {
            let mut best: Option<&Value> = None;
            for (_, p) in buckets {
                let v = match p {
                    Partial::Min(v) | Partial::Max(v) => v,
                    _ => continue,
                };
                let better = match best {
                    None => true,
                    Some(b) => {
                        let o = compare(v, b);
                        if function == AggFunction::Min {
                            o == Ordering::Less
                        } else {
                            o == Ordering::Greater
                        }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            best.cloned().unwrap_or(Value::Null)
        }
        AggFunction::Last => {
            let mut best: Option<(i64, &Value)> = None;
            for (_, p) in buckets {
                if let Partial::Last { ts, value } = p
                    && best.is_none_or(|(t, _)| *ts >= t)
                {
                    best = Some((*ts, value));
                }
            }
            best.map_or(Value::Null, |(_, v)| v.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Interval;

    fn agg(function: AggFunction, window: u64, slide: Option<u64>) -> WindowSpec {
        WindowSpec::new(&Aggregation {
            column: "x".into(),
            function,
            window: Interval::from_seconds(window),
            slide: slide.map(Interval::from_seconds),
            name: "f".into(),
        })
    }

    const S: i64 = 1_000_000;

    #[test]
    fn a_read_sees_the_latest_window_ended_by_its_time() {
        // A 10 s window sliding by 5 s: a read at 17 s sees (5 s, 15 s].
        let specs = [agg(AggFunction::Sum, 10, Some(5))];
        let mut st = WindowState::default();
        for (ts, v) in [(5, 1), (6, 10), (15, 100), (16, 1000)] {
            st.add(&specs, ts * S, &[Value::Int64(v)]);
        }
        assert_eq!(st.read(&specs, 17 * S), vec![Value::Int64(110)]);
        // At exactly 15 s the window (5, 15] is the one that ends there.
        assert_eq!(st.read(&specs, 15 * S), vec![Value::Int64(110)]);
        assert_eq!(st.read(&specs, 20 * S), vec![Value::Int64(1100)]);
    }

    #[test]
    fn memory_stays_bounded_however_many_events() {
        let specs = [agg(AggFunction::Count, 3600, Some(600))];
        let mut st = WindowState::default();
        for i in 0..100_000i64 {
            st.add(&specs, i * 7 * S, &[Value::Int64(1)]);
        }
        assert!(
            st.aggs[0].len() <= (3600 + 1200) / 600 + 1,
            "{}",
            st.aggs[0].len()
        );
        let back = WindowState::decode(&st.encode()).unwrap();
        assert_eq!(back, st);
    }

    #[test]
    fn nulls_count_nothing_and_empty_windows_are_null_but_count_zero() {
        let specs = [
            agg(AggFunction::Count, 10, None),
            agg(AggFunction::Mean, 10, None),
        ];
        let mut st = WindowState::default();
        st.add(&specs, S, &[Value::Null, Value::Null]);
        assert_eq!(st.read(&specs, 10 * S), vec![Value::Int64(0), Value::Null]);
    }

    #[test]
    fn last_takes_the_latest_event_and_later_arrivals_win_ties() {
        let specs = [agg(AggFunction::Last, 10, None)];
        let mut st = WindowState::default();
        st.add(&specs, 3 * S, &[Value::String("b".into())]);
        st.add(&specs, 2 * S, &[Value::String("a".into())]);
        st.add(&specs, 3 * S, &[Value::String("c".into())]);
        assert_eq!(st.read(&specs, 10 * S), vec![Value::String("c".into())]);
    }
}
