//! The compile step: an ONNX file becomes a typed, decluttered and optimized
//! tract plan with a signature and a compile report.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::ServeError;
use crate::tensor::{Data, Datatype, NamedTensor};

/// One input or output of a model: its V2 datatype and shape (`-1` where the
/// dimension is free).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
}

impl Serialize for Datatype {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a model takes and gives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Every input's first dimension is free, so requests can be batched
    /// along it.
    pub batched: bool,
    /// Floating-point inputs may hold NaN or infinities (the model imputes
    /// or routes missing values); otherwise such a request is refused.
    pub allow_non_finite: bool,
}

/// What compiling did and what it bought, measured on a sample batch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompileReport {
    pub compile_ms: f64,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub sample_batch: usize,
    /// Median latency of the typed but unoptimized model on the sample batch.
    pub latency_before_us: f64,
    /// Median latency of the compiled plan on the same batch.
    pub latency_after_us: f64,
    /// Operators Keel evaluates natively rather than through tract's.
    pub native_ops: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Batch size of the sample used to time the plan before and after.
    pub sample_batch: usize,
    /// Runs timed for each median.
    pub timing_runs: usize,
    /// Overrides the default NaN policy (allowed only when the graph has an
    /// `Imputer` or a tree ensemble, which route missing values).
    pub allow_non_finite: Option<bool>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            sample_batch: 64,
            timing_runs: 15,
            allow_non_finite: None,
        }
    }
}

/// A compiled model: run it on tensors in its signature's input order.
pub struct Plan {
    runnable: Arc<TypedRunnableModel>,
    pub signature: Signature,
    pub report: CompileReport,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("signature", &self.signature)
            .finish()
    }
}

fn compile_error(e: impl std::fmt::Display) -> ServeError {
    ServeError::Compile(e.to_string())
}

fn compile_error_chain(e: TractError) -> ServeError {
    ServeError::Compile(format!("{e:#}"))
}

const NATIVE: [&str; 8] = [
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "Scaler",
    "OneHotEncoder",
    "Imputer",
    "Binarizer",
    "ArrayFeatureExtractor",
    "ZipMap",
];

impl Plan {
    /// Compiles an ONNX model.
    pub fn compile(onnx_bytes: &[u8], options: &CompileOptions) -> Result<Plan, ServeError> {
        let started = Instant::now();
        let onnx = crate::ml::onnx();
        let proto = onnx
            .proto_model_for_read(&mut &onnx_bytes[..])
            .map_err(compile_error_chain)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| compile_error("the file has no graph"))?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let op_types: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        let native_ops: Vec<String> = NATIVE
            .iter()
            .filter(|n| op_types.contains(n))
            .map(|n| n.to_string())
            .collect();
        let allow_non_finite = options.allow_non_finite.unwrap_or_else(|| {
            op_types.iter().any(|o| {
                matches!(
                    *o,
                    "Imputer" | "TreeEnsembleClassifier" | "TreeEnsembleRegressor"
                )
            })
        });

        let mut model = onnx
            .model_for_proto_model(&proto)
            .map_err(compile_error_chain)?;
        let batch = model.symbols.sym("N");
        let mut inputs = Vec::new();
        let graph_inputs: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .collect();
        for (ix, input) in graph_inputs.iter().enumerate() {
            let (dt, dims) = tensor_type(input)?;
            let datatype = Datatype::from_datum(dt).ok_or_else(|| {
                compile_error(format!(
                    "input {} has type {dt:?}, which V2 cannot carry",
                    input.name
                ))
            })?;
            let mut shape: TVec<TDim> = tvec![];
            let mut spec_shape = Vec::new();
            for (k, d) in dims.iter().enumerate() {
                match d {
                    Some(n) => {
                        shape.push(n.to_dim());
                        spec_shape.push(*n as i64);
                    }
                    None if k == 0 => {
                        shape.push(batch.clone().into());
                        spec_shape.push(-1);
                    }
                    None => {
                        shape.push(
                            model
                                .symbols
                                .sym(&format!("{}_{k}", sanitize(&input.name)))
                                .into(),
                        );
                        spec_shape.push(-1);
                    }
                }
            }
            model
                .set_input_fact(ix, InferenceFact::dt_shape(dt, shape))
                .map_err(compile_error_chain)?;
            inputs.push(TensorSpec {
                name: input.name.clone(),
                datatype,
                shape: spec_shape,
            });
        }
        let batched = !inputs.is_empty() && inputs.iter().all(|i| i.shape.first() == Some(&-1));

        let typed = model.into_typed().map_err(compile_error_chain)?;
        let nodes_before = typed.nodes().len();
        let mut outputs = Vec::new();
        let mut outputs_batched = true;
        let batch_dim: TDim = batch.clone().into();
        for (ix, outlet) in typed
            .output_outlets()
            .map_err(compile_error_chain)?
            .iter()
            .enumerate()
        {
            let fact = typed.outlet_fact(*outlet).map_err(compile_error_chain)?;
            let name = graph
                .output
                .get(ix)
                .map(|o| o.name.clone())
                .unwrap_or_else(|| format!("output_{ix}"));
            let datatype = Datatype::from_datum(fact.datum_type).ok_or_else(|| {
                compile_error(format!(
                    "output {name} has type {:?}, which V2 cannot carry",
                    fact.datum_type
                ))
            })?;
            outputs_batched &= fact.shape.first() == Some(&batch_dim);
            let shape = fact
                .shape
                .iter()
                .map(|d| d.to_i64().unwrap_or(-1))
                .collect();
            outputs.push(TensorSpec {
                name,
                datatype,
                shape,
            });
        }
        let batched = batched && outputs_batched;
        let signature = Signature {
            inputs,
            outputs,
            batched,
            allow_non_finite,
        };

        let sample = sample_inputs(&signature, options.sample_batch.max(1))?;
        let before = typed.clone().into_runnable().map_err(compile_error_chain)?;
        let latency_before_us = median_latency(&before, &sample, options.timing_runs)?;
        let optimized = typed
            .into_decluttered()
            .and_then(|m| m.into_optimized())
            .map_err(compile_error_chain)?;
        let nodes_after = optimized.nodes().len();
        let runnable = optimized.into_runnable().map_err(compile_error_chain)?;
        let latency_after_us = median_latency(&runnable, &sample, options.timing_runs)?;
        let report = CompileReport {
            compile_ms: started.elapsed().as_secs_f64() * 1e3,
            nodes_before,
            nodes_after,
            sample_batch: options.sample_batch.max(1),
            latency_before_us,
            latency_after_us,
            native_ops,
        };
        Ok(Plan {
            runnable,
            signature,
            report,
        })
    }

    /// Runs the plan on inputs in signature order, already checked against
    /// the signature.
    pub fn run(&self, inputs: &[NamedTensor]) -> Result<Vec<NamedTensor>, ServeError> {
        let tensors: TVec<TValue> = inputs
            .iter()
            .map(|t| t.to_tract().map(TValue::from))
            .collect::<Result<_, _>>()?;
        let outputs = self
            .runnable
            .run(tensors)
            .map_err(|e| ServeError::Run(format!("{e:#}")))?;
        outputs
            .iter()
            .zip(&self.signature.outputs)
            .map(|(t, spec)| NamedTensor::from_tract(&spec.name, t))
            .collect()
    }
}

impl Plan {
    /// Rows per second in process on inputs (checked, in signature order;
    /// [`sample_inputs`] or a request's): `threads` threads each run them
    /// `runs` times through [`Plan::run`] (what the server calls), and the
    /// rows are divided by the wall time. Tree ensembles take data-dependent
    /// paths, so a fair ceiling for a server is measured on the rows the
    /// server is sent.
    pub fn throughput(
        &self,
        inputs: &[NamedTensor],
        threads: usize,
        runs: usize,
    ) -> Result<f64, ServeError> {
        let rows = batch_rows(inputs);
        self.run(inputs)?;
        let started = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        for _ in 0..runs.max(1) {
                            self.run(inputs)?;
                        }
                        Ok::<(), ServeError>(())
                    })
                })
                .collect();
            for worker in workers {
                worker
                    .join()
                    .map_err(|_| ServeError::Internal("a timing thread panicked".into()))??;
            }
            Ok::<(), ServeError>(())
        })?;
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        Ok((rows * threads.max(1) * runs.max(1)) as f64 / seconds)
    }

    /// Median latency in µs of [`Plan::run`] on given inputs over `runs` runs.
    pub fn latency_on(&self, inputs: &[NamedTensor], runs: usize) -> Result<f64, ServeError> {
        self.run(inputs)?;
        let mut times = Vec::with_capacity(runs.max(1));
        for _ in 0..runs.max(1) {
            let started = Instant::now();
            self.run(inputs)?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }
}

/// Rows in a batch of inputs: the first dimension of the first input.
fn batch_rows(inputs: &[NamedTensor]) -> usize {
    inputs
        .first()
        .and_then(|t| t.shape.first().copied())
        .unwrap_or(1)
        .max(1)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The element type and dimensions (None where free) of a graph input.
fn tensor_type(input: &pb::ValueInfoProto) -> Result<(DatumType, Vec<Option<usize>>), ServeError> {
    use pb::type_proto::Value;
    let Some(Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(compile_error(format!(
            "input {} is not a tensor",
            input.name
        )));
    };
    let dt = pb::tensor_proto::DataType::try_from(t.elem_type)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| {
            compile_error(format!(
                "input {} has an unsupported element type {}",
                input.name, t.elem_type
            ))
        })?;
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                        Some(*v as usize)
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((dt, dims))
}

/// Deterministic sample inputs for timing: small numbers, category 0, empty
/// strings.
pub fn sample_inputs(signature: &Signature, batch: usize) -> Result<Vec<NamedTensor>, ServeError> {
    signature
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    if *d >= 0 {
                        *d as usize
                    } else if k == 0 {
                        batch
                    } else {
                        1
                    }
                })
                .collect();
            let n: usize = shape.iter().product();
            let wave = |i: usize| ((i * 7919) % 200) as f64 / 100.0 - 1.0;
            let data = match spec.datatype {
                Datatype::Bool => Data::Bool((0..n).map(|i| i % 2 == 0).collect()),
                Datatype::Uint8 => Data::Uint8(vec![0; n]),
                Datatype::Uint16 => Data::Uint16(vec![0; n]),
                Datatype::Uint32 => Data::Uint32(vec![0; n]),
                Datatype::Uint64 => Data::Uint64(vec![0; n]),
                Datatype::Int8 => Data::Int8(vec![0; n]),
                Datatype::Int16 => Data::Int16(vec![0; n]),
                Datatype::Int32 => Data::Int32(vec![0; n]),
                Datatype::Int64 => Data::Int64(vec![0; n]),
                Datatype::Fp16 => Data::Fp16((0..n).map(|i| wave(i) as f32).collect()),
                Datatype::Fp32 => Data::Fp32((0..n).map(|i| wave(i) as f32).collect()),
                Datatype::Fp64 => Data::Fp64((0..n).map(wave).collect()),
                Datatype::Bytes => Data::Bytes(vec![Vec::new(); n]),
            };
            Ok(NamedTensor::new(spec.name.clone(), shape, data))
        })
        .collect()
}

fn median_latency(
    plan: &Arc<TypedRunnableModel>,
    sample: &[NamedTensor],
    runs: usize,
) -> Result<f64, ServeError> {
    let tensors: Vec<Tensor> = sample
        .iter()
        .map(|t| t.to_tract())
        .collect::<Result<_, _>>()?;
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let inputs: TVec<TValue> = tensors.iter().cloned().map(TValue::from).collect();
        let started = Instant::now();
        plan.run(inputs).map_err(|e| {
            ServeError::Compile(format!("the model fails on a sample batch: {e:#}"))
        })?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
