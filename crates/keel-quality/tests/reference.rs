//! keel-quality against scikit-learn, fairlearn and numpy: every metric is
//! checked against `reference.json`, which `reference.py` computes (and
//! `tests/python/test_reference_fixtures.py` proves it still computes).
//!
//! Every definition here is exact, so every value is held to 1e-9 relative
//! (1e-12 absolute near 0); counts and group orders must be equal. Run with
//! `--nocapture` to see the worst relative error of each section.

use keel_quality::fairness;
use keel_quality::metrics::classification::{self as cls, Average, ClassScores, OvrAverage};
use keel_quality::metrics::ranking;
use keel_quality::metrics::regression;
use serde_json::Value;
use std::collections::BTreeMap;

const REL: f64 = 1e-9;
const ABS: f64 = 1e-12;

struct Checker {
    failures: Vec<String>,
    worst: BTreeMap<&'static str, f64>,
}

impl Checker {
    fn new() -> Self {
        Checker {
            failures: Vec::new(),
            worst: BTreeMap::new(),
        }
    }

    /// `|got − want| ≤ REL·|want| + ABS`; records the worst relative error.
    fn close(&mut self, section: &'static str, what: String, got: f64, want: f64) {
        let err = (got - want).abs();
        let scaled = if want == 0.0 { err } else { err / want.abs() };
        let w = self.worst.entry(section).or_insert(0.0);
        if scaled > *w || scaled.is_nan() {
            *w = scaled;
        }
        if err.is_nan() || err > REL * want.abs() + ABS {
            self.failures.push(format!(
                "{section} {what}: got {got:e}, want {want:e} (rel err {scaled:e})"
            ));
        }
    }

    fn all(&mut self, section: &'static str, what: &str, got: &[f64], want: &[f64]) {
        if got.len() != want.len() {
            self.failures.push(format!(
                "{section} {what}: {} values, want {}",
                got.len(),
                want.len()
            ));
            return;
        }
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            self.close(section, format!("{what}[{i}]"), g, w);
        }
    }

    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, what: String, got: T, want: T) {
        if got != want {
            self.failures
                .push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }

    fn finish(self) {
        for (k, v) in &self.worst {
            println!("{k:32} worst relative error {v:.3e}");
        }
        assert!(
            self.failures.is_empty(),
            "{} mismatches:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference.json");
    let text = std::fs::read_to_string(path).expect("tests/reference.json is readable");
    serde_json::from_str(&text).expect("tests/reference.json is JSON")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array of integers")
        .iter()
        .map(|x| x.as_i64().expect("integer"))
        .collect()
}

fn uints(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array of counts")
        .iter()
        .map(|x| x.as_u64().expect("count"))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array of strings")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

fn name(e: &Value) -> &str {
    e["name"].as_str().expect("case name")
}

#[test]
fn binary_classification_matches_sklearn() {
    let r = reference();
    let mut c = Checker::new();
    for e in arr(&r["classification"], "binary") {
        let case = name(e);
        let pos = e["pos_label"].as_i64().unwrap();
        let y = ints(&e["y_true"]);
        let score = floats(&e["y_score"]);
        let prob = floats(&e["y_prob"]);
        let pred = ints(&e["y_pred"]);
        let s = "binary scores";
        c.close(
            s,
            format!("{case} roc_auc"),
            cls::roc_auc(&y, &score, pos).unwrap(),
            num(e, "roc_auc"),
        );
        c.close(
            s,
            format!("{case} roc_auc(prob)"),
            cls::roc_auc(&y, &prob, pos).unwrap(),
            num(e, "roc_auc_prob"),
        );
        c.close(
            s,
            format!("{case} average_precision"),
            cls::average_precision(&y, &score, pos).unwrap(),
            num(e, "average_precision"),
        );
        c.close(
            s,
            format!("{case} average_precision(prob)"),
            cls::average_precision(&y, &prob, pos).unwrap(),
            num(e, "average_precision_prob"),
        );
        let s = "binary probabilities";
        c.close(
            s,
            format!("{case} log_loss"),
            cls::log_loss(&y, &prob, pos).unwrap(),
            num(e, "log_loss"),
        );
        c.close(
            s,
            format!("{case} brier"),
            cls::brier_score(&y, &prob, pos).unwrap(),
            num(e, "brier"),
        );
        let s = "binary labels";
        c.close(
            s,
            format!("{case} accuracy"),
            cls::accuracy(&y, &pred).unwrap(),
            num(e, "accuracy"),
        );
        let prf = cls::precision_recall_f1(&y, &pred, Average::Binary { pos_label: pos }).unwrap();
        c.close(
            s,
            format!("{case} precision"),
            prf.precision,
            num(e, "precision"),
        );
        c.close(s, format!("{case} recall"), prf.recall, num(e, "recall"));
        c.close(s, format!("{case} f1"), prf.f1, num(e, "f1"));
        let cm = cls::confusion_matrix(&y, &pred).unwrap();
        c.equal(
            format!("{case} confusion labels"),
            cm.labels,
            ints(&e["confusion_matrix"]["labels"]),
        );
        let want: Vec<Vec<u64>> = arr(&e["confusion_matrix"], "counts")
            .iter()
            .map(uints)
            .collect();
        c.equal(format!("{case} confusion counts"), cm.counts, want);
        for cal in arr(e, "calibration") {
            let bins = cal["n_bins"].as_u64().unwrap() as usize;
            let curve = cls::calibration_curve(&y, &prob, pos, bins).unwrap();
            let s = "calibration curve";
            let what = format!("{case} bins={bins}");
            c.equal(
                format!("{what} counts"),
                curve.bins.iter().map(|b| b.count).collect::<Vec<_>>(),
                uints(&cal["counts"]),
            );
            c.all(
                s,
                &format!("{what} fraction_positive"),
                &curve
                    .bins
                    .iter()
                    .map(|b| b.fraction_positive)
                    .collect::<Vec<_>>(),
                &floats(&cal["fraction_positive"]),
            );
            c.all(
                s,
                &format!("{what} mean_predicted"),
                &curve
                    .bins
                    .iter()
                    .map(|b| b.mean_predicted)
                    .collect::<Vec<_>>(),
                &floats(&cal["mean_predicted"]),
            );
            c.close(
                "ece",
                format!("{what} ece"),
                cls::expected_calibration_error(&y, &prob, pos, bins).unwrap(),
                num(cal, "ece"),
            );
        }
    }
    c.finish();
}

#[test]
fn multiclass_classification_matches_sklearn() {
    let r = reference();
    let mut c = Checker::new();
    for e in arr(&r["classification"], "multiclass") {
        let case = name(e);
        let classes = ints(&e["classes"]);
        let y = ints(&e["y_true"]);
        let values = floats(&e["proba"]);
        let pred = ints(&e["y_pred"]);
        let proba = ClassScores {
            classes: &classes,
            values: &values,
        };
        let s = "multiclass probabilities";
        c.close(
            s,
            format!("{case} roc_auc_ovr macro"),
            cls::roc_auc_ovr(&y, proba, OvrAverage::Macro).unwrap(),
            num(e, "roc_auc_ovr_macro"),
        );
        c.close(
            s,
            format!("{case} roc_auc_ovr weighted"),
            cls::roc_auc_ovr(&y, proba, OvrAverage::Weighted).unwrap(),
            num(e, "roc_auc_ovr_weighted"),
        );
        c.close(
            s,
            format!("{case} log_loss"),
            cls::log_loss_multiclass(&y, proba).unwrap(),
            num(e, "log_loss"),
        );
        c.close(
            s,
            format!("{case} brier"),
            cls::brier_score_multiclass(&y, proba).unwrap(),
            num(e, "brier"),
        );
        let s = "multiclass labels";
        c.close(
            s,
            format!("{case} accuracy"),
            cls::accuracy(&y, &pred).unwrap(),
            num(e, "accuracy"),
        );
        for (key, avg) in [
            ("macro", Average::Macro),
            ("micro", Average::Micro),
            ("weighted", Average::Weighted),
        ] {
            let got = cls::precision_recall_f1(&y, &pred, avg).unwrap();
            let want = &e["prf"][key];
            c.close(
                s,
                format!("{case} {key} precision"),
                got.precision,
                num(want, "precision"),
            );
            c.close(
                s,
                format!("{case} {key} recall"),
                got.recall,
                num(want, "recall"),
            );
            c.close(s, format!("{case} {key} f1"), got.f1, num(want, "f1"));
        }
        let cm = cls::confusion_matrix(&y, &pred).unwrap();
        c.equal(
            format!("{case} confusion labels"),
            cm.labels,
            ints(&e["confusion_matrix"]["labels"]),
        );
        let want: Vec<Vec<u64>> = arr(&e["confusion_matrix"], "counts")
            .iter()
            .map(uints)
            .collect();
        c.equal(format!("{case} confusion counts"), cm.counts, want);
        for cal in arr(e, "top_label_calibration") {
            let bins = cal["n_bins"].as_u64().unwrap() as usize;
            let curve = cls::calibration_curve_top_label(&y, proba, bins).unwrap();
            let what = format!("{case} top-label bins={bins}");
            c.equal(
                format!("{what} counts"),
                curve.bins.iter().map(|b| b.count).collect::<Vec<_>>(),
                uints(&cal["counts"]),
            );
            let s = "top-label calibration";
            c.all(
                s,
                &format!("{what} accuracy"),
                &curve
                    .bins
                    .iter()
                    .map(|b| b.fraction_positive)
                    .collect::<Vec<_>>(),
                &floats(&cal["accuracy"]),
            );
            c.all(
                s,
                &format!("{what} confidence"),
                &curve
                    .bins
                    .iter()
                    .map(|b| b.mean_predicted)
                    .collect::<Vec<_>>(),
                &floats(&cal["confidence"]),
            );
            c.close(
                "ece",
                format!("{what} ece"),
                curve.expected_calibration_error,
                num(cal, "ece"),
            );
        }
    }
    c.finish();
}

#[test]
fn regression_matches_sklearn() {
    let r = reference();
    let mut c = Checker::new();
    for e in r["regression"].as_array().unwrap() {
        let case = name(e);
        let got =
            regression::regression_metrics(&floats(&e["y_true"]), &floats(&e["y_pred"])).unwrap();
        c.close(
            "regression",
            format!("{case} rmse"),
            got.rmse,
            num(e, "rmse"),
        );
        c.close("regression", format!("{case} mae"), got.mae, num(e, "mae"));
        c.close("regression", format!("{case} r2"), got.r2, num(e, "r2"));
        c.close(
            "regression",
            format!("{case} mape"),
            got.mape,
            num(e, "mape"),
        );
    }
    c.finish();
}

fn k_of(e: &Value) -> Option<usize> {
    e["k"].as_u64().map(|k| k as usize)
}

#[test]
fn ranking_matches_sklearn_and_numpy() {
    let r = reference();
    let mut c = Checker::new();
    for e in arr(&r["ranking"], "single") {
        let case = name(e);
        let rel = floats(&e["relevance"]);
        let scores = floats(&e["scores"]);
        for res in arr(e, "results") {
            let k = k_of(res);
            c.close(
                "ndcg (one query)",
                format!("{case} k={k:?}"),
                ranking::ndcg(&rel, &scores, k).unwrap(),
                num(res, "ndcg"),
            );
        }
    }
    let q = &r["ranking"]["by_query"];
    let query = strings(&q["query"]);
    let rel = floats(&q["relevance"]);
    let scores = floats(&q["scores"]);
    let queries = q["queries"].as_u64().unwrap() as usize;
    for res in arr(q, "results") {
        let k = k_of(res);
        let nd = ranking::ndcg_by_query(&query, &rel, &scores, k).unwrap();
        c.equal(format!("queries k={k:?}"), nd.queries, queries);
        c.close(
            "ndcg (by query)",
            format!("k={k:?}"),
            nd.mean,
            num(res, "ndcg"),
        );
        if let Some(k) = k {
            c.close(
                "precision@k",
                format!("k={k}"),
                ranking::precision_at_k(&query, &rel, &scores, k)
                    .unwrap()
                    .mean,
                num(res, "precision"),
            );
            c.close(
                "map@k",
                format!("k={k}"),
                ranking::map_at_k(&query, &rel, &scores, k).unwrap().mean,
                num(res, "map"),
            );
        }
    }
    c.finish();
}

/// fairlearn's value for a rate: 0 where the group has no rows to divide by.
fn fairlearn_rate(rate: Option<f64>) -> f64 {
    rate.unwrap_or(0.0)
}

#[test]
fn fairness_matches_fairlearn() {
    let r = reference();
    let mut c = Checker::new();
    for e in r["fairness"].as_array().unwrap() {
        let case = name(e);
        let y = ints(&e["y_true"]);
        let pred = ints(&e["y_pred"]);
        let columns: Vec<Vec<String>> = strings(&e["column_order"])
            .iter()
            .map(|col| strings(&e["sensitive"][col]))
            .collect();
        let slices: Vec<&[String]> = columns.iter().map(Vec::as_slice).collect();
        let table = fairness::group_table(&y, &pred, 1, &slices).unwrap();
        let want = arr(e, "by_group");
        c.equal(
            format!("{case} groups"),
            table
                .groups
                .iter()
                .map(|g| g.group.clone())
                .collect::<Vec<_>>(),
            want.iter().map(|w| strings(&w["group"])).collect(),
        );
        for (g, w) in table.groups.iter().zip(want) {
            let what = format!("{case} {:?}", g.group);
            c.equal(
                format!("{what} count"),
                g.count,
                w["count"].as_u64().unwrap(),
            );
            c.equal(
                format!("{what} positives"),
                g.positives,
                w["positives"].as_u64().unwrap(),
            );
            c.equal(
                format!("{what} TPR undefined"),
                g.true_positive_rate.is_none(),
                g.positives == 0,
            );
            let s = "fairness by group";
            c.close(
                s,
                format!("{what} selection_rate"),
                g.selection_rate,
                num(w, "selection_rate"),
            );
            c.close(
                s,
                format!("{what} tpr"),
                fairlearn_rate(g.true_positive_rate),
                num(w, "tpr"),
            );
            c.close(
                s,
                format!("{what} fpr"),
                fairlearn_rate(g.false_positive_rate),
                num(w, "fpr"),
            );
            c.close(
                s,
                format!("{what} accuracy"),
                g.accuracy,
                num(w, "accuracy"),
            );
        }
        let o = &e["overall"];
        let s = "fairness overall";
        c.close(
            s,
            format!("{case} count"),
            table.overall.count as f64,
            num(o, "count"),
        );
        c.close(
            s,
            format!("{case} selection_rate"),
            table.overall.selection_rate,
            num(o, "selection_rate"),
        );
        c.close(
            s,
            format!("{case} tpr"),
            fairlearn_rate(table.overall.true_positive_rate),
            num(o, "tpr"),
        );
        c.close(
            s,
            format!("{case} fpr"),
            fairlearn_rate(table.overall.false_positive_rate),
            num(o, "fpr"),
        );
        c.close(
            s,
            format!("{case} accuracy"),
            table.overall.accuracy,
            num(o, "accuracy"),
        );
        let d = table.disparities();
        let s = "fairness disparities";
        c.close(
            s,
            format!("{case} demographic_parity_difference"),
            d.demographic_parity_difference,
            num(e, "demographic_parity_difference"),
        );
        c.close(
            s,
            format!("{case} demographic_parity_ratio"),
            d.demographic_parity_ratio.expect("defined here"),
            num(e, "demographic_parity_ratio"),
        );
        c.close(
            s,
            format!("{case} equalized_odds_difference"),
            d.equalized_odds_difference,
            num(e, "equalized_odds_difference"),
        );
        c.close(
            s,
            format!("{case} equalized_odds_ratio"),
            d.equalized_odds_ratio.expect("defined here"),
            num(e, "equalized_odds_ratio"),
        );
        c.close(
            s,
            format!("{case} equal_opportunity_difference"),
            d.equal_opportunity_difference,
            num(e, "equal_opportunity_difference"),
        );
        c.equal(
            format!("{case} disparate impact = demographic parity ratio"),
            d.disparate_impact_ratio,
            d.demographic_parity_ratio,
        );
        c.equal(
            format!("{case} four-fifths rule"),
            d.passes_four_fifths_rule,
            num(e, "demographic_parity_ratio") >= 0.8,
        );
    }
    c.finish();
}

#[test]
fn versions_are_recorded() {
    let r = reference();
    for lib in ["numpy", "scikit-learn", "fairlearn", "pandas"] {
        assert!(r["versions"][lib].is_string(), "{lib} version missing");
    }
}
