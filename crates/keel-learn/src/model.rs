//! A trained model of any family: predictions, JSON, ONNX.

use serde::{Deserialize, Serialize};

use crate::error::{LearnError, Result};
use crate::gbdt::{GbdtModel, Objective};
use crate::linear::LinearModel;
use crate::metrics::sigmoid;

/// A trained model. In JSON the family is a tag:
/// `{"kind": "gbdt", "objective": "binary", "feature_names": [...], ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// Binary logistic regression: predicts the probability of class 1.
    Logistic(LinearModel),
    /// Linear (ridge) regression: predicts values.
    Linear(LinearModel),
    /// Gradient-boosted trees: probabilities of class 1 (binary) or values
    /// (regression).
    Gbdt(GbdtModel),
}

impl Model {
    pub fn feature_names(&self) -> &[String] {
        match self {
            Model::Logistic(m) | Model::Linear(m) => &m.feature_names,
            Model::Gbdt(m) => &m.feature_names,
        }
    }

    pub fn n_features(&self) -> usize {
        self.feature_names().len()
    }

    /// Whether the model predicts probabilities of class 1 (and exports as a
    /// classifier).
    pub fn is_classifier(&self) -> bool {
        match self {
            Model::Logistic(_) => true,
            Model::Linear(_) => false,
            Model::Gbdt(m) => m.objective == Objective::Binary,
        }
    }

    /// Which trainer made it: `logistic`, `linear`, `gbdt_binary` or
    /// `gbdt_regression` (recorded in the ONNX metadata as `keel.trainer`).
    pub fn trainer_name(&self) -> &'static str {
        match self {
            Model::Logistic(_) => "logistic",
            Model::Linear(_) => "linear",
            Model::Gbdt(m) => match m.objective {
                Objective::Binary => "gbdt_binary",
                Objective::Regression => "gbdt_regression",
            },
        }
    }

    /// Raw scores (log-odds for classifiers, values for regressors) of
    /// row-major `features` with [`Model::n_features`] columns.
    ///
    /// Trees take NaN as missing; linear models refuse it (row, column).
    pub fn raw_scores(&self, features: &[f64]) -> Result<Vec<f64>> {
        let cols = self.n_features();
        if cols == 0 || !features.len().is_multiple_of(cols) {
            return Err(LearnError::Shape {
                field: "features",
                message: format!(
                    "has {} values, not a whole number of rows of {cols} features",
                    features.len()
                ),
            });
        }
        let rows = features.chunks_exact(cols);
        match self {
            Model::Logistic(m) | Model::Linear(m) => rows
                .enumerate()
                .map(|(r, row)| {
                    if let Some(c) = row.iter().position(|v| v.is_nan()) {
                        return Err(LearnError::BadFeature {
                            row: r,
                            column: c,
                            name: m.feature_names[c].clone(),
                            value: f64::NAN,
                            hint: "linear models need every feature present",
                        });
                    }
                    Ok(m.score(row))
                })
                .collect(),
            Model::Gbdt(m) => Ok(rows.map(|row| m.raw_score(row)).collect()),
        }
    }

    /// Predictions of row-major `features`: probabilities of class 1 for
    /// classifiers, values for regressors.
    pub fn predict(&self, features: &[f64]) -> Result<Vec<f64>> {
        let mut out = self.raw_scores(features)?;
        if self.is_classifier() {
            for v in &mut out {
                *v = sigmoid(*v);
            }
        }
        Ok(out)
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// Reads a model and checks it is well formed (coefficients match the
    /// features, trees are trees over them, numbers are finite).
    pub fn from_json(json: &str) -> Result<Model> {
        let model: Model = serde_json::from_str(json)?;
        model.check()?;
        Ok(model)
    }

    fn check(&self) -> Result<()> {
        match self {
            Model::Logistic(m) | Model::Linear(m) => {
                if m.coefficients.len() != m.feature_names.len() {
                    return Err(LearnError::Shape {
                        field: "coefficients",
                        message: format!(
                            "{} coefficients for {} features",
                            m.coefficients.len(),
                            m.feature_names.len()
                        ),
                    });
                }
                if !m.intercept.is_finite() || m.coefficients.iter().any(|c| !c.is_finite()) {
                    return Err(LearnError::Shape {
                        field: "coefficients",
                        message: "must be finite".into(),
                    });
                }
                Ok(())
            }
            Model::Gbdt(m) => m.check(),
        }
    }

    /// The model as ONNX (see [`crate::onnx`] for the graph's shape), its
    /// one input named `input_name` (a non-empty name, e.g. `"input"`).
    pub fn to_onnx(&self, input_name: &str) -> Vec<u8> {
        crate::onnx::export(self, input_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_checks_shapes_and_missing() {
        let m = Model::Logistic(LinearModel {
            feature_names: vec!["a".into(), "b".into()],
            coefficients: vec![1.0, -1.0],
            intercept: 0.5,
        });
        let p = m.predict(&[1.0, 1.0, 0.0, 0.5]).unwrap();
        assert!((p[0] - sigmoid(0.5)).abs() < 1e-15 && (p[1] - 0.5).abs() < 1e-15);
        assert_eq!(m.predict(&[1.0]).unwrap_err().fields(), ["features"]);
        let e = m.predict(&[1.0, f64::NAN]).unwrap_err();
        assert!(e.to_string().contains("(b)"), "{e}");
        let json = m.to_json().unwrap();
        assert!(json.starts_with(r#"{"kind":"logistic""#), "{json}");
        assert_eq!(Model::from_json(&json).unwrap(), m);
        let bad = json.replace("[1.0,-1.0]", "[1.0]");
        assert_eq!(
            Model::from_json(&bad).unwrap_err().fields(),
            ["coefficients"]
        );
    }
}
