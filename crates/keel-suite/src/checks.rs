//! The robustness, privacy, security and cost checks of a suite: the
//! suite's keys turned into keel-quality's check primitives, run against
//! the compiled model.

use std::collections::BTreeMap;
use std::time::Instant;

use keel_quality::checks::{self as q, Matrix, privacy, robustness, security};
use keel_quality::suite::CheckSpec;
use keel_stats::rng::Rng;
use serde_json::{Value, json};

use crate::data::{Table, Values};
use crate::model::{FeatureKind, Model};
use crate::run::{Scored, labels};
use keel_serve::tensor::{Data, NamedTensor};

type Measured = Result<(f64, Value), String>;

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The model as keel-quality's predict closure: labels, and the positive
/// class's probability (or the regression output) as scores.
fn predictor(model: &Model) -> impl FnMut(&Matrix) -> keel_quality::Result<q::Predictions> + '_ {
    move |m: &Matrix| {
        let p = model
            .predict(&m.values)
            .map_err(|e| keel_quality::QualityError::Invalid {
                name: "model".into(),
                reason: e.to_string(),
            })?;
        let scores = p.positive_scores().or_else(|| p.values.clone());
        let labels = match p.labels {
            Some(l) => l,
            // A regressor: every row one "label", the scores carry it.
            None => vec![0; m.rows],
        };
        Ok(q::Predictions { labels, scores })
    }
}

fn column_indices(model: &Model, names: &Value, field: &str) -> Result<Vec<usize>, String> {
    let names: Vec<&str> = match names {
        Value::String(n) => vec![n.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(format!("{field}: name the columns")),
    };
    names
        .iter()
        .map(|n| {
            model.features.iter().position(|f| f == n).ok_or_else(|| {
                format!(
                    "{field}: {n:?} is not one of the model's features ({})",
                    model.features.join(", ")
                )
            })
        })
        .collect()
}

fn seed(p: &serde_json::Map<String, Value>) -> u64 {
    p.get("seed").and_then(Value::as_u64).unwrap_or(0)
}

pub(crate) fn robustness(
    spec: &CheckSpec,
    cases: &BTreeMap<String, Result<Table, String>>,
    model: &Model,
    s: &Scored,
) -> Measured {
    let p = &spec.params;
    let m = &s.matrix;
    let mut predict = predictor(model);
    // The model's answers on the unperturbed data, computed once already.
    let before = q::Predictions {
        labels: s
            .predictions
            .labels
            .clone()
            .unwrap_or_else(|| vec![0; s.table.rows]),
        scores: s
            .predictions
            .positive_scores()
            .or_else(|| s.predictions.values.clone()),
    };
    let mut rng = Rng::from_seed(seed(p));
    if let Some(Value::Object(perturbation)) = p.get("perturbation") {
        let (kind, args) = perturbation.iter().next().ok_or("perturbation: give one")?;
        let columns = column_indices(
            model,
            args.get("columns").unwrap_or(&Value::Null),
            "perturbation.columns",
        )?;
        let amount = |key: &str| args.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        // Which columns a perturbation can touch, by how the model reads them.
        let refuse = |allowed: &[FeatureKind], what: &str| -> Result<(), String> {
            match columns.iter().find(|&&c| !allowed.contains(&model.kind(c))) {
                Some(&c) => Err(format!(
                    "perturbation.columns: {kind} {what}; the model reads {:?} as {}",
                    model.features[c],
                    match model.kind(c) {
                        FeatureKind::Float => "floats",
                        FeatureKind::Integer => "integers",
                        FeatureKind::Text => "text",
                    }
                )),
                None => Ok(()),
            }
        };
        let after_matrix = match kind.as_str() {
            "gaussian_noise" => {
                refuse(
                    &[FeatureKind::Float, FeatureKind::Integer],
                    "perturbs numbers",
                )?;
                robustness::gaussian_noise(m, &columns, amount("scale"), &mut rng).map_err(text)?
            }
            "missing" => {
                refuse(
                    &[FeatureKind::Float, FeatureKind::Text],
                    "needs columns that can be missing (integer inputs cannot)",
                )?;
                robustness::missing_values(m, &columns, amount("rate"), &mut rng).map_err(text)?
            }
            // Text columns hold dictionary codes, so swapping codes swaps
            // the strings.
            "category_swap" => {
                robustness::category_swap(m, &columns, amount("rate"), &mut rng).map_err(text)?
            }
            "typos" => {
                refuse(&[FeatureKind::Text], "perturbs strings")?;
                model
                    .typos(m, &columns, amount("rate"), &mut rng)
                    .map_err(text)?
            }
            other => return Err(format!("perturbation {other:?} is not known")),
        };
        let after = predict(&after_matrix).map_err(text)?;
        let flips = robustness::flip_rate(&before, &after).map_err(text)?;
        let change = robustness::mean_abs_change(&before, &after).ok();
        let by_change = p.contains_key("max_mean_change");
        let value = if by_change {
            change.ok_or("the model gives no scores to compare")?
        } else {
            flips
        };
        return Ok((
            value,
            json!({"perturbation": kind, "rows": m.rows, "flip_rate": flips, "mean_abs_change": change,
                   "examples": changed_rows(model, &before, &after, m, &after_matrix, &columns, by_change)}),
        ));
    }
    if let Some(d) = p.get("directional") {
        let column = column_indices(
            model,
            d.get("feature").unwrap_or(&Value::Null),
            "directional.feature",
        )?[0];
        if model.kind(column) == FeatureKind::Text {
            return Err(format!(
                "directional.feature: {:?} is text; a directional expectation raises a number",
                model.features[column]
            ));
        }
        let delta = d.get("increase").and_then(Value::as_f64).unwrap_or(1.0);
        let expect = match d.get("expect").and_then(Value::as_str) {
            Some("increase") => robustness::Expectation::Increase,
            Some("decrease") => robustness::Expectation::Decrease,
            Some("no_change") => robustness::Expectation::NoChange,
            other => {
                return Err(format!(
                    "directional.expect: {other:?}; expected increase, decrease or no_change"
                ));
            }
        };
        let r =
            robustness::directional(m, column, delta, expect, 1e-9, &mut predict).map_err(text)?;
        return Ok((r.violation_rate, serde_json::to_value(&r).map_err(text)?));
    }
    if let Some(file) = p.get("cases").and_then(Value::as_str) {
        // Minimum functionality: a table of inputs (the model's feature
        // columns) and the label each must get, in a column `expected`.
        let cases = match cases.get(file) {
            Some(Ok(table)) => table,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(format!("{file}: not read")),
        };
        let expected: Vec<i64> = match &cases.column("expected").map_err(text)?.values {
            Values::Number(v) if v.iter().all(|x| x.fract() == 0.0) => {
                v.iter().map(|x| *x as i64).collect()
            }
            _ => {
                return Err(format!(
                    "{file}: column `expected` must hold integer labels"
                ));
            }
        };
        let inputs = Matrix::new(
            cases.rows,
            model.features.len(),
            model.matrix(cases, None).map_err(text)?,
        )
        .map_err(text)?;
        let r =
            robustness::minimum_functionality(&inputs, &expected, &mut predict).map_err(text)?;
        return Ok((r.pass_rate, serde_json::to_value(&r).map_err(text)?));
    }
    Err("give a perturbation, a directional expectation or minimum-functionality cases".into())
}

/// Up to five rows the perturbation changed most: flipped labels first
/// (or, for a mean-change check, the largest score changes), with the
/// perturbed columns' values before and after.
fn changed_rows(
    model: &Model,
    before: &q::Predictions,
    after: &q::Predictions,
    m: &Matrix,
    perturbed: &Matrix,
    columns: &[usize],
    by_change: bool,
) -> Value {
    let score = |p: &q::Predictions, i: usize| p.scores.as_ref().map(|s| s[i]);
    let change = |i: usize| match (score(before, i), score(after, i)) {
        (Some(a), Some(b)) if (b - a).is_finite() => (b - a).abs(),
        _ => 0.0,
    };
    let mut rows: Vec<usize> = if by_change {
        (0..m.rows).filter(|&i| change(i) > 0.0).collect()
    } else {
        (0..m.rows)
            .filter(|&i| before.labels[i] != after.labels[i])
            .collect()
    };
    rows.sort_by(|&a, &b| change(b).total_cmp(&change(a)));
    rows.truncate(5);
    let values = |x: &Matrix, i: usize| -> Vec<Value> {
        columns
            .iter()
            .map(|&c| match model.kind(c) {
                FeatureKind::Text => model
                    .text(c, x.get(i, c))
                    .map_or(Value::Null, Value::String),
                _ => serde_json::Number::from_f64(x.get(i, c)).map_or(Value::Null, Value::Number),
            })
            .collect()
    };
    rows.iter()
        .map(|&i| {
            json!({
                "row": i,
                "label_before": before.labels[i], "label_after": after.labels[i],
                "score_before": score(before, i), "score_after": score(after, i),
                "inputs_before": values(m, i), "inputs_after": values(perturbed, i),
            })
        })
        .collect()
}

pub(crate) fn privacy(spec: &CheckSpec, s: &Scored, all: &BTreeMap<String, Scored>) -> Measured {
    let p = &spec.params;
    match p.get("test").and_then(Value::as_str) {
        Some("membership_inference") => {
            let by_confidence = p.get("attack").and_then(Value::as_str) == Some("confidence");
            // Lower means "member" for the attack: the loss, or one minus
            // the confidence (the largest class probability).
            let loss = |name: &str| -> Result<Vec<f64>, String> {
                let d = all.get(name).ok_or(format!("no {name} dataset"))?;
                if by_confidence {
                    let probabilities =
                        d.predictions.probabilities.as_ref().ok_or(
                            "a confidence attack needs a classifier's class probabilities",
                        )?;
                    let classes = d.predictions.classes.max(1);
                    return Ok(probabilities
                        .chunks(classes)
                        .map(|row| 1.0 - row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
                        .collect());
                }
                let scores = d
                    .predictions
                    .positive_scores()
                    .ok_or("membership inference needs a binary classifier's probabilities")?;
                privacy::per_row_log_loss(&labels(d)?, &scores, 1).map_err(text)
            };
            let r =
                privacy::membership_inference(&loss("train")?, &loss("holdout")?).map_err(text)?;
            let value = if p.contains_key("max_auc") {
                r.auc
            } else {
                r.advantage
            };
            let mut evidence = serde_json::to_value(&r).map_err(text)?;
            evidence["attack"] = json!(if by_confidence { "confidence" } else { "loss" });
            Ok((value, evidence))
        }
        Some("pii") => {
            let wanted: Option<Vec<&str>> = p
                .get("columns")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect());
            // What to scan: the check's dataset, or the datasets and/or
            // the model's `outputs` named in `scan`.
            let dataset = p.get("dataset").and_then(Value::as_str).unwrap_or("test");
            let targets: Vec<&str> = match p.get("scan") {
                Some(Value::String(one)) => vec![one.as_str()],
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
                _ => vec![dataset],
            };
            let mut scanned = serde_json::Map::new();
            let mut total = 0u64;
            let mut scan_texts = |values: &[&str]| -> Result<Option<Value>, String> {
                let r = privacy::scan(values);
                total += r.total_findings();
                (r.total_findings() > 0)
                    .then(|| serde_json::to_value(&r))
                    .transpose()
                    .map_err(text)
            };
            for target in targets {
                let mut reports = serde_json::Map::new();
                if target == "outputs" {
                    let d = all.get(dataset).ok_or(format!("no dataset {dataset:?}"))?;
                    let outputs = d.predictions.texts.as_deref().unwrap_or_default();
                    let values: Vec<&str> = outputs.iter().map(String::as_str).collect();
                    if let Some(r) = scan_texts(&values)? {
                        reports.insert("text_output".into(), r);
                    }
                } else {
                    let d = all.get(target).ok_or(format!("no dataset {target:?}"))?;
                    for c in &d.table.columns {
                        if wanted
                            .as_ref()
                            .is_some_and(|w| !w.contains(&c.name.as_str()))
                        {
                            continue;
                        }
                        let Values::Text(v) = &c.values else { continue };
                        let values: Vec<&str> =
                            v.iter().map(|x| x.as_deref().unwrap_or("")).collect();
                        if let Some(r) = scan_texts(&values)? {
                            reports.insert(c.name.clone(), r);
                        }
                    }
                }
                scanned.insert(target.to_string(), Value::Object(reports));
            }
            let columns = scanned.get(dataset).cloned().unwrap_or(json!({}));
            Ok((
                total as f64,
                json!({ "columns": columns, "scanned": scanned }),
            ))
        }
        Some("k_anonymity") => {
            let names: Vec<&str> = p
                .get("quasi_identifiers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut columns: Vec<Vec<String>> = Vec::new();
            for n in &names {
                let c = s.table.column(n).map_err(text)?;
                columns.push(c.values.texts(""));
            }
            let refs: Vec<Vec<&str>> = columns
                .iter()
                .map(|c| c.iter().map(String::as_str).collect())
                .collect();
            let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
            let r = privacy::k_anonymity(&slices).map_err(text)?;
            let min_k = p.get("min_k").and_then(Value::as_u64).unwrap_or(1);
            Ok((
                r.k as f64,
                json!({"k": r.k, "classes": r.classes, "rows_in_smaller_classes": r.rows_in_classes_below(min_k)}),
            ))
        }
        other => Err(format!("privacy test {other:?} is not built yet")),
    }
}

pub(crate) fn security(spec: &CheckSpec, model: &Model, s: &Scored) -> Measured {
    let p = &spec.params;
    let m = &s.matrix;
    let mut predict = predictor(model);
    match p.get("test").and_then(Value::as_str) {
        Some("evasion") => {
            let samples = p
                .get("samples")
                .and_then(Value::as_u64)
                .unwrap_or(200)
                .min(m.rows as u64) as usize;
            let cols = m.cols;
            let sample =
                Matrix::new(samples, cols, m.values[..samples * cols].to_vec()).map_err(text)?;
            let params = security::Evasion {
                norm: match p.get("norm").and_then(Value::as_str) {
                    Some("l2") => security::Norm::L2,
                    _ => security::Norm::Linf,
                },
                budget: p.get("budget").and_then(Value::as_f64).unwrap_or(0.1),
                queries: p.get("queries").and_then(Value::as_u64).unwrap_or(100) as usize,
                seed: seed(p),
                ..security::Evasion::default()
            };
            // Only numbers move; text features hold codes, which have no
            // distance.
            let mut std = m.column_std();
            for (c, s) in std.iter_mut().enumerate() {
                if model.kind(c) == FeatureKind::Text {
                    *s = 0.0;
                }
            }
            let r = security::evasion(&sample, &std, &params, &mut predict).map_err(text)?;
            Ok((r.success_rate, serde_json::to_value(&r).map_err(text)?))
        }
        Some("hostile_inputs") => hostile_inputs(p, model, m),
        other => Err(format!("security test {other:?} is not built yet")),
    }
}

/// Sends hostile probes through the same signature enforcement and plan
/// a served model answers with, and counts the probes that should have
/// been refused but were answered.
fn hostile_inputs(p: &serde_json::Map<String, Value>, model: &Model, m: &Matrix) -> Measured {
    if m.rows == 0 {
        return Err("the dataset has no rows to build probes from".into());
    }
    // keel-quality's probes fill every value of a valid row; only the
    // float features take them, the other features keep the row's values.
    let template = Matrix::new(1, m.cols, m.row(0).to_vec()).map_err(text)?;
    let floats: Vec<usize> = (0..m.cols)
        .filter(|&c| model.kind(c) == FeatureKind::Float)
        .collect();
    let mut probes: Vec<(&str, Vec<NamedTensor>)> = Vec::new();
    for (name, mut x) in security::hostile_probes(&template).map_err(text)? {
        let filled = !matches!(name, "empty_batch" | "oversized_batch");
        if filled && floats.is_empty() {
            continue;
        }
        for r in 0..x.rows {
            for c in 0..x.cols {
                if filled && model.kind(c) != FeatureKind::Float {
                    x.values[r * x.cols + c] = template.values[c];
                }
            }
        }
        probes.push((name, model.tensors(&x.values, x.rows).map_err(text)?));
    }
    // The first input given the wrong datatype, then one column too many.
    let valid = model.tensors(&template.values, 1).map_err(text)?;
    let mut wrong_type = valid.clone();
    let n = wrong_type[0].data.len();
    wrong_type[0].data = match wrong_type[0].data {
        Data::Bytes(_) => Data::Fp32(vec![0.0; n]),
        _ => Data::Bytes(vec![b"not a number".to_vec(); n]),
    };
    probes.push(("wrong_type", wrong_type));
    let mut wrong_shape = valid;
    let first = &mut wrong_shape[0];
    first.shape = vec![1, first.data.len() + 1];
    match &mut first.data {
        Data::Fp32(v) => v.push(0.0),
        Data::Fp64(v) => v.push(0.0),
        Data::Int64(v) => v.push(0),
        Data::Int32(v) => v.push(0),
        Data::Bytes(v) => v.push(Vec::new()),
        other => return Err(format!("input {} is {}", first.name, other.datatype())),
    }
    probes.push(("wrong_shape", wrong_shape));
    let accepts_missing = model.accepts_non_finite();
    let reject: Vec<String> = match p.get("reject").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        None if accepts_missing => vec!["wrong_type".into(), "wrong_shape".into()],
        None => ["nan", "pos_inf", "neg_inf", "wrong_type", "wrong_shape"]
            .map(String::from)
            .to_vec(),
    };
    let mut outcomes = Vec::with_capacity(probes.len());
    let mut answered = Vec::new();
    for (name, tensors) in probes {
        let rows = tensors[0].shape.first().copied().unwrap_or(0);
        let result = model.serve(tensors);
        if result.is_ok() && reject.iter().any(|r| r == name) {
            answered.push(name);
        }
        outcomes.push(json!({
            "probe": name,
            "rows": rows,
            "answered": result.is_ok(),
            "error": result.err().map(|e| e.to_string()),
        }));
    }
    Ok((
        answered.len() as f64,
        json!({
            "probes": outcomes,
            "must_reject": reject,
            "answered_but_should_not": answered,
            "accepts_missing_values": accepts_missing,
        }),
    ))
}

/// The bytes answering `input` allocates at its peak (keel-core's
/// allocation tracking, which the `keel` binary installs).
fn peak_memory(model: &Model, input: &[f64]) -> Result<u64, String> {
    let (answer, peak) = keel_core::alloc::measure(|| model.predict(input));
    answer.map_err(text)?;
    peak.ok_or_else(|| {
        "peak memory needs keel-core's allocation tracking, which this program does not install"
            .to_string()
    })
}

pub(crate) fn cost(spec: &CheckSpec, model: &Model, s: &Scored) -> Measured {
    let p = &spec.params;
    let (measure, args) = keel_quality::suite::COST_MEASURES
        .iter()
        .find_map(|k| p.get(*k).map(|v| (*k, v)))
        .ok_or("name a cost measure")?;
    let batch = args
        .get("batch")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, s.table.rows as u64) as usize;
    let width = model.features.len();
    let input = &s.matrix.values[..batch * width];
    if measure == "peak_memory_mb" {
        let peak = peak_memory(model, input)?;
        return Ok((
            peak as f64 / 1e6,
            json!({"batch": batch, "peak_bytes": peak, "input_bytes": std::mem::size_of_val(input)}),
        ));
    }
    // Time at least 50 runs and at least half a second, at most 10,000 runs.
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < 10_000 && (times.len() < 50 || started.elapsed().as_secs_f64() < 0.5) {
        let t = Instant::now();
        model.predict(input).map_err(text)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (p50, p99) = (pct(0.5), pct(0.99));
    let rows_per_s = batch as f64 / (times.iter().sum::<f64>() / times.len() as f64);
    let value = match measure {
        "latency_p50_ms" => p50 * 1e3,
        "latency_p99_ms" => p99 * 1e3,
        "throughput" => rows_per_s,
        "cost_per_1000" => {
            let price = p.get("cpu_hour_usd").and_then(Value::as_f64).unwrap_or(0.0);
            price / 3600.0 / rows_per_s * 1000.0
        }
        other => {
            return Err(format!(
                "{other} is not measured yet in this version of Keel"
            ));
        }
    };
    Ok((
        value,
        json!({"batch": batch, "runs": times.len(), "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "rows_per_s": rows_per_s}),
    ))
}
