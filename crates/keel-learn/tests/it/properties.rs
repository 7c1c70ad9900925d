//! Properties over random small datasets (with missing values, ties and
//! constant columns).

use keel_learn::{Dataset, GbdtParams, Model, Objective, Params, Trainer, metrics};
use proptest::prelude::*;

/// Rows of 3 features drawn from a few values (ties), some NaN, and 0/1
/// labels.
fn small_dataset() -> impl Strategy<Value = Dataset> {
    let cell = prop_oneof![
        4 => (-3i32..4).prop_map(f64::from),
        1 => Just(f64::NAN),
        2 => -1e3f64..1e3,
    ];
    (20usize..120)
        .prop_flat_map(move |rows| {
            (
                proptest::collection::vec(cell.clone(), rows * 3),
                proptest::collection::vec(proptest::bool::ANY, rows),
            )
        })
        .prop_filter_map("needs both classes", |(x, y)| {
            let labels: Vec<f64> = y.iter().map(|&b| f64::from(u8::from(b))).collect();
            let positives = labels.iter().filter(|&&v| v == 1.0).count();
            (positives > 0 && positives < labels.len())
                .then(|| Dataset::unnamed(3, x, labels).unwrap())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The trainer's losses are those of the model it returns, the model
    /// survives JSON unchanged, and probabilities are probabilities.
    #[test]
    fn gbdt_model_agrees_with_training(data in small_dataset(), depth in 1usize..5, seed in 0u64..4) {
        let params = GbdtParams {
            n_estimators: 4,
            max_depth: depth,
            min_data_in_leaf: 2,
            subsample: 0.8,
            seed,
            ..GbdtParams::default()
        };
        let mut t = Trainer::new(Params::Gbdt(params), &data, None).unwrap();
        let mut last = None;
        while !t.is_done() {
            last = Some(t.step().unwrap());
        }
        let model = t.finish().unwrap();
        let raw = model.raw_scores(data.features()).unwrap();
        let loss = metrics::log_loss(data.labels(), &raw);
        let reported = last.unwrap().train_loss;
        prop_assert!((loss - reported).abs() <= 1e-12 * loss.max(1.0), "{loss} vs {reported}");
        let back = Model::from_json(&model.to_json().unwrap()).unwrap();
        prop_assert_eq!(&back, &model);
        let p = model.predict(data.features()).unwrap();
        prop_assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    /// Boosting on squared error never makes the training loss worse than
    /// the mean's.
    #[test]
    fn regression_loss_does_not_exceed_the_mean(data in small_dataset()) {
        let params = GbdtParams {
            objective: Objective::Regression,
            n_estimators: 3,
            min_data_in_leaf: 1,
            ..GbdtParams::default()
        };
        let mut t = Trainer::new(Params::Gbdt(params), &data, None).unwrap();
        let y = data.labels();
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let base = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / y.len() as f64;
        while !t.is_done() {
            let m = t.step().unwrap();
            prop_assert!(m.train_loss <= base + 1e-9, "{} > {base}", m.train_loss);
        }
    }

    /// A validation split partitions the rows, whatever the fraction.
    #[test]
    fn split_partitions(data in small_dataset(), fraction in 0.01f64..0.99, seed in any::<u64>()) {
        let (train, valid) = data.split_validation(fraction, seed).unwrap();
        prop_assert_eq!(train.rows() + valid.rows(), data.rows());
        prop_assert!(train.rows() >= 1 && valid.rows() >= 1);
    }
}
