//! Trains a binary GBDT on a CSV file and prints one JSON line with the
//! training time and the validation AUC, for `bench/train_bench.py` to
//! compare with LightGBM and XGBoost.
//!
//! ```text
//! gbdt_vs DATA.csv [--trees 200] [--depth 6] [--lr 0.1] [--bins 255]
//!                  [--seed 0] [--leaves N] [--threads N] [--early-stopping N]
//! ```
//!
//! The CSV has a header; every cell is a number (empty, `nan` or `NA` is a
//! missing value) and the last column is the 0/1 label. The last 20% of the
//! rows are the validation set. The time covers what LightGBM's and
//! XGBoost's `fit` cover — binning the features and growing the trees — not
//! reading the file. The validation set is given to the trainer only with
//! `--early-stopping`; otherwise the AUC is computed once, after training.
//!
//! Output: `{"seconds": …, "valid_auc": …, "trees": …}`.

use std::process::ExitCode;
use std::time::Instant;

use keel_learn::{Dataset, GbdtParams, Objective, Params, Trainer, metrics};

struct Args {
    path: String,
    params: GbdtParams,
}

fn parse_args() -> Result<Args, String> {
    let mut params = GbdtParams {
        objective: Objective::Binary,
        n_estimators: 200,
        max_depth: 6,
        learning_rate: 0.1,
        max_bins: 255,
        ..GbdtParams::default()
    };
    let mut path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if !arg.starts_with("--") {
            path = Some(arg);
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{arg} {value}: {e}");
        match arg.as_str() {
            "--trees" => params.n_estimators = value.parse().map_err(|e| bad(&e))?,
            "--depth" => params.max_depth = value.parse().map_err(|e| bad(&e))?,
            "--lr" => params.learning_rate = value.parse().map_err(|e| bad(&e))?,
            "--bins" => params.max_bins = value.parse().map_err(|e| bad(&e))?,
            "--seed" => params.seed = value.parse().map_err(|e| bad(&e))?,
            "--leaves" => params.num_leaves = Some(value.parse().map_err(|e| bad(&e))?),
            "--threads" => params.threads = Some(value.parse().map_err(|e| bad(&e))?),
            "--early-stopping" => {
                params.early_stopping_rounds = Some(value.parse().map_err(|e| bad(&e))?)
            }
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(Args {
        path: path.ok_or(
            "usage: gbdt_vs DATA.csv [--trees N] [--depth N] [--lr X] [--bins N] [--seed N]",
        )?,
        params,
    })
}

/// A numeric CSV: feature names, row-major features, labels.
struct Csv {
    names: Vec<String>,
    features: Vec<f64>,
    labels: Vec<f64>,
}

/// Reads a numeric CSV with a header whose last column is the label.
fn read_csv(path: &str) -> Result<Csv, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| format!("{path}: empty file"))?
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    if header.len() < 2 {
        return Err(format!("{path}: need at least one feature and the label"));
    }
    let cols = header.len() - 1;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in lines.enumerate() {
        let mut n = 0;
        for (c, cell) in line.split(',').enumerate() {
            let cell = cell.trim();
            let v = if cell.is_empty() || cell.eq_ignore_ascii_case("nan") || cell == "NA" {
                f64::NAN
            } else {
                cell.parse::<f64>().map_err(|e| {
                    format!("{path}: line {}, column {}: {cell:?}: {e}", i + 2, c + 1)
                })?
            };
            if c < cols {
                features.push(v);
            } else if c == cols {
                labels.push(v);
            }
            n += 1;
        }
        if n != cols + 1 {
            return Err(format!(
                "{path}: line {} has {n} cells, the header {}",
                i + 2,
                cols + 1
            ));
        }
    }
    Ok(Csv {
        names: header[..cols].to_vec(),
        features,
        labels,
    })
}

fn run() -> Result<String, String> {
    let args = parse_args()?;
    let Csv {
        names,
        features,
        labels,
    } = read_csv(&args.path)?;
    let rows = labels.len();
    let cols = names.len();
    let split = rows - rows / 5;
    let train = Dataset::new(
        names.clone(),
        features[..split * cols].to_vec(),
        labels[..split].to_vec(),
    )
    .map_err(|e| e.to_string())?;
    let valid = Dataset::new(
        names,
        features[split * cols..].to_vec(),
        labels[split..].to_vec(),
    )
    .map_err(|e| e.to_string())?;
    let with_validation = args.params.early_stopping_rounds.is_some();
    let started = Instant::now();
    let trainer = Trainer::new(
        Params::Gbdt(args.params),
        &train,
        with_validation.then_some(&valid),
    )
    .map_err(|e| e.to_string())?;
    let model = trainer
        .run(|_| std::ops::ControlFlow::Continue(()))
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let scores = model
        .raw_scores(valid.features())
        .map_err(|e| e.to_string())?;
    let auc = metrics::roc_auc(valid.labels(), &scores);
    let trees = match &model {
        keel_learn::Model::Gbdt(m) => m.trees.len(),
        _ => 0,
    };
    Ok(serde_json::json!({"seconds": seconds, "valid_auc": auc, "trees": trees}).to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gbdt_vs: {e}");
            ExitCode::from(2)
        }
    }
}
