//! Model performance over the prediction log: realized metrics once labels
//! have arrived, and for a binary classifier whose scores are calibrated
//! probabilities an estimate before they arrive (confidence-based
//! performance estimation, as NannyML's CBPE: a row scored `p` and
//! predicted positive is a true positive with probability `p`, so the
//! expected confusion matrix is a sum of scores).

use serde::Serialize;

/// The kind of model the log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// `prediction` is the probability of the positive class; labels are 0/1.
    Classification,
    /// `prediction` and labels are numbers.
    Regression,
}

/// Realized metrics of a set of labelled predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Realized {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
}

impl Realized {
    /// A metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => self.accuracy,
            "precision" => self.precision,
            "recall" => self.recall,
            "f1" => self.f1,
            "roc_auc" => self.roc_auc,
            "mae" => self.mae,
            "rmse" => self.rmse,
            _ => None,
        }
    }
}

pub const CLASSIFICATION_METRICS: [&str; 5] = ["accuracy", "precision", "recall", "f1", "roc_auc"];
pub const REGRESSION_METRICS: [&str; 2] = ["mae", "rmse"];

fn ratio(a: f64, b: f64) -> Option<f64> {
    if b > 0.0 { Some(a / b) } else { None }
}

/// Metrics of `(prediction, label)` pairs; a classifier's predictions are
/// positive at `threshold` and above.
pub fn realized(pairs: &[(f64, f64)], task: Task, threshold: f64) -> Realized {
    let n = pairs.len();
    let mut out = Realized {
        count: n as u64,
        ..Default::default()
    };
    if n == 0 {
        return out;
    }
    match task {
        Task::Classification => {
            let (mut tp, mut fp, mut tn, mut fun) = (0.0, 0.0, 0.0, 0.0);
            for (p, y) in pairs {
                let positive = *p >= threshold;
                let actual = *y >= 0.5;
                match (positive, actual) {
                    (true, true) => tp += 1.0,
                    (true, false) => fp += 1.0,
                    (false, false) => tn += 1.0,
                    (false, true) => fun += 1.0,
                }
            }
            out.accuracy = Some((tp + tn) / n as f64);
            out.precision = ratio(tp, tp + fp);
            out.recall = ratio(tp, tp + fun);
            out.f1 = ratio(2.0 * tp, 2.0 * tp + fp + fun);
            out.roc_auc = roc_auc(pairs);
        }
        Task::Regression => {
            let mae = pairs.iter().map(|(p, y)| (p - y).abs()).sum::<f64>() / n as f64;
            let mse = pairs.iter().map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / n as f64;
            out.mae = Some(mae);
            out.rmse = Some(mse.sqrt());
        }
    }
    out
}

/// ROC AUC by ranks (ties share their mean rank), as scikit-learn's
/// `roc_auc_score`; `None` when one class is absent.
pub fn roc_auc(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut v: Vec<(f64, bool)> = pairs.iter().map(|(p, y)| (*p, *y >= 0.5)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = v.iter().filter(|x| x.1).count() as f64;
    let negatives = v.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * v[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Metrics a binary classifier is expected to reach on unlabelled rows,
/// from its calibrated scores.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Estimated {
    pub count: u64,
    pub accuracy: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
}

impl Estimated {
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => self.accuracy,
            "precision" => self.precision,
            "recall" => self.recall,
            "f1" => self.f1,
            _ => None,
        }
    }
}

/// Confidence-based performance estimation over scores in [0, 1]
/// (scores outside are clamped).
pub fn estimate(scores: &[f64], threshold: f64) -> Estimated {
    let (mut tp, mut fp, mut tn, mut fun) = (0.0, 0.0, 0.0, 0.0);
    for p in scores {
        let p = p.clamp(0.0, 1.0);
        if p >= threshold {
            tp += p;
            fp += 1.0 - p;
        } else {
            fun += p;
            tn += 1.0 - p;
        }
    }
    let n = scores.len() as f64;
    Estimated {
        count: scores.len() as u64,
        accuracy: ratio(tp + tn, n),
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fun),
        f1: ratio(2.0 * tp, 2.0 * tp + fp + fun),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        let pairs = [(0.1, 0.0), (0.4, 1.0), (0.4, 0.0), (0.8, 1.0)];
        assert_eq!(roc_auc(&pairs), Some(0.875));
        assert_eq!(roc_auc(&[(0.1, 1.0)]), None);
    }

    #[test]
    fn confusion_metrics() {
        let pairs = [(0.9, 1.0), (0.8, 0.0), (0.2, 1.0), (0.1, 0.0)];
        let r = realized(&pairs, Task::Classification, 0.5);
        assert_eq!(r.accuracy, Some(0.5));
        assert_eq!(r.precision, Some(0.5));
        assert_eq!(r.recall, Some(0.5));
        let r = realized(&[(1.0, 2.0), (3.0, 3.0)], Task::Regression, 0.5);
        assert_eq!(r.mae, Some(0.5));
        assert_eq!(r.rmse, Some(0.5f64.sqrt()));
    }

    #[test]
    fn cbpe_matches_realized_accuracy_on_calibrated_scores() {
        // Labels drawn with the score as their probability: the estimate
        // and the realized accuracy agree within sampling error.
        let mut rng = keel_stats::Rng::from_seed(11);
        let mut pairs = Vec::new();
        for _ in 0..200_000 {
            let p = rng.next_f64();
            let y = if rng.next_f64() < p { 1.0 } else { 0.0 };
            pairs.push((p, y));
        }
        let scores: Vec<f64> = pairs.iter().map(|x| x.0).collect();
        let e = estimate(&scores, 0.5);
        let r = realized(&pairs, Task::Classification, 0.5);
        for (a, b) in [
            (e.accuracy, r.accuracy),
            (e.precision, r.precision),
            (e.recall, r.recall),
            (e.f1, r.f1),
        ] {
            let (a, b) = (a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN));
            assert!((a - b).abs() < 0.005, "{a} vs {b}");
        }
        // Uniform scores: expected accuracy is 0.75.
        assert!((e.accuracy.unwrap_or(0.0) - 0.75).abs() < 0.005);
    }
}
