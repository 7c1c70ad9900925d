//! Small ONNX models built in code, so tests need no binary fixtures.

use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Value as TypeValue};
use tract_onnx::pb::*;

pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;
pub const STRING: i32 = 8;

/// A tensor input or output; a dimension of 0 is the free batch size `N`.
pub fn value(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(if *d == 0 {
                dimension::Value::DimParam("N".into())
            } else {
                dimension::Value::DimValue(*d)
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn floats(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

pub enum Attr<'a> {
    Int(i64),
    Str(&'a str),
    Floats(&'a [f32]),
    Ints(&'a [i64]),
    Strs(&'a [&'a str]),
}

pub fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[(&str, Attr)],
) -> NodeProto {
    let attribute = attrs
        .iter()
        .map(|(name, a)| {
            let mut p = AttributeProto {
                name: name.to_string(),
                ..Default::default()
            };
            match a {
                Attr::Int(i) => {
                    p.r#type = AttributeType::Int as i32;
                    p.i = *i;
                }
                Attr::Str(s) => {
                    p.r#type = AttributeType::String as i32;
                    p.s = s.as_bytes().to_vec();
                }
                Attr::Floats(f) => {
                    p.r#type = AttributeType::Floats as i32;
                    p.floats = f.to_vec();
                }
                Attr::Ints(i) => {
                    p.r#type = AttributeType::Ints as i32;
                    p.ints = i.to_vec();
                }
                Attr::Strs(s) => {
                    p.r#type = AttributeType::Strings as i32;
                    p.strings = s.iter().map(|x| x.as_bytes().to_vec()).collect();
                }
            }
            p
        })
        .collect();
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().unwrap_or(&"")),
        op_type: op.into(),
        domain: domain.into(),
        attribute,
        ..Default::default()
    }
}

pub fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializer: Vec<TensorProto>,
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(GraphProto {
            node: nodes,
            name: "test".into(),
            initializer,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `Y = X · W + b` for `X: [N, 3]`, `W: [3, 2]`.
pub fn linear(w: &[f32; 6], b: &[f32; 2]) -> Vec<u8> {
    model(
        vec![
            node("MatMul", "", &["X", "W"], &["XW"], &[]),
            node("Add", "", &["XW", "B"], &["Y"], &[]),
        ],
        vec![value("X", FLOAT, &[0, 3])],
        vec![value("Y", FLOAT, &[0, 2])],
        vec![floats("W", &[3, 2], w), floats("B", &[2], b)],
    )
}

/// Two stumps on feature 0 (`x <= 0.5`, NaN goes left) and feature 1
/// (`x < 2`), scoring the positive class of a binary classifier.
pub fn stumps(post_transform: &str) -> Vec<u8> {
    model(
        vec![node(
            "TreeEnsembleClassifier",
            "ai.onnx.ml",
            &["X"],
            &["label", "probabilities"],
            &[
                ("classlabels_int64s", Attr::Ints(&[0, 1])),
                ("nodes_treeids", Attr::Ints(&[0, 0, 0, 1, 1, 1])),
                ("nodes_nodeids", Attr::Ints(&[0, 1, 2, 0, 1, 2])),
                ("nodes_featureids", Attr::Ints(&[0, 0, 0, 1, 0, 0])),
                (
                    "nodes_values",
                    Attr::Floats(&[0.5, 0.0, 0.0, 2.0, 0.0, 0.0]),
                ),
                (
                    "nodes_modes",
                    Attr::Strs(&["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"]),
                ),
                ("nodes_truenodeids", Attr::Ints(&[1, 0, 0, 1, 0, 0])),
                ("nodes_falsenodeids", Attr::Ints(&[2, 0, 0, 2, 0, 0])),
                (
                    "nodes_missing_value_tracks_true",
                    Attr::Ints(&[1, 0, 0, 0, 0, 0]),
                ),
                ("class_treeids", Attr::Ints(&[0, 0, 1, 1])),
                ("class_nodeids", Attr::Ints(&[1, 2, 1, 2])),
                ("class_ids", Attr::Ints(&[0, 0, 0, 0])),
                ("class_weights", Attr::Floats(&[0.1, 0.3, 0.2, 0.4])),
                ("post_transform", Attr::Str(post_transform)),
            ],
        )],
        vec![value("X", FLOAT, &[0, 2])],
        vec![
            value("label", INT64, &[0]),
            value("probabilities", FLOAT, &[0, 2]),
        ],
        vec![],
    )
}

/// `Scaler` then `OneHotEncoder` of a string column, concatenated.
pub fn preprocess() -> Vec<u8> {
    model(
        vec![
            node(
                "Scaler",
                "ai.onnx.ml",
                &["num"],
                &["scaled"],
                &[
                    ("offset", Attr::Floats(&[1.0, 10.0])),
                    ("scale", Attr::Floats(&[2.0, 0.5])),
                ],
            ),
            node(
                "OneHotEncoder",
                "ai.onnx.ml",
                &["cat"],
                &["hot3"],
                &[
                    ("cats_strings", Attr::Strs(&["EU", "US"])),
                    ("zeros", Attr::Int(1)),
                ],
            ),
            node(
                "Flatten",
                "",
                &["hot3"],
                &["hot"],
                &[("axis", Attr::Int(1))],
            ),
            node(
                "Concat",
                "",
                &["scaled", "hot"],
                &["Y"],
                &[("axis", Attr::Int(1))],
            ),
        ],
        vec![value("num", FLOAT, &[0, 2]), value("cat", STRING, &[0, 1])],
        vec![value("Y", FLOAT, &[0, 4])],
        vec![],
    )
}
