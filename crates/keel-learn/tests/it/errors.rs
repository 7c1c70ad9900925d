//! Bad parameters and data are refused with errors that name the field,
//! every problem at once.

use keel_learn::{
    Dataset, GbdtParams, LearnError, LogisticParams, Objective, Params, RidgeParams, Trainer, fit,
};

use crate::binary_data;

fn gbdt(edit: impl FnOnce(&mut GbdtParams)) -> Params {
    let mut p = GbdtParams::default();
    edit(&mut p);
    Params::Gbdt(p)
}

fn fields(params: Params, train: &Dataset, valid: Option<&Dataset>) -> Vec<&'static str> {
    Trainer::new(params, train, valid).unwrap_err().fields()
}

#[test]
fn each_bad_parameter_is_named() {
    let data = binary_data(100, 3, 31, 0.0);
    let cases: Vec<(Params, &str)> = vec![
        (gbdt(|p| p.learning_rate = 0.0), "learning_rate"),
        (gbdt(|p| p.learning_rate = -0.1), "learning_rate"),
        (gbdt(|p| p.learning_rate = f64::NAN), "learning_rate"),
        (gbdt(|p| p.max_depth = 0), "max_depth"),
        (gbdt(|p| p.max_depth = 33), "max_depth"),
        (gbdt(|p| p.n_estimators = 0), "n_estimators"),
        (gbdt(|p| p.num_leaves = Some(1)), "num_leaves"),
        (gbdt(|p| p.min_data_in_leaf = 0), "min_data_in_leaf"),
        (gbdt(|p| p.lambda = -1.0), "lambda"),
        (gbdt(|p| p.max_bins = 256), "max_bins"),
        (gbdt(|p| p.max_bins = 1), "max_bins"),
        (gbdt(|p| p.subsample = 0.0), "subsample"),
        (gbdt(|p| p.colsample = 1.5), "colsample"),
        (gbdt(|p| p.min_child_weight = -1e-3), "min_child_weight"),
        (gbdt(|p| p.threads = Some(0)), "threads"),
        (
            gbdt(|p| p.early_stopping_rounds = Some(3)),
            "early_stopping_rounds",
        ),
        (
            Params::Logistic(LogisticParams {
                tol: 0.0,
                ..LogisticParams::default()
            }),
            "tol",
        ),
        (
            Params::Linear(RidgeParams {
                l2: f64::INFINITY,
                ..RidgeParams::default()
            }),
            "l2",
        ),
    ];
    for (params, field) in cases {
        assert_eq!(fields(params.clone(), &data, None), [field], "{params:?}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let data = binary_data(100, 3, 32, 0.0);
    let e = Trainer::new(
        gbdt(|p| {
            p.learning_rate = 0.0;
            p.max_depth = 0;
            p.subsample = 2.0;
        }),
        &data,
        None,
    )
    .unwrap_err();
    assert_eq!(e.fields(), ["learning_rate", "max_depth", "subsample"]);
    let text = e.to_string();
    assert!(
        text.contains("learning_rate: must be a finite number > 0, got 0"),
        "{text}"
    );
    assert!(
        text.contains("max_depth: must be in 1..=32, got 0"),
        "{text}"
    );
}

#[test]
fn labels_must_suit_the_objective() {
    let x = vec![0.0, 1.0, 2.0, 3.0];
    let d = Dataset::unnamed(1, x.clone(), vec![0.0, 1.0, 2.0, 1.0]).unwrap();
    let e = Trainer::new(gbdt(|_| {}), &d, None).unwrap_err();
    assert!(
        matches!(
            e,
            LearnError::BadLabel {
                row: 2,
                value: 2.0,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.fields(), ["labels"]);
    let e = Trainer::new(Params::Logistic(LogisticParams::default()), &d, None).unwrap_err();
    assert!(matches!(e, LearnError::BadLabel { row: 2, .. }), "{e}");
    // Regression takes any finite label.
    fit(gbdt(|p| p.objective = Objective::Regression), &d, None).unwrap();
    let one_class = Dataset::unnamed(1, x.clone(), vec![1.0; 4]).unwrap();
    let e = Trainer::new(gbdt(|_| {}), &one_class, None).unwrap_err();
    assert!(e.to_string().contains("needs both 0 and 1"), "{e}");
    let e = Dataset::unnamed(1, x, vec![0.0, f64::NAN, 1.0, 0.0]).unwrap_err();
    assert!(matches!(e, LearnError::BadLabel { row: 1, .. }), "{e}");
    assert_eq!(e.fields(), ["labels"]);
}

#[test]
fn shapes_are_checked() {
    assert_eq!(
        Dataset::unnamed(3, vec![], vec![]).unwrap_err().fields(),
        ["rows"]
    );
    assert_eq!(
        Dataset::unnamed(3, vec![0.0; 7], vec![0.0, 1.0])
            .unwrap_err()
            .fields(),
        ["features"]
    );
    assert_eq!(
        Dataset::new(vec!["a".into()], vec![0.0; 2], vec![0.0, 1.0, 1.0])
            .unwrap_err()
            .fields(),
        ["features"]
    );
    let train = binary_data(50, 3, 33, 0.0);
    let other = binary_data(50, 4, 33, 0.0);
    assert_eq!(fields(gbdt(|_| {}), &train, Some(&other)), ["validation"]);
    assert_eq!(
        fields(
            Params::Logistic(LogisticParams::default()),
            &train,
            Some(&other)
        ),
        ["validation"]
    );
}

#[test]
fn linear_models_name_the_missing_cell() {
    let data = binary_data(50, 3, 34, 0.3);
    let e = Trainer::new(Params::Logistic(LogisticParams::default()), &data, None).unwrap_err();
    let LearnError::BadFeature { row, column, .. } = e else {
        panic!("{e}")
    };
    assert!(data.row(row)[column].is_nan());
    assert!(e.to_string().contains("impute"), "{e}");
    let e = Trainer::new(Params::Linear(RidgeParams::default()), &data, None).unwrap_err();
    assert!(matches!(e, LearnError::BadFeature { .. }), "{e}");
    // Trees take the same data.
    fit(gbdt(|p| p.n_estimators = 3), &data, None).unwrap();
}

#[test]
fn stepping_a_finished_trainer_is_an_error() {
    let data = binary_data(100, 3, 35, 0.0);
    let mut t = Trainer::new(gbdt(|p| p.n_estimators = 2), &data, None).unwrap();
    t.step().unwrap();
    t.step().unwrap();
    assert!(t.is_done());
    assert!(matches!(
        t.step(),
        Err(LearnError::Finished { iterations: 2 })
    ));
}
