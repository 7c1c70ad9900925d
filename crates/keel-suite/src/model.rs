//! The model under test: an ONNX file compiled by keel-serve and fed the
//! test set's feature columns, in batches.
//!
//! A model's inputs each take a run of consecutive features: one float
//! matrix `[N, features]`, or one input per column as skl2onnx exports a
//! pipeline over a data frame (`age` float `[N, 1]`, `region` string
//! `[N, 1]`, `plan` int64 `[N, 1]`), or any mix of widths named in order by
//! `model.features`. The suite's checks see every feature as one column of
//! an f64 [`Matrix`](keel_quality::checks::Matrix): numbers as they are, and
//! a feature fed as text as the code of its string in that feature's
//! dictionary (NaN for missing), so category swaps, missing values and
//! typos perturb text columns like any other and the model reads the
//! strings back when it runs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use keel_quality::checks::Matrix;
use keel_serve::plan::{CompileOptions, Plan, TensorSpec};
use keel_serve::tensor::{Data, Datatype, NamedTensor};
use keel_stats::rng::Rng;

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

/// How the model reads a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// Fed as float32 or float64.
    Float,
    /// Fed as int32 or int64: values are rounded, and cannot be missing.
    Integer,
    /// Fed as strings: the matrix holds dictionary codes.
    Text,
}

/// One model input and the features it takes.
#[derive(Debug, Clone)]
struct Feed {
    name: String,
    datatype: Datatype,
    /// Its first feature and how many it takes.
    start: usize,
    width: usize,
    /// `[N, width]`; otherwise `[N]` (width 1).
    matrix: bool,
}

/// The strings a text feature has taken; a string's code is its index.
#[derive(Debug, Default)]
struct Dictionary {
    strings: Vec<String>,
    codes: HashMap<String, u32>,
}

impl Dictionary {
    fn code(&mut self, s: &str) -> f64 {
        if let Some(c) = self.codes.get(s) {
            return f64::from(*c);
        }
        let c = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.codes.insert(s.to_string(), c);
        f64::from(c)
    }

    fn string(&self, code: f64) -> Option<&str> {
        if code.is_nan() || code < 0.0 {
            return None;
        }
        self.strings.get(code as usize).map(String::as_str)
    }
}

pub struct Model {
    plan: Plan,
    /// The columns fed to the inputs, in order.
    pub features: Vec<String>,
    feeds: Vec<Feed>,
    /// Per feature: how the model reads it, and its dictionary when text.
    kinds: Vec<FeatureKind>,
    dictionaries: Vec<Option<RwLock<Dictionary>>>,
}

fn kind_of(datatype: Datatype) -> Option<FeatureKind> {
    match datatype {
        Datatype::Fp32 | Datatype::Fp64 => Some(FeatureKind::Float),
        Datatype::Int32 | Datatype::Int64 => Some(FeatureKind::Integer),
        Datatype::Bytes => Some(FeatureKind::Text),
        _ => None,
    }
}

/// An input's width: its second dimension (`None` when free), or 1 for a
/// vector input.
fn width_of(spec: &TensorSpec) -> Option<usize> {
    match spec.shape.as_slice() {
        [_] => Some(1),
        [_, w] if *w >= 0 => Some(*w as usize),
        _ => None,
    }
}

fn poisoned() -> SuiteError {
    SuiteError::Model("a text dictionary was left half-written by a failed check".into())
}

impl Model {
    /// Compiles the ONNX file and lays its inputs over feature columns.
    /// `features` name them in input order; by default they are the
    /// inputs' own names when every input takes one column named like it,
    /// else (one matrix input) every numeric column of `table` except those
    /// in `skip` (label, exclusions).
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
        if inputs.is_empty() {
            return Err(bad("the model takes no inputs".into()));
        }
        for input in inputs {
            if kind_of(input.datatype).is_none() || !matches!(input.shape.len(), 1 | 2) {
                return Err(bad(format!(
                    "input {} is {} {:?}; the suite runner feeds float, integer and string inputs shaped [N] or [N, columns]",
                    input.name, input.datatype, input.shape
                )));
            }
        }
        let one_column_each = inputs.iter().all(|i| width_of(i) == Some(1))
            && inputs.iter().all(|i| table.column(&i.name).is_ok());
        let features: Vec<String> = match features {
            Some(f) => f.to_vec(),
            None if one_column_each => inputs.iter().map(|i| i.name.clone()).collect(),
            None if inputs.len() == 1 => table
                .columns
                .iter()
                .filter(|c| {
                    matches!(c.values, Values::Number(_)) && !skip.contains(&c.name.as_str())
                })
                .map(|c| c.name.clone())
                .collect(),
            None => {
                let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(bad(format!(
                    "the model has inputs {}; name the columns they take, in order, with model.features",
                    names.join(", ")
                )));
            }
        };
        let mut feeds = Vec::with_capacity(inputs.len());
        let mut start = 0;
        for input in inputs {
            let width = match width_of(input) {
                Some(w) => w,
                None if inputs.len() == 1 => features.len(),
                None => {
                    return Err(bad(format!(
                        "input {} has a free second dimension; with several inputs each must say how many columns it takes",
                        input.name
                    )));
                }
            };
            feeds.push(Feed {
                name: input.name.clone(),
                datatype: input.datatype,
                start,
                width,
                matrix: input.shape.len() == 2,
            });
            start += width;
        }
        if start != features.len() {
            let takes: Vec<String> = feeds
                .iter()
                .map(|f| format!("{} {}", f.name, f.width))
                .collect();
            return Err(bad(format!(
                "the model takes {start} features ({}), but {} columns were chosen ({}); name them with model.features",
                takes.join(", "),
                features.len(),
                features.join(", ")
            )));
        }
        let mut kinds = vec![FeatureKind::Float; features.len()];
        for f in &feeds {
            let kind = kind_of(f.datatype).unwrap_or(FeatureKind::Float);
            kinds[f.start..f.start + f.width].fill(kind);
        }
        let dictionaries = kinds
            .iter()
            .map(|k| (*k == FeatureKind::Text).then(RwLock::default))
            .collect();
        Ok(Model {
            plan,
            features,
            feeds,
            kinds,
            dictionaries,
        })
    }

    /// How the model reads feature `column`.
    pub fn kind(&self, column: usize) -> FeatureKind {
        self.kinds[column]
    }

    /// The feature matrix of `table`'s rows (all of them when `rows` is
    /// None), text features as dictionary codes.
    pub fn matrix(&self, table: &Table, rows: Option<&[usize]>) -> Result<Vec<f64>, SuiteError> {
        let n = rows.map_or(table.rows, <[usize]>::len);
        let row = |i: usize| rows.map_or(i, |rows| rows[i]);
        let width = self.features.len();
        let mut out = vec![0.0; n * width];
        for (c, name) in self.features.iter().enumerate() {
            let values = &table.column(name)?.values;
            match (self.kinds[c], values) {
                (FeatureKind::Text, Values::Text(v)) => {
                    let mut d = self.dictionary(c)?.write().map_err(|_| poisoned())?;
                    for i in 0..n {
                        out[i * width + c] = v[row(i)].as_deref().map_or(f64::NAN, |s| d.code(s));
                    }
                }
                (FeatureKind::Text, Values::Number(v)) => {
                    // A number column read as text, e.g. a postcode: the
                    // number as Rust prints it (`10001`, `2.5`).
                    let mut d = self.dictionary(c)?.write().map_err(|_| poisoned())?;
                    for i in 0..n {
                        let x = v[row(i)];
                        out[i * width + c] = if x.is_nan() {
                            f64::NAN
                        } else {
                            d.code(&x.to_string())
                        };
                    }
                }
                (_, Values::Number(v)) => {
                    for i in 0..n {
                        out[i * width + c] = v[row(i)];
                    }
                }
                (_, Values::Text(_)) => {
                    return Err(SuiteError::Data {
                        dataset: table.name.clone(),
                        message: format!("feature {name:?} is text; the model takes it as numbers"),
                    });
                }
            }
        }
        Ok(out)
    }

    fn dictionary(&self, column: usize) -> Result<&RwLock<Dictionary>, SuiteError> {
        self.dictionaries[column].as_ref().ok_or_else(|| {
            SuiteError::Model(format!("feature {} is not text", self.features[column]))
        })
    }

    /// The string a text feature's code stands for (`None` for missing or
    /// a feature that is not text).
    pub fn text(&self, column: usize, code: f64) -> Option<String> {
        let d = self.dictionaries.get(column)?.as_ref()?.read().ok()?;
        d.string(code).map(str::to_string)
    }

    /// A copy of `m` where each present value of the text `columns` gets,
    /// with probability `rate`, one typo (keel-quality's [`typo`]).
    ///
    /// [`typo`]: keel_quality::checks::robustness::typo
    pub fn typos(
        &self,
        m: &Matrix,
        columns: &[usize],
        rate: f64,
        rng: &mut Rng,
    ) -> Result<Matrix, SuiteError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(SuiteError::Model(format!(
                "rate is {rate}; it must be between 0 and 1"
            )));
        }
        let mut out = m.clone();
        for &c in columns {
            let mut d = self.dictionary(c)?.write().map_err(|_| poisoned())?;
            for r in 0..m.rows {
                let code = m.get(r, c);
                let Some(s) = d.string(code) else { continue };
                if rng.next_f64() >= rate {
                    continue;
                }
                let changed = keel_quality::checks::robustness::typo(s, rng);
                out.values[r * m.cols + c] = d.code(&changed);
            }
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

    /// The model's inputs as its signature declares them.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.plan.signature.inputs
    }

    /// Whether the model declares that it takes NaN and infinities (it
    /// routes or imputes missing values).
    pub fn accepts_non_finite(&self) -> bool {
        self.plan.signature.allow_non_finite
    }

    /// The input tensors for `rows` rows of a row-major matrix of
    /// `self.features` columns, in the signature's order.
    pub fn tensors(&self, chunk: &[f64], rows: usize) -> Result<Vec<NamedTensor>, SuiteError> {
        let width = self.features.len();
        let mut tensors = Vec::with_capacity(self.feeds.len());
        for f in &self.feeds {
            // The input's values, row-major: the whole chunk when it is
            // the one matrix input.
            let values: Cow<[f64]> = if f.width == width {
                Cow::Borrowed(chunk)
            } else {
                Cow::Owned(
                    (0..rows)
                        .flat_map(|r| &chunk[r * width + f.start..][..f.width])
                        .copied()
                        .collect(),
                )
            };
            let feature = |i: usize| &self.features[f.start + i % f.width];
            let integers = || -> Result<Vec<f64>, SuiteError> {
                values
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        if x.is_finite() {
                            Ok(x.round())
                        } else {
                            Err(SuiteError::Model(format!(
                                "feature {} is {x} in a row, and input {} takes integers, which cannot be missing",
                                feature(i),
                                f.name
                            )))
                        }
                    })
                    .collect()
            };
            let data = match f.datatype {
                Datatype::Fp64 => Data::Fp64(values.into_owned()),
                Datatype::Int64 => Data::Int64(integers()?.into_iter().map(|x| x as i64).collect()),
                Datatype::Int32 => Data::Int32(integers()?.into_iter().map(|x| x as i32).collect()),
                Datatype::Bytes => {
                    // Missing text is fed as the empty string, which a
                    // one-hot encoder that ignores unknown values reads as
                    // no category.
                    let dictionaries = (f.start..f.start + f.width)
                        .map(|c| self.dictionary(c)?.read().map_err(|_| poisoned()))
                        .collect::<Result<Vec<_>, _>>()?;
                    Data::Bytes(
                        values
                            .iter()
                            .enumerate()
                            .map(|(i, code)| {
                                dictionaries[i % f.width]
                                    .string(*code)
                                    .map_or_else(Vec::new, |s| s.as_bytes().to_vec())
                            })
                            .collect(),
                    )
                }
                _ => Data::Fp32(values.iter().map(|x| *x as f32).collect()),
            };
            let shape = if f.matrix {
                vec![rows, f.width]
            } else {
                vec![rows]
            };
            tensors.push(NamedTensor::new(f.name.clone(), shape, data));
        }
        Ok(tensors)
    }

    /// Runs the model on a row-major matrix of `self.features` columns.
    pub fn predict(&self, matrix: &[f64]) -> Result<Predictions, SuiteError> {
        let width = self.features.len().max(1);
        let mut out = Predictions::default();
        for chunk in matrix.chunks(BATCH * width) {
            let rows = chunk.len() / width;
            let tensors = self.tensors(chunk, rows)?;
            let outputs = self
                .plan
                .run(&tensors)
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
    use super::{Dictionary, within_unit};

    #[test]
    fn a_dictionary_codes_each_string_once_and_reads_it_back() {
        let mut d = Dictionary::default();
        assert_eq!(d.code("EU"), 0.0);
        assert_eq!(d.code("US"), 1.0);
        assert_eq!(d.code("EU"), 0.0);
        assert_eq!(d.code(""), 2.0);
        assert_eq!(d.string(1.0), Some("US"));
        assert_eq!(d.string(2.0), Some(""));
        for missing in [f64::NAN, -1.0, 3.0] {
            assert_eq!(d.string(missing), None, "{missing}");
        }
    }

    #[test]
    fn rounding_overshoot_is_clamped_and_real_errors_are_kept() {
        assert_eq!(within_unit(1.000_000_119_209_289_6, 1e-6), 1.0);
        assert_eq!(within_unit(-1e-8, 1e-6), 0.0);
        assert_eq!(within_unit(0.25, 1e-6), 0.25);
        assert_eq!(within_unit(1.01, 1e-6), 1.01);
        assert!(within_unit(f64::NAN, 1e-6).is_nan());
    }
}
