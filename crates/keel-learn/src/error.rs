//! The one error type of the crate. Every variant names what was wrong —
//! the parameter, the dataset field, the row and column — so a training job
//! can show the user where to look.

use std::fmt;

/// One problem with a parameter: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamProblem {
    /// The parameter's name as it is spelled in the params' JSON
    /// (`learning_rate`, `max_depth`, …).
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Everything training, predicting and resuming can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// One or more parameters are out of range; all of them are listed.
    #[error("invalid parameters: {}", join(problems))]
    InvalidParams { problems: Vec<ParamProblem> },

    /// The shape of a dataset (or of a prediction input) does not add up.
    #[error("{field}: {message}")]
    Shape {
        field: &'static str,
        message: String,
    },

    /// A label cannot be used for the objective (NaN, or not 0/1 for a
    /// binary objective).
    #[error("label of row {row} is {value}; {expected}")]
    BadLabel {
        row: usize,
        value: f64,
        expected: &'static str,
    },

    /// A feature value that the model family cannot take (NaN or infinite
    /// for linear models; infinite for trees, which take NaN as missing).
    #[error(
        "feature {column} ({name}) of row {row} is {value}; {hint}",
        name = name.as_str()
    )]
    BadFeature {
        row: usize,
        column: usize,
        name: String,
        value: f64,
        hint: &'static str,
    },

    /// The labels cannot train this objective (e.g. a single class for a
    /// binary objective).
    #[error("labels: {0}")]
    Labels(String),

    /// The linear system of a linear model has no unique solution.
    #[error(
        "{matrix} is not positive definite (collinear or constant features without regularisation); set l2 > 0 or drop the redundant features"
    )]
    Singular { matrix: &'static str },

    /// A solver produced a non-finite value (the data is separable and l2
    /// is 0, or the features are badly scaled).
    #[error("{what} diverged to a non-finite value at iteration {iteration}; {hint}")]
    Diverged {
        what: &'static str,
        iteration: usize,
        hint: &'static str,
    },

    /// `finish` was called before any iteration produced a model.
    #[error("no {what} trained yet: call step() at least once before finish()")]
    NotTrained { what: &'static str },

    /// `step` was called on a trainer that has finished.
    #[error("the trainer is done after {iterations} iterations; call finish()")]
    Finished { iterations: usize },

    /// A checkpoint does not belong to the data or parameters it is resumed
    /// with, or is inconsistent.
    #[error("checkpoint: {field}: {message}")]
    Checkpoint {
        field: &'static str,
        message: String,
    },

    /// (De)serialising a model or checkpoint failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl LearnError {
    /// The parameter or field names the error points at (the `field` of each
    /// problem of [`LearnError::InvalidParams`], or the one field of the
    /// others; `labels` and `features` for data errors).
    pub fn fields(&self) -> Vec<&'static str> {
        match self {
            LearnError::InvalidParams { problems } => problems.iter().map(|p| p.field).collect(),
            LearnError::Shape { field, .. } | LearnError::Checkpoint { field, .. } => vec![field],
            LearnError::BadLabel { .. } | LearnError::Labels(_) => vec!["labels"],
            LearnError::BadFeature { .. } => vec!["features"],
            LearnError::Singular { .. } | LearnError::Diverged { .. } => vec!["l2"],
            LearnError::Finished { .. } | LearnError::NotTrained { .. } | LearnError::Json(_) => {
                vec![]
            }
        }
    }
}

fn join(problems: &[ParamProblem]) -> String {
    problems
        .iter()
        .map(ParamProblem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, LearnError>;

/// Collects parameter problems so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Problems(Vec<ParamProblem>);

impl Problems {
    pub(crate) fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(ParamProblem {
            field,
            message: message.into(),
        });
    }

    /// `value` must be finite and `> 0`.
    pub(crate) fn positive(&mut self, field: &'static str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.push(field, format!("must be a finite number > 0, got {value}"));
        }
    }

    /// `value` must be finite and `>= 0`.
    pub(crate) fn non_negative(&mut self, field: &'static str, value: f64) {
        if !(value.is_finite() && value >= 0.0) {
            self.push(field, format!("must be a finite number >= 0, got {value}"));
        }
    }

    /// `value` must be in `(0, 1]`.
    pub(crate) fn fraction(&mut self, field: &'static str, value: f64) {
        if !(value > 0.0 && value <= 1.0) {
            self.push(field, format!("must be in (0, 1], got {value}"));
        }
    }

    pub(crate) fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(LearnError::InvalidParams { problems: self.0 })
        }
    }
}
