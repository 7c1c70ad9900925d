//! ONNX export, written with a small protobuf wire encoder (varints and
//! length-delimited fields; only the fields of `ModelProto`, `GraphProto`,
//! `NodeProto`, `AttributeProto`, `ValueInfoProto` and `TypeProto` that the
//! export uses).
//!
//! The graphs are shaped like skl2onnx's exports with `zipmap=False`, so
//! Keel serves and inspects them as it does scikit-learn models:
//! * one input `float [N, n_features]` named by the caller;
//! * classifiers: outputs `label` (`int64 [N]`, class 0 or 1) and
//!   `probabilities` (`float [N, 2]`, classes 0 and 1);
//! * regressors: output `variable` (`float [N, 1]`);
//! * `ir_version` 8, opsets `""` 17 and `ai.onnx.ml` 3; one `ai.onnx.ml`
//!   node: `LinearClassifier` (two coefficient rows `[−w, w]`, intercepts
//!   `[−b, b]`, `post_transform` LOGISTIC — exactly skl2onnx's binary
//!   `LogisticRegression`, giving `[σ(−s), σ(s)]`), `LinearRegressor`,
//!   `TreeEnsembleClassifier` (one score column, class id 0,
//!   `base_values` = the base log-odds, LOGISTIC) or
//!   `TreeEnsembleRegressor` (`base_values` = the base score, SUM);
//!   splits are `BRANCH_LEQ` on `f32` thresholds and missing values follow
//!   `nodes_missing_value_tracks_true` (the true branch is the left child).
//! * `metadata_props`: `keel.features` (JSON list of the feature names),
//!   `keel.trainer` (see [`Model::trainer_name`]), `keel.input`.
//!
//! Numbers are `f32` in ONNX: coefficients are rounded, tree thresholds and
//! leaf values already are (see [`crate::gbdt::bins`]).
//!
//! onnxruntime decides a binary tree classifier's label by `score > 0.5`
//! instead of `score > 0` when no leaf weight is negative (it then takes
//! the weights for probabilities). Such an ensemble — rare: one tree whose
//! leaves all push up — gets one extra single-leaf tree of weight
//! `−f32::MIN_POSITIVE`, which changes no score but keeps labels right.

use crate::gbdt::{GbdtModel, Objective};
use crate::linear::LinearModel;
use crate::model::Model;

const IR_VERSION: i64 = 8;
const OPSET: i64 = 17;
const ML_OPSET: i64 = 3;
const ML_DOMAIN: &str = "ai.onnx.ml";
const FLOAT: i64 = 1;
const INT64: i64 = 7;

// ------------------------------------------------------ protobuf encoding

/// A protobuf message being written.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// An `int64`/`int32`/enum field (negative values as ten-byte two's
    /// complement, as protobuf does).
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn message(&mut self, field: u32, build: impl FnOnce(&mut Pb)) {
        let mut inner = Pb::default();
        build(&mut inner);
        self.bytes(field, &inner.0);
    }

    /// A packed repeated `float` field.
    fn floats(&mut self, field: u32, values: &[f32]) {
        let mut inner = Pb::default();
        for v in values {
            inner.0.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes(field, &inner.0);
    }

    /// A packed repeated `int64` field.
    fn ints(&mut self, field: u32, values: &[i64]) {
        let mut inner = Pb::default();
        for &v in values {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.0);
    }
}

/// An attribute value (`AttributeProto.type`: FLOAT 1, INT 2, STRING 3,
/// FLOATS 6, INTS 7, STRINGS 8).
enum Attr {
    Int(i64),
    Str(String),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strs(Vec<String>),
}

fn attribute(pb: &mut Pb, name: &str, value: &Attr) {
    pb.message(5, |a| {
        a.string(1, name);
        match value {
            Attr::Int(v) => {
                a.int(3, *v);
                a.int(20, 2);
            }
            Attr::Str(s) => {
                a.string(4, s);
                a.int(20, 3);
            }
            Attr::Floats(v) => {
                a.floats(7, v);
                a.int(20, 6);
            }
            Attr::Ints(v) => {
                a.ints(8, v);
                a.int(20, 7);
            }
            Attr::Strs(v) => {
                for s in v {
                    a.string(9, s);
                }
                a.int(20, 8);
            }
        }
    });
}

/// A `ValueInfoProto` of a tensor; `None` dimensions are left free.
fn value_info(pb: &mut Pb, field: u32, name: &str, elem_type: i64, dims: &[Option<i64>]) {
    pb.message(field, |v| {
        v.string(1, name);
        v.message(2, |t| {
            t.message(1, |tensor| {
                tensor.int(1, elem_type);
                tensor.message(2, |shape| {
                    for d in dims {
                        shape.message(1, |dim| {
                            if let Some(d) = d {
                                dim.int(1, *d);
                            }
                        });
                    }
                });
            });
        });
    });
}

// ------------------------------------------------------------------ export

struct Node {
    op_type: &'static str,
    outputs: Vec<&'static str>,
    attributes: Vec<(&'static str, Attr)>,
}

pub(crate) fn export(model: &Model, input_name: &str) -> Vec<u8> {
    let n_features = model.n_features() as i64;
    let node = match model {
        Model::Logistic(m) => linear_classifier(m),
        Model::Linear(m) => linear_regressor(m),
        Model::Gbdt(m) => tree_ensemble(m),
    };
    let features = serde_json::Value::from(model.feature_names().to_vec()).to_string();
    let metadata = [
        ("keel.features", features.as_str()),
        ("keel.trainer", model.trainer_name()),
        ("keel.input", input_name),
    ];
    let mut pb = Pb::default();
    pb.int(1, IR_VERSION);
    pb.string(2, "keel-learn");
    pb.string(3, env!("CARGO_PKG_VERSION"));
    pb.string(4, "ai.keel");
    pb.int(5, 0);
    pb.message(7, |g| {
        g.message(1, |n| {
            n.string(1, input_name);
            for o in &node.outputs {
                n.string(2, o);
            }
            n.string(3, node.op_type);
            n.string(4, node.op_type);
            for (name, value) in &node.attributes {
                attribute(n, name, value);
            }
            n.string(7, ML_DOMAIN);
        });
        g.string(2, "keel_learn");
        value_info(g, 11, input_name, FLOAT, &[None, Some(n_features)]);
        if model.is_classifier() {
            value_info(g, 12, "label", INT64, &[None]);
            value_info(g, 12, "probabilities", FLOAT, &[None, Some(2)]);
        } else {
            value_info(g, 12, "variable", FLOAT, &[None, Some(1)]);
        }
    });
    for (domain, version) in [("", OPSET), (ML_DOMAIN, ML_OPSET)] {
        pb.message(8, |o| {
            o.string(1, domain);
            o.int(2, version);
        });
    }
    for (key, value) in metadata {
        pb.message(14, |e| {
            e.string(1, key);
            e.string(2, value);
        });
    }
    pb.0
}

fn linear_classifier(m: &LinearModel) -> Node {
    let w: Vec<f32> = m.coefficients.iter().map(|&c| c as f32).collect();
    let b = m.intercept as f32;
    let mut coefficients: Vec<f32> = w.iter().map(|&c| -c).collect();
    coefficients.extend_from_slice(&w);
    Node {
        op_type: "LinearClassifier",
        outputs: vec!["label", "probabilities"],
        attributes: vec![
            ("classlabels_ints", Attr::Ints(vec![0, 1])),
            ("coefficients", Attr::Floats(coefficients)),
            ("intercepts", Attr::Floats(vec![-b, b])),
            ("multi_class", Attr::Int(0)),
            ("post_transform", Attr::Str("LOGISTIC".into())),
        ],
    }
}

fn linear_regressor(m: &LinearModel) -> Node {
    Node {
        op_type: "LinearRegressor",
        outputs: vec!["variable"],
        attributes: vec![
            (
                "coefficients",
                Attr::Floats(m.coefficients.iter().map(|&c| c as f32).collect()),
            ),
            ("intercepts", Attr::Floats(vec![m.intercept as f32])),
            ("targets", Attr::Int(1)),
        ],
    }
}

fn tree_ensemble(m: &GbdtModel) -> Node {
    let mut tree_ids = Vec::new();
    let mut node_ids = Vec::new();
    let mut feature_ids = Vec::new();
    let mut modes = Vec::new();
    let mut values = Vec::new();
    let mut true_ids = Vec::new();
    let mut false_ids = Vec::new();
    let mut missing_true = Vec::new();
    // Leaf weights: tree id, node id, weight.
    let mut out_tree: Vec<i64> = Vec::new();
    let mut out_node: Vec<i64> = Vec::new();
    let mut out_weight: Vec<f32> = Vec::new();
    for (t, tree) in m.trees.iter().enumerate() {
        let t = t as i64;
        for i in 0..tree.len() {
            tree_ids.push(t);
            node_ids.push(i as i64);
            if tree.is_leaf(i) {
                feature_ids.push(0);
                modes.push("LEAF".to_string());
                values.push(0.0);
                true_ids.push(0);
                false_ids.push(0);
                missing_true.push(0);
                out_tree.push(t);
                out_node.push(i as i64);
                out_weight.push(tree.value[i]);
            } else {
                feature_ids.push(i64::from(tree.feature[i]));
                modes.push("BRANCH_LEQ".to_string());
                values.push(tree.threshold[i]);
                true_ids.push(i64::from(tree.left[i]));
                false_ids.push(i64::from(tree.right[i]));
                missing_true.push(i64::from(tree.default_left[i]));
            }
        }
    }
    let classifier = m.objective == Objective::Binary;
    if classifier && out_weight.iter().all(|&w| w >= 0.0) {
        // See the module docs: keeps onnxruntime's labels on `score > 0`.
        let t = m.trees.len() as i64;
        tree_ids.push(t);
        node_ids.push(0);
        feature_ids.push(0);
        modes.push("LEAF".to_string());
        values.push(0.0);
        true_ids.push(0);
        false_ids.push(0);
        missing_true.push(0);
        out_tree.push(t);
        out_node.push(0);
        out_weight.push(-f32::MIN_POSITIVE);
    }
    let prefix = if classifier { "class" } else { "target" };
    let n_out = out_weight.len();
    let mut attributes = vec![
        ("nodes_treeids", Attr::Ints(tree_ids)),
        ("nodes_nodeids", Attr::Ints(node_ids)),
        ("nodes_featureids", Attr::Ints(feature_ids)),
        ("nodes_modes", Attr::Strs(modes)),
        ("nodes_values", Attr::Floats(values)),
        ("nodes_truenodeids", Attr::Ints(true_ids)),
        ("nodes_falsenodeids", Attr::Ints(false_ids)),
        ("nodes_missing_value_tracks_true", Attr::Ints(missing_true)),
        ("base_values", Attr::Floats(vec![m.base_score])),
    ];
    let named = |suffix: &str| -> &'static str {
        match (prefix, suffix) {
            ("class", "treeids") => "class_treeids",
            ("class", "nodeids") => "class_nodeids",
            ("class", "ids") => "class_ids",
            ("class", _) => "class_weights",
            (_, "treeids") => "target_treeids",
            (_, "nodeids") => "target_nodeids",
            (_, "ids") => "target_ids",
            _ => "target_weights",
        }
    };
    attributes.push((named("treeids"), Attr::Ints(out_tree)));
    attributes.push((named("nodeids"), Attr::Ints(out_node)));
    attributes.push((named("ids"), Attr::Ints(vec![0; n_out])));
    attributes.push((named("weights"), Attr::Floats(out_weight)));
    if classifier {
        attributes.push(("classlabels_int64s", Attr::Ints(vec![0, 1])));
        attributes.push(("post_transform", Attr::Str("LOGISTIC".into())));
        Node {
            op_type: "TreeEnsembleClassifier",
            outputs: vec!["label", "probabilities"],
            attributes,
        }
    } else {
        attributes.push(("n_targets", Attr::Int(1)));
        attributes.push(("aggregate_function", Attr::Str("SUM".into())));
        attributes.push(("post_transform", Attr::Str("NONE".into())));
        Node {
            op_type: "TreeEnsembleRegressor",
            outputs: vec!["variable"],
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields() {
        let mut pb = Pb::default();
        pb.varint(300);
        assert_eq!(pb.0, [0xac, 0x02]);
        let mut pb = Pb::default();
        pb.int(1, -1);
        assert_eq!(pb.0.len(), 11, "negative int64 is ten bytes plus the key");
        let mut pb = Pb::default();
        pb.string(2, "hi");
        assert_eq!(pb.0, [0x12, 2, b'h', b'i']);
        let mut pb = Pb::default();
        pb.floats(7, &[1.0]);
        assert_eq!(pb.0, [0x3a, 4, 0, 0, 0x80, 0x3f]);
        let mut pb = Pb::default();
        pb.ints(8, &[1, 150]);
        assert_eq!(pb.0, [0x42, 3, 1, 0x96, 0x01]);
    }
}
