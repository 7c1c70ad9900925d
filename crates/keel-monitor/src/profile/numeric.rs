//! The profile of a numeric column.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::ProfileError;
use super::exact_sum::ExactSum;
use super::float_serde;
use super::hash::hash_f64;
use super::hll::{self, DEFAULT_HLL_PRECISION, HyperLogLog};
use super::kll::{self, Cdf, DEFAULT_KLL_K, DEFAULT_KLL_SEED, KllSketch};

/// Default number of finite values a profile keeps verbatim.
pub const DEFAULT_EXACT_LIMIT: usize = 100_000;

/// Values are absorbed in chunks of this many: small enough to stay in L1,
/// large enough that per-chunk work (moments, KLL compaction) is amortized.
const CHUNK: usize = 2048;

/// How a numeric profile summarizes; fixed when the profile is created.
/// Profiles merge only when their `kll_k`, `hll_precision` and `edges`
/// agree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NumericConfig {
    /// KLL parameter `k` (at least 8): rank error ε ≈ 2.296/k^0.9723,
    /// memory about 3·k values.
    pub kll_k: u16,
    /// HyperLogLog precision `p` in 4..=18: 2^p one-byte registers,
    /// relative standard error 1.04/√(2^p).
    pub hll_precision: u8,
    /// Keep the finite values verbatim while there are at most this many,
    /// so small data gets exact quantiles, distinct counts and distances.
    pub exact_limit: usize,
    /// Histogram bin edges, finite and strictly increasing (at least two);
    /// `None` for no histogram.
    pub edges: Option<Vec<f64>>,
    /// Seed of the KLL compaction coin flips.
    pub seed: u64,
}

impl Default for NumericConfig {
    fn default() -> Self {
        Self {
            kll_k: DEFAULT_KLL_K,
            hll_precision: DEFAULT_HLL_PRECISION,
            exact_limit: DEFAULT_EXACT_LIMIT,
            edges: None,
            seed: DEFAULT_KLL_SEED,
        }
    }
}

impl NumericConfig {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let mut problems = Vec::new();
        if let Err(e) = kll::check_k(self.kll_k) {
            problems.push(e);
        }
        if let Err(e) = hll::check_precision(self.hll_precision) {
            problems.push(e);
        }
        if let Some(edges) = &self.edges
            && let Err(e) = check_edges(edges)
        {
            problems.push(e);
        }
        ProfileError::from_problems(problems)
    }
}

/// Count, mean and the sum of squared deviations (Welford), merged with
/// Chan, Golub and LeVeque's parallel formula; plus min and max. Over finite
/// values only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Moments {
    n: u64,
    #[serde(with = "float_serde")]
    mean: f64,
    #[serde(with = "float_serde")]
    m2: f64,
    /// Meaningless (0) while `n` is 0.
    min: f64,
    max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Self {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: 0.0,
            max: 0.0,
        }
    }
}

impl Moments {
    #[inline]
    fn push(&mut self, x: f64) {
        if self.n == 0 {
            *self = Moments {
                n: 1,
                mean: x,
                m2: 0.0,
                min: x,
                max: x,
            };
            return;
        }
        self.n = self.n.saturating_add(1);
        let n = self.n as f64;
        let delta = x - self.mean;
        if delta.is_finite() {
            self.mean += delta / n;
            self.m2 += delta * (x - self.mean);
        } else {
            // |x − mean| overflowed: the variance does too.
            self.mean = self.mean * ((n - 1.0) / n) + x / n;
            self.m2 = f64::INFINITY;
        }
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Two passes over a chunk of finite values (with the compensation term
    /// of Chan, Golub and LeVeque), four accumulators each for speed.
    fn of_chunk(values: &[f64]) -> Moments {
        let Some(&first) = values.first() else {
            return Moments::default();
        };
        let n = values.len() as f64;
        let sum = sum4(values.iter().copied());
        let mean = if sum.is_finite() {
            sum / n
        } else {
            sum4(values.iter().map(|&x| x / n))
        };
        let m2 = sum4(values.iter().map(|&x| (x - mean) * (x - mean)));
        // Σ(x − mean) is zero up to rounding; subtracting its square
        // removes that rounding (it is not finite only when m2 is infinite).
        let residual = sum4(values.iter().map(|&x| x - mean));
        let correction = residual * residual / n;
        let m2 = if correction.is_finite() {
            (m2 - correction).max(0.0)
        } else {
            m2
        };
        let (mut min, mut max) = (first, first);
        for &x in values {
            min = min.min(x);
            max = max.max(x);
        }
        Moments {
            n: values.len() as u64,
            mean,
            m2,
            min,
            max,
        }
    }

    fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        let n = self.n.saturating_add(other.n);
        let (na, nb, nf) = (self.n as f64, other.n as f64, n as f64);
        let delta = other.mean - self.mean;
        if delta.is_finite() {
            self.mean += delta * (nb / nf);
            self.m2 += other.m2 + delta * delta * na * (nb / nf);
        } else {
            self.mean = self.mean * (na / nf) + other.mean * (nb / nf);
            self.m2 = f64::INFINITY;
        }
        self.n = n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// A sum with four independent accumulators (fixed order: deterministic).
#[inline]
fn sum4(values: impl Iterator<Item = f64>) -> f64 {
    let mut acc = [0.0f64; 4];
    for (i, x) in values.enumerate() {
        acc[i & 3] += x;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Counts on fixed bin edges `e₀ < e₁ < … < e_b`: bin `i` is `[eᵢ, eᵢ₊₁)`,
/// the last bin is closed; finite values below `e₀` or above `e_b` are
/// counted in `below` and `above`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HistogramRepr")]
pub struct Histogram {
    edges: Vec<f64>,
    counts: Vec<u64>,
    below: u64,
    above: u64,
}

#[derive(Deserialize)]
struct HistogramRepr {
    edges: Vec<f64>,
    counts: Vec<u64>,
    below: u64,
    above: u64,
}

impl TryFrom<HistogramRepr> for Histogram {
    type Error = String;

    fn try_from(repr: HistogramRepr) -> Result<Self, Self::Error> {
        check_edges(&repr.edges).map_err(|e| e.to_string())?;
        if repr.counts.len() + 1 != repr.edges.len() {
            return Err(format!(
                "a histogram with {} edges has {} bins, got {} counts",
                repr.edges.len(),
                repr.edges.len() - 1,
                repr.counts.len()
            ));
        }
        Ok(Self {
            edges: repr.edges,
            counts: repr.counts,
            below: repr.below,
            above: repr.above,
        })
    }
}

fn check_edges(edges: &[f64]) -> Result<(), ProfileError> {
    let reason = if edges.len() < 2 {
        Some("at least two edges are needed")
    } else if edges.iter().any(|e| !e.is_finite()) {
        Some("edges must be finite")
    } else if !edges.windows(2).all(|w| w[0] < w[1]) {
        Some("edges must be strictly increasing")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ProfileError::InvalidEdges {
            edges: edges.to_vec(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Histogram {
    /// An empty histogram on `edges` (finite, strictly increasing, at least
    /// two).
    pub fn new(edges: Vec<f64>) -> Result<Self, ProfileError> {
        check_edges(&edges)?;
        let edges: Vec<f64> = edges.into_iter().map(|e| e + 0.0).collect();
        Ok(Self {
            counts: vec![0; edges.len() - 1],
            edges,
            below: 0,
            above: 0,
        })
    }

    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Counts per bin, `edges().len() − 1` of them.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn below(&self) -> u64 {
        self.below
    }

    pub fn above(&self) -> u64 {
        self.above
    }

    #[inline]
    fn add(&mut self, x: f64) {
        let bins = self.counts.len();
        let i = self.edges.partition_point(|&e| e <= x);
        if i == 0 {
            self.below = self.below.saturating_add(1);
        } else if i <= bins {
            self.counts[i - 1] = self.counts[i - 1].saturating_add(1);
        } else if self.edges.last() == Some(&x) {
            self.counts[bins - 1] = self.counts[bins - 1].saturating_add(1);
        } else {
            self.above = self.above.saturating_add(1);
        }
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, &b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(b);
        }
        self.below = self.below.saturating_add(other.below);
        self.above = self.above.saturating_add(other.above);
    }
}

/// The finite values themselves, while there are few enough. Equality is
/// multiset equality; JSON holds them sorted.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
struct ExactValues {
    values: Vec<f64>,
    sorted: bool,
}

impl ExactValues {
    fn sorted(&self) -> Cow<'_, [f64]> {
        if self.sorted {
            Cow::Borrowed(&self.values)
        } else {
            let mut values = self.values.clone();
            values.sort_unstable_by(f64::total_cmp);
            Cow::Owned(values)
        }
    }

    fn push(&mut self, x: f64) {
        if self.values.last().is_some_and(|&last| last > x) {
            self.sorted = false;
        }
        self.values.push(x);
    }

    /// Appends a batch, re-sorting when the batch is a sizeable share of the
    /// whole (so repeated small batches stay linear overall).
    fn extend(&mut self, batch: &[f64]) {
        let before = self.values.len();
        self.values.extend_from_slice(batch);
        if self.sorted && !self.values[before.saturating_sub(1)..].is_sorted() {
            self.sorted = false;
        }
        if !self.sorted && batch.len().saturating_mul(4) >= self.values.len() {
            self.values.sort_unstable_by(f64::total_cmp);
            self.sorted = true;
        }
    }

    fn merge(&mut self, other: &ExactValues) {
        if self.sorted && other.sorted {
            self.values = merge_sorted(&self.values, &other.values);
        } else {
            self.extend(&other.values);
        }
    }
}

fn merge_sorted(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if b[j] < a[i] {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl PartialEq for ExactValues {
    fn eq(&self, other: &Self) -> bool {
        self.values.len() == other.values.len() && self.sorted() == other.sorted()
    }
}

impl From<ExactValues> for Vec<f64> {
    fn from(exact: ExactValues) -> Self {
        exact.sorted().into_owned()
    }
}

impl TryFrom<Vec<f64>> for ExactValues {
    type Error = String;

    fn try_from(mut values: Vec<f64>) -> Result<Self, Self::Error> {
        if let Some(bad) = values.iter().find(|x| !x.is_finite()) {
            return Err(format!("exact values must be finite, got {bad}"));
        }
        for x in &mut values {
            *x += 0.0;
        }
        values.sort_unstable_by(f64::total_cmp);
        Ok(Self {
            values,
            sorted: true,
        })
    }
}

/// A mergeable summary of a numeric column, in the manner of whylogs.
///
/// Missing values, nulls and NaN, are counted by
/// [`null_count`](Self::null_count); `±inf` by
/// [`infinite_count`](Self::infinite_count). Every other statistic (moments,
/// sum, min, max, quantiles, distinct count, histogram) is over the finite
/// values, with `-0.0` taken as `0.0`.
///
/// Merging is exact for the counts, the sum (see [`sum`](Self::sum)), min,
/// max, histogram counts, HyperLogLog registers and exact values; mean and
/// variance agree up to floating-point rounding; KLL ranks stay within
/// [`rank_error_bound`](Self::rank_error_bound) of the truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    null: u64,
    infinite: u64,
    moments: Moments,
    sum: ExactSum,
    kll: KllSketch,
    hll: HyperLogLog,
    histogram: Option<Histogram>,
    exact_limit: usize,
    /// `None` once there were more than `exact_limit` finite values.
    exact: Option<ExactValues>,
}

impl Default for NumericProfile {
    fn default() -> Self {
        Self::new()
    }
}

impl NumericProfile {
    /// An empty profile with the default configuration.
    pub fn new() -> Self {
        Self {
            null: 0,
            infinite: 0,
            moments: Moments::default(),
            sum: ExactSum::default(),
            kll: KllSketch::default(),
            hll: HyperLogLog::default(),
            histogram: None,
            exact_limit: DEFAULT_EXACT_LIMIT,
            exact: Some(ExactValues {
                values: Vec::new(),
                sorted: true,
            }),
        }
    }

    /// An empty profile; fails with every problem of the configuration.
    pub fn with_config(config: NumericConfig) -> Result<Self, ProfileError> {
        config.validate()?;
        Ok(Self {
            kll: KllSketch::new(config.kll_k, config.seed)?,
            hll: HyperLogLog::new(config.hll_precision)?,
            histogram: config.edges.map(Histogram::new).transpose()?,
            exact_limit: config.exact_limit,
            ..Self::new()
        })
    }

    /// An empty profile with the default configuration and a histogram on
    /// `edges`.
    pub fn with_edges(edges: Vec<f64>) -> Result<Self, ProfileError> {
        Self::with_config(NumericConfig {
            edges: Some(edges),
            ..NumericConfig::default()
        })
    }

    /// The profile of `values` with the default configuration.
    pub fn from_values(values: &[f64]) -> Self {
        let mut profile = Self::new();
        profile.extend(values);
        profile
    }

    /// The profile of `values` with `config`.
    pub fn from_values_with(config: NumericConfig, values: &[f64]) -> Result<Self, ProfileError> {
        let mut profile = Self::with_config(config)?;
        profile.extend(values);
        Ok(profile)
    }

    /// Adds one value: NaN counts as null, `±inf` as infinite.
    pub fn update(&mut self, x: f64) {
        if x.is_nan() {
            self.null = self.null.saturating_add(1);
            return;
        }
        if x.is_infinite() {
            self.infinite = self.infinite.saturating_add(1);
            return;
        }
        let x = x + 0.0;
        self.moments.push(x);
        self.sum.add(x);
        self.hll.insert_hash(hash_f64(x));
        if let Some(histogram) = &mut self.histogram {
            histogram.add(x);
        }
        self.kll.update(x);
        if let Some(exact) = &mut self.exact {
            if exact.values.len() < self.exact_limit {
                exact.push(x);
            } else {
                self.exact = None;
            }
        }
    }

    /// Counts one missing value.
    pub fn update_null(&mut self) {
        self.null = self.null.saturating_add(1);
    }

    /// Adds a batch of values: the fast path.
    pub fn extend(&mut self, values: &[f64]) {
        if let Some(exact) = &self.exact {
            let room = self.exact_limit.saturating_sub(exact.values.len());
            if values.len() > room && values.iter().filter(|x| x.is_finite()).count() > room {
                self.exact = None;
            }
        }
        let mut finite = Vec::with_capacity(CHUNK.min(values.len()));
        for chunk in values.chunks(CHUNK) {
            finite.clear();
            if chunk.iter().all(|x| x.is_finite()) {
                finite.extend(chunk.iter().map(|&x| x + 0.0));
            } else {
                for &x in chunk {
                    if x.is_finite() {
                        finite.push(x + 0.0);
                    } else if x.is_nan() {
                        self.null = self.null.saturating_add(1);
                    } else {
                        self.infinite = self.infinite.saturating_add(1);
                    }
                }
            }
            self.absorb_finite(&finite);
        }
    }

    /// Adds a batch of values where `None` is null.
    pub fn extend_nullable<I: IntoIterator<Item = Option<f64>>>(&mut self, values: I) {
        let mut finite = Vec::with_capacity(CHUNK);
        for value in values {
            match value {
                Some(x) if x.is_finite() => finite.push(x + 0.0),
                Some(x) if x.is_infinite() => self.infinite = self.infinite.saturating_add(1),
                _ => self.null = self.null.saturating_add(1),
            }
            if finite.len() == CHUNK {
                self.absorb_finite(&finite);
                finite.clear();
            }
        }
        self.absorb_finite(&finite);
    }

    /// Adds finite values with `-0.0` already normalized.
    fn absorb_finite(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        self.moments.merge(&Moments::of_chunk(values));
        for &x in values {
            self.sum.add(x);
        }
        for &x in values {
            self.hll.insert_hash(hash_f64(x));
        }
        if let Some(histogram) = &mut self.histogram {
            for &x in values {
                histogram.add(x);
            }
        }
        self.kll.extend(values);
        if let Some(exact) = &mut self.exact {
            if exact.values.len() + values.len() <= self.exact_limit {
                exact.extend(values);
            } else {
                self.exact = None;
            }
        }
    }

    /// Adds another profile of the same column. Fails, changing nothing,
    /// when the KLL `k`, HyperLogLog precision or histogram edges differ.
    /// The merged profile keeps the smaller exact limit.
    pub fn merge(&mut self, other: &NumericProfile) -> Result<(), ProfileError> {
        self.check_compatible(other)?;
        self.null = self.null.saturating_add(other.null);
        self.infinite = self.infinite.saturating_add(other.infinite);
        self.moments.merge(&other.moments);
        self.sum.merge(&other.sum);
        self.kll.merge(&other.kll)?;
        self.hll.merge(&other.hll)?;
        if let (Some(a), Some(b)) = (&mut self.histogram, &other.histogram) {
            a.merge(b);
        }
        self.exact_limit = self.exact_limit.min(other.exact_limit);
        self.exact = match (self.exact.take(), &other.exact) {
            (Some(mut a), Some(b)) if a.values.len() + b.values.len() <= self.exact_limit => {
                a.merge(b);
                Some(a)
            }
            _ => None,
        };
        Ok(())
    }

    pub(crate) fn check_compatible(&self, other: &NumericProfile) -> Result<(), ProfileError> {
        self.kll.check_compatible(&other.kll)?;
        self.hll.check_compatible(&other.hll)?;
        let left = self.histogram.as_ref().map(Histogram::edges);
        let right = other.histogram.as_ref().map(Histogram::edges);
        if left != right {
            return Err(ProfileError::EdgesMismatch {
                left: left.map(<[f64]>::to_vec),
                right: right.map(<[f64]>::to_vec),
            });
        }
        Ok(())
    }

    /// Every value seen: null, infinite and finite.
    pub fn count(&self) -> u64 {
        self.null
            .saturating_add(self.infinite)
            .saturating_add(self.moments.n)
    }

    /// Nulls and NaN.
    pub fn null_count(&self) -> u64 {
        self.null
    }

    /// `+inf` and `-inf`.
    pub fn infinite_count(&self) -> u64 {
        self.infinite
    }

    /// The values every other statistic describes.
    pub fn finite_count(&self) -> u64 {
        self.moments.n
    }

    pub fn min(&self) -> Option<f64> {
        (self.moments.n > 0).then_some(self.moments.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.moments.n > 0).then_some(self.moments.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.moments.n > 0).then_some(self.moments.mean)
    }

    /// The sample variance (`n − 1` denominator); `None` below two values.
    pub fn variance(&self) -> Option<f64> {
        (self.moments.n > 1).then(|| self.moments.m2 / (self.moments.n - 1) as f64)
    }

    /// The population variance (`n` denominator).
    pub fn population_variance(&self) -> Option<f64> {
        (self.moments.n > 0).then(|| self.moments.m2 / self.moments.n as f64)
    }

    /// The sample standard deviation.
    pub fn std_dev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    /// The exact sum of the finite values, rounded once to the nearest
    /// `f64`: the same whatever the order or grouping of the values and
    /// merges; `±inf` only when the true sum is beyond the `f64` range.
    pub fn sum(&self) -> f64 {
        self.sum.value()
    }

    /// Whether the profile still holds every finite value.
    pub fn is_exact(&self) -> bool {
        self.exact.is_some()
    }

    pub fn exact_limit(&self) -> usize {
        self.exact_limit
    }

    /// The finite values, sorted, while the profile is exact.
    pub fn exact_values(&self) -> Option<Cow<'_, [f64]>> {
        self.exact.as_ref().map(ExactValues::sorted)
    }

    pub fn kll(&self) -> &KllSketch {
        &self.kll
    }

    pub fn hll(&self) -> &HyperLogLog {
        &self.hll
    }

    pub fn histogram(&self) -> Option<&Histogram> {
        self.histogram.as_ref()
    }

    /// The largest error of [`rank`](Self::rank) as a fraction of the
    /// finite count: 0 in exact mode, otherwise the KLL ε for `k`
    /// (99% confidence, all ranks at once).
    pub fn rank_error_bound(&self) -> f64 {
        if self.exact.is_some() {
            0.0
        } else {
            self.kll.normalized_rank_error()
        }
    }

    /// The number of distinct finite values: exact in exact mode, else the
    /// HyperLogLog estimate.
    pub fn distinct_count(&self) -> f64 {
        match &self.exact {
            Some(exact) => {
                let sorted = exact.sorted();
                let mut distinct = 0usize;
                let mut previous = None;
                for &x in sorted.iter() {
                    if previous != Some(x) {
                        distinct += 1;
                        previous = Some(x);
                    }
                }
                distinct as f64
            }
            None => self.hll.estimate(),
        }
    }

    /// The step-function CDF of the finite values: exact or from the KLL
    /// sketch.
    pub(crate) fn cdf(&self) -> Option<Cdf<'_>> {
        match &self.exact {
            Some(exact) if !exact.values.is_empty() => Some(Cdf {
                total: exact.values.len() as u64,
                values: exact.sorted(),
                cumulative: None,
            }),
            Some(_) => None,
            None => self.kll.cdf(),
        }
    }

    /// The `q`-quantile of the finite values: the smallest value `x` with
    /// rank(x) ≥ q (numpy's `inverted_cdf`); exact in exact mode, and
    /// `min`/`max` for q = 0/1. `Ok(None)` without finite values.
    pub fn quantile(&self, q: f64) -> Result<Option<f64>, ProfileError> {
        Ok(self.quantiles(&[q])?.map(|qs| qs[0]))
    }

    /// Several quantiles from one pass over the sketch.
    pub fn quantiles(&self, qs: &[f64]) -> Result<Option<Vec<f64>>, ProfileError> {
        if let Some(&q) = qs.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(ProfileError::InvalidArgument {
                name: "q",
                value: q,
                expected: "a probability in [0, 1]",
            });
        }
        let (Some(cdf), Some(min), Some(max)) = (self.cdf(), self.min(), self.max()) else {
            return Ok(None);
        };
        Ok(Some(
            qs.iter()
                .map(|&q| {
                    if q == 0.0 {
                        min
                    } else if q == 1.0 {
                        max
                    } else {
                        // Not `clamp`: it panics when min > max.
                        cdf.quantile(q).max(min).min(max)
                    }
                })
                .collect(),
        ))
    }

    /// The fraction of finite values `≤ x` (the empirical CDF at `x`);
    /// within [`rank_error_bound`](Self::rank_error_bound) of the truth.
    /// `Ok(None)` without finite values.
    pub fn rank(&self, x: f64) -> Result<Option<f64>, ProfileError> {
        if x.is_nan() {
            return Err(ProfileError::InvalidArgument {
                name: "x",
                value: x,
                expected: "a number, not NaN",
            });
        }
        Ok(self.cdf().map(|cdf| cdf.rank(x)))
    }

    /// Same as [`rank`](Self::rank).
    pub fn cdf_at(&self, x: f64) -> Result<Option<f64>, ProfileError> {
        self.rank(x)
    }

    /// [`rank`](Self::rank) at several points from one pass over the
    /// sketch.
    pub fn ranks(&self, xs: &[f64]) -> Result<Option<Vec<f64>>, ProfileError> {
        if let Some(&x) = xs.iter().find(|x| x.is_nan()) {
            return Err(ProfileError::InvalidArgument {
                name: "x",
                value: x,
                expected: "a number, not NaN",
            });
        }
        Ok(self
            .cdf()
            .map(|cdf| xs.iter().map(|&x| cdf.rank(x)).collect()))
    }
}
