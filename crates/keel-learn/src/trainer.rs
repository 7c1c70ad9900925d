//! One state machine over every model family, for the training job runner:
//! create or resume, `step` (one iteration, its metrics), `checkpoint`
//! whenever convenient, `finish` into a [`Model`].
//!
//! An iteration is one tree (GBDT), one Newton step (logistic regression)
//! or the whole solve (ridge, a single step). Checkpoints are plain serde
//! values; [`Checkpoint::to_json`] adds a format version. A run resumed from
//! a checkpoint (on the same data, which the checkpoint's fingerprints
//! enforce) produces exactly the model of an uninterrupted run.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{LearnError, Result};
use crate::gbdt::{GbdtCheckpoint, GbdtParams, GbdtTrainer};
use crate::linear::{
    LogisticCheckpoint, LogisticParams, LogisticTrainer, RidgeCheckpoint, RidgeParams, RidgeTrainer,
};
use crate::model::Model;

/// The version written by [`Checkpoint::to_json`] and required by
/// [`Checkpoint::from_json`].
pub const CHECKPOINT_FORMAT: u32 = 1;

/// What to train, with its parameters. In JSON the family is a tag:
/// `{"family": "gbdt", "n_estimators": 200, "max_depth": 6}`; omitted
/// parameters take their defaults and unknown ones are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Params {
    /// Binary logistic regression.
    Logistic(LogisticParams),
    /// Ridge regression (ordinary least squares with `l2 = 0`).
    Linear(RidgeParams),
    /// Gradient-boosted trees, binary or regression.
    Gbdt(GbdtParams),
}

impl Params {
    /// Checks every parameter without touching data.
    pub fn validate(&self) -> Result<()> {
        match self {
            Params::Logistic(p) => p.validate(),
            Params::Linear(p) => p.validate(),
            Params::Gbdt(p) => p.validate(),
        }
    }

    /// Iterations at most (trees, Newton steps, or 1).
    pub fn max_iterations(&self) -> usize {
        match self {
            Params::Logistic(p) => p.max_iter,
            Params::Linear(_) => 1,
            Params::Gbdt(p) => p.n_estimators,
        }
    }
}

/// What one iteration reports. Losses are means over rows: log loss for
/// binary models, squared error for regression (without any penalty term).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationMetrics {
    /// Iterations done, counting this one (1-based).
    pub iteration: usize,
    pub train_loss: f64,
    /// On the validation set, if there is one.
    pub valid_loss: Option<f64>,
    /// ROC AUC on the validation set (binary models with one).
    pub valid_auc: Option<f64>,
}

impl IterationMetrics {
    pub(crate) fn new(iteration: usize, train_loss: f64) -> Self {
        IterationMetrics {
            iteration,
            train_loss,
            valid_loss: None,
            valid_auc: None,
        }
    }

    /// The metrics present, as `(name, value)` pairs to log with the
    /// iteration as the step: `train_loss`, `valid_loss`, `valid_auc`.
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![("train_loss", self.train_loss)];
        if let Some(v) = self.valid_loss {
            out.push(("valid_loss", v));
        }
        if let Some(v) = self.valid_auc {
            out.push(("valid_auc", v));
        }
        out
    }
}

/// A training run's resumable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Checkpoint {
    Logistic(LogisticCheckpoint),
    Linear(RidgeCheckpoint),
    Gbdt(GbdtCheckpoint),
}

#[derive(Serialize, Deserialize)]
struct VersionedCheckpoint {
    format: u32,
    checkpoint: Checkpoint,
}

impl Checkpoint {
    /// Iterations done when the checkpoint was taken.
    pub fn iteration(&self) -> usize {
        match self {
            Checkpoint::Logistic(c) => c.iteration,
            Checkpoint::Linear(c) => usize::from(c.model.is_some()),
            Checkpoint::Gbdt(c) => c.trees.len(),
        }
    }

    /// `{"format": 1, "checkpoint": {...}}`.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(&VersionedCheckpoint {
            format: CHECKPOINT_FORMAT,
            checkpoint: self.clone(),
        })?)
    }

    /// Reads what [`Checkpoint::to_json`] wrote; refuses other formats.
    pub fn from_json(json: &str) -> Result<Checkpoint> {
        let v: serde_json::Value = serde_json::from_str(json)?;
        let format = v.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(CHECKPOINT_FORMAT)) {
            return Err(LearnError::Checkpoint {
                field: "format",
                message: format!(
                    "is {format:?}; this version of Keel reads format {CHECKPOINT_FORMAT}"
                ),
            });
        }
        let v: VersionedCheckpoint = serde_json::from_value(v)?;
        Ok(v.checkpoint)
    }
}

/// A training run of any family (see the [module docs](self)).
#[derive(Debug)]
pub enum Trainer<'a> {
    Logistic(LogisticTrainer<'a>),
    Linear(RidgeTrainer<'a>),
    /// Boxed: it holds the binned data and buffers.
    Gbdt(Box<GbdtTrainer<'a>>),
}

impl<'a> Trainer<'a> {
    /// Validates the parameters and data (all parameter problems at once)
    /// and prepares the run (for GBDT: bins the features).
    pub fn new(
        params: Params,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        Ok(match params {
            Params::Logistic(p) => Trainer::Logistic(LogisticTrainer::new(p, train, validation)?),
            Params::Linear(p) => Trainer::Linear(RidgeTrainer::new(p, train, validation)?),
            Params::Gbdt(p) => Trainer::Gbdt(Box::new(GbdtTrainer::new(p, train, validation)?)),
        })
    }

    /// Continues a run from a checkpoint, on the same training and
    /// validation data it was taken on.
    pub fn resume(
        checkpoint: Checkpoint,
        train: &'a Dataset,
        validation: Option<&'a Dataset>,
    ) -> Result<Self> {
        Ok(match checkpoint {
            Checkpoint::Logistic(c) => {
                Trainer::Logistic(LogisticTrainer::resume(c, train, validation)?)
            }
            Checkpoint::Linear(c) => Trainer::Linear(RidgeTrainer::resume(c, train, validation)?),
            Checkpoint::Gbdt(c) => {
                Trainer::Gbdt(Box::new(GbdtTrainer::resume(c, train, validation)?))
            }
        })
    }

    /// Runs one iteration. Fails with [`LearnError::Finished`] once
    /// [`Trainer::is_done`].
    pub fn step(&mut self) -> Result<IterationMetrics> {
        match self {
            Trainer::Logistic(t) => t.step(),
            Trainer::Linear(t) => t.step(),
            Trainer::Gbdt(t) => t.step(),
        }
    }

    /// All iterations done, converged, or stopped early.
    pub fn is_done(&self) -> bool {
        match self {
            Trainer::Logistic(t) => t.is_done(),
            Trainer::Linear(t) => t.is_done(),
            Trainer::Gbdt(t) => t.is_done(),
        }
    }

    /// Iterations done so far.
    pub fn iteration(&self) -> usize {
        match self {
            Trainer::Logistic(t) => t.iteration(),
            Trainer::Linear(t) => t.iteration(),
            Trainer::Gbdt(t) => t.iteration(),
        }
    }

    /// Sets the threads used from now on (for a resumed run on another
    /// machine); results do not change.
    pub fn set_threads(&mut self, threads: usize) {
        match self {
            Trainer::Logistic(t) => t.set_threads(threads),
            Trainer::Linear(t) => t.set_threads(threads),
            Trainer::Gbdt(t) => t.set_threads(threads),
        }
    }

    pub fn checkpoint(&self) -> Checkpoint {
        match self {
            Trainer::Logistic(t) => Checkpoint::Logistic(t.checkpoint()),
            Trainer::Linear(t) => Checkpoint::Linear(t.checkpoint()),
            Trainer::Gbdt(t) => Checkpoint::Gbdt(t.checkpoint()),
        }
    }

    /// The model as trained so far (the whole model once `is_done`); a GBDT
    /// needs at least one step.
    pub fn finish(self) -> Result<Model> {
        Ok(match self {
            Trainer::Logistic(t) => Model::Logistic(t.finish()),
            Trainer::Linear(t) => Model::Linear(t.finish()?),
            Trainer::Gbdt(t) => Model::Gbdt((*t).finish()?),
        })
    }

    /// Steps until done, handing each iteration's metrics to
    /// `on_iteration`, which may stop the run early with
    /// `ControlFlow::Break(())`; then finishes.
    pub fn run(
        mut self,
        mut on_iteration: impl FnMut(&IterationMetrics) -> ControlFlow<()>,
    ) -> Result<Model> {
        while !self.is_done() {
            let metrics = self.step()?;
            if on_iteration(&metrics).is_break() {
                break;
            }
        }
        self.finish()
    }
}

/// Trains a model start to finish.
pub fn fit(params: Params, train: &Dataset, validation: Option<&Dataset>) -> Result<Model> {
    Trainer::new(params, train, validation)?.run(|_| ControlFlow::Continue(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_json_is_tagged_with_defaults_and_strict() {
        let p: Params = serde_json::from_str(r#"{"family": "gbdt", "n_estimators": 7}"#).unwrap();
        let Params::Gbdt(g) = &p else { panic!("{p:?}") };
        assert_eq!(g.n_estimators, 7);
        assert_eq!(g.max_depth, GbdtParams::default().max_depth);
        let back: Params = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let e = serde_json::from_str::<Params>(r#"{"family": "gbdt", "n_trees": 7}"#).unwrap_err();
        assert!(e.to_string().contains("n_trees"), "{e}");
        let p: Params = serde_json::from_str(r#"{"family": "logistic", "l2": 0.5}"#).unwrap();
        assert_eq!(p.max_iterations(), 100);
        let p: Params = serde_json::from_str(r#"{"family": "linear"}"#).unwrap();
        assert_eq!(p.max_iterations(), 1);
    }

    #[test]
    fn checkpoint_format_is_checked() {
        let e = Checkpoint::from_json(r#"{"format": 99, "checkpoint": {}}"#).unwrap_err();
        assert_eq!(e.fields(), ["format"]);
    }

    #[test]
    fn metrics_named() {
        let mut m = IterationMetrics::new(3, 0.5);
        assert_eq!(m.named(), vec![("train_loss", 0.5)]);
        m.valid_auc = Some(0.9);
        m.valid_loss = Some(0.6);
        assert_eq!(
            m.named(),
            vec![("train_loss", 0.5), ("valid_loss", 0.6), ("valid_auc", 0.9)]
        );
    }
}
