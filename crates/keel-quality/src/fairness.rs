//! Group fairness of a binary classifier, as fairlearn 0.15 defines it.
//!
//! [`group_table`] is fairlearn's `MetricFrame(...).by_group` for the
//! metrics count, selection rate, true and false positive rate and
//! accuracy, with the groups given by one or more sensitive columns of
//! strings (several columns make intersectional groups: the tuple of
//! values). The disparity metrics are computed from it, with fairlearn's
//! `method="between_groups"` (max − min, min / max over groups) and, for
//! equalized odds, `agg="worst_case"`.
//!
//! **Undefined rates.** A group with no positive rows has no true positive
//! rate (and one with no negative rows no false positive rate). The group
//! table says so (`None`); the disparity metrics match fairlearn, which
//! computes the rates through scikit-learn's `confusion_matrix(normalize=
//! "true")` and so counts an undefined rate as **0** (`np.nan_to_num`), not
//! NaN. [`Disparities`] reports how many groups that affected, so a report
//! can say why a difference is large. A ratio whose largest rate is 0 is
//! 0/0, NaN in fairlearn and `None` here.

use serde::{Deserialize, Serialize};

use crate::metrics::labels::Binary;
use crate::{Grouper, QualityError, Result, paired};

/// The selection-rate ratio below which the four-fifths rule (US EEOC
/// Uniform Guidelines) flags adverse impact.
pub const FOUR_FIFTHS: f64 = 0.8;

/// One row of fairlearn's `MetricFrame.by_group`, with the counts behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// The group's value in each sensitive column (empty for the overall
    /// row).
    pub group: Vec<String>,
    /// Rows in the group (fairlearn's `count`).
    pub count: u64,
    /// Rows whose true label is `pos_label`.
    pub positives: u64,
    /// Rows whose prediction is `pos_label`.
    pub predicted_positives: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    /// Rows predicted correctly.
    pub correct: u64,
    /// `predicted_positives / count` (fairlearn's `selection_rate`).
    pub selection_rate: f64,
    /// `true_positives / positives`; `None` when the group has no positive
    /// row (fairlearn reports 0).
    pub true_positive_rate: Option<f64>,
    /// `false_positives / negatives`; `None` when the group has no negative
    /// row (fairlearn reports 0).
    pub false_positive_rate: Option<f64>,
    /// `correct / count`.
    pub accuracy: f64,
}

impl GroupMetrics {
    fn from_counts(group: Vec<String>, c: &Counts) -> GroupMetrics {
        let rate = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        GroupMetrics {
            group,
            count: c.count,
            positives: c.positives,
            predicted_positives: c.predicted_positives,
            true_positives: c.true_positives,
            false_positives: c.predicted_positives - c.true_positives,
            correct: c.correct,
            selection_rate: c.predicted_positives as f64 / c.count as f64,
            true_positive_rate: rate(c.true_positives, c.positives),
            false_positive_rate: rate(
                c.predicted_positives - c.true_positives,
                c.count - c.positives,
            ),
            accuracy: c.correct as f64 / c.count as f64,
        }
    }

    /// Rows whose true label is not `pos_label`.
    pub fn negatives(&self) -> u64 {
        self.count - self.positives
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    count: u64,
    positives: u64,
    predicted_positives: u64,
    true_positives: u64,
    correct: u64,
}

impl Counts {
    fn merge(&mut self, o: &Counts) {
        self.count += o.count;
        self.positives += o.positives;
        self.predicted_positives += o.predicted_positives;
        self.true_positives += o.true_positives;
        self.correct += o.correct;
    }
}

/// The per-group table and the whole data's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupTable {
    /// One entry per group present in the data, sorted by the tuple of
    /// values (byte order of the strings, as pandas sorts them).
    pub groups: Vec<GroupMetrics>,
    /// The same metrics over all rows (fairlearn's `MetricFrame.overall`).
    pub overall: GroupMetrics,
}

/// The per-group table of a binary classifier: one pass over the rows.
///
/// `y_true` and `y_pred` are labels with `pos_label` the positive class
/// (together they may hold at most two distinct labels);
/// `sensitive_features` is one or more columns of group values, each as
/// long as `y_true`.
pub fn group_table<S: AsRef<str>>(
    y_true: &[i64],
    y_pred: &[i64],
    pos_label: i64,
    sensitive_features: &[&[S]],
) -> Result<GroupTable> {
    let n = paired("y_true", y_true.len(), "y_pred", y_pred.len())?;
    if sensitive_features.is_empty() {
        return Err(QualityError::Empty {
            name: "sensitive_features".into(),
        });
    }
    for (c, column) in sensitive_features.iter().enumerate() {
        paired(
            "y_true",
            n,
            &format!("sensitive_features[{c}]"),
            column.len(),
        )?;
    }
    let bin = Binary::new(pos_label, &[y_true, y_pred]);
    let mut strays = 0;
    let mut grouper = Grouper::new(sensitive_features.len());
    let mut counts: Vec<Counts> = Vec::new();
    for (i, (&t, &p)) in y_true.iter().zip(y_pred).enumerate() {
        let g = grouper.group(sensitive_features.iter().map(|col| col[i].as_ref()));
        if g == counts.len() {
            counts.push(Counts::default());
        }
        let (tp, pp) = (bin.positive(t), bin.positive(p));
        strays += bin.stray(t) + bin.stray(p);
        let c = &mut counts[g];
        c.count += 1;
        c.positives += u64::from(tp);
        c.predicted_positives += u64::from(pp);
        c.true_positives += u64::from(tp & pp);
        c.correct += u64::from(t == p);
    }
    bin.check(strays, "y_true and y_pred", &[y_true, y_pred])?;
    let mut overall = Counts::default();
    let mut groups: Vec<GroupMetrics> = counts
        .iter()
        .enumerate()
        .map(|(g, c)| {
            overall.merge(c);
            GroupMetrics::from_counts(grouper.values(g), c)
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(GroupTable {
        groups,
        overall: GroupMetrics::from_counts(Vec::new(), &overall),
    })
}

/// fairlearn's disparity metrics of one [`GroupTable`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disparities {
    /// Max − min selection rate over groups
    /// (`demographic_parity_difference`).
    pub demographic_parity_difference: f64,
    /// Min / max selection rate (`demographic_parity_ratio`); `None` when no
    /// group has any predicted positive.
    pub demographic_parity_ratio: Option<f64>,
    /// The larger of the TPR and FPR differences
    /// (`equalized_odds_difference`, worst case).
    pub equalized_odds_difference: f64,
    /// The smaller of the TPR and FPR ratios (`equalized_odds_ratio`, worst
    /// case); `None` if either is undefined (see
    /// [`GroupTable::equalized_odds_ratio`]).
    pub equalized_odds_ratio: Option<f64>,
    /// Max − min TPR (`equal_opportunity_difference`).
    pub equal_opportunity_difference: f64,
    /// The disparate-impact ratio: min / max selection rate, the same number
    /// as `demographic_parity_ratio`.
    pub disparate_impact_ratio: Option<f64>,
    /// Whether every group's selection rate is at least four fifths of the
    /// highest (`disparate_impact_ratio ≥ 0.8`; true when nobody is
    /// selected, as there is then no adverse impact).
    pub passes_four_fifths_rule: bool,
    /// Groups with no positive row, whose undefined TPR counted as 0.
    pub groups_without_positives: usize,
    /// Groups with no negative row, whose undefined FPR counted as 0.
    pub groups_without_negatives: usize,
}

/// `(min, max)` of some values (the table has at least one group).
fn extremes(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

fn ratio((lo, hi): (f64, f64)) -> Option<f64> {
    (hi > 0.0).then(|| lo / hi)
}

impl GroupTable {
    fn selection_rates(&self) -> (f64, f64) {
        extremes(self.groups.iter().map(|g| g.selection_rate))
    }

    /// TPRs as fairlearn sees them (undefined → 0).
    fn tprs(&self) -> (f64, f64) {
        extremes(
            self.groups
                .iter()
                .map(|g| g.true_positive_rate.unwrap_or(0.0)),
        )
    }

    /// FPRs as fairlearn sees them (undefined → 0).
    fn fprs(&self) -> (f64, f64) {
        extremes(
            self.groups
                .iter()
                .map(|g| g.false_positive_rate.unwrap_or(0.0)),
        )
    }

    /// fairlearn's `demographic_parity_difference`.
    pub fn demographic_parity_difference(&self) -> f64 {
        let (lo, hi) = self.selection_rates();
        hi - lo
    }

    /// fairlearn's `demographic_parity_ratio`; `None` where it is NaN (every
    /// selection rate 0).
    pub fn demographic_parity_ratio(&self) -> Option<f64> {
        ratio(self.selection_rates())
    }

    /// fairlearn's `equal_opportunity_difference`: max − min TPR.
    pub fn equal_opportunity_difference(&self) -> f64 {
        let (lo, hi) = self.tprs();
        hi - lo
    }

    /// fairlearn's `equalized_odds_difference` (`agg="worst_case"`): the
    /// larger of the TPR and the FPR difference.
    pub fn equalized_odds_difference(&self) -> f64 {
        let (tlo, thi) = self.tprs();
        let (flo, fhi) = self.fprs();
        (thi - tlo).max(fhi - flo)
    }

    /// fairlearn's `equalized_odds_ratio` (`agg="worst_case"`): the smaller
    /// of the TPR and FPR ratios. `None` when either ratio is 0/0 (all
    /// groups' TPR, or all FPRs, are 0); fairlearn's Python `min` over
    /// `[NaN, x]` gives NaN there, but over `[x, NaN]` gives `x`.
    pub fn equalized_odds_ratio(&self) -> Option<f64> {
        Some(ratio(self.tprs())?.min(ratio(self.fprs())?))
    }

    /// Every disparity metric at once.
    pub fn disparities(&self) -> Disparities {
        let dp_ratio = self.demographic_parity_ratio();
        Disparities {
            demographic_parity_difference: self.demographic_parity_difference(),
            demographic_parity_ratio: dp_ratio,
            equalized_odds_difference: self.equalized_odds_difference(),
            equalized_odds_ratio: self.equalized_odds_ratio(),
            equal_opportunity_difference: self.equal_opportunity_difference(),
            disparate_impact_ratio: dp_ratio,
            passes_four_fifths_rule: dp_ratio.is_none_or(|r| r >= FOUR_FIFTHS),
            groups_without_positives: self
                .groups
                .iter()
                .filter(|g| g.true_positive_rate.is_none())
                .count(),
            groups_without_negatives: self
                .groups
                .iter()
                .filter(|g| g.false_positive_rate.is_none())
                .count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_fairlearn_on_a_hand_example() {
        // Checked with fairlearn 0.15: by_group tpr a 0, b 0.5, c 0 (no
        // positives); fpr a 0.5, b 0, c 0; selection a 0.5, b 0.5, c 0.
        let yt = [0, 0, 1, 1, 0, 0];
        let yp = [0, 1, 1, 0, 0, 0];
        let g = ["a", "a", "b", "b", "c", "c"];
        let t = group_table(&yt, &yp, 1, &[&g]).unwrap();
        let names: Vec<&str> = t.groups.iter().map(|g| g.group[0].as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(t.groups[0].true_positive_rate, None);
        assert_eq!(t.groups[1].true_positive_rate, Some(0.5));
        assert_eq!(t.groups[0].false_positive_rate, Some(0.5));
        let d = t.disparities();
        assert_eq!(d.equalized_odds_difference, 0.5);
        assert_eq!(d.equalized_odds_ratio, Some(0.0));
        assert_eq!(d.equal_opportunity_difference, 0.5);
        assert_eq!(d.demographic_parity_difference, 0.5);
        assert_eq!(d.demographic_parity_ratio, Some(0.0));
        assert!(!d.passes_four_fifths_rule);
        assert_eq!(d.groups_without_positives, 2);
        // Nobody selected: fairlearn's ratio is NaN, the difference 0.
        let t = group_table(&yt, &[0; 6], 1, &[&g]).unwrap();
        assert_eq!(t.demographic_parity_ratio(), None);
        assert_eq!(t.demographic_parity_difference(), 0.0);
        assert!(t.disparities().passes_four_fifths_rule);
    }

    #[test]
    fn intersectional_groups_are_tuples() {
        let yt = [0, 0, 1, 1, 0, 0];
        let yp = [0, 1, 1, 0, 0, 0];
        // Owned strings work as well as borrowed ones.
        let g: Vec<String> = "a a b b c c".split(' ').map(String::from).collect();
        let h: Vec<String> = "x y x y x y".split(' ').map(String::from).collect();
        let t = group_table(&yt, &yp, 1, &[&g[..], &h[..]]).unwrap();
        let names: Vec<String> = t.groups.iter().map(|g| g.group.join("/")).collect();
        assert_eq!(names, ["a/x", "a/y", "b/x", "b/y", "c/x", "c/y"]);
        let sel: Vec<f64> = t.groups.iter().map(|g| g.selection_rate).collect();
        assert_eq!(sel, [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(t.overall.count, 6);
    }

    #[test]
    fn bad_input_is_named() {
        let e = group_table(&[0, 1], &[0, 1], 1, &[&["a"][..]]).unwrap_err();
        assert!(e.to_string().contains("sensitive_features[0]"), "{e}");
        let e = group_table::<&str>(&[0, 1], &[0, 1], 1, &[]).unwrap_err();
        assert!(matches!(e, QualityError::Empty { .. }), "{e}");
        let e = group_table(&[0, 2], &[0, 1], 1, &[&["a", "b"][..]]).unwrap_err();
        assert!(matches!(e, QualityError::NotBinary { .. }), "{e}");
    }

    proptest! {
        #[test]
        fn disparities_stay_in_range_and_ignore_row_order(
            rows in proptest::collection::vec((0i64..2, 0i64..2, 0usize..4, 0usize..2), 1..200),
        ) {
            let names = ["w", "x", "y", "z"];
            let yt: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let yp: Vec<i64> = rows.iter().map(|r| r.1).collect();
            let g: Vec<&str> = rows.iter().map(|r| names[r.2]).collect();
            let h: Vec<&str> = rows.iter().map(|r| names[r.3]).collect();
            let t = group_table(&yt, &yp, 1, &[&g[..], &h[..]]).unwrap();
            let d = t.disparities();
            for v in [d.demographic_parity_difference, d.equalized_odds_difference, d.equal_opportunity_difference] {
                prop_assert!((0.0..=1.0).contains(&v));
            }
            for v in [d.demographic_parity_ratio, d.equalized_odds_ratio].into_iter().flatten() {
                prop_assert!((0.0..=1.0).contains(&v));
            }
            prop_assert_eq!(t.groups.iter().map(|g| g.count).sum::<u64>(), rows.len() as u64);
            let rev = |v: &[i64]| v.iter().rev().copied().collect::<Vec<i64>>();
            let g_rev: Vec<&str> = g.iter().rev().copied().collect();
            let h_rev: Vec<&str> = h.iter().rev().copied().collect();
            let r = group_table(&rev(&yt), &rev(&yp), 1, &[&g_rev[..], &h_rev[..]]).unwrap();
            prop_assert_eq!(r, t);
        }
    }
}
