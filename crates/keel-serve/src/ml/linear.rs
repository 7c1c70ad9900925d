//! `LinearClassifier` with string class labels. tract's operator handles
//! integer labels (and is kept for them: its matmul is optimized) but fails
//! to type string labels, which scikit-learn exports whenever a model was
//! fit on string targets.

use std::sync::OnceLock;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::tract_ndarray::{Array1, Array2};
use tract_onnx::tract_hir::internal::*;

use super::tree::{PostTransform, argmax, classifier_rules, input_matrix, parse_post_transform};

type Builder = fn(&ParsingContext, &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// tract's own builder, for integer labels.
static TRACT_BUILDER: OnceLock<Builder> = OnceLock::new();

pub fn register(reg: &mut OnnxOpRegister) {
    if let Some(builder) = reg.0.get("LinearClassifier") {
        let _ = TRACT_BUILDER.set(*builder);
    }
    reg.insert("LinearClassifier", linear_classifier);
}

fn linear_classifier(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        let tract = TRACT_BUILDER
            .get()
            .ok_or_else(|| format_err!("LinearClassifier is not available"))?;
        return tract(ctx, node);
    };
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let intercepts: Vec<f32> = node.get_attr_opt_vec("intercepts")?.unwrap_or_default();
    let rows = if intercepts.is_empty() {
        labels.len()
    } else {
        intercepts.len()
    };
    if rows == 0 || coefficients.is_empty() || !coefficients.len().is_multiple_of(rows) {
        bail!(
            "{}: {} coefficients do not split into {rows} rows",
            node.name,
            coefficients.len()
        );
    }
    if rows == 1 && labels.len() != 2 {
        bail!(
            "{}: one row of coefficients needs exactly two class labels",
            node.name
        );
    }
    if rows > 1 && rows != labels.len() {
        bail!(
            "{}: {rows} rows of coefficients for {} class labels",
            node.name,
            labels.len()
        );
    }
    let op = StringLinearClassifier {
        features: coefficients.len() / rows,
        coefficients: coefficients.iter().map(|c| c.to_bits()).collect(),
        intercepts: intercepts.iter().map(|c| c.to_bits()).collect(),
        labels,
        post_transform: parse_post_transform(node)?,
    };
    Ok((expand(op), vec![]))
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StringLinearClassifier {
    features: usize,
    /// f32 bit patterns, one row per class (or one row for a binary model).
    coefficients: Vec<u32>,
    intercepts: Vec<u32>,
    labels: Vec<String>,
    post_transform: PostTransform,
}

impl StringLinearClassifier {
    fn rows(&self) -> usize {
        self.coefficients.len() / self.features
    }
}

impl Expansion for StringLinearClassifier {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        classifier_rules(s, inputs, outputs, DatumType::String, self.labels.len())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }
}

impl Op for StringLinearClassifier {
    fn name(&self) -> StaticName {
        "Keel.LinearClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for StringLinearClassifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let x = input_matrix(&input, self.features, "LinearClassifier")?;
        let (n, cols) = x.dim();
        if cols != self.features {
            bail!(
                "LinearClassifier has {} coefficients per class but the input has {cols} columns",
                self.features
            );
        }
        let rows = self.rows();
        let classes = self.labels.len();
        let mut scores = Array2::<f32>::zeros((n, classes));
        for (r, row) in x.outer_iter().enumerate() {
            for k in 0..rows {
                let w = &self.coefficients[k * cols..(k + 1) * cols];
                let mut s: f32 = row
                    .iter()
                    .zip(w)
                    .map(|(a, b)| *a as f32 * f32::from_bits(*b))
                    .sum();
                s += self
                    .intercepts
                    .get(k)
                    .map(|b| f32::from_bits(*b))
                    .unwrap_or(0.0);
                if rows == 1 {
                    scores[[r, 0]] = -s;
                    scores[[r, 1]] = s;
                } else {
                    scores[[r, k]] = s;
                }
            }
            if let Some(out) = scores.row_mut(r).into_slice() {
                self.post_transform.apply(out);
            }
        }
        let labels: Vec<String> = scores
            .outer_iter()
            .map(|row| self.labels[argmax(row.iter().copied())].clone())
            .collect();
        let labels: Tensor = Array1::from(labels).into();
        let scores: Tensor = scores.into();
        Ok(tvec!(labels.into_tvalue(), scores.into_tvalue()))
    }
}

impl TypedOp for StringLinearClassifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(
            String::fact([n.clone()]),
            f32::fact([n, self.labels.len().to_dim()])
        ))
    }

    as_op!();
}
