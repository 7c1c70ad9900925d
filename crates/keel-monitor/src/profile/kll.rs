//! The KLL quantile sketch (Karnin, Lang and Liberty, 2016) in its lazy
//! form: a stack of compactors, level `h` holding items of weight `2^h`,
//! with capacity `max(8, ⌈k·(2/3)^(depth)⌉)` at depth `depth` below the top.
//!
//! When the sketch holds more items than its total capacity, the lowest
//! level at or over its capacity is sorted and every other item (a random
//! half: odd or even positions) moves up a level at twice the weight. One
//! compaction moves any rank by at most its weight; the random choice makes
//! those errors cancel, which gives the documented bound
//! [`normalized_rank_error`]. Merging concatenates the levels and compacts:
//! the merged sketch has the same guarantee as one built from all the data.
//!
//! Randomness comes from a SplitMix64 stream whose state is part of the
//! sketch (and of its JSON), so the same inputs in the same order give the
//! same sketch on any machine.

use serde::{Deserialize, Serialize};

use super::ProfileError;

/// Default `k`: 1.33% single-sided normalized rank error.
pub const DEFAULT_KLL_K: u16 = 200;
/// Smallest supported `k` (the minimum level width).
pub const MIN_KLL_K: u16 = 8;
/// Default seed of the compaction coin flips.
pub const DEFAULT_KLL_SEED: u64 = 0x4b45_454c_4b4c_4c31;

const MIN_WIDTH: usize = 8;
/// Weights are `2^h` in a `u64`.
const MAX_LEVELS: usize = 64;

/// The normalized rank error ε of a KLL sketch with parameter `k`:
/// `2.296 / k^0.9723`, the 99th percentile of the largest rank error over
/// all queries found empirically by Apache DataSketches for this scheme
/// (1.33% for `k = 200`, 0.21% for `k = 1600`). For any `x`, with 99%
/// confidence, `|rank̂(x) − rank(x)| ≤ ε` for every `x` at once.
pub fn normalized_rank_error(k: u16) -> f64 {
    2.296 / f64::from(k).powf(0.9723)
}

/// A KLL sketch of finite `f64` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "KllRepr", into = "KllRepr")]
pub struct KllSketch {
    k: u16,
    /// Total weight: the number of values the sketch summarizes.
    n: u64,
    /// `levels[h]` holds items of weight `2^h`; levels above 0 are sorted.
    levels: Vec<Vec<f64>>,
    /// SplitMix64 state for the compaction coin flips.
    rng: u64,
    /// Derived: items held, and the total capacity for `levels.len()`.
    retained: usize,
    capacity: usize,
}

impl Default for KllSketch {
    fn default() -> Self {
        Self::with_valid_k(DEFAULT_KLL_K, DEFAULT_KLL_SEED)
    }
}

impl KllSketch {
    /// An empty sketch; `k` must be at least 8.
    pub fn new(k: u16, seed: u64) -> Result<Self, ProfileError> {
        check_k(k)?;
        Ok(Self::with_valid_k(k, seed))
    }

    fn with_valid_k(k: u16, seed: u64) -> Self {
        let mut sketch = Self {
            k,
            n: 0,
            levels: vec![Vec::new()],
            rng: seed,
            retained: 0,
            capacity: 0,
        };
        sketch.capacity = sketch.total_capacity();
        sketch
    }

    pub fn k(&self) -> u16 {
        self.k
    }

    /// The number of values summarized.
    pub fn n(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The number of items the sketch holds.
    pub fn retained(&self) -> usize {
        self.retained
    }

    /// ε for this sketch's `k` (see [`normalized_rank_error`]).
    pub fn normalized_rank_error(&self) -> f64 {
        normalized_rank_error(self.k)
    }

    /// Adds one finite value (callers filter NaN and infinities).
    #[inline]
    pub fn update(&mut self, x: f64) {
        self.levels[0].push(x);
        self.n = self.n.saturating_add(1);
        self.retained += 1;
        if self.retained > self.capacity {
            self.compress();
        }
    }

    /// Adds finite values at once: they join level 0 together and are
    /// compacted together, which never has more error than adding them one
    /// at a time (fewer, larger compactions).
    pub fn extend(&mut self, values: &[f64]) {
        self.levels[0].extend_from_slice(values);
        self.n = self.n.saturating_add(values.len() as u64);
        self.retained += values.len();
        if self.retained > self.capacity {
            self.compress();
        }
    }

    /// Adds another sketch with the same `k`.
    pub fn merge(&mut self, other: &KllSketch) -> Result<(), ProfileError> {
        self.check_compatible(other)?;
        if other.n == 0 {
            return Ok(());
        }
        while self.levels.len() < other.levels.len() {
            self.levels.push(Vec::new());
        }
        self.levels[0].extend_from_slice(&other.levels[0]);
        for (h, items) in other.levels.iter().enumerate().skip(1) {
            if !items.is_empty() {
                let mine = std::mem::take(&mut self.levels[h]);
                self.levels[h] = merge_sorted(&mine, items);
            }
        }
        self.n = self.n.saturating_add(other.n);
        self.retained += other.retained;
        // A merged stream of coin flips that depends on both sketches.
        self.rng = splitmix(&mut (self.rng ^ other.rng.rotate_left(23)));
        self.capacity = self.total_capacity();
        self.compress();
        Ok(())
    }

    pub(crate) fn check_compatible(&self, other: &KllSketch) -> Result<(), ProfileError> {
        if self.k != other.k {
            return Err(ProfileError::ParameterMismatch {
                parameter: "kll_k",
                left: u64::from(self.k),
                right: u64::from(other.k),
            });
        }
        Ok(())
    }

    /// The estimated fraction of values `≤ x`; `None` when empty or `x` is
    /// NaN.
    pub fn rank(&self, x: f64) -> Option<f64> {
        if x.is_nan() {
            return None;
        }
        self.cdf().map(|cdf| cdf.rank(x))
    }

    /// The smallest retained value whose estimated rank is at least `q`;
    /// `None` when empty or `q` is not in `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        self.cdf().map(|cdf| cdf.quantile(q))
    }

    /// The weighted, sorted items: the sketch's step-function CDF.
    pub(crate) fn cdf(&self) -> Option<Cdf<'static>> {
        if self.retained == 0 {
            return None;
        }
        let mut items: Vec<(f64, u64)> = Vec::with_capacity(self.retained);
        for (h, level) in self.levels.iter().enumerate() {
            let weight = 1u64 << h;
            items.extend(level.iter().map(|&x| (x, weight)));
        }
        items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut cumulative = Vec::with_capacity(items.len());
        let mut total = 0u64;
        let values = items
            .iter()
            .map(|&(x, w)| {
                total = total.saturating_add(w);
                cumulative.push(total);
                x
            })
            .collect();
        Some(Cdf {
            values: std::borrow::Cow::Owned(values),
            cumulative: Some(cumulative),
            total,
        })
    }

    fn level_capacity(&self, h: usize) -> usize {
        level_capacity(self.k, self.levels.len() - 1 - h)
    }

    fn total_capacity(&self) -> usize {
        (0..self.levels.len()).map(|h| self.level_capacity(h)).sum()
    }

    fn compress(&mut self) {
        while self.retained > self.capacity {
            let Some(h) =
                (0..self.levels.len()).find(|&h| self.levels[h].len() >= self.level_capacity(h))
            else {
                return;
            };
            if h + 1 == self.levels.len() {
                if self.levels.len() >= MAX_LEVELS {
                    return;
                }
                self.levels.push(Vec::new());
                self.capacity = self.total_capacity();
            }
            self.compact(h);
        }
    }

    /// Halves level `h` into level `h + 1`.
    fn compact(&mut self, h: usize) {
        let mut items = std::mem::take(&mut self.levels[h]);
        if h == 0 {
            sort_finite(&mut items);
        }
        // An odd item out stays at this level with its weight: no error.
        let leftover = if items.len() % 2 == 1 {
            items.pop()
        } else {
            None
        };
        let offset = (splitmix(&mut self.rng) >> 63) as usize;
        let promoted: Vec<f64> = items.iter().skip(offset).step_by(2).copied().collect();
        let above = std::mem::take(&mut self.levels[h + 1]);
        self.levels[h + 1] = merge_sorted(&above, &promoted);
        self.retained -= items.len() - promoted.len();
        items.clear();
        items.extend(leftover);
        self.levels[h] = items;
    }
}

pub(crate) fn check_k(k: u16) -> Result<(), ProfileError> {
    if k >= MIN_KLL_K {
        Ok(())
    } else {
        Err(ProfileError::InvalidParameter {
            name: "kll_k",
            value: k.to_string(),
            expected: "an integer in 8..=65535",
        })
    }
}

/// `max(8, ⌈k·(2/3)^depth⌉)` in integers, so that every machine agrees.
fn level_capacity(k: u16, depth: usize) -> usize {
    if depth > 60 {
        return MIN_WIDTH;
    }
    let numerator = u128::from(k) << depth;
    let denominator = 3u128.pow(depth as u32);
    (numerator.div_ceil(denominator) as usize).max(MIN_WIDTH)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sorts finite values through order-preserving integer keys: twice as
/// fast as comparing with `f64::total_cmp`.
fn sort_finite(values: &mut [f64]) {
    fn key(x: f64) -> u64 {
        let bits = x.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        }
    }
    fn value(key: u64) -> f64 {
        f64::from_bits(if key >> 63 == 1 {
            key & !(1 << 63)
        } else {
            !key
        })
    }
    let mut keys: Vec<u64> = values.iter().map(|&x| key(x)).collect();
    keys.sort_unstable();
    for (x, k) in values.iter_mut().zip(keys) {
        *x = value(k);
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

/// A step-function CDF over sorted values: from a sketch (weighted) or from
/// exact values (every weight 1).
#[derive(Clone, Debug)]
pub(crate) struct Cdf<'a> {
    pub(crate) values: std::borrow::Cow<'a, [f64]>,
    /// Inclusive cumulative weights; `None` means unit weights.
    pub(crate) cumulative: Option<Vec<u64>>,
    pub(crate) total: u64,
}

impl Cdf<'_> {
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The total weight of the first `i + 1` values.
    #[inline]
    pub(crate) fn cumulative_at(&self, i: usize) -> u64 {
        match &self.cumulative {
            Some(c) => c[i],
            None => i as u64 + 1,
        }
    }

    /// The total weight of values `≤ x`.
    pub(crate) fn weight_at_most(&self, x: f64) -> u64 {
        let below = self.values.partition_point(|&v| v <= x);
        if below == 0 {
            0
        } else {
            self.cumulative_at(below - 1)
        }
    }

    pub(crate) fn rank(&self, x: f64) -> f64 {
        self.weight_at_most(x) as f64 / self.total as f64
    }

    /// The smallest value whose rank is at least `q` (`q` in `[0, 1]`).
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        let target = q * self.total as f64;
        let index = match &self.cumulative {
            Some(c) => c.partition_point(|&w| (w as f64) < target),
            None => (target.ceil().max(1.0) as usize).saturating_sub(1),
        };
        let last = self.values.len().saturating_sub(1);
        self.values
            .get(index.min(last))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

/// The wire form, validated on the way in.
#[derive(Serialize, Deserialize)]
struct KllRepr {
    k: u16,
    n: u64,
    levels: Vec<Vec<f64>>,
    rng: u64,
}

impl From<KllSketch> for KllRepr {
    fn from(s: KllSketch) -> Self {
        Self {
            k: s.k,
            n: s.n,
            levels: s.levels,
            rng: s.rng,
        }
    }
}

impl TryFrom<KllRepr> for KllSketch {
    type Error = String;

    fn try_from(repr: KllRepr) -> Result<Self, Self::Error> {
        check_k(repr.k).map_err(|e| e.to_string())?;
        if repr.levels.is_empty() || repr.levels.len() > MAX_LEVELS {
            return Err(format!(
                "a KLL sketch has 1 to {MAX_LEVELS} levels, got {}",
                repr.levels.len()
            ));
        }
        let mut levels = repr.levels;
        for x in levels.iter_mut().flatten() {
            *x += 0.0;
        }
        let mut weight = 0u128;
        for (h, level) in levels.iter().enumerate() {
            if let Some(bad) = level.iter().find(|x| !x.is_finite()) {
                return Err(format!("KLL level {h} holds the non-finite value {bad}"));
            }
            if h > 0 && !level.is_sorted_by(|a, b| a <= b) {
                return Err(format!("KLL level {h} is not sorted"));
            }
            weight += (level.len() as u128) << h;
        }
        if weight != u128::from(repr.n) {
            return Err(format!(
                "KLL items weigh {weight} in total but n is {}",
                repr.n
            ));
        }
        let mut sketch = Self {
            k: repr.k,
            n: repr.n,
            retained: levels.iter().map(Vec::len).sum(),
            levels,
            rng: repr.rng,
            capacity: 0,
        };
        sketch.capacity = sketch.total_capacity();
        Ok(sketch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_stats::Rng;

    /// The largest |rank̂(x) − rank(x)| over every value of the data.
    fn max_rank_error(sketch: &KllSketch, data: &[f64]) -> f64 {
        let mut sorted = data.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let cdf = sketch.cdf().unwrap();
        let mut worst = 0.0f64;
        let mut i = 0;
        while i < sorted.len() {
            let x = sorted[i];
            while i < sorted.len() && sorted[i] == x {
                i += 1;
            }
            worst = worst.max((cdf.rank(x) - i as f64 / n).abs());
        }
        worst
    }

    fn normal_data(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::from_seed(seed);
        (0..n).map(|_| rng.normal()).collect()
    }

    #[test]
    fn capacities() {
        assert_eq!(level_capacity(200, 0), 200);
        assert_eq!(level_capacity(200, 1), 134);
        assert_eq!(level_capacity(200, 2), 89);
        assert_eq!(level_capacity(200, 20), 8);
        assert_eq!(level_capacity(200, 200), 8);
        assert!((normalized_rank_error(200) - 0.0133).abs() < 0.0001);
    }

    #[test]
    fn small_inputs_are_exact() {
        let mut sketch = KllSketch::default();
        assert_eq!(sketch.quantile(0.5), None);
        assert_eq!(sketch.rank(1.0), None);
        for x in [3.0, 1.0, 2.0] {
            sketch.update(x);
        }
        assert_eq!(sketch.quantile(0.0), Some(1.0));
        assert_eq!(sketch.quantile(0.5), Some(2.0));
        assert_eq!(sketch.quantile(1.0), Some(3.0));
        assert_eq!(sketch.rank(2.0), Some(2.0 / 3.0));
        assert_eq!(sketch.rank(0.0), Some(0.0));
        assert_eq!(sketch.quantile(1.5), None);
        assert_eq!(sketch.rank(f64::NAN), None);
    }

    #[test]
    fn rank_error_on_a_million_values_is_within_epsilon() {
        let data = normal_data(1_000_000, 7);
        let epsilon = normalized_rank_error(DEFAULT_KLL_K);
        let mut batch = KllSketch::default();
        for chunk in data.chunks(4096) {
            batch.extend(chunk);
        }
        let batch_error = max_rank_error(&batch, &data);
        let mut streamed = KllSketch::default();
        for &x in &data {
            streamed.update(x);
        }
        let streamed_error = max_rank_error(&streamed, &data);
        assert!(batch_error <= epsilon, "batch: {batch_error} > {epsilon}");
        assert!(
            streamed_error <= epsilon,
            "streamed: {streamed_error} > {epsilon}"
        );
        assert!(batch.retained() < 3 * 200 + 100, "{}", batch.retained());
        assert_eq!(batch.n(), 1_000_000);
        println!(
            "max rank error: batch {batch_error:.5}, streamed {streamed_error:.5}, eps {epsilon:.5}"
        );
    }

    #[test]
    fn deterministic_given_the_seed() {
        let data = normal_data(50_000, 1);
        let a = {
            let mut s = KllSketch::new(64, 9).unwrap();
            s.extend(&data);
            s
        };
        let b = {
            let mut s = KllSketch::new(64, 9).unwrap();
            s.extend(&data);
            s
        };
        assert_eq!(a, b);
        let c = {
            let mut s = KllSketch::new(64, 10).unwrap();
            s.extend(&data);
            s
        };
        assert_ne!(a, c);
    }

    #[test]
    fn merged_sketches_keep_the_bound() {
        let data = normal_data(300_000, 3);
        let mut merged = KllSketch::default();
        for (i, part) in data.chunks(7_777).enumerate() {
            let mut sketch = KllSketch::new(DEFAULT_KLL_K, i as u64).unwrap();
            sketch.extend(part);
            merged.merge(&sketch).unwrap();
        }
        assert_eq!(merged.n(), 300_000);
        let error = max_rank_error(&merged, &data);
        assert!(error <= normalized_rank_error(200), "{error}");
        let other = KllSketch::new(100, 0).unwrap();
        assert!(merged.merge(&other).is_err());
    }

    #[test]
    fn json_round_trip_and_validation() {
        let mut sketch = KllSketch::new(16, 5).unwrap();
        sketch.extend(&normal_data(1000, 2));
        let json = serde_json::to_string(&sketch).unwrap();
        let back: KllSketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sketch);
        for bad in [
            r#"{"k":4,"n":0,"levels":[[]],"rng":0}"#,
            r#"{"k":8,"n":0,"levels":[],"rng":0}"#,
            r#"{"k":8,"n":3,"levels":[[1.0]],"rng":0}"#,
            r#"{"k":8,"n":5,"levels":[[1.0],[3.0,2.0]],"rng":0}"#,
        ] {
            assert!(serde_json::from_str::<KllSketch>(bad).is_err(), "{bad}");
        }
    }
}
