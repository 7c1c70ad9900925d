//! Label bookkeeping shared by the classification and fairness metrics: the
//! binary check behind every `pos_label` and the label → index map behind
//! every multiclass count.

use crate::{QualityError, Result, invalid};

/// Labels spanning at most this many consecutive integers get a direct
/// lookup table (4 MiB at most) instead of a binary search.
const DENSE_SPAN: u64 = 1 << 20;

/// Checks, one label at a time, that a column (or the union of two) holds
/// at most two distinct labels: the slow path of [`Binary`], which knows
/// what to say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinaryScan {
    pos_label: i64,
    /// The first two distinct labels other than `pos_label` seen so far.
    others: [Option<i64>; 2],
}

impl BinaryScan {
    pub(crate) fn new(pos_label: i64) -> Self {
        BinaryScan {
            pos_label,
            others: [None, None],
        }
    }

    /// Whether `label` is positive; an error if it is a third distinct
    /// label (`name` is the column's name for the message).
    #[inline]
    pub(crate) fn positive(&mut self, name: &str, label: i64) -> Result<bool> {
        if label == self.pos_label {
            return Ok(true);
        }
        match self.others {
            [Some(a), _] if a == label => {}
            [Some(_), Some(b)] if b == label => {}
            [None, _] => self.others[0] = Some(label),
            [Some(_), None] => self.others[1] = Some(label),
            [Some(a), Some(b)] => {
                let mut labels = vec![a, b, label];
                labels.sort_unstable();
                return Err(QualityError::NotBinary {
                    name: name.to_string(),
                    labels,
                });
            }
        }
        Ok(false)
    }

    /// Ends the scan: two labels besides `pos_label` are an error too, one
    /// that says `pos_label` is missing when no row held it (scikit-learn's
    /// "pos_label is not a valid label"), a third label otherwise.
    pub(crate) fn finish(self, name: &str, positives: usize) -> Result<()> {
        if let [Some(a), Some(b)] = self.others {
            let (a, b) = (a.min(b), a.max(b));
            if positives == 0 {
                return Err(invalid(
                    "pos_label",
                    format!(
                        "{} is not one of the labels in {name} ({a} and {b}); pass one of them",
                        self.pos_label
                    ),
                ));
            }
            let mut labels = vec![a, b, self.pos_label];
            labels.sort_unstable();
            return Err(QualityError::NotBinary {
                name: name.to_string(),
                labels,
            });
        }
        Ok(())
    }
}

/// Binary labels, checked without a branch per row: the negative label is
/// the first label other than `pos_label`, and a pass counts the *strays*
/// (labels that are neither) alongside its real work; only when there are
/// some does [`Binary::check`] rescan with [`BinaryScan`] to say exactly
/// what is wrong. (A branch on random labels costs more than the metric.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binary {
    pos: i64,
    neg: i64,
}

impl Binary {
    pub(crate) fn new(pos_label: i64, columns: &[&[i64]]) -> Binary {
        let neg = columns
            .iter()
            .flat_map(|c| c.iter())
            .copied()
            .find(|&l| l != pos_label)
            .unwrap_or(pos_label);
        Binary {
            pos: pos_label,
            neg,
        }
    }

    #[inline]
    pub(crate) fn positive(&self, label: i64) -> bool {
        label == self.pos
    }

    /// 1 for a label that is neither positive nor the negative label.
    #[inline]
    pub(crate) fn stray(&self, label: i64) -> u64 {
        u64::from((label != self.pos) & (label != self.neg))
    }

    /// Ok when a pass over `columns` found no strays; otherwise the precise
    /// error (a third label, or `pos_label` missing beside two others).
    pub(crate) fn check(&self, strays: u64, name: &str, columns: &[&[i64]]) -> Result<()> {
        if strays == 0 {
            return Ok(());
        }
        let mut scan = BinaryScan::new(self.pos);
        let mut positives = 0;
        for column in columns {
            for &label in *column {
                positives += usize::from(scan.positive(name, label)?);
            }
        }
        scan.finish(name, positives)?;
        Err(invalid(name, "holds more than two distinct labels"))
    }

    /// The number of positive rows of a column, checked binary.
    pub(crate) fn count(&self, name: &str, column: &[i64]) -> Result<usize> {
        let (mut positives, mut strays) = (0usize, 0u64);
        for &label in column {
            positives += usize::from(self.positive(label));
            strays += self.stray(label);
        }
        self.check(strays, name, &[column])?;
        Ok(positives)
    }
}

/// The sorted distinct labels of some columns, and a fast map from a label
/// to its position among them.
#[derive(Debug, Clone)]
pub(crate) struct LabelIndex {
    labels: Vec<i64>,
    min: i64,
    /// `table[label - min]` is the label's index, when the labels span a
    /// small range; otherwise a binary search in `labels`.
    table: Option<Vec<u32>>,
}

impl LabelIndex {
    /// The labels of the union of `columns` (at least one non-empty).
    pub(crate) fn of(columns: &[&[i64]]) -> LabelIndex {
        let mut min = i64::MAX;
        let mut max = i64::MIN;
        for column in columns {
            for &v in *column {
                min = min.min(v);
                max = max.max(v);
            }
        }
        if min > max {
            return LabelIndex {
                labels: Vec::new(),
                min: 0,
                table: None,
            };
        }
        let span = (i128::from(max) - i128::from(min)) as u128;
        if span < u128::from(DENSE_SPAN) {
            let mut table = vec![u32::MAX; span as usize + 1];
            for column in columns {
                for &v in *column {
                    table[(v - min) as usize] = 0;
                }
            }
            let mut labels = Vec::new();
            for (offset, slot) in table.iter_mut().enumerate() {
                if *slot == 0 {
                    *slot = labels.len() as u32;
                    labels.push(min + offset as i64);
                }
            }
            LabelIndex {
                labels,
                min,
                table: Some(table),
            }
        } else {
            let mut labels: Vec<i64> = columns.iter().flat_map(|c| c.iter().copied()).collect();
            labels.sort_unstable();
            labels.dedup();
            LabelIndex {
                labels,
                min,
                table: None,
            }
        }
    }

    pub(crate) fn labels(&self) -> &[i64] {
        &self.labels
    }

    pub(crate) fn into_labels(self) -> Vec<i64> {
        self.labels
    }

    /// The index of a label that was in the columns `of` saw.
    #[inline]
    pub(crate) fn index(&self, label: i64) -> usize {
        match &self.table {
            Some(table) => table[label.wrapping_sub(self.min) as usize] as usize,
            None => self.labels.partition_point(|&l| l < label),
        }
    }
}

/// Maps a label to the column of a score matrix whose class it is.
#[derive(Debug, Clone)]
pub(crate) struct ColumnOf {
    /// `(class, column)` sorted by class.
    sorted: Vec<(i64, usize)>,
}

impl ColumnOf {
    /// `classes` must be distinct (an error naming `name` otherwise).
    pub(crate) fn new(name: &str, classes: &[i64]) -> Result<ColumnOf> {
        let mut sorted: Vec<(i64, usize)> = classes.iter().copied().zip(0..).collect();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(invalid(
                name,
                format!("class {} is listed twice; classes must be distinct", w[0].0),
            ));
        }
        Ok(ColumnOf { sorted })
    }

    #[inline]
    pub(crate) fn column(&self, label: i64) -> Option<usize> {
        if self.sorted.len() <= 8 {
            return self.sorted.iter().find(|c| c.0 == label).map(|c| c.1);
        }
        self.sorted
            .binary_search_by_key(&label, |c| c.0)
            .ok()
            .map(|i| self.sorted[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_positives(name: &str, y: &[i64], pos_label: i64) -> Result<usize> {
        Binary::new(pos_label, &[y]).count(name, y)
    }

    #[test]
    fn binary_accepts_two_labels_and_rejects_three() {
        assert_eq!(count_positives("y", &[0, 1, 1, 0], 1), Ok(2));
        assert_eq!(count_positives("y", &[5, 5], 1), Ok(0));
        assert_eq!(count_positives("y", &[-1, 1, -1], -1), Ok(2));
        let err = count_positives("y", &[0, 1, 2], 1).unwrap_err();
        assert_eq!(
            err,
            QualityError::NotBinary {
                name: "y".into(),
                labels: vec![0, 1, 2]
            }
        );
        let err = count_positives("y", &[0, 2, 0], 1).unwrap_err();
        assert!(err.to_string().contains("pos_label"), "{err}");
        let err = count_positives("y", &[0, 2, 3], 1).unwrap_err();
        assert!(matches!(err, QualityError::NotBinary { .. }), "{err}");
        // Two columns checked as one: their union must be binary.
        let (a, b) = ([0, 1, 0], [1, 3, 1]);
        let bin = Binary::new(1, &[&a, &b]);
        let strays: u64 = a.iter().chain(&b).map(|&l| bin.stray(l)).sum();
        let err = bin.check(strays, "a and b", &[&a, &b]).unwrap_err();
        assert_eq!(
            err,
            QualityError::NotBinary {
                name: "a and b".into(),
                labels: vec![0, 1, 3]
            }
        );
    }

    #[test]
    fn label_index_dense_and_sparse() {
        let a = [3, -2, 7, 3];
        let b = [7, 10];
        let idx = LabelIndex::of(&[&a, &b]);
        assert_eq!(idx.labels(), &[-2, 3, 7, 10]);
        assert_eq!(idx.index(7), 2);
        let wide = [i64::MIN, 0, i64::MAX];
        let idx = LabelIndex::of(&[&wide]);
        assert_eq!(idx.labels(), &[i64::MIN, 0, i64::MAX]);
        assert_eq!(idx.index(i64::MAX), 2);
        assert_eq!(idx.index(i64::MIN), 0);
    }

    #[test]
    fn column_of_finds_and_rejects_duplicates() {
        let classes: Vec<i64> = (0..20).rev().collect();
        let c = ColumnOf::new("classes", &classes).unwrap();
        assert_eq!(c.column(0), Some(19));
        assert_eq!(c.column(20), None);
        let c = ColumnOf::new("classes", &[4, 2]).unwrap();
        assert_eq!(c.column(2), Some(1));
        assert!(ColumnOf::new("classes", &[1, 2, 1]).is_err());
    }
}
