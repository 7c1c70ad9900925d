//! A run interrupted, checkpointed to JSON, dropped and resumed ends with
//! exactly the model — and the per-iteration metrics — of a run that was
//! never interrupted.

use keel_learn::{
    Checkpoint, Dataset, GbdtParams, IterationMetrics, LearnError, LogisticParams, Model,
    Objective, Params, Trainer,
};

use crate::{binary_data, regression_data};

/// Trains to the end; returns the model's JSON and every iteration's metrics.
fn uninterrupted(
    params: &Params,
    train: &Dataset,
    valid: Option<&Dataset>,
) -> (String, Vec<IterationMetrics>) {
    let mut t = Trainer::new(params.clone(), train, valid).unwrap();
    let mut metrics = Vec::new();
    while !t.is_done() {
        metrics.push(t.step().unwrap());
    }
    (t.finish().unwrap().to_json().unwrap(), metrics)
}

/// Trains `first` iterations, checkpoints to JSON, drops the trainer,
/// resumes from the JSON and trains to the end.
fn interrupted(
    params: &Params,
    train: &Dataset,
    valid: Option<&Dataset>,
    first: usize,
) -> (String, Vec<IterationMetrics>) {
    let mut metrics = Vec::new();
    let json = {
        let mut t = Trainer::new(params.clone(), train, valid).unwrap();
        for _ in 0..first {
            metrics.push(t.step().unwrap());
        }
        t.checkpoint().to_json().unwrap()
    };
    let checkpoint = Checkpoint::from_json(&json).unwrap();
    assert_eq!(checkpoint.iteration(), first);
    let mut t = Trainer::resume(checkpoint, train, valid).unwrap();
    assert_eq!(t.iteration(), first);
    while !t.is_done() {
        metrics.push(t.step().unwrap());
    }
    (t.finish().unwrap().to_json().unwrap(), metrics)
}

#[test]
fn gbdt_resumed_after_20_of_50_trees_is_identical() {
    let data = binary_data(4000, 6, 11, 0.1);
    let (train, valid) = data.split_validation(0.25, 3).unwrap();
    let params = Params::Gbdt(GbdtParams {
        n_estimators: 50,
        subsample: 0.8,
        colsample: 0.7,
        seed: 42,
        ..GbdtParams::default()
    });
    let (a, metrics_a) = uninterrupted(&params, &train, Some(&valid));
    let (b, metrics_b) = interrupted(&params, &train, Some(&valid), 20);
    assert_eq!(a, b, "model JSON differs after resuming");
    assert_eq!(
        metrics_a, metrics_b,
        "per-iteration metrics differ after resuming"
    );
    assert_eq!(metrics_a.len(), 50);
    let (ma, mb) = (Model::from_json(&a).unwrap(), Model::from_json(&b).unwrap());
    let (pa, pb) = (
        ma.predict(valid.features()).unwrap(),
        mb.predict(valid.features()).unwrap(),
    );
    assert!(pa.iter().zip(&pb).all(|(x, y)| x.to_bits() == y.to_bits()));
    // Checkpoints taken at any other point give the same model too.
    for first in [1, 49] {
        assert_eq!(interrupted(&params, &train, Some(&valid), first).0, a);
    }
}

#[test]
fn gbdt_resume_keeps_early_stopping_state() {
    let data = regression_data(1500, 3, 12, 0.0);
    let (train, valid) = data.split_validation(0.3, 1).unwrap();
    let params = Params::Gbdt(GbdtParams {
        objective: Objective::Regression,
        n_estimators: 400,
        learning_rate: 0.3,
        min_data_in_leaf: 3,
        early_stopping_rounds: Some(4),
        ..GbdtParams::default()
    });
    let (a, metrics_a) = uninterrupted(&params, &train, Some(&valid));
    assert!(metrics_a.len() < 400, "early stopping should trigger");
    let (b, metrics_b) = interrupted(&params, &train, Some(&valid), metrics_a.len() - 2);
    assert_eq!(a, b);
    assert_eq!(metrics_a, metrics_b);
}

#[test]
fn logistic_resumed_mid_newton_is_identical() {
    let data = binary_data(800, 4, 13, 0.0);
    let (train, valid) = data.split_validation(0.2, 9).unwrap();
    let params = Params::Logistic(LogisticParams {
        l2: 0.01,
        ..LogisticParams::default()
    });
    let (a, metrics_a) = uninterrupted(&params, &train, Some(&valid));
    assert!(metrics_a.len() >= 4, "{metrics_a:?}");
    let (b, metrics_b) = interrupted(&params, &train, Some(&valid), 2);
    assert_eq!(a, b);
    assert_eq!(metrics_a, metrics_b);
}

#[test]
fn resuming_on_other_data_is_refused() {
    let data = binary_data(500, 3, 14, 0.0);
    let other = binary_data(500, 3, 15, 0.0);
    let params = Params::Gbdt(GbdtParams {
        n_estimators: 5,
        ..GbdtParams::default()
    });
    let mut t = Trainer::new(params, &data, None).unwrap();
    t.step().unwrap();
    let cp = t.checkpoint();
    let e = Trainer::resume(cp.clone(), &other, None).unwrap_err();
    assert_eq!(e.fields(), ["train_fingerprint"], "{e}");
    let e = Trainer::resume(cp, &data, Some(&other)).unwrap_err();
    assert_eq!(e.fields(), ["valid_fingerprint"], "{e}");
}

#[test]
fn a_tampered_checkpoint_is_refused() {
    let data = binary_data(500, 3, 16, 0.0);
    let mut t = Trainer::new(
        Params::Gbdt(GbdtParams {
            n_estimators: 5,
            ..GbdtParams::default()
        }),
        &data,
        None,
    )
    .unwrap();
    t.step().unwrap();
    let json = t.checkpoint().to_json().unwrap();
    // A child pointing back at the root would make a cycle.
    let bad = json.replacen("\"right\":[2,", "\"right\":[0,", 1);
    assert_ne!(bad, json);
    let e = Trainer::resume(Checkpoint::from_json(&bad).unwrap(), &data, None).unwrap_err();
    assert!(
        matches!(e, LearnError::Checkpoint { field: "trees", .. }),
        "{e}"
    );
}
