//! keel-learn against scikit-learn and LightGBM on the data in
//! `tests/reference.json`, which `tests/reference.py` writes.
//!
//! * Logistic regression: coefficients and intercepts to 1e-8 relative
//!   (both Newton solvers converge to ~1e-12; the worst error is printed),
//!   probabilities to 1e-9 absolute.
//! * Ridge / least squares: coefficients, intercepts and predictions to
//!   1e-8 relative.
//! * GBDT: not the same trees (bin boundaries, tie-breaking and split
//!   details differ), so the validation quality: ROC AUC within 0.01 of
//!   LightGBM's with the same parameters, R² within 0.01.

use keel_learn::{
    Dataset, GbdtParams, LogisticParams, Model, Objective, Params, RidgeParams, fit, metrics,
};
use serde_json::Value;

fn reference() -> Value {
    let text = include_str!("../reference.json");
    serde_json::from_str(text).unwrap()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn dataset(x: &Value, y: &Value) -> Dataset {
    let cols = x["cols"].as_u64().unwrap() as usize;
    Dataset::unnamed(cols, numbers(&x["values"]), numbers(y)).unwrap()
}

/// `|got − want| / max(|want|, floor)`.
fn rel(got: f64, want: f64, floor: f64) -> f64 {
    (got - want).abs() / want.abs().max(floor)
}

#[test]
fn logistic_matches_scikit_learn() {
    let r = reference();
    let mut worst: f64 = 0.0;
    let mut worst_p: f64 = 0.0;
    let data = dataset(&r["logistic"]["x"], &r["logistic"]["y"]);
    for case in r["logistic"]["fits"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let params = LogisticParams {
            l2: case["l2"].as_f64().unwrap(),
            fit_intercept: case["fit_intercept"].as_bool().unwrap(),
            ..LogisticParams::default()
        };
        let model = fit(Params::Logistic(params), &data, None).unwrap();
        let Model::Logistic(m) = &model else {
            panic!("{model:?}")
        };
        let want = numbers(&case["coefficients"]);
        for (j, (&g, &w)) in m.coefficients.iter().zip(&want).enumerate() {
            let e = rel(g, w, 1e-3);
            worst = worst.max(e);
            assert!(e < 1e-8, "{name}: coefficient {j}: {g} vs {w} (rel {e:e})");
        }
        let e = rel(m.intercept, case["intercept"].as_f64().unwrap(), 1e-3);
        worst = worst.max(e);
        assert!(e < 1e-8, "{name}: intercept {} (rel {e:e})", m.intercept);
        let p = model.predict(data.features()).unwrap();
        for (i, (&g, &w)) in p.iter().zip(&numbers(&case["probabilities"])).enumerate() {
            worst_p = worst_p.max((g - w).abs());
            assert!((g - w).abs() < 1e-9, "{name}: row {i}: {g} vs {w}");
        }
    }
    println!(
        "logistic: worst relative coefficient error {worst:.2e}, worst probability error {worst_p:.2e}"
    );
}

#[test]
fn ridge_matches_scikit_learn() {
    let r = reference();
    let mut worst: f64 = 0.0;
    let data = dataset(&r["ridge"]["x"], &r["ridge"]["y"]);
    for case in r["ridge"]["fits"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let params = RidgeParams {
            l2: case["l2"].as_f64().unwrap(),
            fit_intercept: case["fit_intercept"].as_bool().unwrap(),
            ..RidgeParams::default()
        };
        let model = fit(Params::Linear(params), &data, None).unwrap();
        let Model::Linear(m) = &model else {
            panic!("{model:?}")
        };
        for (j, (&g, &w)) in m
            .coefficients
            .iter()
            .zip(&numbers(&case["coefficients"]))
            .enumerate()
        {
            let e = rel(g, w, 1e-3);
            worst = worst.max(e);
            assert!(e < 1e-8, "{name}: coefficient {j}: {g} vs {w} (rel {e:e})");
        }
        let e = rel(m.intercept, case["intercept"].as_f64().unwrap(), 1e-3);
        worst = worst.max(e);
        assert!(e < 1e-8, "{name}: intercept (rel {e:e})");
        let p = model.predict(data.features()).unwrap();
        for (i, (&g, &w)) in p.iter().zip(&numbers(&case["predictions"])).enumerate() {
            let e = rel(g, w, 1.0);
            worst = worst.max(e);
            assert!(e < 1e-8, "{name}: row {i}: {g} vs {w}");
        }
    }
    println!("ridge: worst relative error {worst:.2e}");
}

#[test]
fn gbdt_quality_matches_lightgbm() {
    let r = reference();
    let lp = &r["gbdt_params"];
    for case in r["gbdt"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let train = dataset(&case["train_x"], &case["train_y"]);
        let valid = dataset(&case["valid_x"], &case["valid_y"]);
        let objective = match case["objective"].as_str().unwrap() {
            "binary" => Objective::Binary,
            _ => Objective::Regression,
        };
        let params = GbdtParams {
            objective,
            n_estimators: lp["n_estimators"].as_u64().unwrap() as usize,
            max_depth: lp["max_depth"].as_u64().unwrap() as usize,
            num_leaves: Some(lp["num_leaves"].as_u64().unwrap() as usize),
            learning_rate: lp["learning_rate"].as_f64().unwrap(),
            max_bins: lp["max_bin"].as_u64().unwrap() as usize,
            lambda: lp["reg_lambda"].as_f64().unwrap(),
            min_data_in_leaf: lp["min_child_samples"].as_u64().unwrap() as usize,
            min_child_weight: lp["min_child_weight"].as_f64().unwrap(),
            ..GbdtParams::default()
        };
        let model = fit(Params::Gbdt(params), &train, None).unwrap();
        let pred = model.predict(valid.features()).unwrap();
        match objective {
            Objective::Binary => {
                let ours = metrics::roc_auc(valid.labels(), &pred).unwrap();
                let theirs = case["lightgbm_valid_auc"].as_f64().unwrap();
                println!("{name}: valid AUC keel {ours:.4}, LightGBM {theirs:.4}");
                assert!(
                    (ours - theirs).abs() < 0.01,
                    "{name}: AUC {ours} vs {theirs}"
                );
            }
            Objective::Regression => {
                let y = valid.labels();
                let mean = y.iter().sum::<f64>() / y.len() as f64;
                let total: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
                let ours = 1.0 - metrics::mean_squared_error(y, &pred) * y.len() as f64 / total;
                let theirs = case["lightgbm_valid_r2"].as_f64().unwrap();
                println!("{name}: valid R² keel {ours:.4}, LightGBM {theirs:.4}");
                assert!(
                    (ours - theirs).abs() < 0.01,
                    "{name}: R² {ours} vs {theirs}"
                );
            }
        }
    }
}
