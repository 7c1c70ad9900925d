//! The V2 JSON tensor path without a `serde_json::Value` tree.
//!
//! Parsing: the request is read into borrowed structs with each input's
//! `data` left as raw JSON text, which is then scanned straight into a typed
//! vector. Only well-formed requests take this path: anything unusual (an
//! input in binary, strings such as `"NaN"` among floats, a number out of
//! range, nesting that does not follow the shape, a missing field) makes it
//! give up, and the `Value`-based parser reads the request again and names
//! what is wrong. Both paths therefore accept the same requests and decode
//! them to the same tensors (a property test checks it).
//!
//! Writing: outputs are serialized from the tensors directly, FP32 as the
//! shortest decimal that reads back as the same f32.

use std::borrow::Cow;

use keel_serve::tensor::{Data, Datatype, NamedTensor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::MAX_ELEMENTS;

/// The top of a V2 request; every field but `inputs` is small and kept as a
/// `Value` for the shared checks.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    parameters: Option<Value>,
    #[serde(borrow)]
    inputs: Vec<WireInput<'a>>,
    #[serde(default, deserialize_with = "present")]
    outputs: Option<Value>,
}

#[derive(Deserialize)]
struct WireInput<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    datatype: Cow<'a, str>,
    shape: Vec<u64>,
    #[serde(default, deserialize_with = "present")]
    parameters: Option<Value>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A field that is there, even as `null` (which `Option` alone would hide).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The request's fields other than `inputs` (as the generic parser sees
/// them), and its decoded inputs; `None` sends the request to that parser.
pub(super) fn parse(json: &[u8]) -> Option<(Map<String, Value>, Vec<NamedTensor>)> {
    let envelope: Envelope = serde_json::from_slice(json).ok()?;
    let mut inputs = Vec::with_capacity(envelope.inputs.len());
    for input in &envelope.inputs {
        inputs.push(input_tensor(input)?);
    }
    let mut rest = Map::new();
    for (key, value) in [
        ("id", envelope.id),
        ("parameters", envelope.parameters),
        ("outputs", envelope.outputs),
    ] {
        if let Some(value) = value {
            rest.insert(key.to_string(), value);
        }
    }
    Some((rest, inputs))
}

fn input_tensor(input: &WireInput) -> Option<NamedTensor> {
    match &input.parameters {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) if !p.contains_key("binary_data_size") => {}
        Some(_) => return None,
    }
    let datatype = Datatype::parse(&input.datatype)?;
    let mut shape = Vec::with_capacity(input.shape.len());
    let mut elements: usize = 1;
    for &n in &input.shape {
        let n = usize::try_from(n).ok()?;
        elements = elements.checked_mul(n).filter(|e| *e <= MAX_ELEMENTS)?;
        shape.push(n);
    }
    let data = scan_data(input.data.get(), datatype, &shape, elements)?;
    Some(NamedTensor::new(input.name.as_ref(), shape, data))
}

/// Decodes raw JSON `data` (flat, or nested exactly as `shape`) with
/// `elements` leaves of `datatype`; `None` for anything else.
pub(super) fn scan_data(
    raw: &str,
    datatype: Datatype,
    shape: &[usize],
    elements: usize,
) -> Option<Data> {
    /// A finite float that stays finite (and for FP16 below 65520, the
    /// first value that rounds past 65504) once narrowed to f32.
    fn narrow(token: &str, limit: f64) -> Option<f32> {
        let x: f64 = token.parse().ok()?;
        let y = x as f32;
        (x.is_finite() && y.is_finite() && x.abs() < limit).then_some(y)
    }
    fn int<T: std::str::FromStr>(token: &str) -> Option<T> {
        // serde_json reads "-0" as a float; the generic path refuses it.
        if token.starts_with("-0") {
            return None;
        }
        token.parse().ok()
    }
    let scan = |leaf: &mut dyn FnMut(&str) -> Option<()>| leaves(raw, shape, elements, leaf);
    macro_rules! typed {
        ($variant:ident, $parse:expr) => {{
            let mut out = Vec::with_capacity(elements);
            scan(&mut |t| {
                out.push($parse(t)?);
                Some(())
            })?;
            Data::$variant(out)
        }};
    }
    Some(match datatype {
        Datatype::Fp32 => typed!(Fp32, |t| narrow(t, f64::INFINITY)),
        Datatype::Fp16 => typed!(Fp16, |t| narrow(t, 65520.0)),
        Datatype::Fp64 => typed!(Fp64, |t: &str| t
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())),
        Datatype::Int64 => typed!(Int64, int::<i64>),
        Datatype::Int32 => typed!(Int32, int::<i32>),
        Datatype::Int16 => typed!(Int16, int::<i16>),
        Datatype::Int8 => typed!(Int8, int::<i8>),
        Datatype::Uint64 => typed!(Uint64, int::<u64>),
        Datatype::Uint32 => typed!(Uint32, int::<u32>),
        Datatype::Uint16 => typed!(Uint16, int::<u16>),
        Datatype::Uint8 => typed!(Uint8, int::<u8>),
        Datatype::Bool => typed!(Bool, |t| match t {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }),
        Datatype::Bytes => return None,
    })
}

/// Walks valid JSON array text, handing each scalar token to `leaf` in row
/// order. Succeeds for a flat array, or for arrays nested exactly as
/// `shape`, holding `elements` leaves.
fn leaves(
    raw: &str,
    shape: &[usize],
    elements: usize,
    leaf: &mut dyn FnMut(&str) -> Option<()>,
) -> Option<()> {
    let bytes = raw.as_bytes();
    // Items seen so far in each open array.
    let mut counts: Vec<usize> = Vec::with_capacity(shape.len().max(1));
    let mut max_depth = 0;
    let mut leaf_depth = None;
    let mut follows_shape = true;
    let mut seen = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'[' => {
                if let Some(parent) = counts.last_mut() {
                    *parent += 1;
                }
                counts.push(0);
                max_depth = max_depth.max(counts.len());
                i += 1;
            }
            b']' => {
                let depth = counts.len();
                let items = counts.pop()?;
                follows_shape &= shape.get(depth - 1) == Some(&items);
                i += 1;
            }
            b'"' | b'{' => return None,
            _ => {
                let depth = counts.len();
                let count = counts.last_mut()?;
                *count += 1;
                if *leaf_depth.get_or_insert(depth) != depth {
                    return None;
                }
                let start = i;
                while i < bytes.len()
                    && !matches!(bytes[i], b',' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    i += 1;
                }
                seen += 1;
                if seen > elements {
                    return None;
                }
                // The delimiters are ASCII, so these are character boundaries.
                leaf(raw.get(start..i)?)?;
            }
        }
    }
    let flat = max_depth == 1;
    let nested =
        max_depth == shape.len() && follows_shape && leaf_depth.is_none_or(|d| d == max_depth);
    (counts.is_empty() && seen == elements && (flat || nested)).then_some(())
}

/// A V2 response body, written without an intermediate `Value`.
#[derive(Serialize)]
pub(super) struct ResponseBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub model_name: &'a str,
    pub model_version: String,
    pub outputs: Vec<OutputJson<'a>>,
}

#[derive(Serialize)]
pub(super) struct OutputJson<'a> {
    pub name: &'a str,
    pub datatype: &'static str,
    pub shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<DataJson<'a>>,
}

#[derive(Serialize)]
pub(super) struct BinarySize {
    pub binary_data_size: usize,
}

/// A tensor's elements as a flat JSON array; non-finite floats as
/// `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(super) struct DataJson<'a>(pub &'a Data);

impl Serialize for DataJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Data::Bool(v) => v.serialize(s),
            Data::Uint8(v) => s.collect_seq(v),
            Data::Uint16(v) => v.serialize(s),
            Data::Uint32(v) => v.serialize(s),
            Data::Uint64(v) => v.serialize(s),
            Data::Int8(v) => v.serialize(s),
            Data::Int16(v) => v.serialize(s),
            Data::Int32(v) => v.serialize(s),
            Data::Int64(v) => v.serialize(s),
            Data::Fp16(v) | Data::Fp32(v) => s.collect_seq(v.iter().map(|x| Float32(*x))),
            Data::Fp64(v) => s.collect_seq(v.iter().map(|x| Float64(*x))),
            Data::Bytes(v) => s.collect_seq(v.iter().map(|b| String::from_utf8_lossy(b))),
        }
    }
}

fn non_finite(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

struct Float32(f32);

impl Serialize for Float32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f32(self.0)
        } else {
            s.serialize_str(non_finite(self.0 as f64))
        }
    }
}

struct Float64(f64);

impl Serialize for Float64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_str(non_finite(self.0))
        }
    }
}
