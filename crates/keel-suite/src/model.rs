//! The model under test: an ONNX file compiled by keel-serve, fed the test
//! set's feature columns as its one matrix input, in batches.

use std::path::Path;

use keel_serve::plan::{CompileOptions, Plan};
use keel_serve::tensor::{Data, Datatype, NamedTensor};

use crate::SuiteError;
use crate::data::{Table, Values};

/// Rows per model call.
const BATCH: usize = 65_536;

/// What a model answered for every row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    /// A classifier's labels.
    pub labels: Option<Vec<i64>>,
    /// A classifier's class probabilities, row-major, `classes` per row
    /// (classes 0..classes, scikit-learn's sorted order for 0/1 labels).
    pub probabilities: Option<Vec<f64>>,
    pub classes: usize,
    /// A regressor's outputs.
    pub values: Option<Vec<f64>>,
    /// Text outputs (one string per row), for PII scans of what a model says.
    pub texts: Option<Vec<String>>,
}

impl Predictions {
    /// The positive class's probability of a binary classifier.
    pub fn positive_scores(&self) -> Option<Vec<f64>> {
        let p = self.probabilities.as_ref()?;
        (self.classes == 2).then(|| p.chunks(2).map(|r| r[1]).collect())
    }
}

pub struct Model {
    plan: Plan,
    /// The columns fed to the input, in order.
    pub features: Vec<String>,
}

impl Model {
    /// Compiles the ONNX file; `features` default to every numeric column
    /// of `table` except those in `skip` (label, exclusions).
    pub fn load(
        path: &Path,
        features: Option<&[String]>,
        table: &Table,
        skip: &[&str],
    ) -> Result<Model, SuiteError> {
        let bad = |m: String| SuiteError::Model(format!("{}: {m}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let plan =
            Plan::compile(&bytes, &CompileOptions::default()).map_err(|e| bad(e.to_string()))?;
        let inputs = &plan.signature.inputs;
        let [input] = inputs.as_slice() else {
            return Err(bad(format!(
                "the suite runner feeds one matrix input; this model has {}",
                inputs.len()
            )));
        };
        if !matches!(input.datatype, Datatype::Fp32 | Datatype::Fp64) || input.shape.len() != 2 {
            return Err(bad(format!(
                "input {} is {} {:?}; expected a float matrix [N, features]",
                input.name, input.datatype, input.shape
            )));
        }
        let features: Vec<String> = match features {
            Some(f) => f.to_vec(),
            None => table
                .columns
                .iter()
                .filter(|c| {
                    matches!(c.values, Values::Number(_)) && !skip.contains(&c.name.as_str())
                })
                .map(|c| c.name.clone())
                .collect(),
        };
        if input.shape[1] >= 0 && input.shape[1] as usize != features.len() {
            return Err(bad(format!(
                "the model takes {} features, but {} columns were chosen ({}); name them with model.features",
                input.shape[1],
                features.len(),
                features.join(", ")
            )));
        }
        Ok(Model { plan, features })
    }

    /// The feature matrix of `table`'s rows (all of them when `rows` is None).
    pub fn matrix(&self, table: &Table, rows: Option<&[usize]>) -> Result<Vec<f64>, SuiteError> {
        let cols: Vec<&Vec<f64>> = self
            .features
            .iter()
            .map(|name| match &table.column(name)?.values {
                Values::Number(v) => Ok(v),
                Values::Text(_) => Err(SuiteError::Data {
                    dataset: table.name.clone(),
                    message: format!("feature {name:?} is text; the model takes numbers"),
                }),
            })
            .collect::<Result<_, _>>()?;
        let n = rows.map_or(table.rows, <[usize]>::len);
        let mut out = Vec::with_capacity(n * cols.len());
        for i in 0..n {
            let r = rows.map_or(i, |rows| rows[i]);
            out.extend(cols.iter().map(|c| c[r]));
        }
        Ok(out)
    }

    /// Answers raw input tensors as a served model does: checked against
    /// the signature first (keel-serve's enforcement: names, datatypes,
    /// shapes, NaN and infinity unless the model accepts them), then run.
    /// Returns the rows answered.
    pub fn serve(&self, tensors: Vec<NamedTensor>) -> Result<usize, SuiteError> {
        let (ordered, rows) = keel_serve::signature::check_inputs(&self.plan.signature, tensors)
            .map_err(|e| SuiteError::Model(e.to_string()))?;
        self.plan
            .run(&ordered)
            .map_err(|e| SuiteError::Model(e.to_string()))?;
        Ok(rows)
    }

    /// The model's one input: its name and datatype.
    pub fn input(&self) -> (&str, Datatype) {
        let input = &self.plan.signature.inputs[0];
        (&input.name, input.datatype)
    }

    /// Whether the model declares that it takes NaN and infinities (it
    /// routes or imputes missing values).
    pub fn accepts_non_finite(&self) -> bool {
        self.plan.signature.allow_non_finite
    }

    /// Runs the model on a row-major matrix of `self.features` columns.
    pub fn predict(&self, matrix: &[f64]) -> Result<Predictions, SuiteError> {
        let width = self.features.len().max(1);
        let input = &self.plan.signature.inputs[0];
        let mut out = Predictions::default();
        for chunk in matrix.chunks(BATCH * width) {
            let rows = chunk.len() / width;
            let data = match input.datatype {
                Datatype::Fp64 => Data::Fp64(chunk.to_vec()),
                _ => Data::Fp32(chunk.iter().map(|x| *x as f32).collect()),
            };
            let tensor = NamedTensor::new(input.name.clone(), vec![rows, width], data);
            let outputs = self
                .plan
                .run(&[tensor])
                .map_err(|e| SuiteError::Model(e.to_string()))?;
            for t in outputs {
                let per_row = t.data.len().checked_div(rows).unwrap_or(0);
                match (&t.data, per_row) {
                    (Data::Int64(v), 1) => out.labels.get_or_insert_with(Vec::new).extend(v),
                    (Data::Int32(v), 1) => out
                        .labels
                        .get_or_insert_with(Vec::new)
                        .extend(v.iter().map(|x| i64::from(*x))),
                    (Data::Fp32(v), k) if k >= 2 => {
                        out.classes = k;
                        out.probabilities
                            .get_or_insert_with(Vec::new)
                            .extend(v.iter().map(|x| within_unit(f64::from(*x), 1e-6)));
                    }
                    (Data::Fp64(v), k) if k >= 2 => {
                        out.classes = k;
                        out.probabilities
                            .get_or_insert_with(Vec::new)
                            .extend(v.iter().map(|x| within_unit(*x, 1e-12)));
                    }
                    (Data::Fp32(v), 1) => out
                        .values
                        .get_or_insert_with(Vec::new)
                        .extend(v.iter().map(|x| f64::from(*x))),
                    (Data::Fp64(v), 1) => out.values.get_or_insert_with(Vec::new).extend(v),
                    (Data::Bytes(v), 1) => out
                        .texts
                        .get_or_insert_with(Vec::new)
                        .extend(v.iter().map(|b| String::from_utf8_lossy(b).into_owned())),
                    _ => {}
                }
            }
        }
        Ok(out)
    }
}

/// A probability rounded into [0, 1] when it is outside by no more than
/// rounding (`slack`): a float32 tree ensemble's average of 25 trees can
/// come out as 1.0000001. Values further out are left for the metrics to
/// refuse.
fn within_unit(p: f64, slack: f64) -> f64 {
    if (-slack..0.0).contains(&p) {
        0.0
    } else if p > 1.0 && p <= 1.0 + slack {
        1.0
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::within_unit;

    #[test]
    fn rounding_overshoot_is_clamped_and_real_errors_are_kept() {
        assert_eq!(within_unit(1.000_000_119_209_289_6, 1e-6), 1.0);
        assert_eq!(within_unit(-1e-8, 1e-6), 0.0);
        assert_eq!(within_unit(0.25, 1e-6), 0.25);
        assert_eq!(within_unit(1.01, 1e-6), 1.01);
        assert!(within_unit(f64::NAN, 1e-6).is_nan());
    }
}
