//! Same data, parameters and seed → the same model, on any number of
//! threads.

use keel_learn::{GbdtParams, LogisticParams, Objective, Params, RidgeParams, fit};

use crate::{binary_data, regression_data};

fn gbdt(threads: usize, seed: u64) -> Params {
    Params::Gbdt(GbdtParams {
        n_estimators: 8,
        max_depth: 5,
        subsample: 0.9,
        colsample: 0.8,
        seed,
        threads: Some(threads),
        ..GbdtParams::default()
    })
}

#[test]
fn gbdt_is_identical_on_one_two_and_three_threads() {
    // Large enough that histograms (rows × features ≥ 2¹⁷) and the root's
    // partition (≥ 2¹⁶ rows) run on several threads.
    let data = binary_data(80_000, 5, 21, 0.05);
    let one = fit(gbdt(1, 7), &data, None).unwrap().to_json().unwrap();
    let two = fit(gbdt(2, 7), &data, None).unwrap().to_json().unwrap();
    let three = fit(gbdt(3, 7), &data, None).unwrap().to_json().unwrap();
    assert!(one == two, "1 vs 2 threads");
    assert!(one == three, "1 vs 3 threads");
}

#[test]
fn same_seed_same_model_other_seed_other_model() {
    let data = binary_data(3000, 6, 22, 0.1);
    let a = fit(gbdt(2, 1), &data, None).unwrap().to_json().unwrap();
    let b = fit(gbdt(2, 1), &data, None).unwrap().to_json().unwrap();
    let c = fit(gbdt(2, 2), &data, None).unwrap().to_json().unwrap();
    assert_eq!(a, b);
    assert_ne!(
        a, c,
        "subsampling with another seed should change the trees"
    );
}

#[test]
fn linear_models_are_identical_on_any_thread_count() {
    let data = binary_data(20_000, 4, 23, 0.0);
    let fit_with = |threads| {
        fit(
            Params::Logistic(LogisticParams {
                threads: Some(threads),
                ..LogisticParams::default()
            }),
            &data,
            None,
        )
        .unwrap()
        .to_json()
        .unwrap()
    };
    assert_eq!(fit_with(1), fit_with(2));
    let data = regression_data(20_000, 4, 24, 0.0);
    let ridge = |threads| {
        fit(
            Params::Linear(RidgeParams {
                threads: Some(threads),
                ..RidgeParams::default()
            }),
            &data,
            None,
        )
        .unwrap()
        .to_json()
        .unwrap()
    };
    assert_eq!(ridge(1), ridge(3));
    let gbdt_regression = |threads| {
        fit(
            Params::Gbdt(GbdtParams {
                objective: Objective::Regression,
                n_estimators: 5,
                threads: Some(threads),
                ..GbdtParams::default()
            }),
            &data,
            None,
        )
        .unwrap()
        .to_json()
        .unwrap()
    };
    assert_eq!(gbdt_regression(1), gbdt_regression(2));
}
