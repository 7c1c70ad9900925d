//! `keel-learn` is Keel's built-in trainers, in pure Rust: binary logistic
//! regression and ridge regression ([`linear`]), and histogram-based
//! gradient-boosted trees for binary classification and regression
//! ([`gbdt`]).
//!
//! The training job runner drives a [`Trainer`]: `new(params, &train,
//! validation)`, then `step()` per iteration (each returns
//! [`IterationMetrics`] to log), `checkpoint()` whenever it likes (a serde
//! [`Checkpoint`]; resuming one on the same data gives a bit-identical
//! model), and `finish()` into a [`Model`], which predicts, serialises to
//! JSON and exports to ONNX ([`onnx`]) in the shape scikit-learn exports
//! have, so that Keel serves it like any other model.
//!
//! Everything is deterministic given the parameters (including a seed for
//! GBDT sampling) and independent of the number of threads. Bad parameters
//! and data are refused with a [`LearnError`] naming the parameter, field,
//! row or column.
//!
//! **Invariant:** knows nothing about runs, artifacts, files or HTTP; its
//! only Keel dependency is `keel-stats` (the seeded RNG).

pub mod dataset;
pub mod error;
pub mod gbdt;
pub mod linear;
pub mod metrics;
pub mod model;
pub mod onnx;
mod parallel;
pub mod trainer;

pub use dataset::Dataset;
pub use error::{LearnError, ParamProblem, Result};
pub use gbdt::{GbdtCheckpoint, GbdtModel, GbdtParams, GbdtTrainer, Objective, Tree};
pub use linear::{
    LinearModel, LogisticCheckpoint, LogisticParams, LogisticTrainer, RidgeCheckpoint, RidgeParams,
    RidgeTrainer,
};
pub use model::Model;
pub use trainer::{CHECKPOINT_FORMAT, Checkpoint, IterationMetrics, Params, Trainer, fit};
