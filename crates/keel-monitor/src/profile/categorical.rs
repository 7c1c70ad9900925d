//! The profile of a categorical (string) column.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ProfileError;
use super::frequent::{DEFAULT_FREQUENT_CAPACITY, FrequentItem, FrequentItems};
use super::hash::xxh64;
use super::hll::{self, DEFAULT_HLL_PRECISION, HyperLogLog};

/// Default number of distinct values counted exactly.
pub const DEFAULT_CATEGORY_LIMIT: usize = 10_000;

/// How a categorical profile summarizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CategoricalConfig {
    /// Count every value exactly while there are at most this many distinct
    /// values; beyond, switch to the frequent-items summary.
    pub exact_limit: usize,
    /// Counters the frequent-items summary keeps (`k`): every count is then
    /// known to within `N/(k+1)`, `N` the non-null count.
    pub frequent_capacity: usize,
    /// HyperLogLog precision in 4..=18.
    pub hll_precision: u8,
}

impl Default for CategoricalConfig {
    fn default() -> Self {
        Self {
            exact_limit: DEFAULT_CATEGORY_LIMIT,
            frequent_capacity: DEFAULT_FREQUENT_CAPACITY,
            hll_precision: DEFAULT_HLL_PRECISION,
        }
    }
}

impl CategoricalConfig {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let mut problems = Vec::new();
        if self.frequent_capacity == 0 {
            problems.push(ProfileError::InvalidParameter {
                name: "frequent_capacity",
                value: "0".to_owned(),
                expected: "at least 1",
            });
        }
        if let Err(e) = hll::check_precision(self.hll_precision) {
            problems.push(e);
        }
        ProfileError::from_problems(problems)
    }
}

/// Exact counts, or the frequent-items summary once there are too many
/// distinct values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Counts {
    Exact(BTreeMap<String, u64>),
    Frequent(FrequentItems),
}

/// A mergeable summary of a string column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoricalProfile {
    count: u64,
    null: u64,
    counts: Counts,
    hll: HyperLogLog,
    exact_limit: usize,
    frequent_capacity: usize,
}

impl Default for CategoricalProfile {
    fn default() -> Self {
        Self::new()
    }
}

impl CategoricalProfile {
    /// An empty profile with the default configuration.
    pub fn new() -> Self {
        Self {
            count: 0,
            null: 0,
            counts: Counts::Exact(BTreeMap::new()),
            hll: HyperLogLog::default(),
            exact_limit: DEFAULT_CATEGORY_LIMIT,
            frequent_capacity: DEFAULT_FREQUENT_CAPACITY,
        }
    }

    /// An empty profile; fails with every problem of the configuration.
    pub fn with_config(config: CategoricalConfig) -> Result<Self, ProfileError> {
        config.validate()?;
        Ok(Self {
            hll: HyperLogLog::new(config.hll_precision)?,
            exact_limit: config.exact_limit,
            frequent_capacity: config.frequent_capacity,
            ..Self::new()
        })
    }

    /// The profile of `values` with the default configuration.
    pub fn from_values<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut profile = Self::new();
        profile.extend(values);
        profile
    }

    /// The profile of values where `None` is null.
    pub fn from_nullable<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = Option<S>>,
        S: AsRef<str>,
    {
        let mut profile = Self::new();
        profile.extend_nullable(values);
        profile
    }

    /// Counts one value.
    pub fn update(&mut self, value: &str) {
        self.count = self.count.saturating_add(1);
        self.hll.insert_hash(xxh64(value.as_bytes()));
        match &mut self.counts {
            Counts::Exact(counts) => {
                if let Some(count) = counts.get_mut(value) {
                    *count = count.saturating_add(1);
                } else {
                    counts.insert(value.to_owned(), 1);
                    if counts.len() > self.exact_limit {
                        let counts = std::mem::take(counts);
                        self.counts = Counts::Frequent(FrequentItems::from_counts(
                            self.frequent_capacity,
                            counts,
                        ));
                    }
                }
            }
            Counts::Frequent(frequent) => frequent.update(value),
        }
    }

    /// Counts one missing value.
    pub fn update_null(&mut self) {
        self.count = self.count.saturating_add(1);
        self.null = self.null.saturating_add(1);
    }

    pub fn extend<I, S>(&mut self, values: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for value in values {
            self.update(value.as_ref());
        }
    }

    pub fn extend_nullable<I, S>(&mut self, values: I)
    where
        I: IntoIterator<Item = Option<S>>,
        S: AsRef<str>,
    {
        for value in values {
            match value {
                Some(value) => self.update(value.as_ref()),
                None => self.update_null(),
            }
        }
    }

    /// Adds another profile of the same column. Fails, changing nothing,
    /// when the HyperLogLog precisions differ. The merged profile keeps the
    /// smaller exact limit and frequent-items capacity.
    pub fn merge(&mut self, other: &CategoricalProfile) -> Result<(), ProfileError> {
        self.hll.merge(&other.hll)?;
        self.count = self.count.saturating_add(other.count);
        self.null = self.null.saturating_add(other.null);
        self.exact_limit = self.exact_limit.min(other.exact_limit);
        self.frequent_capacity = self.frequent_capacity.min(other.frequent_capacity);
        let mine = std::mem::replace(&mut self.counts, Counts::Exact(BTreeMap::new()));
        self.counts = match (mine, &other.counts) {
            (Counts::Exact(mut a), Counts::Exact(b)) => {
                for (value, &count) in b {
                    let slot = a.entry(value.clone()).or_insert(0);
                    *slot = slot.saturating_add(count);
                }
                if a.len() > self.exact_limit {
                    Counts::Frequent(FrequentItems::from_counts(self.frequent_capacity, a))
                } else {
                    Counts::Exact(a)
                }
            }
            (Counts::Exact(a), Counts::Frequent(b)) => {
                let mut merged = FrequentItems::from_counts(self.frequent_capacity, a);
                merged.merge(b);
                Counts::Frequent(merged)
            }
            (Counts::Frequent(mut a), Counts::Exact(b)) => {
                a.merge(&FrequentItems::from_counts(
                    self.frequent_capacity,
                    b.clone(),
                ));
                Counts::Frequent(a)
            }
            (Counts::Frequent(mut a), Counts::Frequent(b)) => {
                a.merge(b);
                Counts::Frequent(a)
            }
        };
        Ok(())
    }

    pub(crate) fn check_compatible(&self, other: &CategoricalProfile) -> Result<(), ProfileError> {
        self.hll.check_compatible(&other.hll)
    }

    /// Every value seen, null or not.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn null_count(&self) -> u64 {
        self.null
    }

    pub fn non_null_count(&self) -> u64 {
        self.count.saturating_sub(self.null)
    }

    /// Whether every value is still counted exactly.
    pub fn is_exact(&self) -> bool {
        matches!(self.counts, Counts::Exact(_))
    }

    /// The exact counts per value, while the profile is exact.
    pub fn exact_counts(&self) -> Option<&BTreeMap<String, u64>> {
        match &self.counts {
            Counts::Exact(counts) => Some(counts),
            Counts::Frequent(_) => None,
        }
    }

    /// The number of distinct values: exact in exact mode, else the
    /// HyperLogLog estimate.
    pub fn distinct_count(&self) -> f64 {
        match &self.counts {
            Counts::Exact(counts) => counts.len() as f64,
            Counts::Frequent(_) => self.hll.estimate(),
        }
    }

    pub fn hll(&self) -> &HyperLogLog {
        &self.hll
    }

    /// The most any reported count may fall short of the truth: 0 in exact
    /// mode, at most `N/(k+1)` otherwise.
    pub fn max_count_error(&self) -> u64 {
        match &self.counts {
            Counts::Exact(_) => 0,
            Counts::Frequent(frequent) => frequent.max_error(),
        }
    }

    /// Lower and upper bounds on the count of `value`.
    pub fn count_bounds(&self, value: &str) -> (u64, u64) {
        match &self.counts {
            Counts::Exact(counts) => {
                let count = counts.get(value).copied().unwrap_or(0);
                (count, count)
            }
            Counts::Frequent(frequent) => frequent.bounds(value),
        }
    }

    /// The values with their counts, most frequent first: every value in
    /// exact mode, the tracked ones otherwise.
    pub fn frequent_items(&self) -> Vec<FrequentItem> {
        match &self.counts {
            Counts::Exact(counts) => {
                let mut items: Vec<FrequentItem> = counts
                    .iter()
                    .map(|(value, &count)| FrequentItem {
                        value: value.clone(),
                        estimate: count,
                        lower_bound: count,
                        upper_bound: count,
                    })
                    .collect();
                items.sort_by(|a, b| {
                    b.estimate
                        .cmp(&a.estimate)
                        .then_with(|| a.value.cmp(&b.value))
                });
                items
            }
            Counts::Frequent(frequent) => frequent.items(),
        }
    }
}
