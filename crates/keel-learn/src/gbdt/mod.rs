//! Histogram-based gradient-boosted decision trees (LightGBM-style).
//!
//! Training: features are binned once ([`bins`]: ≤ `max_bins` quantile
//! bins, in `f32`, NaN in a bin of its own); the raw score of every row
//! starts at the base score (the mean label for squared error, the log-odds
//! of the mean label for binary logistic) and each iteration fits one tree
//! ([`grow`]) to the gradients and hessians of the loss at the current
//! scores, on a seeded subsample of rows (`subsample`, Bernoulli per row)
//! and columns (`colsample`, a fixed number of features per tree), and adds
//! it to the scores.
//!
//! Per iteration the trainer reports the training loss and, with a
//! validation set, its loss and (binary) ROC AUC; the losses are mean log
//! loss for `binary` and mean squared error for `regression`. With
//! `early_stopping_rounds = k`, training stops once the validation loss has
//! not improved (strictly) for `k` iterations, and the model keeps the trees
//! up to the best iteration.
//!
//! Determinism: the trees depend only on the data, the parameters and the
//! seed — not on the number of threads (see [`grow`] and the crate's
//! parallel helpers) — and a run resumed from a [`GbdtCheckpoint`] (trees,
//! RNG state, early-stopping state; the scores are recomputed from the
//! trees) continues bit for bit as the uninterrupted run would have.

pub mod bins;
pub mod grow;
pub mod tree;

use keel_stats::Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{LearnError, Problems, Result};
use crate::linear::check_fingerprints;
use crate::metrics::{self, roc_auc};
use crate::parallel::{chunks_mut, map_chunks, resolve_threads, zip_chunks_mut};
use crate::trainer::IterationMetrics;
use bins::BinMapper;
use grow::{GrowParams, Grower, Scratch};
pub use tree::Tree;

/// The loss a GBDT minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Log loss on 0/1 labels; raw scores are log-odds, predictions are
    /// probabilities of class 1.
    #[default]
    Binary,
    /// Squared error; predictions are the raw scores.
    Regression,
}

/// GBDT parameters. The names and defaults follow LightGBM where it has
/// them (`min_data_in_leaf` 20, `min_child_weight` — LightGBM's
/// `min_sum_hessian_in_leaf` — 1e-3, `max_bins` 255) except `lambda`
/// (XGBoost's default, 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbdtParams {
    pub objective: Objective,
    /// Trees (boosting iterations) at most.
    pub n_estimators: usize,
    /// Shrinkage applied to every leaf value; `> 0`.
    pub learning_rate: f64,
    /// Depth limit, 1 ..= 32 (a tree of depth 1 is a stump).
    pub max_depth: usize,
    /// Leaf limit per tree (leaf-wise growth, as LightGBM's
    /// `num_leaves`); absent: grow depth-wise to `max_depth`.
    pub num_leaves: Option<usize>,
    /// Rows each leaf must keep.
    pub min_data_in_leaf: usize,
    /// Hessian sum each leaf must keep.
    pub min_child_weight: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// A split must gain more than this.
    pub min_split_gain: f64,
    /// Quantile bins per feature, 2 ..= 255.
    pub max_bins: usize,
    /// Fraction of rows each tree is fitted on (Bernoulli per row), (0, 1].
    pub subsample: f64,
    /// Fraction of features each tree may split on, (0, 1].
    pub colsample: f64,
    /// Stop after this many iterations without a better validation loss
    /// (needs a validation set).
    pub early_stopping_rounds: Option<usize>,
    /// Seeds the row and column sampling.
    pub seed: u64,
    /// Threads to use; results do not depend on it. Default: every core.
    pub threads: Option<usize>,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            objective: Objective::Binary,
            n_estimators: 100,
            learning_rate: 0.1,
            max_depth: 6,
            num_leaves: None,
            min_data_in_leaf: 20,
            min_child_weight: 1e-3,
            lambda: 1.0,
            min_split_gain: 0.0,
            max_bins: 255,
            subsample: 1.0,
            colsample: 1.0,
            early_stopping_rounds: None,
            seed: 0,
            threads: None,
        }
    }
}

impl GbdtParams {
    /// Checks every parameter, reporting all problems at once.
    pub fn validate(&self) -> Result<()> {
        let mut p = Problems::default();
        if self.n_estimators == 0 {
            p.push("n_estimators", "must be at least 1");
        }
        p.positive("learning_rate", self.learning_rate);
        if !(1..=32).contains(&self.max_depth) {
            p.push(
                "max_depth",
                format!("must be in 1..=32, got {}", self.max_depth),
            );
        }
        if let Some(l) = self.num_leaves
            && l < 2
        {
            p.push("num_leaves", format!("must be at least 2, got {l}"));
        }
        if self.min_data_in_leaf == 0 {
            p.push("min_data_in_leaf", "must be at least 1");
        }
        p.non_negative("min_child_weight", self.min_child_weight);
        p.non_negative("lambda", self.lambda);
        p.non_negative("min_split_gain", self.min_split_gain);
        if !(2..=255).contains(&self.max_bins) {
            p.push(
                "max_bins",
                format!("must be in 2..=255, got {}", self.max_bins),
            );
        }
        p.fraction("subsample", self.subsample);
        p.fraction("colsample", self.colsample);
        if self.early_stopping_rounds == Some(0) {
            p.push("early_stopping_rounds", "must be at least 1 (or absent)");
        }
        if self.threads == Some(0) {
            p.push("threads", "must be at least 1 (or absent for every core)");
        }
        p.into_result()
    }

    fn grow_params(&self) -> GrowParams {
        GrowParams {
            max_depth: self.max_depth,
            max_leaves: self.num_leaves.unwrap_or(usize::MAX),
            min_data_in_leaf: self.min_data_in_leaf as f64,
            min_child_weight: self.min_child_weight,
            lambda: self.lambda,
            min_split_gain: self.min_split_gain,
            learning_rate: self.learning_rate,
        }
    }
}

/// A trained ensemble: `raw(x) = base_score + Σ trees(x)`; binary models
/// predict `sigmoid(raw)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GbdtModel {
    pub objective: Objective,
    pub feature_names: Vec<String>,
    /// The initial raw score (log-odds for binary), in `f32` as exported.
    pub base_score: f32,
    pub trees: Vec<Tree>,
}

impl GbdtModel {
    /// The raw score of one row (at least as many values as
    /// `feature_names`; panics otherwise — [`crate::Model::raw_scores`]
    /// checks the shape): the base score plus each tree's leaf, added in tree
    /// order in `f64`.
    pub fn raw_score(&self, row: &[f64]) -> f64 {
        let mut s = f64::from(self.base_score);
        for t in &self.trees {
            s += f64::from(t.predict(row));
        }
        s
    }

    /// Checks the trees' structure (for models read from JSON).
    pub(crate) fn check(&self) -> Result<()> {
        if self.trees.is_empty() {
            return Err(LearnError::Shape {
                field: "trees",
                message: "a model needs at least one tree".into(),
            });
        }
        let n = self.feature_names.len();
        for (i, t) in self.trees.iter().enumerate() {
            t.check(n).map_err(|message| LearnError::Shape {
                field: "trees",
                message: format!("tree {i}: {message}"),
            })?;
        }
        if !self.base_score.is_finite() {
            return Err(LearnError::Shape {
                field: "base_score",
                message: format!("must be finite, got {}", self.base_score),
            });
        }
        Ok(())
    }
}

/// Everything a GBDT run resumes from. The training scores are not stored:
/// they are recomputed from the trees, in the same order of additions, so
/// the resumed run is bit-identical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GbdtCheckpoint {
    pub params: GbdtParams,
    pub feature_names: Vec<String>,
    pub base_score: f32,
    /// The trees so far, one per iteration done.
    pub trees: Vec<Tree>,
    /// The sampling RNG after the last tree.
    pub rng: Rng,
    /// The best validation loss so far and its iteration (1-based).
    pub best_valid_loss: Option<f64>,
    pub best_iteration: Option<usize>,
    pub stopped_early: bool,
    pub train_fingerprint: u64,
    pub valid_fingerprint: Option<u64>,
}

/// A GBDT training run, one tree per [`GbdtTrainer::step`].
pub struct GbdtTrainer<'a> {
    params: GbdtParams,
    train: &'a Dataset,
    validation: Option<&'a Dataset>,
    threads: usize,
    mapper: BinMapper,
    /// Row-major bins of the training set.
    bins: Vec<u8>,
    /// Feature-major bins of the training set.
    columns: Vec<u8>,
    base_score: f32,
    trees: Vec<Tree>,
    rng: Rng,
    /// Raw training scores.
    scores: Vec<f64>,
    /// `[gradient, hessian]` per training row at `scores`.
    gh: Vec<[f64; 2]>,
    valid_scores: Vec<f64>,
    best_valid_loss: Option<f64>,
    best_iteration: Option<usize>,
    stopped_early: bool,
    scratch: Scratch,
    /// Leaf value per training row for the tree being added.
    delta: Vec<f64>,
}

impl std::fmt::Debug for GbdtTrainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GbdtTrainer")
            .field("params", &self.params)
            .field("trees", &self.trees.len())
            .finish()
    }
}

impl<'a> GbdtTrainer<'a> {
    pub fn new(
        params: GbdtParams,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        check_data(&params, train, validation)?;
        let base_score = base_score(params.objective, train.labels());
        let rng = Rng::from_seed(params.seed);
        Ok(Self::start(
            params,
            train,
            validation,
            base_score,
            Vec::new(),
            rng,
        ))
    }

    pub fn resume(
        checkpoint: GbdtCheckpoint,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        let cp = checkpoint;
        check_data(&cp.params, train, validation)?;
        check_fingerprints(
            train,
            validation,
            cp.train_fingerprint,
            cp.valid_fingerprint,
        )?;
        if cp.feature_names != train.feature_names() {
            return Err(LearnError::Checkpoint {
                field: "feature_names",
                message: "differ from the training set's".into(),
            });
        }
        if cp.trees.len() > cp.params.n_estimators {
            return Err(LearnError::Checkpoint {
                field: "trees",
                message: format!(
                    "{} trees but n_estimators is {}",
                    cp.trees.len(),
                    cp.params.n_estimators
                ),
            });
        }
        for (i, tree) in cp.trees.iter().enumerate() {
            tree.check(train.cols())
                .map_err(|message| LearnError::Checkpoint {
                    field: "trees",
                    message: format!("tree {i}: {message}"),
                })?;
        }
        if !cp.base_score.is_finite() {
            return Err(LearnError::Checkpoint {
                field: "base_score",
                message: format!("must be finite, got {}", cp.base_score),
            });
        }
        let mut t = Self::start(
            cp.params,
            train,
            validation,
            cp.base_score,
            cp.trees,
            cp.rng,
        );
        t.best_valid_loss = cp.best_valid_loss;
        t.best_iteration = cp.best_iteration;
        t.stopped_early = cp.stopped_early;
        Ok(t)
    }

    fn start(
        params: GbdtParams,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
        base_score: f32,
        trees: Vec<Tree>,
        rng: Rng,
    ) -> Self {
        let threads = resolve_threads(params.threads);
        let mapper = BinMapper::fit(train, params.max_bins, threads);
        let bins = mapper.bin_all(train, threads);
        let columns = bins::transpose(&bins, train.rows(), train.cols());
        let n = train.rows();
        let mut t = GbdtTrainer {
            threads,
            mapper,
            bins,
            columns,
            base_score,
            rng,
            scores: Vec::new(),
            gh: vec![[0.0; 2]; n],
            valid_scores: Vec::new(),
            best_valid_loss: None,
            best_iteration: None,
            stopped_early: false,
            scratch: Scratch::default(),
            delta: vec![0.0; n],
            params,
            train,
            validation,
            trees,
        };
        t.scores = t.replay_scores(train);
        if let Some(v) = validation {
            t.valid_scores = t.replay_scores(v);
        }
        t.delta.fill(0.0);
        t.update_train();
        t
    }

    /// Base score plus every tree so far, added in tree order.
    fn replay_scores(&self, data: &Dataset) -> Vec<f64> {
        let base = f64::from(self.base_score);
        let trees = &self.trees;
        map_chunks(data.rows(), self.threads, |rows| {
            rows.map(|r| {
                let row = data.row(r);
                let mut s = base;
                for t in trees {
                    s += f64::from(t.predict(row));
                }
                s
            })
            .collect::<Vec<f64>>()
        })
        .concat()
    }

    /// Adds `delta` to the training scores and recomputes the gradients;
    /// returns the mean training loss at the new scores.
    fn update_train(&mut self) -> f64 {
        let labels = self.train.labels();
        let delta = &self.delta;
        let objective = self.params.objective;
        let parts = zip_chunks_mut(
            &mut self.scores,
            &mut self.gh,
            self.threads,
            |start, s, gh| {
                // Log loss: max(s, 0) − y·s + ln(1 + e^−|s|), the last
                // term summed as a product (one logarithm per chunk).
                let mut loss = 0.0;
                let mut ln_terms = metrics::LnSum::new();
                for (k, (s, gh)) in s.iter_mut().zip(gh.iter_mut()).enumerate() {
                    let r = start + k;
                    *s += delta[r];
                    let y = labels[r];
                    match objective {
                        Objective::Binary => {
                            let e = (-s.abs()).exp();
                            let p = if *s >= 0.0 {
                                1.0 / (1.0 + e)
                            } else {
                                e / (1.0 + e)
                            };
                            loss += s.max(0.0) - y * *s;
                            ln_terms.add_ln(1.0 + e);
                            *gh = [p - y, p * (1.0 - p)];
                        }
                        Objective::Regression => {
                            let d = *s - y;
                            loss += d * d;
                            *gh = [d, 1.0];
                        }
                    }
                }
                loss + ln_terms.value()
            },
        );
        parts.into_iter().sum::<f64>() / self.train.rows() as f64
    }

    /// Trees so far.
    pub fn iteration(&self) -> usize {
        self.trees.len()
    }

    pub fn is_done(&self) -> bool {
        self.stopped_early || self.trees.len() >= self.params.n_estimators
    }

    /// The iteration (1-based tree count) with the best validation loss so
    /// far.
    pub fn best_iteration(&self) -> Option<usize> {
        self.best_iteration
    }

    /// Sets the threads used from now on (results do not change).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Fits and adds one tree; returns the iteration's metrics.
    pub fn step(&mut self) -> Result<IterationMetrics> {
        if self.is_done() {
            return Err(LearnError::Finished {
                iterations: self.trees.len(),
            });
        }
        let n = self.train.rows();
        let d = self.train.cols();
        // Column sample, then row sample, from the run's RNG.
        let features: Vec<usize> = if self.params.colsample < 1.0 {
            let k = ((self.params.colsample * d as f64).round() as usize).clamp(1, d);
            let mut all: Vec<usize> = (0..d).collect();
            for i in 0..k {
                let j = i + self.rng.below((d - i) as u64) as usize;
                all.swap(i, j);
            }
            let mut chosen = all[..k].to_vec();
            chosen.sort_unstable();
            chosen
        } else {
            (0..d).collect()
        };
        let mut out_of_bag: Vec<u32> = Vec::new();
        self.scratch.indices.clear();
        if self.params.subsample < 1.0 {
            for r in 0..n as u32 {
                if self.rng.next_f64() < self.params.subsample {
                    self.scratch.indices.push(r);
                } else {
                    out_of_bag.push(r);
                }
            }
        } else {
            self.scratch.indices.extend(0..n as u32);
        }
        let grower = Grower {
            bins: &self.bins,
            cols: d,
            columns: &self.columns,
            rows: n,
            mapper: &self.mapper,
            params: self.params.grow_params(),
            threads: self.threads,
            histogram_budget: grow::HISTOGRAM_BUDGET_BYTES,
        };
        let grown = grower.grow(&mut self.scratch, &features, &self.gh);
        for &(begin, end, value) in &grown.leaves {
            for &r in &self.scratch.indices[begin..end] {
                self.delta[r as usize] = f64::from(value);
            }
        }
        for &r in &out_of_bag {
            let r = r as usize;
            self.delta[r] = f64::from(grown.tree.predict(self.train.row(r)));
        }
        let train_loss = self.update_train();
        let tree = grown.tree;
        let mut m = IterationMetrics::new(self.trees.len() + 1, train_loss);
        if let Some(v) = self.validation {
            let objective = self.params.objective;
            let labels = v.labels();
            let tree = &tree;
            let parts = chunks_mut(&mut self.valid_scores, self.threads, |start, s| {
                // As the training loss: ln(1 + e^−|s|) summed as a product.
                let mut loss = 0.0;
                let mut ln_terms = metrics::LnSum::new();
                for (k, s) in s.iter_mut().enumerate() {
                    let r = start + k;
                    *s += f64::from(tree.predict(v.row(r)));
                    let y = labels[r];
                    match objective {
                        Objective::Binary => {
                            loss += s.max(0.0) - y * *s;
                            ln_terms.add_ln(1.0 + (-s.abs()).exp());
                        }
                        Objective::Regression => loss += (*s - y) * (*s - y),
                    }
                }
                loss + ln_terms.value()
            });
            let loss = parts.into_iter().sum::<f64>() / v.rows() as f64;
            m.valid_loss = Some(loss);
            if objective == Objective::Binary {
                m.valid_auc = roc_auc(labels, &self.valid_scores);
            }
            let iteration = self.trees.len() + 1;
            if self.best_valid_loss.is_none_or(|b| loss < b) {
                self.best_valid_loss = Some(loss);
                self.best_iteration = Some(iteration);
            }
            if let (Some(rounds), Some(best)) =
                (self.params.early_stopping_rounds, self.best_iteration)
                && iteration - best >= rounds
            {
                self.stopped_early = true;
            }
        }
        self.trees.push(tree);
        Ok(m)
    }

    pub fn checkpoint(&self) -> GbdtCheckpoint {
        GbdtCheckpoint {
            params: self.params.clone(),
            feature_names: self.train.feature_names().to_vec(),
            base_score: self.base_score,
            trees: self.trees.clone(),
            rng: self.rng.clone(),
            best_valid_loss: self.best_valid_loss,
            best_iteration: self.best_iteration,
            stopped_early: self.stopped_early,
            train_fingerprint: self.train.fingerprint(),
            valid_fingerprint: self.validation.map(Dataset::fingerprint),
        }
    }

    /// The model: every tree, or with early stopping the trees up to the
    /// best iteration. Refused before the first tree.
    pub fn finish(self) -> Result<GbdtModel> {
        if self.trees.is_empty() {
            return Err(LearnError::NotTrained { what: "tree" });
        }
        let mut trees = self.trees;
        if self.params.early_stopping_rounds.is_some()
            && let Some(best) = self.best_iteration
        {
            trees.truncate(best);
        }
        Ok(GbdtModel {
            objective: self.params.objective,
            feature_names: self.train.feature_names().to_vec(),
            base_score: self.base_score,
            trees,
        })
    }

    /// Raw training scores (for tests of the score bookkeeping).
    #[cfg(test)]
    pub(crate) fn train_scores(&self) -> &[f64] {
        &self.scores
    }
}

fn check_data(params: &GbdtParams, train: &Dataset, validation: Option<&Dataset>) -> Result<()> {
    params.validate()?;
    if params.early_stopping_rounds.is_some() && validation.is_none() {
        return Err(LearnError::InvalidParams {
            problems: vec![crate::error::ParamProblem {
                field: "early_stopping_rounds",
                message: "needs a validation set".into(),
            }],
        });
    }
    if train.rows() > u32::MAX as usize {
        return Err(LearnError::Shape {
            field: "rows",
            message: format!("{} rows; at most {} are supported", train.rows(), u32::MAX),
        });
    }
    if params.objective == Objective::Binary {
        train.check_binary_labels()?;
        let positives = train.labels().iter().filter(|&&y| y == 1.0).count();
        if positives == 0 || positives == train.rows() {
            return Err(LearnError::Labels(format!(
                "all {} labels are {}; a binary objective needs both 0 and 1",
                train.rows(),
                train.labels()[0]
            )));
        }
    }
    if let Some(v) = validation {
        train.check_same_columns(v, "validation")?;
        if params.objective == Objective::Binary {
            v.check_binary_labels()?;
        }
    }
    Ok(())
}

/// The initial raw score: mean label, or its log-odds; in `f32`.
fn base_score(objective: Objective, labels: &[f64]) -> f32 {
    let mean = labels.iter().sum::<f64>() / labels.len() as f64;
    match objective {
        Objective::Regression => mean as f32,
        Objective::Binary => (mean / (1.0 - mean)).ln() as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64, missing: bool) -> Dataset {
        let mut rng = Rng::from_seed(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a = rng.normal();
            let b = rng.normal();
            let c = (rng.below(5)) as f64;
            let s = 1.5 * a - b * b + 0.3 * c;
            let a = if missing && rng.next_f64() < 0.2 {
                f64::NAN
            } else {
                a
            };
            x.extend([a, b, c]);
            y.push(f64::from(u8::from(rng.next_f64() < metrics::sigmoid(s))));
        }
        Dataset::unnamed(3, x, y).unwrap()
    }

    #[test]
    fn scores_match_model_predictions_exactly() {
        // Partition-based score updates must agree bit for bit with tree
        // walks over the raw features, missing values and sampling included.
        let d = data(3000, 1, true);
        let params = GbdtParams {
            n_estimators: 15,
            subsample: 0.7,
            colsample: 0.67,
            min_data_in_leaf: 5,
            ..GbdtParams::default()
        };
        let mut t = GbdtTrainer::new(params, &d, None).unwrap();
        while !t.is_done() {
            t.step().unwrap();
        }
        let scores = t.train_scores().to_vec();
        let model = t.finish().unwrap();
        for (r, score) in scores.iter().enumerate() {
            assert_eq!(
                model.raw_score(d.row(r)).to_bits(),
                score.to_bits(),
                "row {r}"
            );
        }
    }

    #[test]
    fn learns_and_loss_decreases() {
        let d = data(4000, 2, false);
        let (train, valid) = d.split_validation(0.25, 0).unwrap();
        let mut t = GbdtTrainer::new(GbdtParams::default(), &train, Some(&valid)).unwrap();
        let first = t.step().unwrap();
        let mut last = first.clone();
        while !t.is_done() {
            last = t.step().unwrap();
        }
        assert!(last.train_loss < first.train_loss);
        assert!(last.valid_auc.unwrap() > 0.75, "{last:?}");
    }

    #[test]
    fn regression_fits_a_step_function() {
        let x: Vec<f64> = (0..200).map(f64::from).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&v| if v < 100.0 { 1.0 } else { 5.0 })
            .collect();
        let d = Dataset::unnamed(1, x, y).unwrap();
        let params = GbdtParams {
            objective: Objective::Regression,
            n_estimators: 50,
            learning_rate: 0.3,
            lambda: 0.0,
            ..GbdtParams::default()
        };
        let mut t = GbdtTrainer::new(params, &d, None).unwrap();
        let mut loss = f64::NAN;
        while !t.is_done() {
            loss = t.step().unwrap().train_loss;
        }
        assert!(loss < 1e-6, "{loss}");
        let m = t.finish().unwrap();
        assert!((m.raw_score(&[10.0]) - 1.0).abs() < 1e-3);
        assert!((m.raw_score(&[150.0]) - 5.0).abs() < 1e-3);
        assert_eq!(m.trees[0].threshold[0], 99.5);
    }

    #[test]
    fn early_stopping_keeps_the_best_trees() {
        // Pure noise labels: validation loss soon stops improving.
        let mut rng = Rng::from_seed(9);
        let x: Vec<f64> = (0..2000).map(|_| rng.normal()).collect();
        let y: Vec<f64> = (0..1000)
            .map(|_| f64::from(u8::from(rng.next_f64() < 0.5)))
            .collect();
        let d = Dataset::unnamed(2, x, y).unwrap();
        let (train, valid) = d.split_validation(0.3, 1).unwrap();
        let params = GbdtParams {
            n_estimators: 500,
            early_stopping_rounds: Some(5),
            min_data_in_leaf: 2,
            ..GbdtParams::default()
        };
        let mut t = GbdtTrainer::new(params, &train, Some(&valid)).unwrap();
        let mut n = 0;
        while !t.is_done() {
            t.step().unwrap();
            n += 1;
        }
        let best = t.best_iteration().unwrap();
        assert!(n < 500 && n == best + 5, "stopped after {n}, best {best}");
        assert_eq!(t.finish().unwrap().trees.len(), best);
    }
}
