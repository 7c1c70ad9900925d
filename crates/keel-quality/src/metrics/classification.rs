//! Classification metrics, as scikit-learn 1.9 defines them.
//!
//! Labels are `i64` class labels (any integers). Metrics of predicted
//! labels take `y_true` and `y_pred`; binary metrics of scores take `y_true`,
//! one score or probability per row for the positive class, and the
//! `pos_label` (every other label is negative; a column with three or more
//! labels is an error). Multiclass metrics of probabilities take a
//! [`ClassScores`] matrix whose columns are named by their classes.
//!
//! Where scikit-learn warns and substitutes (a precision with no predicted
//! positives, an undefined F1), the substitute is its default
//! `zero_division` value, 0.

use serde::{Deserialize, Serialize};

use super::labels::{Binary, ColumnOf, LabelIndex};
use super::order;
use crate::{QualityError, Result, Sum, bad_probability, invalid, not_finite, paired};

/// Probabilities are clipped to `[EPS, 1 − EPS]` before the logarithm, the
/// machine epsilon of `f64`, as scikit-learn ≥ 1.5 does for float64 input.
pub const LOG_LOSS_EPS: f64 = f64::EPSILON;

/// The number of equal-width bins of the calibration curve and ECE unless
/// told otherwise (scikit-learn's `calibration_curve` default is 5; 10 is
/// the usual choice for ECE).
pub const DEFAULT_CALIBRATION_BINS: usize = 10;

/// Classes beyond which [`confusion_matrix`] refuses (its table would be
/// `classes²` counts).
pub const MAX_CONFUSION_CLASSES: usize = 4096;

/// The fraction of rows where the prediction equals the truth.
pub fn accuracy(y_true: &[i64], y_pred: &[i64]) -> Result<f64> {
    let n = paired("y_true", y_true.len(), "y_pred", y_pred.len())?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / n as f64)
}

/// How precision, recall and F1 combine classes: scikit-learn's `average=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// The scores of one class, `pos_label`; the labels must be binary (at
    /// most two distinct in `y_true` ∪ `y_pred`).
    Binary { pos_label: i64 },
    /// The unweighted mean of the per-class scores, over the labels in
    /// `y_true` ∪ `y_pred`.
    Macro,
    /// Scores of the summed per-class counts; for single-label multiclass
    /// data precision, recall and F1 all equal accuracy.
    Micro,
    /// The mean of the per-class scores weighted by each class's support
    /// (its number of rows in `y_true`).
    Weighted,
}

/// Precision, recall and F1 under one [`Average`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecallF1 {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// The per-class counts precision and recall are made of.
#[derive(Debug, Clone, Copy, Default)]
struct ClassCounts {
    true_positives: u64,
    /// Rows predicted as the class.
    predicted: u64,
    /// Rows truly of the class (its support).
    actual: u64,
}

impl ClassCounts {
    /// scikit-learn's `_prf_divide` with `zero_division=0`; F1 as
    /// `2·tp / (actual + predicted)`, its formula since 1.3.
    fn scores(&self) -> PrecisionRecallF1 {
        let ratio = |num: f64, den: u64| if den == 0 { 0.0 } else { num / den as f64 };
        let tp = self.true_positives as f64;
        PrecisionRecallF1 {
            precision: ratio(tp, self.predicted),
            recall: ratio(tp, self.actual),
            f1: ratio(2.0 * tp, self.actual + self.predicted),
        }
    }
}

/// Precision, recall and F1 of predicted labels. One pass; the multiclass
/// averages count per class over the labels of `y_true` ∪ `y_pred`, as
/// scikit-learn does when `labels=None`. A precision with no predicted rows
/// of its class, or a recall or F1 with no rows at all, is 0.
pub fn precision_recall_f1(
    y_true: &[i64],
    y_pred: &[i64],
    average: Average,
) -> Result<PrecisionRecallF1> {
    paired("y_true", y_true.len(), "y_pred", y_pred.len())?;
    let weighted = match average {
        Average::Binary { pos_label } => {
            return Ok(binary_counts(y_true, y_pred, pos_label)?.scores());
        }
        Average::Micro => {
            let total =
                per_class_counts(y_true, y_pred)
                    .iter()
                    .fold(ClassCounts::default(), |a, c| ClassCounts {
                        true_positives: a.true_positives + c.true_positives,
                        predicted: a.predicted + c.predicted,
                        actual: a.actual + c.actual,
                    });
            return Ok(total.scores());
        }
        Average::Macro => false,
        Average::Weighted => true,
    };
    let (mut p, mut r, mut f, mut w) = (0.0, 0.0, 0.0, 0.0);
    for c in per_class_counts(y_true, y_pred) {
        let s = c.scores();
        let weight = if weighted { c.actual as f64 } else { 1.0 };
        p += weight * s.precision;
        r += weight * s.recall;
        f += weight * s.f1;
        w += weight;
    }
    Ok(PrecisionRecallF1 {
        precision: p / w,
        recall: r / w,
        f1: f / w,
    })
}

/// The counts of class `pos_label` in binary labels: one pass.
fn binary_counts(y_true: &[i64], y_pred: &[i64], pos_label: i64) -> Result<ClassCounts> {
    let bin = Binary::new(pos_label, &[y_true, y_pred]);
    let mut counts = ClassCounts::default();
    let mut strays = 0;
    for (&t, &p) in y_true.iter().zip(y_pred) {
        let (tp, pp) = (bin.positive(t), bin.positive(p));
        counts.true_positives += u64::from(tp & pp);
        counts.predicted += u64::from(pp);
        counts.actual += u64::from(tp);
        strays += bin.stray(t) + bin.stray(p);
    }
    bin.check(strays, "y_true and y_pred", &[y_true, y_pred])?;
    Ok(counts)
}

/// The counts of every label of `y_true` ∪ `y_pred`, in label order: one
/// pass (after the label index's).
fn per_class_counts(y_true: &[i64], y_pred: &[i64]) -> Vec<ClassCounts> {
    let index = LabelIndex::of(&[y_true, y_pred]);
    let mut per_class = vec![ClassCounts::default(); index.labels().len()];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        let (ti, pi) = (index.index(t), index.index(p));
        per_class[ti].actual += 1;
        per_class[pi].predicted += 1;
        per_class[ti].true_positives += u64::from(ti == pi);
    }
    per_class
}

/// Precision: of the rows predicted positive, the fraction truly positive.
pub fn precision(y_true: &[i64], y_pred: &[i64], average: Average) -> Result<f64> {
    Ok(precision_recall_f1(y_true, y_pred, average)?.precision)
}

/// Recall: of the truly positive rows, the fraction predicted positive.
pub fn recall(y_true: &[i64], y_pred: &[i64], average: Average) -> Result<f64> {
    Ok(precision_recall_f1(y_true, y_pred, average)?.recall)
}

/// F1, the harmonic mean of precision and recall (per class, then averaged
/// for `Macro` and `Weighted`, as scikit-learn does).
pub fn f1(y_true: &[i64], y_pred: &[i64], average: Average) -> Result<f64> {
    Ok(precision_recall_f1(y_true, y_pred, average)?.f1)
}

/// A confusion matrix: `counts[i][j]` rows of true class `labels[i]`
/// predicted as `labels[j]`, as scikit-learn's `confusion_matrix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// The sorted labels of `y_true` ∪ `y_pred`.
    pub labels: Vec<i64>,
    /// One row per true label, one column per predicted label.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// The count for a (true, predicted) pair of labels; 0 for labels not
    /// in the matrix.
    pub fn count(&self, true_label: i64, predicted_label: i64) -> u64 {
        let find = |l: i64| self.labels.binary_search(&l).ok();
        match (find(true_label), find(predicted_label)) {
            (Some(i), Some(j)) => self.counts[i][j],
            _ => 0,
        }
    }
}

/// The confusion matrix over the labels of `y_true` ∪ `y_pred`, one pass.
/// More than [`MAX_CONFUSION_CLASSES`] labels is an error.
pub fn confusion_matrix(y_true: &[i64], y_pred: &[i64]) -> Result<ConfusionMatrix> {
    paired("y_true", y_true.len(), "y_pred", y_pred.len())?;
    let index = LabelIndex::of(&[y_true, y_pred]);
    let k = index.labels().len();
    if k > MAX_CONFUSION_CLASSES {
        return Err(invalid(
            "y_true and y_pred",
            format!(
                "hold {k} distinct labels; a confusion matrix is limited to {MAX_CONFUSION_CLASSES}"
            ),
        ));
    }
    let mut flat = vec![0u64; k * k];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        flat[index.index(t) * k + index.index(p)] += 1;
    }
    Ok(ConfusionMatrix {
        labels: index.into_labels(),
        counts: flat.chunks(k).map(<[u64]>::to_vec).collect(),
    })
}

/// The scores' order keys of the positive and of the negative rows, each
/// sorted ascending.
struct Ranked {
    positives: Vec<u64>,
    negatives: Vec<u64>,
}

impl Ranked {
    /// `positive` says of each of the `n` rows whether it is positive, and
    /// `n_positive` of them are. The scores must be finite (`name` is their
    /// argument's name for the error).
    fn new(
        n: usize,
        n_positive: usize,
        positive: impl Iterator<Item = bool>,
        name: &str,
        scores: impl Iterator<Item = f64>,
    ) -> Result<Ranked> {
        // Every key is written to both buffers and only one cursor moves: no
        // branch on the (random) label. The extra slot takes the writes past
        // the end.
        let mut positives = vec![0u64; n_positive + 1];
        let mut negatives = vec![0u64; n - n_positive + 1];
        let (mut i, mut j) = (0, 0);
        for (row, (p, s)) in positive.zip(scores).enumerate() {
            if !s.is_finite() {
                return Err(not_finite(name, row, s));
            }
            let key = order::key(s);
            positives[i] = key;
            negatives[j] = key;
            i += usize::from(p);
            j += usize::from(!p);
        }
        positives.truncate(n_positive);
        negatives.truncate(n - n_positive);
        positives.sort_unstable();
        negatives.sort_unstable();
        Ok(Ranked {
            positives,
            negatives,
        })
    }

    /// Calls `step(dp, dn)` for each distinct score from the highest down,
    /// with the numbers of positive and negative rows holding it.
    fn thresholds(&self, mut step: impl FnMut(u64, u64)) {
        let (pos, neg) = (&self.positives, &self.negatives);
        let (mut i, mut j) = (pos.len(), neg.len());
        while i > 0 || j > 0 {
            let top = match (i, j) {
                (0, _) => neg[j - 1],
                (_, 0) => pos[i - 1],
                _ => pos[i - 1].max(neg[j - 1]),
            };
            let (mut dp, mut dn) = (0u64, 0u64);
            while i > 0 && pos[i - 1] == top {
                i -= 1;
                dp += 1;
            }
            while j > 0 && neg[j - 1] == top {
                j -= 1;
                dn += 1;
            }
            step(dp, dn);
        }
    }

    /// The area under the ROC curve: the trapezoid over the distinct
    /// thresholds, counted in integers and divided once.
    fn roc_auc(&self) -> f64 {
        let mut tp = 0u128;
        let mut twice_area = 0u128;
        self.thresholds(|dp, dn| {
            twice_area += u128::from(dn) * (2 * tp + u128::from(dp));
            tp += u128::from(dp);
        });
        let p = self.positives.len() as f64;
        let n = self.negatives.len() as f64;
        twice_area as f64 / (2.0 * p * n)
    }

    /// Average precision: Σ over thresholds of ΔR · P.
    fn average_precision(&self) -> f64 {
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut sum = Sum::default();
        self.thresholds(|dp, dn| {
            tp += dp;
            fp += dn;
            if dp > 0 {
                sum.add(dp as f64 * (tp as f64 / (tp + fp) as f64));
            }
        });
        sum.value() / self.positives.len() as f64
    }
}

fn binary_ranked(
    metric: &'static str,
    y_true: &[i64],
    y_score: &[f64],
    pos_label: i64,
) -> Result<Ranked> {
    let n = paired("y_true", y_true.len(), "y_score", y_score.len())?;
    let bin = Binary::new(pos_label, &[y_true]);
    let n_positive = bin.count("y_true", y_true)?;
    let ranked = Ranked::new(
        n,
        n_positive,
        y_true.iter().map(|&t| bin.positive(t)),
        "y_score",
        y_score.iter().copied(),
    )?;
    if ranked.positives.is_empty() {
        return Err(QualityError::SingleClass {
            metric,
            name: "y_true".into(),
            reason: format!("has no row equal to pos_label {pos_label}"),
        });
    }
    Ok(ranked)
}

/// The area under the ROC curve of binary scores, as scikit-learn's
/// `roc_auc_score`: the trapezoidal rule over the curve's distinct
/// thresholds, so tied scores count one half — the Mann–Whitney U statistic
/// over `P·N`. One O(n log n) sort (of the positives' and the negatives'
/// scores, as integer keys). `y_score`
/// is any finite score where higher means more positive.
///
/// Needs both positive and negative rows.
pub fn roc_auc(y_true: &[i64], y_score: &[f64], pos_label: i64) -> Result<f64> {
    let ranked = binary_ranked("roc_auc", y_true, y_score, pos_label)?;
    if ranked.negatives.is_empty() {
        return Err(QualityError::SingleClass {
            metric: "roc_auc",
            name: "y_true".into(),
            reason: format!("has only rows equal to pos_label {pos_label}, no negatives"),
        });
    }
    Ok(ranked.roc_auc())
}

/// The area under the precision–recall curve as scikit-learn's
/// `average_precision_score`: the step-wise sum `Σₙ (Rₙ − Rₙ₋₁) Pₙ` over the
/// distinct thresholds from the highest score down (no interpolation, no
/// trapezoid), so tied scores enter as one threshold. One sort.
///
/// Needs at least one positive row; with no negatives it is 1.
pub fn average_precision(y_true: &[i64], y_score: &[f64], pos_label: i64) -> Result<f64> {
    Ok(binary_ranked("average_precision", y_true, y_score, pos_label)?.average_precision())
}

/// A matrix of per-class scores or probabilities, one row per example: row
/// `i`, column `j` is `values[i * classes.len() + j]`, the score of class
/// `classes[j]`. (scikit-learn's `predict_proba` order is the sorted
/// classes; here the columns are named, in any order.)
#[derive(Debug, Clone, Copy)]
pub struct ClassScores<'a> {
    /// The class of each column; distinct.
    pub classes: &'a [i64],
    /// Row-major, `rows × classes.len()`.
    pub values: &'a [f64],
}

impl ClassScores<'_> {
    /// Checks the shape against `n` rows of `y_true` and maps each label to
    /// its column.
    fn columns_of(&self, y_true: &[i64], min_classes: usize) -> Result<Vec<u32>> {
        let k = self.classes.len();
        if k < min_classes {
            return Err(invalid(
                "classes",
                format!("has {k} classes; this metric needs at least {min_classes}"),
            ));
        }
        let n = y_true.len();
        if n == 0 {
            return Err(QualityError::Empty {
                name: "y_true".into(),
            });
        }
        if n.checked_mul(k) != Some(self.values.len()) {
            return Err(QualityError::LengthMismatch {
                a: "scores.values".into(),
                len_a: self.values.len(),
                b: format!("y_true × classes ({n} × {k})"),
                len_b: n.saturating_mul(k),
            });
        }
        let column = ColumnOf::new("classes", self.classes)?;
        y_true
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                column
                    .column(t)
                    .map(|c| c as u32)
                    .ok_or_else(|| QualityError::UnknownLabel {
                        name: "y_true".into(),
                        index: i,
                        label: t,
                        classes: self.classes.to_vec(),
                    })
            })
            .collect()
    }

    fn row(&self, i: usize) -> &[f64] {
        let k = self.classes.len();
        &self.values[i * k..(i + 1) * k]
    }

    /// Every value a probability.
    fn check_probabilities(&self) -> Result<()> {
        match self.values.iter().position(|p| !(0.0..=1.0).contains(p)) {
            Some(i) => Err(bad_probability("scores.values", i, self.values[i])),
            None => Ok(()),
        }
    }
}

/// How [`roc_auc_ovr`] combines the per-class areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OvrAverage {
    /// The unweighted mean over classes (scikit-learn's default).
    Macro,
    /// The mean weighted by each class's number of rows in `y_true`.
    Weighted,
}

/// Multiclass ROC AUC, one-vs-rest, as scikit-learn's
/// `roc_auc_score(multi_class="ovr")`: the binary AUC of each class's column
/// against "any other class", then averaged. One sort per class.
///
/// As scikit-learn requires, the rows must be probabilities summing to 1
/// (within `np.allclose`'s 1e-8 + 1e-5), every `y_true` label must be one of
/// the columns' classes, and every class must have rows in `y_true`.
pub fn roc_auc_ovr(y_true: &[i64], scores: ClassScores<'_>, average: OvrAverage) -> Result<f64> {
    let columns = scores.columns_of(y_true, 2)?;
    let k = scores.classes.len();
    for i in 0..y_true.len() {
        let row = scores.row(i);
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(not_finite("scores.values", i * k + j, row[j]));
        }
        let total: f64 = row.iter().sum();
        if (1.0 - total).abs() > 1e-8 + 1e-5 * total.abs() {
            return Err(invalid(
                "scores",
                format!(
                    "row {i} sums to {total}; one-vs-rest ROC AUC needs probabilities summing to 1"
                ),
            ));
        }
    }
    let mut support = vec![0usize; k];
    for &c in &columns {
        support[c as usize] += 1;
    }
    let (mut sum, mut weights) = (0.0, 0.0);
    for (c, &class) in scores.classes.iter().enumerate() {
        let ranked = Ranked::new(
            y_true.len(),
            support[c],
            columns.iter().map(|&col| col as usize == c),
            "scores.values",
            (0..y_true.len()).map(|i| scores.values[i * k + c]),
        )?;
        if ranked.positives.is_empty() {
            return Err(QualityError::SingleClass {
                metric: "roc_auc_ovr",
                name: "y_true".into(),
                reason: format!("has no row of class {class}; one-vs-rest needs every class"),
            });
        }
        let weight = match average {
            OvrAverage::Macro => 1.0,
            OvrAverage::Weighted => ranked.positives.len() as f64,
        };
        sum += weight * ranked.roc_auc();
        weights += weight;
    }
    Ok(sum / weights)
}

/// `-ln(clip(p))` with scikit-learn's clipping.
#[inline]
fn neg_ln_clipped(p: f64) -> f64 {
    -p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln()
}

/// Binary log loss (cross-entropy) of the positive-class probabilities, as
/// scikit-learn's `log_loss` with a 1-d `y_proba`: the mean of
/// `−ln p` on positive rows and `−ln(1 − p)` on negative ones, each clipped
/// to `[ε, 1 − ε]` with ε = [`LOG_LOSS_EPS`] (so a confident mistake costs
/// at most ≈ 36.04, not infinity). Natural logarithm. The probabilities
/// must be in `[0, 1]`. Since `pos_label` says which class is positive,
/// `y_true` may hold a single class.
pub fn log_loss(y_true: &[i64], y_prob: &[f64], pos_label: i64) -> Result<f64> {
    let n = paired("y_true", y_true.len(), "y_prob", y_prob.len())?;
    let bin = Binary::new(pos_label, &[y_true]);
    let mut strays = 0;
    let mut sum = Sum::default();
    for (i, (&t, &p)) in y_true.iter().zip(y_prob).enumerate() {
        if !(0.0..=1.0).contains(&p) {
            return Err(bad_probability("y_prob", i, p));
        }
        strays += bin.stray(t);
        sum.add(neg_ln_clipped(if bin.positive(t) { p } else { 1.0 - p }));
    }
    bin.check(strays, "y_true", &[y_true])?;
    Ok(sum.value() / n as f64)
}

/// Multiclass log loss, as scikit-learn's `log_loss` with a 2-d `y_proba`:
/// the mean of `−ln p[true class]`, clipped to `[ε, 1 − ε]`. Like
/// scikit-learn ≥ 1.5 the rows are not renormalised (it only warns when they
/// do not sum to 1); they must be probabilities in `[0, 1]`.
pub fn log_loss_multiclass(y_true: &[i64], proba: ClassScores<'_>) -> Result<f64> {
    let columns = proba.columns_of(y_true, 2)?;
    proba.check_probabilities()?;
    let k = proba.classes.len();
    let mut sum = Sum::default();
    for (i, &c) in columns.iter().enumerate() {
        sum.add(neg_ln_clipped(proba.values[i * k + c as usize]));
    }
    Ok(sum.value() / y_true.len() as f64)
}

/// The Brier score of binary probabilities: the mean of `(p − y)²` with `y`
/// 1 on positive rows and 0 on the others, as scikit-learn's
/// `brier_score_loss` for binary input.
pub fn brier_score(y_true: &[i64], y_prob: &[f64], pos_label: i64) -> Result<f64> {
    let n = paired("y_true", y_true.len(), "y_prob", y_prob.len())?;
    let bin = Binary::new(pos_label, &[y_true]);
    let mut strays = 0;
    let mut sum = Sum::default();
    for (i, (&t, &p)) in y_true.iter().zip(y_prob).enumerate() {
        if !(0.0..=1.0).contains(&p) {
            return Err(bad_probability("y_prob", i, p));
        }
        strays += bin.stray(t);
        let d = p - f64::from(u8::from(bin.positive(t)));
        sum.add(d * d);
    }
    bin.check(strays, "y_true", &[y_true])?;
    Ok(sum.value() / n as f64)
}

/// The multiclass Brier score, as scikit-learn ≥ 1.7's `brier_score_loss`
/// with 2-d probabilities (`scale_by_half="auto"`, unscaled): the mean over
/// rows of `Σ_k (p_k − 1[y = k])²`, between 0 and 2.
pub fn brier_score_multiclass(y_true: &[i64], proba: ClassScores<'_>) -> Result<f64> {
    let columns = proba.columns_of(y_true, 2)?;
    proba.check_probabilities()?;
    let mut sum = Sum::default();
    for (i, &c) in columns.iter().enumerate() {
        let row_sum: f64 = proba
            .row(i)
            .iter()
            .enumerate()
            .map(|(j, &p)| {
                let d = p - f64::from(u8::from(j == c as usize));
                d * d
            })
            .sum();
        sum.add(row_sum);
    }
    Ok(sum.value() / y_true.len() as f64)
}

/// One non-empty bin of a calibration curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// The bin is `(lower, upper]`, except the first, which is `[0, upper]`.
    pub lower: f64,
    pub upper: f64,
    /// Rows whose probability falls in the bin.
    pub count: u64,
    /// The fraction of those rows that are positive (for
    /// [`calibration_curve_top_label`]: that are predicted correctly).
    pub fraction_positive: f64,
    /// The mean predicted probability (confidence) of those rows.
    pub mean_predicted: f64,
}

/// A reliability diagram and the expected calibration error read off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationCurve {
    /// The non-empty bins, in increasing probability.
    pub bins: Vec<CalibrationBin>,
    /// `Σ_B |B|/n · |fraction_positive(B) − mean_predicted(B)|`.
    pub expected_calibration_error: f64,
}

/// Equal-width bins over `[0, 1]` with numpy's `linspace` edges
/// (`i · (1/n)`) and `np.searchsorted(edges[1:-1], p)`'s assignment: a
/// probability on an inner edge goes to the lower bin.
struct UniformBins {
    n: usize,
    step: f64,
}

impl UniformBins {
    fn new(n_bins: usize) -> Result<UniformBins> {
        if n_bins == 0 {
            return Err(invalid("n_bins", "must be at least 1"));
        }
        Ok(UniformBins {
            n: n_bins,
            step: 1.0 / n_bins as f64,
        })
    }

    fn edge(&self, i: usize) -> f64 {
        if i == self.n {
            1.0
        } else {
            i as f64 * self.step
        }
    }

    /// The bin of a probability in `[0, 1]`: the number of inner edges
    /// strictly below it.
    #[inline]
    fn bin(&self, p: f64) -> usize {
        let mut b = ((p * self.n as f64) as usize).min(self.n - 1);
        while b > 0 && self.edge(b) >= p {
            b -= 1;
        }
        while b + 1 < self.n && self.edge(b + 1) < p {
            b += 1;
        }
        b
    }
}

/// Per-bin sums of a calibration curve.
struct BinSums {
    bins: UniformBins,
    count: Vec<u64>,
    hits: Vec<u64>,
    predicted: Vec<f64>,
}

impl BinSums {
    fn new(n_bins: usize) -> Result<BinSums> {
        Ok(BinSums {
            bins: UniformBins::new(n_bins)?,
            count: vec![0; n_bins],
            hits: vec![0; n_bins],
            predicted: vec![0.0; n_bins],
        })
    }

    #[inline]
    fn add(&mut self, p: f64, hit: bool) {
        let b = self.bins.bin(p);
        self.count[b] += 1;
        self.hits[b] += u64::from(hit);
        // Summed in row order, like `np.bincount(weights=...)`.
        self.predicted[b] += p;
    }

    fn curve(self, n: usize) -> CalibrationCurve {
        let mut bins = Vec::new();
        let mut ece = 0.0;
        for b in 0..self.bins.n {
            if self.count[b] == 0 {
                continue;
            }
            let count = self.count[b] as f64;
            let bin = CalibrationBin {
                lower: self.bins.edge(b),
                upper: self.bins.edge(b + 1),
                count: self.count[b],
                fraction_positive: self.hits[b] as f64 / count,
                mean_predicted: self.predicted[b] / count,
            };
            ece += count / n as f64 * (bin.fraction_positive - bin.mean_predicted).abs();
            bins.push(bin);
        }
        CalibrationCurve {
            bins,
            expected_calibration_error: ece,
        }
    }
}

/// The calibration curve of binary probabilities, as scikit-learn's
/// `calibration_curve(strategy="uniform")`: `n_bins` equal-width bins over
/// `[0, 1]`, and for each non-empty one the fraction of positive rows and
/// the mean predicted probability. One pass. Also carries the expected
/// calibration error over the same bins (see
/// [`expected_calibration_error`]).
pub fn calibration_curve(
    y_true: &[i64],
    y_prob: &[f64],
    pos_label: i64,
    n_bins: usize,
) -> Result<CalibrationCurve> {
    let n = paired("y_true", y_true.len(), "y_prob", y_prob.len())?;
    let mut sums = BinSums::new(n_bins)?;
    let bin = Binary::new(pos_label, &[y_true]);
    let mut strays = 0;
    for (i, (&t, &p)) in y_true.iter().zip(y_prob).enumerate() {
        if !(0.0..=1.0).contains(&p) {
            return Err(bad_probability("y_prob", i, p));
        }
        strays += bin.stray(t);
        sums.add(p, bin.positive(t));
    }
    bin.check(strays, "y_true", &[y_true])?;
    Ok(sums.curve(n))
}

/// Expected calibration error of binary probabilities, on the
/// positive-class probability:
/// `ECE = Σ_B |B|/n · |frac_pos(B) − mean_prob(B)|` over `n_bins`
/// equal-width bins of `[0, 1]` (the bins of [`calibration_curve`]; empty
/// bins contribute nothing). [`DEFAULT_CALIBRATION_BINS`] is the usual
/// choice. (This is the binary reliability-diagram ECE; the top-label ECE of
/// multiclass classifiers is [`calibration_curve_top_label`].)
pub fn expected_calibration_error(
    y_true: &[i64],
    y_prob: &[f64],
    pos_label: i64,
    n_bins: usize,
) -> Result<f64> {
    Ok(calibration_curve(y_true, y_prob, pos_label, n_bins)?.expected_calibration_error)
}

/// The top-label calibration curve of a multiclass classifier: each row's
/// confidence is its highest probability (the first column among equals, as
/// `argmax`), its hit whether that column's class is the true label; bins and
/// ECE as in [`calibration_curve`], with `fraction_positive` the accuracy of
/// the bin.
pub fn calibration_curve_top_label(
    y_true: &[i64],
    proba: ClassScores<'_>,
    n_bins: usize,
) -> Result<CalibrationCurve> {
    let columns = proba.columns_of(y_true, 2)?;
    proba.check_probabilities()?;
    let mut sums = BinSums::new(n_bins)?;
    for (i, &c) in columns.iter().enumerate() {
        let row = proba.row(i);
        let mut best = 0;
        for (j, &p) in row.iter().enumerate().skip(1) {
            if p > row[best] {
                best = j;
            }
        }
        sums.add(row[best], best == c as usize);
    }
    Ok(sums.curve(y_true.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The Mann–Whitney definition by brute force: pairs ranked right, ties
    /// one half.
    fn auc_pairs(y: &[i64], s: &[f64]) -> f64 {
        let (mut num, mut pairs) = (0.0, 0.0);
        for i in 0..y.len() {
            for j in 0..y.len() {
                if y[i] == 1 && y[j] == 0 {
                    pairs += 1.0;
                    if s[i] > s[j] {
                        num += 1.0;
                    } else if s[i] == s[j] {
                        num += 0.5;
                    }
                }
            }
        }
        num / pairs
    }

    /// Average precision straight from its definition: rows sorted by score,
    /// thresholds at each distinct score.
    fn ap_direct(y: &[i64], s: &[f64]) -> f64 {
        let mut distinct: Vec<f64> = s.to_vec();
        distinct.sort_by(|a, b| b.total_cmp(a));
        distinct.dedup();
        let p_total = y.iter().filter(|&&t| t == 1).count() as f64;
        let (mut ap, mut prev_recall) = (0.0, 0.0);
        for t in distinct {
            let tp = y
                .iter()
                .zip(s)
                .filter(|(y, s)| **y == 1 && **s >= t)
                .count() as f64;
            let all = s.iter().filter(|&&s| s >= t).count() as f64;
            let recall = tp / p_total;
            ap += (recall - prev_recall) * tp / all;
            prev_recall = recall;
        }
        ap
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn small_known_values() {
        // scikit-learn's docs: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let y = [0, 0, 1, 1];
        let s = [0.1, 0.4, 0.35, 0.8];
        assert_eq!(roc_auc(&y, &s, 1).unwrap(), 0.75);
        // average_precision_score(...) == 0.8333...
        assert!(close(average_precision(&y, &s, 1).unwrap(), 5.0 / 6.0));
        // log_loss(["spam", "ham", "ham", "spam"], [[.1, .9], [.9, .1], [.8, .2], [.35, .65]]) == 0.21616
        let ll = log_loss(&[1, 0, 0, 1], &[0.9, 0.1, 0.2, 0.65], 1).unwrap();
        assert!((ll - 0.21616187468057912).abs() < 1e-15, "{ll}");
        let cm = confusion_matrix(&[2, 0, 2, 2, 0, 1], &[0, 0, 2, 2, 0, 2]).unwrap();
        assert_eq!(cm.counts, vec![vec![2, 0, 0], vec![0, 0, 1], vec![1, 0, 2]]);
        assert_eq!(cm.count(2, 0), 1);
        assert_eq!(cm.count(9, 0), 0);
        // f1_score([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1], average=...) docs
        let (t, p) = ([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1]);
        assert!(close(
            f1(&t, &p, Average::Macro).unwrap(),
            0.26666666666666666
        ));
        assert!(close(f1(&t, &p, Average::Micro).unwrap(), 1.0 / 3.0));
        assert!(close(
            f1(&t, &p, Average::Weighted).unwrap(),
            0.26666666666666666
        ));
    }

    #[test]
    fn errors_name_the_argument() {
        let e = roc_auc(&[1, 1], &[0.1, 0.2], 1).unwrap_err();
        assert!(e.to_string().contains("no negatives"), "{e}");
        let e = roc_auc(&[0, 0], &[0.1, 0.2], 1).unwrap_err();
        assert!(matches!(e, QualityError::SingleClass { .. }), "{e}");
        let e = roc_auc(&[0, 1], &[0.1, f64::NAN], 1).unwrap_err();
        assert!(
            matches!(&e, QualityError::NotFinite { name, index: 1, .. } if name == "y_score"),
            "{e}"
        );
        let e = roc_auc(&[0, 1], &[0.1], 1).unwrap_err();
        assert!(matches!(e, QualityError::LengthMismatch { .. }), "{e}");
        let e = roc_auc(&[], &[], 1).unwrap_err();
        assert!(matches!(e, QualityError::Empty { .. }), "{e}");
        let e = roc_auc(&[0, 1, 2], &[0.1, 0.2, 0.3], 1).unwrap_err();
        assert!(matches!(e, QualityError::NotBinary { .. }), "{e}");
        let e = log_loss(&[0, 1], &[0.1, 1.5], 1).unwrap_err();
        assert!(e.to_string().contains("y_prob[1]"), "{e}");
        let e = log_loss(&[0, 1], &[0.1, f64::NAN], 1).unwrap_err();
        assert!(matches!(e, QualityError::NotFinite { index: 1, .. }), "{e}");
        let e = calibration_curve(&[0, 1], &[0.1, 0.2], 1, 0).unwrap_err();
        assert!(e.to_string().contains("n_bins"), "{e}");
        let e = f1(&[0, 1, 2], &[0, 1, 1], Average::Binary { pos_label: 1 }).unwrap_err();
        assert!(matches!(e, QualityError::NotBinary { .. }), "{e}");
        let e = f1(&[0, 2], &[0, 2], Average::Binary { pos_label: 1 }).unwrap_err();
        assert!(e.to_string().contains("pos_label"), "{e}");
        let classes = [0, 1, 2];
        let e = roc_auc_ovr(
            &[0, 1],
            ClassScores {
                classes: &classes,
                values: &[0.2, 0.3, 0.5, 0.1, 0.1, 0.8],
            },
            OvrAverage::Macro,
        )
        .unwrap_err();
        assert!(e.to_string().contains("class 2"), "{e}");
        let e = log_loss_multiclass(
            &[0, 3],
            ClassScores {
                classes: &classes,
                values: &[0.2, 0.3, 0.5, 0.1, 0.1, 0.8],
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                QualityError::UnknownLabel {
                    index: 1,
                    label: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = log_loss_multiclass(
            &[0, 1],
            ClassScores {
                classes: &classes,
                values: &[0.2, 0.3, 0.5, 0.1, 0.1],
            },
        )
        .unwrap_err();
        assert!(matches!(e, QualityError::LengthMismatch { .. }), "{e}");
    }

    #[test]
    fn log_loss_clips_like_sklearn() {
        let worst = -f64::EPSILON.ln();
        assert_eq!(log_loss(&[1], &[0.0], 1).unwrap(), worst);
        assert_eq!(log_loss(&[0], &[1.0], 1).unwrap(), worst);
        assert_eq!(
            log_loss(&[1], &[1.0], 1).unwrap(),
            -(1.0 - f64::EPSILON).ln()
        );
    }

    #[test]
    fn calibration_bins_put_edges_low() {
        // 0.3 is below linspace's 0.30000000000000004: bin 2; 0.2 is on an
        // edge: bin 1; 0 and 1 in the end bins.
        let b = UniformBins::new(10).unwrap();
        assert_eq!(b.bin(0.0), 0);
        assert_eq!(b.bin(0.1), 0);
        assert_eq!(b.bin(0.2), 1);
        assert_eq!(b.bin(0.3), 2);
        assert_eq!(b.bin(0.30000000000000004), 2);
        assert_eq!(b.bin(0.3000000000000001), 3);
        assert_eq!(b.bin(1.0), 9);
        assert_eq!(b.bin(0.95), 9);
        let one = UniformBins::new(1).unwrap();
        assert_eq!(one.bin(0.5), 0);
        assert_eq!(one.bin(1.0), 0);
    }

    fn labels_and_scores() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
        (2usize..120).prop_flat_map(|n| {
            (
                proptest::collection::vec(0i64..2, n),
                proptest::collection::vec((0u32..40).prop_map(|k| k as f64 / 32.0 - 0.25), n),
            )
        })
    }

    proptest! {
        #[test]
        fn auc_is_the_mann_whitney_statistic((y, s) in labels_and_scores()) {
            let both = y.contains(&0) && y.contains(&1);
            prop_assume!(both);
            let auc = roc_auc(&y, &s, 1).unwrap();
            prop_assert!(close(auc, auc_pairs(&y, &s)), "{} vs {}", auc, auc_pairs(&y, &s));
            prop_assert!((0.0..=1.0).contains(&auc));
        }

        #[test]
        fn auc_is_invariant_under_monotone_maps((y, s) in labels_and_scores()) {
            prop_assume!(y.contains(&0) && y.contains(&1));
            let auc = roc_auc(&y, &s, 1).unwrap();
            let shifted: Vec<f64> = s.iter().map(|x| 3.0 * x + 1.0).collect();
            let squashed: Vec<f64> = s.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
            prop_assert!(close(roc_auc(&y, &shifted, 1).unwrap(), auc));
            prop_assert!(close(roc_auc(&y, &squashed, 1).unwrap(), auc));
            let ap = average_precision(&y, &s, 1).unwrap();
            prop_assert!(close(average_precision(&y, &squashed, 1).unwrap(), ap));
        }

        #[test]
        fn reversing_scores_or_classes_complements_auc((y, s) in labels_and_scores()) {
            prop_assume!(y.contains(&0) && y.contains(&1));
            let auc = roc_auc(&y, &s, 1).unwrap();
            // s is on a 1/32 grid, so 1 − s is exact and keeps every tie.
            let flipped: Vec<f64> = s.iter().map(|x| 1.0 - x).collect();
            prop_assert!(close(roc_auc(&y, &flipped, 1).unwrap(), 1.0 - auc));
            prop_assert!(close(roc_auc(&y, &s, 0).unwrap(), 1.0 - auc));
            let negated: Vec<f64> = s.iter().map(|x| -x).collect();
            prop_assert!(close(roc_auc(&y, &negated, 1).unwrap(), 1.0 - auc));
        }

        #[test]
        fn average_precision_matches_its_definition((y, s) in labels_and_scores()) {
            prop_assume!(y.contains(&1));
            let ap = average_precision(&y, &s, 1).unwrap();
            prop_assert!(close(ap, ap_direct(&y, &s)), "{} vs {}", ap, ap_direct(&y, &s));
            prop_assert!(ap > 0.0 && ap <= 1.0 + 1e-15);
        }

        #[test]
        fn label_metrics_stay_in_range(
            pairs in proptest::collection::vec((0i64..4, 0i64..4), 1..200),
        ) {
            let (t, p): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
            let acc = accuracy(&t, &p).unwrap();
            let micro = precision_recall_f1(&t, &p, Average::Micro).unwrap();
            prop_assert!(close(micro.f1, acc) && close(micro.precision, acc) && close(micro.recall, acc));
            for avg in [Average::Macro, Average::Weighted] {
                let s = precision_recall_f1(&t, &p, avg).unwrap();
                for v in [s.precision, s.recall, s.f1] {
                    prop_assert!((0.0..=1.0 + 1e-15).contains(&v));
                }
            }
            let cm = confusion_matrix(&t, &p).unwrap();
            let total: u64 = cm.counts.iter().flatten().sum();
            prop_assert_eq!(total as usize, t.len());
            let diagonal: u64 = (0..cm.labels.len()).map(|i| cm.counts[i][i]).sum();
            prop_assert!(close(diagonal as f64 / t.len() as f64, acc));
        }

        #[test]
        fn probability_metrics_stay_in_range(
            rows in proptest::collection::vec((0i64..2, 0.0f64..=1.0), 1..200),
            n_bins in 1usize..20,
        ) {
            let (y, p): (Vec<i64>, Vec<f64>) = rows.into_iter().unzip();
            let ll = log_loss(&y, &p, 1).unwrap();
            prop_assert!((0.0..=-f64::EPSILON.ln() + 1e-12).contains(&ll));
            let brier = brier_score(&y, &p, 1).unwrap();
            prop_assert!((0.0..=1.0).contains(&brier));
            let curve = calibration_curve(&y, &p, 1, n_bins).unwrap();
            prop_assert!((0.0..=1.0).contains(&curve.expected_calibration_error));
            let counted: u64 = curve.bins.iter().map(|b| b.count).sum();
            prop_assert_eq!(counted as usize, y.len());
            for b in &curve.bins {
                prop_assert!(b.mean_predicted >= b.lower - 1e-12 && b.mean_predicted <= b.upper + 1e-12);
            }
            // The two-column multiclass forms agree with the binary ones
            // (Brier counts both columns: twice the binary score).
            let values: Vec<f64> = p.iter().flat_map(|&q| [1.0 - q, q]).collect();
            let proba = ClassScores { classes: &[0, 1], values: &values };
            prop_assert!(close(log_loss_multiclass(&y, proba).unwrap(), ll));
            prop_assert!(close(brier_score_multiclass(&y, proba).unwrap(), 2.0 * brier));
        }
    }
}
