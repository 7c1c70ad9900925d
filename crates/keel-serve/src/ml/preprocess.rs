//! The `ai.onnx.ml` preprocessing operators scikit-learn pipelines export and
//! tract lacks: `Scaler`, `OneHotEncoder`, `Imputer`, `Binarizer`,
//! `ArrayFeatureExtractor`, and `ZipMap`.
//!
//! `ZipMap` turns class probabilities into a sequence of maps, a type the V2
//! protocol cannot carry: Keel serves the probability matrix under the
//! output's name instead (columns in class-label order), which is what
//! exporting with `zipmap=False` gives.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};
use tract_onnx::tract_core::ops::math::{mul, sub};
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::logic::wire_with_rank_broadcast;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Scaler", scaler);
    reg.insert("ZipMap", zipmap);
    reg.insert("OneHotEncoder", one_hot_encoder);
    reg.insert("Imputer", imputer);
    reg.insert("Binarizer", binarizer);
    reg.insert("ArrayFeatureExtractor", array_feature_extractor);
}

// -------------------------------------------------------------------- Scaler

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Scaler {
    offset: Arc<Tensor>,
    scale: Arc<Tensor>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    if offset.is_empty() || scale.is_empty() {
        bail!(
            "{}: Scaler needs at least one offset and one scale",
            node.name
        );
    }
    Ok((
        expand(Scaler {
            offset: rctensor1(&offset),
            scale: rctensor1(&scale),
        }),
        vec![],
    ))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        if model.outlet_fact(x)?.datum_type != f32::datum_type() {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_onnx::tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?[0];
        }
        let offset = model.add_const(format!("{prefix}.offset"), self.offset.clone())?;
        let scale = model.add_const(format!("{prefix}.scale"), self.scale.clone())?;
        let centred =
            wire_with_rank_broadcast(format!("{prefix}.sub"), model, sub(), &[x, offset])?[0];
        wire_with_rank_broadcast(format!("{prefix}.mul"), model, mul(), &[centred, scale])
    }
}

// -------------------------------------------------------------------- ZipMap

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ZipMap;

fn zipmap(
    _ctx: &ParsingContext,
    _node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(ZipMap), vec![]))
}

impl Expansion for ZipMap {
    fn name(&self) -> StaticName {
        "ZipMap".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        _prefix: &str,
        _model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        Ok(inputs.into())
    }
}

// ------------------------------------------------- element-wise custom ops

/// An element-wise operator with its own evaluation; `out` gives the output
/// type for an input type.
trait Elementwise:
    Clone + std::fmt::Debug + PartialEq + Eq + std::hash::Hash + Send + Sync + 'static
{
    const NAME: &'static str;
    fn out(&self, input: DatumType) -> DatumType;
    fn apply(&self, input: &Tensor) -> TractResult<Tensor>;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Custom<E>(E);

impl<E: Elementwise> Expansion for Custom<E> {
    fn name(&self) -> StaticName {
        E::NAME.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        s.given(&inputs[0].datum_type, move |s, dt| {
            s.equals(&outputs[0].datum_type, self.0.out(dt))
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl<E: Elementwise> Op for Custom<E> {
    fn name(&self) -> StaticName {
        format!("Keel.{}", E::NAME).into()
    }

    op_as_typed_op!();
}

impl<E: Elementwise> EvalOp for Custom<E> {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        Ok(tvec!(self.0.apply(&input)?.into_tvalue()))
    }
}

impl<E: Elementwise> TypedOp for Custom<E> {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(
            self.0
                .out(inputs[0].datum_type)
                .fact(inputs[0].shape.clone())
        ))
    }

    as_op!();
}

/// `Imputer`: replaces a value (NaN by default) column by column.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Imputer {
    /// f32 bit patterns, one per column or one for all.
    floats: Vec<u32>,
    ints: Vec<i64>,
    replaced_float: u32,
    replaced_int: i64,
}

impl Elementwise for Imputer {
    const NAME: &'static str = "Imputer";

    fn out(&self, input: DatumType) -> DatumType {
        input
    }

    fn apply(&self, input: &Tensor) -> TractResult<Tensor> {
        let mut out = input.clone();
        let cols = *input.shape().last().unwrap_or(&1);
        if !self.floats.is_empty() {
            let mut out32 = out.cast_to::<f32>()?.into_owned();
            let replaced = f32::from_bits(self.replaced_float);
            let mut view = out32.try_as_plain_ram_mut()?;
            let values = view.as_slice_mut::<f32>()?;
            for (i, v) in values.iter_mut().enumerate() {
                let hit = if replaced.is_nan() {
                    v.is_nan()
                } else {
                    *v == replaced
                };
                if hit {
                    let k = if self.floats.len() == 1 { 0 } else { i % cols };
                    *v = f32::from_bits(*self.floats.get(k).unwrap_or(&self.floats[0]));
                }
            }
            out = out32.cast_to_dt(input.datum_type())?.into_owned();
        } else {
            let mut out64 = out.cast_to::<i64>()?.into_owned();
            let mut view = out64.try_as_plain_ram_mut()?;
            for (i, v) in view.as_slice_mut::<i64>()?.iter_mut().enumerate() {
                if *v == self.replaced_int {
                    let k = if self.ints.len() == 1 { 0 } else { i % cols };
                    *v = *self.ints.get(k).unwrap_or(&self.ints[0]);
                }
            }
            out = out64.cast_to_dt(input.datum_type())?.into_owned();
        }
        Ok(out)
    }
}

fn imputer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let floats: Vec<f32> = node
        .get_attr_opt_vec("imputed_value_floats")?
        .unwrap_or_default();
    let ints: Vec<i64> = node
        .get_attr_opt_vec("imputed_value_int64s")?
        .unwrap_or_default();
    if floats.is_empty() == ints.is_empty() {
        bail!(
            "{}: exactly one of imputed_value_floats and imputed_value_int64s must be set",
            node.name
        );
    }
    let replaced_float: f32 = node
        .get_attr_opt("replaced_value_float")?
        .unwrap_or(f32::NAN);
    let replaced_int: i64 = node.get_attr_opt("replaced_value_int64")?.unwrap_or(0);
    let op = Imputer {
        floats: floats.into_iter().map(f32::to_bits).collect(),
        ints,
        replaced_float: replaced_float.to_bits(),
        replaced_int,
    };
    Ok((expand(Custom(op)), vec![]))
}

/// `Binarizer`: 1 where the value is above the threshold, else 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Binarizer {
    threshold: u32,
}

impl Elementwise for Binarizer {
    const NAME: &'static str = "Binarizer";

    fn out(&self, input: DatumType) -> DatumType {
        input
    }

    fn apply(&self, input: &Tensor) -> TractResult<Tensor> {
        let threshold = f32::from_bits(self.threshold) as f64;
        let x = input.cast_to::<f64>()?;
        let view = x.to_plain_array_view::<f64>()?;
        let out: Tensor = view.mapv(|v| if v > threshold { 1.0 } else { 0.0 }).into();
        Ok(out.cast_to_dt(input.datum_type())?.into_owned())
    }
}

fn binarizer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let threshold: f32 = node.get_attr_opt("threshold")?.unwrap_or(0.0);
    Ok((
        expand(Custom(Binarizer {
            threshold: threshold.to_bits(),
        })),
        vec![],
    ))
}

// ------------------------------------------------------------ OneHotEncoder

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Categories {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OneHotEncoder {
    categories: Categories,
    /// Unknown values encode as all zeros (`zeros=1`) rather than failing.
    zeros: bool,
}

impl OneHotEncoder {
    fn count(&self) -> usize {
        match &self.categories {
            Categories::Ints(c) => c.len(),
            Categories::Strings(c) => c.len(),
        }
    }

    fn positions(&self, input: &Tensor) -> TractResult<Vec<Option<usize>>> {
        Ok(match &self.categories {
            Categories::Strings(cats) => {
                let index: HashMap<&str, usize> = cats
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i))
                    .collect();
                if input.datum_type() != DatumType::String {
                    bail!(
                        "OneHotEncoder has string categories but the input is {:?}",
                        input.datum_type()
                    );
                }
                input
                    .try_as_plain_ram()?
                    .as_slice::<String>()?
                    .iter()
                    .map(|v| index.get(v.as_str()).copied())
                    .collect()
            }
            Categories::Ints(cats) => {
                let index: HashMap<i64, usize> =
                    cats.iter().enumerate().map(|(i, c)| (*c, i)).collect();
                if input.datum_type() == DatumType::String {
                    bail!("OneHotEncoder has integer categories but the input is strings");
                }
                let x = input.cast_to::<f64>()?;
                x.try_as_plain_ram()?
                    .as_slice::<f64>()?
                    .iter()
                    .map(|v| {
                        if v.fract() == 0.0 {
                            index.get(&(*v as i64)).copied()
                        } else {
                            None
                        }
                    })
                    .collect()
            }
        })
    }
}

fn one_hot_encoder(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ints: Vec<i64> = node.get_attr_opt_vec("cats_int64s")?.unwrap_or_default();
    let strings: Vec<String> = node.get_attr_opt_vec("cats_strings")?.unwrap_or_default();
    let categories = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Categories::Ints(ints),
        (true, false) => Categories::Strings(strings),
        _ => bail!(
            "{}: exactly one of cats_int64s and cats_strings must be set",
            node.name
        ),
    };
    let zeros: i64 = node.get_attr_opt("zeros")?.unwrap_or(1);
    Ok((
        expand(OneHotEncoder {
            categories,
            zeros: zeros != 0,
        }),
        vec![],
    ))
}

impl Expansion for OneHotEncoder {
    fn name(&self) -> StaticName {
        "OneHotEncoder".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.given(&inputs[0].shape, move |s, shape| {
            let mut shape = shape.to_vec();
            shape.push(self.count().to_dim());
            s.equals(&outputs[0].shape, ShapeFactoid::from(shape))
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for OneHotEncoder {
    fn name(&self) -> StaticName {
        "Keel.OneHotEncoder".into()
    }

    op_as_typed_op!();
}

impl EvalOp for OneHotEncoder {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let k = self.count();
        let positions = self.positions(&input)?;
        let mut data = vec![0f32; positions.len() * k];
        for (i, p) in positions.iter().enumerate() {
            match p {
                Some(j) => data[i * k + j] = 1.0,
                None if self.zeros => {}
                None => bail!("OneHotEncoder: value {i} is not a known category"),
            }
        }
        let mut shape = input.shape().to_vec();
        shape.push(k);
        let out: Tensor = ArrayD::from_shape_vec(IxDyn(&shape), data)?.into();
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for OneHotEncoder {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        shape.push(self.count().to_dim());
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

// ---------------------------------------------------- ArrayFeatureExtractor

/// `ArrayFeatureExtractor(data, indices)`: `data[..., indices]`, a 1-D `data`
/// giving one row (as onnxruntime does).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ArrayFeatureExtractor;

fn array_feature_extractor(
    _ctx: &ParsingContext,
    _node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(ArrayFeatureExtractor), vec![]))
}

impl Expansion for ArrayFeatureExtractor {
    fn name(&self) -> StaticName {
        "ArrayFeatureExtractor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.given_2(
            &inputs[0].shape,
            &inputs[1].shape,
            move |s, data, indices| {
                let count: TDim = indices.iter().product();
                let mut shape: Vec<TDim> = if data.len() <= 1 {
                    vec![1.to_dim()]
                } else {
                    data[..data.len() - 1].to_vec()
                };
                shape.push(count);
                s.equals(&outputs[0].shape, ShapeFactoid::from(shape))
            },
        )?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for ArrayFeatureExtractor {
    fn name(&self) -> StaticName {
        "Keel.ArrayFeatureExtractor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ArrayFeatureExtractor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (data, indices) = args_2!(inputs);
        let indices = indices.cast_to::<i64>()?;
        let indices = indices.try_as_plain_ram()?.as_slice::<i64>()?.to_vec();
        let last = *data.shape().last().unwrap_or(&1);
        let picks: Vec<usize> = indices
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < last)
                    .ok_or_else(|| {
                        format_err!("ArrayFeatureExtractor: index {i} is outside 0..{last}")
                    })
            })
            .collect::<TractResult<_>>()?;
        let mut shape: Vec<usize> = if data.rank() <= 1 {
            vec![1]
        } else {
            data.shape()[..data.rank() - 1].to_vec()
        };
        shape.push(picks.len());
        let rows = data.len() / last.max(1);
        fn gather<T: Datum>(
            data: &Tensor,
            picks: &[usize],
            rows: usize,
            last: usize,
            shape: &[usize],
        ) -> TractResult<Tensor> {
            let src = data.try_as_plain_ram()?.as_slice::<T>()?;
            let mut out = Vec::with_capacity(rows * picks.len());
            for r in 0..rows {
                for &p in picks {
                    out.push(src[r * last + p].clone());
                }
            }
            Ok(ArrayD::from_shape_vec(IxDyn(shape), out)?.into())
        }
        let out = dispatch_datum!(gather(data.datum_type())(&data, &picks, rows, last, &shape))?;
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ArrayFeatureExtractor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let data = &inputs[0].shape;
        let count: TDim = inputs[1].shape.iter().product();
        let mut shape: TVec<TDim> = if data.rank() <= 1 {
            tvec![1.to_dim()]
        } else {
            data.iter().take(data.rank() - 1).cloned().collect()
        };
        shape.push(count);
        Ok(tvec!(inputs[0].datum_type.fact(shape)))
    }

    as_op!();
}
