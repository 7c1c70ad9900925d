//! Model signatures: what a model takes and returns, and the parameters it
//! accepts at inference time.
//!
//! MLflow writes a signature as three JSON strings (`inputs`, `outputs`,
//! `params`) inside the `MLmodel` file; users may hand Keel the same mapping
//! directly. Both are read here, by one reader that checks everything MLflow's
//! `ModelSignature.from_dict` would and reports every problem it finds, each
//! at its field (`inputs[2].type`). Reading an `MLmodel`, keys this reader does
//! not know are ignored, so files from newer MLflow versions still load; an
//! explicit signature is user input, and an unknown key there is more likely
//! a typo, so it is an error.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A model's signature, in Keel's own JSON shape:
///
/// ```json
/// {
///   "inputs": [
///     {"name": "sepal length (cm)", "kind": "column", "type": "double", "required": true}
///   ],
///   "outputs": [
///     {"kind": "tensor", "type": "int64", "shape": [-1], "required": true}
///   ],
///   "params": [
///     {"name": "alpha", "type": "double", "default": 0.5},
///     {"name": "labels", "type": "string", "default": ["a", "b"], "shape": [-1]}
///   ],
///   "source": "mlmodel"
/// }
/// ```
///
/// `inputs`, `outputs` and `params` are omitted when absent. Deserializing
/// this shape does not validate it; it is for reading back what Keel wrote.
/// User input goes through [`validate_signature`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// What the model takes; absent when the signature does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Schema>,
    /// What the model returns; absent when the signature does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Schema>,
    /// Parameters accepted at inference time, beside the inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<ParamSpec>>,
    pub source: SignatureSource,
}

/// Where a signature was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureSource {
    /// The `signature` of the model's `MLmodel` file.
    #[serde(rename = "mlmodel")]
    MLmodel,
    /// The graph inputs and outputs of an ONNX model file.
    Onnx,
    /// Given by the user, checked by [`validate_signature`].
    Explicit,
}

/// The columns or tensors of a model's input or output, in order. Serialized
/// as a plain JSON array of [`ColumnSpec`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema(pub Vec<ColumnSpec>);

/// One column of a tabular input or output, or one tensor.
///
/// ```json
/// {"name": "x", "kind": "column", "type": "double", "required": true}
/// {"name": "image", "kind": "tensor", "type": "float32", "shape": [-1, 28, 28], "required": true}
/// {"name": "tags", "kind": "column", "type": "array", "items": {"type": "string"}, "required": false}
/// {"name": "output_probability", "kind": "other", "type": "seq(map(int64,tensor(float)))", "required": true}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Absent for an unnamed (positional) column or tensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Absent in JSON means `column`.
    #[serde(default)]
    pub kind: ColumnKind,
    /// For a column, an MLflow data type: `boolean`, `integer`, `long`,
    /// `float`, `double`, `string`, `binary`, `datetime`, or one of the
    /// structured types `array`, `object`, `map`, `any`, `sparkml_vector`.
    /// For a tensor, a numpy dtype name (`float32`, `int64`, `str`, …); ONNX
    /// types numpy lacks keep their ONNX name (`bfloat16`,
    /// `float8e4m3fn`, …). For [`ColumnKind::Other`], the type written as
    /// ONNX Runtime writes it.
    #[serde(rename = "type")]
    pub dtype: String,
    /// A tensor's dimensions, `-1` where it may vary. Absent for columns,
    /// and for tensors whose rank is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<i64>>,
    /// Whether the model needs this column; tensors are always required.
    #[serde(default = "yes")]
    pub required: bool,
    /// The element type of an `array` column, as MLflow writes it
    /// (`{"type": "string"}`, or a nested structured type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
    /// The properties of an `object` column, as MLflow writes them:
    /// `{"name": {"type": "string", "required": true}, …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
    /// The value type of a `map` column (keys are strings), as MLflow
    /// writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
}

fn yes() -> bool {
    true
}

/// How a model takes a [`ColumnSpec`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// A column of a data frame (MLflow's `ColSpec`).
    #[default]
    Column,
    /// A dense n-dimensional array (MLflow's `TensorSpec`, an ONNX tensor).
    Tensor,
    /// An ONNX value that is neither: a sequence, map, optional, sparse
    /// tensor or opaque value.
    Other,
}

/// A parameter the model accepts at inference time, with its default.
///
/// ```json
/// {"name": "alpha", "type": "double", "default": 0.5}
/// {"name": "labels", "type": "string", "default": ["a", "b"], "shape": [-1]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    /// An MLflow data type other than `binary`, or `object`.
    #[serde(rename = "type")]
    pub dtype: String,
    /// `null` when the parameter has no default.
    #[serde(default)]
    pub default: Value,
    /// `[-1]` for a list of values; absent for a single value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<i64>>,
    /// The properties of an `object` parameter, as MLflow writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
}

/// One thing wrong with a signature, at the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureProblem {
    /// Where: `inputs[2].type`, `params[0].default`; empty for the whole
    /// document.
    pub field: String,
    pub message: String,
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Everything wrong with a signature, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SignatureError {
    /// Never empty.
    pub problems: Vec<SignatureProblem>,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl SignatureError {
    /// The same problems with `prefix.` before each field, for a signature
    /// read from inside a larger document.
    pub(crate) fn within(mut self, prefix: &str) -> Self {
        for p in &mut self.problems {
            p.field = if p.field.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{}", p.field)
            };
        }
        self
    }
}

/// Checks a signature given by a user, in MLflow's shape: a JSON object
/// with `inputs`, `outputs` and `params`, each either a list of specs or
/// that list as a JSON string (as `ModelSignature.to_dict()` writes it):
///
/// ```json
/// {"inputs": [{"name": "x", "type": "double"}],
///  "outputs": "[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"int64\", \"shape\": [-1]}}]"}
/// ```
///
/// Column types are MLflow's data types; a spec of type `tensor` carries a
/// `tensor-spec` with a numpy `dtype` and a `shape` of integers `>= -1`.
/// Names are unique within a schema. Every problem is reported, each at its
/// field, e.g. `inputs[2].type: unknown type "doubel"; expected one of …`.
pub fn validate_signature(json: &str) -> Result<Signature, SignatureError> {
    let value: Value = serde_json::from_str(json).map_err(|e| SignatureError {
        problems: vec![SignatureProblem {
            field: String::new(),
            message: format!("not valid JSON: {e}"),
        }],
    })?;
    match read_signature(&value, Origin::Explicit, SignatureSource::Explicit)? {
        Some(signature) => Ok(signature),
        None => Err(SignatureError {
            problems: vec![SignatureProblem {
                field: String::new(),
                message: "a signature needs at least one of inputs, outputs or params".into(),
            }],
        }),
    }
}

/// Who wrote the signature being read, which decides how unknown keys are
/// treated (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    MlModel,
    Explicit,
}

/// Reads an MLflow signature mapping; `None` when it has no inputs, outputs
/// or params at all.
pub(crate) fn read_signature(
    value: &Value,
    origin: Origin,
    source: SignatureSource,
) -> Result<Option<Signature>, SignatureError> {
    let mut p = Problems {
        list: Vec::new(),
        origin,
    };
    let Some(map) = value.as_object() else {
        p.add(
            "",
            format!(
                "expected an object with inputs, outputs and params, found {}",
                json_kind(value)
            ),
        );
        return Err(p.into_error());
    };
    p.unknown_keys(map, "", &["inputs", "outputs", "params"]);
    let inputs = map
        .get("inputs")
        .and_then(|v| read_schema(v, "inputs", &mut p));
    let outputs = map
        .get("outputs")
        .and_then(|v| read_schema(v, "outputs", &mut p));
    let params = map
        .get("params")
        .and_then(|v| read_params(v, "params", &mut p));
    if !p.list.is_empty() {
        return Err(p.into_error());
    }
    if inputs.is_none() && outputs.is_none() && params.is_none() {
        return Ok(None);
    }
    Ok(Some(Signature {
        inputs,
        outputs,
        params,
        source,
    }))
}

/// MLflow's column data types (`mlflow.types.DataType`).
pub const DATA_TYPES: [&str; 8] = [
    "boolean", "integer", "long", "float", "double", "string", "binary", "datetime",
];

/// Structured column types of MLflow 2.10 and later.
const STRUCTURED_TYPES: [&str; 5] = ["array", "object", "map", "any", "sparkml_vector"];

/// numpy dtype names a `tensor-spec` may use; `datetime64` and
/// `timedelta64` may also carry a unit (`datetime64[ns]`).
pub const NUMPY_DTYPES: [&str; 24] = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "float128",
    "longdouble",
    "complex64",
    "complex128",
    "complex256",
    "clongdouble",
    "str",
    "bytes",
    "object",
    "void",
    "datetime64",
    "timedelta64",
];

const TIME_UNITS: [&str; 13] = [
    "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as",
];

fn is_numpy_dtype(name: &str) -> bool {
    if NUMPY_DTYPES.contains(&name) {
        return true;
    }
    for base in ["datetime64", "timedelta64"] {
        if let Some(unit) = name
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
        {
            let unit = unit.trim_start_matches(|c: char| c.is_ascii_digit());
            return TIME_UNITS.contains(&unit);
        }
    }
    false
}

struct Problems {
    list: Vec<SignatureProblem>,
    origin: Origin,
}

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(SignatureProblem {
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn into_error(self) -> SignatureError {
        SignatureError {
            problems: self.list,
        }
    }

    /// In explicit signatures, a key outside `known` is reported.
    fn unknown_keys(&mut self, map: &serde_json::Map<String, Value>, field: &str, known: &[&str]) {
        if self.origin != Origin::Explicit {
            return;
        }
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.add(
                    &join(field, key),
                    format!(
                        "unknown field{}; expected {}",
                        suggestion(key, known),
                        one_of(known)
                    ),
                );
            }
        }
    }
}

fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

fn one_of(names: &[&str]) -> String {
    match names {
        [one] => one.to_string(),
        _ => format!("one of {}", names.join(", ")),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// ` (did you mean "x"?)` when `word` is a likely typo of one of `known`.
fn suggestion(word: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (keel_core::suggest::distance(word, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d > 0 && d <= 2 && d < k.len() => format!(" (did you mean \"{k}\"?)"),
        _ => String::new(),
    }
}

/// A list given directly or as a JSON string; `None` for null or an empty
/// string, which MLflow writes for "absent".
fn list_or_json_string<'v>(
    value: &'v Value,
    field: &str,
    what: &str,
    p: &mut Problems,
) -> Option<std::borrow::Cow<'v, [Value]>> {
    match value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => Some(std::borrow::Cow::Owned(items)),
            Ok(Value::Null) => None,
            Ok(other) => {
                p.add(
                    field,
                    format!("expected a list of {what}, found {}", json_kind(&other)),
                );
                None
            }
            Err(e) => {
                p.add(field, format!("not valid JSON: {e}"));
                None
            }
        },
        Value::Array(items) => Some(std::borrow::Cow::Borrowed(items)),
        other => {
            p.add(
                field,
                format!(
                    "expected a list of {what} (or that list as a JSON string), found {}",
                    json_kind(other)
                ),
            );
            None
        }
    }
}

fn read_schema(value: &Value, field: &str, p: &mut Problems) -> Option<Schema> {
    let items = list_or_json_string(value, field, "column or tensor specs", p)?;
    if items.is_empty() {
        p.add(field, "a schema lists at least one column or tensor");
        return None;
    }
    let before = p.list.len();
    let specs: Vec<Option<ColumnSpec>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| read_spec(item, &format!("{field}[{i}]"), p))
        .collect();
    let read: Vec<&ColumnSpec> = specs.iter().flatten().collect();

    // Names are compared as written, so a duplicate is reported even when
    // one of the two specs has problems of its own.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(name) = item.get("name").and_then(Value::as_str) {
            if let Some(first) = seen.get(name) {
                p.add(
                    &format!("{field}[{i}].name"),
                    format!("duplicate name \"{name}\" (first at {field}[{first}])"),
                );
            } else {
                seen.insert(name, i);
            }
        }
    }
    let tensors = read.iter().filter(|s| s.kind == ColumnKind::Tensor).count();
    if tensors > 0 && tensors < read.len() {
        p.add(
            field,
            "mixes column specs and tensor specs; a schema holds only one kind",
        );
    }
    let named = read.iter().filter(|s| s.name.is_some()).count();
    if named > 0 && named < read.len() {
        p.add(
            field,
            "mixes named and unnamed entries; name all of them or none",
        );
    }
    if named == 0 && tensors > 1 {
        p.add(field, "several tensors without names; name each tensor");
    }
    if named == 0 && read.iter().any(|s| !s.required) {
        p.add(
            field,
            "unnamed columns cannot be optional; name them or make them required",
        );
    }
    if p.list.len() > before {
        return None;
    }
    Some(Schema(specs.into_iter().flatten().collect()))
}

fn read_name(
    map: &serde_json::Map<String, Value>,
    field: &str,
    p: &mut Problems,
) -> Option<String> {
    match map.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            p.add(
                &join(field, "name"),
                format!("expected a string, found {}", json_kind(other)),
            );
            None
        }
    }
}

fn read_required(map: &serde_json::Map<String, Value>, field: &str, p: &mut Problems) -> bool {
    match map.get("required") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            p.add(
                &join(field, "required"),
                format!("expected true or false, found {}", json_kind(other)),
            );
            true
        }
    }
}

/// The `type` of a spec, reported when missing or not a string.
fn read_type<'v>(
    map: &'v serde_json::Map<String, Value>,
    key: &str,
    field: &str,
    p: &mut Problems,
) -> Option<&'v str> {
    match map.get(key) {
        Some(Value::String(s)) => Some(s),
        None => {
            p.add(&join(field, key), "missing");
            None
        }
        Some(other) => {
            p.add(
                &join(field, key),
                format!("expected a string, found {}", json_kind(other)),
            );
            None
        }
    }
}

fn column_types_message(found: &str) -> String {
    let mut known: Vec<&str> = DATA_TYPES.to_vec();
    known.extend(STRUCTURED_TYPES);
    known.push("tensor");
    format!(
        "unknown type \"{found}\"; expected one of {}{}",
        known.join(", "),
        suggestion(found, &known)
    )
}

fn read_spec(item: &Value, field: &str, p: &mut Problems) -> Option<ColumnSpec> {
    let Some(map) = item.as_object() else {
        p.add(
            field,
            format!(
                "expected an object with a \"type\", found {}",
                json_kind(item)
            ),
        );
        return None;
    };
    let before = p.list.len();
    let name = read_name(map, field, p);
    let dtype = read_type(map, "type", field, p);
    let spec = match dtype {
        Some("tensor") => read_tensor(map, name, field, p),
        Some(t) if DATA_TYPES.contains(&t) || STRUCTURED_TYPES.contains(&t) => {
            let required = read_required(map, field, p);
            let nested = read_structure(map, t, field, p);
            p.unknown_keys(map, field, &known_keys(&["name", "required"], t));
            nested.map(|(items, properties, values)| ColumnSpec {
                name,
                kind: ColumnKind::Column,
                dtype: t.to_string(),
                shape: None,
                required,
                items,
                properties,
                values,
            })
        }
        Some(t) => {
            p.add(&join(field, "type"), column_types_message(t));
            None
        }
        None => None,
    };
    if p.list.len() > before { None } else { spec }
}

/// The keys a spec of type `dtype` may have: `base`, `type`, and the key
/// that describes its structure.
fn known_keys<'a>(base: &[&'a str], dtype: &str) -> Vec<&'a str> {
    let mut keys = base.to_vec();
    keys.push("type");
    match dtype {
        "array" => keys.push("items"),
        "object" => keys.push("properties"),
        "map" => keys.push("values"),
        _ => {}
    }
    keys
}

type Structure = (Option<Value>, Option<Value>, Option<Value>);

/// The `items`, `properties` or `values` a structured type needs, checked
/// all the way down.
fn read_structure(
    map: &serde_json::Map<String, Value>,
    dtype: &str,
    field: &str,
    p: &mut Problems,
) -> Option<Structure> {
    let before = p.list.len();
    let key = match dtype {
        "array" => "items",
        "object" => "properties",
        "map" => "values",
        _ => return Some((None, None, None)),
    };
    let inner_field = join(field, key);
    let Some(inner) = map.get(key) else {
        p.add(
            &inner_field,
            format!("missing; a type \"{dtype}\" needs \"{key}\""),
        );
        return None;
    };
    if key == "properties" {
        read_properties(inner, &inner_field, p);
    } else {
        read_element_type(inner, &inner_field, p);
    }
    if p.list.len() > before {
        return None;
    }
    let inner = Some(inner.clone());
    Some(match key {
        "items" => (inner, None, None),
        "properties" => (None, inner, None),
        _ => (None, None, inner),
    })
}

/// An array's `items` or a map's `values`: `{"type": …}` with any structure
/// that type needs.
fn read_element_type(value: &Value, field: &str, p: &mut Problems) {
    let Some(map) = value.as_object() else {
        p.add(
            field,
            format!(
                "expected an object with a \"type\", found {}",
                json_kind(value)
            ),
        );
        return;
    };
    match read_type(map, "type", field, p) {
        Some(t) if DATA_TYPES.contains(&t) || STRUCTURED_TYPES.contains(&t) => {
            read_structure(map, t, field, p);
            p.unknown_keys(map, field, &known_keys(&[], t));
        }
        Some(t) => p.add(&join(field, "type"), element_types_message(t)),
        None => {}
    }
}

fn element_types_message(found: &str) -> String {
    let mut known: Vec<&str> = DATA_TYPES.to_vec();
    known.extend(STRUCTURED_TYPES);
    format!(
        "unknown type \"{found}\"; expected one of {}{}",
        known.join(", "),
        suggestion(found, &known)
    )
}

/// An object's `properties`: a non-empty mapping from property name to
/// `{"type": …, "required": …}`.
fn read_properties(value: &Value, field: &str, p: &mut Problems) {
    let Some(props) = value.as_object() else {
        p.add(
            field,
            format!(
                "expected an object mapping property names to types, found {}",
                json_kind(value)
            ),
        );
        return;
    };
    if props.is_empty() {
        p.add(field, "an object needs at least one property");
    }
    for (name, prop) in props {
        let prop_field = join(field, name);
        let Some(map) = prop.as_object() else {
            p.add(
                &prop_field,
                format!(
                    "expected an object with a \"type\", found {}",
                    json_kind(prop)
                ),
            );
            continue;
        };
        read_required(map, &prop_field, p);
        match read_type(map, "type", &prop_field, p) {
            Some(t) if DATA_TYPES.contains(&t) || STRUCTURED_TYPES.contains(&t) => {
                read_structure(map, t, &prop_field, p);
                p.unknown_keys(map, &prop_field, &known_keys(&["required"], t));
            }
            Some(t) => p.add(&join(&prop_field, "type"), element_types_message(t)),
            None => {}
        }
    }
}

fn read_tensor(
    map: &serde_json::Map<String, Value>,
    name: Option<String>,
    field: &str,
    p: &mut Problems,
) -> Option<ColumnSpec> {
    p.unknown_keys(map, field, &["name", "type", "tensor-spec", "required"]);
    if map.get("required") == Some(&Value::Bool(false)) {
        p.add(
            &join(field, "required"),
            "tensors are always required; remove \"required\" or set it to true",
        );
    } else {
        read_required(map, field, p);
    }
    let spec_field = join(field, "tensor-spec");
    let spec = match map.get("tensor-spec") {
        Some(Value::Object(spec)) => spec,
        None => {
            p.add(
                &spec_field,
                "missing; a tensor needs {\"dtype\": …, \"shape\": […]}",
            );
            return None;
        }
        Some(other) => {
            p.add(
                &spec_field,
                format!(
                    "expected an object with dtype and shape, found {}",
                    json_kind(other)
                ),
            );
            return None;
        }
    };
    p.unknown_keys(spec, &spec_field, &["dtype", "shape"]);
    let dtype = match read_type(spec, "dtype", &spec_field, p) {
        Some(d) if is_numpy_dtype(d) => Some(d.to_string()),
        Some(d) => {
            p.add(
                &join(&spec_field, "dtype"),
                format!(
                    "unknown dtype \"{d}\"; expected a numpy dtype name: {}{}",
                    NUMPY_DTYPES.join(", "),
                    suggestion(d, &NUMPY_DTYPES)
                ),
            );
            None
        }
        None => None,
    };
    let shape_field = join(&spec_field, "shape");
    let shape = match spec.get("shape") {
        None => {
            p.add(
                &shape_field,
                "missing; give the dimensions, -1 where they vary",
            );
            None
        }
        Some(v) => read_shape(v, &shape_field, p),
    };
    Some(ColumnSpec {
        name,
        kind: ColumnKind::Tensor,
        dtype: dtype?,
        shape: Some(shape?),
        required: true,
        items: None,
        properties: None,
        values: None,
    })
}

fn read_shape(value: &Value, field: &str, p: &mut Problems) -> Option<Vec<i64>> {
    let Some(dims) = value.as_array() else {
        p.add(
            field,
            format!("expected a list of integers, found {}", json_kind(value)),
        );
        return None;
    };
    let mut shape = Vec::with_capacity(dims.len());
    let mut ok = true;
    for (i, d) in dims.iter().enumerate() {
        match d.as_i64() {
            Some(n) if n >= -1 => shape.push(n),
            _ => {
                p.add(
                    &format!("{field}[{i}]"),
                    format!(
                        "{d} is not a dimension; expected an integer >= 0, or -1 where it varies"
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(shape)
}

fn read_params(value: &Value, field: &str, p: &mut Problems) -> Option<Vec<ParamSpec>> {
    let items = list_or_json_string(value, field, "param specs", p)?;
    if items.is_empty() {
        return None;
    }
    let before = p.list.len();
    let mut params = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        if let Some(param) = read_param(item, &item_field, p) {
            if let Some(first) = seen.get(&param.name) {
                p.add(
                    &join(&item_field, "name"),
                    format!(
                        "duplicate name \"{}\" (first at {field}[{first}])",
                        param.name
                    ),
                );
            } else {
                seen.insert(param.name.clone(), i);
            }
            params.push(param);
        }
    }
    (p.list.len() == before).then_some(params)
}

fn param_types() -> Vec<&'static str> {
    let mut known: Vec<&str> = DATA_TYPES
        .iter()
        .copied()
        .filter(|t| *t != "binary")
        .collect();
    known.push("object");
    known
}

fn read_param(item: &Value, field: &str, p: &mut Problems) -> Option<ParamSpec> {
    let Some(map) = item.as_object() else {
        p.add(
            field,
            format!(
                "expected an object with name, type and default, found {}",
                json_kind(item)
            ),
        );
        return None;
    };
    let before = p.list.len();
    let name = match map.get("name") {
        Some(Value::String(s)) => Some(s.clone()),
        None => {
            p.add(&join(field, "name"), "missing");
            None
        }
        Some(other) => {
            p.add(
                &join(field, "name"),
                format!("expected a string, found {}", json_kind(other)),
            );
            None
        }
    };
    // Older MLflow versions wrote `dtype` rather than `type`.
    let type_key = if map.contains_key("type") || !map.contains_key("dtype") {
        "type"
    } else {
        "dtype"
    };
    let known = param_types();
    let dtype = match read_type(map, type_key, field, p) {
        Some("binary") => {
            p.add(
                &join(field, type_key),
                "binary parameters are not supported; use string",
            );
            None
        }
        Some(t) if known.contains(&t) => Some(t),
        Some(t) => {
            p.add(
                &join(field, type_key),
                format!(
                    "unknown type \"{t}\"; expected one of {}{}",
                    known.join(", "),
                    suggestion(t, &known)
                ),
            );
            None
        }
        None => None,
    };
    let mut allowed = vec!["name", "type", "dtype", "default", "shape"];
    let properties = if dtype == Some("object") {
        allowed.push("properties");
        match map.get("properties") {
            Some(props) => {
                read_properties(props, &join(field, "properties"), p);
                Some(props.clone())
            }
            None => {
                p.add(
                    &join(field, "properties"),
                    "missing; a type \"object\" needs \"properties\"",
                );
                None
            }
        }
    } else {
        None
    };
    p.unknown_keys(map, field, &allowed);

    let shape_field = join(field, "shape");
    let shape = match map.get("shape") {
        None | Some(Value::Null) => None,
        Some(v) => match read_shape(v, &shape_field, p) {
            Some(s) if s == [-1] => Some(s),
            Some(s) => {
                p.add(
                    &shape_field,
                    format!(
                        "{s:?} is not a parameter shape; use null for a single value or [-1] for a list"
                    ),
                );
                None
            }
            None => None,
        },
    };
    let default_field = join(field, "default");
    let default = match map.get("default") {
        None => {
            p.add(&default_field, "missing; give a default value, or null");
            Value::Null
        }
        Some(v) => v.clone(),
    };
    if let Some(t) = dtype {
        check_default(&default, t, shape.is_some(), &default_field, p);
    }
    if p.list.len() > before {
        return None;
    }
    Some(ParamSpec {
        name: name?,
        dtype: dtype?.to_string(),
        default,
        shape,
        properties,
    })
}

/// Whether `default` fits the parameter's type, with the widenings MLflow
/// allows (an integer where a float is expected).
fn check_default(default: &Value, dtype: &str, list: bool, field: &str, p: &mut Problems) {
    if default.is_null() {
        return;
    }
    if list {
        match default.as_array() {
            Some(values) => {
                for (i, v) in values.iter().enumerate() {
                    check_default_value(v, dtype, &format!("{field}[{i}]"), p);
                }
            }
            None => p.add(
                field,
                format!(
                    "expected a list, since shape is [-1]; found {}",
                    json_kind(default)
                ),
            ),
        }
    } else {
        check_default_value(default, dtype, field, p);
    }
}

fn check_default_value(v: &Value, dtype: &str, field: &str, p: &mut Problems) {
    let fits = match dtype {
        "boolean" => v.is_boolean(),
        "integer" | "long" => v.is_i64() || v.is_u64(),
        "float" | "double" => v.is_number(),
        "string" | "datetime" => v.is_string(),
        "object" => v.is_object(),
        _ => true,
    };
    if !fits {
        p.add(field, format!("{v} is not a valid {dtype}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn explicit(v: Value) -> Result<Signature, String> {
        validate_signature(&v.to_string()).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_columns_tensors_and_params() {
        let sig = explicit(json!({
            "inputs": "[{\"type\": \"double\", \"name\": \"a\", \"required\": true}, {\"type\": \"string\", \"name\": \"b\", \"required\": false}]",
            "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}],
            "params": "[{\"name\": \"alpha\", \"default\": 0.5, \"shape\": null, \"type\": \"double\"}, {\"name\": \"labels\", \"default\": [\"a\"], \"shape\": [-1], \"type\": \"string\"}]"
        }))
        .unwrap();
        assert_eq!(sig.source, SignatureSource::Explicit);
        let inputs = sig.inputs.unwrap().0;
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1].name.as_deref(), Some("b"));
        assert_eq!(inputs[1].dtype, "string");
        assert!(!inputs[1].required);
        let out = &sig.outputs.unwrap().0[0];
        assert_eq!(
            (out.kind, out.dtype.as_str(), out.shape.as_deref()),
            (ColumnKind::Tensor, "int64", Some(&[-1][..]))
        );
        let params = sig.params.unwrap();
        assert_eq!(params[1].shape, Some(vec![-1]));
        assert_eq!(params[1].default, json!(["a"]));
    }

    #[test]
    fn serializes_to_plain_json() {
        let sig = explicit(json!({
            "inputs": [{"name": "x", "type": "double"}],
            "outputs": [{"name": "y", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}],
            "params": [{"name": "k", "type": "long", "default": 3}]
        }))
        .unwrap();
        let text = serde_json::to_value(&sig).unwrap();
        assert_eq!(
            text,
            json!({
                "inputs": [{"name": "x", "kind": "column", "type": "double", "required": true}],
                "outputs": [{"name": "y", "kind": "tensor", "type": "float32", "shape": [-1, 2], "required": true}],
                "params": [{"name": "k", "type": "long", "default": 3}],
                "source": "explicit"
            })
        );
        let back: Signature = serde_json::from_value(text).unwrap();
        assert_eq!(back, sig);
        // The short form, with `kind` and `required` left to their defaults.
        let short: Signature = serde_json::from_value(json!({
            "inputs": [{"name": "x", "type": "double"}],
            "source": "mlmodel"
        }))
        .unwrap();
        assert_eq!(short.inputs.unwrap().0[0].kind, ColumnKind::Column);
    }

    #[test]
    fn names_the_offending_field_with_a_suggestion() {
        let err = explicit(json!({
            "inputs": [
                {"name": "a", "type": "double"},
                {"name": "b", "type": "long"},
                {"name": "c", "type": "doubel"}
            ]
        }))
        .unwrap_err();
        assert_eq!(
            err,
            "inputs[2].type: unknown type \"doubel\"; expected one of boolean, integer, long, \
             float, double, string, binary, datetime, array, object, map, any, sparkml_vector, \
             tensor (did you mean \"double\"?)"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = validate_signature(
            &json!({
                "inputs": [
                    {"name": "a", "type": "double"},
                    {"name": "a", "type": "long", "requird": true},
                    {"name": "t", "type": "tensor", "tensor-spec": {"dtype": "flaot32", "shape": [-1, -2, 1.5]}}
                ],
                "outputs": "[not json",
                "params": [{"name": "p", "type": "binary", "default": null},
                           {"name": "q", "type": "long", "default": 0.5},
                           {"name": "r", "type": "string", "default": "x", "shape": [2]}],
                "extra": 1
            })
            .to_string(),
        )
        .unwrap_err();
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "extra",
                "inputs[1].requird",
                "inputs[2].tensor-spec.dtype",
                "inputs[2].tensor-spec.shape[1]",
                "inputs[2].tensor-spec.shape[2]",
                "inputs[1].name",
                "outputs",
                "params[0].type",
                "params[1].default",
                "params[2].shape",
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("unknown field (did you mean \"required\"?)"),
            "{text}"
        );
        assert!(text.contains("(did you mean \"float32\"?)"), "{text}");
        assert!(
            text.contains("duplicate name \"a\" (first at inputs[0])"),
            "{text}"
        );
        assert!(text.contains("0.5 is not a valid long"), "{text}");
    }

    #[test]
    fn enforces_mlflow_schema_rules() {
        let cases = [
            (json!({"inputs": []}), "inputs: a schema lists at least one"),
            (
                json!({"inputs": [{"name": "a", "type": "double"}, {"type": "long"}]}),
                "mixes named and unnamed",
            ),
            (
                json!({"inputs": [{"name": "a", "type": "double"},
                                  {"name": "b", "type": "tensor", "tensor-spec": {"dtype": "int8", "shape": [1]}}]}),
                "mixes column specs and tensor specs",
            ),
            (
                json!({"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "int8", "shape": [1]}},
                                  {"type": "tensor", "tensor-spec": {"dtype": "int8", "shape": [1]}}]}),
                "several tensors without names",
            ),
            (
                json!({"inputs": [{"type": "double", "required": false}]}),
                "unnamed columns cannot be optional",
            ),
            (
                json!({"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "int8"}}]}),
                "inputs[0].tensor-spec.shape: missing",
            ),
            (
                json!({"inputs": [{"name": "t", "type": "tensor", "required": false,
                                   "tensor-spec": {"dtype": "int8", "shape": [1]}}]}),
                "tensors are always required",
            ),
            (
                json!({"inputs": [{"type": "array"}]}),
                "inputs[0].items: missing",
            ),
            (
                json!({"inputs": [{"type": "object", "properties": {}}]}),
                "an object needs at least one property",
            ),
            (
                json!({"inputs": [{"type": "map", "values": {"type": "tensor"}}]}),
                "inputs[0].values.type: unknown type \"tensor\"",
            ),
            (json!({"inputs": null}), "needs at least one of inputs"),
            (json!([1]), "expected an object with inputs"),
            (
                json!({"params": [{"name": "k", "type": "long"}]}),
                "params[0].default: missing",
            ),
            (
                json!({"params": [{"name": "k", "type": "long", "default": [1], "shape": [-1]},
                                  {"name": "k", "type": "long", "default": 1}]}),
                "params[1].name: duplicate name \"k\"",
            ),
            (
                json!({"params": [{"name": "k", "type": "long", "default": 1, "shape": [-1]}]}),
                "expected a list, since shape is [-1]",
            ),
        ];
        for (input, expected) in cases {
            let err = explicit(input.clone()).unwrap_err();
            assert!(err.contains(expected), "{input}: {err}");
        }
        assert!(
            validate_signature("{")
                .unwrap_err()
                .to_string()
                .starts_with("not valid JSON")
        );
    }

    #[test]
    fn reads_structured_columns_and_object_params() {
        let sig = explicit(json!({
            "inputs": [
                {"name": "messages", "type": "array", "items": {"type": "object", "properties": {
                    "role": {"type": "string", "required": true},
                    "content": {"type": "string", "required": false}}}, "required": true},
                {"name": "meta", "type": "map", "values": {"type": "array", "items": {"type": "long"}}},
                {"name": "anything", "type": "any", "required": false}
            ],
            "params": [{"name": "config", "type": "object", "default": {"k": 1},
                        "properties": {"k": {"type": "long"}}}]
        }))
        .unwrap();
        let inputs = sig.inputs.unwrap().0;
        assert_eq!(inputs[0].dtype, "array");
        assert_eq!(inputs[0].items.as_ref().unwrap()["type"], "object");
        assert_eq!(inputs[1].values.as_ref().unwrap()["items"]["type"], "long");
        assert!(!inputs[2].required);
        assert!(sig.params.unwrap()[0].properties.is_some());

        let err = explicit(json!({"inputs": [{"name": "m", "type": "array",
            "items": {"type": "object", "properties": {"role": {"type": "strng"}}}}]}))
        .unwrap_err();
        assert!(
            err.starts_with("inputs[0].items.properties.role.type: unknown type \"strng\""),
            "{err}"
        );
    }

    #[test]
    fn mlmodel_origin_ignores_unknown_keys() {
        let v = json!({"inputs": [{"name": "a", "type": "double", "future": 1}], "later": 2});
        let sig = read_signature(&v, Origin::MlModel, SignatureSource::MLmodel)
            .unwrap()
            .unwrap();
        assert_eq!(sig.inputs.unwrap().0[0].name.as_deref(), Some("a"));
        let none = read_signature(
            &json!({"inputs": null, "outputs": "", "params": "[]"}),
            Origin::MlModel,
            SignatureSource::MLmodel,
        )
        .unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn numpy_dtypes_with_units() {
        for ok in [
            "float32",
            "datetime64[ns]",
            "timedelta64[10s]",
            "str",
            "object",
        ] {
            assert!(is_numpy_dtype(ok), "{ok}");
        }
        for bad in ["float", "datetime64[]", "datetime64[x]", "str32", "Float32"] {
            assert!(!is_numpy_dtype(bad), "{bad}");
        }
    }

    #[test]
    fn within_prefixes_fields() {
        let err = validate_signature(r#"{"inputs": [{"type": 1}]}"#)
            .unwrap_err()
            .within("signature");
        assert_eq!(
            err.to_string(),
            "signature.inputs[0].type: expected a string, found a number"
        );
    }
}
