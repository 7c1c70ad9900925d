//! The losses and metrics reported per iteration.
//!
//! * Log loss is the mean of `−y·ln p − (1−y)·ln(1−p)` computed from the
//!   raw score (log-odds) `s` as `softplus(s) − y·s`, which is exact for
//!   large `|s|` where `p` rounds to 0 or 1.
//! * Mean squared error is the mean of `(y − ŷ)²`.
//! * ROC AUC is the probability that a random positive scores above a
//!   random negative, ties counting one half — the trapezoidal area under
//!   the ROC curve with tied scores grouped, as scikit-learn's
//!   `roc_auc_score`. It is computed by one sort; `None` when only one class
//!   is present.

/// `ln(1 + e^s)` without overflow.
pub(crate) fn softplus(s: f64) -> f64 {
    if s > 0.0 {
        s + (-s).exp().ln_1p()
    } else {
        s.exp().ln_1p()
    }
}

/// The logistic function `1 / (1 + e^−s)`, accurate in both tails.
pub(crate) fn sigmoid(s: f64) -> f64 {
    if s >= 0.0 {
        1.0 / (1.0 + (-s).exp())
    } else {
        let e = s.exp();
        e / (1.0 + e)
    }
}

/// Log loss of one row from its raw score.
pub(crate) fn row_log_loss(label: f64, score: f64) -> f64 {
    softplus(score) - label * score
}

/// `Σ ln(xᵢ)` for factors `xᵢ` in `[1, 2]`, kept as a running product
/// whose binary exponent is moved out after every factor, so a chunk of
/// rows costs one logarithm instead of one per row. Each product rounds
/// once (2⁻⁵³ relative), so `n` factors are within `n·2⁻⁵³` of the exact
/// sum of logs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LnSum {
    mantissa: f64,
    exponent: i64,
}

impl LnSum {
    pub(crate) fn new() -> Self {
        LnSum {
            mantissa: 1.0,
            exponent: 0,
        }
    }

    /// Adds `ln(x)` for `x` in `[1, 2]`.
    #[inline]
    pub(crate) fn add_ln(&mut self, x: f64) {
        let m = self.mantissa * x;
        let bits = m.to_bits();
        self.exponent += ((bits >> 52) & 0x7ff) as i64 - 1023;
        self.mantissa = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    }

    pub(crate) fn value(&self) -> f64 {
        self.mantissa.ln() + self.exponent as f64 * std::f64::consts::LN_2
    }
}

/// Mean log loss over rows, from raw scores (log-odds).
pub fn log_loss(labels: &[f64], scores: &[f64]) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    let sum: f64 = labels
        .iter()
        .zip(scores)
        .map(|(&y, &s)| row_log_loss(y, s))
        .sum();
    sum / labels.len() as f64
}

/// Mean squared error.
pub fn mean_squared_error(labels: &[f64], predictions: &[f64]) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    let sum: f64 = labels
        .iter()
        .zip(predictions)
        .map(|(&y, &p)| (y - p) * (y - p))
        .sum();
    sum / labels.len() as f64
}

/// ROC AUC of scores against 0/1 labels (see the [module docs](self));
/// `None` if either class is absent. Any monotone transform of the scores
/// gives the same value, so raw scores and probabilities agree.
pub fn roc_auc(labels: &[f64], scores: &[f64]) -> Option<f64> {
    // (order-preserving key of the score, positive?) sorted by key: a radix
    // sort, as the trainer computes this every iteration.
    let mut pairs: Vec<(u64, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| (order_key(s), y == 1.0))
        .collect();
    radix_sort(&mut pairs);
    let positives = pairs.iter().filter(|p| p.1).count() as f64;
    let negatives = pairs.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Walk groups of tied scores from the lowest: each positive beats every
    // negative below its group and ties half of its group's negatives.
    let mut below_neg = 0.0;
    let mut wins = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        let (mut pos, mut neg) = (0.0, 0.0);
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            if pairs[j].1 {
                pos += 1.0;
            } else {
                neg += 1.0;
            }
            j += 1;
        }
        wins += pos * (below_neg + 0.5 * neg);
        below_neg += neg;
        i = j;
    }
    Some(wins / (positives * negatives))
}

/// A key whose unsigned order is the numeric order of `x` (−0 and +0 the
/// same key; NaN sorts after +∞).
fn order_key(x: f64) -> u64 {
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// LSD radix sort by key, a byte per pass, skipping bytes all keys share.
fn radix_sort(pairs: &mut Vec<(u64, bool)>) {
    if pairs.len() < 512 {
        pairs.sort_unstable_by_key(|p| p.0);
        return;
    }
    let mut counts = [[0usize; 256]; 8];
    for p in pairs.iter() {
        for (byte, c) in counts.iter_mut().enumerate() {
            c[((p.0 >> (8 * byte)) & 0xff) as usize] += 1;
        }
    }
    let mut from = std::mem::take(pairs);
    let mut to = vec![(0u64, false); from.len()];
    for (byte, c) in counts.iter().enumerate() {
        if c.contains(&from.len()) {
            continue;
        }
        let mut offsets = [0usize; 256];
        let mut sum = 0;
        for (o, &n) in offsets.iter_mut().zip(c) {
            *o = sum;
            sum += n;
        }
        for p in &from {
            let d = ((p.0 >> (8 * byte)) & 0xff) as usize;
            to[offsets[d]] = *p;
            offsets[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    *pairs = from;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_with_ties_matches_pair_counting() {
        let labels = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let scores = [0.1, 0.4, 0.4, 0.8, 0.2, 0.9, 0.4];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for i in 0..labels.len() {
            for j in 0..labels.len() {
                if labels[i] == 1.0 && labels[j] == 0.0 {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        wins += 1.0;
                    } else if scores[i] == scores[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        assert_eq!(roc_auc(&labels, &scores), Some(wins / pairs));
        assert_eq!(roc_auc(&[1.0, 1.0], &[0.1, 0.2]), None);
        assert_eq!(roc_auc(&[0.0, 1.0], &[0.1, 0.2]), Some(1.0));
    }

    #[test]
    fn ln_sum_matches_summed_logs() {
        let mut acc = LnSum::new();
        let mut direct = 0.0;
        let mut x: f64 = 0.123;
        for _ in 0..10_000 {
            x = (x * 3.7 + 0.31).fract();
            let e = (-20.0 * x).exp();
            acc.add_ln(1.0 + e);
            direct += e.ln_1p();
        }
        assert!(
            (acc.value() - direct).abs() < 1e-11 * direct,
            "{} vs {direct}",
            acc.value()
        );
        assert_eq!(LnSum::new().value(), 0.0);
    }

    #[test]
    fn radix_sorted_auc_matches_a_comparison_sort() {
        let mut x: f64 = 0.37;
        let mut labels = Vec::new();
        let mut scores = Vec::new();
        for i in 0..5000 {
            x = (x * 7.13 + 0.11).fract();
            labels.push(f64::from(u8::from(x < 0.4)));
            // Ties (rounded scores), both signs, zeros of both signs.
            let s = ((x - 0.45) * 40.0).round() / 8.0 + if i % 3 == 0 { 1e-3 * x } else { 0.0 };
            scores.push(if i % 97 == 0 { -0.0 } else { s });
        }
        let mut keys: Vec<(u64, bool)> = scores.iter().map(|&s| (order_key(s), false)).collect();
        radix_sort(&mut keys);
        let mut sorted = scores.clone();
        sorted.sort_by(f64::total_cmp);
        let want: Vec<u64> = sorted.iter().map(|&s| order_key(s)).collect();
        assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), want);
        // AUC by counting pairs on a subsample, and on the whole by ranks.
        let n = 700;
        let (l, s) = (&labels[..n], &scores[..n]);
        let mut wins = 0.0;
        let mut total = 0.0;
        for i in 0..n {
            for j in 0..n {
                if l[i] == 1.0 && l[j] == 0.0 {
                    total += 1.0;
                    wins += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        let got = roc_auc(l, s).unwrap();
        assert!(
            (got - wins / total).abs() < 1e-12,
            "{got} vs {}",
            wins / total
        );
        let big = roc_auc(&labels, &scores).unwrap();
        assert!((0.0..=1.0).contains(&big));
        assert!(order_key(-1.0) < order_key(-0.5) && order_key(-0.0) == order_key(0.0));
        assert!(order_key(0.0) < order_key(1e-300) && order_key(1.0) < order_key(f64::INFINITY));
    }

    #[test]
    fn losses_are_stable() {
        assert!((softplus(0.0) - std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(softplus(800.0), 800.0);
        assert!(softplus(-800.0) >= 0.0);
        assert!((row_log_loss(1.0, 2.0) + sigmoid(2.0).ln()).abs() < 1e-15);
        assert!((row_log_loss(0.0, 2.0) + (1.0 - sigmoid(2.0)).ln()).abs() < 1e-14);
        assert_eq!(row_log_loss(1.0, 1000.0), 0.0);
        assert!((sigmoid(-40.0) - (-40.0f64).exp() / (1.0 + (-40.0f64).exp())).abs() < 1e-30);
        assert_eq!(mean_squared_error(&[1.0, 3.0], &[2.0, 3.0]), 0.5);
        assert!((log_loss(&[1.0, 0.0], &[0.0, 0.0]) - std::f64::consts::LN_2).abs() < 1e-15);
    }
}
