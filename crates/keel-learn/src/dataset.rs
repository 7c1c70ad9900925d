//! The training data every trainer takes: a dense row-major matrix of `f64`
//! features with names, and one `f64` label per row.
//!
//! Conventions:
//! * A NaN feature is a *missing value*. Gradient-boosted trees route it by
//!   a direction learnt at each split; linear models refuse it (with its row
//!   and column) because they have no way to use it.
//! * Infinite features are refused everywhere: use NaN for "missing", and
//!   clip outliers before training.
//! * Labels must be finite; a binary objective also needs every label to be
//!   exactly 0 or 1 (checked by the trainer, which knows the objective).

use std::sync::OnceLock;

use keel_stats::Rng;

use crate::error::{LearnError, Result};

/// A dense, validated training (or validation) set. Immutable once built.
#[derive(Debug, Clone)]
pub struct Dataset {
    features: Vec<f64>,
    rows: usize,
    cols: usize,
    feature_names: Vec<String>,
    labels: Vec<f64>,
    /// [`Dataset::fingerprint`], computed on first use.
    fingerprint: OnceLock<u64>,
}

impl PartialEq for Dataset {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows
            && self.cols == other.cols
            && self.feature_names == other.feature_names
            && self.labels == other.labels
            && self.features.len() == other.features.len()
            && self
                .features
                .iter()
                .zip(&other.features)
                .all(|(a, b)| a.to_bits() == b.to_bits() || a == b)
    }
}

impl Dataset {
    /// A dataset of `labels.len()` rows and `feature_names.len()` columns;
    /// `features` is row-major (`features[row * cols + col]`).
    ///
    /// Refused, naming the field: no rows (`rows`), no features or repeated
    /// or empty names (`feature_names`), a feature matrix of the wrong size
    /// (`features`), an infinite feature (its row and column), a NaN or
    /// infinite label (its row).
    pub fn new(
        feature_names: Vec<String>,
        features: Vec<f64>,
        labels: Vec<f64>,
    ) -> Result<Dataset> {
        let rows = labels.len();
        let cols = feature_names.len();
        if rows == 0 {
            return Err(LearnError::Shape {
                field: "rows",
                message: "the dataset has no rows".into(),
            });
        }
        if cols == 0 {
            return Err(LearnError::Shape {
                field: "feature_names",
                message: "the dataset has no features".into(),
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(cols);
        for name in &feature_names {
            if name.is_empty() {
                return Err(LearnError::Shape {
                    field: "feature_names",
                    message: "a feature name is empty".into(),
                });
            }
            if !seen.insert(name.as_str()) {
                return Err(LearnError::Shape {
                    field: "feature_names",
                    message: format!("{name:?} appears twice; names must be unique"),
                });
            }
        }
        let expected = rows.checked_mul(cols).ok_or_else(|| LearnError::Shape {
            field: "features",
            message: format!("{rows} rows × {cols} columns overflows"),
        })?;
        if features.len() != expected {
            return Err(LearnError::Shape {
                field: "features",
                message: format!(
                    "has {} values, but {rows} labels × {cols} feature names need {expected}",
                    features.len()
                ),
            });
        }
        if let Some((row, &value)) = labels.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(LearnError::BadLabel {
                row,
                value,
                expected: "labels must be finite numbers",
            });
        }
        if let Some(i) = features.iter().position(|v| v.is_infinite()) {
            let (row, column) = (i / cols, i % cols);
            return Err(LearnError::BadFeature {
                row,
                column,
                name: feature_names[column].clone(),
                value: features[i],
                hint: "infinite values are not supported: use NaN for a missing value, and clip outliers",
            });
        }
        Ok(Dataset {
            features,
            rows,
            cols,
            feature_names,
            labels,
            fingerprint: OnceLock::new(),
        })
    }

    /// A dataset whose features are named `f0`, `f1`, … (`cols` of them).
    pub fn unnamed(cols: usize, features: Vec<f64>, labels: Vec<f64>) -> Result<Dataset> {
        Dataset::new(default_names(cols), features, labels)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major feature matrix.
    pub fn features(&self) -> &[f64] {
        &self.features
    }

    pub fn labels(&self) -> &[f64] {
        &self.labels
    }

    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The features of one row. Panics if `row >= rows()`.
    pub fn row(&self, row: usize) -> &[f64] {
        &self.features[row * self.cols..(row + 1) * self.cols]
    }

    /// The rows at `indices`, in that order (repeats allowed). Refused if an
    /// index is out of range or the list is empty.
    pub fn select(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.rows) {
            return Err(LearnError::Shape {
                field: "indices",
                message: format!("row {bad} is out of range (the dataset has {})", self.rows),
            });
        }
        let mut features = Vec::with_capacity(indices.len() * self.cols);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            features.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
        }
        Dataset::new(self.feature_names.clone(), features, labels)
    }

    /// Splits off a random `fraction` of the rows as a validation set:
    /// returns `(train, validation)`, each keeping the original row order.
    ///
    /// Deterministic: the rows are shuffled by Fisher–Yates with
    /// `keel_stats::Rng::from_seed(seed)` and the first
    /// `round(fraction × rows)` of the shuffle (at least 1, at most
    /// `rows − 1`) become the validation set.
    pub fn split_validation(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(LearnError::InvalidParams {
                problems: vec![crate::error::ParamProblem {
                    field: "fraction",
                    message: format!("must be in (0, 1), got {fraction}"),
                }],
            });
        }
        if self.rows < 2 {
            return Err(LearnError::Shape {
                field: "rows",
                message: "a validation split needs at least 2 rows".into(),
            });
        }
        let take = ((fraction * self.rows as f64).round() as usize).clamp(1, self.rows - 1);
        let mut order: Vec<usize> = (0..self.rows).collect();
        let mut rng = Rng::from_seed(seed);
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut valid: Vec<usize> = order[..take].to_vec();
        let mut train: Vec<usize> = order[take..].to_vec();
        valid.sort_unstable();
        train.sort_unstable();
        Ok((self.select(&train)?, self.select(&valid)?))
    }

    /// A 64-bit hash of the shape, names, feature bits and label bits
    /// (computed once). Checkpoints record it so that a run is never
    /// resumed on other data.
    pub fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| {
            let mut h = WordHash::new();
            h.write(self.rows as u64);
            h.write(self.cols as u64);
            for name in &self.feature_names {
                for b in name.bytes() {
                    h.write(u64::from(b));
                }
                h.write(u64::MAX);
            }
            for v in &self.features {
                h.write(v.to_bits());
            }
            for v in &self.labels {
                h.write(v.to_bits());
            }
            h.finish()
        })
    }

    /// Every label must be exactly 0 or 1.
    pub(crate) fn check_binary_labels(&self) -> Result<()> {
        if let Some((row, &value)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, v)| **v != 0.0 && **v != 1.0)
        {
            return Err(LearnError::BadLabel {
                row,
                value,
                expected: "a binary objective needs labels 0 or 1",
            });
        }
        Ok(())
    }

    /// No feature may be missing (NaN): for linear models.
    pub(crate) fn check_no_missing(&self) -> Result<()> {
        if let Some(i) = self.features.iter().position(|v| v.is_nan()) {
            let (row, column) = (i / self.cols, i % self.cols);
            return Err(LearnError::BadFeature {
                row,
                column,
                name: self.feature_names[column].clone(),
                value: f64::NAN,
                hint: "linear models need every feature present: impute missing values first, or train gbdt, which routes them",
            });
        }
        Ok(())
    }

    /// A validation set must have the training set's columns, by name.
    pub(crate) fn check_same_columns(&self, other: &Dataset, field: &'static str) -> Result<()> {
        if self.feature_names != other.feature_names {
            return Err(LearnError::Shape {
                field,
                message: format!(
                    "has features {:?}, the training set has {:?}",
                    other.feature_names, self.feature_names
                ),
            });
        }
        Ok(())
    }
}

pub(crate) fn default_names(cols: usize) -> Vec<String> {
    (0..cols).map(|c| format!("f{c}")).collect()
}

/// FNV-1a over 64-bit words, each word's bits mixed in by a multiply and
/// a shift: fast enough to hash millions of values on every resume.
struct WordHash(u64);

impl WordHash {
    fn new() -> Self {
        WordHash(0xcbf2_9ce4_8422_2325)
    }

    #[inline]
    fn write(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x0000_0100_0000_01b3);
        self.0 ^= self.0 >> 29;
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Dataset {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        Dataset::unnamed(2, x, (0..10).map(|i| f64::from(i % 2)).collect()).unwrap()
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = Dataset::unnamed(2, vec![1.0; 5], vec![0.0; 3]).unwrap_err();
        assert_eq!(e.fields(), ["features"]);
        let e = Dataset::unnamed(2, vec![], vec![]).unwrap_err();
        assert_eq!(e.fields(), ["rows"]);
        let e = Dataset::unnamed(0, vec![], vec![1.0]).unwrap_err();
        assert_eq!(e.fields(), ["feature_names"]);
        let e = Dataset::new(vec!["a".into(), "a".into()], vec![0.0; 2], vec![1.0]).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        let e = Dataset::unnamed(1, vec![0.0, 1.0], vec![0.0, f64::NAN]).unwrap_err();
        assert!(matches!(e, LearnError::BadLabel { row: 1, .. }), "{e}");
        let e =
            Dataset::unnamed(2, vec![0.0, 1.0, f64::INFINITY, 0.0], vec![0.0, 1.0]).unwrap_err();
        assert!(
            matches!(
                e,
                LearnError::BadFeature {
                    row: 1,
                    column: 0,
                    ..
                }
            ),
            "{e}"
        );
        // NaN features are fine (missing values).
        Dataset::unnamed(1, vec![f64::NAN], vec![0.0]).unwrap();
    }

    #[test]
    fn split_is_deterministic_and_partitions() {
        let d = small();
        let (t1, v1) = d.split_validation(0.3, 7).unwrap();
        let (t2, v2) = d.split_validation(0.3, 7).unwrap();
        assert_eq!((&t1, &v1), (&t2, &v2));
        assert_eq!((t1.rows(), v1.rows()), (7, 3));
        let mut firsts: Vec<f64> = t1
            .features()
            .chunks(2)
            .chain(v1.features().chunks(2))
            .map(|r| r[0])
            .collect();
        firsts.sort_by(f64::total_cmp);
        assert_eq!(
            firsts,
            (0..10).map(|i| f64::from(2 * i)).collect::<Vec<_>>()
        );
        let (_, v3) = d.split_validation(0.3, 8).unwrap();
        assert_ne!(v1, v3);
        assert!(d.split_validation(1.0, 0).is_err());
        assert!(d.split_validation(f64::NAN, 0).is_err());
    }

    #[test]
    fn label_and_missing_checks() {
        let d = Dataset::unnamed(1, vec![0.0, f64::NAN], vec![0.0, 2.0]).unwrap();
        assert!(matches!(
            d.check_binary_labels(),
            Err(LearnError::BadLabel { row: 1, .. })
        ));
        let e = d.check_no_missing().unwrap_err();
        assert!(e.to_string().contains("f0"), "{e}");
        assert!(matches!(
            e,
            LearnError::BadFeature {
                row: 1,
                column: 0,
                ..
            }
        ));
    }

    #[test]
    fn fingerprint_sees_every_value() {
        let d = small();
        let mut x = d.features().to_vec();
        x[13] = 13.5;
        let e = Dataset::unnamed(2, x, d.labels().to_vec()).unwrap();
        assert_ne!(d.fingerprint(), e.fingerprint());
        assert_eq!(d.fingerprint(), small().fingerprint());
    }
}
