//! Tensors as the Open Inference Protocol V2 sees them: a name, a shape, a V2
//! datatype and row-major data.

use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};
use tract_onnx::prelude::{DatumType, Tensor, f16};

use crate::ServeError;

/// The V2 datatypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

impl Datatype {
    pub const ALL: [Datatype; 13] = [
        Datatype::Bool,
        Datatype::Uint8,
        Datatype::Uint16,
        Datatype::Uint32,
        Datatype::Uint64,
        Datatype::Int8,
        Datatype::Int16,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Fp16,
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Bytes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    pub fn parse(name: &str) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element in the binary tensor extension (BYTES: variable).
    pub fn width(self) -> Option<usize> {
        Some(match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => 2,
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
            Datatype::Bytes => return None,
        })
    }

    pub(crate) fn from_datum(dt: DatumType) -> Option<Datatype> {
        Some(match dt {
            DatumType::Bool => Datatype::Bool,
            DatumType::U8 => Datatype::Uint8,
            DatumType::U16 => Datatype::Uint16,
            DatumType::U32 => Datatype::Uint32,
            DatumType::U64 => Datatype::Uint64,
            DatumType::I8 => Datatype::Int8,
            DatumType::I16 => Datatype::Int16,
            DatumType::I32 => Datatype::Int32,
            DatumType::I64 => Datatype::Int64,
            DatumType::F16 => Datatype::Fp16,
            DatumType::F32 => Datatype::Fp32,
            DatumType::F64 => Datatype::Fp64,
            DatumType::String => Datatype::Bytes,
            // tract types integer tensors that feed shapes as symbolic
            // dimensions; at run time they hold plain integers.
            DatumType::TDim => Datatype::Int64,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Datatype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Row-major tensor data, one variant per V2 datatype. FP16 values are kept
/// as f32 (exactly representable) and narrowed when the tensor is built.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f32>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

macro_rules! each_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            Data::Bool($v) => $body,
            Data::Uint8($v) => $body,
            Data::Uint16($v) => $body,
            Data::Uint32($v) => $body,
            Data::Uint64($v) => $body,
            Data::Int8($v) => $body,
            Data::Int16($v) => $body,
            Data::Int32($v) => $body,
            Data::Int64($v) => $body,
            Data::Fp16($v) => $body,
            Data::Fp32($v) => $body,
            Data::Fp64($v) => $body,
            Data::Bytes($v) => $body,
        }
    };
}

impl Data {
    pub fn datatype(&self) -> Datatype {
        match self {
            Data::Bool(_) => Datatype::Bool,
            Data::Uint8(_) => Datatype::Uint8,
            Data::Uint16(_) => Datatype::Uint16,
            Data::Uint32(_) => Datatype::Uint32,
            Data::Uint64(_) => Datatype::Uint64,
            Data::Int8(_) => Datatype::Int8,
            Data::Int16(_) => Datatype::Int16,
            Data::Int32(_) => Datatype::Int32,
            Data::Int64(_) => Datatype::Int64,
            Data::Fp16(_) => Datatype::Fp16,
            Data::Fp32(_) => Datatype::Fp32,
            Data::Fp64(_) => Datatype::Fp64,
            Data::Bytes(_) => Datatype::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        each_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty vector of this datatype.
    pub fn empty(datatype: Datatype) -> Data {
        match datatype {
            Datatype::Bool => Data::Bool(Vec::new()),
            Datatype::Uint8 => Data::Uint8(Vec::new()),
            Datatype::Uint16 => Data::Uint16(Vec::new()),
            Datatype::Uint32 => Data::Uint32(Vec::new()),
            Datatype::Uint64 => Data::Uint64(Vec::new()),
            Datatype::Int8 => Data::Int8(Vec::new()),
            Datatype::Int16 => Data::Int16(Vec::new()),
            Datatype::Int32 => Data::Int32(Vec::new()),
            Datatype::Int64 => Data::Int64(Vec::new()),
            Datatype::Fp16 => Data::Fp16(Vec::new()),
            Datatype::Fp32 => Data::Fp32(Vec::new()),
            Datatype::Fp64 => Data::Fp64(Vec::new()),
            Datatype::Bytes => Data::Bytes(Vec::new()),
        }
    }

    /// Appends `other` (same datatype) — how a batch is assembled.
    pub(crate) fn extend(&mut self, other: &Data) -> bool {
        match (self, other) {
            (Data::Bool(a), Data::Bool(b)) => a.extend_from_slice(b),
            (Data::Uint8(a), Data::Uint8(b)) => a.extend_from_slice(b),
            (Data::Uint16(a), Data::Uint16(b)) => a.extend_from_slice(b),
            (Data::Uint32(a), Data::Uint32(b)) => a.extend_from_slice(b),
            (Data::Uint64(a), Data::Uint64(b)) => a.extend_from_slice(b),
            (Data::Int8(a), Data::Int8(b)) => a.extend_from_slice(b),
            (Data::Int16(a), Data::Int16(b)) => a.extend_from_slice(b),
            (Data::Int32(a), Data::Int32(b)) => a.extend_from_slice(b),
            (Data::Int64(a), Data::Int64(b)) => a.extend_from_slice(b),
            (Data::Fp16(a), Data::Fp16(b)) => a.extend_from_slice(b),
            (Data::Fp32(a), Data::Fp32(b)) => a.extend_from_slice(b),
            (Data::Fp64(a), Data::Fp64(b)) => a.extend_from_slice(b),
            (Data::Bytes(a), Data::Bytes(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// Elements `start..end` — how a batch is split back.
    pub(crate) fn slice(&self, start: usize, end: usize) -> Data {
        match self {
            Data::Bool(v) => Data::Bool(v[start..end].to_vec()),
            Data::Uint8(v) => Data::Uint8(v[start..end].to_vec()),
            Data::Uint16(v) => Data::Uint16(v[start..end].to_vec()),
            Data::Uint32(v) => Data::Uint32(v[start..end].to_vec()),
            Data::Uint64(v) => Data::Uint64(v[start..end].to_vec()),
            Data::Int8(v) => Data::Int8(v[start..end].to_vec()),
            Data::Int16(v) => Data::Int16(v[start..end].to_vec()),
            Data::Int32(v) => Data::Int32(v[start..end].to_vec()),
            Data::Int64(v) => Data::Int64(v[start..end].to_vec()),
            Data::Fp16(v) => Data::Fp16(v[start..end].to_vec()),
            Data::Fp32(v) => Data::Fp32(v[start..end].to_vec()),
            Data::Fp64(v) => Data::Fp64(v[start..end].to_vec()),
            Data::Bytes(v) => Data::Bytes(v[start..end].to_vec()),
        }
    }

    /// The index of the first NaN or infinity, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        match self {
            Data::Fp16(v) | Data::Fp32(v) => v.iter().position(|x| !x.is_finite()),
            Data::Fp64(v) => v.iter().position(|x| !x.is_finite()),
            _ => None,
        }
    }
}

/// A named tensor with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Data,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Data) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            shape,
            data,
        }
    }

    pub(crate) fn to_tract(&self) -> Result<Tensor, ServeError> {
        fn array<T: tract_onnx::prelude::Datum>(
            shape: &[usize],
            v: Vec<T>,
        ) -> Result<Tensor, ServeError> {
            ArrayD::from_shape_vec(IxDyn(shape), v)
                .map(Tensor::from)
                .map_err(|e| ServeError::Internal(format!("tensor shape: {e}")))
        }
        let s = &self.shape;
        match &self.data {
            Data::Bool(v) => array(s, v.clone()),
            Data::Uint8(v) => array(s, v.clone()),
            Data::Uint16(v) => array(s, v.clone()),
            Data::Uint32(v) => array(s, v.clone()),
            Data::Uint64(v) => array(s, v.clone()),
            Data::Int8(v) => array(s, v.clone()),
            Data::Int16(v) => array(s, v.clone()),
            Data::Int32(v) => array(s, v.clone()),
            Data::Int64(v) => array(s, v.clone()),
            Data::Fp16(v) => array(s, v.iter().map(|x| f16::from_f32(*x)).collect::<Vec<_>>()),
            Data::Fp32(v) => array(s, v.clone()),
            Data::Fp64(v) => array(s, v.clone()),
            Data::Bytes(v) => array(
                s,
                v.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect::<Vec<_>>(),
            ),
        }
    }

    pub(crate) fn from_tract(name: &str, tensor: &Tensor) -> Result<NamedTensor, ServeError> {
        fn slice<T: tract_onnx::prelude::Datum + Clone>(t: &Tensor) -> Result<Vec<T>, ServeError> {
            let view = t.try_as_plain_ram().map_err(internal)?;
            Ok(view.as_slice::<T>().map_err(internal)?.to_vec())
        }
        let data = match tensor.datum_type() {
            DatumType::Bool => Data::Bool(slice(tensor)?),
            DatumType::U8 => Data::Uint8(slice(tensor)?),
            DatumType::U16 => Data::Uint16(slice(tensor)?),
            DatumType::U32 => Data::Uint32(slice(tensor)?),
            DatumType::U64 => Data::Uint64(slice(tensor)?),
            DatumType::I8 => Data::Int8(slice(tensor)?),
            DatumType::I16 => Data::Int16(slice(tensor)?),
            DatumType::I32 => Data::Int32(slice(tensor)?),
            DatumType::I64 => Data::Int64(slice(tensor)?),
            DatumType::F16 => {
                Data::Fp16(slice::<f16>(tensor)?.into_iter().map(f16::to_f32).collect())
            }
            DatumType::F32 => Data::Fp32(slice(tensor)?),
            DatumType::F64 => Data::Fp64(slice(tensor)?),
            DatumType::String => Data::Bytes(
                slice::<String>(tensor)?
                    .into_iter()
                    .map(String::into_bytes)
                    .collect(),
            ),
            DatumType::TDim => {
                let ints = tensor.cast_to::<i64>().map_err(internal)?;
                Data::Int64(slice(&ints)?)
            }
            other => {
                return Err(ServeError::Internal(format!(
                    "output {name} has type {other:?}, which V2 cannot carry"
                )));
            }
        };
        Ok(NamedTensor {
            name: name.to_string(),
            shape: tensor.shape().to_vec(),
            data,
        })
    }
}

fn internal(e: impl std::fmt::Display) -> ServeError {
    ServeError::Internal(e.to_string())
}
