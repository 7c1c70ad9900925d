//! Feature binning: each feature's values are bucketed once, before the
//! first tree, into at most `max_bins` quantile bins, and trees are grown on
//! the bin indices.
//!
//! Conventions:
//! * Values are binned **in single precision** (`x as f32`, clamped to the
//!   finite `f32` range), the precision ONNX runtimes compare in, so every
//!   split threshold is an `f32` and a model predicts the same from its
//!   JSON and from its ONNX export.
//! * Bin `k` holds the values `thresholds[k−1] < x ≤ thresholds[k]`
//!   (`thresholds` strictly increasing, one fewer than the bins), so
//!   `bin ≤ k` is exactly `x ≤ thresholds[k]`.
//! * If a feature has at most `max_bins` distinct values, each gets its own
//!   bin; otherwise bins are cut greedily to hold equal numbers of rows
//!   (the target recomputed after every cut, so a frequent value fills a bin
//!   of its own without starving the rest). A threshold lies between two
//!   neighbouring distinct values, at their midpoint rounded to `f32`.
//! * Missing values (NaN) get their own bin after the value bins (index
//!   `n_bins`), whose rows each split sends left or right by its learnt
//!   default direction.
//! * Bins are stored as `u8` (so `max_bins` ≤ 255), twice: row-major, one
//!   row's bins in one cache line for the histogram loop, and
//!   feature-major, one feature's column contiguous for partitioning.
//! * The bins are computed from at most 200,000 rows (all of them
//!   when there are fewer; otherwise an evenly spaced subset), so binning is
//!   deterministic and costs the same on huge datasets.

use crate::dataset::Dataset;

/// Rows looked at to choose the bins.
pub(crate) const SAMPLE_ROWS: usize = 200_000;

/// A value as the trees see it: `f32`, clamped to the finite range, with
/// −0 folded into +0. NaN stays NaN.
#[inline]
pub(crate) fn to_f32(x: f64) -> f32 {
    (x.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32) + 0.0
}

/// Per-feature bin boundaries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BinMapper {
    /// `thresholds[f]`: the upper bounds of feature `f`'s bins but the last.
    pub(crate) thresholds: Vec<Vec<f32>>,
}

impl BinMapper {
    /// Chooses the bins of every feature of `data`; `max_bins` ≤ 255.
    pub(crate) fn fit(data: &Dataset, max_bins: usize, threads: usize) -> BinMapper {
        let n = data.rows();
        let cols = data.cols();
        let step = n.div_ceil(SAMPLE_ROWS).max(1);
        let sample: Vec<usize> = (0..n).step_by(step).collect();
        let features: Vec<usize> = (0..cols).collect();
        let per = cols.div_ceil(threads.max(1)).max(1);
        let thresholds = std::thread::scope(|s| {
            let handles: Vec<_> = features
                .chunks(per)
                .map(|fs| {
                    let sample = &sample;
                    s.spawn(move || {
                        fs.iter()
                            .map(|&f| {
                                let values: Vec<f32> = sample
                                    .iter()
                                    .map(|&r| data.features()[r * cols + f])
                                    .filter(|v| !v.is_nan())
                                    .map(to_f32)
                                    .collect();
                                feature_thresholds(values, max_bins)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| match h.join() {
                    Ok(v) => v,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        BinMapper { thresholds }
    }

    /// Value bins of feature `f` (the missing bin is index `n_bins(f)`).
    pub(crate) fn n_bins(&self, f: usize) -> usize {
        self.thresholds[f].len() + 1
    }

    /// The bin of a value of feature `f`.
    #[inline]
    pub(crate) fn bin(&self, f: usize, x: f64) -> u8 {
        let t = &self.thresholds[f];
        if x.is_nan() {
            return t.len() as u8 + 1;
        }
        let v = to_f32(x);
        t.partition_point(|&th| th < v) as u8
    }

    /// All values binned, row-major like the data: `bins[r * cols + f]`.
    pub(crate) fn bin_all(&self, data: &Dataset, threads: usize) -> Vec<u8> {
        let cols = data.cols();
        let mut bins = vec![0u8; data.features().len()];
        crate::parallel::chunks_mut(&mut bins, threads, |start, chunk| {
            for (k, b) in chunk.iter_mut().enumerate() {
                let i = start + k;
                *b = self.bin(i % cols, data.features()[i]);
            }
        });
        bins
    }
}

/// Row-major bins (`rows × cols`) transposed to feature-major
/// (`columns[f * rows + r]`), for partitioning rows by one feature.
pub(crate) fn transpose(bins: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let mut columns = vec![0u8; bins.len()];
    for (r, row) in bins.chunks_exact(cols).enumerate() {
        for (f, &b) in row.iter().enumerate() {
            columns[f * rows + r] = b;
        }
    }
    debug_assert_eq!(columns.len(), rows * cols);
    columns
}

/// The thresholds of one feature from its non-missing values.
fn feature_thresholds(mut values: Vec<f32>, max_bins: usize) -> Vec<f32> {
    if values.is_empty() {
        return Vec::new();
    }
    values.sort_unstable_by(f32::total_cmp);
    let mut distinct: Vec<(f32, usize)> = Vec::new();
    for v in values {
        match distinct.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => distinct.push((v, 1)),
        }
    }
    let mut cuts: Vec<usize> = Vec::new(); // cut after distinct[i]
    if distinct.len() <= max_bins {
        cuts.extend(0..distinct.len() - 1);
    } else {
        let mut remaining: usize = distinct.iter().map(|d| d.1).sum();
        let mut bins_left = max_bins;
        let mut in_bin = 0usize;
        for (i, &(_, count)) in distinct.iter().enumerate().take(distinct.len() - 1) {
            in_bin += count;
            let target = remaining as f64 / bins_left as f64;
            // Cut when this bin is full, or when the next value alone would
            // overfill it by more than it would underfill it now.
            let next = distinct[i + 1].1 as f64;
            if in_bin as f64 >= target || (in_bin as f64 + next - target) > (target - in_bin as f64)
            {
                cuts.push(i);
                remaining -= in_bin;
                in_bin = 0;
                bins_left -= 1;
                if bins_left == 1 {
                    break;
                }
            }
        }
    }
    cuts.into_iter()
        .map(|i| {
            let (a, b) = (distinct[i].0, distinct[i + 1].0);
            let mid = ((f64::from(a) + f64::from(b)) / 2.0) as f32;
            if mid < b { mid } else { a }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each() {
        let t = feature_thresholds(vec![3.0, 1.0, 2.0, 1.0, 3.0], 255);
        assert_eq!(t, vec![1.5, 2.5]);
        assert!(feature_thresholds(vec![7.0; 4], 255).is_empty());
        assert!(feature_thresholds(vec![], 255).is_empty());
    }

    #[test]
    fn quantile_bins_are_balanced_and_bounded() {
        let values: Vec<f32> = (0..10_000).map(|i| (i as f32).sqrt()).collect();
        let t = feature_thresholds(values.clone(), 16);
        assert!(t.len() <= 15 && t.len() >= 14, "{}", t.len());
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        let mut counts = vec![0usize; t.len() + 1];
        for v in values {
            counts[t.partition_point(|&th| th < v)] += 1;
        }
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*hi <= 2 * *lo, "{counts:?}");
    }

    #[test]
    fn a_frequent_value_gets_its_own_bin() {
        let mut values = vec![0.0f32; 5000];
        values.extend((1..=5000).map(|i| i as f32));
        let t = feature_thresholds(values, 8);
        assert_eq!(t[0], 0.5, "{t:?}");
        assert!(t.len() <= 7);
    }

    #[test]
    fn thresholds_separate_neighbouring_f32_values() {
        let a = 1.0f32;
        let b = f32::from_bits(a.to_bits() + 1);
        let t = feature_thresholds(vec![a, b], 255);
        assert_eq!(t, vec![a]);
        let m = BinMapper {
            thresholds: vec![t],
        };
        assert_eq!(m.bin(0, f64::from(a)), 0);
        assert_eq!(m.bin(0, f64::from(b)), 1);
        assert_eq!(m.bin(0, f64::NAN), 2);
        assert_eq!(m.bin(0, 1e300), 1);
        assert_eq!(m.bin(0, -0.0), 0);
    }

    use proptest::prelude::*;

    proptest! {
        /// Thresholds increase strictly, there are at most `max_bins` bins,
        /// "bin ≤ k" is "x ≤ thresholds[k]", and few distinct values each
        /// get a bin of their own.
        #[test]
        fn binning_invariants(
            values in proptest::collection::vec(
                prop_oneof![(-50i32..50).prop_map(|v| f64::from(v) / 4.0), -1e6f64..1e6],
                1..400,
            ),
            max_bins in 2usize..=255,
        ) {
            let t = feature_thresholds(values.iter().map(|&v| to_f32(v)).collect(), max_bins);
            prop_assert!(t.len() < max_bins);
            prop_assert!(t.windows(2).all(|w| w[0] < w[1]));
            let m = BinMapper { thresholds: vec![t.clone()] };
            for &v in &values {
                let b = usize::from(m.bin(0, v));
                for (k, &th) in t.iter().enumerate() {
                    prop_assert_eq!(b <= k, to_f32(v) <= th);
                }
            }
            let mut distinct: Vec<f32> = values.iter().map(|&v| to_f32(v)).collect();
            distinct.sort_by(f32::total_cmp);
            distinct.dedup();
            if distinct.len() <= max_bins {
                prop_assert_eq!(t.len() + 1, distinct.len());
            }
        }
    }
}
