//! Every model family exported to ONNX, compiled and run by keel-serve (the
//! serving path): outputs equal `Model::predict` on the same (f32) inputs.
//!
//! With `KEEL_LEARN_ONNX_DIR` set, each export is also written there with
//! its inputs and expected outputs (`NAME.onnx`, `NAME.json`), to check in
//! another runtime (onnxruntime) by hand.

use keel_learn::{GbdtParams, LogisticParams, Model, Objective, Params, RidgeParams, fit};
use keel_serve::plan::{CompileOptions, Plan};
use keel_serve::tensor::{Data, Datatype, NamedTensor};

use crate::{binary_data, regression_data};

/// Runs the export through keel-serve; returns (labels, scores) where
/// scores are the probabilities of class 1 or the regression values.
fn serve(model: &Model, rows: &[f64]) -> (Option<Vec<i64>>, Vec<f64>) {
    let bytes = model.to_onnx("input");
    let plan = Plan::compile(&bytes, &CompileOptions::default()).unwrap();
    let d = model.n_features();
    let sig = &plan.signature;
    assert_eq!(sig.inputs.len(), 1);
    assert_eq!(sig.inputs[0].name, "input");
    assert_eq!(sig.inputs[0].datatype, Datatype::Fp32);
    assert_eq!(sig.inputs[0].shape, vec![-1, d as i64]);
    assert!(sig.batched);
    let n = rows.len() / d;
    let input = NamedTensor::new(
        "input",
        vec![n, d],
        Data::Fp32(rows.iter().map(|&v| v as f32).collect()),
    );
    let out = plan.run(&[input]).unwrap();
    if model.is_classifier() {
        let names: Vec<&str> = sig.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["label", "probabilities"]);
        assert_eq!(sig.outputs[0].datatype, Datatype::Int64);
        assert_eq!(sig.outputs[0].shape, vec![-1]);
        assert_eq!(sig.outputs[1].shape, vec![-1, 2]);
        let Data::Int64(labels) = &out[0].data else {
            panic!("{:?}", out[0])
        };
        let Data::Fp32(p) = &out[1].data else {
            panic!("{:?}", out[1])
        };
        for row in p.chunks(2) {
            assert!((row[0] + row[1] - 1.0).abs() < 1e-6, "{row:?}");
        }
        (
            Some(labels.clone()),
            p.chunks(2).map(|r| f64::from(r[1])).collect(),
        )
    } else {
        assert_eq!(sig.outputs.len(), 1);
        assert_eq!(sig.outputs[0].name, "variable");
        assert_eq!(sig.outputs[0].shape, vec![-1, 1]);
        let Data::Fp32(v) = &out[0].data else {
            panic!("{:?}", out[0])
        };
        (None, v.iter().map(|&x| f64::from(x)).collect())
    }
}

fn check(name: &str, model: &Model, rows: &[f64], tolerance: f64) {
    // The ONNX graph sees f32 inputs; predict on exactly those values.
    let rows32: Vec<f64> = rows.iter().map(|&v| f64::from(v as f32)).collect();
    let want = model.predict(&rows32).unwrap();
    let (labels, got) = serve(model, &rows32);
    let mut worst: f64 = 0.0;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let scale = if model.is_classifier() {
            1.0
        } else {
            w.abs().max(1.0)
        };
        let e = (g - w).abs() / scale;
        worst = worst.max(e);
        assert!(e <= tolerance, "{name}: row {i}: served {g}, predicted {w}");
    }
    if let Some(labels) = labels {
        for (i, (&l, &p)) in labels.iter().zip(&got).enumerate() {
            assert_eq!(
                l,
                i64::from(p > 0.5),
                "{name}: row {i}: label {l} for p {p}"
            );
        }
    }
    println!("{name}: {} rows, worst difference {worst:.2e}", want.len());
    if let Ok(dir) = std::env::var("KEEL_LEARN_ONNX_DIR") {
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.onnx")), model.to_onnx("input")).unwrap();
        let fixture = serde_json::json!({
            "rows": want.len(),
            "cols": model.n_features(),
            "input": rows32.iter().map(|v| if v.is_nan() { None } else { Some(*v) }).collect::<Vec<_>>(),
            "expected": want,
            "classifier": model.is_classifier(),
        });
        std::fs::write(dir.join(format!("{name}.json")), fixture.to_string()).unwrap();
    }
}

#[test]
fn logistic_export_runs_in_keel_serve() {
    let data = binary_data(600, 5, 1, 0.0);
    let model = fit(Params::Logistic(LogisticParams::default()), &data, None).unwrap();
    check("logistic", &model, data.features(), 1e-5);
}

#[test]
fn linear_export_runs_in_keel_serve() {
    let data = regression_data(500, 4, 2, 0.0);
    let model = fit(Params::Linear(RidgeParams::default()), &data, None).unwrap();
    check("linear", &model, data.features(), 1e-5);
}

#[test]
fn gbdt_binary_export_runs_in_keel_serve_with_missing_values() {
    let data = binary_data(3000, 6, 3, 0.15);
    let params = GbdtParams {
        n_estimators: 60,
        max_depth: 5,
        subsample: 0.8,
        colsample: 0.8,
        ..GbdtParams::default()
    };
    let model = fit(Params::Gbdt(params), &data, None).unwrap();
    let Model::Gbdt(m) = &model else { panic!() };
    assert!(
        m.trees.iter().any(|t| t.default_left.iter().any(|&d| d)),
        "some split should send missing values left"
    );
    check("gbdt_binary", &model, data.features(), 1e-5);
}

#[test]
fn gbdt_regression_export_runs_in_keel_serve() {
    let data = regression_data(2000, 4, 4, 0.1);
    let params = GbdtParams {
        objective: Objective::Regression,
        n_estimators: 40,
        num_leaves: Some(12),
        ..GbdtParams::default()
    };
    let model = fit(Params::Gbdt(params), &data, None).unwrap();
    check("gbdt_regression", &model, data.features(), 1e-5);
}

#[test]
fn gbdt_export_with_only_positive_leaves_keeps_labels() {
    // One stump whose leaves both push the score up from a negative base:
    // onnxruntime would label by `score > 0.5`; the export guards it.
    let json = r#"{"kind":"gbdt","objective":"binary","feature_names":["a"],
        "base_score":-0.3,"trees":[{"feature":[0,0,0],"threshold":[0.0,0.0,0.0],
        "default_left":[true,false,false],"left":[1,0,0],"right":[2,0,0],"value":[0.0,0.1,0.6]}]}"#;
    let model = Model::from_json(json).unwrap();
    check(
        "gbdt_positive_leaves",
        &model,
        &[-1.0, 1.0, f64::NAN, 0.0],
        1e-6,
    );
}

#[test]
fn export_records_feature_names_and_trainer() {
    let data = binary_data(200, 3, 5, 0.0);
    let model = fit(Params::Logistic(LogisticParams::default()), &data, None).unwrap();
    let bytes = model.to_onnx("x");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("keel.features"), "metadata key");
    assert!(
        text.contains(r#"["f0","f1","f2"]"#),
        "feature names as JSON"
    );
    assert!(text.contains("keel.trainer") && text.contains("logistic"));
    assert!(text.contains("ai.onnx.ml"));
}
