//! `keel-quality` is Keel's test-centric model quality: suite files
//! ([`suite`]) and the metric library behind them — the numbers a quality
//! suite asserts on, computed from plain slices of labels, predictions and
//! scores.
//!
//! * [`metrics::classification`] — accuracy, precision/recall/F1 (binary and
//!   macro/micro/weighted), the confusion matrix, ROC AUC (binary and
//!   one-vs-rest), average precision, log loss, the Brier score, the
//!   calibration curve and expected calibration error;
//! * [`metrics::regression`] — RMSE, MAE, R² and MAPE;
//! * [`metrics::ranking`] — NDCG@k, precision@k and MAP@k, for one query or
//!   averaged over a query-id column;
//! * [`fairness`] — the per-group table (count, selection rate, TPR, FPR,
//!   accuracy) over one or several sensitive columns and fairlearn's
//!   disparity metrics (demographic parity, equalized odds, equal
//!   opportunity, disparate impact);
//! * [`slices`] — discovery of the data slices (one column's value, or a pair
//!   of them) where a per-row correctness or loss is worst.
//!
//! The crate knows nothing about models, files, HTTP or storage: every
//! function is pure, takes borrowed columns, allocates little, and runs in
//! one pass or one sort, because it is meant for a million rows. Bad input is
//! never a panic: it is a [`QualityError`] naming the argument (and the row)
//! at fault.
//!
//! Definitions follow scikit-learn 1.9 and fairlearn 0.15 and are
//! cross-checked against them on the same data (`tests/reference.py`,
//! `tests/reference.json`, `tests/reference.rs`); where those libraries
//! leave a choice, the function's documentation states the one made here.
//!
//! Conventions: class labels are `i64` (any integers, not necessarily
//! `0..k`); binary metrics take an explicit `pos_label`, and every other
//! label counts as negative, but a column holding three or more distinct
//! labels is rejected rather than silently binarised. Scores and
//! probabilities are `f64`; NaN is always an error.
//!
//! ```
//! use keel_quality::fairness;
//! use keel_quality::metrics::classification::{self, Average};
//!
//! let y_true = [0, 0, 1, 1, 1, 0];
//! let y_prob = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2];
//! let y_pred: Vec<i64> = y_prob.iter().map(|&p| i64::from(p >= 0.5)).collect();
//! assert_eq!(classification::roc_auc(&y_true, &y_prob, 1)?, 8.0 / 9.0);
//! let f1 = classification::f1(&y_true, &y_pred, Average::Binary { pos_label: 1 })?;
//! assert!((f1 - 0.8).abs() < 1e-12);
//!
//! let region = ["north", "south", "north", "south", "north", "south"];
//! let table = fairness::group_table(&y_true, &y_pred, 1, &[&region])?;
//! assert_eq!(table.groups[0].group, ["north"]);
//! assert_eq!(table.disparities().demographic_parity_difference, 0.0);
//!
//! assert!(classification::log_loss(&y_true, &[0.5; 5], 1).is_err()); // 6 rows vs 5
//! # Ok::<(), keel_quality::QualityError>(())
//! ```

pub mod checks;
pub mod fairness;
pub mod metrics;
pub mod slices;
pub mod suite;

/// What the quality metrics fail with: always bad input, named.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityError {
    /// An input column was empty.
    #[error("{name} is empty; a metric needs at least one row")]
    Empty { name: String },
    /// Two columns that must pair up row by row have different lengths.
    #[error("{a} has {len_a} rows but {b} has {len_b}; they must have the same length")]
    LengthMismatch {
        a: String,
        len_a: usize,
        b: String,
        len_b: usize,
    },
    /// A number was NaN (or infinite where only finite numbers make sense).
    #[error("{name}[{index}] is {value}; it must be a finite number")]
    NotFinite {
        name: String,
        index: usize,
        value: f64,
    },
    /// A number was outside the range the argument allows.
    #[error("{name}[{index}] is {value}; it must be in {range}")]
    OutOfRange {
        name: String,
        index: usize,
        value: f64,
        range: &'static str,
    },
    /// A binary metric was given a column with three or more labels.
    #[error(
        "{name} holds more than two distinct labels (at least {labels:?}); a binary metric needs \
         at most two: use the multiclass variant or map the labels to two first"
    )]
    NotBinary { name: String, labels: Vec<i64> },
    /// The metric needs rows of both classes (or of a given class) and the
    /// data has only one.
    #[error("{metric} is undefined here: {name} {reason}")]
    SingleClass {
        metric: &'static str,
        name: String,
        reason: String,
    },
    /// A label in `y_true` has no column among the scores' classes.
    #[error(
        "{name}[{index}] is label {label}, which is not one of the score columns' classes {classes:?}"
    )]
    UnknownLabel {
        name: String,
        index: usize,
        label: i64,
        classes: Vec<i64>,
    },
    /// Anything else wrong with an argument.
    #[error("{name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, QualityError>;

pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> QualityError {
    QualityError::Invalid {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// `a` and `b` pair up row by row, and are not empty.
pub(crate) fn paired(a: &str, len_a: usize, b: &str, len_b: usize) -> Result<usize> {
    if len_a == 0 {
        return Err(QualityError::Empty {
            name: a.to_string(),
        });
    }
    if len_a != len_b {
        return Err(QualityError::LengthMismatch {
            a: a.to_string(),
            len_a,
            b: b.to_string(),
            len_b,
        });
    }
    Ok(len_a)
}

pub(crate) fn not_finite(name: &str, index: usize, value: f64) -> QualityError {
    QualityError::NotFinite {
        name: name.to_string(),
        index,
        value,
    }
}

/// The error for a probability outside `[0, 1]` (NaN included).
pub(crate) fn bad_probability(name: &str, index: usize, value: f64) -> QualityError {
    if value.is_nan() {
        not_finite(name, index, value)
    } else {
        QualityError::OutOfRange {
            name: name.to_string(),
            index,
            value,
            range: "[0, 1]",
        }
    }
}

/// Neumaier's compensated sum: a million-row mean accurate to a few ulps
/// (numpy's pairwise sum, which the references use, is within ~1e-16·log n).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// A fast, non-cryptographic hasher (rustc's FxHash) for interning column
/// values: grouping a million rows by a string column is a million lookups.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FxMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Interns the values of several string columns row by row: the group of a
/// row is the tuple of its values, numbered in order of first appearance.
/// No per-row allocation: each column's value is looked up once, and the
/// tuple is built one column at a time as a pair `(group so far, value)`.
pub(crate) struct Grouper<'a> {
    values: Vec<FxMap<&'a str, u32>>,
    /// Per column the values in code order.
    names: Vec<Vec<&'a str>>,
    pairs: FxMap<(u32, u32), u32>,
    /// `(parent group, value code)` of each intermediate or final group,
    /// indexed by group id; the root (no column yet) is implicit.
    nodes: Vec<(u32, u32)>,
    /// Final-group id of each node that is a full tuple.
    leaf: Vec<u32>,
    /// Full tuples: their node ids, in order of first appearance.
    leaves: Vec<u32>,
}

impl<'a> Grouper<'a> {
    pub(crate) fn new(columns: usize) -> Self {
        Grouper {
            values: (0..columns).map(|_| FxMap::default()).collect(),
            names: vec![Vec::new(); columns],
            pairs: FxMap::default(),
            nodes: Vec::new(),
            leaf: Vec::new(),
            leaves: Vec::new(),
        }
    }

    /// The group of a row given its value in each column (in column order).
    #[inline]
    pub(crate) fn group(&mut self, row: impl Iterator<Item = &'a str>) -> usize {
        let mut node = u32::MAX; // the root
        for (c, value) in row.enumerate() {
            let names = &mut self.names[c];
            let code = *self.values[c].entry(value).or_insert_with(|| {
                names.push(value);
                names.len() as u32 - 1
            });
            if self.values.len() == 1 {
                node = code;
                break;
            }
            let nodes = &mut self.nodes;
            node = *self.pairs.entry((node, code)).or_insert_with(|| {
                nodes.push((node, code));
                nodes.len() as u32 - 1
            });
        }
        let node = node as usize;
        if self.leaf.len() <= node {
            self.leaf.resize(node + 1, u32::MAX);
        }
        if self.leaf[node] == u32::MAX {
            self.leaf[node] = self.leaves.len() as u32;
            self.leaves.push(node as u32);
        }
        self.leaf[node] as usize
    }

    /// The tuple of values of a group (as numbered by [`Grouper::group`]).
    pub(crate) fn values(&self, group: usize) -> Vec<String> {
        let columns = self.values.len();
        let node = self.leaves[group];
        if columns == 1 {
            return vec![self.names[0][node as usize].to_string()];
        }
        let mut out = vec![String::new(); columns];
        let mut node = node;
        for c in (0..columns).rev() {
            let (parent, code) = self.nodes[node as usize];
            out[c] = self.names[c][code as usize].to_string();
            node = parent;
        }
        out
    }
}

/// `f` over `items` on up to one thread per core, results in item order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}
