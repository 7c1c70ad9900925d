//! Frequent items with the mergeable Misra–Gries summary (Agarwal, Cormode,
//! Huang, Phillips, Wei and Yi, "Mergeable summaries", 2012).
//!
//! The summary keeps counters for at most `2·capacity` items between
//! reductions. A reduction subtracts the `(capacity+1)`-th largest counter
//! `v` from every counter, drops those that reach zero, and adds `v` to
//! `offset`. Each reduction removes at least `(capacity+1)·v` of the total
//! weight `N`, so `offset ≤ N/(capacity+1)`; and every item's true count lies
//! in `[counter, counter + offset]` (counter 0 for untracked items). Merging
//! adds counters and offsets, then reduces — the same argument holds for
//! the union, so the guarantee survives any tree of merges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ProfileError;

/// Default number of counters kept after a reduction.
pub const DEFAULT_FREQUENT_CAPACITY: usize = 1024;

/// An item's count with its guaranteed bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrequentItem {
    pub value: String,
    /// The best estimate: the lower bound.
    pub estimate: u64,
    pub lower_bound: u64,
    pub upper_bound: u64,
}

/// A mergeable Misra–Gries summary of string counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FrequentRepr", into = "FrequentRepr")]
pub struct FrequentItems {
    capacity: usize,
    counters: BTreeMap<String, u64>,
    /// The largest amount by which any counter may undercount.
    offset: u64,
    /// The total weight `N` summarized.
    total: u64,
}

impl FrequentItems {
    /// An empty summary; `capacity` must be at least 1.
    pub fn new(capacity: usize) -> Result<Self, ProfileError> {
        check_capacity(capacity)?;
        Ok(Self {
            capacity,
            counters: BTreeMap::new(),
            offset: 0,
            total: 0,
        })
    }

    /// A summary of exact counts.
    pub(crate) fn from_counts(capacity: usize, counts: BTreeMap<String, u64>) -> Self {
        let total = counts.values().fold(0u64, |a, &c| a.saturating_add(c));
        let mut summary = Self {
            capacity: capacity.max(1),
            counters: counts,
            offset: 0,
            total,
        };
        summary.reduce_to(summary.capacity);
        summary
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The total weight summarized.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The most any count may be underestimated: at most
    /// `total / (capacity + 1)`.
    pub fn max_error(&self) -> u64 {
        self.offset
    }

    /// Counts `value` once.
    pub fn update(&mut self, value: &str) {
        self.total = self.total.saturating_add(1);
        if let Some(count) = self.counters.get_mut(value) {
            *count = count.saturating_add(1);
            return;
        }
        self.counters.insert(value.to_owned(), 1);
        if self.counters.len() > self.capacity.saturating_mul(2) {
            self.reduce_to(self.capacity);
        }
    }

    /// Adds another summary; the result keeps the smaller capacity.
    pub fn merge(&mut self, other: &FrequentItems) {
        self.capacity = self.capacity.min(other.capacity);
        for (value, &count) in &other.counters {
            let slot = self.counters.entry(value.clone()).or_insert(0);
            *slot = slot.saturating_add(count);
        }
        self.offset = self.offset.saturating_add(other.offset);
        self.total = self.total.saturating_add(other.total);
        if self.counters.len() > self.capacity {
            self.reduce_to(self.capacity);
        }
    }

    /// Bounds on the true count of `value`.
    pub fn bounds(&self, value: &str) -> (u64, u64) {
        let lower = self.counters.get(value).copied().unwrap_or(0);
        (lower, lower.saturating_add(self.offset))
    }

    /// The tracked items, most frequent first (ties by value).
    pub fn items(&self) -> Vec<FrequentItem> {
        let mut items: Vec<FrequentItem> = self
            .counters
            .iter()
            .map(|(value, &count)| FrequentItem {
                value: value.clone(),
                estimate: count,
                lower_bound: count,
                upper_bound: count.saturating_add(self.offset),
            })
            .collect();
        items.sort_by(|a, b| {
            b.estimate
                .cmp(&a.estimate)
                .then_with(|| a.value.cmp(&b.value))
        });
        items
    }

    /// Subtracts the `(keep+1)`-th largest counter from all counters.
    fn reduce_to(&mut self, keep: usize) {
        if self.counters.len() <= keep {
            return;
        }
        let mut counts: Vec<u64> = self.counters.values().copied().collect();
        let (_, &mut cut, _) = counts.select_nth_unstable_by(keep, |a, b| b.cmp(a));
        self.offset = self.offset.saturating_add(cut);
        self.counters.retain(|_, count| {
            *count = count.saturating_sub(cut);
            *count > 0
        });
    }
}

fn check_capacity(capacity: usize) -> Result<(), ProfileError> {
    if capacity >= 1 {
        Ok(())
    } else {
        Err(ProfileError::InvalidParameter {
            name: "frequent_capacity",
            value: capacity.to_string(),
            expected: "at least 1",
        })
    }
}

#[derive(Serialize, Deserialize)]
struct FrequentRepr {
    capacity: usize,
    counters: BTreeMap<String, u64>,
    offset: u64,
    total: u64,
}

impl From<FrequentItems> for FrequentRepr {
    fn from(f: FrequentItems) -> Self {
        Self {
            capacity: f.capacity,
            counters: f.counters,
            offset: f.offset,
            total: f.total,
        }
    }
}

impl TryFrom<FrequentRepr> for FrequentItems {
    type Error = String;

    fn try_from(repr: FrequentRepr) -> Result<Self, Self::Error> {
        check_capacity(repr.capacity).map_err(|e| e.to_string())?;
        Ok(Self {
            capacity: repr.capacity,
            counters: repr.counters,
            offset: repr.offset,
            total: repr.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_stats::Rng;

    /// Zipf-like data: item i with probability ∝ 1/(i+1).
    fn zipf(n: usize, items: usize, seed: u64) -> Vec<String> {
        let weights: Vec<f64> = (0..items).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut cumulative = Vec::with_capacity(items);
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cumulative.push(acc);
        }
        let mut rng = Rng::from_seed(seed);
        (0..n)
            .map(|_| {
                let u = rng.next_f64();
                let i = cumulative.partition_point(|&c| c < u).min(items - 1);
                format!("item-{i}")
            })
            .collect()
    }

    fn check_bounds(summary: &FrequentItems, data: &[String]) {
        let mut truth: BTreeMap<&str, u64> = BTreeMap::new();
        for v in data {
            *truth.entry(v).or_insert(0) += 1;
        }
        let n = data.len() as u64;
        assert_eq!(summary.total(), n);
        assert!(summary.max_error() <= n / (summary.capacity() as u64 + 1));
        for (value, &count) in &truth {
            let (lo, hi) = summary.bounds(value);
            assert!(
                lo <= count && count <= hi,
                "{value}: {count} not in [{lo}, {hi}]"
            );
        }
    }

    #[test]
    fn bounds_hold_streamed_and_merged() {
        let data = zipf(200_000, 50_000, 4);
        let mut whole = FrequentItems::new(64).unwrap();
        for v in &data {
            whole.update(v);
        }
        check_bounds(&whole, &data);
        let mut merged = FrequentItems::new(64).unwrap();
        for part in data.chunks(12_345) {
            let mut summary = FrequentItems::new(64).unwrap();
            for v in part {
                summary.update(v);
            }
            merged.merge(&summary);
        }
        check_bounds(&merged, &data);
        let top = merged.items();
        assert_eq!(top[0].value, "item-0");
    }

    #[test]
    fn from_counts_keeps_the_guarantee() {
        let counts: BTreeMap<String, u64> = (0..100u64).map(|i| (format!("v{i}"), i + 1)).collect();
        let summary = FrequentItems::from_counts(10, counts.clone());
        assert!(summary.counters.len() <= 10);
        for (value, &count) in &counts {
            let (lo, hi) = summary.bounds(value);
            assert!(lo <= count && count <= hi);
        }
        assert!(FrequentItems::new(0).is_err());
    }
}
