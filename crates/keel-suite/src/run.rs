//! Running a suite: every check gets a result, `pass`, `fail` or `error`,
//! with its measured value, threshold, severity and evidence; the suite
//! passes when every `error`-severity check passes.

use std::collections::BTreeMap;
use std::path::Path;

use keel_quality::fairness;
use keel_quality::metrics::classification::{self as cls, Average, ClassScores};
use keel_quality::metrics::regression;
use keel_quality::slices::{RowOutcome, SliceColumn, SliceSearch, worst_slices};
use keel_quality::suite::{CheckKind, CheckSpec, ModelRef, Severity, Suite};
use serde::Serialize;
use serde_json::{Value, json};

use crate::SuiteError;
use crate::data::{Table, Values};
use crate::model::{Model, Predictions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub kind: CheckKind,
    pub name: String,
    pub status: Status,
    pub value: Option<f64>,
    pub threshold: Value,
    pub severity: Severity,
    pub evidence: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    pub suite: String,
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    /// Rows of each dataset used.
    pub rows: BTreeMap<String, usize>,
    pub seconds: f64,
}

/// A dataset with the model's answers on it.
pub(crate) struct Scored {
    pub(crate) table: Table,
    pub(crate) label: Option<String>,
    pub(crate) predictions: Predictions,
    /// The model's feature matrix of the table.
    pub(crate) matrix: keel_quality::checks::Matrix,
    /// The discovered worst slices of the whole dataset, by minimum size:
    /// every label metric shows them, so they are searched once.
    pub(crate) worst_slices: std::sync::Mutex<BTreeMap<usize, Value>>,
}

/// Reads, validates and runs the suite file at `path`; files it names are
/// relative to its folder.
pub async fn run_file(path: &Path) -> Result<SuiteResult, SuiteError> {
    let suite = read_file(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    run(&suite, base, &Progress::none()).await
}

/// Reads and validates a suite file.
pub fn read_file(path: &Path) -> Result<Suite, SuiteError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SuiteError::Io(format!("{}: {e}", path.display())))?;
    Ok(keel_quality::suite::parse(&text)?)
}

/// Where a run is: called with what it is doing, the steps done and the
/// steps in all (each dataset loaded and scored, each slice, each check).
pub struct Progress<'a> {
    report: Option<&'a ReportStep<'a>>,
}

/// What a [`Progress`] calls: the step, the steps done, the steps in all.
pub type ReportStep<'a> = dyn Fn(&str, usize, usize) + Send + Sync + 'a;

impl<'a> Progress<'a> {
    pub fn none() -> Self {
        Progress { report: None }
    }

    pub fn to(report: &'a ReportStep<'a>) -> Self {
        Progress {
            report: Some(report),
        }
    }

    fn step(&self, what: &str, done: usize, total: usize) {
        if let Some(r) = self.report {
            r(what, done, total);
        }
    }
}

/// Runs `suite`, whose files are relative to `base`.
pub async fn run(
    suite: &Suite,
    base: &Path,
    progress: &Progress<'_>,
) -> Result<SuiteResult, SuiteError> {
    let started = std::time::Instant::now();
    let total = 2 * suite.data.len() + suite.slices.len() + suite.checks.len();
    let mut done = 0;
    let mut tables = BTreeMap::new();
    for (name, d) in &suite.data {
        progress.step(&format!("loading {name}"), done, total);
        done += 1;
        let table = Table::load(name, &base.join(&d.path)).await?;
        for column in d.label.iter().chain(&d.exclude) {
            table.column(column)?;
        }
        tables.insert(name.clone(), table);
    }
    let test = &suite.data["test"];
    let (model_path, features) = match &suite.model {
        ModelRef::Onnx { path, features } => (base.join(path), features.clone()),
        ModelRef::Registry { reference, .. } => {
            return Err(SuiteError::Model(format!(
                "{reference}: registry models are read by `keel test run --server URL`, which is not built yet; export the version's model.onnx and use `onnx:`"
            )));
        }
    };
    let mut skip: Vec<&str> = test.exclude.iter().map(String::as_str).collect();
    if let Some(l) = &test.label {
        skip.push(l);
    }
    for c in &suite.checks {
        if let Some(Value::String(query)) = c.params.get("query") {
            skip.push(query);
        }
        if let Some(s) = c.params.get("sensitive") {
            for v in s.as_array().into_iter().flatten().chain(std::iter::once(s)) {
                if let Some(name) = v.as_str() {
                    skip.push(name);
                }
            }
        }
    }
    let model = Model::load(&model_path, features.as_deref(), &tables["test"], &skip)?;
    let mut scored = BTreeMap::new();
    for (name, table) in tables {
        progress.step(&format!("scoring {name}"), done, total);
        done += 1;
        let matrix = keel_quality::checks::Matrix::new(
            table.rows,
            model.features.len(),
            model.matrix(&table, None)?,
        )
        .map_err(|e| SuiteError::Model(e.to_string()))?;
        let predictions = model.predict(&matrix.values)?;
        scored.insert(
            name.clone(),
            Scored {
                label: suite.data[&name].label.clone(),
                table,
                predictions,
                matrix,
                worst_slices: Default::default(),
            },
        );
    }
    let mut slices = BTreeMap::new();
    for (name, predicate) in &suite.slices {
        progress.step(&format!("slice {name}"), done, total);
        done += 1;
        slices.insert(
            name.clone(),
            scored["test"].table.select(name, predicate).await?,
        );
    }
    // Minimum-functionality case tables are read first (reading is async);
    // a table that cannot be read is that check's error.
    let mut cases = BTreeMap::new();
    for spec in &suite.checks {
        if let Some(file) = spec.params.get("cases").and_then(Value::as_str) {
            let table = Table::load("cases", &base.join(file))
                .await
                .map_err(|e| e.to_string());
            cases.insert(file.to_string(), table);
        }
    }
    // The checks run on every core, except the cost checks: they time and
    // measure the model, so they run after the others, one at a time.
    let inputs = CheckInputs {
        model: &model,
        scored: &scored,
        slices: &slices,
        cases: &cases,
    };
    let finished = std::sync::atomic::AtomicUsize::new(done);
    let step = |spec: &CheckSpec| {
        let result = check(spec, &inputs);
        let now = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress.step(&spec.name, now, total);
        result
    };
    let (timed, parallel): (Vec<usize>, Vec<usize>) =
        (0..suite.checks.len()).partition(|&i| suite.checks[i].kind == CheckKind::Cost);
    let mut results: Vec<Option<CheckResult>> = vec![None; suite.checks.len()];
    let ran = keel_quality::parallel_map(&parallel, |&i| step(&suite.checks[i]));
    for (i, result) in parallel.into_iter().zip(ran) {
        results[i] = Some(result);
    }
    for i in timed {
        results[i] = Some(step(&suite.checks[i]));
    }
    let checks: Vec<CheckResult> = results.into_iter().flatten().collect();
    progress.step("done", total, total);
    let passed = checks
        .iter()
        .all(|c| c.severity == Severity::Warning || c.status == Status::Pass);
    Ok(SuiteResult {
        suite: suite.name.clone(),
        passed,
        checks,
        rows: scored
            .iter()
            .map(|(k, s)| (k.clone(), s.table.rows))
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A check's answer before thresholds: its value and evidence.
type Measured = Result<(f64, Value), String>;

/// What every check reads.
pub(crate) struct CheckInputs<'a> {
    pub(crate) model: &'a Model,
    pub(crate) scored: &'a BTreeMap<String, Scored>,
    pub(crate) slices: &'a BTreeMap<String, Vec<usize>>,
    /// Minimum-functionality tables by file name, or why they could not be read.
    pub(crate) cases: &'a BTreeMap<String, Result<Table, String>>,
}

fn check(spec: &CheckSpec, inputs: &CheckInputs<'_>) -> CheckResult {
    let CheckInputs {
        model,
        scored,
        slices,
        ..
    } = *inputs;
    let p = &spec.params;
    let dataset = p.get("dataset").and_then(Value::as_str).unwrap_or("test");
    let rows = p
        .get("slice")
        .and_then(Value::as_str)
        .and_then(|s| slices.get(s));
    let measured = match scored.get(dataset) {
        None => Err(format!("no dataset {dataset:?}")),
        Some(s) => match spec.kind {
            CheckKind::Performance => performance(spec, s, rows, slices),
            CheckKind::Fairness => fairness_check(spec, s, rows),
            CheckKind::Robustness => crate::checks::robustness(spec, inputs.cases, model, s),
            CheckKind::Privacy => crate::checks::privacy(spec, s, scored),
            CheckKind::Security => crate::checks::security(spec, model, s),
            CheckKind::Cost => crate::checks::cost(spec, model, s),
        },
    };
    let first = |keys: &[&str]| keys.iter().find_map(|k| p.get(*k).and_then(Value::as_f64));
    let cost_bound = |key: &str| {
        keel_quality::suite::COST_MEASURES
            .iter()
            .find_map(|m| p.get(*m))
            .and_then(|m| m.get(key))
            .and_then(Value::as_f64)
    };
    let min = first(&["min", "min_pass_rate", "min_k"]).or_else(|| cost_bound("min"));
    let max = first(&[
        "max",
        "max_gap",
        "max_flip_rate",
        "max_mean_change",
        "max_violation_rate",
        "max_advantage",
        "max_auc",
        "max_findings",
        "max_success_rate",
        "max_answered",
    ])
    .or_else(|| cost_bound("max"))
    // A served model must answer none of the probes it should refuse.
    .or_else(|| (p.get("test").and_then(Value::as_str) == Some("hostile_inputs")).then_some(0.0));
    let threshold = match (min, max) {
        (Some(a), Some(b)) => json!({"min": a, "max": b}),
        (Some(a), None) => json!({"min": a}),
        (None, Some(b)) => json!({"max": b}),
        (None, None) => Value::Null,
    };
    let (status, value, evidence) = match measured {
        Ok((v, evidence)) => {
            let ok = min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m) && v.is_finite();
            (
                if ok { Status::Pass } else { Status::Fail },
                Some(v),
                evidence,
            )
        }
        Err(message) => (Status::Error, None, json!({ "error": message })),
    };
    CheckResult {
        kind: spec.kind,
        name: spec.name.clone(),
        status,
        value,
        threshold,
        severity: spec.severity,
        evidence,
    }
}

fn pick<T: Copy>(values: &[T], rows: Option<&Vec<usize>>) -> Vec<T> {
    match rows {
        Some(r) => r.iter().map(|i| values[*i]).collect(),
        None => values.to_vec(),
    }
}

/// The model's labels of every row of the dataset.
fn predicted_labels(s: &Scored) -> Result<&Vec<i64>, String> {
    s.predictions
        .labels
        .as_ref()
        .ok_or_else(|| "the model gives no labels".to_string())
}

pub(crate) fn labels(s: &Scored) -> Result<Vec<i64>, String> {
    let name = s
        .label
        .as_deref()
        .ok_or("the dataset has no label column")?;
    match &s.table.column(name).map_err(|e| e.to_string())?.values {
        Values::Number(v) => v
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if x.is_finite() && x.fract() == 0.0 {
                    Ok(*x as i64)
                } else {
                    Err(format!("label {name:?} row {i} is {x}, not a class"))
                }
            })
            .collect(),
        Values::Text(_) => Err(format!("label {name:?} is text; classes must be integers")),
    }
}

fn targets(s: &Scored) -> Result<Vec<f64>, String> {
    let name = s
        .label
        .as_deref()
        .ok_or("the dataset has no label column")?;
    match &s.table.column(name).map_err(|e| e.to_string())?.values {
        Values::Number(v) => Ok(v.clone()),
        Values::Text(_) => Err(format!("label {name:?} is text, not a number")),
    }
}

fn performance(
    spec: &CheckSpec,
    s: &Scored,
    rows: Option<&Vec<usize>>,
    slices: &BTreeMap<String, Vec<usize>>,
) -> Measured {
    let p = &spec.params;
    let metric = p.get("metric").and_then(Value::as_str).unwrap_or_default();
    let positive = p.get("positive").and_then(Value::as_i64).unwrap_or(1);
    let e = |x: keel_quality::QualityError| x.to_string();
    let n = rows.map_or(s.table.rows, Vec::len);
    if n == 0 {
        return Err("the slice selects no rows".into());
    }
    if matches!(metric, "rmse" | "mae" | "r2" | "mape") {
        let y = pick(&targets(s)?, rows);
        let pred = pick(
            s.predictions
                .values
                .as_ref()
                .ok_or("the model gives no regression output")?,
            rows,
        );
        let m = regression::regression_metrics(&y, &pred).map_err(e)?;
        let v = match metric {
            "rmse" => m.rmse,
            "mae" => m.mae,
            "r2" => m.r2,
            _ => m.mape,
        };
        return Ok((v, json!({ "rows": n })));
    }
    if keel_quality::suite::RANKING_METRICS.contains(&metric) {
        return ranking(p, metric, s, rows);
    }
    let y = pick(&labels(s)?, rows);
    let predicted = pick(predicted_labels(s)?, rows);
    let binary = s.predictions.classes <= 2;
    let average = if binary {
        Average::Binary {
            pos_label: positive,
        }
    } else {
        Average::Macro
    };
    let scores = || -> Result<Vec<f64>, String> {
        let all = s
            .predictions
            .positive_scores()
            .ok_or("this metric needs a binary classifier's probabilities")?;
        Ok(pick(&all, rows))
    };
    let value = match metric {
        "accuracy" => cls::accuracy(&y, &predicted).map_err(e)?,
        "precision" => cls::precision(&y, &predicted, average).map_err(e)?,
        "recall" => cls::recall(&y, &predicted, average).map_err(e)?,
        "f1" => cls::f1(&y, &predicted, average).map_err(e)?,
        "roc_auc" => cls::roc_auc(&y, &scores()?, positive).map_err(e)?,
        "pr_auc" => cls::average_precision(&y, &scores()?, positive).map_err(e)?,
        "log_loss" if binary => cls::log_loss(&y, &scores()?, positive).map_err(e)?,
        "log_loss" => {
            let proba = s
                .predictions
                .probabilities
                .as_ref()
                .ok_or("no probabilities")?;
            let k = s.predictions.classes;
            let rows_proba: Vec<f64> = match rows {
                Some(r) => r
                    .iter()
                    .flat_map(|i| proba[i * k..(i + 1) * k].iter().copied())
                    .collect(),
                None => proba.clone(),
            };
            let classes: Vec<i64> = (0..k as i64).collect();
            cls::log_loss_multiclass(
                &y,
                ClassScores {
                    classes: &classes,
                    values: &rows_proba,
                },
            )
            .map_err(e)?
        }
        "brier" => cls::brier_score(&y, &scores()?, positive).map_err(e)?,
        "ece" => {
            let bins = p.get("bins").and_then(Value::as_u64).unwrap_or(10) as usize;
            let curve = cls::calibration_curve(&y, &scores()?, positive, bins).map_err(e)?;
            return Ok((
                curve.expected_calibration_error,
                json!({ "rows": n, "calibration_curve": curve.bins }),
            ));
        }
        "no_slice_worse_than_overall" => {
            let overall = cls::accuracy(&y, &predicted).map_err(e)?;
            let all_y = labels(s)?;
            let all_pred = predicted_labels(s)?;
            let mut per_slice = Vec::new();
            let mut worst_gap = 0.0f64;
            for (name, r) in slices {
                if r.is_empty() {
                    continue;
                }
                let acc =
                    cls::accuracy(&pick(&all_y, Some(r)), &pick(all_pred, Some(r))).map_err(e)?;
                worst_gap = worst_gap.max(overall - acc);
                per_slice.push(json!({"slice": name, "rows": r.len(), "accuracy": acc}));
            }
            let discovered = discovered_slices(s, &all_y, all_pred, p)?;
            if let Some(w) = discovered.get("slices").and_then(|v| v.get(0)) {
                worst_gap = worst_gap.max(-w["difference"].as_f64().unwrap_or(0.0));
            }
            return Ok((
                worst_gap,
                json!({"overall_accuracy": overall, "slices": per_slice, "discovered": discovered}),
            ));
        }
        other => {
            return Err(format!(
                "metric {other:?} is not built yet in this version of Keel"
            ));
        }
    };
    let mut evidence = json!({ "rows": n });
    if rows.is_none() && matches!(metric, "accuracy" | "f1" | "precision" | "recall") {
        let all_pred = predicted_labels(s)?;
        evidence["worst_slices"] = discovered_slices(s, &y, all_pred, p)?;
    }
    Ok((value, evidence))
}

/// NDCG@k, MAP@k or precision@k: the label is each row's relevance, the
/// model's score (a binary classifier's positive probability, or a
/// regressor's output) ranks the rows of each query.
fn ranking(
    p: &serde_json::Map<String, Value>,
    metric: &str,
    s: &Scored,
    rows: Option<&Vec<usize>>,
) -> Measured {
    let query_name = p
        .get("query")
        .and_then(Value::as_str)
        .ok_or("query: name the column that groups rows into queries")?;
    let k = p.get("k").and_then(Value::as_u64).map(|k| k as usize);
    let relevance = pick(&targets(s)?, rows);
    let scores = pick(
        &s.predictions
            .positive_scores()
            .or_else(|| s.predictions.values.clone())
            .ok_or("ranking needs a score per row: a binary classifier's probability or a regressor's output")?,
        rows,
    );
    let query = pick(&query_ids(&s.table, query_name)?, rows);
    let e = |x: keel_quality::QualityError| x.to_string();
    use keel_quality::metrics::ranking as rk;
    let need_k = || k.ok_or(format!("{metric} needs k"));
    let average = match metric {
        "ndcg_at_k" => rk::ndcg_by_query(&query, &relevance, &scores, k).map_err(e)?,
        "map_at_k" => rk::map_at_k(&query, &relevance, &scores, need_k()?).map_err(e)?,
        _ => rk::precision_at_k(&query, &relevance, &scores, need_k()?).map_err(e)?,
    };
    Ok((
        average.mean,
        json!({"rows": relevance.len(), "queries": average.queries, "k": k}),
    ))
}

/// A column as query ids: equal values, equal ids (numbers by value, text
/// by its string, nulls one group).
fn query_ids(table: &Table, name: &str) -> Result<Vec<u64>, String> {
    let column = table.column(name).map_err(|e| e.to_string())?;
    Ok(match &column.values {
        Values::Number(v) => v
            .iter()
            .map(|x| if *x == 0.0 { 0 } else { x.to_bits() })
            .collect(),
        Values::Text(v) => {
            let mut ids: std::collections::HashMap<Option<&str>, u64> =
                std::collections::HashMap::new();
            v.iter()
                .map(|x| {
                    let next = ids.len() as u64;
                    *ids.entry(x.as_deref()).or_insert(next)
                })
                .collect()
        }
    })
}

/// The worst slices of correctness over the dataset's other columns; `y`
/// and `predicted` are of the whole dataset (the result is cached by
/// minimum size).
fn discovered_slices(
    s: &Scored,
    y: &[i64],
    predicted: &[i64],
    p: &serde_json::Map<String, Value>,
) -> Result<Value, String> {
    let min_size = p
        .get("min_size")
        .and_then(Value::as_u64)
        .map_or(SliceSearch::default().min_size, |x| x as usize);
    if let Some(found) = s
        .worst_slices
        .lock()
        .ok()
        .and_then(|c| c.get(&min_size).cloned())
    {
        return Ok(found);
    }
    let correct: Vec<bool> = y.iter().zip(predicted).map(|(a, b)| a == b).collect();
    let texts: Vec<(String, Vec<&str>)> = s
        .table
        .columns
        .iter()
        .filter(|c| Some(c.name.as_str()) != s.label.as_deref())
        .filter_map(|c| match &c.values {
            Values::Text(v) => Some((
                c.name.clone(),
                v.iter().map(|x| x.as_deref().unwrap_or("(null)")).collect(),
            )),
            Values::Number(_) => None,
        })
        .collect();
    let mut columns: Vec<SliceColumn> = texts
        .iter()
        .map(|(name, values)| SliceColumn::Categorical { name, values })
        .collect();
    for c in &s.table.columns {
        if let Values::Number(v) = &c.values
            && Some(c.name.as_str()) != s.label.as_deref()
        {
            columns.push(SliceColumn::Numeric {
                name: &c.name,
                values: v,
            });
        }
    }
    let search = SliceSearch {
        min_size,
        top_k: 5,
        ..SliceSearch::default()
    };
    let report =
        worst_slices(&columns, RowOutcome::Correct(&correct), search).map_err(|e| e.to_string())?;
    let value = serde_json::to_value(report).map_err(|e| e.to_string())?;
    if let Ok(mut cache) = s.worst_slices.lock() {
        cache.insert(min_size, value.clone());
    }
    Ok(value)
}

fn fairness_check(spec: &CheckSpec, s: &Scored, rows: Option<&Vec<usize>>) -> Measured {
    let p = &spec.params;
    let metric = p.get("metric").and_then(Value::as_str).unwrap_or_default();
    let positive = p.get("positive").and_then(Value::as_i64).unwrap_or(1);
    let names: Vec<String> = match p.get("sensitive") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return Err("sensitive: name the column(s)".into()),
    };
    let y = pick(&labels(s)?, rows);
    let predicted = pick(predicted_labels(s)?, rows);
    let mut columns: Vec<Vec<String>> = Vec::new();
    for name in &names {
        let c = s.table.column(name).map_err(|e| e.to_string())?;
        let all = c.values.texts("(null)");
        columns.push(match rows {
            Some(r) => r.iter().map(|i| all[*i].clone()).collect(),
            None => all,
        });
    }
    let refs: Vec<&[String]> = columns.iter().map(Vec::as_slice).collect();
    let table =
        fairness::group_table(&y, &predicted, positive, &refs).map_err(|e| e.to_string())?;
    let d = table.disparities();
    let value = match metric {
        "demographic_parity_difference" => Some(d.demographic_parity_difference),
        "demographic_parity_ratio" => d.demographic_parity_ratio,
        "equal_opportunity_difference" => Some(d.equal_opportunity_difference),
        "equalized_odds_difference" => Some(d.equalized_odds_difference),
        "equalized_odds_ratio" => d.equalized_odds_ratio,
        "disparate_impact" => d.disparate_impact_ratio,
        // The table is the point; its value is the parity difference.
        "group_metrics" => Some(d.demographic_parity_difference),
        other => {
            return Err(format!(
                "metric {other:?} is not built yet in this version of Keel"
            ));
        }
    };
    let value = value.ok_or("undefined: no group has a predicted positive")?;
    Ok((
        value,
        json!({ "groups": table.groups, "overall": table.overall, "disparities": d }),
    ))
}
