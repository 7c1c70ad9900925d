//! The signature of an ONNX model: its graph's inputs and outputs.
//!
//! Only the messages on the way there are decoded (field numbers from
//! `onnx.proto`):
//!
//! ```text
//! ModelProto        7 graph: GraphProto
//! GraphProto        5 initializer: TensorProto, 11 input, 12 output: ValueInfoProto,
//!                   15 sparse_initializer: SparseTensorProto
//! TensorProto       8 name
//! SparseTensorProto 1 values: TensorProto
//! ValueInfoProto    1 name, 2 type: TypeProto
//! TypeProto         1 tensor_type, 4 sequence_type, 5 map_type, 7 opaque_type,
//!                   8 sparse_tensor_type, 9 optional_type
//!   Tensor          1 elem_type, 2 shape: TensorShapeProto   (SparseTensor alike)
//!   Sequence        1 elem_type: TypeProto                   (Optional alike)
//!   Map             1 key_type, 2 value_type: TypeProto
//!   Opaque          1 domain, 2 name
//! TensorShapeProto  1 dim: Dimension { 1 dim_value | 2 dim_param }
//! ```
//!
//! Everything else, weights included, is skipped without being looked at.
//! Graphs written before IR version 4 list their initializers among the
//! inputs; those are weights, not inputs, and are left out.
//!
//! Plain tensors become [`ColumnKind::Tensor`] specs whose type is the numpy
//! dtype the `onnx` package maps the element type to (`float32`, `int64`,
//! `object` for strings, `bfloat16`, …), with `-1` for every dimension that is
//! symbolic (`dim_param`) or unknown. Other values (sequences, maps,
//! optionals, sparse tensors) become [`ColumnKind::Other`] specs whose type is
//! written as ONNX Runtime writes it: `seq(map(int64,tensor(float)))`.

use std::collections::HashSet;
use std::fmt;

use super::protobuf::{Field, Fields, Value};
use super::signature::{ColumnKind, ColumnSpec, Schema, Signature, SignatureSource};

/// How deeply types may nest (`seq(map(int64,seq(…)))`); real models need
/// three or four levels.
pub const MAX_TYPE_DEPTH: usize = 32;

/// A file that is not a well-formed ONNX model: what is wrong, and where
/// (`graph.input[1].type.tensor_type.elem_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OnnxError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn error(field: &str, message: impl Into<String>) -> OnnxError {
    OnnxError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Element types by `TensorProto.DataType` number: the ONNX name (as in
/// `tensor(float)`) and the numpy dtype name the `onnx` package maps it to.
const ELEMENT_TYPES: [(i64, &str, &str); 28] = [
    (1, "float", "float32"),
    (2, "uint8", "uint8"),
    (3, "int8", "int8"),
    (4, "uint16", "uint16"),
    (5, "int16", "int16"),
    (6, "int32", "int32"),
    (7, "int64", "int64"),
    (8, "string", "object"),
    (9, "bool", "bool"),
    (10, "float16", "float16"),
    (11, "double", "float64"),
    (12, "uint32", "uint32"),
    (13, "uint64", "uint64"),
    (14, "complex64", "complex64"),
    (15, "complex128", "complex128"),
    (16, "bfloat16", "bfloat16"),
    (17, "float8e4m3fn", "float8_e4m3fn"),
    (18, "float8e4m3fnuz", "float8_e4m3fnuz"),
    (19, "float8e5m2", "float8_e5m2"),
    (20, "float8e5m2fnuz", "float8_e5m2fnuz"),
    (21, "uint4", "uint4"),
    (22, "int4", "int4"),
    (23, "float4e2m1", "float4_e2m1fn"),
    (24, "float8e8m0", "float8_e8m0fnu"),
    (25, "uint2", "uint2"),
    (26, "int2", "int2"),
    (27, "float6e2m3", "float6_e2m3fn"),
    (28, "float6e3m2", "float6_e3m2fn"),
];

/// The (ONNX, numpy) names of an element type; a number from a newer ONNX
/// than this table is named by its number.
fn element_names(code: i64) -> (String, String) {
    match ELEMENT_TYPES.iter().find(|(c, _, _)| *c == code) {
        Some((_, onnx, numpy)) => (onnx.to_string(), numpy.to_string()),
        None => (format!("elem_type({code})"), format!("elem_type({code})")),
    }
}

/// The signature of the model in `bytes`: its graph's inputs (initializers
/// excluded) and outputs. `None` for a graph with neither.
pub(crate) fn read_signature(bytes: &[u8]) -> Result<Option<Signature>, OnnxError> {
    let mut graphs = Vec::new();
    for field in Fields::new(bytes) {
        let field = field.map_err(|e| error("", e.to_string()))?;
        if field.number == 7 {
            graphs.push(message(&field, "graph")?);
        }
    }
    if graphs.is_empty() {
        return Err(error(
            "graph",
            "missing; an ONNX model file holds a ModelProto with a graph",
        ));
    }
    // A repeated singular message field is merged, which for the repeated
    // fields read here means concatenated.
    let mut graph = Graph::default();
    for bytes in graphs {
        read_graph(bytes, &mut graph)?;
    }
    let inputs: Vec<ColumnSpec> = graph
        .inputs
        .into_iter()
        .filter(|v| !graph.initializers.contains(&v.name))
        .map(|v| v.into_spec())
        .collect();
    let outputs: Vec<ColumnSpec> = graph.outputs.into_iter().map(|v| v.into_spec()).collect();
    if inputs.is_empty() && outputs.is_empty() {
        return Ok(None);
    }
    Ok(Some(Signature {
        inputs: (!inputs.is_empty()).then_some(Schema(inputs)),
        outputs: (!outputs.is_empty()).then_some(Schema(outputs)),
        params: None,
        source: SignatureSource::Onnx,
    }))
}

#[derive(Default)]
struct Graph {
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    initializers: HashSet<String>,
}

struct ValueInfo {
    name: String,
    ty: Type,
}

impl ValueInfo {
    fn into_spec(self) -> ColumnSpec {
        let name = (!self.name.is_empty()).then_some(self.name);
        let (kind, dtype, shape) = match self.ty {
            Type::Tensor(t) => (ColumnKind::Tensor, element_names(t.elem).1, t.shape),
            Type::SparseTensor(ref t) => (ColumnKind::Other, self.ty.text(), t.shape.clone()),
            ref other => (ColumnKind::Other, other.text(), None),
        };
        ColumnSpec {
            name,
            kind,
            dtype,
            shape,
            required: true,
            items: None,
            properties: None,
            values: None,
        }
    }
}

#[derive(Default)]
struct TensorType {
    elem: i64,
    shape: Option<Vec<i64>>,
}

enum Type {
    Tensor(TensorType),
    SparseTensor(TensorType),
    Sequence(Option<Box<Type>>),
    Map(i64, Option<Box<Type>>),
    Optional(Option<Box<Type>>),
    Opaque(String, String),
}

impl Type {
    /// The type as ONNX Runtime writes it.
    fn text(&self) -> String {
        let inner = |t: &Option<Box<Type>>| t.as_ref().map_or("unknown".to_string(), |t| t.text());
        match self {
            Type::Tensor(t) => format!("tensor({})", element_names(t.elem).0),
            Type::SparseTensor(t) => format!("sparse_tensor({})", element_names(t.elem).0),
            Type::Sequence(t) => format!("seq({})", inner(t)),
            Type::Map(key, value) => format!("map({},{})", element_names(*key).0, inner(value)),
            Type::Optional(t) => format!("optional({})", inner(t)),
            Type::Opaque(domain, name) => format!("opaque({domain},{name})"),
        }
    }
}

/// The bytes of a length-delimited field, or an error naming it.
fn message<'a>(field: &Field<'a>, name: &str) -> Result<&'a [u8], OnnxError> {
    match field.value {
        Value::Bytes(b) => Ok(b),
        other => Err(error(
            name,
            format!(
                "expected a length-delimited field, found {} at byte {}",
                other.kind(),
                field.offset
            ),
        )),
    }
}

fn varint(field: &Field<'_>, name: &str) -> Result<u64, OnnxError> {
    match field.value {
        Value::Varint(v) => Ok(v),
        other => Err(error(
            name,
            format!(
                "expected a varint, found {} at byte {}",
                other.kind(),
                field.offset
            ),
        )),
    }
}

fn string(field: &Field<'_>, name: &str) -> Result<String, OnnxError> {
    let bytes = message(field, name)?;
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|e| error(name, format!("not UTF-8 text: {e}")))
}

/// The fields of a message, with wire errors placed at `name`.
fn fields<'a>(
    bytes: &'a [u8],
    name: &'a str,
) -> impl Iterator<Item = Result<Field<'a>, OnnxError>> + 'a {
    Fields::new(bytes).map(move |f| f.map_err(|e| error(name, e.to_string())))
}

fn read_graph(bytes: &[u8], graph: &mut Graph) -> Result<(), OnnxError> {
    for field in fields(bytes, "graph") {
        let field = field?;
        match field.number {
            5 => {
                let at = format!("graph.initializer[{}]", graph.initializers.len());
                let tensor = message(&field, &at)?;
                if let Some(name) = tensor_name(tensor, &at)? {
                    graph.initializers.insert(name);
                }
            }
            15 => {
                let at = "graph.sparse_initializer";
                let sparse = message(&field, at)?;
                for f in fields(sparse, at) {
                    let f = f?;
                    if f.number == 1 {
                        let values = message(&f, at)?;
                        if let Some(name) = tensor_name(values, at)? {
                            graph.initializers.insert(name);
                        }
                    }
                }
            }
            11 => {
                let at = format!("graph.input[{}]", graph.inputs.len());
                graph
                    .inputs
                    .push(read_value_info(message(&field, &at)?, &at)?);
            }
            12 => {
                let at = format!("graph.output[{}]", graph.outputs.len());
                graph
                    .outputs
                    .push(read_value_info(message(&field, &at)?, &at)?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `TensorProto`'s name (field 8); its data is skipped.
fn tensor_name(bytes: &[u8], at: &str) -> Result<Option<String>, OnnxError> {
    let mut name = None;
    for field in fields(bytes, at) {
        let field = field?;
        if field.number == 8 {
            name = Some(string(&field, &format!("{at}.name"))?);
        }
    }
    Ok(name)
}

fn read_value_info(bytes: &[u8], at: &str) -> Result<ValueInfo, OnnxError> {
    let mut name = String::new();
    let mut ty = None;
    for field in fields(bytes, at) {
        let field = field?;
        match field.number {
            1 => name = string(&field, &format!("{at}.name"))?,
            2 => {
                let at = format!("{at}.type");
                ty = Some(read_type(message(&field, &at)?, &at, 0, ty)?);
            }
            _ => {}
        }
    }
    let Some(ty) = ty else {
        return Err(error(
            &format!("{at}.type"),
            "missing; graph inputs and outputs must have a type",
        ));
    };
    Ok(ValueInfo { name, ty })
}

/// A `TypeProto`, merged into `previous` when that is the same kind of
/// tensor (a repeated message field merges), replacing it otherwise.
fn read_type(
    bytes: &[u8],
    at: &str,
    depth: usize,
    previous: Option<Type>,
) -> Result<Type, OnnxError> {
    if depth >= MAX_TYPE_DEPTH {
        return Err(error(
            at,
            format!("types nest deeper than {MAX_TYPE_DEPTH} levels"),
        ));
    }
    let mut ty = previous;
    for field in fields(bytes, at) {
        let field = field?;
        ty = match field.number {
            1 => {
                let at = format!("{at}.tensor_type");
                let merged = match ty {
                    Some(Type::Tensor(t)) => t,
                    _ => TensorType::default(),
                };
                Some(Type::Tensor(read_tensor_type(
                    message(&field, &at)?,
                    &at,
                    merged,
                )?))
            }
            8 => {
                let at = format!("{at}.sparse_tensor_type");
                let merged = match ty {
                    Some(Type::SparseTensor(t)) => t,
                    _ => TensorType::default(),
                };
                Some(Type::SparseTensor(read_tensor_type(
                    message(&field, &at)?,
                    &at,
                    merged,
                )?))
            }
            4 | 9 => {
                let at = format!(
                    "{at}.{}",
                    if field.number == 4 {
                        "sequence_type"
                    } else {
                        "optional_type"
                    }
                );
                let mut elem = None;
                for f in fields(message(&field, &at)?, &at) {
                    let f = f?;
                    if f.number == 1 {
                        let at = format!("{at}.elem_type");
                        let inner = read_type(message(&f, &at)?, &at, depth + 1, None)?;
                        elem = Some(Box::new(inner));
                    }
                }
                Some(if field.number == 4 {
                    Type::Sequence(elem)
                } else {
                    Type::Optional(elem)
                })
            }
            5 => {
                let at = format!("{at}.map_type");
                let (mut key, mut value) = (0, None);
                for f in fields(message(&field, &at)?, &at) {
                    let f = f?;
                    match f.number {
                        1 => key = varint(&f, &format!("{at}.key_type"))? as i64,
                        2 => {
                            let at = format!("{at}.value_type");
                            let inner = read_type(message(&f, &at)?, &at, depth + 1, None)?;
                            value = Some(Box::new(inner));
                        }
                        _ => {}
                    }
                }
                Some(Type::Map(key, value))
            }
            7 => {
                let at = format!("{at}.opaque_type");
                let (mut domain, mut name) = (String::new(), String::new());
                for f in fields(message(&field, &at)?, &at) {
                    let f = f?;
                    match f.number {
                        1 => domain = string(&f, &format!("{at}.domain"))?,
                        2 => name = string(&f, &format!("{at}.name"))?,
                        _ => {}
                    }
                }
                Some(Type::Opaque(domain, name))
            }
            _ => ty,
        };
    }
    let Some(ty) = ty else {
        return Err(error(
            at,
            "empty; expected a tensor, sequence, map or optional type",
        ));
    };
    if let Type::Tensor(t) | Type::SparseTensor(t) = &ty
        && t.elem == 0
    {
        return Err(error(
            &format!("{at}.elem_type"),
            "missing or UNDEFINED; a tensor must have an element type",
        ));
    }
    Ok(ty)
}

fn read_tensor_type(
    bytes: &[u8],
    at: &str,
    mut tensor: TensorType,
) -> Result<TensorType, OnnxError> {
    for field in fields(bytes, at) {
        let field = field?;
        match field.number {
            // An int32 is written as a sign-extended 64-bit varint.
            1 => tensor.elem = varint(&field, &format!("{at}.elem_type"))? as i64,
            2 => {
                let at = format!("{at}.shape");
                let dims = tensor.shape.get_or_insert_with(Vec::new);
                for f in fields(message(&field, &at)?, &at) {
                    let f = f?;
                    if f.number == 1 {
                        let at = format!("{at}.dim[{}]", dims.len());
                        dims.push(read_dimension(message(&f, &at)?, &at)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(tensor)
}

/// A dimension's size, or `-1` when it is symbolic, unknown, or (against
/// the spec, but some exporters do it) negative.
fn read_dimension(bytes: &[u8], at: &str) -> Result<i64, OnnxError> {
    let mut size = -1;
    for field in fields(bytes, at) {
        let field = field?;
        match field.number {
            1 => size = (varint(&field, &format!("{at}.dim_value"))? as i64).max(-1),
            2 => {
                string(&field, &format!("{at}.dim_param"))?;
                size = -1;
            }
            _ => {}
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::super::protobuf::tests::{bytes_field, varint_field};
    use super::*;
    use proptest::prelude::*;

    fn dim(value: Option<i64>, param: Option<&str>) -> Vec<u8> {
        let mut d = Vec::new();
        if let Some(v) = value {
            varint_field(1, v as u64, &mut d);
        }
        if let Some(p) = param {
            bytes_field(2, p.as_bytes(), &mut d);
        }
        d
    }

    fn tensor_type(elem: u64, dims: Option<&[Vec<u8>]>) -> Vec<u8> {
        let mut t = Vec::new();
        varint_field(1, elem, &mut t);
        if let Some(dims) = dims {
            let mut shape = Vec::new();
            for d in dims {
                bytes_field(1, d, &mut shape);
            }
            bytes_field(2, &shape, &mut t);
        }
        let mut ty = Vec::new();
        bytes_field(1, &t, &mut ty);
        ty
    }

    fn value_info(name: &str, ty: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        bytes_field(1, name.as_bytes(), &mut v);
        bytes_field(2, ty, &mut v);
        v
    }

    fn initializer(name: &str) -> Vec<u8> {
        let mut t = Vec::new();
        varint_field(1, 2, &mut t); // dims
        varint_field(2, 1, &mut t); // data_type
        bytes_field(8, name.as_bytes(), &mut t);
        bytes_field(9, &[0; 8], &mut t); // raw_data
        t
    }

    fn model(graph_fields: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut g = Vec::new();
        for (n, bytes) in graph_fields {
            bytes_field(*n, bytes, &mut g);
        }
        let mut m = Vec::new();
        varint_field(1, 8, &mut m); // ir_version
        bytes_field(7, &g, &mut m);
        m
    }

    /// A graph with a symbolic batch dimension, an unknown dimension, a
    /// weight listed as an input, and a sequence-of-maps output.
    fn sample() -> Vec<u8> {
        let x = tensor_type(1, Some(&[dim(None, Some("batch")), dim(Some(4), None)]));
        let ids = tensor_type(7, Some(&[dim(None, None), dim(Some(3), None)]));
        let w = tensor_type(1, Some(&[dim(Some(2), None)]));
        let y = tensor_type(11, None);
        let mut map = Vec::new();
        varint_field(1, 7, &mut map);
        bytes_field(2, &tensor_type(1, None), &mut map);
        let mut map_type = Vec::new();
        bytes_field(5, &map, &mut map_type);
        let mut seq = Vec::new();
        bytes_field(1, &map_type, &mut seq);
        let mut seq_type = Vec::new();
        bytes_field(4, &seq, &mut seq_type);
        model(&[
            (5, initializer("W")),
            (11, value_info("X", &x)),
            (11, value_info("ids", &ids)),
            (11, value_info("W", &w)),
            (12, value_info("Y", &y)),
            (12, value_info("probabilities", &seq_type)),
        ])
    }

    #[test]
    fn reads_inputs_and_outputs_without_initializers() {
        let sig = read_signature(&sample()).unwrap().unwrap();
        assert_eq!(sig.source, SignatureSource::Onnx);
        let inputs = sig.inputs.unwrap().0;
        let got: Vec<_> = inputs
            .iter()
            .map(|c| (c.name.as_deref(), c.dtype.as_str(), c.shape.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("X"), "float32", Some(&[-1, 4][..])),
                (Some("ids"), "int64", Some(&[-1, 3][..])),
            ]
        );
        let outputs = sig.outputs.unwrap().0;
        assert_eq!(outputs[0].dtype, "float64");
        assert_eq!(outputs[0].shape, None);
        assert_eq!(outputs[1].kind, ColumnKind::Other);
        assert_eq!(outputs[1].dtype, "seq(map(int64,tensor(float)))");
    }

    #[test]
    fn names_the_broken_field() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "graph: missing"),
            (
                vec![0x38, 0x01],
                "graph: expected a length-delimited field, found a varint",
            ),
            (
                model(&[(11, value_info("x", &[]))]),
                "graph.input[0].type: empty",
            ),
            (
                model(&[(11, value_info("x", &tensor_type(0, None)))]),
                "graph.input[0].type.elem_type: missing or UNDEFINED",
            ),
            (
                model(&[
                    (12, value_info("a", &tensor_type(1, None))),
                    (12, vec![0x0a, 0x05, b'x']),
                ]),
                "graph.output[1]: byte 0: a field claims 5 bytes but only 1 remain",
            ),
            (
                model(&[(
                    11,
                    value_info("x", &tensor_type(1, Some(&[vec![0x12, 0x01, 0xff]]))),
                )]),
                "graph.input[0].type.tensor_type.shape.dim[0].dim_param: not UTF-8 text",
            ),
            (
                model(&[(5, vec![0x0b])]),
                "graph.initializer[0]: byte 0: field 1 is a group",
            ),
        ];
        for (bytes, expected) in cases {
            let err = read_signature(&bytes).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.starts_with(expected)),
                "{expected}: {err:?}"
            );
        }
    }

    #[test]
    fn limits_type_nesting() {
        let mut ty = tensor_type(1, None);
        for _ in 0..MAX_TYPE_DEPTH {
            let mut seq = Vec::new();
            bytes_field(1, &ty, &mut seq);
            ty = Vec::new();
            bytes_field(4, &seq, &mut ty);
        }
        let err = read_signature(&model(&[(12, value_info("deep", &ty))])).unwrap_err();
        assert!(err.message.contains("nest deeper than 32"), "{err}");

        let mut ty = tensor_type(1, None);
        for _ in 0..MAX_TYPE_DEPTH - 1 {
            let mut seq = Vec::new();
            bytes_field(1, &ty, &mut seq);
            ty = Vec::new();
            bytes_field(4, &seq, &mut ty);
        }
        let sig = read_signature(&model(&[(12, value_info("deep", &ty))])).unwrap();
        assert!(
            sig.unwrap().outputs.unwrap().0[0]
                .dtype
                .starts_with("seq(seq(")
        );
    }

    #[test]
    fn merges_repeated_messages_and_names_new_element_types() {
        // The graph written in two pieces, and a tensor type in two pieces.
        let mut m = Vec::new();
        let mut g1 = Vec::new();
        bytes_field(11, &value_info("a", &tensor_type(99, None)), &mut g1);
        let mut g2 = Vec::new();
        let mut ty = tensor_type(1, Some(&[dim(Some(2), None)]));
        ty.extend(tensor_type(6, None));
        bytes_field(11, &value_info("b", &ty), &mut g2);
        bytes_field(7, &g1, &mut m);
        bytes_field(7, &g2, &mut m);
        let inputs = read_signature(&m).unwrap().unwrap().inputs.unwrap().0;
        assert_eq!(inputs[0].dtype, "elem_type(99)");
        assert_eq!(
            (inputs[1].dtype.as_str(), inputs[1].shape.as_deref()),
            ("int32", Some(&[2][..]))
        );
    }

    // Random bytes, and valid models with bytes flipped, cut or inserted:
    // the reader answers (either way) without panicking.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read_signature(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_models(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8)
        ) {
            let mut bytes = sample();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, byte),
                }
            }
            let _ = read_signature(&bytes);
        }
    }
}
